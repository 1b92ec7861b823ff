"""The conformance cases' shape, and reconcile's result for each, computed by the real parts.

A case is what a peer tool (Flux, Argo CD Image Updater, Kargo, werf, Amazon ECR) documents or
tests: its input (tags, with their times), its configuration, its result, where that is written,
and the equivalent reconcile policy fragment. Reconcile's result is computed here, never written
by hand: a policy fragment is loaded through the real loader (parse, schema, cross-checks, typed
policies), then the planner's pure functions decide (``select_candidate`` for a selection,
``plan_retention`` for a retention).

A case's verdict: ``agrees`` when reconcile's result is the peer's; ``differs`` when it is not and
the case explains why (a deliberate difference, reconcile's result then being what its docs say);
``not expressible`` when no reconcile policy says what the peer's configuration says (the case
explains what is missing; a closest translation may still be run, for information).
"""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from reconcile.observe.state import OCI_MANIFEST, REVISION_LABEL, Descriptor, Image, RepositoryState
from reconcile.plan.actions import ActionKind
from reconcile.plan.promotion import AmbiguousCandidate, select_candidate
from reconcile.plan.retention import RetentionInputs, plan_retention
from reconcile.policy.loader import Validation, validate_snapshot
from reconcile.policy.model import KeepRule, PolicySet
from reconcile.policy.source import PolicyFile, Snapshot

AGREES, DIFFERS, NOT_EXPRESSIBLE = "agrees", "differs", "not expressible"

NONE = "none"  # nothing selected (the peer returns no tag, or an error that selects none)
REFUSED = "refused"  # the configuration is refused (the peer's error; reconcile's validate)
AMBIGUOUS = "refused: tie"  # reconcile's track ranks tags on different digests equal at the top
ACCEPTED = "accepted"  # a configuration-only case: the configuration is taken

REGISTRY = """\
apiVersion: reconcile/v1
kind: Registry
metadata: {name: peer}
spec: {url: "https://registry.example.com", deletion: tag}
"""
# Amazon ECR, listed through DescribeImages: what says when images were pushed, and lists untagged ones
ECR_REGISTRY = """\
apiVersion: reconcile/v1
kind: Registry
metadata: {name: peer}
spec:
  url: https://123456789012.dkr.ecr.eu-west-1.amazonaws.com
  deletion: tag
  listing: {api: ecr, credentials: {accessKeyId: AKIAIOSFODNN7EXAMPLE, secretAccessKey: {env: AWS_SECRET_ACCESS_KEY}}}
"""


@dataclass(frozen=True)
class Case:
    peer: str
    name: str
    source: str  # URL, or repository @ commit, path and test function (and subtest)
    peer_config: str  # the peer's own configuration, as its docs or tests write it
    peer_result: str  # what the peer documents or asserts
    policy: str  # the reconcile fragment: a track (selection) or a RetentionPolicy spec (retention)
    expressible: bool = True
    registry: str = REGISTRY  # the Registry document the policy names (peer)
    result: str | None = None  # reconcile's own documented result where it differs; None: the peer's
    why: str = ""  # required for a difference or a case that is not expressible

    @property
    def expected(self) -> str:
        """What reconcile is expected to answer (its documented result)."""
        return self.peer_result if self.result is None else self.result

    @property
    def verdict(self) -> str:
        if not self.expressible:
            return NOT_EXPRESSIBLE
        return AGREES if self.expected == self.peer_result else DIFFERS

    @property
    def id(self) -> str:
        return f"{self.peer}: {self.name}"

    def document(self) -> str:
        raise NotImplementedError


def digest(image: str) -> str:
    return "sha256:" + hashlib.sha256(image.encode()).hexdigest()


def validation(case: Case) -> Validation:
    """The case's policy document, with its Registry ``peer``, through the real loader."""
    text = case.registry + "---\n" + case.document()
    return validate_snapshot(Snapshot("conformance", None, (PolicyFile("conformance.yaml", text.encode()),)))


def _load(case: Case) -> PolicySet | None:
    """The case's policies, or None when validate refuses them."""
    return validation(case).policies


# --- selection: Flux, Argo CD Image Updater, Kargo ------------------------------------------------

SELECTION_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SelectionCase(Case):
    tags: tuple[str, ...] = ()
    created: Mapping[str, int] = field(default_factory=dict)  # tag -> seconds after 1970-01-01T00:00:00Z
    images: Mapping[str, str] = field(default_factory=dict)  # tag -> image; default: each tag its own
    show_image: bool = False  # the result names the image too (digest strategies)
    config_only: bool = False  # the peer's test checks the configuration alone: accepted or refused

    def image_of(self, tag: str) -> str:
        return self.images.get(tag, tag)

    def repository(self) -> RepositoryState:
        images = {}
        for tag in self.tags:
            name = self.image_of(tag)
            created = self.created.get(tag)
            images[digest(name)] = Image(digest(name), OCI_MANIFEST, None if created is None else
                                         SELECTION_EPOCH + timedelta(seconds=created))
        return RepositoryState("peer", "app", {tag: Descriptor(OCI_MANIFEST, digest(self.image_of(tag)), 100)
                                               for tag in self.tags}, images)

    def document(self) -> str:
        return ("apiVersion: reconcile/v1\nkind: PromotionPolicy\nmetadata: {name: peer}\nspec:\n  stages:\n"
                f"    - {{name: source, registry: peer, repository: app, track: {self.policy}}}\n")

    def input_text(self) -> str:
        if self.config_only:
            return "(the configuration alone)"
        parts = []
        for tag in self.tags:
            extra = []
            if tag in self.created:
                extra.append(f"t={self.created[tag]}s")
            if self.images.get(tag, tag) != tag:
                extra.append(f"image {self.images[tag]}")
            parts.append(f"{tag} ({', '.join(extra)})" if extra else tag)
        return ", ".join(parts) or "(no tags)"


def select(case: SelectionCase) -> str:
    """Reconcile's answer: the tag the track selects, ``none``, or why it refuses."""
    policies = _load(case)
    if policies is None:
        return REFUSED
    if case.config_only:
        return ACCEPTED
    (stage,) = policies.promotion_policies["peer"].stages
    assert stage.track is not None
    try:
        found = select_candidate(stage.track, case.repository())
    except AmbiguousCandidate:
        return AMBIGUOUS
    if found is None:
        return NONE
    if case.show_image:
        (image,) = [case.image_of(t) for t in case.tags if digest(case.image_of(t)) == found.digest][:1]
        return f"{found.tag}@{image}"
    return found.tag



# --- retention: werf, Amazon ECR --------------------------------------------------------------

RETENTION_NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Img:
    """One image (manifest) of a retention case: its tags (none: untagged), its times in hours
    before the case's now (pushed: when the registry got it; created: its config's time), and the
    commit it was built from (its org.opencontainers.image.revision label), by name."""

    name: str
    tags: tuple[str, ...] = ()
    pushed_hours_ago: float | None = None
    created_hours_ago: float | None = None
    revision: str | None = None

    def text(self) -> str:
        facts = []
        if self.pushed_hours_ago is not None:
            facts.append(f"pushed {_ago(self.pushed_hours_ago)} ago")
        if self.created_hours_ago is not None:
            facts.append(f"created {_ago(self.created_hours_ago)} ago")
        if self.revision is not None:
            facts.append(f"from commit {self.revision}")
        tags = "[" + ", ".join(self.tags) + "]"
        return f"{self.name} {tags}" + (f" {', '.join(facts)}" if facts else "")


def _ago(hours: float) -> str:
    if hours and hours % 24 == 0:
        return f"{hours / 24:g}d"
    return f"{hours:g}h" if hours >= 1 else f"{hours * 60:g}min"


def commit_sha(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()


@dataclass(frozen=True)
class GitRef:
    """A ref of a gitRefs source repository as its remote holds it: its full name and its commits,
    newest first as git rev-list walks them, each (commit name, committed hours before now); its
    head date is its first commit's."""

    ref: str
    commits: tuple[tuple[str, float], ...]

    def text(self) -> str:
        history = " <- ".join(f"{c} ({_ago(h)} ago)" for c, h in self.commits)
        return f"{self.ref.removeprefix('refs/heads/')}: {history}"


@dataclass(frozen=True)
class RetentionCase(Case):
    repository_images: tuple[Img, ...] = ()
    git: tuple[GitRef, ...] = ()  # the source repository's remote refs, for the policy's gitRefs rules

    def repository(self) -> RepositoryState:
        now = RETENTION_NOW
        tags, images, pushed, untagged = {}, {}, {}, set()
        for img in self.repository_images:
            d = digest(img.name)
            created = None if img.created_hours_ago is None else now - timedelta(hours=img.created_hours_ago)
            labels = {REVISION_LABEL: commit_sha(img.revision)} if img.revision else {}
            images[d] = Image(d, OCI_MANIFEST, created, labels)
            if img.pushed_hours_ago is not None:
                pushed[d] = now - timedelta(hours=img.pushed_hours_ago)
            for tag in img.tags:
                tags[tag] = Descriptor(OCI_MANIFEST, d, 100)
            if not img.tags:
                untagged.add(d)
        return RepositoryState("peer", "app", tags, images, can_delete_tags=True, untagged=frozenset(untagged),
                               pushed=pushed)

    def document(self) -> str:
        return ("apiVersion: reconcile/v1\nkind: RetentionPolicy\nmetadata: {name: peer}\nspec:\n"
                "  registry: peer\n  repositories: [app]\n  maxDeletions: 1000\n"
                + textwrap.indent(textwrap.dedent(self.policy).strip("\n"), "  ") + "\n")

    def input_text(self) -> str:
        text = "; ".join(img.text() for img in self.repository_images)
        return text + ("; git " + "; ".join(r.text() for r in self.git) if self.git else "")


def git_histories(rule: KeepRule, remote: tuple[GitRef, ...]) -> object:
    """What the git adapter observes for a gitRefs rule (``reconcile.adapters.git.refs.ref_histories``):
    each remote ref whose short name the rule's ``branches`` / ``tags`` pattern matches, with its
    head date and its commits in walk order: up to 1,000 for a rule that counts images per reference,
    else its ``commitsPerBranch`` newest."""
    from reconcile.observe.state import GitHistories, RefHistory  # the werf features (landing: see the report)

    refs = rule.git_refs
    assert refs is not None
    now = RETENTION_NOW.timestamp()
    depth = 1000 if refs.images_per_reference is not None else refs.commits_per_branch
    found = []
    for ref in sorted(remote, key=lambda r: r.ref):
        kind, _, short = ref.ref.removeprefix("refs/").partition("/")
        pattern = refs.branches if kind == "heads" else refs.tags
        if pattern is None or not pattern.search(short):
            continue
        commits = tuple((commit_sha(c), int(now - hours * 3600)) for c, hours in ref.commits)
        found.append(RefHistory(ref.ref, commits[0][1], commits[:depth], truncated=len(commits) > depth))
    return GitHistories(tuple(found), depth)


def expired_text(names: list[str] | set[str]) -> str:
    return "expired: " + (", ".join(sorted(names)) if names else "none")


def retain(case: RetentionCase) -> str:
    """Reconcile's answer: the images (digests) the plan deletes, or ``refused``."""
    policies = _load(case)
    if policies is None:
        return REFUSED
    policy = policies.retention_policies["peer"]
    git = {i: git_histories(rule, case.git) for i, rule in enumerate(policy.keep) if rule.git_refs is not None}
    actions = plan_retention(policy, RetentionInputs("registry.example.com", [case.repository()],
                                                     git_commits=git), RETENTION_NOW)  # type: ignore[arg-type]
    if any(a.kind is ActionKind.BLOCKED for a in actions):
        return "blocked: " + "; ".join(a.reason for a in actions if a.kind is ActionKind.BLOCKED)
    by_digest = {digest(img.name): img.name for img in case.repository_images}
    pruned = {by_digest[a.digest_before] for a in actions if a.kind is ActionKind.PRUNE and a.digest_before}
    return expired_text(pruned)
