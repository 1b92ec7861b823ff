"""Pull-request mode in the policy layer: which ref is trusted by default (never a guess), and how
connection changes are described (secret references by name, never a secret, never a user name)."""

from __future__ import annotations

from pathlib import Path

import git
import pytest

from reconcile.policy.loader import validate_repo
from reconcile.policy.source import SourceError, default_branch
from reconcile.policy.trust import compose, load_with_trusted_connections

TRUSTED = """\
apiVersion: reconcile/v1
kind: Registry
metadata: {name: ci}
spec:
  url: https://registry.ci.example.com
  credentials:
    username: ci-bot
    password: {env: CI_PASSWORD}
---
apiVersion: reconcile/v1
kind: Cluster
metadata: {name: prod}
spec:
  kubeconfig: {file: /etc/reconcile/prod.kubeconfig}
  context: prod
"""
PROPOSED = """\
apiVersion: reconcile/v1
kind: Registry
metadata: {name: ci}
spec:
  url: https://registry.ci.example.com
  credentials:
    username: someone-else
    password: {kubernetes: {namespace: kube-system, name: admin, key: token}}
  tls: {insecureSkipVerify: true}
---
apiVersion: reconcile/v1
kind: Cluster
metadata: {name: prod}
spec:
  inCluster: true
---
apiVersion: reconcile/v1
kind: Cluster
metadata: {name: new}
spec:
  kubeconfig: {file: /root/.kube/config}
"""


def repository(path: Path, *, branch: str = "main") -> git.Repo:
    repo = git.Repo.init(path)
    repo.git.symbolic_ref("HEAD", f"refs/heads/{branch}")
    with repo.config_writer() as config:
        config.set_value("user", "name", "t").set_value("user", "email", "t@example.com")
    return repo


def commit(repo: git.Repo, text: str) -> str:
    Path(repo.working_tree_dir, "policies.yaml").write_text(text)
    repo.index.add(["policies.yaml"])
    return repo.index.commit("c").hexsha


def test_changes_name_references_and_fields_never_secrets_or_user_names(tmp_path: Path) -> None:
    repo = repository(tmp_path / "r")
    commit(repo, TRUSTED)
    repo.git.checkout("-b", "pr")
    commit(repo, PROPOSED)
    policies = load_with_trusted_connections(str(tmp_path / "r"), "pr", None)
    assert policies.trusted_ref == "main"
    changes = {(c.kind, c.name): c for c in policies.connection_changes}
    assert changes[("Registry", "ci")].details == (
        "credentials.username (a user name) → (a user name)",
        "credentials.password {env: CI_PASSWORD} → {kubernetes: kube-system/admin#token}",
        "tls.insecureSkipVerify false → true")
    assert changes[("Cluster", "prod")].details == (
        "inCluster false → true", "kubeconfig {file: /etc/reconcile/prod.kubeconfig} → (none)", "context prod → (none)")
    assert changes[("Cluster", "new")].change == "added"
    assert "someone-else" not in repr(policies.connection_changes)
    # The connections are the trusted ones; the added cluster is kept by name, stripped, refused.
    assert policies.registries["ci"].credentials.password.env == "CI_PASSWORD"  # type: ignore[union-attr]
    assert policies.clusters["prod"].context == "prod" and not policies.clusters["prod"].in_cluster
    assert policies.clusters["new"].kubeconfig is None and "Cluster/new" in policies.unconnectable


def test_the_same_commit_composes_nothing(tmp_path: Path) -> None:
    repo = repository(tmp_path / "r")
    commit(repo, TRUSTED)
    repo.git.branch("pr")
    policies = load_with_trusted_connections(str(tmp_path / "r"), "pr", None)
    assert policies.trusted_ref is None and policies.connection_changes == ()


def test_compose_keeps_a_registry_the_proposal_removed(tmp_path: Path) -> None:
    repo = repository(tmp_path / "r")
    commit(repo, TRUSTED)
    trusted = validate_repo(str(tmp_path / "r")).policies
    commit(repo, TRUSTED.split("---\n")[1])
    proposed = validate_repo(str(tmp_path / "r")).policies
    assert trusted and proposed
    composed = compose(trusted, proposed, "main")
    assert "ci" in composed.registries
    (change,) = composed.connection_changes
    assert (change.kind, change.name, change.change) == ("Registry", "ci", "removed")


@pytest.mark.parametrize("setup, expected", [
    ("no-remote-on-a-branch", "refs/heads/work"),  # nobody's pull request can be in it
    ("no-remote-detached", None),
    ("main-branch", "refs/heads/main"),
    ("remote-without-head-or-main", None),  # CI's checkout of one commit: must be told
    ("origin-head", "refs/remotes/origin/trunk"),
    ("bare", "refs/heads/trunk"),
])
def test_the_default_trusted_ref_is_never_a_guess(tmp_path: Path, setup: str, expected: str | None) -> None:
    origin = repository(tmp_path / "origin", branch="trunk")
    commit(origin, TRUSTED)
    if setup == "bare":
        bare = git.Repo.clone_from(str(tmp_path / "origin"), tmp_path / "bare.git", bare=True)
        assert default_branch(bare.git_dir) == expected
        return
    if setup in ("origin-head", "remote-without-head-or-main"):
        clone = git.Repo.clone_from(str(tmp_path / "origin"), tmp_path / "clone")
        clone.git.checkout("-b", "pr")
        if setup == "remote-without-head-or-main":
            clone.git.remote("set-head", "origin", "--delete")
        assert default_branch(str(tmp_path / "clone")) == expected
        return
    repo = repository(tmp_path / "r", branch="main" if setup == "main-branch" else "work")
    sha = commit(repo, TRUSTED)
    if setup == "main-branch":
        repo.git.checkout("-b", "pr")
    if setup == "no-remote-detached":
        repo.git.checkout(sha)
    assert default_branch(str(tmp_path / "r")) == expected


def test_a_plain_directory_has_nothing_to_compare(tmp_path: Path) -> None:
    (tmp_path / "policies.yaml").write_text(TRUSTED)
    assert default_branch(str(tmp_path)) is None
    assert load_with_trusted_connections(str(tmp_path), None, None).connection_changes == ()


def test_an_ambiguous_trusted_ref_is_refused(tmp_path: Path) -> None:
    """A tag 'origin/main' would shadow the branch origin/main the job means to trust."""
    origin = repository(tmp_path / "origin")
    commit(origin, TRUSTED)
    clone = git.Repo.clone_from(str(tmp_path / "origin"), tmp_path / "clone")
    clone.git.checkout("-b", "pr")
    with clone.config_writer() as config:
        config.set_value("user", "name", "t").set_value("user", "email", "t@example.com")
    commit(clone, PROPOSED)
    clone.git.tag("origin/main")
    with pytest.raises(SourceError, match=r"ambiguous.*refs/tags/origin/main, refs/remotes/origin/main"):
        load_with_trusted_connections(str(tmp_path / "clone"), "pr", "origin/main")
    full = load_with_trusted_connections(str(tmp_path / "clone"), "pr", "refs/remotes/origin/main")
    assert full.trusted_ref == "origin/main" and full.connection_changes
