"""Reading a real registry: catalog and tag pagination, HEAD resolution, manifests, configs,
index children, referrers (cosign tag fallback: distribution 2.8 has no referrers API)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconcile.adapters.registry import RegistryError
from reconcile.observe.state import MANIFEST_TYPES, OCI_INDEX, OCI_MANIFEST, Platform
from tests.adapters.registry.faults import FaultProxy
from tests.adapters.registry.oci import REVISION, Built, Layout, push, put_tag
from tests.conftest import OpenClient, RunningRegistry, registry_policy

COSIGN_SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"


@dataclass
class Published:
    repository: str
    index: Built
    amd64: Built
    arm64: Built
    build: Built
    signature: Built

    @property
    def sig_tag(self) -> str:
        return self.index.digest.replace(":", "-") + ".sig"


def publish(layout_dir: Path, registry: RunningRegistry, repository: str) -> Published:
    """A multi-arch release, a single-arch build tagged twice, and a cosign signature."""
    layout = Layout(layout_dir)
    amd64 = layout.image(arch="amd64", created="2024-03-01T10:00:00.123456789Z",
                         labels={REVISION: "a" * 40, "team": "web"})
    arm64 = layout.image(arch="arm64", created="2024-03-01T10:05:00Z", labels={REVISION: "a" * 40})
    index = layout.index([(amd64, "amd64"), (arm64, "arm64")])
    build = layout.image(created="2024-02-01T00:00:00Z", labels={REVISION: "b" * 40})
    signature = layout.signature(index.digest)
    published = Published(repository, index, amd64, arm64, build, signature)
    layout.tag(index, "v1.0.0")
    layout.tag(build, "build-1")
    layout.tag(signature, published.sig_tag)
    for tag in ("v1.0.0", "build-1", published.sig_tag):
        push(layout, tag, registry.host, repository, registry.creds)
    put_tag(registry.url, repository, "build-2", build, registry.auth)
    put_tag(registry.url, repository, "latest", index, registry.auth)
    return published


@pytest.fixture(scope="module")
def web(plain_registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> Published:
    return publish(tmp_path_factory.mktemp("web"), plain_registry, f"read-{secrets.token_hex(3)}/web")


def test_catalog_pages_are_followed_and_filtered_by_globs(
        plain_registry: RunningRegistry, web: Published, proxy_factory: Callable[..., FaultProxy],
        open_client: OpenClient, tmp_path: Path) -> None:
    prefix = web.repository.split("/")[0]
    layout = Layout(tmp_path / "few")
    layout.tag(layout.image(), "v1")
    for name in ("api", "worker", "tools/cli"):
        push(layout, "v1", plain_registry.host, f"{prefix}/{name}")
    proxy = proxy_factory(plain_registry.url)
    client = open_client(registry_policy("ci", proxy.url), page_size=1)
    with proxy.recording() as seen:
        names = client.repositories([f"{prefix}/*"])
    assert names == [f"{prefix}/api", f"{prefix}/web", f"{prefix}/worker"]  # '*' stays in one segment
    pages = [r.path for r in seen if r.path.startswith("/v2/_catalog")]
    assert len(pages) >= 4 and pages[0] == "/v2/_catalog?n=1" and all("last=" in p for p in pages[1:])
    assert client.repositories([f"{prefix}/**"])[-1] == f"{prefix}/worker"
    assert f"{prefix}/tools/cli" in client.repositories([f"{prefix}/**"])


def test_tag_pages_follow_link_headers(plain_registry: RunningRegistry, web: Published,
                                       proxy_factory: Callable[..., FaultProxy], open_client: OpenClient) -> None:
    # distribution 2.8 ignores n on tag lists; the proxy paginates its real answer like
    # distribution 3 / Harbor do, so the Link-following path runs against real data.
    proxy = proxy_factory(plain_registry.url, paginate_tags=True)
    client = open_client(registry_policy("ci", proxy.url), page_size=2)
    with proxy.recording() as seen:
        tags = client.tags(web.repository)
    assert sorted(tags) == sorted(["build-1", "build-2", "latest", "v1.0.0", web.sig_tag])
    pages = [r.path for r in seen]
    assert len(pages) == 3 and pages[0].endswith("/tags/list?n=2") and "last=build-2" in pages[1]


def test_a_tag_resolves_by_head_accepting_every_manifest_type(
        plain_registry: RunningRegistry, web: Published, proxy_factory: Callable[..., FaultProxy],
        open_client: OpenClient) -> None:
    proxy = proxy_factory(plain_registry.url)
    client = open_client(registry_policy("ci", proxy.url))
    with proxy.recording() as seen:
        found = client.resolve(web.repository, "v1.0.0")
    assert found is not None
    assert (found.media_type, found.digest, found.size) == (OCI_INDEX, web.index.digest, len(web.index.data))
    (head,) = seen
    assert head.method == "HEAD"
    assert set(head.headers["Accept"].split(", ")) == set(MANIFEST_TYPES)
    assert client.resolve(web.repository, "no-such-tag") is None


def test_manifests_and_configs_give_created_labels_and_platforms(
        plain_registry: RunningRegistry, web: Published, open_client: OpenClient) -> None:
    client = open_client(registry_policy("ci", plain_registry.url))
    manifest = client.manifest(web.repository, "latest")
    assert manifest.data == web.index.data and manifest.digest == web.index.digest
    index = client.image(web.repository, web.index.digest)
    assert index.media_type == OCI_INDEX
    assert [(c.digest, c.platform) for c in index.children] == [
        (web.amd64.digest, Platform("linux", "amd64")), (web.arm64.digest, Platform("linux", "arm64"))]
    amd64 = client.image(web.repository, web.amd64.digest)
    assert amd64.media_type == OCI_MANIFEST
    assert amd64.created == datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert amd64.revision == "a" * 40 and amd64.labels["team"] == "web"


def test_referrers_fall_back_to_cosign_tags(plain_registry: RunningRegistry, web: Published,
                                            proxy_factory: Callable[..., FaultProxy],
                                            open_client: OpenClient) -> None:
    proxy = proxy_factory(plain_registry.url)
    client = open_client(registry_policy("ci", proxy.url))
    with proxy.recording() as seen:
        (signature,) = client.referrers(web.repository, web.index.digest)
        assert client.referrers(web.repository, web.build.digest) == ()
    assert (signature.digest, signature.artifact_type) == (web.signature.digest, COSIGN_SIG)
    # The referrers API is tried once; its 404 (no such route in 2.8) switches to the fallback.
    assert len([r for r in seen if "/referrers/" in r.path]) == 1


def test_a_missing_repository_is_empty(plain_registry: RunningRegistry, open_client: OpenClient) -> None:
    client = open_client(registry_policy("ci", plain_registry.url))
    assert client.tags("nobody/here") == []
    assert client.resolve("nobody/here", "latest") is None
    with pytest.raises(RegistryError, match=r"registry ci, repository nobody/here: get manifest latest: not found"):
        client.manifest("nobody/here", "latest")


def test_without_catalog_only_literal_names_work(plain_registry: RunningRegistry,
                                                 proxy_factory: Callable[..., FaultProxy],
                                                 open_client: OpenClient) -> None:
    proxy = proxy_factory(plain_registry.url)
    proxy.inject(r"^/v2/_catalog", "status", status=404, times=-1)
    client = open_client(registry_policy("hub", proxy.url))
    assert client.repositories(["team-a/web", "team-a/api"]) == ["team-a/api", "team-a/web"]
    with pytest.raises(RegistryError) as error:
        client.repositories(["team-a/*"])
    assert str(error.value) == ("registry hub: list repositories: the registry does not allow listing the catalog "
                                "(_catalog answered HTTP 404, NAME_UNKNOWN): list the repositories explicitly, "
                                "without globs")


def test_the_oci_referrers_api_is_used_where_it_exists(plain_registry: RunningRegistry, web: Published,
                                                       proxy_factory: Callable[..., FaultProxy],
                                                       open_client: OpenClient) -> None:
    # distribution 2.8 has no referrers API: the proxy answers for it, as an OCI 1.1 registry does.
    sbom = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "5" * 64, "size": 321,
            "artifactType": "application/spdx+json"}
    proxy = proxy_factory(plain_registry.url)
    proxy.inject(f"/referrers/{web.index.digest}$", "status", status=200, method="GET", times=-1,
                 headers={"Content-Type": OCI_INDEX},
                 body=json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [sbom]}).encode())
    client = open_client(registry_policy("ci", proxy.url))
    with proxy.recording() as seen:
        (found,) = client.referrers(web.repository, web.index.digest)
    assert (found.digest, found.artifact_type) == (sbom["digest"], "application/spdx+json")
    assert [r.path for r in seen] == [f"/v2/{web.repository}/referrers/{web.index.digest}"]  # no tag listing


def test_forbidden_names_registry_repository_and_operation(plain_registry: RunningRegistry,
                                                           proxy_factory: Callable[..., FaultProxy],
                                                           open_client: OpenClient) -> None:
    proxy = proxy_factory(plain_registry.url)
    proxy.inject(r"/tags/list", "status", status=403)
    client = open_client(registry_policy("ci", proxy.url))
    with pytest.raises(RegistryError) as error:
        client.tags("team-a/web")
    assert str(error.value) == ("registry ci, repository team-a/web: list tags: forbidden: the credentials for "
                                "registry ci do not allow this (DENIED)")
    assert error.value.status == 403
