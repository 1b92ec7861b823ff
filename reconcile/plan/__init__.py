"""The planner: a pure, deterministic function of (desired, observed, audit history) to an
ordered list of actions, each with its reason. No I/O here: same inputs, same plan.

Importing the package stays cheap (what it imports at the top is light): the audit store and the
command line import ``reconcile.plan.actions``, which imports this package first, without needing
the planners or the policy model; ``build_plan`` loads them when it is called.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from reconcile.plan.actions import Action, ActionKind, Block, Cause
from reconcile.plan.plan import Plan, make_plan

if TYPE_CHECKING:
    from reconcile.observe.state import DeployHealth, GitCommits, Observation, PlannedRepository, RepositoryState
    from reconcile.plan.deploy import Hold
    from reconcile.plan.retention import RetentionInputs
    from reconcile.policy.model import Approval, PolicySet, RetentionPolicy
    from reconcile.policy.shards import Shard

__all__ = ["Action", "ActionKind", "Cause", "Plan", "build_plan", "fingerprint", "tags_hash"]


def build_plan(policies: PolicySet, observation: Observation, deployed: Mapping[str, Sequence[str]] | None,
               *, now: datetime, only: str | None = None,
               arrivals: Mapping[tuple[str, str], datetime] | str | None = None,
               approvals: Mapping[str, tuple[Approval, ...] | str] | None = None,
               holds: Mapping[str, Hold] | str | None = None, shard: Shard | None = None,
               strict: bool = False) -> Plan:
    """Every policy's actions (or ``only`` one, as ``Kind/name``) for this observation.

    ``deployed`` is the audit trail's deploy history (None when it could not be read); ``arrivals``
    when each digest was promoted into each ``registry/repository`` (from the trail; or why that is
    unknown, then soak gates are blocked as unreadable); ``approvals``
    the approval files of the repo-of-record at the same commit; ``holds`` DeployPolicy -> the
    digest a rollback holds back (from the trail), or why they are unknown (then nothing is deployed).
    ``shard``: only the pipelines (and their deploys) it owns; retention plans the repositories
    observed, which are the shard's. A RetentionPolicy's repositories glob that matches no
    repository is a warning, or with ``strict`` an error that blocks the policy (nothing pruned).

    A RetentionPolicy's repositories are either their states (planned here) or, from a streamed
    observation, each already planned by :class:`reconcile.plan.stream.RetentionStream` as it was
    observed (made with the same ``deployed``, ``now`` and ``only``): here they are put together
    as :func:`~reconcile.plan.retention.plan_retention` does, into the same plan.
    """
    from reconcile.plan.deploy import DeployInputs, plan_deploy
    from reconcile.plan.promotion import PromotionInputs, plan_promotion
    from reconcile.plan.retention import RetentionInputs, plan_retention, rank_warnings
    from reconcile.policy.model import registry_host

    actions: list[Action] = []
    errors: list[str] = []
    warnings: list[str] = []
    for name, policy in policies.retention_policies.items():
        if only and only != f"RetentionPolicy/{name}":
            continue
        seen = observation.retention[name]
        if isinstance(seen.repositories, str):
            errors.append(seen.repositories)
            actions.append(Action(f"RetentionPolicy/{name}", ActionKind.BLOCKED, policy.registry,
                                  reason=f"{seen.repositories}; nothing is pruned", block=Block.UNREADABLE,
                                  cause=Cause.REGISTRY_UNREADABLE))
            continue
        unmatched = [f"RetentionPolicy/{name}: repositories {glob!r} matches no repository in registry "
                     f"{policy.registry}" for glob in seen.unmatched]
        if unmatched and strict:
            errors += unmatched
            actions += [Action(f"RetentionPolicy/{name}", ActionKind.BLOCKED, policy.registry, block=Block.UNMATCHED,
                               reason=f"{'; '.join(unmatched)}; nothing is pruned (--strict): correct the glob, or "
                                      "remove it", cause=Cause.NO_REPOSITORY_MATCHES)]
            continue
        warnings += [f"{warning} (a typo? nothing is pruned for it; --strict makes this an error)"
                     for warning in unmatched]
        states, planned = _states_or_planned(seen.repositories)
        retention_inputs = RetentionInputs(registry_host(policies.registries[policy.registry]), states,
                                           dict(observation.clusters), deployed, seen.git_commits,
                                           deploy_targets(policies, observation.health, observation.written,
                                                          policy.registry))
        if planned:
            policy_actions, policy_warnings = _put_together(policy, retention_inputs, planned)
        else:
            policy_actions = plan_retention(policy, retention_inputs, now)
            policy_warnings = rank_warnings(policy, states)
        warnings += policy_warnings
        errors += [a.reason for a in policy_actions if a.is_error]
        actions += policy_actions
    for name, promotion in policies.promotion_policies.items():
        if (only and only != f"PromotionPolicy/{name}") or (shard is not None and not shard.owns_promotion(promotion)):
            continue
        stages = observation.promotion.get(name, {})
        stage_arrivals = arrivals if isinstance(arrivals, str) else {
            (stage.name, digest): when for stage in promotion.stages
            for (where, digest), when in (arrivals or {}).items() if where == f"{stage.registry}/{stage.repository}"}
        promotion_inputs = PromotionInputs(stages, stage_arrivals, observation.health, approvals or {})
        promotion_actions = plan_promotion(promotion, promotion_inputs, now)
        errors += [a.reason for a in promotion_actions if a.is_error]
        actions += promotion_actions
    for name, deploy in policies.deploy_policies.items():
        if (only and only != f"DeployPolicy/{name}") or (shard is not None and not shard.owns_deploy(deploy, policies)):
            continue
        stage = policies.promotion_policies[deploy.promotion].stage(deploy.stage)
        stage_state = observation.promotion.get(deploy.promotion, {}).get(deploy.stage, "not observed")
        current = (observation.health if deploy.manifests is None else observation.written).get(
            name, "not observed")
        hold = holds if isinstance(holds, str) else (holds or {}).get(name)
        deploy_inputs = DeployInputs(registry_host(policies.registries[stage.registry]), stage_state, current, hold)
        action = plan_deploy(deploy, stage, deploy_inputs)
        if action.is_error:
            errors.append(action.reason)
        actions.append(action)
    return make_plan(policies.source, policies.commit, observation.observed_at, actions, errors,
                     fingerprint(observation, deployed), warnings)


def _states_or_planned(repositories: tuple[RepositoryState, ...] | tuple[PlannedRepository, ...]
                       ) -> tuple[tuple[RepositoryState, ...], tuple[PlannedRepository, ...]]:
    from reconcile.observe.state import PlannedRepository

    planned = tuple(r for r in repositories if isinstance(r, PlannedRepository))
    states = tuple(r for r in repositories if not isinstance(r, PlannedRepository))
    if planned and states:
        raise ValueError("a RetentionPolicy's repositories are all states or all planned, not both")
    return states, planned


def _put_together(policy: RetentionPolicy, inputs: RetentionInputs, planned: tuple[PlannedRepository, ...]
                  ) -> tuple[list[Action], list[str]]:
    """``plan_retention`` and ``rank_warnings`` from repositories planned one at a time: blocked as a
    whole when a protecting source is unreadable, else their actions by repository name within
    ``maxDeletions``; the warnings by rule, then repository."""
    from reconcile.plan.retention import unreadable, within_max_deletions

    found = [(index, n, warning) for n, r in enumerate(planned) for index, warning in r.warnings]
    warnings = [warning for _, _, warning in sorted(found, key=lambda item: (item[0], item[1]))]
    blocked = unreadable(policy, inputs)
    if blocked:
        return blocked, warnings
    if not all(r.planned for r in planned):  # planned from other inputs than these (or not at all): never guess
        raise ValueError(f"RetentionPolicy/{policy.name}: its repositories were not planned from this observation's "
                         "protecting sources")
    actions = [a for r in sorted(planned, key=lambda r: r.repository) for a in r.actions]
    return within_max_deletions(policy, actions), warnings


def deploy_targets(policies: PolicySet, health: Mapping[str, DeployHealth | str],
                   written: Mapping[str, DeployHealth | str], registry: str) -> dict[str, DeployHealth | str]:
    """What each DeployPolicy taking its images from ``registry`` runs (or pins) now: retention there
    never prunes it. ``health`` and ``written`` are the observation's."""
    targets: dict[str, DeployHealth | str] = {}
    for name, deploy in policies.deploy_policies.items():
        if policies.promotion_policies[deploy.promotion].stage(deploy.stage).registry == registry:
            targets[name] = (health if deploy.manifests is None else written).get(name, "not observed")
    return targets


def fingerprint(observation: Observation, deployed: Mapping[str, Sequence[str]] | None) -> str:
    """SHA-256 of everything a plan was decided on except the time: every tag and the digest it
    points at, the untagged manifests, what each cluster uses, git commits and the deploy
    history. Same world, same fingerprint, hence the same plan for the same policies.

    What is hashed is ``json.dumps(world, sort_keys=True)`` of the document below, in which each
    repository's tags are their :func:`tags_hash`: a streamed observation hashes a repository's
    tags when it is observed and keeps only that (:class:`~reconcile.observe.state.PlannedRepository`),
    so the fingerprint is the same whether the states were kept or not."""
    from reconcile.observe.state import PlannedRepository

    retention: dict[str, object] = {}
    world: dict[str, object] = {
        "clusters": {name: state if isinstance(state, str) else sorted(str(ref) for ref in state.images)
                     for name, state in sorted(observation.clusters.items())},
        "deployed": None if deployed is None else {k: list(v) for k, v in sorted(deployed.items())},
        "retention": retention,
    }
    world["promotion"] = {name: {stage: state if isinstance(state, str) else tags_hash(state)
                                 for stage, state in sorted(stages.items())}
                          for name, stages in sorted(observation.promotion.items())}
    for part in ("health", "written"):  # what deploys run now (absent when there are none: older plans agree)
        states = getattr(observation, part)
        if states:
            world[part] = {name: state if isinstance(state, str) else [state.digest, state.healthy]
                           for name, state in sorted(states.items())}
    for name, seen in sorted(observation.retention.items()):
        repositories = seen.repositories if isinstance(seen.repositories, str) else {
            f"{r.registry}/{r.repository}": r.tags_hash if isinstance(r, PlannedRepository) else tags_hash(r)
            for r in seen.repositories}
        commits = {str(i): _commits_json(c) for i, c in sorted(seen.git_commits.items())}
        retention[name] = {"repositories": repositories, "commits": commits}
    hasher = hashlib.sha256()
    _hash_json(hasher, world)
    return hasher.hexdigest()


def tags_hash(state: RepositoryState) -> str:
    """A repository's part of the fingerprint: the SHA-256 (hex) of ``json.dumps`` of its (tag,
    digest) pairs, sorted, fed to the hash a pair at a time (the same bytes, without the text),
    followed, when it has untagged manifests, by ``{"untagged": [digests, sorted]}`` (absent when
    it has none, so a repository without them hashes as before untagged manifests were observed).

    Push times (``state.pushed``) are not hashed: each is said of a digest hashed here already (a
    tag's, or an untagged one), and leaving them out keeps a fingerprint the same whether or not
    the registry's listing gives them. One that moved (the same digest pushed again) matters only
    if it changes what the plan decides, and a saved plan is applied only when planning again gives
    the same actions (``reconcile.reconciler.saved.check_saved``): such a plan is refused anyway."""
    hasher = hashlib.sha256(b"[")
    for index, pair in enumerate(sorted((tag, d.digest) for tag, d in state.tags.items())):
        hasher.update(((", " if index else "") + json.dumps(pair)).encode())
    if state.untagged:
        hasher.update(((", " if state.tags else "") + json.dumps({"untagged": sorted(state.untagged)})).encode())
    hasher.update(b"]")
    return hasher.hexdigest()


def _commits_json(commits: GitCommits) -> object:
    """A gitRefs rule's part of the fingerprint: its live commits sorted (as before histories
    existed, so such plans keep their fingerprints), its refs' histories, or why unreadable."""
    if isinstance(commits, str):
        return commits
    if isinstance(commits, frozenset):
        return sorted(commits)
    return {"depth": commits.depth, "refs": [[ref.ref, ref.created, ref.truncated, [list(c) for c in ref.commits]]
                                             for ref in commits.refs]}


def _hash_json(hasher: hashlib._Hash, value: object) -> None:
    """Feed ``hasher`` the bytes of ``json.dumps(value, sort_keys=True)``, a dict member at a time
    (JSON without indentation is the same text wherever a value sits, so each part is encoded on
    its own)."""
    if isinstance(value, dict):
        hasher.update(b"{")
        for index, (key, item) in enumerate(sorted(value.items(), key=lambda member: member[0])):
            hasher.update(((", " if index else "") + json.dumps(key) + ": ").encode())
            _hash_json(hasher, item)
        hasher.update(b"}")
    else:
        hasher.update(json.dumps(value, sort_keys=True).encode())
