"""Building real OCI images into an image layout, and pushing them with skopeo, independently
of the client under test."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
COSIGN_LAYER = "application/vnd.dev.cosign.simplesigning.v1+json"
REVISION = "org.opencontainers.image.revision"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Built:
    """An image (or index) written to a layout: its manifest descriptor and bytes."""

    descriptor: dict[str, Any]
    data: bytes

    @property
    def digest(self) -> str:
        return str(self.descriptor["digest"])

    @property
    def media_type(self) -> str:
        return str(self.descriptor["mediaType"])


class Layout:
    """An OCI image layout written by hand (not by the code under test)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self.entries: list[dict[str, Any]] = []
        self.save()

    def blob(self, data: bytes, media_type: str) -> dict[str, Any]:
        digest = sha256(data)
        (self.path / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def big_blob(self, size: int, media_type: str = OCI_LAYER, seed: int = 0) -> dict[str, Any]:
        """A random blob of ``size`` bytes, generated and hashed in 1 MiB pieces, never whole."""
        rng = random.Random(seed)
        hasher = hashlib.sha256()
        temporary = self.path / "blobs" / "sha256" / ".big"
        with temporary.open("wb") as handle:
            left = size
            while left:
                piece = rng.randbytes(min(left, 1 << 20))
                hasher.update(piece)
                handle.write(piece)
                left -= len(piece)
        temporary.rename(temporary.with_name(hasher.hexdigest()))
        return {"mediaType": media_type, "digest": "sha256:" + hasher.hexdigest(), "size": size}

    def manifest(self, document: dict[str, Any], media_type: str) -> Built:
        data = json.dumps(document, indent=1).encode()
        return Built(self.blob(data, media_type), data)

    def image(self, *, arch: str = "amd64", created: str = "2024-01-02T03:04:05Z",
              labels: dict[str, str] | None = None, layer_sizes: tuple[int, ...] = (512,),
              layers: list[dict[str, Any]] | None = None, seed: int | None = None) -> Built:
        rng = random.Random(seed)
        layers = list(layers or []) + [self.blob(rng.randbytes(size) if seed is not None else os.urandom(size),
                                                 OCI_LAYER) for size in layer_sizes]
        config = {"created": created, "architecture": arch, "os": "linux",
                  "config": {"Labels": labels or {}},
                  "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]}}
        config_descriptor = self.blob(json.dumps(config).encode(), OCI_CONFIG)
        return self.manifest({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_descriptor,
                              "layers": layers}, OCI_MANIFEST)

    def index(self, images: list[tuple[Built, str]], created: str | None = None) -> Built:
        manifests = [{**image.descriptor, "platform": {"os": "linux", "architecture": arch}}
                     for image, arch in images]
        document: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        if created:
            document["annotations"] = {"org.opencontainers.image.created": created}
        return self.manifest(document, OCI_INDEX)

    def signature(self, subject: str) -> Built:
        """A cosign-style signature: simple-signing payload layer with a signature annotation."""
        payload = json.dumps({"critical": {"identity": {"docker-reference": "example/web"},
                                           "image": {"docker-manifest-digest": subject},
                                           "type": "cosign container image signature"}}).encode()
        layer = {**self.blob(payload, COSIGN_LAYER),
                 "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQDfake" + subject[-8:]}}
        config = self.blob(json.dumps({"architecture": "", "os": "", "config": {},
                                       "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}).encode(),
                           OCI_CONFIG)
        return self.manifest({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
                              "layers": [layer]}, OCI_MANIFEST)

    def artifact(self, subject: Built, artifact_type: str = "application/spdx+json") -> Built:
        """An OCI 1.1 artifact (e.g. an SBOM) whose ``subject`` is ``subject``."""
        empty = self.blob(b"{}", "application/vnd.oci.empty.v1+json")
        layer = self.blob(b'{"spdxVersion": "SPDX-2.3"}', artifact_type)
        return self.manifest({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
                              "config": empty, "layers": [layer],
                              "subject": {"mediaType": subject.media_type, "digest": subject.digest,
                                          "size": subject.descriptor["size"]}}, OCI_MANIFEST)

    def tag(self, built: Built, tag: str) -> None:
        self.entries = [e for e in self.entries
                        if e.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag]
        self.entries.append({**built.descriptor, "annotations": {"org.opencontainers.image.ref.name": tag}})
        self.save()

    def root(self, built: Built) -> None:
        """An untagged entry of index.json (how a layout keeps e.g. a referrer reachable)."""
        self.entries.append(dict(built.descriptor))
        self.save()

    def save(self) -> None:
        (self.path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": self.entries}))


def skopeo(*args: str) -> str:
    run = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"skopeo {' '.join(args)} failed: {run.stderr}"
    return run.stdout


def push(layout: Layout, tag: str, host: str, repository: str, creds: str | None = None) -> None:
    """``skopeo copy`` a tag of the layout to a registry, digests preserved."""
    skopeo("copy", "-q", "--all", "--preserve-digests", "--dest-tls-verify=false",
           *(["--dest-creds", creds] if creds else []),
           f"oci:{layout.path}:{tag}", f"docker://{host}/{repository}:{tag}")


def raw_digest(reference: str, creds: str | None = None) -> str:
    """sha256 of the manifest bytes skopeo reads for ``reference`` (docker://... or oci:...)."""
    args = ["inspect", "--raw"]
    if reference.startswith("docker://"):
        args.append("--tls-verify=false")
        if creds:
            args += ["--creds", creds]
    run = subprocess.run(["skopeo", *args, reference], capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr.decode()
    return sha256(run.stdout)


def put_tag(base_url: str, repository: str, tag: str, built: Built, auth: tuple[str, str] | None = None) -> None:
    """Tag an already pushed manifest with a plain PUT (cheaper than one skopeo run per tag)."""
    response = requests.put(f"{base_url}/v2/{repository}/manifests/{tag}", data=built.data, auth=auth,
                            headers={"Content-Type": built.media_type}, timeout=30)
    assert response.status_code == 201, response.text
