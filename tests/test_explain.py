"""Which plan actions `reconcile explain IMAGE_REF` shows: ``explains`` on retention, promotion and
deploy actions, for digests, tags, ``[registry/]repository:tag`` and policy references; and
``removed``: what it says from the audit trail about a tag or digest that is gone."""

from __future__ import annotations

from typing import Any

import pytest

from reconcile.plan.actions import Action
from reconcile.policy.model import DeployPolicy, PolicySet, PromotionPolicy, Stage, Workload
from reconcile.reconciler.explain import deploy_images, explains, removed

D1, D2, D3 = (f"sha256:{c * 64}" for c in "123")

RET_KEEP = Action("RetentionPolicy/ci-cleanup", "keep", "ci/team/web:v1", D1, D1, "keep[0]: matches '^v\\d+$'")
RET_UNTAG = Action("RetentionPolicy/ci-cleanup", "untag", "ci/team/web:build-9", D2, None, "no keep rule")
RET_PRUNE = Action("RetentionPolicy/ci-cleanup", "prune", f"ci/team/web@{D2}", D2, None, "no keep rule",
                   ("build-1", "build-2"))
RET_BLOCKED = Action("RetentionPolicy/ci-cleanup", "blocked", "ci", reason="registry ci could not be read")
PROMOTE = Action("PromotionPolicy/web", "promote", f"secure/team/web-staging@{D1}", D3, D1,
                 "126 from build to staging: no gates", ("staging", "126"))
PROMO_KEEP = Action("PromotionPolicy/web", "keep", f"ci/team/web-prod@{D3}", D3, D3,
                    "prod holds 125 (sha256:33333333333) under prod, 125", ("prod", "125"))
PROMO_WAITS = Action("PromotionPolicy/web", "blocked", "ci/team/web-prod", reason="stage staging holds no digest")
DEPLOY = Action("DeployPolicy/prod-web", "deploy", "prod/shop/Deployment/web,Deployment/worker", D3, D1,
                "126 (sha256:11111111111) from web/staging", ("126",))
STAGING = "secure/team/web-staging"  # the image DEPLOY's stage holds
WRITE_BACK = Action("DeployPolicy/git-web", "blocked",
                    "git:git@example.com:org/manifests.git#main:envs/prod Deployment/web", D1, D2,
                    "held: sha256:22222222222 was rolled back by hand", ("build-7",))
BUILD = "ci/team/web"  # the image WRITE_BACK's stage holds

CASES = [
    # retention: a tag's own keep or untag, a digest's prune with the tags it removes
    (RET_KEEP, "v1", None, True),
    (RET_KEEP, "team/web:v1", None, True),
    (RET_KEEP, "ci/team/web:v1", None, True),
    (RET_KEEP, "web:v1", None, True),  # the repository's last path component
    (RET_KEEP, "eb:v1", None, False),  # ... not any suffix of it
    (RET_KEEP, "other/web:v1", None, False),
    (RET_KEEP, "v2", None, False),
    (RET_KEEP, D1, None, True),
    (RET_UNTAG, "build-9", None, True),
    (RET_UNTAG, D2, None, True),
    (RET_PRUNE, "build-2", None, True),
    (RET_PRUNE, "team/web:build-1", None, True),
    (RET_PRUNE, D2, None, True),
    (RET_PRUNE, f"ci/team/web@{D2}", None, True),
    (RET_PRUNE, D1, None, False),
    (RET_BLOCKED, "ci", None, False),  # a registry is no tag
    # promotion: the stage tags it sets or holds, in the stage's repository; its digests
    (PROMOTE, "126", None, True),
    (PROMOTE, "staging", None, True),
    (PROMOTE, "team/web-staging:126", None, True),
    (PROMOTE, "secure/team/web-staging:126", None, True),
    (PROMOTE, "ci/team/web-staging:126", None, False),  # another registry
    (PROMOTE, "team/web:126", None, False),  # the build stage's repository
    (PROMOTE, "125", None, False),
    (PROMOTE, D1, None, True),  # promoted
    (PROMOTE, D3, None, True),  # replaced
    (PROMO_KEEP, "prod", None, True),
    (PROMO_KEEP, "web-prod:125", None, True),
    (PROMO_KEEP, "126", None, False),
    (PROMO_WAITS, "prod", None, False),
    (PROMO_WAITS, "PromotionPolicy/web", None, True),
    # deploy to a cluster: the desired digest's version tag, in the stage's repository; its digests
    (DEPLOY, "126", STAGING, True),
    (DEPLOY, "126", None, True),  # a bare tag needs no repository
    (DEPLOY, "team/web-staging:126", STAGING, True),
    (DEPLOY, "secure/team/web-staging:126", STAGING, True),
    (DEPLOY, "team/web-staging:126", None, False),
    (DEPLOY, "team/web:126", STAGING, False),
    (DEPLOY, "125", STAGING, False),
    (DEPLOY, "prod", STAGING, False),  # in the target, but no tag
    (DEPLOY, "shop/Deployment/web:126", STAGING, False),
    (DEPLOY, D1, STAGING, True),  # desired
    (DEPLOY, D3, STAGING, True),  # runs now
    (DEPLOY, D2, STAGING, False),
    # deploy by manifests write-back: the target holds ':' and '@' of its own
    (WRITE_BACK, "build-7", BUILD, True),
    (WRITE_BACK, "team/web:build-7", BUILD, True),
    (WRITE_BACK, "ci/team/web:build-7", BUILD, True),
    (WRITE_BACK, "manifests.git#main:build-7", BUILD, False),
    (WRITE_BACK, "git:git", BUILD, False),
    (WRITE_BACK, D2, BUILD, True),
    # policy references: every action of that policy, and only of it
    (DEPLOY, "DeployPolicy/prod-web", STAGING, True),
    (DEPLOY, "DeployPolicy/prod", STAGING, False),
    (DEPLOY, "PromotionPolicy/prod-web", STAGING, False),
    (WRITE_BACK, "DeployPolicy/prod-web", BUILD, False),
    (PROMOTE, "PromotionPolicy/web", None, True),
    (PROMOTE, "DeployPolicy/web", None, False),
    (RET_PRUNE, "RetentionPolicy/ci-cleanup", None, True),
    (RET_BLOCKED, "RetentionPolicy/ci-cleanup", None, True),
    (RET_KEEP, "RetentionPolicy/other", None, False),
]


@pytest.mark.parametrize(("action", "reference", "image", "expected"), CASES,
                         ids=[f"{a.policy}-{a.kind}-{r[:30]}-{i or ''}" for a, r, i, _ in CASES])
def test_explains(action: Action, reference: str, image: str | None, expected: bool) -> None:
    assert explains(action, reference, image) is expected


def test_deploy_images_names_each_deploys_stage_repository() -> None:
    stages = (Stage("build", "ci", "team/web"), Stage("staging", "secure", "team/web-staging", source="build"))
    workloads = (Workload("Deployment", "web", "web"),)
    policies = PolicySet("policies", None, promotion_policies={"web": PromotionPolicy("web", stages)},
                         deploy_policies={"prod-web": DeployPolicy("prod-web", "web", "staging", workloads, "prod"),
                                          "ci-web": DeployPolicy("ci-web", "web", "build", workloads, "ci"),
                                          "lost": DeployPolicy("lost", "gone", "build", workloads, "ci")})
    assert deploy_images(policies) == {"DeployPolicy/prod-web": STAGING, "DeployPolicy/ci-web": BUILD}


# --- what the audit trail says about a tag or digest that is gone -------------------------------

RUN = {"run_id": "run-20261121T080000-0a1b2c3d", "run_mode": "apply", "run_actor": "cronjob",
       "run_commit": "1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d", "timestamp": "2026-11-21T08:00:03.123456Z",
       "status": "succeeded", "dry_run": 0}
PRUNED = {**RUN, "kind": "prune", "target": f"ci/team/web@{D2}", "digest_before": D2, "digest_after": None,
          "policy": "RetentionPolicy/ci-cleanup", "reason": "no keep rule or protection applies to build-9, build-10",
          "repository": "ci/team/web", "tags": '["build-10","build-9"]'}
UNTAGGED = {**RUN, "kind": "untag", "target": "ci/team/web:build-3", "digest_before": D1, "digest_after": None,
            "policy": "RetentionPolicy/ci-cleanup", "reason": "no rule keeps it; its digest stays for v1",
            "repository": "ci/team/web", "tags": '["build-3"]'}
OLD_PRUNE = {k: v for k, v in PRUNED.items() if k not in ("repository", "tags")}  # before schema version 2
WHEN = ("at 2026-11-21T08:00:03Z in run run-20261121T080000-0a1b2c3d (apply by cronjob at policy commit "
        "1a2b3c4d5e6f)")
WHY = "RetentionPolicy/ci-cleanup: no keep rule or protection applies to build-9, build-10"
TAG_GONE = f"ci/team/web:build-10: pruned {WHEN} — {WHY}; it pointed at {D2}"
DIGEST_GONE = f"ci/team/web@{D2} (tags: build-10, build-9): pruned {WHEN} — {WHY}"
UNTAG_GONE = f"ci/team/web:build-3: untagged {WHEN} — RetentionPolicy/ci-cleanup: no rule keeps it; its digest " \
             f"stays for v1; it pointed at {D1}"

HISTORY_CASES = [
    # (id, history, reference, lines)
    ("tag", [PRUNED], "build-10", [TAG_GONE]),
    ("repository-tag", [PRUNED], "team/web:build-10", [TAG_GONE]),
    ("registry-repository-tag", [PRUNED], "ci/team/web:build-10", [TAG_GONE]),
    ("last-path-component", [PRUNED], "web:build-10", [TAG_GONE]),
    ("other-tag-of-the-digest", [PRUNED], "build-9", [TAG_GONE.replace("build-10:", "build-9:")]),
    ("not-a-prefix-of-a-tag", [PRUNED], "build-1", []),
    ("other-repository", [PRUNED], "team/api:build-10", []),
    ("not-any-suffix", [PRUNED], "eb:build-10", []),
    ("other-registry", [PRUNED], "prod/team/web:build-10", []),
    ("digest", [PRUNED], D2, [DIGEST_GONE]),
    ("repository-at-digest", [PRUNED], f"team/web@{D2}", [DIGEST_GONE]),
    ("other-digest", [PRUNED], D3, []),
    ("untag-by-tag", [UNTAGGED], "team/web:build-3", [UNTAG_GONE]),
    ("untag-by-digest", [UNTAGGED], D1, [f"ci/team/web:build-3: untagged {WHEN} — RetentionPolicy/ci-cleanup: "
                                         "no rule keeps it; its digest stays for v1"]),
    ("both-in-chain-order", [UNTAGGED, PRUNED], "build-3", [UNTAG_GONE]),
    ("pruned-twice", [PRUNED, {**PRUNED, "run_id": "run-2"}], "build-10",
     [TAG_GONE, TAG_GONE.replace("run-20261121T080000-0a1b2c3d", "run-2")]),
    ("a-row-from-before-tags-were-recorded", [OLD_PRUNE], "build-10", []),
    ("...-is-found-by-its-digest", [OLD_PRUNE], D2, [f"ci/team/web@{D2}: pruned {WHEN} — {WHY}"]),
    ("the-intent-is-not-the-deletion", [{**PRUNED, "status": "intent"}], "build-10", []),
    ("a-failed-prune-deleted-nothing", [{**PRUNED, "status": "failed"}], "build-10", []),
    ("skipped-already-gone", [{**PRUNED, "status": "skipped"}], "build-10", []),
    ("a-dry-run-deleted-nothing", [{**PRUNED, "dry_run": 1}], "build-10", []),
    ("a-promotion-is-no-removal", [{**PRUNED, "kind": "promote"}], "build-10", []),
    ("a-policy-reference", [PRUNED], "RetentionPolicy/ci-cleanup", []),
    ("no-commit-no-actor", [{**PRUNED, "run_commit": None, "run_actor": None}], "build-10",
     [TAG_GONE.replace(" by cronjob at policy commit 1a2b3c4d5e6f", "")]),
    ("no-run-start", [{**PRUNED, "run_commit": None, "run_actor": None, "run_mode": None}], "build-10",
     [TAG_GONE.replace(" (apply by cronjob at policy commit 1a2b3c4d5e6f)", "")]),
]


@pytest.mark.parametrize(("history", "reference", "expected"), [case[1:] for case in HISTORY_CASES],
                         ids=[case[0] for case in HISTORY_CASES])
def test_removed_says_when_and_why_a_tag_or_digest_went(history: list[dict[str, Any]], reference: str,
                                                        expected: list[str]) -> None:
    assert removed(history, reference) == expected
