"""Hypothesis strategies for retention: generated repositories, protections and policies.

A repository is drawn as a :class:`Blueprint` (nodes that are images, indexes, cosign-style
signatures, OCI 1.1 artifacts with a ``subject`` and referrers tag schema indexes; plain tags and
referrer tags on them), so the same draw can become a :class:`RepositoryState` in memory
(:func:`realize`, as ``observe_repository`` would report it) or a real repository in a registry
(``tests/properties/registry.py``). Protections name digests symbolically (:class:`At`: node N of
repository R, or a digest no repository holds) for the same reason.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Literal

from hypothesis import strategies as st

from reconcile.observe.state import (
    OCI_INDEX,
    OCI_MANIFEST,
    REVISION_LABEL,
    ClusterState,
    DeployHealth,
    Descriptor,
    Image,
    ImageReference,
    Platform,
    RepositoryState,
    Usage,
)
from reconcile.plan.retention import RetentionInputs
from reconcile.policy.model import GitRefs, KeepRule, Protection, RetentionPolicy
from reconcile.policy.patterns import compile_pattern
from reconcile.policy.semver import SemverRange

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
HOST = "registry.ci.example.com"  # the policy's registry, as clusters name it
OTHER_HOST = "mirror.example.org"
REPOSITORIES = ("team-a/web", "team-a/api")
OTHER_REPOSITORY = "team-b/other"
CLUSTERS = ("prod", "stage")
DEPLOY_POLICIES = ("prod-web", "stage-web")
COMMITS = tuple(hashlib.sha1(f"commit-{i}".encode()).hexdigest() for i in range(6))
ARCHES = ("amd64", "arm64", "s390x", "ppc64le")
SBOM = "application/spdx+json"
LISTED = "application/vnd.example.listed+json"
SUFFIXES = ("sig", "att", "sbom")

Kind = Literal["image", "index", "signature", "artifact", "referrers"]


def chance(draw: st.DrawFn, p: float) -> bool:
    """True with probability about ``p`` (hypothesis favours an integer's bounds, so not ``== 0``);
    shrinks to False."""
    return draw(st.floats(0, 1, exclude_max=True).map(lambda x: x >= 1 - p))


# --- repositories ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Node:
    """One manifest. An index's ``children`` and a signature's, artifact's or referrers index's
    ``subject`` are earlier nodes. A signature names its subject only in its payload (cosign links
    it by a tag); an artifact carries an OCI 1.1 ``subject`` field; a referrers index is the OCI 1.1
    referrers tag schema's index (tagged ``sha256-<subject hex>``) listing artifacts of its subject."""

    kind: Kind
    created: int | None = None  # hours before NOW (negative: in the future); None: no creation time
    children: tuple[int, ...] = ()
    subject: int | None = None
    revision: str | None = None  # org.opencontainers.image.revision label (images only)


@dataclass(frozen=True)
class ReferrerTag:
    """``sha256-<hex>.<suffix>`` (cosign) or, with no suffix, ``sha256-<hex>`` (the OCI 1.1
    referrers tag schema), naming node ``names`` (or, as a str, the hex of a digest this repository
    does not hold) and pointing at node ``target`` (any node: nothing in a registry stops that)."""

    names: int | str
    suffix: str
    target: int


@dataclass(frozen=True)
class Blueprint:
    repository: str
    nodes: tuple[Node, ...]
    tags: tuple[tuple[str, int], ...]  # plain tag -> node
    referrer_tags: tuple[ReferrerTag, ...] = ()
    api_referrers: bool = False  # the registry has a referrers API (else the client reads the tag schemas)
    listed: tuple[tuple[int, int], ...] = ()  # (subject, referrer) the API lists without a subject field
    missing: tuple[int, ...] = ()  # untagged nodes whose manifest is gone (404): referenced, not observed
    every_image: bool = False  # observed with every manifest the repository holds, tagged or not
    can_delete_tags: bool = False
    can_delete: bool = True
    lists_untagged: bool = False  # a listing API: the manifests no tag points at are listed as untagged
    pushed_shift: int | None = None  # push times: creation + this many hours (some unknown); None: not said


def node_digest(repository: int, node: int) -> str:
    return "sha256:" + hashlib.sha256(f"{REPOSITORIES[repository]}#{node}".encode()).hexdigest()


def foreign_digest(key: int | str) -> str:
    return "sha256:" + hashlib.sha256(f"foreign#{key}".encode()).hexdigest()


def referrer_tag_name(subject_digest: str, suffix: str) -> str:
    name = f"sha256-{subject_digest.removeprefix('sha256:')}"
    return f"{name}.{suffix}" if suffix else name


def _version_tag() -> st.SearchStrategy[str]:
    return st.builds(lambda v, a, b, c, pre: f"{v}{a}.{b}.{c}{pre}", st.sampled_from(["v", "v", ""]),
                     st.integers(0, 3), st.integers(0, 12), st.integers(0, 3),
                     st.sampled_from(["", "", "", "-rc.1", "-rc.2", "-alpha", "-build.5"]))


def tag_names() -> st.SearchStrategy[str]:
    """Tag names from the families CI produces, plus random ones (docker's tag grammar: no '+')."""
    return st.one_of(
        _version_tag(),
        st.builds(lambda n, zero: f"build-{'0' if zero else ''}{n}", st.integers(0, 130), st.booleans()),
        st.sampled_from(["rel-1.5", "rel-1.10", "rel-2", "rel-0.9", "rel-next", "rel-1.5.0", "rel-01"]),
        st.builds(lambda c, n: f"sha-{c[:n]}", st.sampled_from([*COMMITS, "0123456789abcdef0123"]),
                  st.integers(5, 12)),
        st.sampled_from(["latest", "stable", "edge", "main", "Release-2"]),
        st.from_regex(r"\A[a-zA-Z0-9][a-zA-Z0-9._-]{0,10}\Z"),
    )


@st.composite
def blueprints(draw: st.DrawFn, repository: int = 0, *, real: bool = False, max_nodes: int = 9,
               max_tags: int = 10) -> Blueprint:
    """A repository. ``real``: what a real docker-registry 2.8 repository is observed as (no
    referrers API; only tagged manifests, their index children and referrers found by tag schemas;
    tags cannot be deleted alone)."""
    count = draw(st.integers(1, max_nodes))
    nodes: list[Node] = []
    for i in range(count):
        kinds: list[Kind] = ["image"] if i == 0 else ["image", "image", "image", "index", "index", "signature",
                                                      "artifact", "artifact", "referrers"]
        kind = draw(st.sampled_from(kinds))
        created = draw(st.one_of(st.none(), st.integers(-72, 24 * 60)))
        if kind == "referrers":
            subjects = sorted({n.subject for n in nodes if n.kind == "artifact" and n.subject is not None})
            if subjects:
                subject = draw(st.sampled_from(subjects))
                listing = [j for j, n in enumerate(nodes) if n.kind == "artifact" and n.subject == subject]
                nodes.append(Node("referrers", None, tuple(draw(st.lists(
                    st.sampled_from(listing), min_size=1, max_size=len(listing), unique=True))), subject))
                continue
            kind = "index"
        if kind == "index":
            eligible = [j for j, n in enumerate(nodes) if n.kind in ("image", "index")]
            children = tuple(draw(st.lists(st.sampled_from(eligible), min_size=1, max_size=3, unique=True)))
            nodes.append(Node("index", created if draw(st.booleans()) else None, children))
            continue
        if kind in ("signature", "artifact"):
            nodes.append(Node(kind, None, subject=draw(st.integers(0, i - 1))))
            continue
        nodes.append(Node("image", created, revision=draw(st.one_of(
            st.none(), st.sampled_from(COMMITS), st.sampled_from([c.upper() for c in COMMITS[:2]])))))
    node = st.integers(0, count - 1)
    plain = draw(st.dictionaries(tag_names(), node, min_size=min(2, max_tags), max_size=max_tags))
    named: dict[tuple[int | str, str], int] = {}
    for n, spec in enumerate(nodes):  # a referrers index is found by its tag (mostly: strays happen)
        if spec.kind == "referrers" and spec.subject is not None and not chance(draw, 1 / 5):
            named[(spec.subject, "")] = n
    for _ in range(draw(st.integers(0, 4))):
        # mostly a node's signature; sometimes one whose image is elsewhere (an orphan), pointing at
        # a signature; sometimes pointing at anything at all
        names = draw(st.sampled_from(["ab" * 32, "cd" * 32])) if chance(draw, 1 / 6) else draw(node)
        suffix = draw(st.sampled_from([*SUFFIXES, *SUFFIXES, ""]))
        signatures = [j for j, n in enumerate(nodes) if n.kind == "signature" and (
            n.subject == names or isinstance(names, str))]
        target = draw(st.sampled_from(signatures) if signatures and not chance(draw, 1 / 3) else node)
        named[(names, suffix)] = target
    tagged = set(plain.values()) | set(named.values())
    untagged = [j for j in range(count) if j not in tagged]
    listed: list[tuple[int, int]] = []
    missing: list[int] = []
    if not real:
        if chance(draw, 1 / 3):
            listed = draw(st.lists(st.tuples(node, node), max_size=2))
        if untagged and chance(draw, 1 / 4):
            missing = draw(st.lists(st.sampled_from(untagged), max_size=2, unique=True))
    return Blueprint(
        repository=REPOSITORIES[repository], nodes=tuple(nodes), tags=tuple(sorted(plain.items())),
        referrer_tags=tuple(ReferrerTag(n, s, t) for (n, s), t in sorted(named.items(), key=str)),
        api_referrers=not real and draw(st.booleans()), listed=tuple(listed), missing=tuple(missing),
        every_image=not real and chance(draw, 1 / 4), can_delete_tags=not real and draw(st.booleans()),
        can_delete=real or not chance(draw, 1 / 10), lists_untagged=not real and chance(draw, 1 / 3),
        pushed_shift=None if real or chance(draw, 1 / 2) else draw(st.integers(-48, 48)))


def tag_map(blueprint: Blueprint, digest: Callable[[int], str]) -> dict[str, int]:
    """Every tag of the repository -> its node (referrer tags named after the digests given)."""
    names = dict(blueprint.tags)
    for tag in blueprint.referrer_tags:
        subject = digest(tag.names) if isinstance(tag.names, int) else "sha256:" + tag.names
        names[referrer_tag_name(subject, tag.suffix)] = tag.target
    return names


def realize(blueprint: Blueprint, digest: Callable[[int], str], created: Callable[[int], datetime | None]
            ) -> RepositoryState:
    """The blueprint as ``observe_repository`` reports it: tagged manifests and their index
    children (transitively), then the referrers of those (the API's list, else cosign tags and
    the referrers tag schema's index), whose manifests are read too; a ``missing`` one is left
    out. With ``every_image``, every manifest but the missing ones is an image."""
    nodes = blueprint.nodes
    present = [n not in blueprint.missing for n in range(len(nodes))]
    tags = tag_map(blueprint, digest)

    def media_type(n: int) -> str:
        return OCI_INDEX if nodes[n].kind in ("index", "referrers") else OCI_MANIFEST

    def descriptor(n: int, **extra: object) -> Descriptor:
        return Descriptor(media_type(n), digest(n), 100 + n, **extra)  # type: ignore[arg-type]

    observed = set(tags.values())
    pending = list(observed)
    while pending:
        for child in nodes[pending.pop()].children:
            if child not in observed and present[child]:
                observed.add(child)
                pending.append(child)
    if blueprint.every_image:
        observed = {n for n in range(len(nodes)) if present[n]}
    by_digest = {digest(n): n for n in range(len(nodes))}
    referrers: dict[int, dict[int, Descriptor]] = {}
    for subject in sorted(observed):
        found: dict[int, Descriptor] = {}
        if blueprint.api_referrers:
            for n, spec in enumerate(nodes):
                if spec.kind == "artifact" and spec.subject == subject:
                    found[n] = descriptor(n, artifact_type=SBOM)
            for of, n in blueprint.listed:
                if of == subject:
                    found[n] = descriptor(n, artifact_type=LISTED)
        else:
            for tag in blueprint.referrer_tags:
                if tag.names == subject and tag.suffix:
                    found[tag.target] = descriptor(tag.target, artifact_type=f"cosign/{tag.suffix}")
            schema = tags.get(referrer_tag_name(digest(subject), ""))
            if schema is not None:
                for child in nodes[schema].children:
                    found[child] = descriptor(child, artifact_type=SBOM)
        if found:
            referrers[subject] = found
    observed |= {n for found in referrers.values() for n in found if present[n]}
    images: dict[str, Image] = {}
    for n in sorted(observed):
        spec = nodes[n]
        labels = MappingProxyType({REVISION_LABEL: spec.revision} if spec.revision else {})
        children = tuple(descriptor(c, platform=Platform("linux", ARCHES[i % len(ARCHES)])
                                    if spec.kind == "index" else None, artifact_type=None if spec.kind == "index"
                                    else SBOM) for i, c in enumerate(spec.children))
        subject = digest(spec.subject) if spec.kind == "artifact" and spec.subject is not None else None
        images[digest(n)] = Image(digest(n), media_type(n), created(n) if spec.kind in ("image", "index") else None,
                                  labels, children, subject, SBOM if spec.kind == "artifact" else None)
    assert len(by_digest) == len(nodes)
    tagged = {digest(n) for n in tags.values()}
    pushed = {}
    if blueprint.pushed_shift is not None:
        for n in sorted(observed):
            when = created(n)
            if when is not None and n % 3:  # every third push time unknown
                pushed[digest(n)] = when + timedelta(hours=blueprint.pushed_shift)
    return RepositoryState(
        "ci", blueprint.repository, MappingProxyType({t: descriptor(n) for t, n in tags.items()}),
        MappingProxyType(images),
        MappingProxyType({digest(s): tuple(found.values()) for s, found in referrers.items()}),
        can_delete_tags=blueprint.can_delete_tags, can_delete=blueprint.can_delete,
        untagged=frozenset(images) - tagged if blueprint.lists_untagged else frozenset(),
        pushed=MappingProxyType(pushed))


# --- protections ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class At:
    """A digest: node ``node`` of blueprint ``repository``, or (``repository`` None) one no
    repository holds."""

    repository: int | None
    node: int


@dataclass(frozen=True)
class ByDigest:
    at: At
    host: str
    repository: str


@dataclass(frozen=True)
class ByTag:
    same_host: bool  # on the policy's registry (else a mirror's reference, which protects nothing)
    repository: int | None  # a blueprint's repository, or None: another one
    tag: str


Reference = ByDigest | ByTag


@dataclass(frozen=True)
class Protections:
    clusters: tuple[tuple[str, tuple[Reference, ...] | str], ...] = ()  # name -> references, or why unreadable
    deployed: tuple[tuple[str, tuple[At, ...]], ...] | None = ()  # None: the audit trail could not be read
    targets: tuple[tuple[str, At | str | None, bool], ...] = ()  # DeployPolicy, what it runs (or why unknown), healthy


@dataclass(frozen=True)
class Scenario:
    blueprints: tuple[Blueprint, ...]
    protections: Protections
    policy: RetentionPolicy
    git_commits: tuple[tuple[int, frozenset[str] | str], ...] = ()
    now: datetime = NOW

    def digest(self, at: At) -> str:
        return foreign_digest(at.node) if at.repository is None else node_digest(at.repository, at.node)


def _at(blueprints: tuple[Blueprint, ...]) -> st.SearchStrategy[At]:
    """A digest to protect: mostly a node, often one no tag points at (what only a protection can
    keep: an untagged image, a platform manifest, a referrer), sometimes one no repository holds."""
    def untagged(r: int) -> list[int]:
        tagged = set(tag_map(blueprints[r], lambda n: node_digest(r, n)).values())
        return [n for n in range(len(blueprints[r].nodes)) if n not in tagged] or [0]

    local = st.integers(0, len(blueprints) - 1).flatmap(
        lambda r: st.builds(At, st.just(r), st.integers(0, len(blueprints[r].nodes) - 1)
                            | st.sampled_from(untagged(r))))
    return st.one_of(local, local, local, st.builds(At, st.none(), st.integers(0, 2)))


@st.composite
def protections(draw: st.DrawFn, blueprints: tuple[Blueprint, ...]) -> Protections:
    """What clusters run (by digest, anywhere; by tag, on this registry or a mirror: mostly a plain
    tag, sometimes a referrer tag), the deploy history and what deploy targets run now."""
    at = _at(blueprints)

    def tag_reference() -> st.SearchStrategy[ByTag]:
        def for_repository(r: int | None) -> st.SearchStrategy[ByTag]:
            if r is None:
                return st.builds(ByTag, st.booleans(), st.none(), tag_names())
            blueprint = blueprints[r]
            plain = [t for t, _ in blueprint.tags]
            every = sorted(tag_map(blueprint, lambda n: node_digest(r, n)))
            return st.builds(ByTag, st.sampled_from([True, True, False]), st.just(r),
                             st.sampled_from(plain) | st.sampled_from(plain) | st.sampled_from(every))
        return st.one_of(st.none(), st.integers(0, len(blueprints) - 1)).flatmap(for_repository)

    digest_reference = st.builds(ByDigest, at, st.sampled_from([HOST, OTHER_HOST]),
                                 st.sampled_from([*REPOSITORIES, OTHER_REPOSITORY]))
    reference = st.one_of(digest_reference, tag_reference())
    clusters = draw(st.dictionaries(st.sampled_from(CLUSTERS), st.lists(reference, max_size=3).map(tuple),
                                    max_size=2))
    history = st.dictionaries(st.sampled_from(DEPLOY_POLICIES), st.lists(at, max_size=3).map(tuple), max_size=2)
    deployed = tuple(sorted(draw(history).items()))
    targets = draw(st.dictionaries(st.sampled_from(DEPLOY_POLICIES), st.tuples(st.one_of(st.none(), at),
                                                                                 st.booleans()), max_size=1))
    return Protections(tuple(sorted(clusters.items())), deployed,
                       tuple((n, a, h) for n, (a, h) in sorted(targets.items())))


def realize_protections(protections: Protections, digest: Callable[[At], str], host: str,
                        repositories: tuple[str, ...]) -> dict[str, object]:
    """RetentionInputs' clusters, deployed and deploy_targets, with digests from ``digest``."""
    clusters: dict[str, ClusterState | str] = {}
    for name, references in protections.clusters:
        if isinstance(references, str):
            clusters[name] = references
            continue
        found: dict[ImageReference, tuple[Usage, ...]] = {}
        for i, ref in enumerate(references):
            if isinstance(ref, ByDigest):
                image = ImageReference(host if ref.host == HOST else ref.host, ref.repository, digest=digest(ref.at))
            else:
                image = ImageReference(host if ref.same_host else OTHER_HOST,
                                       repositories[ref.repository] if ref.repository is not None else OTHER_REPOSITORY,
                                       tag=ref.tag)
            state = "running" if i % 2 == 0 else "rollback"
            found[image] = (Usage(name, "web", "Deployment", f"web-{i}", "web", state),)  # type: ignore[arg-type]
        clusters[name] = ClusterState(name, MappingProxyType(found))
    deployed = None if protections.deployed is None else {
        name: [digest(a) for a in history] for name, history in protections.deployed}
    targets: dict[str, DeployHealth | str] = {}
    for name, at, healthy in protections.targets:
        targets[name] = at if isinstance(at, str) else DeployHealth(
            digest(at) if at is not None else None, healthy, "" if healthy else "1 of 3 updated replicas available")
    return {"clusters": clusters, "deployed": deployed, "deploy_targets": targets}


# --- policies -------------------------------------------------------------------------------------

PATTERNS = (
    r"^v\d+\.\d+\.\d+$", r"^v(?P<version>\d+\.\d+\.\d+.*)$", r"^v?(\d+\.\d+\.\d+)$", r"^build-(\d+)$",
    r"^build-\d+$", r"^build-(?P<version>\d+)$", r"^rel-(.+)$", r"^rel-", r"^sha-", r"^(latest|stable)$",
    r"^latest$", ".", r"^[a-m]", r"^(x)?build-(\d+)$", r"(?i)^V", r"^(?P<version>.*)$", r"-rc",
    r"^(?:v|rel-)(?P<version>.+)$", r"\d$", r"^sha256-", r"(?i)^release-(\d+)$",
)
RANGES = (">=1.0.0", "^1", "~1.2", "<2.0.0", ">=0.x", "1.x || 3.x", "!=1.2.3", "*", ">=1.0.0-0", "0.1.0 - 2.5.0")
TAG_COMMIT = compile_pattern(r"^sha-(?P<commit>[0-9a-f]{7,40})$")


@st.composite
def keep_rules(draw: st.DrawFn) -> KeepRule:
    pattern = draw(st.sampled_from(PATTERNS) if not chance(draw, 1 / 6) else st.none())
    semver = draw(st.sampled_from(RANGES) if chance(draw, 1 / 4) else st.none())
    last = draw(st.integers(1, 4) if not chance(draw, 1 / 4) else st.none())
    orders = ["semver", "numeric", "alphabetical", "newest"]
    order = draw(st.sampled_from([None, None, None, *orders]))  # None: each kind ranks among its own
    newer = draw(st.integers(1, 40).map(lambda d: timedelta(days=d)) if draw(st.booleans()) else st.none())
    if pattern is None and semver is None and last is None and newer is None:
        pattern = draw(st.sampled_from(PATTERNS))  # a rule keeping every tag keeps nothing interesting
    status = draw(st.sampled_from(["tagged"] * 4 + ["untagged", "any"]))
    with_tags = draw(st.lists(st.sampled_from(PATTERNS), max_size=2)) if chance(draw, 1 / 5) else []
    if status != "tagged":  # (validation: no tags, semver or withTags then, and order newest)
        pattern, semver, order, with_tags = None, None, draw(st.sampled_from([None, "newest"])), []
    return KeepRule(tags=compile_pattern(pattern) if pattern else None,
                    semver=SemverRange.parse(semver) if semver else None, last=last, order=order,  # type: ignore[arg-type]
                    newer_than=newer, operator=draw(st.sampled_from(["And", "Or"])), tag_status=status,  # type: ignore[arg-type]
                    count=draw(st.sampled_from(["tags", "tags", "images"])),  # type: ignore[arg-type]
                    age=draw(st.sampled_from(["created", "created", "pushed"])),  # type: ignore[arg-type]
                    priority=draw(st.none() | st.integers(1, 3)),
                    with_tags=tuple(compile_pattern(p) for p in with_tags))


def git_rule(revision_label: bool) -> KeepRule:
    return KeepRule(git_refs=GitRefs(repo="./src", branches=compile_pattern("^main$"), tags=None,
                                     tag_commit=TAG_COMMIT, revision_label=revision_label))


@st.composite
def policies(draw: st.DrawFn, *, max_rules: int = 3
             ) -> tuple[RetentionPolicy, tuple[tuple[int, frozenset[str] | str], ...]]:
    rules = draw(st.lists(keep_rules(), min_size=1, max_size=max_rules))
    commits: dict[int, frozenset[str] | str] = {}
    if chance(draw, 1 / 6):
        rules.insert(draw(st.integers(0, len(rules))), git_rule(draw(st.booleans())))
        index = next(i for i, r in enumerate(rules) if r.git_refs is not None)
        commits[index] = frozenset(draw(st.lists(st.sampled_from(COMMITS), max_size=3)))
    in_use = draw(st.lists(st.sampled_from(CLUSTERS), min_size=1, max_size=2, unique=True)) if chance(draw, 1 / 2) \
        else []
    protect = Protection(in_use=tuple(in_use),
                         deployed_history=draw(st.integers(0, 3)),
                         helm_releases=tuple(draw(st.lists(st.sampled_from(CLUSTERS), max_size=1))))
    max_deletions = draw(st.integers(0, 6) if chance(draw, 1 / 5) else st.just(1000))
    keep_mode = draw(st.sampled_from(["union", "firstMatch"]))
    if keep_mode == "union":
        rules = [replace(rule, priority=None) for rule in rules]
    policy = RetentionPolicy("ci-cleanup", "ci", ("team-a/*",), tuple(rules), protect, max_deletions,
                             keep_mode=keep_mode, untag_others=draw(st.booleans()),  # type: ignore[arg-type]
                             untagged=draw(st.sampled_from(["keep", "prune"])))  # type: ignore[arg-type]
    return policy, tuple(sorted(commits.items()))


TROUBLES = ("cluster", "missing-cluster", "deployed", "target", "git")


@st.composite
def scenarios(draw: st.DrawFn, *, real: bool = False, repositories: int = 2, readable: bool = True,
              max_nodes: int = 9, max_tags: int = 10, max_rules: int = 3) -> Scenario:
    """A whole retention decision's inputs. Every cluster the policy protects with is observed, and
    every source read, unless ``readable`` is False: then one in eight scenarios has one source
    that could not be read (which must block the policy)."""
    count = draw(st.integers(1, repositories))
    found = tuple(draw(blueprints(i, real=real, max_nodes=max_nodes, max_tags=max_tags)) for i in range(count))
    policy, commits = draw(policies(max_rules=max_rules))
    shield = draw(protections(found))
    clusters = dict(shield.clusters)
    for name in {*policy.protect.in_use, *policy.protect.helm_releases} - set(clusters):
        clusters[name] = ()
    deployed, targets = shield.deployed, shield.targets
    if not readable and chance(draw, 1 / 8):
        trouble = draw(st.sampled_from(TROUBLES))
        wanted = sorted({*policy.protect.in_use, *policy.protect.helm_releases})
        if trouble == "cluster" and wanted:
            clusters[wanted[0]] = "403 forbidden: list pods"
        elif trouble == "missing-cluster" and wanted:
            del clusters[wanted[0]]
        elif trouble == "deployed" and policy.protect.deployed_history:
            deployed = None
        elif trouble == "git" and commits:
            commits = tuple((i, "git fetch failed: host unreachable") for i, _ in commits)
        else:
            targets = ((DEPLOY_POLICIES[0], "git fetch: could not read from remote repository", False),)
    return Scenario(found, Protections(tuple(sorted(clusters.items())), deployed, targets), policy, commits)


def created_hours(blueprint: Blueprint, now: datetime) -> Callable[[int], datetime | None]:
    def created(n: int) -> datetime | None:
        hours = blueprint.nodes[n].created
        return None if hours is None else now - timedelta(hours=hours)
    return created


def inputs(scenario: Scenario, states: tuple[RepositoryState, ...] | None = None, *, host: str = HOST,
           digest: Callable[[At], str] | None = None) -> RetentionInputs:
    """The scenario's RetentionInputs: its repositories realized in memory unless ``states`` (a real
    observation) are given, with ``digest`` then naming the real digests."""
    if states is None:
        states = tuple(realize(b, lambda n, r=r: node_digest(r, n), created_hours(b, scenario.now))
                       for r, b in enumerate(scenario.blueprints))
    protected = realize_protections(scenario.protections, digest or scenario.digest, host,
                                    tuple(s.repository for s in states))
    return RetentionInputs(host, states, git_commits=dict(scenario.git_commits), **protected)  # type: ignore[arg-type]


def shuffled(value: RetentionInputs, rng: random.Random) -> RetentionInputs:
    """``value`` with every mapping (tags, images, referrers, clusters, history owners, targets,
    git commits) and every unordered tuple rebuilt in ``rng``'s order. Ordered data stays: index
    children (the index's own order) and deploy histories (newest first)."""
    def mix(mapping: Mapping) -> dict:  # type: ignore[type-arg]
        items = list(mapping.items())
        rng.shuffle(items)
        return dict(items)

    def mix_tuple(values: tuple) -> tuple:  # type: ignore[type-arg]
        items = list(values)
        rng.shuffle(items)
        return tuple(items)

    states = []
    for state in value.repositories:
        states.append(RepositoryState(
            state.registry, state.repository, MappingProxyType(mix(state.tags)), MappingProxyType(mix(state.images)),
            MappingProxyType({s: mix_tuple(r) for s, r in mix(state.referrers).items()}),
            state.can_delete_tags, state.can_delete, state.untagged, MappingProxyType(mix(state.pushed))))
    clusters = {name: c if isinstance(c, str) else ClusterState(c.cluster, MappingProxyType(mix(c.images)))
                for name, c in mix(value.clusters).items()}
    deployed = None if value.deployed is None else mix(value.deployed)
    return RetentionInputs(value.registry_host, tuple(mix_tuple(tuple(states))), clusters, deployed,
                           mix(value.git_commits), mix(value.deploy_targets))
