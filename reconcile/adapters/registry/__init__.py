"""The registry adapter: OCI Distribution API registries and OCI image-layout directories behind
one interface (:class:`RegistryClient`): read, copied by digest (:func:`copy_image`) and pruned
(``delete_manifest``, ``delete_tag``). ``reconcile.observe.repositories`` builds a repository's
snapshot from it.

    client = open_registry(policies.registries["ci"], resolver)
"""

from __future__ import annotations

from pathlib import Path

from reconcile.adapters.registry.cache import ContentCache
from reconcile.adapters.registry.client import RegistryClient
from reconcile.adapters.registry.content import Manifest
from reconcile.adapters.registry.copy import CopyResult, copy_image
from reconcile.adapters.registry.distribution import DEFAULT_PAGE_SIZE, DistributionClient
from reconcile.adapters.registry.errors import CannotUntag, DeletionDisabled, DigestMismatch, RegistryError
from reconcile.adapters.registry.layout import LayoutClient
from reconcile.adapters.registry.transport import RetryPolicy
from reconcile.policy.model import Registry
from reconcile.policy.secrets import SecretResolver
from reconcile.policy.source import default_cache_dir

__all__ = [
    "CannotUntag",
    "CopyResult",
    "DeletionDisabled",
    "DigestMismatch",
    "DistributionClient",
    "LayoutClient",
    "Manifest",
    "RegistryClient",
    "RegistryError",
    "RetryPolicy",
    "copy_image",
    "open_registry",
]



def open_registry(registry: Registry, resolver: SecretResolver | None, *, cache_dir: Path | str | None = None,
                  retry: RetryPolicy | None = None, page_size: int = DEFAULT_PAGE_SIZE,
                  upload_chunk_size: int | None = None) -> RegistryClient:
    """A client for ``registry``: a layout directory for ``oci-layout:PATH``, else HTTP(S).

    Manifests and configs are cached by digest under ``cache_dir`` (default ``content`` in
    ``reconcile.policy.source.default_cache_dir()``). Close the client when done.
    """
    if registry.is_layout:
        return LayoutClient(registry)
    cache = ContentCache(Path(cache_dir) if cache_dir is not None else default_cache_dir() / "content")
    return DistributionClient(registry, resolver, cache=cache, retry=retry, page_size=page_size,
                              upload_chunk_size=upload_chunk_size)
