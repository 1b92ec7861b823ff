"""Reading an :class:`Image` (manifest, and config for an image) through any registry client,
with the on-disk cache in front: a digest never changes, so a second reading costs no request."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconcile.adapters.registry import content
from reconcile.adapters.registry.cache import ContentCache
from reconcile.adapters.registry.content import config_descriptor, read_limited, verify
from reconcile.adapters.registry.errors import RegistryError
from reconcile.observe.state import Image
from reconcile.policy.model import Limits

if TYPE_CHECKING:
    from reconcile.adapters.registry.client import RegistryClient


def load_image(client: RegistryClient, repository: str, digest: str, cache: ContentCache | None) -> Image:
    manifest = client.manifest(repository, digest)  # the client consults the cache itself
    try:
        config_ref = config_descriptor(manifest)
    except (ValueError, TypeError, AttributeError, RecursionError):
        config_ref = None  # reported below, by the full parse
    config = None
    if config_ref is not None:
        config = cache.get(config_ref.digest) if cache is not None else None
        if config is None:
            operation = f"get config {config_ref.digest}"
            with client.open_blob(repository, config_ref.digest, config_ref.size) as chunks:
                limits = getattr(client, "limits", None) or Limits()
                config = read_limited(chunks, limits.config_bytes, registry=client.name, repository=repository,
                                      operation=operation, setting="limits.configBytes")
            verify(config, config_ref.digest, client.name, repository, operation)
            if cache is not None:
                cache.put(config_ref.digest, config)
    try:
        return content.image(manifest, config)
    except (ValueError, TypeError, AttributeError, RecursionError):
        raise RegistryError(client.name, repository, f"read manifest {digest}",
                            "the content is not a valid OCI or Docker manifest") from None
