"""What a plan is made of: actions, each with the policy that caused it and a human reason."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

# The kinds that change something, each recorded in the audit trail as a mutation (the audit's
# ActionKind holds these and its own "skip" and "error").
MutatingKind = Literal["prune", "untag", "promote", "deploy", "rollback"]
ActionKind = MutatingKind | Literal["keep", "blocked"]
MUTATING: frozenset[str] = frozenset({"prune", "untag", "promote", "deploy", "rollback"})


class Block(StrEnum):
    """Why a ``blocked`` action is blocked, as data: exit codes and run outcomes are decided from
    this, never from the reason's words."""

    UNREADABLE = "unreadable"  # a source (registry, cluster, git, audit trail) could not be read
    OVER_LIMIT = "over-limit"  # more deletions than the policy's maxDeletions
    CANNOT_DELETE = "cannot-delete"  # the registry declares deletion: none
    GATE = "gate"  # a promotion gate is closed: soak, approval, healthyIn, freeze window
    HELD = "held"  # a rollback holds this digest back
    WAITING = "waiting"  # nothing to act on yet: no candidate, nothing in the stage before
    CONFLICT = "conflict"  # an immutable tag already names another digest


# Blocks that mean the job could not do what the policies ask: `plan` and `apply` exit 1. The others
# are the policies working as written (a gate waits, a hold holds).
ERROR_BLOCKS: frozenset[Block] = frozenset({Block.UNREADABLE, Block.OVER_LIMIT, Block.CANNOT_DELETE})


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
    block: Block | None = None  # a blocked action: why, as data

    @property
    def mutates(self) -> bool:
        return self.kind in MUTATING

    @property
    def mutation_kind(self) -> MutatingKind:
        """The kind as the audit trail records a mutation; a ``keep`` or ``blocked`` action is none."""
        if self.kind == "keep" or self.kind == "blocked":
            raise ValueError(f"a {self.kind} action changes nothing: it is not a mutation")
        return self.kind

    @property
    def is_error(self) -> bool:
        """A block that means a source or a limit stopped the policy (not a gate or hold doing its job)."""
        return self.block in ERROR_BLOCKS


def parse_target(target: str) -> tuple[str, str, str | None, str | None]:
    """``registry/repository:tag`` or ``registry/repository@digest`` -> (registry, repository, tag, digest).
    Unambiguous: repository names hold neither ':' nor '@', tags hold no ':'."""
    registry, rest = target.split("/", 1)
    if "@" in rest:
        repository, digest = rest.split("@", 1)
        return registry, repository, None, digest
    repository, tag = rest.rsplit(":", 1)
    return registry, repository, tag, None
