"""A repository's snapshot built from a registry client: every tag, what it points at, the images
and their referrers (:class:`RepositoryState`), read side by side on the client's concurrency."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from types import MappingProxyType

from reconcile.adapters.registry import RegistryClient, RegistryError
from reconcile.observe.state import Descriptor, Image, RepositoryState

log = logging.getLogger(__name__)


def observe_repository(client: RegistryClient, repository: str, *, workers: int | None = None) -> RepositoryState:
    """Every tag of ``repository`` and what it points at, the images (tagged digests and their
    index children) and the referrers of each of those images.

    Tags are resolved with concurrent HEADs (``workers`` at once, default the client's
    concurrency); manifests and configs come from the cache when seen before, so an unchanged
    repository costs its tag list and one HEAD per tag. Only GETs and HEADs: how the registry
    deletes comes from its Registry policy (``deletion``), not from trying.
    """
    with ThreadPoolExecutor(max_workers=workers or client.concurrency) as pool:
        tags = resolve_tags(client, repository, pool)

        images: dict[str, Image] = {}
        missing: set[str] = set()
        pending = {d.digest for d in tags.values()}
        while pending:  # tagged digests, then the children of the indexes among them
            for digest, image in pool.map(lambda d: (d, _image(client, repository, d)), sorted(pending)):
                if image is None:
                    missing.add(digest)
                else:
                    images[digest] = image
            pending = {c.digest for image in images.values() for c in image.children} - images.keys() - missing

        # Children too: `cosign sign --recursive` signs each platform's manifest.
        subjects = sorted(images)
        found = pool.map(lambda d: (d, client.referrers(repository, d, tags)), subjects)
        referrers = {subject: refs for subject, refs in found if refs}
        extra = {d.digest for refs in referrers.values() for d in refs} - images.keys()
        for digest, image in pool.map(lambda d: (d, _image(client, repository, d)), sorted(extra)):
            if image is not None:
                images[digest] = image
    return RepositoryState(
        registry=client.name, repository=repository, tags=MappingProxyType(dict(sorted(tags.items()))),
        images=MappingProxyType(images), referrers=MappingProxyType(referrers),
        can_delete_tags=client.can_delete_tags(repository), can_delete=client.deletion != "none")


def resolve_tags(client: RegistryClient, repository: str, pool: Executor) -> dict[str, Descriptor]:
    """Every tag of ``repository`` and what it points at now, resolved side by side on ``pool``. A
    tag deleted between listing and resolving is simply not there any more."""
    resolved = pool.map(lambda tag: (tag, client.resolve(repository, tag)), client.tags(repository))
    return {tag: found for tag, found in resolved if found is not None}


def observe_repositories(client: RegistryClient, repositories: Sequence[str]) -> tuple[RepositoryState, ...]:
    """:func:`observe_repository` for each of ``repositories``, several at once (a registry of many
    small repositories is mostly round trips); the client's concurrency still caps the requests in
    flight. The first failure is raised, once the others have stopped."""
    if len(repositories) <= 1:
        return tuple(observe_repository(client, name) for name in repositories)
    width = min(client.concurrency, len(repositories))
    # The client's concurrency shared out: as many threads as requests may be in flight, no more.
    each = max(client.concurrency // width, 1)
    with ThreadPoolExecutor(max_workers=width) as pool:
        return tuple(pool.map(lambda name: observe_repository(client, name, workers=each), repositories))


def _image(client: RegistryClient, repository: str, digest: str) -> Image | None:
    try:
        return client.image(repository, digest)
    except RegistryError as exc:
        if exc.status != 404:
            raise
        log.warning("%s: %s is referenced but missing; leaving it out", exc, digest)
        return None

