"""On-disk cache of manifests and image configs by digest.

Content addressed by its digest never changes, so an entry never expires; it is verified against
its digest on every read (a damaged or tampered file is dropped and fetched again).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from reconcile.adapters.registry.content import DIGEST, digest_of

log = logging.getLogger(__name__)


class ContentCache:
    """Best effort: a cache that cannot be read or written only costs a request."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    def _path(self, digest: str) -> Path | None:
        if not DIGEST.match(digest):
            return None
        algorithm, _, hexdigest = digest.partition(":")
        return self.directory / "blobs" / algorithm / hexdigest[:2] / hexdigest

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
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written aside then renamed: a reader never sees half a file.
            fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(temporary, path)
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError as exc:
            log.debug("cannot write cache entry %s: %s", path, exc.strerror)
