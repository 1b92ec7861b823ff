"""Deploy as tables: the desired digest (what the stage holds), what runs now, holds, and the
image reference a deploy writes."""

from __future__ import annotations

import re

import pytest

from reconcile.observe.state import OCI_MANIFEST, DeployHealth, Descriptor, RepositoryState
from reconcile.plan.deploy import DeployInputs, Hold, image_ref, plan_deploy, stage_digest, version_tag
from reconcile.policy.model import DeployPolicy, ManifestsTarget, Stage, Track, Workload

HOST = "registry.example.com:5000"
WEB = (Workload("Deployment", "web", "web"),)
CLUSTER = DeployPolicy("prod-web", "web", "prod", WEB, cluster="prod-eu", namespace="web")
MANIFESTS = DeployPolicy("prod-web", "web", "prod", WEB, manifests=ManifestsTarget("/git/envs", "prod"))
PROD = Stage("prod", "prod", "web", source="staging", tags=("prod", "{version}"))
BUILD = Stage("build", "ci", "team/web", track=Track(re.compile(r"^build-(?P<version>\d+)$"), "numeric"))


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def repo(tags: dict[str, int]) -> RepositoryState:
    return RepositoryState("prod", "web", {t: Descriptor(OCI_MANIFEST, digest(n), 1) for t, n in tags.items()}, {})


def runs(n: int | None, healthy: bool = True, detail: str = "") -> DeployHealth:
    return DeployHealth(digest(n) if n is not None else None, healthy, detail)


HELD_AUTO = Hold(digest(2), "was rolled back automatically after a failed rollout at 2026-11-21T10:00:00Z")
HELD_HAND = Hold(digest(2), "was rolled back by hand at 2026-11-21T10:00:00Z")

CASES = [
    # id, policy, stage, stage repository, current, hold -> kind, before, after, reason fragment
    ("a new digest in the stage is deployed", CLUSTER, PROD, repo({"prod": 2, "7": 2}), runs(1), None,
     "deploy", 1, 2, f"7 ({digest(2)[:19]}) from web/prod: {digest(1)[:19]} -> {HOST}/web@{digest(2)}"),
    ("the digest already runs: keep", CLUSTER, PROD, repo({"prod": 1, "6": 1}), runs(1), None,
     "keep", 1, 1, "runs 6"),
    ("keep says when the rollout is not complete", CLUSTER, PROD, repo({"prod": 1}), runs(1, False, "1 of 3 ready"),
     None, "keep", 1, 1, "rollout not complete: 1 of 3 ready"),
    ("nothing runs yet: deploy", CLUSTER, PROD, repo({"prod": 2}), runs(None), None,
     "deploy", None, 2, "nothing ->"),
    ("the stage holds nothing yet", CLUSTER, PROD, repo({}), runs(1), None,
     "blocked", 1, 1, "stage web/prod holds no digest to deploy yet"),
    ("only a version tag, no moving tag: nothing held", CLUSTER, PROD, repo({"7": 2}), runs(1), None,
     "blocked", 1, 1, "holds no digest"),
    ("the stage cannot be read", CLUSTER, PROD, "registry prod could not be read: 503", runs(1), None,
     "blocked", 1, 1, "stage web/prod could not be read: registry prod could not be read: 503"),
    ("the cluster cannot be read: not deployed blindly", CLUSTER, PROD, repo({"prod": 2}), "connection refused",
     None, "blocked", None, 2, "cluster prod-eu could not be read: connection refused"),
    ("a digest held after an automatic rollback is not deployed again", CLUSTER, PROD, repo({"prod": 2}), runs(1),
     HELD_AUTO, "blocked", 1, 2, "held: " + digest(2)[:19] + " was rolled back automatically"),
    ("a digest held by a manual rollback is not rolled forward", CLUSTER, PROD, repo({"prod": 2, "7": 2}), runs(1),
     HELD_HAND, "blocked", 1, 2, "or `reconcile release-hold prod-web`"),
    ("a newer candidate releases the hold", CLUSTER, PROD, repo({"prod": 3, "8": 3}), runs(1), HELD_AUTO,
     "deploy", 1, 3, f"hold on {digest(2)[:19]} released by this newer candidate"),
    ("a hold on the digest that runs: keep", CLUSTER, PROD, repo({"prod": 2}), runs(2), HELD_HAND,
     "keep", 2, 2, "runs"),
    ("a tracked stage: its newest candidate", CLUSTER, BUILD, repo({"build-9": 4, "build-10": 5}), runs(4), None,
     "deploy", 4, 5, f"build-10 ({digest(5)[:19]}) from web/prod"),
    ("manifests: the reference carries the version tag", MANIFESTS, PROD, repo({"prod": 2, "7": 2}), runs(1), None,
     "deploy", 1, 2, f"{HOST}/web:7@{digest(2)}"),
    ("manifests without a version tag: by digest only", MANIFESTS, PROD, repo({"prod": 2}), runs(1), None,
     "deploy", 1, 2, f"-> {HOST}/web@{digest(2)}"),
    ("manifests: what is written is unknown, deploy anyway (write-back is idempotent)", MANIFESTS, PROD,
     repo({"prod": 2}), "no such file", None, "deploy", None, 2, "the current image could not be read: no such file"),
    ("manifests already at the digest: keep", MANIFESTS, PROD, repo({"prod": 2, "7": 2}), runs(2), None,
     "keep", 2, 2, "runs 7"),
    ("manifests: a held digest is not written again", MANIFESTS, PROD, repo({"prod": 2}), runs(1), HELD_HAND,
     "blocked", 1, 2, "held:"),
    ("holds unknown (the trail cannot be read): nothing is deployed", CLUSTER, PROD, repo({"prod": 2, "7": 2}),
     runs(1), "the audit trail could not be read: file is not a database", "blocked", 1, 2,
     f"holds unknown: the audit trail could not be read: file is not a database; 7 ({digest(2)[:19]}) is not "
     "deployed"),
    ("holds unknown, but it already runs: keep", MANIFESTS, PROD, repo({"prod": 2}), runs(2), "unreadable",
     "keep", 2, 2, "runs"),
]


@pytest.mark.parametrize(("policy", "stage", "stage_repo", "current", "hold", "kind", "before", "after", "reason"),
                         [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_deploy(policy: DeployPolicy, stage: Stage, stage_repo: RepositoryState | str, current: DeployHealth | str,
                hold: Hold | None, kind: str, before: int | None, after: int | None, reason: str) -> None:
    action = plan_deploy(policy, stage, DeployInputs(HOST, stage_repo, current, hold))
    assert (action.kind, action.digest_before, action.digest_after) == (
        kind, digest(before) if before is not None else None, digest(after) if after is not None else None), action
    assert reason in action.reason
    assert action.policy == "DeployPolicy/prod-web"


def test_targets_name_the_cluster_workloads_or_the_manifests() -> None:
    assert plan_deploy(CLUSTER, PROD, DeployInputs(HOST, repo({"prod": 1}), runs(1))).target == \
        "prod-eu/web/Deployment/web"
    assert plan_deploy(MANIFESTS, PROD, DeployInputs(HOST, repo({"prod": 1}), runs(1))).target == \
        "git:/git/envs#main:prod Deployment/web"


@pytest.mark.parametrize(("tags", "held", "version"), [
    ({"prod": 2, "7": 2, "6": 1}, 2, "7"),
    ({"prod": 2, "6": 1}, 2, None),
    ({"staging": 2}, None, None),
])
def test_stage_digest_and_version_tag(tags: dict[str, int], held: int | None, version: str | None) -> None:
    state = repo(tags)
    assert stage_digest(PROD, state) == (digest(held) if held else None)
    if held:
        assert version_tag(PROD, state, digest(held)) == version


def test_version_tag_of_a_tracked_stage_names_older_candidates_too() -> None:
    state = repo({"build-6": 1, "build-7": 2, "latest": 2})
    assert version_tag(BUILD, state, digest(2)) == "build-7"  # the candidate
    assert version_tag(BUILD, state, digest(1)) == "build-6"  # what a rollback goes back to
    assert version_tag(BUILD, state, digest(3)) is None


def test_image_ref() -> None:
    assert image_ref("h:5000", "a/b", digest(1)) == f"h:5000/a/b@{digest(1)}"
    assert image_ref("h", "a", digest(1), "1.2") == f"h/a:1.2@{digest(1)}"
    assert image_ref("", "a", digest(1)) == f"a@{digest(1)}"


def test_a_tracked_stage_whose_order_ties_deploys_nothing() -> None:
    """A one-stage pipeline deployed straight from its track: two builds the order ranks equal
    (build-010 and build-10 are one number) on different digests are not guessed between."""
    action = plan_deploy(CLUSTER, BUILD, DeployInputs(HOST, repo({"build-010": 3, "build-10": 4}), runs(1)))
    assert (action.kind, action.block, action.cause) == ("blocked", "conflict", "ambiguous-candidate")
    assert action.digest_after == digest(1)  # what runs stays
    assert "ranks build-010, build-10 equal" in action.reason and action.reason.endswith("nothing is deployed")
    assert version_tag(BUILD, repo({"build-010": 3, "build-10": 4}), digest(4)) == "build-10"  # naming still works
