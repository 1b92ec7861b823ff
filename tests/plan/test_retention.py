"""Retention rules as tables: hand-written observations in, actions out. No I/O."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta

import pytest

from reconcile.observe.state import (
    OCI_INDEX,
    OCI_MANIFEST,
    ClusterState,
    DeployHealth,
    Descriptor,
    Image,
    ImageReference,
    RepositoryState,
    Usage,
)
from reconcile.plan.actions import Cause
from reconcile.plan.retention import RetentionInputs, plan_retention
from reconcile.policy.model import GitRefs, KeepRule, Protection, RetentionPolicy
from reconcile.policy.semver import SemverRange

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
HOST = "registry.ci.example.com"


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def repo(tags: dict[str, int], *, age_days: dict[int, float] | None = None,
         children: dict[int, list[int]] | None = None, labels: dict[int, dict[str, str]] | None = None,
         can_delete_tags: bool = False, name: str = "team-a/web") -> RepositoryState:
    """Tags -> image numbers; every image is created `age_days` ago (default: unknown)."""
    age_days, children, labels = age_days or {}, children or {}, labels or {}
    numbers = set(tags.values()) | {c for cs in children.values() for c in cs}
    images = {digest(n): Image(
        digest(n), OCI_INDEX if n in children else OCI_MANIFEST,
        NOW - timedelta(days=age_days[n]) if n in age_days else None, labels.get(n, {}),
        tuple(Descriptor(OCI_MANIFEST, digest(c), 100) for c in children.get(n, ()))) for n in numbers}
    descriptors = {tag: Descriptor(OCI_INDEX if n in children else OCI_MANIFEST, digest(n), 100)
                   for tag, n in tags.items()}
    return RepositoryState("ci", name, descriptors, images, can_delete_tags=can_delete_tags)


NO_PROTECTION = Protection()


def policy(*keep: KeepRule, protect: Protection = NO_PROTECTION, max_deletions: int = 100,
           **spec: object) -> RetentionPolicy:
    return RetentionPolicy("ci-cleanup", "ci", ("team-a/*",), keep, protect, max_deletions, **spec)  # type: ignore[arg-type]


def rule(tags: str | None = None, **kwargs: object) -> KeepRule:
    return KeepRule(tags=re.compile(tags) if tags else None, **kwargs)  # type: ignore[arg-type]


def outcome(actions: list) -> dict[str, list[str]]:
    """kind -> targets (without the registry/repository prefix)."""
    result: dict[str, list[str]] = {}
    for action in actions:
        result.setdefault(action.kind, []).append(action.target.split("team-a/web", 1)[-1])
    return result


def run(p: RetentionPolicy, *repositories: RepositoryState, **inputs: object) -> list:
    return plan_retention(p, RetentionInputs(HOST, repositories, **inputs), NOW)  # type: ignore[arg-type]


# --- keep rules -------------------------------------------------------------------------------

CASES = [
    pytest.param(
        policy(rule(r"^v\d+\.\d+\.\d+$")), repo({"v1.0.0": 1, "v1.1.0": 2, "latest-dev": 3}),
        {"keep": [":v1.0.0", ":v1.1.0"], "prune": [f"@{digest(3)}"]}, id="tag regex keeps what it matches"),
    pytest.param(
        policy(rule(r"^v", last=2)), repo({"v1.9.0": 1, "v1.10.0": 2, "v1.2.0": 3}),
        {"keep": [":v1.10.0", ":v1.9.0"], "prune": [f"@{digest(3)}"]}, id="last N by semver, not text order"),
    pytest.param(
        policy(rule(r"^v", last=1)), repo({"v2.0.0-rc.1": 1, "v1.9.0": 2}),
        {"keep": [":v2.0.0-rc.1"], "prune": [f"@{digest(2)}"]}, id="a pre-release outranks the lower release"),
    pytest.param(
        policy(rule(r"^build-(\d+)$", last=2)), repo({"build-9": 1, "build-10": 2, "build-100": 3}),
        {"keep": [":build-10", ":build-100"], "prune": [f"@{digest(1)}"]}, id="last N numeric by capture group"),
    pytest.param(
        policy(rule(r"^feature-", last=1)),
        repo({"feature-a": 1, "feature-b": 2}, age_days={1: 1, 2: 5}),
        {"keep": [":feature-a"], "prune": [f"@{digest(2)}"]}, id="last N by creation time otherwise"),
    pytest.param(
        policy(rule(r"^feature-", last=1, order="alphabetical")), repo({"feature-a": 1, "feature-b": 2}),
        {"keep": [":feature-b"], "prune": [f"@{digest(1)}"]}, id="explicit order"),
    pytest.param(
        policy(rule(r"^pr-", newer_than=timedelta(days=7))),
        repo({"pr-1": 1, "pr-2": 2, "pr-3": 3}, age_days={1: 3, 2: 30}),
        {"keep": [":pr-1", ":pr-3"], "prune": [f"@{digest(2)}"]}, id="newerThan; unknown age is not old"),
    pytest.param(
        policy(rule(r"^b-(\d+)$", last=1, newer_than=timedelta(days=7))),
        repo({"b-1": 1, "b-2": 2, "b-3": 3}, age_days={1: 1, 2: 2, 3: 30}),
        {"prune": [f"@{digest(1)}", f"@{digest(2)}", f"@{digest(3)}"]},
        id="And: newest by number (b-3) is too old, young ones are not newest"),
    pytest.param(
        policy(rule(r"^b-(\d+)$", last=1, newer_than=timedelta(days=7), operator="Or")),
        repo({"b-1": 1, "b-2": 2, "b-3": 3}, age_days={1: 1, 2: 2, 3: 30}),
        {"keep": [":b-1", ":b-2", ":b-3"]}, id="Or: either limit keeps"),
    pytest.param(
        policy(KeepRule(semver=SemverRange.parse(">=2.0.0 <3"))), repo({"v1.9.0": 1, "v2.1.0": 2, "2.0.0": 3}),
        {"keep": [":2.0.0", ":v2.1.0"], "prune": [f"@{digest(1)}"]}, id="semver range selector"),
    pytest.param(
        policy(rule("^v"), rule("^stable$")), repo({"v1": 1, "stable": 2, "tmp": 3}),
        {"keep": [":stable", ":v1"], "prune": [f"@{digest(3)}"]}, id="any rule keeps"),
    pytest.param(
        policy(rule("^v")), repo({"a": 1, "b": 1, "v1": 2}),
        {"prune": [f"@{digest(1)}"], "keep": [":v1"]}, id="one prune per digest, with all its tags"),
]


@pytest.mark.parametrize(("retention", "repository", "expected"), CASES)
def test_keep_rules(retention: RetentionPolicy, repository: RepositoryState, expected: dict[str, list[str]]) -> None:
    assert {k: sorted(v) for k, v in outcome(run(retention, repository)).items()} == expected


def test_reasons_say_which_rule_and_why() -> None:
    actions = run(policy(rule(r"^build-(\d+)$", last=1)), repo({"build-1": 1, "build-2": 2}))
    assert [(a.kind, a.reason) for a in actions] == [
        ("keep", r"keep[0]: matches '^build-(\d+)$', among the 1 newest by numeric"),
        ("prune", "delete manifest sha256:000000000000, which removes tags build-1: no keep rule or protection "
                  "applies to them"),
    ]
    assert actions[1].tags == ("build-1",) and actions[1].digest_before == digest(1)


# --- protections ------------------------------------------------------------------------------


def cluster(*references: ImageReference, name: str = "prod-eu") -> ClusterState:
    return ClusterState(name, {ref: (Usage(name, "web", "Pod", "web-1", "web", "running"),) for ref in references})


PROTECT_PROD = Protection(in_use=("prod-eu",))


def test_a_digest_running_in_a_protecting_cluster_is_never_pruned() -> None:
    running = cluster(ImageReference("other.registry", "x", digest=digest(2)))  # same content anywhere
    actions = run(policy(rule("^v"), protect=PROTECT_PROD), repo({"v1": 1, "old": 2, "older": 3}),
                  clusters={"prod-eu": running})
    assert outcome(actions) == {"keep": [":old", ":v1"], "prune": [f"@{digest(3)}"]}
    assert "running or kept for rollback" in actions[0].reason


def test_a_tag_running_by_name_is_protected_on_the_same_registry_only() -> None:
    running = cluster(ImageReference(HOST, "team-a/web", tag="old"), ImageReference("elsewhere", "team-a/web", tag="x"))
    actions = run(policy(rule("^v"), protect=PROTECT_PROD), repo({"old": 1, "x": 2}), clusters={"prod-eu": running})
    assert outcome(actions) == {"keep": [":old"], "prune": [f"@{digest(2)}"]}


@pytest.mark.parametrize(("clusters", "reason"), [
    ({"prod-eu": "403 forbidden: list pods"}, "cluster prod-eu could not be read: 403 forbidden: list pods"),
    ({}, "cluster prod-eu was not observed"),
])
def test_an_unreadable_protecting_cluster_prunes_nothing(clusters: dict, reason: str) -> None:
    actions = run(policy(rule("^v"), protect=PROTECT_PROD), repo({"v1": 1, "old": 2}), clusters=clusters)
    assert [(a.kind, a.reason) for a in actions] == [("blocked", f"{reason}; nothing is pruned")]


def test_the_rollback_window_from_the_audit_trail_is_protected() -> None:
    deployed = {"prod-web": [digest(3), digest(2), digest(1)], "staging-web": [digest(4)]}
    actions = run(policy(rule("^v"), protect=Protection(deployed_history=2)),
                  repo({"v9": 9, "a": 1, "b": 2, "c": 3, "d": 4}), deployed=deployed)
    assert outcome(actions) == {"keep": [":b", ":c", ":d", ":v9"], "prune": [f"@{digest(1)}"]}
    assert actions[1].reason == "protected: among the last digests DeployPolicy/prod-web deployed"


@pytest.mark.parametrize(("targets", "kinds", "reason"), [
    ({"prod-web": DeployHealth(digest(2), True, "")}, {"keep": [":b", ":v9"], "prune": [f"@{digest(1)}"]},
     f"protected: DeployPolicy/prod-web's target runs or pins {digest(2)[:19]} now"),
    ({"prod-web": DeployHealth(digest(2), False, "1 of 3 updated replicas available")},
     {"keep": [":b", ":v9"], "prune": [f"@{digest(1)}"]}, None),  # a rollout under way: still in use
    ({"prod-web": DeployHealth(None, True, "")}, {"keep": [":v9"], "prune": [f"@{digest(1)}", f"@{digest(2)}"]},
     None),  # workloads on different digests name no one digest (a protecting cluster covers them)
    ({"prod-web": "git fetch: could not read from remote repository"}, {"blocked": ["ci"]},
     "what DeployPolicy/prod-web runs could not be read: git fetch: could not read from remote repository; "
     "nothing is pruned"),
], ids=["pinned", "rolling-out", "no-single-digest", "unreadable"])
def test_what_a_deploy_target_runs_or_pins_now_is_never_pruned(targets: dict, kinds: dict, reason: str | None
                                                               ) -> None:
    """A manifests target's pin counts as in use before any cluster syncs it; no protect rule needed."""
    actions = run(policy(rule("^v")), repo({"v9": 9, "a": 1, "b": 2}), deploy_targets=targets)
    assert outcome(actions) == kinds
    if reason:
        assert reason in [a.reason for a in actions]


def test_an_unreadable_audit_trail_prunes_nothing_when_history_protects() -> None:
    actions = run(policy(rule("^v"), protect=Protection(deployed_history=3)), repo({"old": 1}), deployed=None)
    assert [a.kind for a in actions] == ["blocked"]
    assert "audit trail" in actions[0].reason


def test_a_kept_image_keeps_every_tag_it_has_by_default() -> None:
    """Image-level retention (as ECR and werf): a tag no rule keeps stays on a kept image, even
    where the registry could remove it alone."""
    for can_delete_tags in (True, False):
        actions = run(policy(rule("^v")), repo({"v1": 1, "build-7": 1}, can_delete_tags=can_delete_tags))
        assert outcome(actions) == {"keep": [":build-7", ":v1"]}
        assert actions[0].cause is Cause.IMAGE_KEPT
        assert actions[0].reason == ("no rule keeps the tag, but its image stays (tagged v1, which is kept), and a "
                                     "kept image keeps every tag (untagOthers: true removes such tags)")


def test_a_kept_image_keeps_its_tags_whatever_keeps_it() -> None:
    """Kept by a protection, or as a platform of a kept index: every tag on it stays."""
    actions = run(policy(rule("^v"), protect=PROTECT_PROD), repo({"v1": 1, "v1-amd64": 2, "old": 3, "old-b": 3},
                                                                   children={1: [2]}, can_delete_tags=True),
                  clusters={"prod-eu": cluster(ImageReference(HOST, "team-a/web", digest=digest(3)))})
    assert outcome(actions) == {"keep": [":old", ":old-b", ":v1", ":v1-amd64"]}


def test_a_digest_shared_with_a_kept_tag_is_untagged_where_the_registry_can() -> None:
    actions = run(policy(rule("^v"), untag_others=True), repo({"v1": 1, "build-7": 1}, can_delete_tags=True))
    assert outcome(actions) == {"keep": [":v1"], "untag": [":build-7"]}
    assert actions[0].reason == "no rule keeps it; its digest stays: tagged v1, which is kept"


def test_a_digest_shared_with_a_kept_tag_stays_where_the_registry_cannot_untag() -> None:
    actions = run(policy(rule("^v"), untag_others=True), repo({"v1": 1, "build-7": 1}))
    assert outcome(actions) == {"keep": [":build-7", ":v1"]}
    assert actions[0].reason == ("no rule keeps it, but this registry cannot remove a tag alone and deleting "
                                 f"{digest(1)[:19]} would remove what is kept: tagged v1, which is kept")


def test_a_kept_index_keeps_its_platform_manifests() -> None:
    actions = run(policy(rule("^v")), repo({"v1": 1, "v1-amd64": 2, "stray": 3}, children={1: [2, 3]}))
    assert outcome(actions)["keep"] == [":stray", ":v1", ":v1-amd64"]


def test_referrers_follow_their_subject() -> None:
    sig_of = {n: f"sha256-{digest(n)[7:]}.sig" for n in (1, 2)}
    actions = run(policy(rule("^v")), repo({"v1": 1, "old": 2, sig_of[1]: 11, sig_of[2]: 12}))
    assert outcome(actions) == {"keep": [":v1", f":{sig_of[1]}"], "prune": [f"@{digest(2)}", f"@{digest(12)}"]}
    assert actions[2].reason == (f"delete manifest {digest(12)[:19]}, which removes tags {sig_of[2]}: "
                                 f"referrer (artifact) of pruned {digest(2)[:19]}")
    assert actions[2].depends_on == actions[1].target


def test_over_max_deletions_nothing_is_deleted() -> None:
    actions = run(policy(rule("^v"), max_deletions=2), repo({"v1": 1, "a": 2, "b": 3, "c": 4}))
    assert [a.kind for a in actions] == ["blocked", "keep"]
    assert actions[0].reason.startswith("would delete 3 tags, over maxDeletions 2; nothing is pruned")


# --- git references ---------------------------------------------------------------------------

GIT = GitRefs(repo="./src", branches=re.compile("main"), tags=None,
              tag_commit=re.compile(r"^sha-(?P<commit>[0-9a-f]{7,40})$"), revision_label=True)
LIVE = frozenset({"abcdef0123456789abcdef0123456789abcdef01"})


def test_git_refs_keep_images_of_live_commits_by_tag_or_label() -> None:
    actions = run(policy(KeepRule(git_refs=GIT)),
                  repo({"sha-abcdef0": 1, "sha-1234567": 2, "nightly": 3}, labels={3: {
                      "org.opencontainers.image.revision": "ABCDEF0123456789abcdef0123456789abcdef01"}}),
                  git_commits={0: LIVE})
    assert outcome(actions) == {"keep": [":nightly", ":sha-abcdef0"], "prune": [f"@{digest(2)}"]}


@pytest.mark.parametrize("commits", [{0: "git fetch failed: host unreachable"}, {}])
def test_an_unreadable_source_repository_prunes_nothing(commits: dict) -> None:
    actions = run(policy(KeepRule(git_refs=GIT)), repo({"sha-1234567": 1}), git_commits=commits)
    assert [a.kind for a in actions] == ["blocked"]



def test_an_abbreviated_sha_is_looked_up_not_scanned_and_an_ambiguous_one_keeps() -> None:
    """Two live commits share the prefix abcdef0: the tag could name either, both kept, so it is
    kept (conservatively: it might also name a commit that is not live), and the reason names the
    first in SHA order. A prefix of no live commit keeps nothing, whatever else it could name."""
    live = frozenset({"abcdef0" + "1" * 33, "abcdef0" + "0" * 33, "1234567" + "f" * 33})
    actions = run(policy(KeepRule(git_refs=GIT)),
                  repo({"sha-abcdef0": 1, "sha-abcdef01": 2, "sha-1234567" + "f" * 33: 3, "sha-abcdef9": 4,
                        "sha-1234566": 5}), git_commits={0: live})
    assert outcome(actions) == {"keep": [":sha-1234567" + "f" * 33, ":sha-abcdef0", ":sha-abcdef01"],
                                "prune": [f"@{digest(4)}", f"@{digest(5)}"]}
    reasons = {a.target.rsplit(":", 1)[-1]: a.reason for a in actions if a.kind == "keep"}
    assert "commit abcdef000000," in reasons["sha-abcdef0"] and "commit abcdef011111," in reasons["sha-abcdef01"]


def test_the_prefix_lookup_agrees_with_a_scan() -> None:
    from reconcile.plan.retention import _live_commit_named

    rng = random.Random(11)
    commits = frozenset(f"{rng.getrandbits(160):040x}" for _ in range(3000)) | {"ab" * 20, "ab" * 19 + "ac"}
    prefixes = [c[:n] for c in rng.sample(sorted(commits), 200) for n in (7, 9, 40)]
    prefixes += [f"{rng.getrandbits(28):07x}" for _ in range(500)] + ["abababa", "ab" * 20 + "0", "fffffff"]
    for prefix in prefixes:
        matching = sorted(c for c in commits if c.startswith(prefix))
        assert _live_commit_named(prefix, commits) == (matching[0] if matching else None), prefix


# --- determinism ------------------------------------------------------------------------------


def test_same_inputs_same_plan_whatever_their_order() -> None:
    tags = {f"build-{n}": n for n in range(1, 40)} | {"v1.0.0": 100, "v2.0.0": 101}
    base = run(policy(rule(r"^build-(\d+)$", last=5), rule("^v")), repo(tags))
    shuffled = list(tags.items())
    random.Random(7).shuffle(shuffled)
    assert run(policy(rule(r"^build-(\d+)$", last=5), rule("^v")), repo(dict(shuffled))) == base


# --- combinations -----------------------------------------------------------------------------

MORE = [
    pytest.param(policy(KeepRule(semver=SemverRange.parse("^1"), last=1)),
                 repo({"v1.1.0": 1, "v1.2.0": 2, "v2.0.0": 3}),
                 {"keep": [":v1.2.0"], "prune": [f"@{digest(1)}", f"@{digest(3)}"]}, id="semver range then last"),
    pytest.param(policy(rule("^nothing$")), repo({"a": 1, "b": 2}),
                 {"prune": [f"@{digest(1)}", f"@{digest(2)}"]}, id="a rule matching nothing keeps nothing"),
    pytest.param(policy(rule(r"^\d+$", last=2)), repo({"9": 1, "10": 2, "100": 3}),
                 {"keep": [":10", ":100"], "prune": [f"@{digest(1)}"]}, id="numeric tags without a group"),
    pytest.param(policy(rule(".", last=1, order="semver")), repo({"v1.0.0": 1, "nightly": 2}),
                 {"keep": [":nightly", ":v1.0.0"]}, id="a tag the order cannot rank is kept (fail closed)"),
    pytest.param(policy(rule("^v", last=10)), repo({"v1": 1, "v2": 2}),
                 {"keep": [":v1", ":v2"]}, id="last N over fewer tags keeps them all"),
    pytest.param(policy(rule("^v", newer_than=timedelta(days=1))), repo({"v1": 1}, age_days={1: -2}),
                 {"keep": [":v1"]}, id="a creation time in the future is young"),
    pytest.param(policy(rule("^v")), repo({}), {}, id="an empty repository plans nothing"),
    pytest.param(policy(rule("^b-", last=1, order="newest")), repo({"b-x": 1, "b-y": 2}, age_days={2: 3}),
                 {"keep": [":b-x", ":b-y"]}, id="unknown creation time cannot be ranked: kept"),
    pytest.param(policy(rule("^v"), rule("^v1$", last=1)), repo({"v1": 1, "v2": 2}),
                 {"keep": [":v1", ":v2"]}, id="overlapping rules keep once"),
    pytest.param(policy(rule("(?i)^RELEASE-")), repo({"release-1": 1, "Release-2": 2, "rc-3": 3}),
                 {"keep": [":Release-2", ":release-1"], "prune": [f"@{digest(3)}"]}, id="case-insensitive pattern"),
]


@pytest.mark.parametrize(("retention", "repository", "expected"), MORE)
def test_keep_rule_combinations(retention: RetentionPolicy, repository: RepositoryState,
                                expected: dict[str, list[str]]) -> None:
    assert {k: sorted(v) for k, v in outcome(run(retention, repository)).items()} == expected


def test_the_first_rule_that_keeps_gives_the_reason() -> None:
    (action,) = run(policy(rule("^v"), rule("^v1$")), repo({"v1": 1}))
    assert action.reason == "keep[0]: matches '^v'"


def test_a_running_platform_manifest_protects_its_index() -> None:
    running = cluster(ImageReference("elsewhere", "web", digest=digest(2)))
    actions = run(policy(rule("^v"), protect=PROTECT_PROD), repo({"nightly": 1}, children={1: [2, 3]}),
                  clusters={"prod-eu": running})
    assert outcome(actions) == {"keep": [":nightly"]}
    assert actions[0].reason == f"protected: its platform manifest {digest(2)[:19]} runs in a protecting cluster"


def test_protected_tags_do_not_count_against_max_deletions() -> None:
    running = cluster(ImageReference(HOST, "team-a/web", digest=digest(2)))
    actions = run(policy(rule("^v"), protect=PROTECT_PROD, max_deletions=1), repo({"a": 2, "b": 3}),
                  clusters={"prod-eu": running})
    assert outcome(actions) == {"keep": [":a"], "prune": [f"@{digest(3)}"]}


def test_untags_count_against_max_deletions() -> None:
    actions = run(policy(rule("^v"), max_deletions=1, untag_others=True),
                  repo({"v1": 1, "x": 1, "y": 1}, can_delete_tags=True))
    assert [a.kind for a in actions] == ["blocked", "keep"]


def test_no_deploy_history_needed_when_the_policy_does_not_protect_it() -> None:
    actions = run(policy(rule("^v")), repo({"v1": 1, "old": 2}), deployed=None)
    assert outcome(actions) == {"keep": [":v1"], "prune": [f"@{digest(2)}"]}


def test_a_commit_prefix_shorter_than_7_never_matches() -> None:
    short_tags = GitRefs(repo="./src", branches=re.compile("main"), tags=None,
                         tag_commit=re.compile(r"^sha-(?P<commit>[0-9a-f]+)$"))
    actions = run(policy(KeepRule(git_refs=short_tags)), repo({"sha-abc": 1}), git_commits={0: LIVE})
    assert outcome(actions) == {"prune": [f"@{digest(1)}"]}


def test_a_referrer_of_a_kept_platform_manifest_stays() -> None:
    sig = f"sha256-{digest(2)[7:]}.sig"
    actions = run(policy(rule("^v")), repo({"v1": 1, sig: 9}, children={1: [2]}))
    assert outcome(actions) == {"keep": [":v1", f":{sig}"]}


def test_each_repository_is_planned_on_its_own() -> None:
    web, api = repo({"v1": 1, "old": 2}), repo({"v1": 3, "old": 4}, name="team-a/api")
    actions = run(policy(rule("^v")), web, api)
    assert [(a.kind, a.target.split("/", 1)[1]) for a in actions] == [
        ("keep", "team-a/api:v1"), ("prune", f"team-a/api@{digest(4)}"),
        ("keep", "team-a/web:v1"), ("prune", f"team-a/web@{digest(2)}")]


# --- peers' orders (issue 18): descending, non-strict versions, the Masterminds pre-release rule ------

PEER_CASES = [
    # fluxcd/image-reflector-controller internal/policy/numerical_test.go TestNumerical_Latest, descending: the
    # lowest is "latest", so last: 2 keeps the two lowest
    pytest.param(
        policy(rule(r"^(-?\d+)$", last=2, order="numeric", descending=True)),
        repo({"5": 1, "-8": 2, "-78": 3, "25": 4, "70": 5}),
        {"keep": [":-78", ":-8"], "prune": [f"@{digest(n)}" for n in (1, 4, 5)]}, id="Flux numerical descending"),
    pytest.param(
        policy(rule(r"^rel-(.+)$", last=1, order="numeric")), repo({"rel-1.5": 1, "rel-1.10": 2, "rel-0.9": 3}),
        {"keep": [":rel-1.5"], "prune": [f"@{digest(2)}", f"@{digest(3)}"]},
        id="Flux numerical decimals: 1.5 > 1.10"),
    # fluxcd/image-reflector-controller internal/policy/alphabetical_test.go, Ubuntu CalVer descending
    pytest.param(
        policy(rule(None, last=1, order="alphabetical", descending=True)),
        repo({"16.04": 1, "16.10": 2, "20.04": 3}),
        {"keep": [":16.04"], "prune": [f"@{digest(2)}", f"@{digest(3)}"]}, id="Flux alphabetical descending"),
    pytest.param(
        policy(rule(r"^v", last=1, descending=True)), repo({"v1.9.0": 1, "v1.10.0": 2, "v1.2.0": 3}),
        {"keep": [":v1.2.0"], "prune": [f"@{digest(1)}", f"@{digest(2)}"]}, id="semver descending"),
    pytest.param(
        policy(rule(r"^b-", last=1, order="newest", descending=True)),
        repo({"b-x": 1, "b-y": 2}, age_days={1: 1, 2: 9}),
        {"keep": [":b-y"], "prune": [f"@{digest(1)}"]}, id="newest descending keeps the oldest"),
    pytest.param(
        policy(rule(r"^v", last=1, order="semver", strict_semver=False)), repo({"v1.2": 1, "v1.10": 2, "v1.9.0": 3}),
        {"keep": [":v1.10"], "prune": [f"@{digest(1)}", f"@{digest(3)}"]}, id="strictSemver false ranks v1.10"),
    pytest.param(
        policy(rule(r"^v", last=1, order="semver")), repo({"v1.2": 1, "v1.10": 2, "v1.9.0": 3}),
        {"keep": [":v1.10", ":v1.2", ":v1.9.0"]}, id="strict (the default): v1.2 and v1.10 cannot rank, kept"),
    pytest.param(
        policy(KeepRule(semver=SemverRange.parse("^1.2.x-alpha", prereleases="masterminds"))),
        repo({"1.3.0-rc.1": 1, "1.2.5": 2, "2.0.0": 3}),
        {"keep": [":1.2.5", ":1.3.0-rc.1"], "prune": [f"@{digest(3)}"]}, id="Masterminds ^1.2.x-alpha"),
    pytest.param(
        policy(KeepRule(semver=SemverRange.parse("^1.2.x-alpha"))), repo({"1.3.0-rc.1": 1, "1.2.5": 2, "2.0.0": 3}),
        {"keep": [":1.2.5"], "prune": [f"@{digest(1)}", f"@{digest(3)}"]}, id="npm ^1.2.x-alpha"),
    pytest.param(
        policy(KeepRule(semver=SemverRange.parse("1.x"), strict_semver=False)), repo({"1.2": 1, "2.0": 2}),
        {"keep": [":1.2"], "prune": [f"@{digest(2)}"]}, id="a range over non-strict versions"),
]


@pytest.mark.parametrize(("retention", "repository", "expected"), PEER_CASES)
def test_peer_orders(retention: RetentionPolicy, repository: RepositoryState, expected: dict[str, list[str]]) -> None:
    assert {k: sorted(v) for k, v in outcome(run(retention, repository)).items()} == expected


def test_a_descending_rule_says_so() -> None:
    actions = run(policy(rule(r"^b-(\d+)$", last=1, descending=True)), repo({"b-1": 1, "b-2": 2}))
    kept = next(a for a in actions if a.kind == "keep")
    assert kept.target.endswith(":b-1") and "among the 1 lowest by numeric (descending)" in kept.reason
