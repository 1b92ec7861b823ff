"""Copying one digest between registries (promotion): the exact bytes, everything it references,
and its referrers; tags last.

Order matters: blobs before the manifest that references them, children before their index,
referrers (signatures...) before the tags, so that a tag never points at something incomplete
and an admission controller never sees a promoted tag without its signature.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from reconcile.adapters.registry.client import RegistryClient
from reconcile.adapters.registry.content import (
    Manifest,
    blobs,
    check_digest,
    children,
    cosign_suffix,
    cosign_tag,
    descriptor_json,
    digest_of,
    referrers_tag,
)
from reconcile.adapters.registry.errors import DigestMismatch, RegistryError
from reconcile.adapters.registry.transport import RetryPolicy
from reconcile.observe.state import OCI_INDEX, Descriptor

log = logging.getLogger(__name__)

MAX_REFERRER_DEPTH = 4  # a signature of an SBOM of an image is depth 2; cycles are cut anyway
BLOB_WORKERS = 4
T = TypeVar("T")


@dataclass(frozen=True)
class CopyResult:
    digest: str
    tags: tuple[str, ...]
    manifests_copied: int  # written, including index children and referrers
    manifests_present: int  # already at the destination
    blobs_copied: int
    blobs_mounted: int  # linked from another repository of the same registry
    blobs_present: int  # already at the destination (HEAD)
    bytes_copied: int
    referrers: tuple[str, ...]  # digests of the referrers copied along


class _Copy:
    def __init__(self, source: RegistryClient, source_repository: str, dest: RegistryClient,
                 dest_repository: str, retry: RetryPolicy) -> None:
        self.source, self.source_repository = source, source_repository
        self.dest, self.dest_repository = dest, dest_repository
        self.retry = retry
        self.same_storage = source.endpoint == dest.endpoint
        self.lock = threading.Lock()
        self.counts = {"manifests_copied": 0, "manifests_present": 0, "blobs_copied": 0, "blobs_mounted": 0,
                       "blobs_present": 0, "bytes_copied": 0}
        self.done: set[str] = set()
        self.referrers: list[str] = []
        self.pool = ThreadPoolExecutor(max_workers=max(1, min(BLOB_WORKERS, source.concurrency, dest.concurrency)))

    def count(self, key: str, amount: int = 1) -> None:
        with self.lock:
            self.counts[key] += amount

    def manifest(self, digest: str) -> Manifest:
        """Copy the manifest ``digest`` and everything it references, by digest."""
        manifest = self.source.manifest(self.source_repository, digest)  # verified against digest
        if digest in self.done:
            return manifest
        self.done.add(digest)
        if self.dest.resolve(self.dest_repository, digest) is not None:
            # A registry accepts a manifest only once all it references is there.
            self.count("manifests_present")
            return manifest
        try:
            references = children(manifest), blobs(manifest)
        except (ValueError, TypeError, AttributeError, RecursionError):
            raise RegistryError(self.source.name, self.source_repository, f"read manifest {digest}",
                                "the content is not a valid OCI or Docker manifest") from None
        for child in references[0]:
            self.manifest(child.digest)
        list(self.pool.map(self.blob, references[1]))
        self.put(digest, manifest)
        self.count("manifests_copied")
        return manifest

    def put(self, reference: str, manifest: Manifest) -> None:
        stored = self.dest.put_manifest(self.dest_repository, reference, manifest)
        if stored != manifest.digest:
            raise DigestMismatch(self.dest.name, self.dest_repository, f"put manifest {reference}",
                                 manifest.digest, stored or "no digest")

    def blob(self, blob: Descriptor) -> None:
        if self.dest.has_blob(self.dest_repository, blob.digest):
            self.count("blobs_present")
            return
        if self.same_storage and self.dest.mount_blob(self.dest_repository, blob.digest, self.source_repository):
            self.count("blobs_mounted")
            return

        def stream() -> None:
            # Verified while streaming (source side) and refused by the destination otherwise.
            with self.source.open_blob(self.source_repository, blob.digest, blob.size) as chunks:
                self.dest.put_blob(self.dest_repository, blob.digest, blob.size, chunks)

        self.retrying(f"copy blob {blob.digest}", stream)
        self.count("blobs_copied")
        self.count("bytes_copied", blob.size)

    def retrying(self, operation: str, action: Callable[[], T]) -> T:
        """Restart a streamed transfer (which the transport cannot replay) on a transient error."""
        waited = 0.0
        for attempt in range(self.retry.attempts):
            try:
                return action()
            except RegistryError as exc:
                delay = self.retry.backoff(attempt)
                if not exc.retryable or attempt + 1 == self.retry.attempts or waited + delay > self.retry.budget:
                    raise
                log.info("%s: %s; restarting in %.1fs", operation, exc, delay)
            time.sleep(delay)
            waited += delay
        raise AssertionError("unreachable")

    def copy_referrers(self, subject: str, depth: int = 0) -> None:
        if depth >= MAX_REFERRER_DEPTH:
            return
        for referrer in self.source.referrers(self.source_repository, subject):
            if referrer.digest in self.referrers or referrer.digest == subject:
                continue
            self.referrers.append(referrer.digest)
            manifest = self.manifest(referrer.digest)
            suffix = cosign_suffix(referrer.artifact_type)
            if suffix is not None:
                self.put(cosign_tag(subject, suffix), manifest)  # cosign finds it by this tag
            elif _subject_of(manifest) == subject:
                self.index_referrer(subject, manifest, referrer)
            self.copy_referrers(referrer.digest, depth + 1)

    def index_referrer(self, subject: str, manifest: Manifest, referrer: Descriptor) -> None:
        """A destination without the referrers API finds an OCI 1.1 referrer through the
        ``sha256-<hex>`` tag: an index the pusher keeps (OCI distribution spec 1.1)."""
        if any(d.digest == manifest.digest for d in self.dest.referrers(self.dest_repository, subject)):
            return
        tag = referrers_tag(subject)
        current = self.dest.resolve(self.dest_repository, tag)
        entries = list(children(self.dest.manifest(self.dest_repository, tag))) if current is not None else []
        entries.append(Descriptor(manifest.media_type, manifest.digest, len(manifest.data),
                                  artifact_type=referrer.artifact_type))
        data = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                           "manifests": [descriptor_json(d) for d in entries]}, separators=(",", ":")).encode()
        self.put(tag, Manifest(digest_of(data), OCI_INDEX, data))


def _subject_of(manifest: Manifest) -> str | None:
    try:
        subject = manifest.json().get("subject")
    except (ValueError, RecursionError):
        return None
    return subject.get("digest") if isinstance(subject, dict) else None


def copy_image(source: RegistryClient, source_repository: str, digest: str, dest: RegistryClient,
               dest_repository: str, tags: Sequence[str] = (), *, referrers: bool = True,
               retry: RetryPolicy | None = None) -> CopyResult:
    """Copy ``digest`` (an image, or an index with every child) from ``source`` to ``dest``, with
    its referrers, then point ``tags`` at it. The digest is the same on both sides: manifests are
    copied byte for byte, and what the destination reports is checked."""
    check_digest(digest)
    job = _Copy(source, source_repository, dest, dest_repository, retry or RetryPolicy())
    try:
        top = job.manifest(digest)
        if referrers:
            job.copy_referrers(digest)
        # Tags last, after the referrers (a signature is there before the tag points at it); what
        # the registry stored under each is checked against the digest by put (its answer's
        # Docker-Content-Digest, or a HEAD of the tag when it names none).
        for tag in tags:
            job.put(tag, top)
    finally:
        job.pool.shutdown(wait=True)
    return CopyResult(digest=digest, tags=tuple(tags), referrers=tuple(job.referrers), **job.counts)
