"""Reading an :class:`Image` (manifest, and config for an image) through any registry client,
with the on-disk cache in front: a digest never changes, so a second reading costs no request."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from reconcile.adapters.registry import content
from reconcile.adapters.registry.cache import ContentCache
from reconcile.adapters.registry.content import config_descriptor, read_limited, verify
from reconcile.adapters.registry.errors import RegistryError
from reconcile.observe.state import Descriptor, Image
from reconcile.policy.model import Limits

if TYPE_CHECKING:
    from reconcile.adapters.registry.client import RegistryClient


_pending: dict[str, tuple[threading.Lock, int]] = {}  # digest -> (its lock, how many wait on it)
_pending_lock = threading.Lock()


@contextmanager
def _one_at_a_time(digest: str) -> Iterator[None]:
    """Readers of one digest take turns: images sharing a config, read side by side, fetch it once
    (the first reader), the others then find it in the cache."""
    with _pending_lock:
        lock, waiting = _pending.get(digest, (threading.Lock(), 0))
        _pending[digest] = (lock, waiting + 1)
    try:
        with lock:
            yield
    finally:
        with _pending_lock:
            lock, waiting = _pending[digest]
            if waiting == 1:
                del _pending[digest]
            else:
                _pending[digest] = (lock, waiting - 1)


def load_image(client: RegistryClient, repository: str, digest: str, cache: ContentCache | None) -> Image:
    manifest = client.manifest(repository, digest)  # the client consults the cache itself
    try:
        config_ref = config_descriptor(manifest)
    except (ValueError, TypeError, AttributeError, RecursionError):
        config_ref = None  # reported below, by the full parse
    config = None
    if config_ref is not None and cache is not None:
        with _one_at_a_time(config_ref.digest):
            config = _config(client, repository, config_ref, cache)
    elif config_ref is not None:
        config = _config(client, repository, config_ref, None)
    try:
        return content.image(manifest, config)
    except (ValueError, TypeError, AttributeError, RecursionError):
        raise RegistryError(client.name, repository, f"read manifest {digest}",
                            "the content is not a valid OCI or Docker manifest") from None


def _config(client: RegistryClient, repository: str, config_ref: Descriptor, cache: ContentCache | None) -> bytes:
    config = cache.get(config_ref.digest) if cache is not None else None
    if config is not None:
        return config
    operation = f"get config {config_ref.digest}"
    with client.open_blob(repository, config_ref.digest, config_ref.size) as chunks:
        limits = getattr(client, "limits", None) or Limits()
        config = read_limited(chunks, limits.config_bytes, registry=client.name, repository=repository,
                              operation=operation, setting="limits.configBytes")
    verify(config, config_ref.digest, client.name, repository, operation)
    if cache is not None:
        cache.put(config_ref.digest, config)
    return config
