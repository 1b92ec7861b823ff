"""OCI image-layout directories behind the registry interface: the offline and air-gapped case.

``oci-layout:ROOT`` holds one image layout per repository, at ``ROOT/<repository>`` (what
``skopeo copy ... oci:ROOT/<repository>:<tag>`` writes): an ``oci-layout`` file, ``index.json``
whose entries are tagged by the ``org.opencontainers.image.ref.name`` annotation, and
``blobs/<algorithm>/<hex>``. A root of ``index.json`` without a tag, which no root index lists and
which is no referrer, is an untagged manifest (:meth:`LayoutClient.untagged`, reported through
``list_tags``); a layout says no push times. Every write is atomic (written aside, fsynced, renamed) and
``index.json`` updates are serialised by an exclusive ``flock`` on the ``oci-layout`` file, so
concurrent writers (threads or processes) never lose an entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from reconcile.adapters.registry.client import Listed
from reconcile.adapters.registry.content import (
    CHUNK,
    DIGEST,
    TAG,
    Manifest,
    blobs,
    check_digest,
    children,
    descriptor,
    fallback_referrers,
    glob_pattern,
    is_digest,
    media_type_of,
    read_limited,
    referrers_tag,
    verified_chunks,
    verify,
)
from reconcile.adapters.registry.distribution import check_reference, check_repository
from reconcile.adapters.registry.errors import (
    CannotUntag,
    RegistryError,
    declared_manifest_hint,
    declared_no_deletion,
)
from reconcile.adapters.registry.images import load_image
from reconcile.observe.state import INDEX_TYPES, OCI_INDEX, Descriptor, Image
from reconcile.policy.model import Registry

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_FILE = "oci-layout"
LAYOUT_VERSION = "1.0.0"


def _write_atomic(path: Path, chunks: Iterable[bytes]) -> None:
    """Write ``path`` so that a reader sees the old content or the new, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tag_of(entry: Mapping[str, Any]) -> str | None:
    annotations = entry.get("annotations")
    name = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
    if not isinstance(name, str):
        return None
    # Some tools write a full reference (host/repo:tag); the tag is what follows the last ':'.
    if not TAG.match(name) and ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[1]
    return name if TAG.match(name) else None


class LayoutClient:
    """:class:`~reconcile.adapters.registry.client.RegistryClient` over a directory."""

    def __init__(self, registry: Registry, root: str | Path | None = None) -> None:
        self.registry = registry
        self.name = registry.name
        self.root = Path(root if root is not None else registry.layout_path or "").absolute()
        self.endpoint = f"oci-layout:{self.root}"
        self.concurrency = max(registry.concurrency, 1)
        self.deletion = registry.deletion_mode  # tag unless the Registry declares otherwise
        self.limits = registry.limits_or_default
        self._subject_cache: dict[str, tuple[tuple[object, ...], dict[str, list[Descriptor]]]] = {}

    def __repr__(self) -> str:
        return f"LayoutClient({self.name!r}, {str(self.root)!r})"

    def close(self) -> None:
        pass

    def _error(self, repository: str | None, operation: str, message: str, status: int | None = None
               ) -> RegistryError:
        return RegistryError(self.name, repository, operation, message, status)

    def _dir(self, repository: str) -> Path:
        return self.root / check_repository(repository)

    def _blob(self, repository: str, digest: str) -> Path:
        algorithm, _, hexdigest = check_digest(digest).partition(":")
        return self._dir(repository) / "blobs" / algorithm / hexdigest

    # -- index.json ----------------------------------------------------------------------------
    def _index(self, repository: str) -> dict[str, Any] | None:
        directory = self._dir(repository)
        try:
            layout = json.loads((directory / LAYOUT_FILE).read_bytes() or b"{}")
            index = json.loads((directory / "index.json").read_bytes())
        except FileNotFoundError:
            return None
        except (ValueError, RecursionError, OSError):
            raise self._error(repository, "read index.json", f"{directory} is not a readable OCI image layout") \
                from None
        if not isinstance(index, dict) or not isinstance(index.get("manifests", []), list) or (
                isinstance(layout, dict) and layout.get("imageLayoutVersion", LAYOUT_VERSION) != LAYOUT_VERSION):
            raise self._error(repository, "read index.json", f"{directory} is not an OCI image layout 1.0.0")
        return index

    def _entries(self, repository: str) -> list[dict[str, Any]]:
        index = self._index(repository)
        entries = (index or {}).get("manifests", [])
        return [e for e in entries if isinstance(e, dict) and is_digest(str(e.get("digest")))]

    @contextlib.contextmanager
    def _locked(self, repository: str) -> Iterator[list[dict[str, Any]]]:
        """The index entries, to modify in place; written back atomically on success."""
        directory = self._dir(repository)
        directory.mkdir(parents=True, exist_ok=True)
        marker = directory / LAYOUT_FILE
        with open(marker, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                if marker.stat().st_size == 0:
                    _write_atomic(marker, [json.dumps({"imageLayoutVersion": LAYOUT_VERSION}).encode()])
                index = self._index(repository) or {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
                entries = list(index.get("manifests", []))
                yield entries
                index["manifests"] = entries
                _write_atomic(directory / "index.json", [json.dumps(index, indent=2).encode()])
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- read ----------------------------------------------------------------------------------
    def ping(self) -> None:
        if not self.root.is_dir():
            raise self._error(None, "ping", f"layout directory {self.root} does not exist")

    def repositories(self, patterns: Sequence[str] = ("**",)) -> list[str]:
        matcher = glob_pattern(patterns)
        found = []
        for directory, subdirectories, files in os.walk(self.root):
            subdirectories[:] = sorted(d for d in subdirectories if d != "blobs" and not d.startswith("."))
            if LAYOUT_FILE in files and "index.json" in files:
                name = Path(directory).relative_to(self.root).as_posix()
                if name != "." and matcher.match(name):
                    found.append(name)
        return sorted(found)

    def tags(self, repository: str) -> list[str]:
        return sorted({t for t in map(_tag_of, self._entries(repository)) if t is not None})

    def resolve(self, repository: str, reference: str) -> Descriptor | None:
        check_reference(reference)
        if is_digest(reference):
            path = self._blob(repository, reference)
            if not path.is_file():
                return None
            return self.manifest(repository, reference).descriptor
        entries = [e for e in self._entries(repository) if _tag_of(e) == reference]
        if not entries:
            return None
        found = descriptor(entries[-1])
        return Descriptor(found.media_type, found.digest, found.size)

    def list_tags(self, repository: str) -> Listed | None:
        """The untagged manifests of index.json (:meth:`untagged`); the tags are resolved one by one
        (``tags`` None: index.json is read whole, so resolve_tag reads no more than a listing
        would). A layout says no push times. ``None`` where the repository has no layout."""
        index = self._index(repository)
        if index is None:
            return None
        return Listed(None, self.untagged(repository, self._entries(repository)))

    def untagged(self, repository: str, entries: list[dict[str, Any]]) -> frozenset[str]:
        """The roots of index.json without a tag (no ``org.opencontainers.image.ref.name``, or one
        that is not a tag) on a digest no entry tags, that are neither a manifest some root index
        lists (at any depth: platform manifests, a referrers index's members) nor a referrer (a
        manifest with a subject, kept as a root of its own, see :meth:`put_manifest`). A root whose
        manifest is missing or unreadable is left out (nothing known of it to prune)."""
        tagged = {e["digest"] for e in entries if _tag_of(e) is not None}
        candidates = {e["digest"] for e in entries if _tag_of(e) is None} - tagged
        if not candidates:
            return frozenset()  # (the usual layout: nothing more read)
        listed: list[Mapping[str, Any]] = []
        readable: set[str] = set()
        for entry in entries:
            try:
                manifest = self.manifest(repository, entry["digest"])
            except RegistryError:
                continue
            readable.add(manifest.digest)
            listed += [{"digest": d.digest} for d in children(manifest)]
        contained = self._reachable(repository, listed, manifests_only=True)
        referrers = {d.digest for found in self._subjects(repository, entries).values() for d in found}
        return frozenset((candidates & readable) - contained - referrers)

    def resolve_tag(self, repository: str, tag: str, seen: str | None = None) -> Descriptor | None:
        return self.resolve(repository, tag)  # a file read: nothing to save

    def last_seen(self, repository: str) -> dict[str, str]:
        return {}

    def remember(self, repository: str, tags: Mapping[str, Descriptor]) -> None:
        pass

    def manifest(self, repository: str, reference: str) -> Manifest:
        operation = f"get manifest {reference}"
        target = self.resolve(repository, reference) if not is_digest(check_reference(reference)) else None
        digest = target.digest if target is not None else reference
        if not is_digest(digest):
            raise self._error(repository, operation, "not found", 404)
        try:
            with open(self._blob(repository, digest), "rb") as handle:
                data = read_limited(iter(lambda: handle.read(CHUNK), b""), self.limits.manifest_bytes,
                                    registry=self.name, repository=repository, operation=operation,
                                    setting="limits.manifestBytes")
        except FileNotFoundError:
            raise self._error(repository, operation, "not found", 404) from None
        verify(data, digest, self.name, repository, operation)
        return Manifest(digest, media_type_of(data, target.media_type if target else None), data)

    def image(self, repository: str, digest: str) -> Image:
        return load_image(self, repository, check_digest(digest), None)

    def referrers(self, repository: str, digest: str,
                  tags: Mapping[str, Descriptor] | None = None) -> tuple[Descriptor, ...]:
        check_digest(digest)
        entries = self._entries(repository)
        if tags is None:
            tags = {}
            for entry in entries:
                tag = _tag_of(entry)
                if tag is not None:
                    tags[tag] = descriptor(entry)
        found = fallback_referrers(digest, tags)
        prefix = referrers_tag(digest)
        if prefix in tags:
            found += children(self.manifest(repository, tags[prefix].digest))
        # No referrers API in a layout: manifests written here with a subject are roots of
        # index.json (see put_manifest), so a scan of the roots finds them.
        found += self._subjects(repository, entries).get(digest, [])
        return tuple({d.digest: d for d in found}.values())

    def _subjects(self, repository: str, entries: list[dict[str, Any]]) -> dict[str, list[Descriptor]]:
        """Root manifests by the subject they refer to; recomputed only when index.json changes."""
        try:
            stat = (self._dir(repository) / "index.json").stat()
        except FileNotFoundError:
            return {}
        key = (repository, stat.st_mtime_ns, stat.st_size, stat.st_ino)
        cached = self._subject_cache.get(repository)
        if cached is not None and cached[0] == key:
            return cached[1]
        subjects: dict[str, list[Descriptor]] = {}
        for entry in entries:
            if entry.get("mediaType") in INDEX_TYPES:
                continue
            manifest = self.manifest(repository, entry["digest"])
            document = manifest.json()
            subject = document.get("subject")
            if isinstance(subject, dict) and isinstance(subject.get("digest"), str):
                config = document.get("config")
                if not isinstance(config, dict):
                    config = {}
                subjects.setdefault(subject["digest"], []).append(Descriptor(
                    manifest.media_type, manifest.digest, len(manifest.data),
                    artifact_type=document.get("artifactType") or config.get("mediaType")))
        self._subject_cache[repository] = (key, subjects)
        return subjects

    # -- blobs ---------------------------------------------------------------------------------
    def has_blob(self, repository: str, digest: str) -> bool:
        return self._blob(repository, digest).is_file()

    @contextlib.contextmanager
    def open_blob(self, repository: str, digest: str, size: int | None = None) -> Iterator[Iterator[bytes]]:
        operation = f"get blob {digest}"
        try:
            handle = open(self._blob(repository, digest), "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise self._error(repository, operation, "not found", 404) from None
        with handle:
            yield verified_chunks(iter(lambda: handle.read(CHUNK), b""), digest, size, registry=self.name,
                                  repository=repository, operation=operation)

    def put_blob(self, repository: str, digest: str, size: int, chunks: Iterable[bytes]) -> None:
        path = self._blob(repository, digest)
        _write_atomic(path, verified_chunks(chunks, digest, size, registry=self.name, repository=repository,
                                            operation=f"write blob {digest}"))

    def mount_blob(self, repository: str, digest: str, source_repository: str) -> bool:
        source = self._blob(source_repository, digest)
        if not source.is_file():
            return False
        target = self._blob(repository, digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".tmp-mount-{os.getpid()}-{target.name}")
        try:
            os.link(source, temporary)  # same file system: no copy at all
        except OSError:
            shutil.copyfile(source, temporary)
        os.replace(temporary, target)
        return True

    # -- write and delete manifests ------------------------------------------------------------
    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> str:
        check_reference(reference)
        verify(manifest.data, manifest.digest, self.name, repository, f"put manifest {reference}")
        self.put_blob(repository, manifest.digest, len(manifest.data), [manifest.data])
        entry: dict[str, Any] = {"mediaType": manifest.media_type, "digest": manifest.digest,
                                 "size": len(manifest.data)}
        adopted = {d.digest for d in children(manifest)}
        with self._locked(repository) as entries:
            if is_digest(reference):
                # An untagged root keeps the manifest reachable until a tag (or a parent index,
                # which adopts it below) does.
                if not any(e.get("digest") == manifest.digest for e in entries):
                    entries.append(entry)
            else:
                entries[:] = [e for e in entries if _tag_of(e) != reference
                              and not (e.get("digest") == manifest.digest and _tag_of(e) is None)]
                entries.append({**entry, "annotations": {REF_NAME: reference}})
            entries[:] = [e for e in entries if not (e.get("digest") in adopted and _tag_of(e) is None)]
        return manifest.digest

    def delete_manifest(self, repository: str, digest: str) -> bool:
        check_digest(digest)
        if self.deletion == "none":
            raise declared_no_deletion(self.name, repository, f"delete manifest {digest}")
        with self._locked(repository) as entries:
            remaining = [e for e in entries if e.get("digest") != digest]
            removed = len(remaining) != len(entries)
            entries[:] = remaining
            path = self._blob(repository, digest)
            if path.is_file() and digest not in self._reachable(repository, remaining, manifests_only=True):
                path.unlink()
                removed = True
        return removed

    def delete_tag(self, repository: str, tag: str) -> None:
        if not TAG.match(tag):
            raise ValueError(f"not a valid tag: {tag!r}")
        if self.deletion == "none":
            raise declared_no_deletion(self.name, repository, f"delete tag {tag}")
        if self.deletion == "manifest":  # a layout could, but the Registry says tags are not removed alone
            target = self.resolve(repository, tag)
            if target is None:
                return
            same = [t for t in self.tags(repository)
                    if (found := self.resolve(repository, t)) is not None and found.digest == target.digest]
            raise CannotUntag(self.name, repository, tag, target.digest, same, declared_manifest_hint(self.name))
        with self._locked(repository) as entries:
            entries[:] = [e for e in entries if _tag_of(e) != tag]

    def can_delete_tags(self, repository: str) -> bool:
        return self.deletion == "tag"

    def _reachable(self, repository: str, roots: Iterable[Mapping[str, Any]], *, manifests_only: bool = False
                   ) -> set[str]:
        """Every digest reachable from ``roots`` (manifests; and their blobs unless told not to)."""
        seen: set[str] = set()
        pending = [str(r.get("digest")) for r in roots if DIGEST.match(str(r.get("digest")))]
        while pending:
            digest = pending.pop()
            if digest in seen:
                continue
            seen.add(digest)
            try:
                manifest = self.manifest(repository, digest)
            except RegistryError:
                continue  # a missing or unreadable manifest references nothing we can know
            pending += [d.digest for d in children(manifest)]
            if not manifests_only:
                seen.update(d.digest for d in blobs(manifest))
        return seen

    def garbage_collect(self, repository: str) -> int:
        """Remove blobs no root of ``index.json`` reaches, like ``registry garbage-collect``;
        run it when nothing else writes to the layout. Returns how many were removed."""
        removed = 0
        with self._locked(repository) as entries:
            keep = self._reachable(repository, entries)
            for path in (self._dir(repository) / "blobs").glob("*/*"):
                if path.name.startswith(".tmp-") or f"{path.parent.name}:{path.name}" not in keep:
                    path.unlink()
                    removed += 1
        return removed
