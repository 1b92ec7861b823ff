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

COORDINATORS = 16  # repositories walked at once; each queues many requests, so a few keep the queue full


def observe_repository(client: RegistryClient, repository: str, *, workers: int | None = None,
                       pool: Executor | None = None) -> RepositoryState:
    """Every tag of ``repository`` and what it points at, the images (tagged digests and their
    index children) and the referrers of each of those images.

    Tags are resolved side by side (on ``pool``, else on ``workers`` threads, default the client's
    concurrency), one request each (:meth:`RegistryClient.resolve_tag`); manifests and configs
    come from the cache when seen before, so an unchanged repository costs its tag list and one
    HEAD per tag. Only GETs and HEADs: how the registry deletes comes from its Registry policy
    (``deletion``), not from trying.
    """
    if pool is None:
        with ThreadPoolExecutor(max_workers=workers or client.concurrency) as own:
            return observe_repository(client, repository, pool=own)
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
    seen = client.last_seen(repository)
    listed = pool.submit(client.tags, repository).result()  # a request like the others: in the queue
    resolved = pool.map(lambda tag: (tag, client.resolve_tag(repository, tag, seen.get(tag))), listed)
    found = {tag: descriptor for tag, descriptor in resolved if descriptor is not None}
    client.remember(repository, found)
    return found


def observe_repositories(client: RegistryClient, repositories: Sequence[str], *,
                         pool: Executor | None = None) -> tuple[RepositoryState, ...]:
    """:func:`observe_repository` for each of ``repositories``, several at once (a registry of many
    small repositories is mostly round trips). Every request goes through one queue, ``pool``
    (else one as wide as the client's concurrency): whichever repository has work fills a free
    slot, so no slot idles while another repository still waits. The first failure is raised,
    once the others have stopped."""
    if pool is None:
        with ThreadPoolExecutor(max_workers=client.concurrency, thread_name_prefix="registry") as own:
            return observe_repositories(client, repositories, pool=own)
    if len(repositories) <= 1:
        return tuple(observe_repository(client, name, pool=pool) for name in repositories)
    # Each repository's walk runs in its own (waiting, not requesting) thread and queues its requests
    # on the shared pool; enough walks at once to keep the queue full, not one thread per repository.
    walks = min(len(repositories), COORDINATORS)
    with ThreadPoolExecutor(max_workers=walks, thread_name_prefix="observe-repository") as coordinators:
        return tuple(coordinators.map(lambda name: observe_repository(client, name, pool=pool), repositories))


def _image(client: RegistryClient, repository: str, digest: str) -> Image | None:
    try:
        return client.image(repository, digest)
    except RegistryError as exc:
        if exc.status != 404:
            raise
        log.warning("%s: %s is referenced but missing; leaving it out", exc, digest)
        return None

