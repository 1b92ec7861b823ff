"""Live commits of a source repository, for gitRefs keep rules: a real repository with branches
and tags, read through for-each-ref and rev-list."""

from __future__ import annotations

import re
from pathlib import Path

import git
import pytest

from reconcile.adapters.git.refs import live_commits
from reconcile.policy.model import GitRefs
from reconcile.policy.source import SourceError


@pytest.fixture
def source(tmp_path: Path) -> tuple[git.Repo, dict[str, list[str]]]:
    """main: m1..m3; release-1: m1, r1, r2; feature-x: m1, f1; annotated tag v1 on r1."""
    repo = git.Repo.init(tmp_path / "src", initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "t").set_value("user", "email", "t@example.com")
    shas: dict[str, list[str]] = {}

    def commits(branch: str, *names: str) -> None:
        for name in names:
            shas.setdefault(branch, []).append(repo.index.commit(name).hexsha)

    commits("main", "m1")
    repo.create_head("release-1").checkout()
    commits("release-1", "r1")
    repo.create_tag("v1", message="release 1")
    commits("release-1", "r2")
    repo.create_head("feature-x", shas["main"][0]).checkout()
    commits("feature-x", "f1")
    repo.heads.main.checkout()
    commits("main", "m2", "m3")
    return repo, shas


def rule(repo: git.Repo, **kwargs: object) -> GitRefs:
    return GitRefs(repo=str(repo.working_tree_dir), **{"branches": None, "tags": None, **kwargs})  # type: ignore[arg-type]


def test_the_latest_commits_of_each_matching_branch(source: tuple[git.Repo, dict[str, list[str]]]) -> None:
    repo, shas = source
    found = live_commits(rule(repo, branches=re.compile(r"^(main|release-.*)$"), commits_per_branch=2))
    assert found == {shas["main"][2], shas["main"][1], shas["release-1"][1], shas["release-1"][0]}


def test_tags_are_peeled_to_their_commit(source: tuple[git.Repo, dict[str, list[str]]]) -> None:
    repo, shas = source
    assert live_commits(rule(repo, tags=re.compile(r"^v\d+$"))) == {shas["release-1"][0]}


def test_a_missing_repository_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is not a git repository"):
        live_commits(GitRefs(repo=str(tmp_path), branches=re.compile("main"), tags=None))
