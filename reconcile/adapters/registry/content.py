"""Content: digests, verified streams, and manifests/configs parsed into the observed-state types.
Shared by the registry and image-layout clients; no I/O here."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from reconcile.adapters.registry.errors import DigestMismatch, RegistryError
from reconcile.observe.state import (
    CREATED_ANNOTATION,
    DOCKER_MANIFEST,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Image,
    Platform,
)
from reconcile.policy.model import Limits

# Anchored with \Z, not $: "$" also matches before a final newline ("v1\n" is no tag).
DIGEST = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})\Z")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
# The distribution spec's repository name grammar: no '..', no leading '/', nothing a path
# could escape with.
REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*\Z")

MAX_MANIFEST_BYTES = Limits.manifest_bytes  # the defaults; a Registry's spec.limits may set others
MAX_CONFIG_BYTES = Limits.config_bytes
CHUNK = 1024 * 1024

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
IMAGE_CONFIG_TYPES = (OCI_CONFIG, DOCKER_CONFIG)
ACCEPT_MANIFESTS = ", ".join(MANIFEST_TYPES)

# Cosign's tag convention for artifacts of a digest (sha256-<hex>.sig/.att/.sbom), and the
# artifact types cosign itself gives them in OCI 1.1 mode.
COSIGN_SUFFIXES = ("sig", "att", "sbom")
COSIGN_ARTIFACT_TYPES = {s: f"application/vnd.dev.cosign.artifact.{s}.v1+json" for s in COSIGN_SUFFIXES}


@dataclass(frozen=True)
class Manifest:
    """A manifest exactly as stored: its bytes are what the digest is of."""

    digest: str
    media_type: str
    data: bytes

    def json(self) -> dict[str, Any]:
        document = json.loads(self.data)
        if not isinstance(document, dict):
            raise ValueError("a manifest is a JSON object")
        return document

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.data))


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def is_digest(reference: str) -> bool:
    return DIGEST.match(reference) is not None


def check_digest(digest: str) -> str:
    if not is_digest(digest):
        raise ValueError(f"not a sha256/sha512 digest: {digest!r}")
    return digest


def verify(data: bytes, digest: str, registry: str, repository: str | None, operation: str) -> bytes:
    """``data`` if it hashes to ``digest``; else :class:`DigestMismatch`."""
    actual = digest_of(data, digest.partition(":")[0])
    if actual != digest:
        raise DigestMismatch(registry, repository, operation, digest, actual)
    return data


def verified_chunks(chunks: Iterable[bytes], digest: str, size: int | None, *, registry: str,
                    repository: str | None, operation: str) -> Iterator[bytes]:
    """Pass ``chunks`` through, hashing them; raise :class:`DigestMismatch` before the last chunk
    is handed on if the content is not ``digest`` (or not ``size`` bytes long).

    Holding the last chunk back means a consumer that uploads as it reads never completes an
    upload of wrong content: the error interrupts the body before its end.
    """
    hasher = hashlib.new(digest.partition(":")[0])
    seen = 0
    held: bytes | None = None
    for chunk in chunks:
        if not chunk:
            continue
        seen += len(chunk)
        if size is not None and seen > size:
            raise DigestMismatch(registry, repository, operation, digest,
                                 f"more than the {size} bytes its descriptor declares")
        hasher.update(chunk)
        if held is not None:
            yield held
        held = chunk
    actual = f"{digest.partition(':')[0]}:{hasher.hexdigest()}"
    if actual != digest or (size is not None and seen != size):
        raise DigestMismatch(registry, repository, operation, digest,
                             actual if actual != digest else f"{seen} bytes instead of {size}")
    if held is not None:
        yield held


def media_type_of(data: bytes, declared: str | None) -> str:
    """A manifest's media type: its own ``mediaType`` field, else what the server declared."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        document = None
    own = document.get("mediaType") if isinstance(document, dict) else None
    if isinstance(own, str) and own:
        return own
    if declared:
        return declared.split(";")[0].strip()
    if isinstance(document, dict) and "manifests" in document:
        return OCI_INDEX
    return OCI_MANIFEST


def declares_media_type(data: bytes) -> bool:
    """Whether a manifest names its own media type (so it can be cached without its headers)."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return False
    return isinstance(document, dict) and isinstance(document.get("mediaType"), str)


def descriptor(raw: Mapping[str, Any]) -> Descriptor:
    """A :class:`Descriptor` from its JSON form."""
    platform = raw.get("platform")
    annotations = raw.get("annotations")
    return Descriptor(
        media_type=str(raw.get("mediaType", "")), digest=check_digest(str(raw.get("digest", ""))),
        size=int(raw.get("size", 0)),
        platform=Platform(str(platform.get("os", "")), str(platform.get("architecture", "")),
                          platform.get("variant")) if isinstance(platform, dict) else None,
        artifact_type=raw.get("artifactType") if isinstance(raw.get("artifactType"), str) else None,
        annotations=MappingProxyType({str(k): str(v) for k, v in annotations.items()})
        if isinstance(annotations, dict) else MappingProxyType({}))


def descriptor_json(d: Descriptor) -> dict[str, Any]:
    """The JSON form of ``d`` (for index.json entries)."""
    raw: dict[str, Any] = {"mediaType": d.media_type, "digest": d.digest, "size": d.size}
    if d.platform is not None:
        raw["platform"] = {"os": d.platform.os, "architecture": d.platform.architecture,
                           **({"variant": d.platform.variant} if d.platform.variant else {})}
    if d.artifact_type:
        raw["artifactType"] = d.artifact_type
    if d.annotations:
        raw["annotations"] = dict(d.annotations)
    return raw


def children(manifest: Manifest) -> tuple[Descriptor, ...]:
    """The manifests an index lists."""
    if manifest.media_type not in INDEX_TYPES:
        return ()
    return tuple(descriptor(raw) for raw in manifest.json().get("manifests") or ())


def blobs(manifest: Manifest) -> tuple[Descriptor, ...]:
    """The config and layers an image manifest references (an index references none)."""
    if manifest.media_type in INDEX_TYPES:
        return ()
    document = manifest.json()
    config = document.get("config")
    layers = document.get("layers") or ()
    found = [descriptor(config)] if isinstance(config, dict) else []
    # Foreign layers (with 'urls') live outside the registry and are never pushed.
    found += [descriptor(layer) for layer in layers if isinstance(layer, dict) and not layer.get("urls")]
    return tuple(found)


def config_descriptor(manifest: Manifest) -> Descriptor | None:
    """The image config to read for created/labels, or ``None`` (an index, an artifact)."""
    if manifest.media_type not in (OCI_MANIFEST, DOCKER_MANIFEST):
        return None
    config = manifest.json().get("config")
    if not isinstance(config, dict) or config.get("mediaType") not in IMAGE_CONFIG_TYPES:
        return None
    return descriptor(config)


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    # Go writes nanoseconds; Python takes up to microseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def image(manifest: Manifest, config: bytes | None) -> Image:
    """What the planner needs to know about ``manifest`` (and its config, for an image)."""
    document = manifest.json()
    annotations = document.get("annotations")
    if not isinstance(annotations, dict):
        annotations = {}
    created = parse_time(annotations.get(CREATED_ANNOTATION))
    labels: dict[str, str] = {}
    if config is not None:
        try:
            parsed = json.loads(config)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, dict):
            created = parse_time(parsed.get("created")) or created
            section = parsed.get("config")
            raw = section.get("Labels") if isinstance(section, dict) else None
            labels = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
    subject = document.get("subject")
    artifact_type = document.get("artifactType")
    if not isinstance(artifact_type, str):
        config_type = (document.get("config") or {}).get("mediaType") if isinstance(document.get("config"), dict) \
            else None
        artifact_type = config_type if isinstance(config_type, str) and config_type not in IMAGE_CONFIG_TYPES \
            else None
    return Image(
        digest=manifest.digest, media_type=manifest.media_type, created=created,
        labels=MappingProxyType(labels), children=children(manifest),
        subject=subject.get("digest") if isinstance(subject, dict) else None, artifact_type=artifact_type)


def cosign_tag(subject: str, suffix: str) -> str:
    algorithm, _, hexdigest = subject.partition(":")
    return f"{algorithm}-{hexdigest}.{suffix}"


def referrers_tag(subject: str) -> str:
    """The OCI 1.1 referrers tag schema: an index of a digest's referrers, for registries
    without the referrers API."""
    return subject.replace(":", "-")


def fallback_referrers(subject: str, tags: Mapping[str, Descriptor]) -> list[Descriptor]:
    """Referrers of ``subject`` found by cosign's tag convention, given the repository's tags."""
    found = []
    for suffix in COSIGN_SUFFIXES:
        tagged = tags.get(cosign_tag(subject, suffix))
        if tagged is not None:
            found.append(Descriptor(tagged.media_type, tagged.digest, tagged.size,
                                    artifact_type=COSIGN_ARTIFACT_TYPES[suffix]))
    return found


def cosign_suffix(artifact_type: str | None) -> str | None:
    return next((s for s, t in COSIGN_ARTIFACT_TYPES.items() if t == artifact_type), None)


def read_limited(chunks: Iterable[bytes], limit: int, *, registry: str, repository: str | None,
                 operation: str, setting: str | None = None) -> bytes:
    """All of ``chunks``, refusing more than ``limit`` bytes (a hostile server's endless body);
    ``setting`` names the limit (``limits.configBytes``) in the message."""
    parts: list[bytes] = []
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            named = f" ({setting})" if setting else ""
            raise RegistryError(registry, repository, operation, f"larger than the {limit} bytes allowed{named}")
        parts.append(chunk)
    return b"".join(parts)


def glob_pattern(patterns: Iterable[str]) -> re.Pattern[str]:
    """One regex for repository globs: ``*`` and ``?`` stay within a path segment, ``**``
    crosses segments (``team-a/*`` is not ``team-a/web/cache``; ``team-a/**`` is)."""
    alternatives = []
    for pattern in patterns:
        parts = re.split(r"(\*\*/?|\*|\?)", pattern)
        translated = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
        alternatives.append("".join(translated.get(part, re.escape(part)) for part in parts))
    return re.compile("^(?:" + "|".join(alternatives or ["(?!)"]) + ")$")


def is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?")
