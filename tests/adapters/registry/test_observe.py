"""observe_repository against a real registry: the RepositoryState the planner reads, and the
cost of observing again (tag list and HEADs only: manifests and configs come from the cache)."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconcile.observe.repositories import observe_repositories, observe_repository
from reconcile.observe.state import OCI_INDEX, OCI_MANIFEST
from tests.adapters.registry.faults import FaultProxy
from tests.adapters.registry.oci import Layout, push, put_tag
from tests.adapters.registry.test_read import COSIGN_SIG, Published, publish
from tests.conftest import OpenClient, RunningRegistry, registry_policy


@pytest.fixture(scope="module")
def app(plain_registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> Published:
    return publish(tmp_path_factory.mktemp("app"), plain_registry, f"observe-{secrets.token_hex(3)}/app")


def test_a_repository_is_observed_whole(plain_registry: RunningRegistry, app: Published,
                                        open_client: OpenClient) -> None:
    state = observe_repository(open_client(registry_policy("ci", plain_registry.url)), app.repository)
    assert (state.registry, state.repository) == ("ci", app.repository)
    assert {tag: d.digest for tag, d in state.tags.items()} == {
        "build-1": app.build.digest, "build-2": app.build.digest, "latest": app.index.digest,
        "v1.0.0": app.index.digest, app.sig_tag: app.signature.digest}
    assert state.tags["latest"].media_type == OCI_INDEX and state.tags["build-1"].media_type == OCI_MANIFEST
    # Tagged digests and index children, each parsed.
    assert set(state.images) == {app.index.digest, app.amd64.digest, app.arm64.digest, app.build.digest,
                                 app.signature.digest}
    assert state.images[app.build.digest].revision == "b" * 40
    assert [c.digest for c in state.images[app.index.digest].children] == [app.amd64.digest, app.arm64.digest]
    (signature,) = state.referrers[app.index.digest]
    assert (signature.digest, signature.artifact_type) == (app.signature.digest, COSIGN_SIG)
    assert set(state.referrers) == {app.index.digest}
    # Declared (deletion: manifest, the default: distribution 2.8 cannot delete a tag alone), not
    # probed: the planner must delete digests.
    assert (state.can_delete_tags, state.can_delete) == (False, True)
    assert state.tags_of(app.build.digest) == ("build-1", "build-2")


def test_observing_again_costs_only_the_tag_list_and_heads(
        plain_registry: RunningRegistry, app: Published, proxy_factory: Callable[..., FaultProxy],
        open_client: OpenClient, tmp_path: Path) -> None:
    proxy = proxy_factory(plain_registry.url)
    policy = registry_policy("ci", proxy.url)
    client = open_client(policy, cache_dir=tmp_path / "shared")
    with proxy.recording() as first:
        before = observe_repository(client, app.repository)
    by_tag = [r for r in first if "/manifests/" in r.path and not r.path.rsplit("/", 1)[1].startswith("sha256:")]
    assert sorted(r.path.rsplit("/", 1)[1] for r in by_tag) == sorted(before.tags)  # one request per tag...
    assert {r.method for r in by_tag} == {"GET"}  # ...its manifest, whose digest the answer names
    by_digest = [r.path for r in first if r.path.rsplit("/", 1)[1].startswith("sha256:")]
    assert len(by_digest) == len(set(by_digest))  # and each immutable object (config, child) at most once
    made = client.requests_made()  # counted as the registry saw them (pull limits count manifest GETs)
    assert "HEAD manifest" not in made and made["GET manifest"] == len([r for r in first if "/manifests/" in r.path])

    with proxy.recording() as again:
        after = observe_repository(client, app.repository)
    assert after == before
    assert sorted((r.method, r.path.split("/")[-2]) for r in again) == sorted(
        [("GET", "tags")] + [("HEAD", "manifests")] * len(before.tags))

    # A new process (new client, same cache directory) also reads nothing it has seen: it only
    # repeats the one-off referrers API probe (a GET).
    with proxy.recording() as fresh:
        assert observe_repository(open_client(policy, cache_dir=tmp_path / "shared"), app.repository) == before
    gets = [r.path for r in fresh if r.method == "GET"]
    assert not [p for p in gets if "/manifests/" in p or "/blobs/" in p]
    assert len(fresh) == len(again) + 1
    assert {r.method for r in first + again + fresh} == {"GET", "HEAD"}  # observing never writes


@pytest.mark.parametrize(("deletion", "expected"), [(None, (False, True)), ("manifest", (False, True)),
                                                     ("tag", (True, True)), ("none", (False, False))])
def test_how_a_registry_deletes_comes_from_its_declaration_not_from_a_request(
        plain_registry: RunningRegistry, app: Published, proxy_factory: Callable[..., FaultProxy],
        open_client: OpenClient, deletion: str | None, expected: tuple[bool, bool]) -> None:
    proxy = proxy_factory(plain_registry.url)
    client = open_client(replace(registry_policy("ci", proxy.url), deletion=deletion))
    with proxy.recording() as seen:
        state = observe_repository(client, app.repository)
    assert (state.can_delete_tags, state.can_delete) == expected
    assert {r.method for r in seen} <= {"GET", "HEAD"}  # reads only: never a DELETE probe


def test_many_repositories_are_observed_at_once_within_the_clients_concurrency(
        plain_registry: RunningRegistry, proxy_factory: Callable[..., FaultProxy], open_client: OpenClient,
        tmp_path: Path) -> None:
    """A registry of many small repositories is mostly round trips: their tag lists are read side by
    side (each held back a while by the proxy, so overlapping ones are seen in flight together)."""
    layout = Layout(tmp_path / "layout")
    names = [f"many-{secrets.token_hex(3)}/app-{n}" for n in range(4)]
    for n, name in enumerate(names):
        image = layout.image(created=f"2026-11-0{n + 1}T00:00:00Z")
        layout.tag(image, f"v{n}")
        push(layout, f"v{n}", plain_registry.host, name)
    proxy = proxy_factory(plain_registry.url)
    proxy.inject(r"/tags/list", "delay", delay=0.5, times=-1)
    client = open_client(replace(registry_policy("ci", proxy.url), concurrency=2))
    with proxy.recording() as seen:
        states = observe_repositories(client, names)
    assert [s.repository for s in states] == names  # in the order asked
    assert [sorted(s.tags) for s in states] == [[f"v{n}"] for n in range(4)]
    assert proxy.max_in_flight == 2  # side by side, and never more than the client's concurrency
    assert {r.method for r in seen} <= {"GET", "HEAD"}  # no probing DELETE, however many repositories


def test_repositories_side_by_side_share_one_request_queue(
        plain_registry: RunningRegistry, proxy_factory: Callable[..., FaultProxy], open_client: OpenClient,
        tmp_path: Path) -> None:
    """A repository of six tags beside one of a single tag, concurrency 3: every slot works for
    whichever repository has work (slots split per repository would leave the small one's idle),
    and never more than 3 at once."""
    layout = Layout(tmp_path / "layout")
    names = [f"share-{secrets.token_hex(3)}/app-{n}" for n in range(2)]
    for name, tags in zip(names, ("abcdef", "a"), strict=True):
        image = layout.image(created="2026-11-01T00:00:00Z")
        layout.tag(image, "a")
        push(layout, "a", plain_registry.host, name)
        for tag in tags[1:]:
            put_tag(plain_registry.url, name, tag, image)
    proxy = proxy_factory(plain_registry.url)
    proxy.inject(r"/manifests/[a-f]$", "delay", delay=0.3, times=-1)
    client = open_client(replace(registry_policy("ci", proxy.url), concurrency=3))
    lock, inside, peak = threading.Lock(), [0], [0]
    resolve_tag = client.resolve_tag

    def counted(repository: str, tag: str, seen: str | None = None) -> object:
        with lock:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
        try:
            return resolve_tag(repository, tag, seen)
        finally:
            with lock:
                inside[0] -= 1

    client.resolve_tag = counted  # type: ignore[method-assign]
    states = observe_repositories(client, names)
    assert [sorted(s.tags) for s in states] == [list("abcdef"), ["a"]]
    assert peak[0] == 3
    assert proxy.max_in_flight <= 3
    assert observe_repositories(client, names[:1]) == states[:1]


def test_a_tag_moved_since_the_last_observation_is_seen_where_it_is_now(
        plain_registry: RunningRegistry, open_client: OpenClient, tmp_path: Path) -> None:
    """The remembered digest only chooses HEAD over GET: the HEAD's answer is what counts."""
    layout = Layout(tmp_path / "layout")
    name = f"moved-{secrets.token_hex(3)}/app"
    first, second = layout.image(created="2026-11-01T00:00:00Z"), layout.image(created="2026-11-02T00:00:00Z")
    layout.tag(first, "latest")
    push(layout, "latest", plain_registry.host, name)
    client = open_client(registry_policy("ci", plain_registry.url), cache_dir=tmp_path / "cache")
    assert observe_repository(client, name).tags["latest"].digest == first.digest
    layout.tag(second, "latest")
    push(layout, "latest", plain_registry.host, name)
    again = observe_repository(client, name)
    assert again.tags["latest"].digest == second.digest
    assert again.images[second.digest].created == datetime(2026, 11, 2, tzinfo=UTC)
