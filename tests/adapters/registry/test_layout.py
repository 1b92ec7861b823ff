"""OCI image-layout directories behind the same interface: read, observe, copy both ways with a
real registry (skopeo as the witness), delete, and damaged content."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import pytest

from reconcile.adapters.registry import (
    CannotUntag,
    DeletionDisabled,
    DigestMismatch,
    LayoutClient,
    copy_image,
    open_registry,
)
from reconcile.adapters.registry.client import Listed
from reconcile.observe.repositories import observe_repository
from reconcile.observe.state import OCI_INDEX
from reconcile.policy.model import Registry
from tests.adapters.registry.oci import REVISION, Built, Layout, raw_digest
from tests.conftest import OpenClient, RunningRegistry, registry_policy

SBOM = "application/spdx+json"
COSIGN_SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"


def layout_policy(root: Path, name: str = "offline") -> Registry:
    return Registry(name=name, url=f"oci-layout:{root}", credentials=None, allowed_hosts=(),
                    timeout=timedelta(seconds=10))


@dataclass
class Offline:
    root: Path
    repository: str
    index: Built
    amd64: Built
    signature: Built
    sbom: Built


@pytest.fixture
def offline(tmp_path: Path) -> Offline:
    """``ROOT/team/web``: an index tagged v2 and stable, a cosign signature tag, an OCI 1.1 SBOM
    kept as an untagged root of index.json."""
    root = tmp_path / "airgap"
    layout = Layout(root / "team" / "web")
    amd64 = layout.image(arch="amd64", labels={REVISION: "d" * 40}, created="2024-05-06T07:08:09Z")
    arm64 = layout.image(arch="arm64", labels={REVISION: "d" * 40})
    index = layout.index([(amd64, "amd64"), (arm64, "arm64")], created="2024-05-06T07:10:00Z")
    signature = layout.signature(index.digest)
    sbom = layout.artifact(index, SBOM)
    layout.tag(index, "v2")
    layout.tag(index, "stable")
    layout.tag(signature, index.digest.replace(":", "-") + ".sig")
    layout.root(sbom)
    Layout(root / "team" / "api")  # an empty repository
    return Offline(root, "team/web", index, amd64, signature, sbom)


def test_a_layout_reads_like_a_registry(offline: Offline) -> None:
    client = open_registry(layout_policy(offline.root), None)
    assert isinstance(client, LayoutClient)
    client.ping()
    assert client.repositories(["team/*"]) == ["team/api", "team/web"]
    assert client.tags("team/api") == [] and client.tags("team/nothing") == []
    found = client.resolve("team/web", "v2")
    assert found is not None and (found.digest, found.media_type) == (offline.index.digest, OCI_INDEX)
    assert client.manifest("team/web", "stable").data == offline.index.data

    state = observe_repository(client, "team/web")
    assert set(state.tags) == {"v2", "stable", offline.index.digest.replace(":", "-") + ".sig"}
    assert state.images[offline.amd64.digest].revision == "d" * 40
    assert state.images[offline.index.digest].created is not None
    assert {(r.digest, r.artifact_type) for r in state.referrers[offline.index.digest]} == {
        (offline.signature.digest, COSIGN_SIG), (offline.sbom.digest, SBOM)}
    assert state.images[offline.sbom.digest].subject == offline.index.digest
    assert (state.can_delete_tags, state.can_delete) == (True, True)  # a layout's default: deletion: tag


def test_layout_to_registry_and_back(offline: Offline, plain_registry: RunningRegistry, open_client: OpenClient,
                                     repo: str, tmp_path: Path) -> None:
    layout = open_client(layout_policy(offline.root))
    registry = open_client(registry_policy("ci", plain_registry.url))

    up = copy_image(layout, "team/web", offline.index.digest, registry, repo, ["v2"])
    assert set(up.referrers) == {offline.signature.digest, offline.sbom.digest}
    assert raw_digest(f"docker://{plain_registry.host}/{repo}:v2") == offline.index.digest
    # distribution 2.8 has no referrers API: the SBOM is found through the referrers tag schema.
    referrers_tag = offline.index.digest.replace(":", "-")
    assert {d.digest for d in registry.referrers(repo, offline.index.digest)} == {
        offline.signature.digest, offline.sbom.digest}
    assert registry.resolve(repo, referrers_tag) is not None

    back_root = tmp_path / "back"
    back = open_client(layout_policy(back_root, "usb"))
    down = copy_image(registry, repo, offline.index.digest, back, "mirror/web", ["v2", "stable"])
    assert down.manifests_copied == 5  # index, 2 platforms, signature, SBOM
    for tag in ("v2", "stable"):
        assert raw_digest(f"oci:{back_root / 'mirror' / 'web'}:{tag}") == offline.index.digest
    index = json.loads((back_root / "mirror" / "web" / "index.json").read_text())
    tagged = {e["annotations"]["org.opencontainers.image.ref.name"]: e["digest"]
              for e in index["manifests"] if "annotations" in e}
    assert tagged["v2"] == tagged["stable"] == offline.index.digest
    # Children were adopted by their index: the only untagged roots are referrers with a subject.
    assert [e["digest"] for e in index["manifests"] if "annotations" not in e] == [offline.sbom.digest]
    assert {d.digest for d in back.referrers("mirror/web", offline.index.digest)} == {
        offline.signature.digest, offline.sbom.digest}


def test_deleting_in_a_layout(offline: Offline) -> None:
    client = open_registry(layout_policy(offline.root), None)
    client.delete_tag("team/web", "stable")
    assert client.resolve("team/web", "stable") is None and client.resolve("team/web", "v2") is not None
    assert client.delete_manifest("team/web", offline.signature.digest) is True
    assert client.tags("team/web") == ["v2"]  # the signature's tag went with its digest
    assert client.resolve("team/web", offline.signature.digest) is None
    assert client.delete_manifest("team/web", offline.signature.digest) is False
    assert isinstance(client, LayoutClient)
    assert client.garbage_collect("team/web") == 2  # the signature's config and payload
    assert raw_digest(f"oci:{offline.root / 'team' / 'web'}:v2") == offline.index.digest  # still a valid layout


def test_a_layout_honours_a_declared_deletion(offline: Offline) -> None:
    by_digest = open_registry(replace(layout_policy(offline.root), deletion="manifest"), None)
    assert observe_repository(by_digest, "team/web").can_delete_tags is False
    with pytest.raises(CannotUntag) as untag:
        by_digest.delete_tag("team/web", "stable")
    assert untag.value.tags == ("stable", "v2") and untag.value.digest == offline.index.digest
    frozen = open_registry(replace(layout_policy(offline.root), deletion="none"), None)
    assert observe_repository(frozen, "team/web").can_delete is False
    with pytest.raises(DeletionDisabled, match="Registry offline declares deletion: none"):
        frozen.delete_manifest("team/web", offline.signature.digest)
    with pytest.raises(DeletionDisabled):
        frozen.delete_tag("team/web", "stable")
    assert sorted(frozen.tags("team/web")) == sorted(["stable", "v2", offline.index.digest.replace(":", "-") + ".sig"])


def test_damaged_content_in_a_layout_is_an_error(offline: Offline, tmp_path: Path) -> None:
    layer = json.loads(offline.amd64.data)["layers"][0]["digest"]
    path = offline.root / "team" / "web" / "blobs" / "sha256" / layer.split(":")[1]
    path.write_bytes(b"X" + path.read_bytes()[1:])
    source = open_registry(layout_policy(offline.root), None)
    dest = open_registry(layout_policy(tmp_path / "dest", "dest"), None)
    with pytest.raises(DigestMismatch, match=f"get blob {layer}: content does not match its digest"):
        copy_image(source, "team/web", offline.index.digest, dest, "web", ["v2"])
    assert not (tmp_path / "dest" / "web" / "blobs" / "sha256" / layer.split(":")[1]).exists()
    assert dest.tags("web") == []


def test_concurrent_writers_lose_no_tag(offline: Offline) -> None:
    client = open_registry(layout_policy(offline.root), None)
    manifest = client.manifest("team/web", "v2")
    threads = [threading.Thread(target=client.put_manifest, args=("team/web", f"t{i}", manifest)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {f"t{i}" for i in range(16)} <= set(client.tags("team/web"))


def test_repository_names_cannot_escape_the_layout(offline: Offline) -> None:
    client = open_registry(layout_policy(offline.root / "team"), None)
    for name in ("../team/web", "/etc", "web/../../x", "Web"):
        with pytest.raises(ValueError, match="not a valid repository name"):
            client.tags(name)


def test_untagged_roots_of_index_json_are_the_untagged_manifests(offline: Offline) -> None:
    client = open_registry(layout_policy(offline.root), None)
    assert isinstance(client, LayoutClient)
    # The fixture's only untagged root is the SBOM, a referrer: no untagged manifest, nothing more read.
    assert client.list_tags("team/web") == Listed(None, frozenset())
    assert observe_repository(client, "team/web").untagged == frozenset()
    assert client.list_tags("team/nothing") is None

    layout = Layout(offline.root / "team" / "web")
    layout.entries = json.loads((offline.root / "team" / "web" / "index.json").read_text())["manifests"]
    lone = layout.image(created="2024-05-07T00:00:00Z")
    amd64, arm64 = layout.image(arch="amd64"), layout.image(arch="arm64")
    index = layout.index([(amd64, "amd64"), (arm64, "arm64")])
    also_tagged = layout.image(created="2024-05-08T00:00:00Z")
    nested = layout.image(arch="s390x")
    outer = layout.index([(layout.index([(nested, "s390x")]), "s390x")])
    for built in (lone, index, amd64, arm64, also_tagged, outer, nested):  # roots without a tag
        layout.root(built)
    layout.tag(also_tagged, "v3")
    layout.entries.append({**lone.descriptor, "annotations": {"org.opencontainers.image.ref.name": "-bad tag"}})
    layout.save()

    listed = client.list_tags("team/web")
    assert listed is not None and listed.tags is None and dict(listed.pushed) == {}
    # Not: the platform manifests of a root index (at any depth), a tagged digest, the SBOM (a referrer).
    assert listed.untagged == {lone.digest, index.digest, outer.digest}
    state = observe_repository(client, "team/web")
    assert state.untagged == {lone.digest, index.digest, outer.digest}
    assert {amd64.digest, arm64.digest, nested.digest, lone.digest} <= state.images.keys()
    assert "v3" in state.tags and dict(state.pushed) == {}
