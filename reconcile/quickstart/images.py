"""Realistic OCI images, built in memory from a seed and written through the registry adapter.

What CI systems push, in miniature: gzip-compressed tar layers (a base layer shared by every
image of a platform, an application layer per build), an image config with ``created``, a
history and OCI labels (``org.opencontainers.image.revision`` among them), multi-platform
indexes, and cosign-style signatures tagged ``sha256-<hex>.sig``. The same seed gives the same
bytes, hence the same digests; nothing here touches a registry except through
:class:`~reconcile.adapters.registry.RegistryClient` (``put_blob``, ``put_manifest``).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import random
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reconcile.adapters.registry import Manifest, RegistryClient
from reconcile.adapters.registry.content import cosign_tag, digest_of
from reconcile.observe.state import OCI_INDEX, OCI_MANIFEST, REVISION_LABEL, Platform

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
COSIGN_PAYLOAD = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE = "dev.cosignproject.cosign/signature"
AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")
_COSIGN_CREATED = "0001-01-01T00:00:00Z"  # what cosign writes as the 'created' of a signature


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def revision_of(seed: str) -> str:
    """A commit-like 40-hex revision for ``seed`` (stands in for the git commit CI built from)."""
    return hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class ImageSpec:
    """One build of an application: who it is, when it was built, from which commit."""

    repository: str  # e.g. team-a/web; the application is its last segment
    version: str  # e.g. 1.3.0 or build-126
    created: datetime
    revision: str  # the commit the image was built from
    source: str = ""  # URL of the source repository, for the org.opencontainers.image.source label
    labels: dict[str, str] = field(default_factory=dict)  # more labels

    @property
    def app(self) -> str:
        return self.repository.rsplit("/", 1)[-1]

    @property
    def seed(self) -> str:
        return f"{self.repository}@{self.version}"


def _json(document: dict[str, Any]) -> bytes:
    # Compact, in a fixed key order: what registries and tools hash is the exact bytes.
    return json.dumps(document, separators=(",", ":")).encode()


def _tar_gz(files: Sequence[tuple[str, bytes, int]], mtime: datetime) -> tuple[bytes, str]:
    """A reproducible gzip'd tar of ``files`` (path, content, mode); and its diff ID (sha256 of the tar)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        directories = sorted({"/".join(path.split("/")[:i]) for path, _, _ in files
                              for i in range(1, path.count("/") + 1)})
        for directory in directories:
            info = tarfile.TarInfo(directory + "/")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(mtime.timestamp())
            tar.addfile(info)
        for path, data, mode in files:
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), mode, int(mtime.timestamp())
            tar.addfile(info, io.BytesIO(data))
    raw = buffer.getvalue()
    return gzip.compress(raw, compresslevel=6, mtime=0), digest_of(raw)


class ImageWriter:
    """Builds images for one repository and writes them through a registry client.

    ``image`` and ``index`` store what a manifest references (blobs, platform manifests) and
    return the manifest; ``tag`` stores the manifest under tags; ``sign`` adds a signature.
    """

    def __init__(self, client: RegistryClient, repository: str, *, registry_host: str = "registry.example.com"
                 ) -> None:
        self.client = client
        self.repository = repository
        self.registry_host = registry_host  # how workloads name the image, for signatures

    # -- blobs and manifests --------------------------------------------------------------------
    def blob(self, data: bytes, media_type: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
        digest = digest_of(data)
        if not self.client.has_blob(self.repository, digest):
            self.client.put_blob(self.repository, digest, len(data), [data])
        descriptor: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(data)}
        if annotations:
            descriptor["annotations"] = annotations
        return descriptor

    def tag(self, manifest: Manifest, *tags: str) -> None:
        for tag in tags:
            stored = self.client.put_manifest(self.repository, tag, manifest)
            if stored != manifest.digest:
                raise RuntimeError(f"{self.repository}:{tag}: the registry stored {stored}, not {manifest.digest}")

    # -- images ---------------------------------------------------------------------------------
    def _base_layer(self, platform: Platform) -> tuple[dict[str, Any], str]:
        """The distroless-like base every image of a platform shares (one blob, many images)."""
        rng = random.Random(f"base/{platform}")
        files = [("etc/os-release", f'NAME="quickstart base"\nID=quickstart\nVERSION_ID=12\n'
                                    f'ARCH={platform.architecture}\n'.encode(), 0o644),
                 ("etc/passwd", b"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532::/home:/sbin/nologin\n",
                  0o644),
                 ("usr/lib/libc.so.6", rng.randbytes(6144), 0o755)]
        data, diff_id = _tar_gz(files, datetime(2024, 1, 1, tzinfo=UTC))
        return self.blob(data, OCI_LAYER_GZIP), diff_id

    def image(self, spec: ImageSpec, platform: Platform = AMD64) -> Manifest:
        """One platform's image of ``spec``: its layers and config are stored, the manifest returned."""
        rng = random.Random(f"{spec.seed}/{platform}")
        base, base_diff = self._base_layer(platform)
        app_files = [(f"app/{spec.app}", rng.randbytes(2048 + rng.randrange(2048)), 0o755),
                     ("app/VERSION", f"{spec.version}\n".encode(), 0o644),
                     ("app/REVISION", f"{spec.revision}\n".encode(), 0o644)]
        app_data, app_diff = _tar_gz(app_files, spec.created)
        app = self.blob(app_data, OCI_LAYER_GZIP)
        created = rfc3339(spec.created)
        labels = {"org.opencontainers.image.title": spec.app,
                  "org.opencontainers.image.version": spec.version,
                  REVISION_LABEL: spec.revision,
                  "org.opencontainers.image.created": created,
                  **({"org.opencontainers.image.source": spec.source} if spec.source else {}),
                  **spec.labels}
        config = {
            "created": created,
            "author": "CI",
            "architecture": platform.architecture,
            "os": platform.os,
            "config": {"User": "65532:65532", "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", f"APP={spec.app}"],
                       "Entrypoint": [f"/app/{spec.app}"], "WorkingDir": "/app", "Labels": labels},
            "rootfs": {"type": "layers", "diff_ids": [base_diff, app_diff]},
            "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "ADD base.tar /",
                         "comment": "quickstart base"},
                        {"created": created, "created_by": f"COPY {spec.app} VERSION REVISION /app/ # buildkit"}],
        }
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": self.blob(_json(config), OCI_CONFIG), "layers": [base, app]}
        return _manifest(manifest, OCI_MANIFEST)

    def index(self, spec: ImageSpec, platforms: Sequence[Platform] = (AMD64, ARM64)) -> Manifest:
        """A multi-platform image: each platform's manifest is stored (by digest), the index returned."""
        entries = []
        for platform in platforms:
            child = self.image(spec, platform)
            self.client.put_manifest(self.repository, child.digest, child)
            entries.append({"mediaType": child.media_type, "digest": child.digest, "size": len(child.data),
                            "platform": {"architecture": platform.architecture, "os": platform.os}})
        document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries,
                    "annotations": {"org.opencontainers.image.created": rfc3339(spec.created),
                                    REVISION_LABEL: spec.revision}}
        return _manifest(document, OCI_INDEX)

    # -- signatures -----------------------------------------------------------------------------
    def sign(self, subject: Manifest, *, signer: str = "ci@example.com") -> Manifest:
        """A signature of ``subject`` as ``cosign sign`` stores it without the referrers API: a
        simple-signing payload layer carrying the signature annotation, tagged
        ``sha256-<hex>.sig``. The signature bytes are a placeholder: nothing can verify them."""
        payload = _json({"critical": {"identity": {"docker-reference": f"{self.registry_host}/{self.repository}"},
                                      "image": {"docker-manifest-digest": subject.digest},
                                      "type": "cosign container image signature"},
                         "optional": {"signer": signer}})
        placeholder = base64.b64encode(hashlib.sha256(b"quickstart-signature\0" + payload).digest()).decode()
        layer = self.blob(payload, COSIGN_PAYLOAD, {COSIGN_SIGNATURE: placeholder})
        config = {"architecture": "", "created": _COSIGN_CREATED, "history": [{"created": _COSIGN_CREATED}],
                  "os": "", "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}, "config": {}}
        document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": self.blob(_json(config), OCI_CONFIG),
                    "layers": [layer]}
        signature = _manifest(document, OCI_MANIFEST)
        self.tag(signature, cosign_tag(subject.digest, "sig"))
        return signature


def _manifest(document: dict[str, Any], media_type: str) -> Manifest:
    data = _json(document)
    return Manifest(digest_of(data), media_type, data)
