"""What a plan is made of: actions, each with the policy that caused it and a human reason."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class ActionKind(StrEnum):
    """What an action does. The values are the wire format (plan JSON, audit rows); members compare
    equal to them (``ActionKind.KEEP == "keep"``)."""

    PRUNE = "prune"  # delete a manifest by digest, and with it every tag on it
    UNTAG = "untag"  # remove one tag, the digest stays
    PROMOTE = "promote"  # copy a digest into the next stage, under the stage's tags
    DEPLOY = "deploy"  # set workloads (or their manifests) to a digest
    ROLLBACK = "rollback"  # set workloads back to an earlier digest
    KEEP = "keep"  # nothing changes, and why
    BLOCKED = "blocked"  # something should change and may not, and why (``Action.block``)


# The kinds that change something, each recorded in the audit trail as a mutation (the audit's
# AuditKind holds these and its own "skip" and "error").
MUTATING: frozenset[ActionKind] = frozenset(set(ActionKind) - {ActionKind.KEEP, ActionKind.BLOCKED})
MutatingKind = Literal[ActionKind.PRUNE, ActionKind.UNTAG, ActionKind.PROMOTE, ActionKind.DEPLOY,
                       ActionKind.ROLLBACK]


class Cause(StrEnum):
    """Why an action is what it is, as data (``Action.reason`` says it in words, with the details).
    Recorded in the plan JSON and the audit trail; the values are the wire format."""

    # keep: a keep rule wants it
    KEPT_BY_RULE = "kept-by-rule"  # a keep rule selects it and keeps it (among its last N, newer than, any)
    UNRANKABLE = "unrankable"  # a keep rule's order cannot rank it, so it is kept (fail closed)
    GIT_REF = "git-ref"  # built from a commit among the latest of a live git ref (keep rule gitRefs)
    # keep: a protection applies
    IN_USE = "in-use"  # a protecting cluster runs it (by digest or tag, or one of its platforms)
    ROLLBACK_HISTORY = "rollback-history"  # a protecting cluster keeps it for rollback only (old ReplicaSets…)
    DEPLOY_TARGET = "deploy-target"  # a DeployPolicy's workloads run it, or its manifests pin it, now
    DEPLOYED_HISTORY = "deployed-history"  # among the last digests a DeployPolicy deployed (protect.deployedHistory)
    # keep: it goes with something that stays
    TAGGED_BY_KEPT = "tagged-by-kept"  # its digest is also tagged by a kept tag
    DEPENDANT_OF_KEPT = "dependant-of-kept"  # a platform manifest or referrer of an image that stays
    ORPHAN_SIGNATURE = "orphan-signature"  # a signature/attestation tag naming an image not in this repository
    IMAGE_KEPT = "image-kept"  # no rule keeps the tag, but its image stays, and a kept image keeps every tag
    CANNOT_UNTAG = "cannot-untag"  # no rule keeps the tag, but the registry cannot remove a tag alone
    # prune, untag
    NO_RULE_MATCHES = "no-rule-matches"  # no keep rule selects it, and no protection applies
    EXPIRED = "expired"  # a keep rule selects it, but not among what it keeps (older, or beyond last N)
    DEPENDANT_OF_PRUNED = "dependant-of-pruned"  # a platform manifest or referrer of a pruned image
    # promote, deploy, rollback, and their keeps
    UP_TO_DATE = "up-to-date"  # the stage already holds (the workloads already run) the digest
    GATES_OPEN = "gates-open"  # the stage before holds a digest this one does not, and every gate is open
    OUT_OF_DATE = "out-of-date"  # the workloads run (or pin) another digest than their stage holds
    ROLLOUT_FAILED = "rollout-failed"  # an automatic rollback after a rollout that did not complete
    REQUESTED = "requested"  # a person asked for it (``reconcile rollback``)
    # blocked (``Action.block`` says how the run treats it)
    REGISTRY_UNREADABLE = "registry-unreadable"  # a registry (or a stage's repository) could not be read
    CLUSTER_UNREADABLE = "cluster-unreadable"  # a cluster, or what a deploy runs, could not be read
    GIT_UNREADABLE = "git-unreadable"  # a keep rule's source repository could not be read
    AUDIT_UNREADABLE = "audit-unreadable"  # the audit trail (deploy history, holds) could not be read
    GATE_UNREADABLE = "gate-unreadable"  # a promotion gate's input (deploy health) could not be read
    OVER_MAX_DELETIONS = "over-max-deletions"  # more deletions than maxDeletions
    DELETION_DISABLED = "deletion-disabled"  # the registry declares deletion: none
    GATE_CLOSED = "gate-closed"  # a promotion gate is closed: soak, approval, healthyIn, freeze window
    HELD = "held"  # a rollback holds this digest back
    NO_CANDIDATE = "no-candidate"  # no tag matches the track
    STAGE_EMPTY = "stage-empty"  # the stage to promote or deploy from holds no digest yet
    VERSION_UNKNOWN = "version-unknown"  # no tag of the source stage names the digest any more
    TAG_CONFLICT = "tag-conflict"  # an immutable tag already names another digest
    AMBIGUOUS_CANDIDATE = "ambiguous-candidate"  # the track's order ranks tags on different digests equal
    NO_REPOSITORY_MATCHES = "no-repository-matches"  # a repositories glob matches nothing (an error with strict)


class Block(StrEnum):
    """Why a ``blocked`` action is blocked, as data: exit codes and run outcomes are decided from
    this, never from the reason's words."""

    UNREADABLE = "unreadable"  # a source (registry, cluster, git, audit trail) could not be read
    OVER_LIMIT = "over-limit"  # more deletions than the policy's maxDeletions
    CANNOT_DELETE = "cannot-delete"  # the registry declares deletion: none
    GATE = "gate"  # a promotion gate is closed: soak, approval, healthyIn, freeze window
    HELD = "held"  # a rollback holds this digest back
    WAITING = "waiting"  # nothing to act on yet: no candidate, nothing in the stage before
    CONFLICT = "conflict"  # an immutable tag already names another digest; the track's order ties
    UNMATCHED = "unmatched"  # strict: a repositories glob matches no repository (a typo, until shown otherwise)


# Blocks that mean the job could not do what the policies ask: `plan` and `apply` exit 1. The others
# are the policies working as written (a gate waits, a hold holds).
ERROR_BLOCKS: frozenset[Block] = frozenset({Block.UNREADABLE, Block.OVER_LIMIT, Block.CANNOT_DELETE, Block.UNMATCHED})


@dataclass(frozen=True, order=True, slots=True)
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
    cause: Cause | None = None  # why, as data: every action the planner makes has one

    def __post_init__(self) -> None:
        # The wire strings are accepted (tests, rows read back from the audit trail) and held as the
        # enums, so ``kind is ActionKind.KEEP`` holds and an unknown value fails here, not later.
        object.__setattr__(self, "kind", ActionKind(self.kind))
        if self.block is not None:
            object.__setattr__(self, "block", Block(self.block))
        if self.cause is not None:
            object.__setattr__(self, "cause", Cause(self.cause))

    @property
    def mutates(self) -> bool:
        return self.kind in MUTATING

    @property
    def mutation_kind(self) -> MutatingKind:
        """The kind as the audit trail records a mutation; a ``keep`` or ``blocked`` action is none."""
        kind = self.kind
        if kind is ActionKind.KEEP or kind is ActionKind.BLOCKED:
            raise ValueError(f"a {kind} action changes nothing: it is not a mutation")
        return kind

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
