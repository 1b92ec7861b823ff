"""What a plan is made of: actions, each with the policy that caused it and a human reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ActionKind = Literal["prune", "untag", "keep", "promote", "deploy", "rollback", "blocked"]
MUTATING: frozenset[str] = frozenset({"prune", "untag", "promote", "deploy", "rollback"})


@dataclass(frozen=True, order=True)
class Action:
    """One step of a plan. ``keep`` and ``blocked`` change nothing: they say why not."""

    policy: str  # Kind/name
    kind: ActionKind
    target: str  # registry/repository:tag, registry/repository@digest, cluster/namespace/workload
    digest_before: str | None = None
    digest_after: str | None = None
    reason: str = ""
    # a prune: the tags it removes; a promotion: the stage tags it sets or holds; a deploy: the desired
    # digest's version tag
    tags: tuple[str, ...] = ()
    # a prune of a platform manifest or referrer: the target of the prune it goes with, which must
    # succeed first (if that one is skipped or fails, so is this)
    depends_on: str | None = None

    @property
    def mutates(self) -> bool:
        return self.kind in MUTATING
