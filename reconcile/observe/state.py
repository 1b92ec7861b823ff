"""Observed state: what the adapters report about registries and clusters, as plain immutable
data. The planner reads only these types, never an adapter, so its rules are testable with
tables of hand-written observations."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from reconcile.plan.actions import Action

# Media types (OCI image spec v1.1, Docker image manifest v2 schema 2).
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)

REVISION_LABEL = "org.opencontainers.image.revision"
CREATED_ANNOTATION = "org.opencontainers.image.created"

# The one empty read-only mapping every descriptor without annotations, image without labels and
# repository without referrers shares (one object, not a dict and a proxy each: it cannot change).
EMPTY: Mapping[str, Any] = MappingProxyType({})


def _share(value: object, name: str, text: str) -> None:
    """One string object for each digest and media type however many descriptors and images name
    it (a tag's descriptor, the image, the index entry: each adapter read makes its own copy)."""
    if type(text) is str:  # (a str subclass keeps its own type)
        object.__setattr__(value, name, sys.intern(text))


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True, slots=True)
class Descriptor:
    """An OCI content descriptor: what a tag or an index entry points at."""

    media_type: str
    digest: str  # sha256:<64 hex>
    size: int
    platform: Platform | None = None
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=lambda: EMPTY)

    def __post_init__(self) -> None:
        _share(self, "media_type", self.media_type)
        _share(self, "digest", self.digest)


@dataclass(frozen=True, slots=True)
class Image:
    """What a manifest digest is: immutable, so adapters cache it on disk by digest."""

    digest: str
    media_type: str
    created: datetime | None  # config 'created' (or the index's created annotation)
    labels: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    children: tuple[Descriptor, ...] = ()  # platform manifests of an index
    subject: str | None = None  # the digest this artifact refers to (OCI 1.1 referrers)
    artifact_type: str | None = None

    def __post_init__(self) -> None:
        _share(self, "digest", self.digest)
        _share(self, "media_type", self.media_type)
        if self.labels and type(self.labels) is MappingProxyType:  # the label names repeat on every image
            object.__setattr__(self, "labels", MappingProxyType(
                {sys.intern(k) if type(k) is str else k: v for k, v in self.labels.items()}))

    @property
    def revision(self) -> str | None:
        return self.labels.get(REVISION_LABEL)


@dataclass(frozen=True, slots=True)
class RepositoryState:
    """One repository as observed: every tag and what it points at, images by digest, and the
    referrers (signatures, SBOMs, attestations) of each digest."""

    registry: str  # Registry policy name
    repository: str
    tags: Mapping[str, Descriptor]
    images: Mapping[str, Image]  # digest -> Image, for every tagged digest and index child
    referrers: Mapping[str, tuple[Descriptor, ...]] = field(default_factory=lambda: EMPTY)
    # How the registry deletes, from its Registry policy's ``deletion`` (declared, never probed):
    can_delete_tags: bool = False  # deletion: tag (OCI 1.1 DELETE of a tag); else only a digest can go
    can_delete: bool = True  # False for deletion: none: nothing can be deleted, not even a digest
    # Manifests the registry lists with no tag (only listing APIs and OCI layouts can say; the
    # Distribution API cannot): digests, each with its Image in ``images``. Empty when unknown.
    untagged: frozenset[str] = frozenset()
    # digest -> when the registry says it was pushed to this repository (ECR imagePushedAt, Harbor
    # push_time): per repository, so not part of the digest-cached Image. Absent when not said.
    pushed: Mapping[str, datetime] = field(default_factory=lambda: EMPTY)
    # digest -> its tags, sorted: built by the first tags_of (a scan of every tag), so asking for each
    # digest of a repository is linear in its tags, not quadratic. Not data: no part of eq or repr.
    _tags_by_digest: dict[str, tuple[str, ...]] | None = field(default=None, init=False, repr=False, compare=False)

    def tags_of(self, digest: str) -> tuple[str, ...]:
        """Every tag on ``digest``: deleting the digest removes all of them."""
        index = self._tags_by_digest
        if index is None:
            grouped: dict[str, list[str]] = {}
            for tag, descriptor in self.tags.items():
                grouped.setdefault(descriptor.digest, []).append(tag)
            index = {d: tuple(sorted(tags)) for d, tags in grouped.items()}
            object.__setattr__(self, "_tags_by_digest", index)  # a cache of what the tags say, computed once
        return index.get(digest, ())


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Usage:
    """Where an image is used in a cluster, and whether it runs or is only kept for rollback."""

    cluster: str  # Cluster policy name
    namespace: str
    kind: str  # Pod, Deployment, ReplicaSet, StatefulSet, ControllerRevision, DaemonSet, Job, CronJob
    name: str
    container: str
    state: UsageState


@dataclass(frozen=True, slots=True)
class ClusterState:
    """Every image a cluster uses, by normalised reference, with where and how."""

    cluster: str
    images: Mapping[ImageReference, tuple[Usage, ...]]

    def digests(self) -> frozenset[str]:
        return frozenset(ref.digest for ref in self.images if ref.digest)


@dataclass(frozen=True, slots=True)
class DeployHealth:
    """What a DeployPolicy's workload is set to now, and whether its rollout is complete."""

    digest: str | None
    healthy: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PlannedRepository:
    """A RetentionPolicy's repository planned as soon as it was observed, its state then dropped
    (``reconcile.plan.stream``): what is left of it is its name, the hash of its tags (its part of
    the plan's fingerprint) and the planner's actions and warnings for it (none when the policy is
    not planned, or its protecting sources could not be read)."""

    registry: str  # Registry policy name
    repository: str
    tags_hash: str  # reconcile.plan.tags_hash of the RepositoryState
    actions: tuple[Action, ...] = ()
    warnings: tuple[tuple[int, str], ...] = ()  # (keep rule index, warning)
    planned: bool = False  # its actions were planned (its policy's protecting sources were all read)


@dataclass(frozen=True, slots=True)
class RefHistory:
    """One branch or tag of a gitRefs source repository, as its rule's limit and count read it."""

    ref: str  # full name: refs/heads/main, refs/tags/v1.2.0
    created: int  # Unix seconds: an annotated tag's tagger date, else its commit's committer date (werf's)
    commits: tuple[tuple[str, int], ...]  # (full SHA, committer Unix seconds), newest first as git rev-list walks
    truncated: bool = False  # the walk stopped at its depth: older commits of the ref were not read


@dataclass(frozen=True, slots=True)
class GitHistories:
    """A gitRefs rule's matching refs, each with its head date and its history in walk order: what
    a rule with ``imagesPerReference`` or ``limit`` needs (a plain rule needs only a set of commits)."""

    refs: tuple[RefHistory, ...]  # by ref name
    depth: int  # how many commits each branch's walk may read (a tag reads its own commit only)

    def commits(self) -> frozenset[str]:
        return frozenset(sha for ref in self.refs for sha, _ in ref.commits)


GitCommits = frozenset[str] | GitHistories | str  # a gitRefs rule's live commits, its refs' histories, or why not


@dataclass(frozen=True, slots=True)
class RetentionObservation:
    """What one RetentionPolicy's decision needs, each part either observed or why not. The
    repositories are their states, or (a streamed observation) each one already planned."""

    repositories: tuple[RepositoryState, ...] | tuple[PlannedRepository, ...] | str
    git_commits: Mapping[int, GitCommits] = field(default_factory=dict)
    # The policy's repository globs that matched no repository of the registry (in any shard): a typo?
    unmatched: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything a plan is decided on, as observed: each source either read or why not."""

    observed_at: str
    clusters: Mapping[str, ClusterState | str]
    retention: Mapping[str, RetentionObservation]
    promotion: Mapping[str, Mapping[str, RepositoryState | str]] = field(default_factory=dict)  # policy -> stage
    health: Mapping[str, DeployHealth | str] = field(default_factory=dict)  # DeployPolicy -> health, or why not
    written: Mapping[str, DeployHealth | str] = field(default_factory=dict)  # manifests DeployPolicy -> image
