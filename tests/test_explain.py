"""Which plan actions `reconcile explain IMAGE_REF` shows: ``explains`` on retention, promotion and
deploy actions, for digests, tags, ``[registry/]repository:tag`` and policy references."""

from __future__ import annotations

import pytest

from reconcile.cli.explain import deploy_images, explains
from reconcile.plan.actions import Action
from reconcile.policy.model import DeployPolicy, PolicySet, PromotionPolicy, Stage, Workload

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
