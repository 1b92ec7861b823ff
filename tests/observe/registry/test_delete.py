"""Deleting on real registries: by digest (every tag goes with it), by tag where impossible (the
decision is handed to the planner as data), and a registry with deletion disabled."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconcile.observe.registry import CannotUntag, DeletionDisabled, observe_repository
from tests.conftest import OpenClient, RunningRegistry, registry_policy
from tests.observe.registry.oci import Built, Layout, push, put_tag


def tagged_twice(tmp_path: Path, registry: RunningRegistry, repository: str) -> tuple[Built, Built]:
    """``a``, ``b`` and ``c`` on one image; ``keep`` on another."""
    layout = Layout(tmp_path / "layout")
    doomed, kept = layout.image(), layout.image()
    layout.tag(doomed, "a")
    layout.tag(kept, "keep")
    push(layout, "a", registry.host, repository)
    push(layout, "keep", registry.host, repository)
    for tag in ("b", "c"):
        put_tag(registry.url, repository, tag, doomed)
    return doomed, kept


def test_deleting_a_digest_removes_every_tag_on_it(plain_registry: RunningRegistry, open_client: OpenClient,
                                                    repo: str, tmp_path: Path) -> None:
    doomed, _ = tagged_twice(tmp_path, plain_registry, repo)
    client = open_client(registry_policy("ci", plain_registry.url))
    assert observe_repository(client, repo).tags_of(doomed.digest) == ("a", "b", "c")  # what the planner sees
    assert client.delete_manifest(repo, doomed.digest) is True
    assert client.tags(repo) == ["keep"]
    assert client.resolve(repo, doomed.digest) is None
    assert client.delete_manifest(repo, doomed.digest) is False  # already gone: nothing to do


def test_untagging_is_impossible_on_distribution_2_8_and_says_what_it_would_take(
        plain_registry: RunningRegistry, open_client: OpenClient, repo: str, tmp_path: Path) -> None:
    doomed, _ = tagged_twice(tmp_path, plain_registry, repo)
    client = open_client(registry_policy("ci", plain_registry.url))
    assert client.can_delete_tags(repo) is False
    with pytest.raises(CannotUntag) as error:
        client.delete_tag(repo, "b")
    assert (error.value.tag, error.value.digest, error.value.tags) == ("b", doomed.digest, ("a", "b", "c"))
    assert str(error.value) == (f"registry ci, repository {repo}: delete tag b: this registry cannot untag; "
                                f"deleting digest {doomed.digest} would also remove tags [a, b, c]")
    assert sorted(client.tags(repo)) == ["a", "b", "c", "keep"]  # nothing was deleted


def test_a_registry_with_deletion_disabled_names_the_setting(
        nodelete_registry: RunningRegistry, open_client: OpenClient, repo: str, tmp_path: Path) -> None:
    doomed, _ = tagged_twice(tmp_path, nodelete_registry, repo)
    client = open_client(registry_policy("archive", nodelete_registry.url))
    with pytest.raises(DeletionDisabled) as error:
        client.delete_manifest(repo, doomed.digest)
    assert str(error.value) == (f"registry archive, repository {repo}: delete manifest {doomed.digest}: registry "
                                "archive has deletion disabled (distribution: storage.delete.enabled: true)")
    assert error.value.status == 405
    assert client.can_delete_tags(repo) is False
    assert sorted(client.tags(repo)) == ["a", "b", "c", "keep"]
