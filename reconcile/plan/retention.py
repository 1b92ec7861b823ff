"""Retention: which tags a RetentionPolicy prunes, and why every other one stays. Pure.

Order of reasoning, per repository: keep rules select what the policy wants (a tag a rule's
order cannot rank is kept by that rule); protections (images in use, what DeployPolicies'
targets run or pin now, the rollback window) keep what no rule may remove; every digest reachable
from a kept one (platform manifests of a kept index, referrers of a kept image) is kept too, and
a kept digest is never deleted, whatever points at it. What is left is pruned by digest, followed
by its dependants: platform manifests and referrers that nothing keeps. A policy whose
protecting sources cannot be read prunes nothing.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import NamedTuple

from reconcile.observe.state import (
    ClusterState,
    DeployHealth,
    Descriptor,
    GitCommits,
    GitHistories,
    Image,
    RepositoryState,
)
from reconcile.plan import git_history
from reconcile.plan.actions import Action, ActionKind, Block, Cause
from reconcile.policy.durations import format_duration
from reconcile.policy.model import KeepRule, RetentionPolicy
from reconcile.policy.ordering import by_rank, number, rank_key, version_part, why_unranked
from reconcile.policy.semver import Version

# Tags that name their subject sha256:<hex>: cosign's signatures, attestations and SBOMs, and the OCI 1.1
# referrers tag schema (an index of the referrers, for registries without the referrers API)
REFERRER_TAG = re.compile(r"^sha256-(?P<hex>[0-9a-f]{64})(\.(sig|att|sbom))?$")

KEEP, UNTAG, PRUNE, BLOCKED = ActionKind.KEEP, ActionKind.UNTAG, ActionKind.PRUNE, ActionKind.BLOCKED


class _Why(NamedTuple):
    """Why something is kept: the cause as data, and the words."""

    cause: Cause
    text: str


@dataclass(frozen=True)
class RetentionInputs:
    """Everything a retention decision depends on, already observed."""

    registry_host: str  # host[:port] of the policy's registry, to match tag-only references in clusters
    repositories: Sequence[RepositoryState]
    clusters: Mapping[str, ClusterState | str] = field(default_factory=dict)  # or why it could not be read
    deployed: Mapping[str, Sequence[str]] | None = field(default_factory=dict)  # DeployPolicy -> digests,
    # newest first, from the audit trail; None when the trail could not be read
    git_commits: Mapping[int, GitCommits] = field(default_factory=dict)  # keep[i] -> commit SHAs, or (a rule
    # with imagesPerReference or limit) its refs' histories, or why the source repository could not be read
    deploy_targets: Mapping[str, DeployHealth | str] = field(default_factory=dict)  # DeployPolicy deploying
    # from this registry -> what its workloads run (cluster) or its manifests pin (write-back) now, or why unknown


def plan_retention(policy: RetentionPolicy, inputs: RetentionInputs, now: datetime) -> list[Action]:
    """The actions for one policy: prunes and untags, and a ``keep`` for every tag that stays.

    The composition of the per-repository steps a streamed plan takes one repository at a time
    (:mod:`reconcile.plan.stream`): :func:`unreadable`, then :func:`protection` once, then
    :func:`plan_repository` for each repository by name, then :func:`within_max_deletions`."""
    blocked = unreadable(policy, inputs)
    if blocked:
        return blocked
    protected = protection(policy, inputs)
    actions: list[Action] = []
    for repository in sorted(inputs.repositories, key=lambda r: r.repository):
        actions += plan_repository(policy, inputs, protected, repository, now)
    return within_max_deletions(policy, actions)


def unreadable(policy: RetentionPolicy, inputs: RetentionInputs) -> list[Action]:
    """A ``blocked`` action for each protecting source that could not be read (then nothing is
    pruned, whatever the repositories hold), else none. ``inputs.repositories`` is not looked at."""
    subject = f"RetentionPolicy/{policy.name}"
    return [Action(subject, BLOCKED, f"{policy.registry}", reason=f"{why}; nothing is pruned",
                   block=Block.UNREADABLE, cause=cause) for cause, why in _unreadable_sources(policy, inputs)]


def protection(policy: RetentionPolicy, inputs: RetentionInputs) -> _Protected:
    """What the policy's protections keep in any repository (clusters' images, deploy history,
    deploy targets): computed once per policy, from readable sources only (see :func:`unreadable`).
    ``inputs.repositories`` is not looked at."""
    return _protected_digests(policy, inputs)


def plan_repository(policy: RetentionPolicy, inputs: RetentionInputs, protected: _Protected,
                    repository: RepositoryState, now: datetime) -> list[Action]:
    """One repository's actions, the repository's part of :func:`plan_retention` (before the
    policy's ``maxDeletions``, which counts every repository's): a function of the repository and
    of what is protected, nothing else (``inputs.git_commits`` for gitRefs rules; not
    ``inputs.repositories``)."""
    subject = f"RetentionPolicy/{policy.name}"
    planned = _plan_repository(policy, subject, repository, inputs, protected, now)
    changes = [a for a in planned if a.mutates]
    if changes and not repository.can_delete:
        where = f"{repository.registry}/{repository.repository}"
        planned = [Action(subject, BLOCKED, where, reason=(
            f"Registry {policy.registry} declares deletion: none, so the {len(changes)} deletions this policy "
            "asks for cannot be made; nothing is pruned (enable deletion on the registry and set "
            "spec.deletion, or drop the policy)"), block=Block.CANNOT_DELETE, cause=Cause.DELETION_DISABLED)] + [
                a for a in planned if not a.mutates]
    return planned


def within_max_deletions(policy: RetentionPolicy, actions: list[Action]) -> list[Action]:
    """Every repository's actions (by repository name), unless together they delete more tags than
    ``maxDeletions``: then one ``blocked`` action and only the actions that change nothing."""
    subject = f"RetentionPolicy/{policy.name}"
    deletions = sum(len(a.tags) or 1 for a in actions if a.kind is PRUNE) + sum(
        1 for a in actions if a.kind is UNTAG)
    if deletions > policy.max_deletions:
        return [Action(subject, BLOCKED, policy.registry, reason=(
            f"would delete {deletions} tags, over maxDeletions {policy.max_deletions}; nothing is pruned "
            "(raise maxDeletions or narrow the policy if this is intended)"), block=Block.OVER_LIMIT,
            cause=Cause.OVER_MAX_DELETIONS)] + [a for a in actions if not a.mutates]
    return actions


def rank_warnings(policy: RetentionPolicy, repositories: Sequence[RepositoryState]) -> list[str]:
    """Keep rules whose order could rank none of the tags they select in a repository: all of those
    are kept (fail closed), which is rarely what the rule's author meant. By rule, then by
    repository in the order given (:func:`repository_rank_warnings` of each)."""
    found = [(index, n, warning) for n, repo in enumerate(repositories)
             for index, warning in repository_rank_warnings(policy, repo)]
    return [warning for _, _, warning in sorted(found, key=lambda item: (item[0], item[1]))]


def repository_rank_warnings(policy: RetentionPolicy, repo: RepositoryState) -> list[tuple[int, str]]:
    """:func:`rank_warnings` for one repository, each with the index of its keep rule."""
    warnings = []
    for index, rule in enumerate(policy.keep):
        if rule.last is None or rule.git_refs is not None:
            continue
        parts = {tag: part for tag, d in repo.tags.items()
                 if (part := _selected(tag, rule, repo.tags_of(d.digest))) is not None}
        order = rule.order or ("semver" if rule.semver is not None else "newest")
        if not parts or order in ("alphabetical", "newest"):
            continue  # an inferred order ranks each kind; missing creation times are reported per tag
        if all(rank_key(order, part, None, strict_semver=rule.strict_semver) is None for part in parts.values()):
            example = min(parts)
            why = why_unranked(order, parts[example], rule.tags.pattern if rule.tags is not None else None,
                               rule.tags is None or not rule.tags.groups)
            warnings.append((index, f"RetentionPolicy/{policy.name} keep[{index}]: order {order} can rank none "
                                    f"of the {len(parts)} tags it selects in {repo.repository}, so all are kept: "
                                    f"{why}"))
    return warnings


def _unreadable_sources(policy: RetentionPolicy, inputs: RetentionInputs) -> list[tuple[Cause, str]]:
    """Fail closed: a protection we cannot evaluate means we cannot know what is safe to delete."""
    problems = []
    for name in sorted({*policy.protect.in_use, *policy.protect.helm_releases}):
        state = inputs.clusters.get(name)
        if state is None:
            problems.append((Cause.CLUSTER_UNREADABLE, f"cluster {name} was not observed"))
        elif isinstance(state, str):
            problems.append((Cause.CLUSTER_UNREADABLE, f"cluster {name} could not be read: {state}"))
    for name, target in sorted(inputs.deploy_targets.items()):
        if isinstance(target, str):
            problems.append((Cause.CLUSTER_UNREADABLE, f"what DeployPolicy/{name} runs could not be read: {target}"))
    if policy.protect.deployed_history and inputs.deployed is None:
        problems.append((Cause.AUDIT_UNREADABLE, "the audit trail (deploy history) could not be read"))
    for index, commits in sorted(inputs.git_commits.items()):
        if isinstance(commits, str):
            problems.append((Cause.GIT_UNREADABLE,
                             f"keep[{index}].gitRefs: the source repository could not be read: {commits}"))
    for index, rule in enumerate(policy.keep):
        if rule.git_refs is not None and index not in inputs.git_commits:
            problems.append((Cause.GIT_UNREADABLE, f"keep[{index}].gitRefs: the source repository was not read"))
    return problems


@dataclass(frozen=True)
class _Protected:
    in_use: frozenset[str]  # digests running or kept for rollback in a protecting cluster
    in_use_tags: frozenset[tuple[str, str]]  # (repository, tag) referenced by tag only
    deployed: Mapping[str, str]  # digest -> DeployPolicy that deployed it recently
    deploy_targets: Mapping[str, str]  # digest -> DeployPolicy whose target runs or pins it now
    # what of in_use / in_use_tags no protecting cluster runs, only keeps for rollback (old ReplicaSets…)
    rollback_only: frozenset[str | tuple[str, str]] = frozenset()

    def use(self, used: str | tuple[str, str]) -> Cause:
        return Cause.ROLLBACK_HISTORY if used in self.rollback_only else Cause.IN_USE


def _protected_digests(policy: RetentionPolicy, inputs: RetentionInputs) -> _Protected:
    digests: set[str] = set()
    tags: set[tuple[str, str]] = set()
    running: set[str | tuple[str, str]] = set()
    for name in sorted({*policy.protect.in_use, *policy.protect.helm_releases}):
        state = inputs.clusters[name]
        assert isinstance(state, ClusterState)
        for reference, usages in state.images.items():
            used: str | tuple[str, str]
            if reference.digest:
                used = reference.digest
                digests.add(used)
            elif reference.tag and reference.registry == inputs.registry_host:
                used = (reference.repository, reference.tag)
                tags.add(used)
            else:
                continue
            if not usages or any(u.state != "rollback" for u in usages):
                running.add(used)
    deployed: dict[str, str] = {}
    if policy.protect.deployed_history:
        for deploy_policy, history in sorted((inputs.deployed or {}).items()):
            for digest in history[: policy.protect.deployed_history]:
                deployed.setdefault(digest, deploy_policy)
    targets = {target.digest: name for name, target in sorted(inputs.deploy_targets.items(), reverse=True)
               if isinstance(target, DeployHealth) and target.digest}
    used_anyhow: set[str | tuple[str, str]] = {*digests, *tags}
    return _Protected(frozenset(digests), frozenset(tags), deployed, targets, frozenset(used_anyhow - running))


def _plan_repository(policy: RetentionPolicy, subject: str, repo: RepositoryState, inputs: RetentionInputs,
                     protected: _Protected, now: datetime) -> list[Action]:
    where = f"{repo.registry}/{repo.repository}"
    referrer_tags = {tag for tag in repo.tags if REFERRER_TAG.match(tag)}
    # What keep rules decide on: tags (but referrer tags, which follow their subject), and with
    # spec.untagged prune the untagged manifests, keyed '@<digest>' (no tag has an '@').
    candidates = {tag: d for tag, d in repo.tags.items() if tag not in referrer_tags}
    if policy.untagged == "prune":
        candidates.update(_untagged_roots(repo))
    why_kept = _rules_keep(policy, candidates, repo, inputs.git_commits, now)
    for tag, descriptor in sorted(candidates.items()):
        if tag in why_kept:
            continue
        protection = (_digest_protection(descriptor.digest, protected) if _is_untagged(tag)
                      else _protection(repo.repository, tag, descriptor.digest, protected))
        running_children = [c.digest for c in _children(repo.images.get(descriptor.digest))
                            if c.digest in protected.in_use]
        if protection is None and running_children:  # a cluster runs one platform of this multi-arch image
            protection = _Why(protected.use(running_children[0]), (
                f"protected: its platform manifest {_short(running_children[0])} runs in a protecting cluster"))
        if protection:
            why_kept[tag] = protection
    graph = _Graph(repo, referrer_tags)
    kept = graph.kept(why_kept, candidates, protected)
    # Keeping an orphaned signature can keep what its subject's deletion would have taken: repeat
    # until nothing new is kept (kept only grows, so this ends).
    while graph.keep_orphans(referrer_tags, {d.digest for t, d in candidates.items()
                                             if t not in why_kept and d.digest not in kept}, kept):
        pass
    actions: list[Action] = []
    doomed: dict[str, list[str]] = {}
    # Not kept: past what a rule that selects it keeps, or selected by no rule at all.
    expired = {tag for tag, d in candidates.items() if tag not in why_kept and any(
        _selects(rule, tag, repo.images.get(d.digest), repo.tags_of(d.digest)) for rule in policy.keep)}
    for tag, descriptor in sorted(candidates.items()):
        digest = descriptor.digest
        if _is_untagged(tag):
            if digest in kept:
                why = why_kept.get(tag) or kept[digest]
                actions.append(Action(subject, KEEP, f"{where}@{digest}", digest, digest,
                                      f"untagged manifest: {why.text}", cause=why.cause))
            else:
                doomed.setdefault(digest, [])
        elif tag in why_kept:
            actions.append(Action(subject, KEEP, f"{where}:{tag}", digest, digest, why_kept[tag].text,
                                  cause=why_kept[tag].cause))
        elif digest in kept and not policy.untag_others:
            actions.append(Action(subject, KEEP, f"{where}:{tag}", digest, digest, (
                f"no rule keeps the tag, but its image stays ({kept[digest].text}), and a kept image keeps "
                "every tag (untagOthers: true removes such tags)"), cause=Cause.IMAGE_KEPT))
        elif digest in kept:
            if repo.can_delete_tags:
                actions.append(Action(subject, UNTAG, f"{where}:{tag}", digest, None,
                                      f"no rule keeps it; its digest stays: {kept[digest].text}", (tag,),
                                      cause=Cause.EXPIRED if tag in expired else Cause.NO_RULE_MATCHES))
            else:
                actions.append(Action(subject, KEEP, f"{where}:{tag}", digest, digest, (
                    f"no rule keeps it, but this registry cannot remove a tag alone and deleting "
                    f"{_short(digest)} would remove what is kept: {kept[digest].text}"), cause=Cause.CANNOT_UNTAG))
        else:
            doomed.setdefault(digest, []).append(tag)
    scheduled: set[str] = set(doomed)
    tags_on = _tags_by_digest(repo) if doomed else {}  # (repo.tags_of, but not kept after this repository)
    for digest in sorted(doomed):
        untagged_expired = f"@{digest}" in expired
        top = Action(subject, PRUNE, f"{where}@{digest}", digest, None, _prune_reason(
            tags_on.get(digest, ()), digest, doomed[digest], graph, kept, untagged_expired), tags_on.get(digest, ()),
            cause=Cause.EXPIRED if untagged_expired or expired.intersection(doomed[digest]) else Cause.NO_RULE_MATCHES)
        actions.append(top)
        actions += _dependants(subject, where, tags_on, digest, top.target, graph, kept, scheduled)
    for tag in sorted(referrer_tags):
        digest = repo.tags[tag].digest
        subject_digest = _referred_digest(tag)
        if digest in scheduled:
            continue  # removed with its subject's (or its own) deletion above
        why = kept.get(digest, _Why(Cause.DEPENDANT_OF_KEPT,
                                    f"referrer of {_short(subject_digest)}, which is not pruned"))
        actions.append(Action(subject, KEEP, f"{where}:{tag}", digest, digest, why.text, cause=why.cause))
    return actions


class _Graph:
    """What refers to what inside one repository: index children and referrers (the OCI 1.1
    ``subject`` / referrers API, or cosign's ``sha256-<hex>.sig|.att|.sbom`` tags naming it)."""

    def __init__(self, repo: RepositoryState, referrer_tags: set[str]) -> None:
        self.repo = repo
        self.referrers: dict[str, dict[str, Descriptor]] = {}
        for subject_digest, found in repo.referrers.items():
            for descriptor in found:
                self.referrers.setdefault(subject_digest, {})[descriptor.digest] = descriptor
        for digest, image in repo.images.items():
            if image.subject:
                self.referrers.setdefault(image.subject, {}).setdefault(
                    digest, Descriptor(image.media_type, digest, 0, artifact_type=image.artifact_type))
        for tag in referrer_tags:
            subject_digest = _referred_digest(tag)
            self.referrers.setdefault(subject_digest, {}).setdefault(repo.tags[tag].digest, repo.tags[tag])

    def children(self, digest: str) -> tuple[Descriptor, ...]:
        return _children(self.repo.images.get(digest))

    def referrers_of(self, digest: str) -> list[Descriptor]:
        found = self.referrers.get(digest, {})
        return [found[d] for d in sorted(found)]

    def kept(self, why_kept: Mapping[str, _Why], candidates: Mapping[str, Descriptor],
             protected: _Protected) -> dict[str, _Why]:
        """Every digest nothing may delete, with why: tagged by a kept tag, protected, or reachable
        from one of those as a platform manifest or a referrer. A kept digest is never deleted,
        whatever else points at it."""
        kept: dict[str, _Why] = {}
        for tag in sorted(why_kept):
            kept.setdefault(candidates[tag].digest, why_kept[tag] if _is_untagged(tag) else
                            _Why(Cause.TAGGED_BY_KEPT, f"tagged {tag}, which is kept"))
        for tag, descriptor in sorted(self.repo.tags.items()):  # referrer tags too: a cluster may run any tag
            if (used := (self.repo.repository, tag)) in protected.in_use_tags:
                kept.setdefault(descriptor.digest,
                                _Why(protected.use(used), f"protected: a protecting cluster runs {tag}"))
        # Protected digests count whether or not this repository's observation holds them: an
        # untagged image running in a cluster still keeps its SBOM.
        for digest in sorted({*protected.in_use, *protected.deploy_targets, *protected.deployed}):
            if digest not in kept and (why := _digest_protection(digest, protected)):
                kept[digest] = why
        return self._closure(kept)

    def _closure(self, kept: dict[str, _Why]) -> dict[str, _Why]:
        pending = sorted(kept)
        while pending:
            digest = pending.pop()
            reached = [(c.digest, f"platform manifest of kept {_short(digest)}") for c in self.children(digest)]
            reached += [(r.digest, f"referrer of kept {_short(digest)}") for r in self.referrers_of(digest)]
            for found, why in reached:
                if found not in kept:
                    kept[found] = _Why(Cause.DEPENDANT_OF_KEPT, why)
                    pending.append(found)
        return kept

    def deletable(self, doomed: set[str], kept: Mapping[str, _Why]) -> set[str]:
        """What pruning ``doomed`` would delete: those digests and, transitively, their platform
        manifests and referrers that nothing keeps."""
        found: set[str] = set()
        pending = sorted(doomed - kept.keys())
        while pending:
            digest = pending.pop()
            if digest in found:
                continue
            found.add(digest)
            pending += [d.digest for d in (*self.children(digest), *self.referrers_of(digest))
                        if d.digest not in kept and d.digest not in found]
        return found

    def keep_orphans(self, referrer_tags: set[str], doomed: set[str], kept: dict[str, _Why]) -> bool:
        """A referrer tag whose subject is not being deleted stays, and so does all it reaches (a
        signature's own signature, an index's referrers). True when that kept something new."""
        deleting = self.deletable(doomed, kept)
        grew = False
        for tag in sorted(referrer_tags):
            digest = self.repo.tags[tag].digest
            subject_digest = _referred_digest(tag)
            if subject_digest in deleting or digest in kept:
                continue
            known = subject_digest in self.repo.images or any(
                d.digest == subject_digest for d in self.repo.tags.values())
            kept[digest] = (_Why(Cause.DEPENDANT_OF_KEPT, f"{tag} names {_short(subject_digest)}, which is not pruned")
                            if known else _Why(Cause.ORPHAN_SIGNATURE, (
                                f"{tag} names {_short(subject_digest)}, which is not in this repository (signatures "
                                "may be kept apart from their images)")))
            grew = True
        if grew:
            self._closure(kept)
        return grew


def _tags_by_digest(repo: RepositoryState) -> dict[str, tuple[str, ...]]:
    """Every digest's tags, sorted (``RepositoryState.tags_of`` of each), in one scan of the tags."""
    grouped: dict[str, list[str]] = {}
    for tag, descriptor in repo.tags.items():
        grouped.setdefault(descriptor.digest, []).append(tag)
    return {digest: tuple(sorted(tags)) for digest, tags in grouped.items()}


def _prune_reason(removes: tuple[str, ...], digest: str, tags: Sequence[str], graph: _Graph,
                  kept: Mapping[str, _Why], untagged_expired: bool = False) -> str:
    if not removes:  # an untagged manifest (spec.untagged: prune)
        reason = f"delete untagged manifest {_short(digest)}: " + (
            "a keep rule selects it but does not keep it" if untagged_expired else
            "no keep rule keeps untagged manifests like it") + ", and no protection applies"
    else:
        reason = f"delete manifest {_short(digest)}, which removes tags {_listed(removes)}: no keep rule or " + (
            "protection applies to them" if set(removes) == set(tags) else f"protection applies to {_listed(tags)}")
    staying = [c for c in graph.children(digest) if c.digest in kept]
    if staying:
        reason += "; its platform manifests " + ", ".join(
            f"{_short(c.digest)}{f' ({c.platform})' if c.platform else ''}" for c in staying) + " stay: " + \
            "; ".join(kept[c.digest].text for c in staying)
    return reason


def _dependants(subject: str, where: str, tags_on: Mapping[str, tuple[str, ...]], digest: str, parent: str,
                graph: _Graph, kept: Mapping[str, _Why], scheduled: set[str]) -> list[Action]:
    """What goes with a pruned image: its platform manifests and its referrers, each only if nothing
    keeps it, and each deleted after (and only after) what it depends on."""
    actions: list[Action] = []
    follows = [(c, f"platform manifest{f' ({c.platform})' if c.platform else ''} of pruned {_short(digest)}")
               for c in graph.children(digest)]
    follows += [(r, f"referrer ({r.artifact_type or 'artifact'}) of pruned {_short(digest)}")
                for r in graph.referrers_of(digest)]
    for descriptor, why in follows:
        if descriptor.digest in kept or descriptor.digest in scheduled:
            continue
        scheduled.add(descriptor.digest)
        tags = tags_on.get(descriptor.digest, ())
        removes = f", which removes tags {_listed(tags)}" if tags else ""
        action = Action(subject, PRUNE, f"{where}@{descriptor.digest}", descriptor.digest, None,
                        f"delete manifest {_short(descriptor.digest)}{removes}: {why}", tags, depends_on=parent,
                        cause=Cause.DEPENDANT_OF_PRUNED)
        actions.append(action)
        actions += _dependants(subject, where, tags_on, descriptor.digest, action.target, graph, kept, scheduled)
    return actions


def _rules_keep(policy: RetentionPolicy, candidates: Mapping[str, Descriptor], repo: RepositoryState,
                git_commits: Mapping[int, GitCommits], now: datetime) -> dict[str, _Why]:
    """What the keep rules keep, with why. union: whatever any rule keeps. firstMatch: the first
    rule (by priority) that selects any tag of an image decides; what later rules keep of an image
    already decided does not count (they still rank it among what they select)."""
    tagged = {tag: d for tag, d in candidates.items() if not _is_untagged(tag)}
    why_kept: dict[str, _Why] = {}
    decided: set[str] = set()  # firstMatch: digests a rule has decided
    for index, rule in policy.rules_in_order():
        found = _keep_rule(index, rule, tagged if rule.git_refs is not None else candidates, repo.images,
                           git_commits.get(index), now, repo.pushed, repo.tags_of)
        if policy.keep_mode == "union":
            for tag, why in found:
                why_kept.setdefault(tag, why)
            continue
        for tag, why in found:
            if candidates[tag].digest not in decided:
                why_kept.setdefault(tag, _Why(why.cause, f"{why.text} (keepMode firstMatch: the first rule "
                                                         "that selects this image)"))
        decided.update(d.digest for tag, d in candidates.items()
                       if _selects(rule, tag, repo.images.get(d.digest), repo.tags_of(d.digest)))
    return why_kept


def _is_untagged(key: str) -> bool:
    """A candidate key naming an untagged manifest ('@<digest>') rather than a tag."""
    return key.startswith("@")


def _untagged_roots(repo: RepositoryState) -> dict[str, Descriptor]:
    """The untagged manifests retention decides on, keyed '@<digest>': those no tag points at and
    nothing else holds (an index's platform manifests and an image's referrers follow their
    parent, whatever its tags)."""
    if not repo.untagged:
        return {}
    tagged = {d.digest for d in repo.tags.values()}
    held = {c.digest for image in repo.images.values() for c in image.children}
    held.update(d.digest for found in repo.referrers.values() for d in found)
    roots = {}
    for digest in sorted(repo.untagged - tagged - held):
        image = repo.images.get(digest)
        if image is None or image.subject:
            continue  # not read, or an artifact that follows its subject: it stays
        roots[f"@{digest}"] = Descriptor(image.media_type, digest, 0)
    return roots


def _keep_rule(index: int, rule: KeepRule, tags: Mapping[str, Descriptor], images: Mapping[str, Image],
               commits: GitCommits | None, now: datetime,
               pushed: Mapping[str, datetime], tags_of: Callable[[str], Sequence[str]]) -> list[tuple[str, _Why]]:
    label = f"keep[{index}]"
    if rule.git_refs is not None:
        if isinstance(commits, GitHistories):  # imagesPerReference, or a limit on the refs (werf's keepPolicies)
            if rule.git_refs.images_per_reference is not None:
                return [(tag, _Why(Cause.GIT_REF, text)) for tag, text in
                        git_history.kept_images(label, rule.git_refs, tags, images, commits, now)]
            commits = git_history.live_commits(commits, rule.git_refs, now)
        assert isinstance(commits, frozenset)  # unreadable sources blocked the policy earlier
        return [(tag, _Why(Cause.GIT_REF,
                           f"{label}: built from commit {commit[:12]}, among the latest of a live git ref"))
                for tag, d in sorted(tags.items())
                if (commit := _commit_of(tag, images.get(d.digest), rule, commits))]
    parts = {tag: part for tag, d in tags.items() if (part := _selected(tag, rule, tags_of(d.digest))) is not None}
    selected = sorted(parts)
    if rule.last is None and rule.newer_than is None:
        every = _Why(Cause.KEPT_BY_RULE, f"{label}: {_selector(rule)}")  # one reason, shared by every tag it keeps
        return [(tag, every) for tag in selected]
    by_last: dict[str, str] = {}  # tag -> the order that placed it among the newest
    unranked: dict[str, tuple[str, str]] = {}  # tag -> (order, why it cannot rank it)
    orders = _orders(rule, parts) if rule.last is not None else []
    if rule.last is not None:
        whole = rule.tags is None or not rule.tags.groups
        pattern_text = rule.tags.pattern if rule.tags is not None else None
        for order, group in orders:
            def key(tag: str, order: str = order) -> object | None:
                return rank_key(order, parts[tag], _time(rule, tags[tag].digest, images, pushed),
                                strict_semver=rule.strict_semver)
            ranked, cannot = by_rank(order, key, group, descending=rule.descending)
            by_last.update((tag, order) for tag in _last(rule, ranked, tags))
            # Fail closed: a tag the order cannot place might be the newest, so it is kept.
            unranked.update((tag, (order, why_unranked(order, parts[tag], pattern_text, whole, rule.age)))
                            for tag in cannot)
    young: dict[str, str] = {}
    if rule.newer_than is not None:
        verb = "pushed" if rule.age == "pushed" else "created"
        for tag in selected:
            created = _time(rule, tags[tag].digest, images, pushed)
            if created is None:
                young[tag] = f"{'push' if rule.age == 'pushed' else 'creation'} time unknown, so its age cannot " \
                             "count against it"
            elif created > now:
                young[tag] = f"{verb} in the future (clock skew?), so it counts as new"
            elif now - created < rule.newer_than:
                young[tag] = f"{verb} {format_duration(now - created)} ago, within {format_duration(rule.newer_than)}"
    kept = []
    shared: dict[str, _Why] = {}  # one object per distinct reason: most kept tags share theirs with many
    for tag in selected:
        if tag in unranked:
            order, why = unranked[tag]
            kept.append((tag, _Why(Cause.UNRANKABLE, f"{label}: {_selector(rule)}, kept because "
                                                     f"{_order_name(order, rule)} order cannot rank it: {why}")))
            continue
        in_last, is_young = tag in by_last, tag in young
        if rule.last is None:
            keep = is_young
        elif rule.newer_than is None:
            keep = in_last
        else:
            keep = (in_last or is_young) if rule.operator == "Or" else (in_last and is_young)
        if keep:
            reasons = []
            if in_last:
                kind = "" if len(orders) == 1 else {
                    "semver": " of the versions", "numeric": " of the numbers", "newest": " of the other tags"}[
                    by_last[tag]]
                end = "lowest" if rule.descending else "newest"  # descending: the order reversed
                counted = " images" if rule.count == "images" else ""
                reasons.append(f"among the {rule.last} {end}{counted}{kind} by {_order_name(by_last[tag], rule)}"
                               f"{' (descending)' if rule.descending else ''}")
            if is_young:
                reasons.append(young[tag])
            text = f"{label}: {_selector(rule)}, " + " and ".join(reasons)
            kept.append((tag, shared.setdefault(text, _Why(Cause.KEPT_BY_RULE, text))))
    return kept


def _selects(rule: KeepRule, tag: str, image: Image | None, image_tags: Sequence[str] = ()) -> bool:
    """Whether a keep rule considers ``tag`` at all (so a tag it does not keep is past what it keeps):
    its pattern and semver range match (and withTags, on the tags of its image), or, for gitRefs,
    the tag names a commit."""
    if rule.git_refs is None:
        return _selected(tag, rule, image_tags) is not None
    if _is_untagged(tag):
        return False  # gitRefs rules select tagged images
    refs = rule.git_refs
    return bool((refs.tag_commit is not None and refs.tag_commit.search(tag)) or (
        refs.revision_label and image is not None and image.revision))


def _selected(tag: str, rule: KeepRule, image_tags: Sequence[str] = ()) -> str | None:
    """The tag's version part if the rule selects it (its pattern matches, that part is in the
    semver range, and each withTags pattern matches one of ``image_tags``, the tags of its image),
    else None. An untagged manifest ('@<digest>') has the empty version part, and only rules of
    tagStatus untagged or any select one (and any selects every tag)."""
    if _is_untagged(tag):
        return "" if rule.tag_status != "tagged" else None
    if rule.tag_status == "untagged":
        return None
    if not all(any(pattern.search(on) for on in image_tags) for pattern in rule.with_tags):
        return None
    part = version_part(rule.tags, tag)
    if part is None:
        return None
    if rule.semver is not None:
        version = Version.try_parse(part, strict=rule.strict_semver)
        if version is None or not rule.semver.contains(version):
            return None
    return part


def _selector(rule: KeepRule) -> str:
    parts = [] if rule.tag_status == "tagged" else [f"{rule.tag_status} images"]
    if rule.tags is not None:
        parts.append(f"matches '{rule.tags.pattern}'")
    if rule.semver is not None:
        parts.append(f"within semver '{rule.semver}'")
    if rule.with_tags:
        parts.append("on an image with tags matching " + " and ".join(f"'{p.pattern}'" for p in rule.with_tags))
    return " and ".join(parts) or "any tag"


def _orders(rule: KeepRule, parts: Mapping[str, str]) -> list[tuple[str, list[str]]]:
    """How 'last' ranks the selected tags: all by the rule's order (semver with a semver range);
    without one, each kind among its own kind, last N of each: versions by semver, numbers by
    value, the other tags by creation time. A tag's kind is its own, not inferred from the others,
    so pruning some never changes how the rest rank (the next plan agrees with this one)."""
    if rule.order is not None or rule.semver is not None:
        return [(rule.order or "semver", sorted(parts))]
    groups: dict[str, list[str]] = {"semver": [], "numeric": [], "newest": []}
    for tag, part in sorted(parts.items()):
        kind = "semver" if Version.try_parse(part, strict=rule.strict_semver) else \
            "numeric" if number(part) is not None else "newest"
        groups[kind].append(tag)
    return [(order, group) for order, group in groups.items() if group]


def _order_name(order: str, rule: KeepRule | None = None) -> str:
    if order != "newest":
        return order
    return "push time" if rule is not None and rule.age == "pushed" else "creation time"


def _time(rule: KeepRule, digest: str, images: Mapping[str, Image], pushed: Mapping[str, datetime] | None
          ) -> datetime | None:
    """The time a rule's newerThan and order newest look at: the image's creation, or its push."""
    if rule.age == "pushed":
        return (pushed or {}).get(digest)
    image = images.get(digest)
    return image.created if image is not None else None


def _last(rule: KeepRule, ranked: list[str], tags: Mapping[str, Descriptor]) -> list[str]:
    """The tags among the newest ``rule.last`` of ``ranked`` (oldest first): the last N tags, or
    with count images every tag of the newest N images (an image ranks by its newest tag)."""
    assert rule.last is not None
    if rule.count == "tags":
        return ranked[-rule.last:]
    newest: set[str] = set()
    for tag in reversed(ranked):
        if len(newest) == rule.last:
            break
        newest.add(tags[tag].digest)
    return [tag for tag in ranked if tags[tag].digest in newest]


def _children(image: Image | None) -> tuple[Descriptor, ...]:
    return image.children if image is not None else ()


def _commit_of(tag: str, image: Image | None, rule: KeepRule, commits: frozenset[str]) -> str | None:
    refs = rule.git_refs
    assert refs is not None
    candidates = []
    if refs.tag_commit is not None and (match := refs.tag_commit.search(tag)):
        candidates.append((match.group("commit") or "").lower())
    if refs.revision_label and image is not None and image.revision:
        candidates.append(image.revision.lower())
    for prefix in candidates:
        if len(prefix) >= 7 and (commit := _live_commit_named(prefix, commits)) is not None:
            return commit
    return None


def _live_commit_named(prefix: str, commits: frozenset[str]) -> str | None:
    """The live commit a full SHA or an abbreviated one (7 hex digits or more) names: a bisection
    of the sorted SHAs, not a scan. An ambiguous prefix is resolved conservatively: it names a live
    commit if any live commit starts with it (the first in SHA order is the one shown), even though
    it may name some other commit of the repository too; the image is kept."""
    ordered = _sorted_commits(commits)
    at = bisect_left(ordered, prefix)
    return ordered[at] if at < len(ordered) and ordered[at].startswith(prefix) else None


@lru_cache(maxsize=16)
def _sorted_commits(commits: frozenset[str]) -> tuple[str, ...]:
    """Sorted once per rule's set of live commits, however many repositories and tags look it up."""
    return tuple(sorted(commits))


def _protection(repository: str, tag: str, digest: str, protected: _Protected) -> _Why | None:
    if (used := (repository, tag)) in protected.in_use_tags:
        return _Why(protected.use(used), "protected: a protecting cluster runs this tag")
    return _digest_protection(digest, protected)


def _digest_protection(digest: str, protected: _Protected) -> _Why | None:
    if digest in protected.in_use:
        return _Why(protected.use(digest),
                    f"protected: {_short(digest)} is running or kept for rollback in a protecting cluster")
    if digest in protected.deploy_targets:
        return _Why(Cause.DEPLOY_TARGET, f"protected: DeployPolicy/{protected.deploy_targets[digest]}'s target runs "
                                         f"or pins {_short(digest)} now")
    if digest in protected.deployed:
        return _Why(Cause.DEPLOYED_HISTORY,
                    f"protected: among the last digests DeployPolicy/{protected.deployed[digest]} deployed")
    return None


def _referred_digest(tag: str) -> str:
    """The digest a referrer tag (``sha256-<hex>[.sig|.att|.sbom]``) names."""
    found = REFERRER_TAG.match(tag)
    if found is None:
        raise ValueError(f"{tag!r} is not a referrer tag")
    return "sha256:" + found["hex"]


def _short(digest: str) -> str:
    return digest[:19]  # sha256: + 12 hex digits


def _listed(tags: Sequence[str]) -> str:
    return ", ".join(sorted(tags))
