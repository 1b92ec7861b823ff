"""Every action says why as data: each keep, prune, untag, promotion, deploy and block path of the
planner yields its Cause (tables), and the kinds are typed values that still compare as strings."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from reconcile.observe.state import ClusterState, DeployHealth, ImageReference, RepositoryState, Usage
from reconcile.plan import build_plan
from reconcile.plan.actions import MUTATING, Action, ActionKind, Block, Cause
from reconcile.plan.deploy import DeployInputs, plan_deploy
from reconcile.plan.promotion import PromotionInputs, plan_promotion
from reconcile.policy.model import Gates, KeepRule, Protection, RetentionPolicy
from tests.plan import test_deploy, test_promotion
from tests.plan.test_retention import GIT, HOST, LIVE, PROTECT_PROD, cluster, digest, policy, repo, rule, run

C = Cause


def sig(n: int) -> str:
    """The cosign signature tag of image ``n``."""
    return f"sha256-{digest(n)[7:]}.sig"


def rollback_only(*references: ImageReference) -> ClusterState:
    """A cluster that keeps these images only for rollback (an old ReplicaSet scaled to 0)."""
    return ClusterState("prod-eu", {ref: (Usage("prod-eu", "web", "ReplicaSet", "web-1", "web", "rollback"),)
                                    for ref in references})


def causes(actions: list[Action]) -> set[tuple[str, str, Cause | None]]:
    """(kind, target without ci/team-a/web, cause) of each action; a block of the whole policy names
    its registry (``ci``)."""
    return {(a.kind.value, a.target.split("team-a/web", 1)[-1], a.cause) for a in actions}


RETENTION = [
    pytest.param(policy(rule("^v")), repo({"v1": 1, "tmp": 2}), {},
                 {("keep", ":v1", C.KEPT_BY_RULE), ("prune", f"@{digest(2)}", C.NO_RULE_MATCHES)},
                 id="selected by a rule; selected by none"),
    pytest.param(policy(rule("^v", last=1)), repo({"v1.0.0": 1, "v2.0.0": 2}), {},
                 {("keep", ":v2.0.0", C.KEPT_BY_RULE), ("prune", f"@{digest(1)}", C.EXPIRED)},
                 id="beyond last N: expired"),
    pytest.param(policy(rule("^pr-", newer_than=timedelta(days=7))), repo({"pr-1": 1, "pr-2": 2},
                                                                         age_days={1: 3, 2: 30}), {},
                 {("keep", ":pr-1", C.KEPT_BY_RULE), ("prune", f"@{digest(2)}", C.EXPIRED)},
                 id="older than newerThan: expired"),
    pytest.param(policy(rule(r"^b-(.+)$", last=1, order="numeric")), repo({"b-x": 1, "b-2": 2, "b-3": 3}), {},
                 {("keep", ":b-x", C.UNRANKABLE), ("keep", ":b-3", C.KEPT_BY_RULE),
                  ("prune", f"@{digest(2)}", C.EXPIRED)},
                 id="the order cannot rank it: kept"),
    pytest.param(policy(KeepRule(git_refs=GIT)), repo({"sha-abcdef0": 1, "sha-1234567": 2, "nightly": 3}),
                 {"git_commits": {0: LIVE}},
                 {("keep", ":sha-abcdef0", C.GIT_REF), ("prune", f"@{digest(2)}", C.EXPIRED),
                  ("prune", f"@{digest(3)}", C.NO_RULE_MATCHES)},
                 id="a live git ref's commit; a dead commit expired; no commit named"),
    pytest.param(policy(rule("^v"), protect=PROTECT_PROD), repo({"v1": 1, "old": 2}),
                 {"clusters": {"prod-eu": cluster(ImageReference("elsewhere", "x", digest=digest(2)))}},
                 {("keep", ":v1", C.KEPT_BY_RULE), ("keep", ":old", C.IN_USE)}, id="running by digest"),
    pytest.param(policy(rule("^v"), protect=PROTECT_PROD), repo({"old": 1}),
                 {"clusters": {"prod-eu": cluster(ImageReference(HOST, "team-a/web", tag="old"))}},
                 {("keep", ":old", C.IN_USE)}, id="running by tag"),
    pytest.param(policy(rule("^v"), protect=PROTECT_PROD), repo({"nightly": 1}, children={1: [2, 3]}),
                 {"clusters": {"prod-eu": cluster(ImageReference("elsewhere", "x", digest=digest(2)))}},
                 {("keep", ":nightly", C.IN_USE)}, id="one of its platforms runs"),
    pytest.param(policy(rule("^v"), protect=PROTECT_PROD), repo({"old": 1, "older": 2}),
                 {"clusters": {"prod-eu": rollback_only(ImageReference("elsewhere", "x", digest=digest(1)))}},
                 {("keep", ":old", C.ROLLBACK_HISTORY), ("prune", f"@{digest(2)}", C.NO_RULE_MATCHES)},
                 id="kept for rollback only"),
    pytest.param(policy(rule("^v")), repo({"a": 1, "b": 2}),
                 {"deploy_targets": {"prod-web": DeployHealth(digest(2), True, "")}},
                 {("keep", ":b", C.DEPLOY_TARGET), ("prune", f"@{digest(1)}", C.NO_RULE_MATCHES)},
                 id="a deploy target runs it"),
    pytest.param(policy(rule("^v"), protect=Protection(deployed_history=1)), repo({"a": 1, "b": 2}),
                 {"deployed": {"prod-web": [digest(2), digest(1)]}},
                 {("keep", ":b", C.DEPLOYED_HISTORY), ("prune", f"@{digest(1)}", C.NO_RULE_MATCHES)},
                 id="recently deployed"),
    pytest.param(policy(rule("^v")), repo({"v1": 1, "build-7": 1}, can_delete_tags=True), {},
                 {("keep", ":v1", C.KEPT_BY_RULE), ("keep", ":build-7", C.IMAGE_KEPT)},
                 id="a kept image keeps every tag"),
    pytest.param(policy(rule("^v"), untag_others=True), repo({"v1": 1, "build-7": 1}, can_delete_tags=True), {},
                 {("keep", ":v1", C.KEPT_BY_RULE), ("untag", ":build-7", C.NO_RULE_MATCHES)},
                 id="untagged: no rule selects the tag, its digest stays"),
    pytest.param(policy(rule("^v"), rule("^build-", last=1), untag_others=True),
                 repo({"v1": 1, "build-7": 1, "build-8": 2},
                                                                  age_days={1: 9, 2: 1}, can_delete_tags=True), {},
                 {("keep", ":v1", C.KEPT_BY_RULE), ("keep", ":build-8", C.KEPT_BY_RULE),
                  ("untag", ":build-7", C.EXPIRED)},
                 id="untagged: past what its rule keeps"),
    pytest.param(policy(rule("^v"), untag_others=True), repo({"v1": 1, "build-7": 1}), {},
                 {("keep", ":v1", C.KEPT_BY_RULE), ("keep", ":build-7", C.CANNOT_UNTAG)},
                 id="the registry cannot remove a tag alone"),
    pytest.param(policy(rule("^v")), repo({"v1": 1, sig(1): 11}), {},
                 {("keep", ":v1", C.KEPT_BY_RULE), ("keep", f":{sig(1)}", C.DEPENDANT_OF_KEPT)},
                 id="the signature of a kept image"),
    pytest.param(policy(rule("^v")), repo({"v1": 1, sig(5): 1}), {},
                 {("keep", ":v1", C.KEPT_BY_RULE), ("keep", f":{sig(5)}", C.TAGGED_BY_KEPT)},
                 id="a referrer tag on a kept tag's digest"),
    pytest.param(policy(rule("^v")), repo({"v1": 1, sig(7): 9}), {},
                 {("keep", ":v1", C.KEPT_BY_RULE), ("keep", f":{sig(7)}", C.ORPHAN_SIGNATURE)},
                 id="a signature of an image not in the repository"),
    pytest.param(policy(rule("^v")), repo({"v1": 1, "old": 2, sig(2): 12}), {},
                 {("keep", ":v1", C.KEPT_BY_RULE), ("prune", f"@{digest(2)}", C.NO_RULE_MATCHES),
                  ("prune", f"@{digest(12)}", C.DEPENDANT_OF_PRUNED)},
                 id="the signature of a pruned image goes with it"),
    pytest.param(policy(rule("^v")), repo({"v1": 1, "old": 2}, children={2: [3]}), {},
                 {("keep", ":v1", C.KEPT_BY_RULE), ("prune", f"@{digest(2)}", C.NO_RULE_MATCHES),
                  ("prune", f"@{digest(3)}", C.DEPENDANT_OF_PRUNED)},
                 id="the platform manifest of a pruned index goes with it"),
    pytest.param(policy(rule("^v"), protect=PROTECT_PROD), repo({"old": 1}), {"clusters": {"prod-eu": "403"}},
                 {("blocked", "ci", C.CLUSTER_UNREADABLE)}, id="a protecting cluster cannot be read"),
    pytest.param(policy(rule("^v")), repo({"old": 1}), {"deploy_targets": {"prod-web": "git fetch failed"}},
                 {("blocked", "ci", C.CLUSTER_UNREADABLE)}, id="what a deploy runs cannot be read"),
    pytest.param(policy(rule("^v"), protect=Protection(deployed_history=2)), repo({"old": 1}), {"deployed": None},
                 {("blocked", "ci", C.AUDIT_UNREADABLE)}, id="the deploy history cannot be read"),
    pytest.param(policy(KeepRule(git_refs=GIT)), repo({"sha-1234567": 1}), {"git_commits": {0: "unreachable"}},
                 {("blocked", "ci", C.GIT_UNREADABLE)}, id="the source repository cannot be read"),
    pytest.param(policy(KeepRule(git_refs=GIT)), repo({"sha-1234567": 1}), {},
                 {("blocked", "ci", C.GIT_UNREADABLE)}, id="the source repository was not read"),
    pytest.param(policy(rule("^v"), max_deletions=1), repo({"v1": 1, "a": 2, "b": 3}), {},
                 {("blocked", "ci", C.OVER_MAX_DELETIONS), ("keep", ":v1", C.KEPT_BY_RULE)},
                 id="over maxDeletions"),
    pytest.param(policy(rule("^v")), dataclasses.replace(repo({"v1": 1, "a": 2}), can_delete=False), {},
                 {("blocked", "", C.DELETION_DISABLED), ("keep", ":v1", C.KEPT_BY_RULE)},
                 id="the registry declares deletion: none"),
]


@pytest.mark.parametrize(("retention", "repository", "inputs", "expected"), RETENTION)
def test_each_retention_path_yields_its_cause(retention: RetentionPolicy, repository: RepositoryState,
                                             inputs: dict, expected: set) -> None:
    assert causes(run(retention, repository, **inputs)) == expected


def test_an_unreadable_registry_blocks_its_policy_with_its_cause() -> None:
    from reconcile.observe.state import Observation, RetentionObservation
    from reconcile.policy.model import PolicySet, Registry
    from tests.plan.test_retention import NOW

    registry = Registry("ci", "https://ci.example.com", None, ("ci.example.com",))
    policies = PolicySet("repo", None, registries={"ci": registry},
                         retention_policies={"ci-cleanup": policy(rule("^v"))})
    observation = Observation("t", {}, {"ci-cleanup": RetentionObservation("registry ci: 503")})
    (action,) = build_plan(policies, observation, {}, now=NOW).actions
    assert (action.kind, action.block, action.cause) == ("blocked", Block.UNREADABLE, C.REGISTRY_UNREADABLE)


# --- promotion --------------------------------------------------------------------------------

R, P = test_promotion.repo, test_promotion.prod_action


@pytest.mark.parametrize(("action", "kind", "cause"), [
    pytest.param(lambda: P(), "promote", C.GATES_OPEN, id="no gates"),
    pytest.param(lambda: P(prod=R({"prod": 2, "2": 2})), "keep", C.UP_TO_DATE, id="already there"),
    pytest.param(lambda: P(prod=R({"prod": 1, "2": 9})), "blocked", C.TAG_CONFLICT, id="immutable tag taken"),
    pytest.param(lambda: P(staging=R({"staging": 5})), "blocked", C.VERSION_UNKNOWN, id="version gone"),
    pytest.param(lambda: P(Gates(soak=timedelta(hours=24))), "blocked", C.GATE_CLOSED, id="soak"),
    pytest.param(lambda: P(Gates(healthy_in=("staging-web",)), health={"staging-web": "unreachable"}),
                 "blocked", C.GATE_UNREADABLE, id="gate input unreadable"),
    pytest.param(lambda: test_promotion.plan(staging="503")[0], "blocked", C.REGISTRY_UNREADABLE,
                 id="stage unreadable"),
    pytest.param(lambda: test_promotion.plan(staging="503")[1], "blocked", C.STAGE_EMPTY, id="nothing to promote"),
    pytest.param(lambda: plan_promotion(test_promotion.pipeline(), PromotionInputs({"build": R({"latest": 1})}),
                                        test_promotion.NOW)[0], "blocked", C.NO_CANDIDATE, id="no candidate"),
    pytest.param(lambda: plan_promotion(test_promotion.pipeline(), PromotionInputs({"build": "503"}),
                                        test_promotion.NOW)[0], "blocked", C.REGISTRY_UNREADABLE,
                 id="source unreadable"),
])
def test_each_promotion_path_yields_its_cause(action: object, kind: str, cause: Cause) -> None:
    planned = action()  # type: ignore[operator]
    assert (planned.kind, planned.cause) == (kind, cause)


# --- deploy: every case of the deploy table ---------------------------------------------------

DEPLOY_CAUSES = {"deploy": C.OUT_OF_DATE, "keep": C.UP_TO_DATE}
BLOCKED_CAUSES = {
    "the stage holds nothing yet": C.STAGE_EMPTY,
    "only a version tag, no moving tag: nothing held": C.STAGE_EMPTY,
    "the stage cannot be read": C.REGISTRY_UNREADABLE,
    "the cluster cannot be read: not deployed blindly": C.CLUSTER_UNREADABLE,
    "a digest held after an automatic rollback is not deployed again": C.HELD,
    "a digest held by a manual rollback is not rolled forward": C.HELD,
    "manifests: a held digest is not written again": C.HELD,
    "holds unknown (the trail cannot be read): nothing is deployed": C.AUDIT_UNREADABLE,
}


@pytest.mark.parametrize("case", [pytest.param(case, id=case[0]) for case in test_deploy.CASES])
def test_each_deploy_path_yields_its_cause(case: tuple) -> None:
    name, deploy, stage, stage_repo, current, hold, kind, *_ = case
    action = plan_deploy(deploy, stage, DeployInputs(test_deploy.HOST, stage_repo, current, hold))
    assert action.cause == (BLOCKED_CAUSES[name] if kind == "blocked" else DEPLOY_CAUSES[kind])


# --- the types --------------------------------------------------------------------------------

def test_kinds_are_typed_and_still_compare_as_their_wire_strings() -> None:
    action = Action("RetentionPolicy/r", "blocked", "ci", block="over-limit", cause="over-max-deletions")  # type: ignore[arg-type]
    assert action.kind is ActionKind.BLOCKED and action.kind == "blocked"  # what the CLI compares
    assert action.block is Block.OVER_LIMIT and action.cause is Cause.OVER_MAX_DELETIONS
    assert f"{action.kind}" == "blocked" and action.is_error and not action.mutates
    assert set(ActionKind) - MUTATING == {ActionKind.KEEP, ActionKind.BLOCKED}
    assert "prune" in MUTATING and Action("p", "prune", "ci/x@sha256:1").mutation_kind is ActionKind.PRUNE  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a mutation"):
        _ = action.mutation_kind
    with pytest.raises(ValueError):
        Action("p", "delete", "ci/x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Action("p", "keep", "ci/x", cause="because")  # type: ignore[arg-type]


def test_cause_values_are_distinct_readable_words() -> None:
    values = [c.value for c in Cause]
    assert len(values) == len(set(values))
    assert all(v == v.lower() and " " not in v and "_" not in v for v in values)
