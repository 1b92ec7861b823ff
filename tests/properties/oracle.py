"""What retention must decide, computed independently of the planner from the documented rules
(schemas/retentionpolicy.schema.json, the planner's module docstring): which tags keep rules keep,
what protections protect, and what is reachable from a kept digest. The planner's private helpers
are never called; only the domain types (Version, SemverRange, Pattern) are shared.

``check_plan`` asserts the safety and completeness invariants of one plan against its inputs."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType

from reconcile.observe.state import ClusterState, DeployHealth, Image, RepositoryState
from reconcile.plan.actions import Action
from reconcile.plan.retention import RetentionInputs
from reconcile.policy.model import KeepRule, RetentionPolicy
from reconcile.policy.semver import Version

# cosign's tag schema: sha256-<hex>.sig|.att|.sbom names its subject sha256:<hex>; the OCI 1.1
# referrers tag schema: sha256-<hex> tags an index of sha256:<hex>'s referrers
COSIGN = re.compile(r"sha256-([0-9a-f]{64})\.(?:sig|att|sbom)")
SCHEMA = re.compile(r"sha256-([0-9a-f]{64})")
NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def referrer_subject(tag: str) -> str | None:
    """The subject a referrer tag names; None for any other tag."""
    match = COSIGN.fullmatch(tag) or SCHEMA.fullmatch(tag)
    return "sha256:" + match.group(1) if match else None


def number(text: str) -> Decimal | None:
    return Decimal(text) if NUMBER.fullmatch(text) else None


# --- keep rules -----------------------------------------------------------------------------------

def version_part(rule: KeepRule, tag: str) -> str | None:
    """The part of ``tag`` the rule's range and order look at, if the rule selects the tag. An
    untagged manifest ('@<digest>') has none (''), and only tagStatus untagged and any select it."""
    if tag.startswith("@"):
        return "" if rule.tag_status in ("untagged", "any") else None
    if rule.tag_status == "untagged":
        return None
    if rule.tags is None:
        part = tag
    else:
        match = rule.tags.search(tag)
        if match is None:
            return None
        if "version" in rule.tags.groupindex:
            part = match.group("version") or ""
        elif rule.tags.groups:
            part = match.group(1) or ""
        else:
            part = tag
    if rule.semver is not None:
        version = Version.try_parse(part)
        if version is None or not rule.semver.contains(version):
            return None
    return part


def rankings(rule: KeepRule, parts: Mapping[str, str]) -> list[tuple[str, list[str]]]:
    """How ``last`` ranks the selected tags (schema: keepRule.order): all by the rule's order, by
    semver with a semver range; else each kind among its own, versions by semver, numbers by value,
    the other tags by creation time, the last N of each kept."""
    if rule.order is not None or rule.semver is not None:
        return [(rule.order or "semver", list(parts))]
    kinds: dict[str, list[str]] = {}
    for tag, part in parts.items():
        kind = "semver" if Version.try_parse(part) else "numeric" if number(part) is not None else "newest"
        kinds.setdefault(kind, []).append(tag)
    return list(kinds.items())


def _rank(order: str, part: str, created: datetime | None) -> object | None:
    if order == "newest":
        return created
    if not part:
        return None
    if order == "semver":
        version = Version.try_parse(part)
        return version.sort_key if version is not None else None
    if order == "numeric":
        return number(part)
    return part


def candidate_tags(repo: RepositoryState) -> dict[str, str]:
    """Tags keep rules look at: all but cosign's, which follow their subject."""
    return {tag: d.digest for tag, d in repo.tags.items() if referrer_subject(tag) is None}


def untagged_roots(repo: RepositoryState) -> set[str]:
    """Untagged manifests a policy with untagged: prune decides on: listed untagged, read, not an
    index child, not a referrer (those follow their parent or subject)."""
    tagged = {d.digest for d in repo.tags.values()}
    held = {c.digest for image in repo.images.values() for c in image.children}
    held |= {d.digest for found in repo.referrers.values() for d in found}
    return {d for d in repo.untagged - tagged - held if d in repo.images and not repo.images[d].subject}


def candidates(policy: RetentionPolicy, repo: RepositoryState) -> dict[str, str]:
    """What keep rules decide on: candidate tags, and '@<digest>' for each untagged root when the
    policy prunes untagged manifests."""
    found = candidate_tags(repo)
    if policy.untagged == "prune":
        found.update({f"@{d}": d for d in untagged_roots(repo)})
    return found


def _created(repo: RepositoryState, digest: str, rule: KeepRule | None = None) -> datetime | None:
    if rule is not None and rule.age == "pushed":
        return repo.pushed.get(digest)
    image = repo.images.get(digest)
    return image.created if image is not None else None


def carries_every(rule: KeepRule, repo: RepositoryState, tag: str) -> bool:
    """withTags: each pattern matches some tag on the image ``tag`` names."""
    if tag.startswith("@"):
        return not rule.with_tags
    digest = repo.tags[tag].digest
    on = [t for t, d in candidate_tags(repo).items() if d == digest]
    return all(any(p.search(t) for t in on) for p in rule.with_tags)


def rule_selects(rule: KeepRule, repo: RepositoryState, tag: str) -> bool:
    if rule.git_refs is None:
        return version_part(rule, tag) is not None and carries_every(rule, repo, tag)
    if tag.startswith("@"):
        return False
    image = repo.images.get(repo.tags[tag].digest)
    return bool((rule.git_refs.tag_commit is not None and rule.git_refs.tag_commit.search(tag))
                or (rule.git_refs.revision_label and image is not None and image.revision))


def rule_keeps(rule: KeepRule, repo: RepositoryState, commits: frozenset[str] | str | None,
               now: datetime, tags: Mapping[str, str] | None = None) -> set[str]:
    tags = dict(candidate_tags(repo) if tags is None else tags)
    if rule.git_refs is not None:
        tags = {t: d for t, d in tags.items() if not t.startswith("@")}
        assert isinstance(commits, frozenset)
        kept = set()
        for tag, digest in tags.items():
            prefixes = []
            if rule.git_refs.tag_commit is not None and (match := rule.git_refs.tag_commit.search(tag)):
                prefixes.append((match.group("commit") or "").lower())
            image = repo.images.get(digest)
            if rule.git_refs.revision_label and image is not None and image.revision:
                prefixes.append(image.revision.lower())
            if any(len(p) >= 7 and any(c.startswith(p) for c in commits) for p in prefixes):
                kept.add(tag)
        return kept
    parts = {tag: part for tag in tags
             if (part := version_part(rule, tag)) is not None and carries_every(rule, repo, tag)}
    if rule.last is None and rule.newer_than is None:
        return set(parts)
    unranked: set[str] = set()
    top: set[str] = set()
    for order, group in rankings(rule, parts) if rule.last is not None else []:
        keys = {tag: _rank(order, parts[tag], _created(repo, tags[tag], rule)) for tag in group}
        unranked |= {tag for tag, key in keys.items() if key is None}
        ranked = sorted((key, tag) for tag, key in keys.items() if key is not None)  # type: ignore[type-var]
        if rule.count == "tags":
            top |= {tag for _, tag in ranked[-rule.last:]}
        else:  # the newest N images, each by its newest tag
            newest: list[str] = []
            for _, tag in reversed(ranked):
                if tags[tag] not in newest:
                    newest.append(tags[tag])
            top |= {tag for _, tag in ranked if tags[tag] in newest[:rule.last]}
    young = set()
    if rule.newer_than is not None:
        for tag in parts:
            created = _created(repo, tags[tag], rule)
            if created is None or created > now or now - created < rule.newer_than:
                young.add(tag)
    kept = set()
    for tag in parts:
        if tag in unranked:
            kept.add(tag)  # fail closed: an order that cannot rank a tag keeps it
        elif rule.last is None:
            kept |= {tag} & young
        elif rule.newer_than is None:
            kept |= {tag} & top
        elif rule.operator == "Or":
            kept |= {tag} & (top | young)
        else:
            kept |= {tag} & top & young
    return kept


def rules_keep(policy: RetentionPolicy, repo: RepositoryState, git_commits: Mapping[int, frozenset[str] | str],
               now: datetime) -> set[str]:
    """union: what any rule keeps. firstMatch (schema: keepMode): rules by priority, then list
    order; an image is decided by the first rule selecting any of its tags; what a later rule keeps
    of a decided image does not count."""
    items = candidates(policy, repo)
    ordered = list(enumerate(policy.keep))
    if policy.keep_mode == "firstMatch":
        ordered.sort(key=lambda pair: (pair[1].priority is None, pair[1].priority or 0, pair[0]))
    kept: set[str] = set()
    decided: set[str] = set()
    for index, rule in ordered:
        found = rule_keeps(rule, repo, git_commits.get(index), now, items)
        if policy.keep_mode == "union":
            kept |= found
            continue
        kept |= {t for t in found if items[t] not in decided}
        decided |= {d for t, d in items.items() if rule_selects(rule, repo, t)}
    return kept


# --- protections ----------------------------------------------------------------------------------

def unreadable(policy: RetentionPolicy, inputs: RetentionInputs) -> bool:
    """A protection or rule whose source could not be read: the policy must prune nothing."""
    for name in {*policy.protect.in_use, *policy.protect.helm_releases}:
        if not isinstance(inputs.clusters.get(name), ClusterState):
            return True
    if any(isinstance(t, str) for t in inputs.deploy_targets.values()):
        return True
    if policy.protect.deployed_history and inputs.deployed is None:
        return True
    if any(isinstance(c, str) for c in inputs.git_commits.values()):
        return True
    return any(rule.git_refs is not None and i not in inputs.git_commits for i, rule in enumerate(policy.keep))


@dataclass(frozen=True)
class Protected:
    digests: frozenset[str]  # never deleted, wherever they are
    running: frozenset[str]  # used by digest in a protecting cluster (also protects an index that holds one)
    tags: frozenset[tuple[str, str]]  # (repository, tag) used by tag in a protecting cluster of this registry


def protected(policy: RetentionPolicy, inputs: RetentionInputs) -> Protected:
    running: set[str] = set()
    tags: set[tuple[str, str]] = set()
    for name in {*policy.protect.in_use, *policy.protect.helm_releases}:
        state = inputs.clusters[name]
        assert isinstance(state, ClusterState)
        for ref in state.images:
            if ref.digest:
                running.add(ref.digest)
            elif ref.tag and ref.registry == inputs.registry_host:
                tags.add((ref.repository, ref.tag))
    digests = set(running)
    if policy.protect.deployed_history:
        for history in (inputs.deployed or {}).values():
            digests |= set(history[: policy.protect.deployed_history])
    digests |= {t.digest for t in inputs.deploy_targets.values() if isinstance(t, DeployHealth) and t.digest}
    return Protected(frozenset(digests), frozenset(running), frozenset(tags))


# --- the graph ------------------------------------------------------------------------------------

def edges(repo: RepositoryState) -> dict[str, set[str]]:
    """digest -> what must stay if it stays: its index children and its referrers (by OCI 1.1
    ``subject``, as listed in ``referrers``, or by a cosign tag naming it)."""
    out: dict[str, set[str]] = defaultdict(set)
    for digest, image in repo.images.items():
        out[digest] |= {c.digest for c in image.children}
        if image.subject:
            out[image.subject].add(digest)
    for subject, found in repo.referrers.items():
        out[subject] |= {d.digest for d in found}
    for tag, descriptor in repo.tags.items():
        if (subject := referrer_subject(tag)) is not None:
            out[subject].add(descriptor.digest)
    return out


def reach(start: Iterable[str], graph: Mapping[str, set[str]], avoid: Iterable[str] = ()) -> set[str]:
    """``start`` and everything reachable from it through digests not in ``avoid``."""
    blocked = set(avoid)
    seen = {d for d in start if d not in blocked}
    pending = list(seen)
    while pending:
        for found in graph.get(pending.pop(), ()):
            if found not in seen and found not in blocked:
                seen.add(found)
                pending.append(found)
    return seen


def tags_of(repo: RepositoryState, digest: str) -> set[str]:
    return {tag for tag, d in repo.tags.items() if d.digest == digest}


@dataclass
class Expected:
    """What one repository's decision must be, from the rules and protections alone."""

    repo: RepositoryState
    rule_kept: set[str]  # candidate tags a keep rule keeps
    tag_protected: set[str]  # tags used by name in a protecting cluster; candidate tags on a protected digest
    # or on an index one of whose platforms runs there
    kept: set[str]  # digests nothing may delete
    doomed: set[str]  # digests of candidate tags nothing keeps: each pruned, with what only it reaches
    deleted: set[str]  # doomed and, transitively, their children and referrers nothing keeps

    @property
    def staying_tags(self) -> set[str]:
        return self.rule_kept | self.tag_protected


def expected(policy: RetentionPolicy, inputs: RetentionInputs, repo: RepositoryState, now: datetime,
             shield: Protected) -> Expected:
    """Kept: the digests of kept and protected tags and every protected digest (observed or not),
    with everything they reach (index children, referrers); and a referrer tag whose subject is
    not being deleted stays, with all it reaches (which may save more: repeated until stable).
    Deleted: the digests of the candidate tags left, with what they reach that nothing keeps."""
    items = candidates(policy, repo)
    graph = edges(repo)
    rule_kept = rules_keep(policy, repo, inputs.git_commits, now)
    tag_protected = {tag for tag in repo.tags if (repo.repository, tag) in shield.tags}  # any tag used by name
    for tag, digest in items.items():
        image = repo.images.get(digest)
        children = {c.digest for c in image.children} if image is not None else set()
        if digest in shield.digests or children & shield.running:
            tag_protected.add(tag)
    staying = rule_kept | tag_protected
    kept = reach({items[t] if t.startswith("@") else repo.tags[t].digest for t in staying} | shield.digests, graph)
    while True:
        doomed = {d for t, d in items.items() if t not in staying and d not in kept}
        deleted = reach(doomed, graph, avoid=kept)
        orphans = {d.digest for t, d in repo.tags.items()
                   if (s := referrer_subject(t)) is not None and s not in deleted and d.digest not in kept}
        if not orphans:
            return Expected(repo, rule_kept, tag_protected, kept, doomed, deleted)
        kept |= reach(orphans, graph)


# --- the checks -----------------------------------------------------------------------------------

def where(repo: RepositoryState) -> str:
    return f"{repo.registry}/{repo.repository}"


def split_target(target: str) -> tuple[str, str | None, str | None]:
    """(registry/repository, tag, digest)"""
    if "@" in target:
        base, digest = target.split("@", 1)
        return base, None, digest
    if ":" not in target:  # a policy's registry: what a maxDeletions block names
        return target, None, None
    base, tag = target.rsplit(":", 1)
    return base, tag, None


def unblocked(policy: RetentionPolicy) -> RetentionPolicy:
    return replace(policy, max_deletions=10**9)


def deletions(actions: Sequence[Action]) -> int:
    """As maxDeletions counts them: the tags of each prune (one for an untagged one), and untags."""
    return sum(len(a.tags) or 1 for a in actions if a.kind == "prune") + sum(a.kind == "untag" for a in actions)


def check_plan(policy: RetentionPolicy, inputs: RetentionInputs, now: datetime, actions: Sequence[Action]) -> None:
    """Every invariant of one policy's plan that can be checked from its inputs alone."""
    assert all(a.policy == f"RetentionPolicy/{policy.name}" and a.reason for a in actions)
    if unreadable(policy, inputs):
        assert actions and all(a.kind == "blocked" and a.reason.endswith("nothing is pruned") for a in actions)
        return
    assert not any(a.kind == "blocked" and a.target == policy.registry and "maxDeletions" not in a.reason
                   for a in actions)
    over = [a for a in actions if a.kind == "blocked" and a.target == policy.registry]
    if over:
        assert not any(a.mutates for a in actions), "blocked by maxDeletions, yet it deletes"
    shield = protected(policy, inputs)
    for repo in inputs.repositories:
        here = [a for a in actions if split_target(a.target)[0] == where(repo)]
        check_repository(policy, inputs, now, repo, here, shield, capped=bool(over))


def check_repository(policy: RetentionPolicy, inputs: RetentionInputs, now: datetime, repo: RepositoryState,
                     actions: Sequence[Action], shield: Protected, *, capped: bool) -> None:
    want = expected(policy, inputs, repo, now, shield)
    graph = edges(repo)
    blocked = [a for a in actions if a.kind == "blocked"]
    prunes = [a for a in actions if a.kind == "prune"]
    untags = [a for a in actions if a.kind == "untag"]
    keeps = [a for a in actions if a.kind == "keep"]
    assert {a.kind for a in actions} <= {"keep", "prune", "untag", "blocked"}
    if blocked:
        assert not repo.can_delete and not prunes and not untags and len(blocked) == 1
    kept_tags = {split_target(a.target)[1]: a for a in keeps if "@" not in a.target}
    kept_untagged = {split_target(a.target)[2]: a for a in keeps if "@" in a.target}
    untagged = {split_target(a.target)[1]: a for a in untags}
    pruned = {split_target(a.target)[2]: a for a in prunes}
    roots = untagged_roots(repo) if policy.untagged == "prune" else set()
    if not policy.untag_others:
        assert not untags, "untagOthers is false: a kept image keeps every tag"

    # decisions name the observed digests
    for digest, action in kept_untagged.items():
        assert digest in roots and action.digest_before == action.digest_after == digest
    for tag, action in kept_tags.items():
        assert tag in repo.tags and action.digest_before == action.digest_after == repo.tags[tag].digest
    for tag, action in untagged.items():
        assert tag in repo.tags and action.digest_before == repo.tags[tag].digest and action.tags == (tag,)
        assert repo.can_delete_tags, f"untag {tag} where the registry cannot delete a tag alone"
    assert len(kept_tags) + len(kept_untagged) == len(keeps) and len(untagged) == len(untags)
    assert len(pruned) == len(prunes)

    # 1. nothing kept is deleted
    # what the plan itself says stays (kept tags, untagged tags' digests), and all it reaches
    kept = reach(want.kept | {repo.tags[t].digest for t in [*kept_tags, *untagged]}, graph)
    for digest, action in pruned.items():
        assert digest == action.digest_before
        assert digest not in kept, f"prune of kept {digest}: {action.reason}"
        # deleting a manifest removes all its tags: the prune says exactly which
        assert set(action.tags) == tags_of(repo, digest) and len(action.tags) == len(set(action.tags))
        assert not set(action.tags) & (want.staying_tags | set(kept_tags)), f"prune removes kept tags {action.tags}"
    for tag in want.staying_tags:  # a rule's or a protection's tag is kept, never untagged
        if tag.startswith("@"):
            assert tag[1:] not in pruned and (capped or blocked or tag[1:] in kept_untagged), f"{tag} should be kept"
            continue
        assert capped or blocked or tag in kept_tags, f"{tag} should be kept"
        assert tag not in untagged
    for tag, action in untagged.items():  # an untag leaves its digest, which something else keeps
        assert tag not in want.staying_tags and action.digest_before in want.kept
        assert action.digest_before not in pruned

    if capped or blocked:
        # nothing deleted; every tag still has at most one decision, and what stays is explained
        assert not prunes and not untags
        assert set(kept_tags) <= set(repo.tags)
        return

    # 4. every tag gets exactly one decision
    in_prunes = [t for a in prunes for t in a.tags]
    decided = [*kept_tags, *untagged, *in_prunes]
    assert sorted(decided) == sorted(repo.tags), "a tag has no decision or more than one"

    # completeness: what nothing keeps goes, and only that
    for tag, digest in candidate_tags(repo).items():
        if tag in want.staying_tags:
            continue
        if digest in want.kept:
            assert (tag in untagged) if repo.can_delete_tags and policy.untag_others else (tag in kept_tags), tag
        else:
            assert digest in pruned and pruned[digest].depends_on is None, f"{tag} on {digest} should be pruned"
    for digest in roots:  # each untagged root, under untagged: prune, is kept or pruned (on its own)
        if digest in want.kept:
            assert digest in kept_untagged and digest not in pruned, digest
        else:
            assert digest in pruned and pruned[digest].depends_on is None and not pruned[digest].tags, digest
    assert set(kept_untagged) <= roots
    # top-level prunes are the doomed digests; dependants what only they reach
    assert {d for d, a in pruned.items() if a.depends_on is None} == want.doomed
    assert set(pruned) == want.deleted

    # 5. a dependant names a prune it is a child or referrer of
    targets = {a.target: a for a in prunes}
    for action in prunes:
        if action.depends_on is not None:
            parent = targets[action.depends_on]
            assert action.digest_before in graph.get(parent.digest_before or "", set()), (
                f"{action.digest_before} is neither a child nor a referrer of {parent.digest_before}")


def plan_order(plan_actions: Sequence[Action]) -> None:
    """5. In the canonical order, each dependant comes after the prune it goes with."""
    seen: set[str] = set()
    for action in plan_actions:
        if action.depends_on is not None:
            assert action.depends_on in seen, f"{action.target} comes before {action.depends_on}"
        seen.add(action.target)


# --- applying a plan in memory ----------------------------------------------------------------------

def applied(inputs: RetentionInputs, actions: Sequence[Action]) -> RetentionInputs:
    """The repositories as they are after ``actions``: pruned manifests gone with their tags (and
    from the referrers listed), untagged tags gone, everything else as before."""
    pruned = {a.digest_before for a in actions if a.kind == "prune"}
    untagged = {(split_target(a.target)[0], split_target(a.target)[1]) for a in actions if a.kind == "untag"}
    states = []
    for repo in inputs.repositories:
        tags = {t: d for t, d in repo.tags.items() if d.digest not in pruned and (where(repo), t) not in untagged}
        images: dict[str, Image] = {d: i for d, i in repo.images.items() if d not in pruned}
        referrers = {s: tuple(r for r in found if r.digest not in pruned)
                     for s, found in repo.referrers.items() if s not in pruned}
        listed = repo.untagged - pruned
        if repo.untagged:  # a registry that lists untagged manifests lists the ones untags left bare
            listed |= {d.digest for d in repo.tags.values() if d.digest in images} - {d.digest for d in tags.values()}
        states.append(RepositoryState(repo.registry, repo.repository, MappingProxyType(tags),
                                      MappingProxyType(images),
                                      MappingProxyType({s: r for s, r in referrers.items() if r}),
                                      repo.can_delete_tags, repo.can_delete, frozenset(listed),
                                      MappingProxyType(dict(repo.pushed))))
    return replace(inputs, repositories=tuple(states))
