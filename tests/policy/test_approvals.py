"""Approval files, read from the repo-of-record at the policies' commit."""

from __future__ import annotations

from pathlib import Path

import git

from reconcile.policy.approvals import read_approvals
from reconcile.policy.model import Approval


def test_approvals_are_read_at_the_commit_not_the_working_tree(tmp_path: Path) -> None:
    repo = git.Repo.init(tmp_path, initial_branch="main")
    (tmp_path / "approvals").mkdir()
    (tmp_path / "approvals/web-prod.yaml").write_text(
        "approvals:\n  - {version: '1.4.2', approvedBy: alice}\n"
        "  - {digest: 'sha256:" + "a" * 64 + "', approvedBy: bob}\n")
    (tmp_path / "approvals/bad.yaml").write_text("approvals: [{version: 1}]\n")
    repo.index.add(["approvals/web-prod.yaml", "approvals/bad.yaml"])
    commit = repo.index.commit("approve", author=git.Actor("t", "t@example.com")).hexsha
    (tmp_path / "approvals/web-prod.yaml").write_text("approvals: [{version: '9.9.9', approvedBy: mallory}]\n")
    found = read_approvals(str(tmp_path), commit, ["approvals/web-prod.yaml", "approvals/bad.yaml", "missing.yaml",
                                                    "../outside.yaml"])
    assert found["approvals/web-prod.yaml"] == (Approval("alice", version="1.4.2"),
                                                Approval("bob", digest="sha256:" + "a" * 64))
    assert found["approvals/bad.yaml"].startswith("is not valid")
    assert found["missing.yaml"] == found["../outside.yaml"] == "does not exist at this commit"


def test_a_plain_directory_is_read_from_disk(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("approvals: [{version: 2, approvedBy: alice}]\n")
    assert read_approvals(str(tmp_path), None, ["a.yaml"]) == {"a.yaml": (Approval("alice", version="2"),)}
