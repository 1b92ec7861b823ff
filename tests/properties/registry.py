"""A generated :class:`Blueprint` built for real: OCI images, indexes, cosign-style signatures and
OCI 1.1 artifacts written to an image layout by ``tests/adapters/registry/oci.py`` (not by the code
under test) and pushed to a registry: a tagged manifest with skopeo, its other tags with a plain
PUT, an untagged one (and an index skopeo does not copy: nested, or of artifacts) blob by blob, by
digest."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from urllib.parse import urljoin

import requests

from tests.adapters.registry.oci import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    REVISION,
    Built,
    Layout,
    push,
    put_tag,
)
from tests.properties.strategies import ARCHES, Blueprint, tag_map


def _time(now: datetime, hours: int) -> str:
    return (now - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _image(layout: Layout, arch: str, created: str | None, labels: dict[str, str]) -> Built:
    """An image whose config has ``created`` only when given (Layout.image always writes one)."""
    layer = layout.blob(os.urandom(64), OCI_LAYER)
    config: dict[str, object] = {"architecture": arch, "os": "linux", "config": {"Labels": labels},
                                 "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}
    if created is not None:
        config["created"] = created
    descriptor = layout.blob(json.dumps(config).encode(), OCI_CONFIG)
    return layout.manifest({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor,
                            "layers": [layer]}, OCI_MANIFEST)


def build(layout: Layout, blueprint: Blueprint, now: datetime) -> list[Built]:
    """Every node of the blueprint, in order (children and subjects come first)."""
    built: list[Built] = []
    for n, node in enumerate(blueprint.nodes):
        created = _time(now, node.created) if node.created is not None else None
        if node.kind == "image":
            built.append(_image(layout, ARCHES[n % len(ARCHES)], created,
                                {REVISION: node.revision} if node.revision else {}))
        elif node.kind == "index":
            built.append(layout.index([(built[c], ARCHES[i % len(ARCHES)]) for i, c in enumerate(node.children)],
                                      created=created))
        elif node.kind == "signature":
            assert node.subject is not None
            built.append(layout.signature(built[node.subject].digest))
        elif node.kind == "artifact":
            assert node.subject is not None
            built.append(layout.artifact(built[node.subject], f"application/vnd.test.sbom-{n}+json"))
        else:  # the OCI 1.1 referrers tag schema: an index of the subject's artifacts
            listing = [{**built[c].descriptor, "artifactType": json.loads(built[c].data).get("artifactType")}
                       for c in node.children]
            built.append(layout.manifest({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": listing},
                                         OCI_INDEX))
    return built


def _put_blob(base: str, repository: str, layout: Layout, descriptor: dict[str, object]) -> None:
    digest = str(descriptor["digest"])
    if requests.head(f"{base}/v2/{repository}/blobs/{digest}", timeout=30).status_code == 200:
        return
    data = (layout.path / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()
    started = requests.post(f"{base}/v2/{repository}/blobs/uploads/", timeout=30)
    assert started.status_code == 202, started.text
    location = urljoin(base, started.headers["Location"])
    done = requests.put(f"{location}{'&' if '?' in location else '?'}digest={digest}", data=data, timeout=30,
                        headers={"Content-Type": "application/octet-stream"})
    assert done.status_code == 201, done.text


def _put_manifest(base: str, repository: str, layout: Layout, built: Built, reference: str) -> None:
    document = json.loads(built.data)
    for descriptor in [document.get("config"), *document.get("layers", [])]:
        if descriptor:
            _put_blob(base, repository, layout, descriptor)
    response = requests.put(f"{base}/v2/{repository}/manifests/{reference}", data=built.data, timeout=30,
                            headers={"Content-Type": built.media_type})
    assert response.status_code == 201, response.text


def push_all(layout: Layout, blueprint: Blueprint, built: list[Built], base: str, host: str,
             repository: str) -> dict[str, int]:
    """Push every node in order; returns the tags as pushed (tag -> node)."""
    names = tag_map(blueprint, lambda n: built[n].digest)
    by_node: dict[int, list[str]] = {}
    for tag, n in sorted(names.items()):
        by_node.setdefault(n, []).append(tag)
    for n, node in enumerate(blueprint.nodes):
        tags = by_node.get(n, [])
        # skopeo copies an index only of images (not of indexes, nor the referrers schema's of artifacts)
        skopeo = node.kind != "referrers" and all(blueprint.nodes[c].kind == "image" for c in node.children)
        if tags and skopeo:
            layout.tag(built[n], tags[0])
            push(layout, tags[0], host, repository)
        else:
            _put_manifest(base, repository, layout, built[n], tags[0] if tags else built[n].digest)
        for tag in tags[1:]:
            put_tag(base, repository, tag, built[n])
    return names

