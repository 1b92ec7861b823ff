"""Re-verified deletes: immediately before each prune or untag, the registry is asked again
whether it still looks the way the plan saw it. Anything that moved since (a tag now on another
digest, a new tag or a new image on the digest, the digest now in use) skips that delete; the
next run re-plans with the new state. A skipped delete can only keep too much, never too little."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from reconcile.adapters.registry import RegistryClient, RegistryError
from reconcile.observe.repositories import resolve_tags
from reconcile.plan.actions import Action, parse_target


@dataclass(frozen=True)
class InUse:
    """What a RetentionPolicy's protecting sources use now."""

    digests: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()  # "repository:tag" referenced by tag only, on the policy's registry


InUseReader = Callable[[str], InUse]  # RetentionPolicy name -> what is protected now; raises if unknown


class StateChanged(Exception):
    """The registry or a cluster changed since the plan: this delete is skipped, not failed."""


def planned_tags(actions: Iterable[Action]) -> dict[tuple[str, str], dict[str, str]]:
    """(registry, repository) -> tag -> digest, as the plan's retention actions saw them. Every tag of
    a pruned repository is in the plan: kept, untagged, or removed with a pruned digest."""
    seen: dict[tuple[str, str], dict[str, str]] = {}
    for action in actions:
        if not action.policy.startswith("RetentionPolicy/") or action.kind not in ("keep", "untag", "prune"):
            continue
        registry, repository, tag, _ = parse_target(action.target)
        tags = seen.setdefault((registry, repository), {})
        if tag is not None and action.digest_before:
            tags[tag] = action.digest_before
        if action.kind == "prune" and action.digest_before:
            for removed in action.tags:
                tags[removed] = action.digest_before
    return seen


class DeleteCheck:
    """One per apply. The repository is listed and every tag resolved again at its first delete;
    the delete's own tags and digest are resolved again right before it; what protecting clusters
    use is read again once per policy (``in_use``)."""

    def __init__(self, actions: Iterable[Action], clients: Mapping[str, RegistryClient],
                 in_use: InUseReader | None = None) -> None:
        self._planned = planned_tags(actions)
        self._clients = clients
        self._in_use = in_use
        self._now: dict[tuple[str, str], dict[str, str]] = {}
        self._protected: dict[str, InUse | str] = {}
        self._reading = threading.Lock()  # lanes of one policy read what is in use once, not each

    def prune(self, action: Action, registry: str, repository: str, digest: str) -> None:
        """Raises StateChanged, naming what moved, unless deleting ``digest`` removes exactly what
        the plan said it removes."""
        client = self._clients[registry]
        self._not_in_use(action, repository, digest, action.tags)
        now = self._tags_now(client, registry, repository)
        planned = self._planned.get((registry, repository), {})
        for tag in action.tags:
            current = client.resolve(repository, tag)  # immediately before: not from the listing
            if current is not None and current.digest != digest:
                raise StateChanged(f"tag {tag} now points at {current.digest[:19]}, not {digest[:19]}")
        others = sorted(tag for tag, on in now.items() if on == digest and tag not in action.tags)
        if others:
            new = [t for t in others if t not in planned]
            raise StateChanged(f"{'new ' if new else ''}tag{'s' * (len(others) > 1)} {', '.join(others)} now "
                               f"point{'s' * (len(others) == 1)} at {digest[:19]}")
        moved = {tag: on for tag, on in now.items() if planned.get(tag) != on and on != digest}
        for tag, on in sorted(moved.items()):
            try:
                image = client.image(repository, on)
            except RegistryError as e:
                raise StateChanged(f"tag {tag} moved to {on[:19]}, which could not be read: {e}") from None
            if digest in {c.digest for c in image.children}:
                raise StateChanged(f"tag {tag} moved to {on[:19]}, an index that now includes {digest[:19]}")

    def untag(self, action: Action, registry: str, repository: str, tag: str) -> None:
        self._not_in_use(action, repository, None, (tag,))
        current = self._clients[registry].resolve(repository, tag)
        if current is not None and current.digest != action.digest_before:
            raise StateChanged(f"tag {tag} now points at {current.digest[:19]}, not {str(action.digest_before)[:19]}")

    def _not_in_use(self, action: Action, repository: str, digest: str | None, tags: Iterable[str]) -> None:
        if self._in_use is None:
            return
        name = action.policy.removeprefix("RetentionPolicy/")
        with self._reading:
            if name not in self._protected:
                try:
                    self._protected[name] = self._in_use(name)
                except Exception as e:  # unknown is not safe: no delete of this policy goes ahead
                    self._protected[name] = getattr(e, "problem", None) or str(e) or type(e).__name__
            protected = self._protected[name]
        if isinstance(protected, str):
            raise StateChanged(f"what is in use could not be read again: {protected}")
        if digest is not None and digest in protected.digests:
            raise StateChanged(f"{digest[:19]} is now in use or protected")
        for tag in tags:
            if f"{repository}:{tag}" in protected.tags:
                raise StateChanged(f"a protecting cluster now runs {repository}:{tag} by tag")

    def _tags_now(self, client: RegistryClient, registry: str, repository: str) -> dict[str, str]:
        key = (registry, repository)
        if key not in self._now:
            with ThreadPoolExecutor(max_workers=max(1, client.concurrency)) as pool:
                # On the Distribution API, tag by tag: never from a bulk listing (spec.listing).
                now = resolve_tags(client, repository, pool, listing=False)
                self._now[key] = {tag: d.digest for tag, d in now.items()}
        return self._now[key]

    def deleted(self, registry: str, repository: str, digest: str) -> None:
        """Forget the tags a delete removed, so the next delete's check sees the registry as it is."""
        now = self._now.get((registry, repository))
        if now is not None:
            for tag in [t for t, on in now.items() if on == digest]:
                del now[tag]
