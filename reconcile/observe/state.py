"""Observed state: what the adapters report about registries and clusters, as plain immutable
data. The planner reads only these types, never an adapter, so its rules are testable with
tables of hand-written observations."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Literal

# Media types (OCI image spec v1.1, Docker image manifest v2 schema 2).
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)

REVISION_LABEL = "org.opencontainers.image.revision"
CREATED_ANNOTATION = "org.opencontainers.image.created"


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a tag or an index entry points at."""

    media_type: str
    digest: str  # sha256:<64 hex>
    size: int
    platform: Platform | None = None
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Image:
    """What a manifest digest is: immutable, so adapters cache it on disk by digest."""

    digest: str
    media_type: str
    created: datetime | None  # config 'created' (or the index's created annotation)
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    children: tuple[Descriptor, ...] = ()  # platform manifests of an index
    subject: str | None = None  # the digest this artifact refers to (OCI 1.1 referrers)
    artifact_type: str | None = None

    @property
    def revision(self) -> str | None:
        return self.labels.get(REVISION_LABEL)


@dataclass(frozen=True)
class RepositoryState:
    """One repository as observed: every tag and what it points at, images by digest, and the
    referrers (signatures, SBOMs, attestations) of each digest."""

    registry: str  # Registry policy name
    repository: str
    tags: Mapping[str, Descriptor]
    images: Mapping[str, Image]  # digest -> Image, for every tagged digest and index child
    referrers: Mapping[str, tuple[Descriptor, ...]] = field(default_factory=lambda: MappingProxyType({}))
    # How the registry deletes, from its Registry policy's ``deletion`` (declared, never probed):
    can_delete_tags: bool = False  # deletion: tag (OCI 1.1 DELETE of a tag); else only a digest can go
    can_delete: bool = True  # False for deletion: none: nothing can be deleted, not even a digest

    def tags_of(self, digest: str) -> tuple[str, ...]:
        """Every tag on ``digest``: deleting the digest removes all of them."""
        return tuple(sorted(tag for tag, d in self.tags.items() if d.digest == digest))


@dataclass(frozen=True)
class ImageReference:
    """An image reference normalised the way container runtimes do: ``nginx`` is
    ``docker.io/library/nginx:latest``; a digest, when present, is what runs."""

    registry: str  # host[:port], e.g. docker.io, 127.0.0.1:5000
    repository: str  # e.g. library/nginx, team-a/web
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


UsageState = Literal["running", "rollback"]


@dataclass(frozen=True)
class Usage:
    """Where an image is used in a cluster, and whether it runs or is only kept for rollback."""

    cluster: str  # Cluster policy name
    namespace: str
    kind: str  # Pod, Deployment, ReplicaSet, StatefulSet, ControllerRevision, DaemonSet, Job, CronJob
    name: str
    container: str
    state: UsageState


@dataclass(frozen=True)
class ClusterState:
    """Every image a cluster uses, by normalised reference, with where and how."""

    cluster: str
    images: Mapping[ImageReference, tuple[Usage, ...]]

    def digests(self) -> frozenset[str]:
        return frozenset(ref.digest for ref in self.images if ref.digest)


@dataclass(frozen=True)
class DeployHealth:
    """What a DeployPolicy's workload is set to now, and whether its rollout is complete."""

    digest: str | None
    healthy: bool
    detail: str = ""


@dataclass(frozen=True)
class RetentionObservation:
    """What one RetentionPolicy's decision needs, each part either observed or why not."""

    repositories: tuple[RepositoryState, ...] | str
    git_commits: Mapping[int, frozenset[str] | str] = field(default_factory=dict)


@dataclass(frozen=True)
class Observation:
    """Everything a plan is decided on, as observed: each source either read or why not."""

    observed_at: str
    clusters: Mapping[str, ClusterState | str]
    retention: Mapping[str, RetentionObservation]
    promotion: Mapping[str, Mapping[str, RepositoryState | str]] = field(default_factory=dict)  # policy -> stage
    health: Mapping[str, DeployHealth | str] = field(default_factory=dict)  # DeployPolicy -> health, or why not
    written: Mapping[str, DeployHealth | str] = field(default_factory=dict)  # manifests DeployPolicy -> image
