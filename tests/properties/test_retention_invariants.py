"""Invariants of retention, on generated registries and policies (hypothesis).

Generated: repositories of images, indexes (children shared, nested, tagged too), cosign
signature tags naming any digest (kept ones, pruned ones, absent ones), OCI 1.1 artifacts with
``subject`` (referrers of referrers too) and referrers tag schema indexes, tags of every family,
creation times missing or in the future, manifests that answer 404; clusters using digests and
tags, deploy history, deploy targets; keep rules of every kind (see strategies.py). The expected
decision is computed independently in oracle.py.

The pure properties run on RetentionInputs built in memory; the last one builds the repository in
a real docker-registry, plans on what the client observes and applies the plan with the executor.
Bugs these properties found are regression tests at the end (and @example cases of the properties).
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import tempfile
import uuid
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType

from hypothesis import event, example, given, note, settings
from hypothesis import strategies as st

from reconcile.adapters.registry import open_registry
from reconcile.apply.executor import apply_plan
from reconcile.audit import AuditStore
from reconcile.observe.repositories import observe_repository
from reconcile.observe.state import (
    OCI_INDEX,
    OCI_MANIFEST,
    ClusterState,
    Descriptor,
    Image,
    ImageReference,
    RepositoryState,
    Usage,
)
from reconcile.plan.actions import Action, Cause
from reconcile.plan.plan import make_plan
from reconcile.plan.retention import RetentionInputs, plan_retention
from reconcile.policy.model import KeepRule, Protection, RetentionPolicy
from reconcile.policy.patterns import compile_pattern
from reconcile.policy.secrets import SecretResolver
from tests.adapters.registry.oci import Layout
from tests.conftest import FAST_RETRY, RunningRegistry, registry_policy
from tests.properties import oracle
from tests.properties.conftest import PROFILE
from tests.properties.registry import build, push_all
from tests.properties.strategies import (
    HOST,
    NOW,
    At,
    Blueprint,
    ByDigest,
    ByTag,
    Node,
    Protections,
    ReferrerTag,
    Scenario,
    foreign_digest,
    inputs,
    node_digest,
    referrer_tag_name,
    scenarios,
    shuffled,
)

BASE = settings.get_profile(PROFILE)
SCALE = int(os.environ.get("RECONCILE_HYPOTHESIS_SCALE", "1"))  # more examples when exploring


def plan(scenario: Scenario, given_inputs: RetentionInputs | None = None) -> tuple[RetentionInputs, list[Action]]:
    found = given_inputs if given_inputs is not None else inputs(scenario)
    return found, plan_retention(scenario.policy, found, scenario.now)


def full(actions: list[Action] | tuple[Action, ...]) -> list[tuple[Action, tuple[str, ...]]]:
    """Actions compared with their tags too (Action's equality leaves tags out)."""
    return [(a, a.tags) for a in actions]


def describe(scenario: Scenario, actions: list[Action]) -> None:
    note(f"policy: {scenario.policy}")
    note(f"git commits: {scenario.git_commits}")
    for action in actions:
        note(f"  {action.kind} {action.target} tags={action.tags} depends_on={action.depends_on}: {action.reason}")


# --- scenarios written by hand: regression examples of the properties --------------------------------

def _policy(*rules: KeepRule, protect: Protection | None = None, max_deletions: int = 1000) -> RetentionPolicy:
    return RetentionPolicy("ci-cleanup", "ci", ("team-a/*",), rules, protect or Protection(), max_deletions)


KEEP_V = KeepRule(tags=compile_pattern("^v"))
SPDX = "application/spdx+json"
SIG_OF_SHARED_WITH_PRUNED = Scenario(  # a pruned image's signature is also tagged as a kept image's
    (Blueprint("team-a/web", (Node("image", 5), Node("image", 9), Node("signature", None, subject=1)),
               (("old", 1), ("v1.0.0", 0)), (ReferrerTag(1, "sig", 2), ReferrerTag(0, "att", 2))),),
    Protections(), _policy(KEEP_V))
CHILD_OF_PRUNED_DEPLOYED = Scenario(  # a pruned index's platform manifest is in the rollback window
    (Blueprint("team-a/web", (Node("image", 5), Node("image", 7), Node("index", 3, children=(0, 1))),
               (("nightly", 2),)),),
    Protections(deployed=(("prod-web", (At(0, 1),)),)), _policy(KEEP_V, protect=Protection(deployed_history=1)))
LAST_OVER_FEWER_TAGS = Scenario(  # last 3 over 2 ranked tags keeps both (an oracle slip found while building)
    (Blueprint("team-a/web", (Node("image"), Node("image", 2)), (("v0.0.0", 0), ("v0.0.1", 1))),),
    Protections(), _policy(KeepRule(last=3)))

# One scenario per bug these properties found (fixed in d02fca5; see the regression tests at the
# end): each failed the property it is an example of.
PROD = Protection(in_use=("prod",))
ORDER_FLIP = Scenario(
    (Blueprint("team-a/web", (Node("image", 1), Node("image", 50), Node("image", 100)),
               (("1.0.0", 0), ("3.0.0", 1), ("x", 2))),),
    Protections(), _policy(KeepRule(tags=compile_pattern("."), last=1), KeepRule(tags=compile_pattern("^3"))))
ORPHAN_SIGNATURE_SHARES_A_REFERRER = Scenario(
    (Blueprint("team-a/web", (Node("image", 5), Node("image"), Node("image")), (("old", 0),),
               (ReferrerTag("ab" * 32, "sig", 1), ReferrerTag(1, "sig", 2), ReferrerTag(0, "sig", 2))),),
    Protections(), _policy(KEEP_V))
SIGNATURE_RUN_BY_NAME = Scenario(
    (Blueprint("team-a/web", (Node("image", 5), Node("signature", subject=0)), (("old", 0),),
               (ReferrerTag(0, "sig", 1),)),),
    Protections(clusters=(("prod", (ByTag(True, 0, referrer_tag_name(node_digest(0, 0), "sig")),)),)),
    _policy(KEEP_V, protect=PROD))
SBOM_OF_UNTAGGED_RUNNING_IMAGE = Scenario(
    (Blueprint("team-a/web", (Node("image", 5), Node("artifact", subject=0), Node("image", 3)),
               (("sbom-0", 1), ("v1.0.0", 2))),),
    Protections(clusters=(("prod", (ByDigest(At(0, 0), HOST, "team-a/web"),)),)), _policy(KEEP_V, protect=PROD))
REFERRERS_SCHEMA_OF_KEPT_IMAGE = Scenario(
    (Blueprint("team-a/web", (Node("image", 5), Node("artifact", subject=0), Node("referrers", children=(1,),
                                                                                   subject=0)),
               (("v1.0.0", 0),), (ReferrerTag(0, "", 2),)),),
    Protections(), _policy(KEEP_V))


# --- 1. nothing kept is deleted (and the rest of check_plan) ---------------------------------------------

@settings(BASE, max_examples=400 * SCALE, deadline=None)
@given(scenarios(readable=False))
@example(SIG_OF_SHARED_WITH_PRUNED)
@example(CHILD_OF_PRUNED_DEPLOYED)
@example(LAST_OVER_FEWER_TAGS)
@example(ORPHAN_SIGNATURE_SHARES_A_REFERRER)
@example(SIGNATURE_RUN_BY_NAME)
@example(SBOM_OF_UNTAGGED_RUNNING_IMAGE)
@example(REFERRERS_SCHEMA_OF_KEPT_IMAGE)
def test_no_kept_digest_is_ever_deleted(scenario: Scenario) -> None:
    """Digests a rule keeps, protected ones (in use by digest or by tag, the rollback window, deploy
    targets), children of kept indexes and referrers of kept digests, transitively, and the digest
    of every tag the plan keeps are never pruned; a prune names exactly its digest's tags; every
    tag gets one decision; what nothing keeps is pruned. An unreadable source blocks everything."""
    found, actions = plan(scenario)
    describe(scenario, actions)
    event("blocked" if any(a.kind == "blocked" for a in actions) else
          "prunes" if any(a.kind == "prune" for a in actions) else "keeps only")
    if any(a.depends_on for a in actions):
        event("has dependants")
    oracle.check_plan(scenario.policy, found, scenario.now, actions)


# --- 2. maxDeletions ------------------------------------------------------------------------------

@settings(BASE, max_examples=200 * SCALE, deadline=None)
@given(scenarios())
def test_deletions_stay_within_max_deletions_or_the_policy_is_blocked(scenario: Scenario) -> None:
    found, actions = plan(scenario)
    free = plan_retention(oracle.unblocked(scenario.policy), found, scenario.now)
    describe(scenario, actions)
    count = oracle.deletions(free)
    assert oracle.deletions(actions) <= scenario.policy.max_deletions
    if count <= scenario.policy.max_deletions:
        event("within maxDeletions")
        assert full(actions) == full(free)
        return
    event("over maxDeletions")
    head, *rest = actions
    assert head.kind == "blocked" and head.target == scenario.policy.registry
    assert head.reason.startswith(f"would delete {count} tags, over maxDeletions {scenario.policy.max_deletions}")
    assert full(rest) == full([a for a in free if not a.mutates])


# --- 3. determinism -------------------------------------------------------------------------------

@settings(BASE, max_examples=150 * SCALE, deadline=None)
@given(scenarios(readable=False), st.randoms(use_true_random=False))
def test_the_same_inputs_in_any_order_give_the_same_plan(scenario: Scenario, rng: random.Random) -> None:
    found, actions = plan(scenario)
    mixed = shuffled(found, rng)
    protect = scenario.policy.protect
    policy = replace(scenario.policy, protect=Protection(
        tuple(rng.sample(protect.in_use, len(protect.in_use))), protect.deployed_history,
        tuple(rng.sample(protect.helm_releases, len(protect.helm_releases)))))
    again = plan_retention(policy, mixed, scenario.now)
    assert full(again) == full(actions)
    assert full(make_plan("r", None, "t", again).actions) == full(make_plan("r", None, "t", actions).actions)


# --- 4. one decision per tag ----------------------------------------------------------------------

@settings(BASE, max_examples=200 * SCALE, deadline=None)
@given(scenarios())
def test_every_tag_gets_exactly_one_decision(scenario: Scenario) -> None:
    """keep, untag, or in exactly one prune's tags, where nothing blocks the policy; where maxDeletions
    or a registry that cannot delete blocks it, no tag is deleted and none is decided twice."""
    found, actions = plan(scenario)
    describe(scenario, actions)
    capped = any(a.kind == "blocked" for a in actions)
    for repo in found.repositories:
        here = [a for a in actions if oracle.split_target(a.target)[0] == oracle.where(repo)]
        decided = Counter(tag for a in here if a.kind in ("keep", "untag")
                          and (tag := oracle.split_target(a.target)[1]) is not None)  # not an untagged manifest
        decided.update(t for a in here if a.kind == "prune" for t in a.tags)
        assert all(n == 1 for n in decided.values()), decided
        assert set(decided) <= set(repo.tags)
        if not capped:
            assert set(decided) == set(repo.tags)


# --- 4b. why, as data ------------------------------------------------------------------------------

KEEP_CAUSES = {Cause.KEPT_BY_RULE, Cause.UNRANKABLE, Cause.GIT_REF, Cause.IN_USE, Cause.ROLLBACK_HISTORY,
               Cause.DEPLOY_TARGET, Cause.DEPLOYED_HISTORY, Cause.TAGGED_BY_KEPT, Cause.DEPENDANT_OF_KEPT,
               Cause.ORPHAN_SIGNATURE, Cause.CANNOT_UNTAG, Cause.IMAGE_KEPT}
BLOCK_CAUSES = {Cause.CLUSTER_UNREADABLE, Cause.AUDIT_UNREADABLE, Cause.GIT_UNREADABLE, Cause.OVER_MAX_DELETIONS,
                Cause.DELETION_DISABLED}


@settings(BASE, max_examples=200 * SCALE, deadline=None)
@given(scenarios(readable=False))
def test_every_action_has_a_cause_of_its_kind(scenario: Scenario) -> None:
    """A keep's cause is a keep's; a prune is its own (no rule matches, expired) or goes with the
    prune it depends on; an untag's digest stays but no rule keeps the tag; a block is a retention
    block's."""
    _, actions = plan(scenario)
    describe(scenario, actions)
    for action in actions:
        event(f"{action.kind}: {action.cause}")
        if action.kind == "keep":
            assert action.cause in KEEP_CAUSES, action
        elif action.kind == "prune":
            assert action.cause is (Cause.DEPENDANT_OF_PRUNED if action.depends_on else action.cause), action
            assert action.depends_on or action.cause in {Cause.NO_RULE_MATCHES, Cause.EXPIRED}, action
        elif action.kind == "untag":
            assert action.cause in {Cause.NO_RULE_MATCHES, Cause.EXPIRED}, action
        else:
            assert action.kind == "blocked" and action.cause in BLOCK_CAUSES, action


# --- 5. dependants ---------------------------------------------------------------------------------

@settings(BASE, max_examples=200 * SCALE, deadline=None)
@given(scenarios())
def test_a_dependant_comes_after_the_prune_it_goes_with_and_is_its_child_or_referrer(scenario: Scenario) -> None:
    found, actions = plan(scenario)
    ordered = make_plan("repo", None, "now", actions).actions
    assert Counter(full(ordered)) == Counter(full(actions))
    oracle.plan_order(ordered)
    prunes = {a.target: a for a in ordered if a.kind == "prune"}
    for action in prunes.values():
        if action.depends_on is None:
            continue
        event("dependant")
        parent = prunes[action.depends_on]
        repo = next(r for r in found.repositories if action.target.startswith(oracle.where(r) + "@"))
        assert action.digest_before in oracle.edges(repo)[parent.digest_before or ""]


# --- 6. idempotence -------------------------------------------------------------------------------

@settings(BASE, max_examples=300 * SCALE, deadline=None)
@given(scenarios())
@example(SIG_OF_SHARED_WITH_PRUNED)
@example(ORDER_FLIP)
def test_planning_again_after_applying_the_plan_deletes_nothing(scenario: Scenario) -> None:
    """Applying a plan in memory and planning again gives no prune or untag, and keeps every tag left.

    Why it holds: a tag a rule keeps can only rise in rank when other tags go (last N ranks each
    kind of tag among its own kind, and a tag's kind is its own: an order inferred from all the
    selected tags together would flip once some were pruned, see ORDER_FLIP) and does not age
    (same now); protections and gitRefs do not change; kept digests stay with their children and
    referrers, and a referrer tag whose subject stays, stays. Narrowed where it cannot hold: a plan
    blocked by maxDeletions deleted nothing, so the next run is blocked again; a repository whose
    registry cannot delete stays blocked."""
    found, actions = plan(scenario)
    if any(a.kind == "blocked" and a.target == scenario.policy.registry for a in actions):
        event("blocked: not applied")
        return
    after = oracle.applied(found, actions)
    again = plan_retention(scenario.policy, after, scenario.now)
    describe(scenario, again)
    assert not [a for a in again if a.mutates]
    for repo in after.repositories:
        here = [a for a in again if oracle.split_target(a.target)[0] == oracle.where(repo)]
        if repo.can_delete:
            assert {oracle.split_target(a.target)[1] for a in here if a.kind == "keep" and "@" not in a.target} \
                == set(repo.tags)
            assert not [a for a in here if a.kind == "blocked"]


# --- 7. against a real docker-registry ------------------------------------------------------------

def _audit_rows(path: Path) -> list[sqlite3.Row]:
    """The trail's actions, once its hash chain verifies and no intent is left without an outcome."""
    with AuditStore.open(str(path), read_only=True) as store:
        assert store.verify().ok and not store.pending_intents()
        store.conn.row_factory = sqlite3.Row
        return list(store.conn.execute("SELECT event_id, intent_id, kind, status, target, digest_before, tags "
                                       "FROM actions ORDER BY seq"))


@settings(BASE, max_examples=12 * SCALE, deadline=None)
@given(scenarios(real=True, repositories=1, max_nodes=7, max_tags=7, max_rules=1))
@example(SBOM_OF_UNTAGGED_RUNNING_IMAGE)  # found here first: docker-registry shows no untagged image
@example(REFERRERS_SCHEMA_OF_KEPT_IMAGE)
@example(SIG_OF_SHARED_WITH_PRUNED)
def test_a_real_registry_loses_exactly_what_the_plan_prunes(plain_registry: RunningRegistry,
                                                            scenario: Scenario) -> None:
    """Built for real, observed by the client, planned, applied by the executor: exactly the plan's
    prune digests are gone, every kept tag still resolves to its digest, each change has one intent
    and one outcome in the audit trail, and observing and planning again deletes nothing.

    docker-registry 2.8 has no referrers API: the client finds referrers by cosign tags only, so an
    untagged OCI 1.1 artifact is invisible to it; it is pushed all the same and must survive."""
    blueprint = scenario.blueprints[0]
    repository = f"prop-{uuid.uuid4().hex[:12]}/web"
    with tempfile.TemporaryDirectory() as tmp:
        layout = Layout(Path(tmp) / "layout")
        built = build(layout, blueprint, scenario.now)
        names = push_all(layout, blueprint, built, plain_registry.url, plain_registry.host, repository)
        client = open_registry(registry_policy("ci", plain_registry.url, username=None),
                               SecretResolver(environ={}, base_dir=Path(tmp)), cache_dir=Path(tmp) / "cache",
                               retry=FAST_RETRY)
        try:
            state = observe_repository(client, repository)
            assert {t: d.digest for t, d in state.tags.items()} == {t: built[n].digest for t, n in names.items()}

            def digest(at: At) -> str:
                return foreign_digest(at.node) if at.repository is None else built[at.node].digest

            found = inputs(scenario, (state,), host=plain_registry.host, digest=digest)
            actions = plan_retention(scenario.policy, found, scenario.now)
            describe(scenario, actions)
            oracle.check_plan(scenario.policy, found, scenario.now, actions)
            the_plan = make_plan("properties", None, "now", actions)
            known = sorted({b.digest for b in built})
            assert all(client.resolve(repository, d) is not None for d in known)

            audit = Path(tmp) / "audit.db"
            with AuditStore.open(str(audit)) as store:
                run = store.start_run("apply")
                result = apply_plan(the_plan, {"ci": client}, run)
                run.finish("succeeded")
            assert not result.failed and not result.skipped, (result.failed, result.skipped)
            pruned = {a.digest_before for a in the_plan.changes if a.kind == "prune"}
            event(f"{len(pruned)} pruned" if len(pruned) < 3 else "3+ pruned")
            gone = {d for d in known if client.resolve(repository, d) is None}
            assert gone == pruned
            for action in the_plan.actions:
                if action.kind == "keep":
                    tag = oracle.split_target(action.target)[1]
                    assert tag is not None
                    now_at = client.resolve(repository, tag)
                    assert now_at is not None and now_at.digest == action.digest_before, tag

            rows = _audit_rows(audit)
            intents = {r["event_id"]: r for r in rows if r["status"] == "intent"}
            outcomes = [r for r in rows if r["status"] != "intent"]
            assert sorted((r["kind"], r["target"], tuple(json.loads(r["tags"] or "[]"))) for r in intents.values()
                          ) == sorted((a.kind, a.target, a.tags) for a in the_plan.changes)
            assert sorted(r["intent_id"] for r in outcomes) == sorted(intents)
            assert all(r["status"] == "succeeded" for r in outcomes)

            again_state = observe_repository(client, repository)
            again_inputs = inputs(scenario, (again_state,), host=plain_registry.host, digest=digest)
            again = plan_retention(scenario.policy, again_inputs, scenario.now)
            oracle.check_plan(scenario.policy, again_inputs, scenario.now, again)
            if any(a.kind == "blocked" for a in actions):
                event("blocked: nothing deleted")
                assert not pruned
            else:
                assert not [a for a in again if a.mutates]
        finally:
            client.close()


# --- 8. regressions: cases these properties found --------------------------------------------------
# Each was a strict xfail while open; all five bugs were fixed in d02fca5 and are plain tests now.

def _single(repo: RepositoryState, policy: RetentionPolicy, **extra: object) -> tuple[RetentionInputs, list[Action]]:
    found = RetentionInputs(HOST, (repo,), **extra)  # type: ignore[arg-type]
    return found, plan_retention(policy, found, NOW)


def _digest(n: int) -> str:
    return f"sha256:{n:064x}"


def _sig(n: int) -> str:
    return f"sha256-{_digest(n)[7:]}.sig"


def _repo(tags: dict[str, int], *, hours: dict[int, int] | None = None,
          referrers: dict[int, tuple[int, ...]] | None = None, images: tuple[int, ...] = ()) -> RepositoryState:
    hours = hours or {}
    numbers = set(tags.values()) | set(images)
    return RepositoryState("ci", "team-a/web", MappingProxyType({t: Descriptor(OCI_MANIFEST, _digest(n), 1)
                                                                 for t, n in tags.items()}),
                           MappingProxyType({_digest(n): Image(_digest(n), OCI_MANIFEST, NOW - timedelta(
                               hours=hours[n]) if n in hours else None) for n in numbers}),
                           MappingProxyType({_digest(s): tuple(Descriptor(OCI_MANIFEST, _digest(r), 1) for r in rs)
                                             for s, rs in (referrers or {}).items()}))


def test_a_signature_shared_by_a_kept_and_a_pruned_image_stays() -> None:
    """Regression example: the kept image's cosign tag and the pruned one's point at one digest."""
    found, actions = plan(SIG_OF_SHARED_WITH_PRUNED)
    oracle.check_plan(SIG_OF_SHARED_WITH_PRUNED.policy, found, NOW, actions)
    assert [a.tags for a in actions if a.kind == "prune"] == [("old",)]


def test_found_a_plan_applied_no_longer_flips_an_inferred_order() -> None:
    # keep[0]: '.' last 1 and no order. Inferred from all the tags ('x' is no version: creation
    # time), it kept 1.0.0 (the newest) and pruned x; the second plan inferred semver from 1.0.0 and
    # 3.0.0 and pruned 1.0.0. Each kind ranking among its own, 1.0.0 goes now, and only once.
    policy = _policy(KeepRule(tags=compile_pattern("."), last=1), KeepRule(tags=compile_pattern("^3")))
    found, first = _single(_repo({"1.0.0": 1, "3.0.0": 2, "x": 3}, hours={1: 1, 2: 50, 3: 100}), policy)
    assert [a.tags for a in first if a.kind == "prune"] == [("1.0.0",)]
    again = plan_retention(policy, oracle.applied(found, first), NOW)
    assert not [a for a in again if a.mutates], [a.target for a in again if a.mutates]


def test_found_a_kept_orphan_signatures_own_referrer_stays() -> None:
    # 'old' (2) is pruned; sha256-<absent>.sig -> 4 is kept (its subject is elsewhere); 5 is tagged
    # as the signature of both 4 and 2: it went with 2 although 4 stays.
    absent = "sha256-" + "ab" * 32 + ".sig"
    _, actions = _single(_repo({"old": 2, absent: 4, _sig(4): 5, _sig(2): 5}), _policy(KEEP_V))
    kept = {a.digest_before for a in actions if a.kind == "keep"}
    assert _digest(4) in kept
    assert _digest(5) not in {a.digest_before for a in actions if a.kind == "prune"}


def test_found_a_referrer_tag_used_by_name_is_protected() -> None:
    ref = ImageReference(HOST, "team-a/web", tag=_sig(2))
    cluster = ClusterState("prod", {ref: (Usage("prod", "ns", "Pod", "p", "c", "running"),)})
    _, actions = _single(_repo({"old": 2, _sig(2): 5}), _policy(KEEP_V, protect=Protection(in_use=("prod",))),
                         clusters={"prod": cluster})
    assert _digest(5) not in {a.digest_before for a in actions if a.kind == "prune"}




def test_found_the_referrer_of_an_untagged_running_image_stays() -> None:
    # digest 2 runs in prod but has no tag here (so it is not observed); 'sbom-2' is its OCI 1.1
    # artifact (subject 2): it was pruned. Found on the real registry by
    # test_a_real_registry_loses_exactly_what_the_plan_prunes (docker-registry shows no untagged image).
    repo = _repo({"v1": 1, "sbom-2": 3})
    images = dict(repo.images)
    images[_digest(3)] = Image(_digest(3), OCI_MANIFEST, None, subject=_digest(2), artifact_type=SPDX)
    repo = replace(repo, images=MappingProxyType(images))
    cluster = ClusterState("prod", {ImageReference(HOST, "team-a/web", digest=_digest(2)): (
        Usage("prod", "ns", "Pod", "p", "c", "running"),)})
    _, actions = _single(repo, _policy(KEEP_V, protect=Protection(in_use=("prod",))), clusters={"prod": cluster})
    assert _digest(3) not in {a.digest_before for a in actions if a.kind == "prune"}


def test_found_a_protected_referrer_without_an_observed_manifest_stays() -> None:
    _, actions = _single(_repo({"old": 2}, referrers={2: (9,)}),
                         _policy(KEEP_V, protect=Protection(deployed_history=1)), deployed={"prod-web": [_digest(9)]})
    assert _digest(9) not in {a.digest_before for a in actions if a.kind == "prune"}




def _schema_repo() -> RepositoryState:
    # v1 (1) is kept; sha256-<hex of 1> tags index 7 listing artifact 8 (subject 1), as the client
    # observes it on a registry without the referrers API. No rule kept that tag, so index 7 was
    # pruned, and with it how oras or notation find 1's referrers on such a registry.
    artifact = Descriptor(OCI_MANIFEST, _digest(8), 1, artifact_type=SPDX)
    return RepositoryState("ci", "team-a/web", MappingProxyType({
        "v1": Descriptor(OCI_MANIFEST, _digest(1), 1),
        f"sha256-{_digest(1)[7:]}": Descriptor(OCI_INDEX, _digest(7), 1)}),
        MappingProxyType({_digest(1): Image(_digest(1), OCI_MANIFEST, None),
                          _digest(7): Image(_digest(7), OCI_INDEX, None, children=(artifact,)),
                          _digest(8): Image(_digest(8), OCI_MANIFEST, None, subject=_digest(1))}),
        MappingProxyType({_digest(1): (artifact,)}))


def test_found_the_referrers_tag_schema_index_of_a_kept_image_stays() -> None:
    _, actions = _single(_schema_repo(), _policy(KEEP_V))
    assert not [a.target for a in actions if a.kind == "prune"]


def test_found_the_referrers_tag_schema_index_stays_on_a_real_registry(plain_registry: RunningRegistry
                                                                               ) -> None:
    repository = f"prop-{uuid.uuid4().hex[:12]}/schema"
    with tempfile.TemporaryDirectory() as tmp:
        layout = Layout(Path(tmp) / "layout")
        blueprint = Blueprint("team-a/web", (Node("image", 5), Node("artifact", subject=0),
                                             Node("referrers", children=(1,), subject=0)),
                              (("v1.0.0", 0),), (ReferrerTag(0, "", 2),))
        built = build(layout, blueprint, NOW)
        push_all(layout, blueprint, built, plain_registry.url, plain_registry.host, repository)
        client = open_registry(registry_policy("ci", plain_registry.url, username=None),
                               SecretResolver(environ={}, base_dir=Path(tmp)), cache_dir=Path(tmp) / "cache",
                               retry=FAST_RETRY)
        try:
            state = observe_repository(client, repository)
            assert state.referrers[built[0].digest][0].digest == built[1].digest  # found through the schema tag
            actions = plan_retention(_policy(KEEP_V), RetentionInputs(plain_registry.host, (state,)), NOW)
            assert not [a.target for a in actions if a.kind == "prune"]
        finally:
            client.close()
