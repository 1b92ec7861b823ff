"""A remote repo-of-record (`--repo URL`): mirrored into a cache, fetched on every read."""

from __future__ import annotations

from pathlib import Path

import git
import pytest

from reconcile.policy import SourceError, validate_repo
from reconcile.policy.source import is_remote, read_snapshot, redact_url

REGISTRY = "apiVersion: reconcile/v1\nkind: Registry\nmetadata: {{name: {name}}}\nspec: {{url: 'https://r.example.com'}}\n"


def commit(repo: git.Repo, name: str, text: str) -> str:
    Path(repo.working_tree_dir, name).write_text(text)
    repo.index.add([name])
    return repo.index.commit(f"write {name}").hexsha


@pytest.fixture
def origin(tmp_path: Path) -> git.Repo:
    repo = git.Repo.init(tmp_path / "origin", initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "t").set_value("user", "email", "t@example.com")
    commit(repo, "registry.yaml", REGISTRY.format(name="ci"))
    return repo


def test_a_url_is_cloned_once_then_fetched_on_every_read(origin: git.Repo, tmp_path: Path) -> None:
    url = f"file://{origin.working_tree_dir}"
    cache = tmp_path / "cache"
    first = read_snapshot(url, cache_dir=cache)
    assert first.commit == origin.head.commit.hexsha
    assert [f.path for f in first.files] == ["registry.yaml"]  # paths relative to the repository root
    newer = commit(origin, "more.yaml", REGISTRY.format(name="prod"))
    second = read_snapshot(url, cache_dir=cache)
    assert second.commit == newer and len(second.files) == 2
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 1  # the same mirror (beside its .lock), fetched


def test_a_branch_or_tag_of_the_remote_can_be_read(origin: git.Repo, tmp_path: Path) -> None:
    first = origin.head.commit.hexsha
    origin.create_tag("v1")
    origin.create_head("release").checkout()
    commit(origin, "broken.yaml", "kind: Registry\n")
    origin.heads.main.checkout()
    url = f"file://{origin.working_tree_dir}"
    assert read_snapshot(url, "v1", cache_dir=tmp_path / "c").commit == first
    assert validate_repo(url, "main").ok
    assert not validate_repo(url, "release").ok


def test_an_unreachable_remote_is_an_error_and_never_leaks_its_credentials(tmp_path: Path) -> None:
    url = f"file://user:s3cret-token@{tmp_path}/nowhere"
    with pytest.raises(SourceError) as raised:
        read_snapshot(url, cache_dir=tmp_path / "cache")
    assert str(raised.value).startswith(f"cannot fetch the repo-of-record file://***@{tmp_path}/nowhere: ")
    assert "s3cret" not in str(raised.value)


def test_a_failed_fetch_does_not_fall_back_to_the_cached_copy(origin: git.Repo, tmp_path: Path) -> None:
    url = f"file://{origin.working_tree_dir}"
    read_snapshot(url, cache_dir=tmp_path / "cache")
    Path(origin.git_dir).rename(tmp_path / "moved.git")  # the remote is gone
    with pytest.raises(SourceError, match="cannot fetch the repo-of-record"):
        read_snapshot(url, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize(("text", "remote"), [
    ("https://git.example.com/a/b.git", True), ("ssh://git@host/a.git", True), ("git@github.com:org/repo.git", True),
    ("file:///srv/policies", True), ("policies", False), ("./a:b", False), ("/abs/path", False),
])
def test_what_counts_as_remote(text: str, remote: bool) -> None:
    assert is_remote(text) is remote


def test_redact_url() -> None:
    assert redact_url("fatal: https://bot:ghp_x@git.example.com/a.git not found") == \
        "fatal: https://***@git.example.com/a.git not found"
