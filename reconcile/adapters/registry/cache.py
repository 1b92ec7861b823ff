"""On-disk cache of manifests and image configs by digest, and of what each tag pointed at.

Content addressed by its digest never changes, so an entry never expires; it is verified against
its digest on every read (a damaged, half-written or tampered file is dropped and fetched again).
What tags pointed at is only a hint (whether a HEAD can do instead of a GET): a wrong one costs a
request, never a wrong answer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

from reconcile.adapters.registry.content import DIGEST, digest_of

log = logging.getLogger(__name__)


class ContentCache:
    """Best effort: a cache that cannot be read or written only costs a request."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self._made: set[Path] = set()  # directories known to exist: one mkdir per directory, not per entry
        self._lock = threading.Lock()

    def _path(self, digest: str) -> Path | None:
        if not DIGEST.match(digest):
            return None
        algorithm, _, hexdigest = digest.partition(":")
        return self.directory / "blobs" / algorithm / hexdigest[:2] / hexdigest

    def has(self, digest: str) -> bool:
        """Whether an entry exists (unverified: ``get`` checks it)."""
        path = self._path(digest)
        return path is not None and path.is_file()

    def get(self, digest: str) -> bytes | None:
        path = self._path(digest)
        if path is None:
            return None
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if digest_of(data, digest.partition(":")[0]) != digest:
            log.warning("cache entry %s does not match its digest; dropping it", path)
            path.unlink(missing_ok=True)
            return None
        return data

    def put(self, digest: str, data: bytes) -> None:
        path = self._path(digest)
        if path is None or digest_of(data, digest.partition(":")[0]) != digest:
            return
        try:
            self._directory(path.parent)
            # Written in place, exclusively: the name is the content's digest, so an existing file is
            # (or becomes) the same bytes, and a half-written one fails its check on read.
            with open(path, "xb") as handle:
                handle.write(data)
        except FileExistsError:
            pass
        except OSError as exc:
            log.debug("cannot write cache entry %s: %s", path, exc.strerror)

    def _directory(self, directory: Path) -> None:
        if directory not in self._made:
            directory.mkdir(parents=True, exist_ok=True)
            with self._lock:
                self._made.add(directory)

    def _tags_path(self, endpoint: str, repository: str) -> Path:
        key = hashlib.sha256(f"{endpoint}\n{repository}".encode()).hexdigest()
        return self.directory / "tags" / key[:2] / key

    def tags(self, endpoint: str, repository: str) -> dict[str, str]:
        """tag -> digest as last observed in ``repository`` of ``endpoint`` (a hint; empty if unknown)."""
        try:
            found = json.loads(self._tags_path(endpoint, repository).read_bytes())
        except (OSError, ValueError, RecursionError):
            return {}
        if not isinstance(found, dict):
            return {}
        return {t: d for t, d in found.items() if isinstance(t, str) and isinstance(d, str) and DIGEST.match(d)}

    def put_tags(self, endpoint: str, repository: str, tags: Mapping[str, str]) -> None:
        path = self._tags_path(endpoint, repository)
        try:
            self._directory(path.parent)
            # Aside then renamed (one file per repository, once per observation): readers see whole files.
            fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "w") as handle:
                    json.dump(dict(tags), handle, separators=(",", ":"))
                os.replace(temporary, path)
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError as exc:
            log.debug("cannot write tag hints %s: %s", path, exc.strerror)
