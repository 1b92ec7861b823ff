"""Deleting on real registries: by digest (every tag goes with it), by tag where the Registry
declares it can (``deletion: tag``) and where it cannot (the decision is handed to the planner as
data), a registry with deletion disabled, and one declared ``deletion: none``. How a registry
deletes is declared, never probed: what a DELETE answers at apply time teaches the client, which
then fails fast and says which declaration to change."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from reconcile.adapters.registry import CannotUntag, DeletionDisabled
from reconcile.observe.repositories import observe_repository
from tests.adapters.registry.faults import FaultProxy, Recorded
from tests.adapters.registry.oci import Built, Layout, push, put_tag
from tests.conftest import OpenClient, RunningRegistry, registry_policy


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


def deletes(seen: list[Recorded]) -> list[str]:
    return [r.path for r in seen if r.method not in ("GET", "HEAD")]


def test_deleting_a_digest_removes_every_tag_on_it(plain_registry: RunningRegistry, open_client: OpenClient,
                                                    repo: str, tmp_path: Path) -> None:
    doomed, _ = tagged_twice(tmp_path, plain_registry, repo)
    client = open_client(registry_policy("ci", plain_registry.url))
    assert observe_repository(client, repo).tags_of(doomed.digest) == ("a", "b", "c")  # what the planner sees
    assert client.delete_manifest(repo, doomed.digest) is True
    assert client.tags(repo) == ["keep"]
    assert client.resolve(repo, doomed.digest) is None
    assert client.delete_manifest(repo, doomed.digest) is False  # already gone: nothing to do


def test_a_registry_declared_deletion_manifest_is_never_asked_to_untag_and_says_what_it_would_take(
        plain_registry: RunningRegistry, open_client: OpenClient, repo: str, tmp_path: Path,
        proxy_factory: Callable[..., FaultProxy]) -> None:
    doomed, _ = tagged_twice(tmp_path, plain_registry, repo)
    proxy = proxy_factory(plain_registry.url)
    client = open_client(registry_policy("ci", proxy.url))  # deletion: manifest, the default
    assert client.can_delete_tags(repo) is False
    with proxy.recording() as seen, pytest.raises(CannotUntag) as error:
        client.delete_tag(repo, "b")
    assert deletes(seen) == []  # it is not tried: the declaration says it cannot work
    assert (error.value.tag, error.value.digest, error.value.tags) == ("b", doomed.digest, ("a", "b", "c"))
    assert str(error.value) == (f"registry ci, repository {repo}: delete tag b: this registry cannot untag; "
                                f"deleting digest {doomed.digest} would also remove tags [a, b, c] (Registry ci "
                                "declares deletion: manifest; if it can delete a tag alone (OCI 1.1), declare "
                                "deletion: tag)")
    assert sorted(client.tags(repo)) == ["a", "b", "c", "keep"]  # nothing was deleted


def test_a_registry_wrongly_declared_deletion_tag_teaches_the_client_on_the_first_untag(
        plain_registry: RunningRegistry, open_client: OpenClient, repo: str, tmp_path: Path,
        proxy_factory: Callable[..., FaultProxy]) -> None:
    """distribution 2.8 answers a tag DELETE with 400 DIGEST_INVALID: the first untag finds out, the
    next ones fail at once with the same error, which names the declaration to change."""
    doomed, _ = tagged_twice(tmp_path, plain_registry, repo)
    proxy = proxy_factory(plain_registry.url)
    client = open_client(replace(registry_policy("ci", proxy.url), deletion="tag"))
    assert client.can_delete_tags(repo) is True  # as declared; nothing was sent to find out
    with proxy.recording() as first, pytest.raises(CannotUntag) as error:
        client.delete_tag(repo, "b")
    assert deletes(first) == [f"/v2/{repo}/manifests/b"]
    hint = ("Registry ci declares deletion: tag, but the registry answered HTTP 400 (DIGEST_INVALID) to deleting a "
            "tag alone: declare deletion: manifest on Registry ci")
    assert str(error.value) == (f"registry ci, repository {repo}: delete tag b: this registry cannot untag; "
                                f"deleting digest {doomed.digest} would also remove tags [a, b, c] ({hint})")
    assert error.value.tags == ("a", "b", "c")
    assert client.can_delete_tags(repo) is False

    with proxy.recording() as again, pytest.raises(CannotUntag) as second:
        client.delete_tag(repo, "c")
    assert deletes(again) == []  # fails fast
    assert second.value.hint == hint and second.value.tags == ("a", "b", "c")
    assert sorted(client.tags(repo)) == ["a", "b", "c", "keep"]


def test_a_registry_declared_deletion_tag_removes_a_tag_alone(
        plain_registry: RunningRegistry, open_client: OpenClient, repo: str, tmp_path: Path,
        proxy_factory: Callable[..., FaultProxy]) -> None:
    doomed, _ = tagged_twice(tmp_path, plain_registry, repo)
    proxy = proxy_factory(plain_registry.url, untag_storage=plain_registry.root / "data")  # OCI 1.1 tag DELETE
    client = open_client(replace(registry_policy("ci", proxy.url), deletion="tag"))
    with proxy.recording() as seen:
        client.delete_tag(repo, "b")
        client.delete_tag(repo, "b")  # already gone: 404, and the tag resolves to nothing
    assert deletes(seen) == [f"/v2/{repo}/manifests/b"] * 2
    assert sorted(client.tags(repo)) == ["a", "c", "keep"]
    assert client.resolve(repo, doomed.digest) is not None  # the manifest stays
    assert client.can_delete_tags(repo) is True


def test_a_registry_with_deletion_disabled_names_the_setting_and_the_declaration(
        nodelete_registry: RunningRegistry, open_client: OpenClient, repo: str, tmp_path: Path,
        proxy_factory: Callable[..., FaultProxy]) -> None:
    doomed, _ = tagged_twice(tmp_path, nodelete_registry, repo)
    proxy = proxy_factory(nodelete_registry.url)
    client = open_client(registry_policy("archive", proxy.url))
    with pytest.raises(DeletionDisabled) as error:
        client.delete_manifest(repo, doomed.digest)
    assert str(error.value) == (f"registry archive, repository {repo}: delete manifest {doomed.digest}: registry "
                                "archive has deletion disabled: enable it (distribution: storage.delete.enabled: "
                                "true), or declare deletion: none on Registry archive so that nothing is planned "
                                "to be deleted")
    assert error.value.status == 405
    with proxy.recording() as again, pytest.raises(DeletionDisabled) as second:
        client.delete_manifest(repo, doomed.digest)
    assert deletes(again) == [] and str(second.value) == str(error.value)  # learnt: fails fast
    assert client.can_delete_tags(repo) is False
    assert sorted(client.tags(repo)) == ["a", "b", "c", "keep"]


def test_a_tag_delete_refused_with_405_points_at_both_declarations(
        nodelete_registry: RunningRegistry, open_client: OpenClient, repo: str, tmp_path: Path) -> None:
    tagged_twice(tmp_path, nodelete_registry, repo)
    client = open_client(replace(registry_policy("archive", nodelete_registry.url), deletion="tag"))
    with pytest.raises(CannotUntag) as error:
        client.delete_tag(repo, "b")
    assert error.value.hint == ("Registry archive declares deletion: tag, but the registry answered HTTP 405 "
                                "(UNSUPPORTED) to deleting a tag alone: declare deletion: manifest on Registry "
                                "archive (or deletion: none if it deletes nothing at all)")


def test_a_registry_declared_deletion_none_is_sent_no_delete(
        plain_registry: RunningRegistry, open_client: OpenClient, repo: str, tmp_path: Path,
        proxy_factory: Callable[..., FaultProxy]) -> None:
    doomed, _ = tagged_twice(tmp_path, plain_registry, repo)
    proxy = proxy_factory(plain_registry.url)
    client = open_client(replace(registry_policy("mirror", proxy.url), deletion="none"))
    with proxy.recording() as seen:
        state = observe_repository(client, repo)
        with pytest.raises(DeletionDisabled) as by_digest:
            client.delete_manifest(repo, doomed.digest)
        with pytest.raises(DeletionDisabled) as by_tag:
            client.delete_tag(repo, "b")
    assert (state.can_delete, state.can_delete_tags) == (False, False)
    assert deletes(seen) == []
    assert str(by_digest.value) == (f"registry mirror, repository {repo}: delete manifest {doomed.digest}: Registry "
                                    "mirror declares deletion: none, so nothing is deleted on it")
    assert str(by_tag.value).endswith("delete tag b: Registry mirror declares deletion: none, so nothing is "
                                      "deleted on it")
    assert sorted(client.tags(repo)) == ["a", "b", "c", "keep"]
