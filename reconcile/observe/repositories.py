"""A repository's snapshot built from a registry client: every tag, what it points at, the images
and their referrers (:class:`RepositoryState`), read side by side on the client's concurrency.

Untagged manifests and push times come from a listing (:meth:`RegistryClient.list_tags`: ECR's and
Harbor's listings name untagged manifests, and they, Docker Hub's and GitLab's give push times; an
OCI layout's index.json names untagged roots): with the Distribution API alone a repository has
none (``untagged`` and ``pushed`` empty), as it cannot tell them."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from types import MappingProxyType
from typing import TypeVar

from reconcile.adapters.registry import RegistryClient, RegistryError
from reconcile.adapters.registry.client import Listed
from reconcile.observe.state import Descriptor, Image, RepositoryState

log = logging.getLogger(__name__)

COORDINATORS = 16  # repositories walked at once; each queues many requests, so a few keep the queue full
IN_FLIGHT = 64  # requests a walk has queued at once: the queue stays full, and holds no future per tag

_T = TypeVar("_T")
_R = TypeVar("_R")


def _map(pool: Executor, fn: Callable[[_T], _R], items: Iterable[_T], window: int = IN_FLIGHT) -> Iterator[_R]:
    """``pool.map(fn, items)`` (results in order; the first failure raised, the rest cancelled) with
    at most ``window`` calls queued or running at once: ``Executor.map`` submits every item up front,
    a future (with its lock and condition, about 1 KiB) per tag of a repository, all at once."""
    pending: deque[Future[_R]] = deque()
    try:
        for item in items:
            if len(pending) >= window:
                yield pending.popleft().result()
            pending.append(pool.submit(fn, item))
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def observe_repository(client: RegistryClient, repository: str, *, workers: int | None = None,
                       pool: Executor | None = None) -> RepositoryState:
    """Every tag of ``repository`` and what it points at, the images (tagged digests, the untagged
    ones a listing names, and their index children) and the referrers of each of those images.

    Tags are resolved side by side (on ``pool``, else on ``workers`` threads, default the client's
    concurrency), one request each (:meth:`RegistryClient.resolve_tag`); manifests and configs
    come from the cache when seen before, so an unchanged repository costs its tag list and one
    HEAD per tag. With a bulk listing (Registry ``spec.listing``) it costs a request per page of
    tags: see :func:`resolve_tags`. Only GETs and HEADs: how the registry deletes comes from its Registry policy
    (``deletion``), not from trying.

    The untagged manifests a listing names are read like tagged ones (manifest by digest, verified
    and cached; their children and referrers too): one the registry does not have fails the
    observation, as a listed tag's digest does. Untagged are those on no tag now, that no
    observed index lists and that refer to no subject (platform manifests and referrers go with
    what they belong to, never on their own); push times are kept for the observed manifests.
    """
    if pool is None:
        with ThreadPoolExecutor(max_workers=workers or client.concurrency) as own:
            return observe_repository(client, repository, pool=own)
    tags, listed = _resolve_tags(client, repository, pool, listing=True)
    tagged = {d.digest for d in tags.values()}
    listed_untagged = (listed.untagged if listed is not None else frozenset()) - tagged

    images: dict[str, Image] = {}
    missing: set[str] = set()
    pending = tagged | listed_untagged
    while pending:  # tagged and untagged digests, then the children of the indexes among them
        for digest, image in _map(pool, lambda d: (d, _image(client, repository, d, d in listed_untagged)),
                                  sorted(pending)):
            if image is None:
                missing.add(digest)
            else:
                images[digest] = image
        pending = {c.digest for image in images.values() for c in image.children} - images.keys() - missing

    # Children too: `cosign sign --recursive` signs each platform's manifest.
    subjects = sorted(images)
    found = _map(pool, lambda d: (d, client.referrers(repository, d, tags)), subjects)
    referrers = {subject: refs for subject, refs in found if refs}
    extra = {d.digest for refs in referrers.values() for d in refs} - images.keys()
    for digest, image in _map(pool, lambda d: (d, _image(client, repository, d)), sorted(extra)):
        if image is not None:
            images[digest] = image
    belonging = {c.digest for image in images.values() for c in image.children} | {
        d.digest for refs in referrers.values() for d in refs}
    untagged = frozenset(d for d in listed_untagged if d not in belonging and images[d].subject is None)
    pushed = {d: when for d, when in sorted((listed.pushed if listed is not None else {}).items()) if d in images}
    return RepositoryState(
        registry=client.name, repository=repository, tags=MappingProxyType(dict(sorted(tags.items()))),
        images=MappingProxyType(images), referrers=MappingProxyType(referrers), untagged=untagged,
        pushed=MappingProxyType(pushed), can_delete_tags=client.can_delete_tags(repository),
        can_delete=client.deletion != "none")


def resolve_tags(client: RegistryClient, repository: str, pool: Executor, *,
                 listing: bool = True) -> dict[str, Descriptor]:
    """Every tag of ``repository`` and what it points at now, resolved side by side on ``pool``. A
    tag deleted between listing and resolving is simply not there any more.

    With a bulk listing (:meth:`RegistryClient.list_tags`, unless ``listing`` is false) the tags
    and their digests come a page at a time, and each distinct digest's manifest from the cache,
    else fetched by that digest (verified against it, and cached for reading the image): a listing
    naming a digest the registry does not have fails here. ``listing=False`` asks the Distribution
    API about every tag (what apply's re-verification of deletes does, whatever a listing says)."""
    return _resolve_tags(client, repository, pool, listing=listing)[0]


def _resolve_tags(client: RegistryClient, repository: str, pool: Executor, *,
                  listing: bool) -> tuple[dict[str, Descriptor], Listed | None]:
    """:func:`resolve_tags`, and what the listing said (its untagged manifests and push times)."""
    seen = client.last_seen(repository)
    listed = pool.submit(client.list_tags, repository).result() if listing else None
    if listed is None or listed.tags is None:
        names: Iterable[str] = pool.submit(client.tags, repository).result()  # a request like the others
        digests: dict[str, str] = {}
    else:
        names = [tag for tag, digest in listed.tags.items() if digest is None]  # no usable digest: ask
        digests = {tag: digest for tag, digest in listed.tags.items() if digest is not None}
    resolved = _map(pool, lambda tag: (tag, client.resolve_tag(repository, tag, seen.get(tag))), names)
    by_digest = dict(_map(pool, lambda d: (d, _listed(client, repository, d, digests)),
                          sorted(set(digests.values()))))
    found = {tag: by_digest[digest] for tag, digest in digests.items()}
    shared: dict[tuple[str, str, int], Descriptor] = {}  # tags on one digest share one (equal) descriptor
    found.update((tag, _shared(descriptor, shared)) for tag, descriptor in resolved if descriptor is not None)
    client.remember(repository, found)
    return found, listed


def _shared(descriptor: Descriptor, shared: dict[tuple[str, str, int], Descriptor]) -> Descriptor:
    """An equal descriptor seen before for another tag, else this one (immutable: sharing is safe)."""
    if descriptor.platform is not None or descriptor.artifact_type is not None or descriptor.annotations:
        return descriptor  # (what a tag resolves to has none of these; kept apart if it ever does)
    return shared.setdefault((descriptor.media_type, descriptor.digest, descriptor.size), descriptor)


def _listed(client: RegistryClient, repository: str, digest: str, digests: Mapping[str, str]) -> Descriptor:
    """The descriptor of a digest a listing named: its manifest (cached, else fetched by digest and
    verified against it), so the media type and size are the manifest's own."""
    try:
        return client.manifest(repository, digest).descriptor
    except RegistryError as exc:
        if exc.status != 404:
            raise
        tags = sorted(tag for tag, on in digests.items() if on == digest)
        raise RegistryError(client.name, repository, f"get manifest {digest}",
                            f"the registry's listing API says tag{'s' * (len(tags) > 1)} {', '.join(tags[:3])}"
                            f"{', ...' if len(tags) > 3 else ''} point{'s' * (len(tags) == 1)} at {digest}, which the "
                            "registry does not have (a stale or wrong listing); nothing is planned from this "
                            "observation", 404) from None


def observe_repositories(client: RegistryClient, repositories: Sequence[str], *,
                         pool: Executor | None = None) -> tuple[RepositoryState, ...]:
    """:func:`observe_repository` for each of ``repositories``, several at once (a registry of many
    small repositories is mostly round trips). Every request goes through one queue, ``pool``
    (else one as wide as the client's concurrency): whichever repository has work fills a free
    slot, so no slot idles while another repository still waits. The first failure is raised,
    once the others have stopped."""
    return stream_repositories(client, repositories, _state, pool=pool)


def _state(state: RepositoryState) -> RepositoryState:
    return state


def stream_repositories(client: RegistryClient, repositories: Sequence[str], each: Callable[[RepositoryState], _R],
                        *, pool: Executor | None = None) -> tuple[_R, ...]:
    """:func:`observe_repositories`, each repository's state handed to ``each`` as soon as it is
    observed (in the thread that walked it, in no particular order), and what ``each`` returns kept
    in its place: the results in the order of ``repositories``. The first failure (in that order)
    is raised, once the others have stopped, as :func:`observe_repositories` does."""
    if pool is None:
        with ThreadPoolExecutor(max_workers=client.concurrency, thread_name_prefix="registry") as own:
            return stream_repositories(client, repositories, each, pool=own)
    if len(repositories) <= 1:
        return tuple(each(observe_repository(client, name, pool=pool)) for name in repositories)
    # Each repository's walk runs in its own (waiting, not requesting) thread and queues its requests
    # on the shared pool; enough walks at once to keep the queue full, not one thread per repository.
    walks = min(len(repositories), COORDINATORS)
    with ThreadPoolExecutor(max_workers=walks, thread_name_prefix="observe-repository") as coordinators:
        return tuple(coordinators.map(lambda name: each(observe_repository(client, name, pool=pool)), repositories))


def _image(client: RegistryClient, repository: str, digest: str, listed_untagged: bool = False) -> Image | None:
    """The image of ``digest`` (cached, else its manifest fetched by digest and verified); ``None``
    for a missing one that something references, a failure for a missing one a listing names as
    untagged (a stale or wrong listing: what it says cannot be trusted to prune by)."""
    try:
        return client.image(repository, digest)
    except RegistryError as exc:
        if exc.status != 404:
            raise
        if listed_untagged:
            raise RegistryError(client.name, repository, f"get manifest {digest}",
                                f"the registry's listing says {digest} is an untagged manifest of this repository, "
                                "which the registry does not have (a stale or wrong listing); nothing is planned "
                                "from this observation", 404) from None
        log.warning("%s: %s is referenced but missing; leaving it out", exc, digest)
        return None

