"""Retention: which tags a RetentionPolicy prunes, and why every other one stays. Pure.

Order of reasoning, per repository: keep rules select what the policy wants; protections
(images in use, what DeployPolicies' targets run or pin now, the rollback window, digests shared
with kept tags, children of kept indexes, referrers of kept images) keep what no rule may remove;
what is left is pruned by digest, with its referrers. A policy whose protecting sources cannot be
read prunes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from reconcile.observe.state import ClusterState, DeployHealth, Descriptor, Image, RepositoryState
from reconcile.plan.actions import Action
from reconcile.policy.durations import format_duration
from reconcile.policy.model import KeepRule, RetentionPolicy
from reconcile.policy.semver import Version

# cosign's tag schema for signatures, attestations and SBOMs of sha256:<hex>: they follow their subject
REFERRER_TAG = re.compile(r"^sha256-(?P<hex>[0-9a-f]{64})\.(sig|att|sbom)$")


@dataclass(frozen=True)
class RetentionInputs:
    """Everything a retention decision depends on, already observed."""

    registry_host: str  # host[:port] of the policy's registry, to match tag-only references in clusters
    repositories: Sequence[RepositoryState]
    clusters: Mapping[str, ClusterState | str] = field(default_factory=dict)  # or why it could not be read
    deployed: Mapping[str, Sequence[str]] | None = field(default_factory=dict)  # DeployPolicy -> digests,
    # newest first, from the audit trail; None when the trail could not be read
    git_commits: Mapping[int, frozenset[str] | str] = field(default_factory=dict)  # keep[i] -> commit SHAs,
    # or why the source repository could not be read
    deploy_targets: Mapping[str, DeployHealth | str] = field(default_factory=dict)  # DeployPolicy deploying
    # from this registry -> what its workloads run (cluster) or its manifests pin (write-back) now, or why unknown


def plan_retention(policy: RetentionPolicy, inputs: RetentionInputs, now: datetime) -> list[Action]:
    """The actions for one policy: prunes and untags, and a ``keep`` for every tag that stays."""
    subject = f"RetentionPolicy/{policy.name}"
    blocked = _unreadable_sources(policy, inputs)
    if blocked:
        return [Action(subject, "blocked", f"{policy.registry}", reason=f"{why}; nothing is pruned")
                for why in blocked]
    protected = _protected_digests(policy, inputs)
    actions: list[Action] = []
    for repository in sorted(inputs.repositories, key=lambda r: r.repository):
        actions += _plan_repository(policy, subject, repository, inputs, protected, now)
    deletions = sum(len(a.tags) or 1 for a in actions if a.kind == "prune") + sum(
        1 for a in actions if a.kind == "untag")
    if deletions > policy.max_deletions:
        return [Action(subject, "blocked", policy.registry, reason=(
            f"would delete {deletions} tags, over maxDeletions {policy.max_deletions}; nothing is pruned "
            "(raise maxDeletions or narrow the policy if this is intended)"))] + [
            a for a in actions if not a.mutates]
    return actions


def _unreadable_sources(policy: RetentionPolicy, inputs: RetentionInputs) -> list[str]:
    """Fail closed: a protection we cannot evaluate means we cannot know what is safe to delete."""
    problems = []
    for name in sorted({*policy.protect.in_use, *policy.protect.helm_releases}):
        state = inputs.clusters.get(name)
        if state is None:
            problems.append(f"cluster {name} was not observed")
        elif isinstance(state, str):
            problems.append(f"cluster {name} could not be read: {state}")
    for name, target in sorted(inputs.deploy_targets.items()):
        if isinstance(target, str):
            problems.append(f"what DeployPolicy/{name} runs could not be read: {target}")
    if policy.protect.deployed_history and inputs.deployed is None:
        problems.append("the audit trail (deploy history) could not be read")
    for index, commits in sorted(inputs.git_commits.items()):
        if isinstance(commits, str):
            problems.append(f"keep[{index}].gitRefs: the source repository could not be read: {commits}")
    for index, rule in enumerate(policy.keep):
        if rule.git_refs is not None and index not in inputs.git_commits:
            problems.append(f"keep[{index}].gitRefs: the source repository was not read")
    return problems


@dataclass(frozen=True)
class _Protected:
    in_use: frozenset[str]  # digests running or kept for rollback in a protecting cluster
    in_use_tags: frozenset[tuple[str, str]]  # (repository, tag) referenced by tag only
    deployed: Mapping[str, str]  # digest -> DeployPolicy that deployed it recently
    deploy_targets: Mapping[str, str]  # digest -> DeployPolicy whose target runs or pins it now


def _protected_digests(policy: RetentionPolicy, inputs: RetentionInputs) -> _Protected:
    digests: set[str] = set()
    tags: set[tuple[str, str]] = set()
    for name in sorted({*policy.protect.in_use, *policy.protect.helm_releases}):
        state = inputs.clusters[name]
        assert isinstance(state, ClusterState)
        for reference in state.images:
            if reference.digest:
                digests.add(reference.digest)
            elif reference.tag and reference.registry == inputs.registry_host:
                tags.add((reference.repository, reference.tag))
    deployed: dict[str, str] = {}
    if policy.protect.deployed_history:
        for deploy_policy, history in sorted((inputs.deployed or {}).items()):
            for digest in history[: policy.protect.deployed_history]:
                deployed.setdefault(digest, deploy_policy)
    targets = {target.digest: name for name, target in sorted(inputs.deploy_targets.items(), reverse=True)
               if isinstance(target, DeployHealth) and target.digest}
    return _Protected(frozenset(digests), frozenset(tags), deployed, targets)


def _plan_repository(policy: RetentionPolicy, subject: str, repo: RepositoryState, inputs: RetentionInputs,
                     protected: _Protected, now: datetime) -> list[Action]:
    where = f"{repo.registry}/{repo.repository}"
    referrer_tags = {tag for tag in repo.tags if REFERRER_TAG.match(tag)}
    candidates = {tag: d for tag, d in repo.tags.items() if tag not in referrer_tags}
    why_kept: dict[str, str] = {}
    for index, rule in enumerate(policy.keep):
        for tag, reason in _keep_rule(index, rule, candidates, repo.images, inputs.git_commits.get(index), now):
            why_kept.setdefault(tag, reason)
    for tag, descriptor in sorted(candidates.items()):
        if tag in why_kept:
            continue
        reason = _protection(repo.repository, tag, descriptor.digest, protected)
        running_children = [c.digest for c in _children(repo.images.get(descriptor.digest))
                            if c.digest in protected.in_use]
        if reason is None and running_children:  # a cluster runs one platform of this multi-arch image
            reason = f"protected: its platform manifest {_short(running_children[0])} runs in a protecting cluster"
        if reason:
            why_kept[tag] = reason
    kept_digests = {candidates[tag].digest for tag in why_kept}
    # An index keeps its platform manifests: deleting one would break the kept multi-arch image.
    for digest in list(kept_digests):
        kept_digests |= {child.digest for child in _children(repo.images.get(digest))}
    actions: list[Action] = []
    doomed: dict[str, list[str]] = {}
    for tag, descriptor in sorted(candidates.items()):
        digest = descriptor.digest
        if tag in why_kept:
            actions.append(Action(subject, "keep", f"{where}:{tag}", digest, digest, why_kept[tag]))
        elif digest in kept_digests:
            sharing = [t for t in repo.tags_of(digest) if t in why_kept]
            if repo.can_delete_tags:
                actions.append(Action(subject, "untag", f"{where}:{tag}", digest, None,
                                      f"no rule keeps it; its digest stays for {_listed(sharing)}"))
            else:
                actions.append(Action(subject, "keep", f"{where}:{tag}", digest, digest, (
                    f"no rule keeps it, but this registry cannot untag: deleting {_short(digest)} would also "
                    f"remove {_listed(sharing) or 'a kept index'}")))
        else:
            doomed.setdefault(digest, []).append(tag)
    for digest, tags in sorted(doomed.items()):
        actions.append(Action(subject, "prune", f"{where}@{digest}", digest, None,
                              f"no keep rule or protection applies to {_listed(tags)}", tuple(sorted(tags))))
        for referrer in _referrers(repo, digest, referrer_tags):
            actions.append(Action(subject, "prune", f"{where}@{referrer.digest}", referrer.digest, None,
                                  f"referrer ({referrer.artifact_type or 'artifact'}) of pruned {_short(digest)}",
                                  repo.tags_of(referrer.digest)))
    for tag in sorted(referrer_tags):
        digest = repo.tags[tag].digest
        subject_digest = "sha256:" + REFERRER_TAG.match(tag)["hex"]  # type: ignore[index]
        if subject_digest not in doomed:  # a doomed subject's referrers were pruned with it above
            actions.append(Action(subject, "keep", f"{where}:{tag}", digest, digest,
                                  f"referrer of {_short(subject_digest)}, which is not pruned"))
    return actions


def _keep_rule(index: int, rule: KeepRule, tags: Mapping[str, Descriptor], images: Mapping[str, Image],
               commits: frozenset[str] | str | None, now: datetime) -> list[tuple[str, str]]:
    label = f"keep[{index}]"
    if rule.git_refs is not None:
        assert isinstance(commits, frozenset)  # unreadable sources blocked the policy earlier
        return [(tag, f"{label}: built from commit {commit[:12]}, among the latest of a live git ref")
                for tag, d in sorted(tags.items())
                if (commit := _commit_of(tag, images.get(d.digest), rule, commits))]
    selected = sorted(tag for tag in tags if _selected(tag, rule))
    if rule.last is None and rule.newer_than is None:
        return [(tag, f"{label}: {_selector(rule)}") for tag in selected]
    by_last: set[str] = set()
    if rule.last is not None:
        order, key = _ordering(rule, selected, tags, images)
        # Tags the order cannot rank (no version, no creation time) rank below all others, by name.
        ranked = sorted(((1, k) if (k := key(tag)) is not None else (0, tag), tag) for tag in selected)
        by_last = {tag for _, tag in ranked[-rule.last:]}
    young: dict[str, str] = {}
    if rule.newer_than is not None:
        for tag in selected:
            created = _created(images.get(tags[tag].digest))
            if created is None:
                young[tag] = "creation time unknown, so its age cannot count against it"
            elif created > now:
                young[tag] = "created in the future (clock skew?), so it counts as new"
            elif now - created < rule.newer_than:
                young[tag] = f"created {format_duration(now - created)} ago, within {format_duration(rule.newer_than)}"
    kept = []
    for tag in selected:
        in_last, is_young = tag in by_last, tag in young
        if rule.last is None:
            keep = is_young
        elif rule.newer_than is None:
            keep = in_last
        else:
            keep = (in_last or is_young) if rule.operator == "Or" else (in_last and is_young)
        if keep:
            parts = []
            if in_last:
                parts.append(f"among the {rule.last} newest by {order}")
            if is_young:
                parts.append(young[tag])
            kept.append((tag, f"{label}: {_selector(rule)}, " + " and ".join(parts)))
    return kept


def _selected(tag: str, rule: KeepRule) -> bool:
    if rule.tags is not None and not rule.tags.search(tag):
        return False
    if rule.semver is not None:
        version = Version.try_parse(tag)
        return version is not None and rule.semver.contains(version)
    return True


def _selector(rule: KeepRule) -> str:
    parts = []
    if rule.tags is not None:
        parts.append(f"matches '{rule.tags.pattern}'")
    if rule.semver is not None:
        parts.append(f"within semver '{rule.semver}'")
    return " and ".join(parts) or "any tag"


def _ordering(rule: KeepRule, selected: Sequence[str], tags: Mapping[str, Descriptor],
              images: Mapping[str, Image]) -> tuple[str, Callable[[str], object]]:
    """How 'last' ranks tags: the rule's order, else semver when every selected tag is a version,
    numeric when every one is a number (or the pattern's group captures one), else creation time."""
    order = rule.order
    if order is None:
        if selected and all(Version.try_parse(tag) for tag in selected):
            order = "semver"
        elif selected and all(_number(tag, rule) is not None for tag in selected):
            order = "numeric"
        else:
            order = "newest"
    if order == "semver":
        return order, lambda tag: (v.sort_key if (v := Version.try_parse(_part(tag, rule))) else None)
    if order == "numeric":
        return order, lambda tag: _number(tag, rule)
    if order == "alphabetical":
        return order, lambda tag: tag
    def newest(tag: str) -> object:
        created = _created(images.get(tags[tag].digest))
        return (created, tag) if created else None
    return "creation time", newest


def _part(tag: str, rule: KeepRule) -> str:
    """The part of a tag that carries its order: the named group 'version', else group 1, else the tag."""
    match = rule.tags.search(tag) if rule.tags is not None else None
    if match is None or not match.re.groups:
        return tag
    return match.groupdict().get("version") or match.group(1) or tag


def _number(tag: str, rule: KeepRule) -> int | None:
    part = _part(tag, rule)
    return int(part) if part.isdigit() else None


def _created(image: Image | None) -> datetime | None:
    return image.created if image is not None else None


def _children(image: Image | None) -> tuple[Descriptor, ...]:
    return image.children if image is not None else ()


def _commit_of(tag: str, image: Image | None, rule: KeepRule, commits: frozenset[str]) -> str | None:
    refs = rule.git_refs
    assert refs is not None
    candidates = []
    if refs.tag_commit is not None and (match := refs.tag_commit.search(tag)):
        candidates.append(match.group("commit").lower())
    if refs.revision_label and image is not None and image.revision:
        candidates.append(image.revision.lower())
    for prefix in candidates:
        if len(prefix) >= 7:
            for commit in commits:
                if commit.startswith(prefix):
                    return commit
    return None


def _protection(repository: str, tag: str, digest: str, protected: _Protected) -> str | None:
    if digest in protected.in_use:
        return f"protected: {_short(digest)} is running or kept for rollback in a protecting cluster"
    if (repository, tag) in protected.in_use_tags:
        return "protected: a protecting cluster runs this tag"
    if digest in protected.deploy_targets:
        return f"protected: DeployPolicy/{protected.deploy_targets[digest]}'s target runs or pins {_short(digest)} now"
    if digest in protected.deployed:
        return f"protected: among the last digests DeployPolicy/{protected.deployed[digest]} deployed"
    return None


def _referrers(repo: RepositoryState, digest: str, referrer_tags: set[str]) -> list[Descriptor]:
    found = {d.digest: d for d in repo.referrers.get(digest, ())}
    hex_part = digest.removeprefix("sha256:")
    for tag in referrer_tags:
        if REFERRER_TAG.match(tag)["hex"] == hex_part:  # type: ignore[index]
            found.setdefault(repo.tags[tag].digest, repo.tags[tag])
    return [found[d] for d in sorted(found)]


def _short(digest: str) -> str:
    return digest[:19]  # sha256: + 12 hex digits


def _listed(tags: Sequence[str]) -> str:
    return ", ".join(sorted(tags))
