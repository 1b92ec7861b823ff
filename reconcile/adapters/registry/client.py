"""The interface both registry kinds implement: an OCI Distribution API endpoint and an OCI
image-layout directory look the same to observation, copy and delete."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from reconcile.adapters.registry.content import Manifest
from reconcile.observe.state import EMPTY, Descriptor, Image
from reconcile.policy.model import Deletion


@dataclass(frozen=True)
class Listed:
    """What a listing says of a repository beyond the Distribution API's tag list (all of it
    unverified: the caller fetches each digest's manifest by digest, which verifies it).

    ``tags``: tag -> digest (``None``: no usable digest, resolve that tag), or ``None`` when the
    listing names no tags (an OCI layout: each tag is resolved from index.json, as without a
    listing). ``untagged``: manifests listed with no tag (ECR and Harbor listings, OCI layouts;
    the Distribution API cannot tell them). ``pushed``: digest -> when the registry says it was
    pushed to this repository (ECR ``imagePushedAt``, Harbor ``push_time``; Docker Hub and GitLab:
    the latest push time of the digest's tags), for the digests it says it of."""

    tags: Mapping[str, str | None] | None
    untagged: frozenset[str] = frozenset()
    pushed: Mapping[str, datetime] = field(default_factory=lambda: EMPTY)


@runtime_checkable
class RegistryClient(Protocol):
    """One registry (or layout directory), as configured by a ``Registry`` policy."""

    name: str  # the Registry policy's name, for messages and RepositoryState
    endpoint: str  # equal endpoints share storage: blobs can be mounted across repositories
    concurrency: int  # how many requests observation may have in flight
    deletion: Deletion  # how the Registry policy declares it deletes (Registry.deletion_mode)

    def ping(self) -> None:
        """Check that the registry answers and the credentials work (raises otherwise)."""

    def repositories(self, patterns: Sequence[str] = ("**",)) -> list[str]:
        """Repository names matching any of the globs (``*`` within a path segment, ``**``
        across segments), sorted."""

    def tags(self, repository: str) -> list[str]:
        """Every tag of ``repository``; empty when the repository does not exist."""

    def list_tags(self, repository: str) -> Listed | None:
        """Every tag and the digest it points at, the untagged manifests and push times, from a
        bulk listing API (a request per page of tags; Registry ``spec.listing``) or an OCI layout's
        index.json (untagged roots only), or ``None`` where there is none (the Distribution API):
        resolve each tag with :meth:`resolve_tag`. Every digest here is unverified: its manifest,
        fetched by digest, is verified against it (:class:`Listed`)."""

    def resolve(self, repository: str, reference: str) -> Descriptor | None:
        """What a tag or digest points at (without fetching the manifest), or ``None``."""

    def resolve_tag(self, repository: str, tag: str, seen: str | None = None) -> Descriptor | None:
        """What ``tag`` points at now, in one request: HEAD if ``seen`` (the digest it pointed at
        last time, from :meth:`last_seen`) has its manifest cached, else GET (and cache) the manifest."""

    def last_seen(self, repository: str) -> Mapping[str, str]:
        """tag -> digest as :meth:`remember` last recorded them (a hint for :meth:`resolve_tag`)."""

    def remember(self, repository: str, tags: Mapping[str, Descriptor]) -> None:
        """Record what the tags point at now, for the next observation's :meth:`resolve_tag`."""

    def manifest(self, repository: str, reference: str) -> Manifest:
        """A manifest's exact bytes, verified against its digest."""

    def image(self, repository: str, digest: str) -> Image:
        """The parsed manifest (and config) of ``digest``; immutable, so cached."""

    def referrers(self, repository: str, digest: str,
                  tags: Mapping[str, Descriptor] | None = None) -> tuple[Descriptor, ...]:
        """Artifacts (signatures, SBOMs, attestations) that refer to ``digest``: the OCI 1.1
        referrers API where there is one, else the tag conventions (``sha256-<hex>`` index,
        cosign's ``sha256-<hex>.sig|.att|.sbom``). ``tags``, when the caller has resolved them
        already, spares listing and resolving them again."""

    def has_blob(self, repository: str, digest: str) -> bool: ...

    def open_blob(self, repository: str, digest: str, size: int | None = None
                  ) -> AbstractContextManager[Iterator[bytes]]:
        """The blob as a stream of chunks, verified against ``digest`` (and ``size``) as it is
        read: the stream raises before its last chunk if the content does not match."""

    def put_blob(self, repository: str, digest: str, size: int, chunks: Iterable[bytes]) -> None:
        """Store a blob streamed from ``chunks``; content not matching ``digest`` is refused."""

    def mount_blob(self, repository: str, digest: str, source_repository: str) -> bool:
        """Link a blob from another repository of the same registry; ``False`` if not done."""

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> str:
        """Store ``manifest`` byte for byte under a tag or its digest; returns the digest the
        registry computed (the caller checks it)."""

    def delete_manifest(self, repository: str, digest: str) -> bool:
        """Delete a manifest by digest, which removes every tag on it. ``False`` if it was
        already gone; :class:`DeletionDisabled` if the registry (or its declaration) refuses."""

    def delete_tag(self, repository: str, tag: str) -> None:
        """Remove one tag, leaving the manifest; :class:`CannotUntag` where impossible (declared
        ``deletion: manifest``, or refused by the registry, which the client then remembers)."""

    def can_delete_tags(self, repository: str) -> bool:
        """Whether a tag can be deleted alone: from the declaration (and what an earlier DELETE
        taught the client), never from a request: observing must not write."""

    def close(self) -> None: ...
