"""`reconcile rollback` as `kubectl rollout undo` answers (k8s.io/kubectl/pkg/polymorphichelpers/
rollback.go), end to end: the CLI, a real registry, the API-server fixture through the real
`kubernetes` client. --to-revision N, a revision not retained, already at the revision, a paused
Deployment (refused, or --resume), revisionHistoryLimit: 0 (the audit trail still offers a target),
change-cause restored; and what reconcile adds: a hand edit named before it is overwritten, a
Deployment set by tag known by the digest its pods report. Every refusal is a recorded skip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconcile import NotConfirmed, Reconciler
from reconcile.adapters.cluster import CHANGE_CAUSE
from reconcile.adapters.cluster.deploy import ROLLBACK_CAUSE
from reconcile.audit import AuditStore
from tests.adapters.cluster.scenarios import owned, set_image
from tests.apply.test_deploy_end_to_end import WebInProd, invoke, web_in_prod
from tests.conftest import RunningRegistry


def rows(db: Path) -> list[dict[str, Any]]:
    """The prod-web actions, outcomes only, oldest first."""
    with AuditStore.open(db, read_only=True) as store:
        return [dict(r) for r in store.conn.execute(
            "SELECT kind, status, cause, reason, digest_before, digest_after FROM actions "
            "WHERE policy = 'DeployPolicy/prod-web' AND status != 'intent' ORDER BY seq")]


def deployment(world: WebInProd) -> dict[str, Any]:
    return world.admin.read("apps/v1", "Deployment", world.namespace, "web")


def replica_set(world: WebInProd, number: int) -> dict[str, Any]:
    (found,) = [rs for rs in owned(world.admin, "apps/v1", "ReplicaSet", world.namespace, "web")
                if rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == str(number)]
    return found


@pytest.fixture
def common(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    return ["--audit-db", str(tmp_path / "audit.db")]


def test_to_revision_already_at_it_not_retained_and_change_cause_restored(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, common: list[str]) -> None:
    db = tmp_path / "audit.db"
    with web_in_prod(tmp_path, plain_registry, repo, builds=2) as world:
        (d1, d2), ref, admin, namespace = world.digests, world.ref, world.admin, world.namespace
        common = ["--repo", str(world.root), *common]
        # revision 1 was made by hand, recorded as `kubectl ... --record` does
        admin.wait("revision 1", lambda: len(owned(admin, "apps/v1", "ReplicaSet", namespace, "web")) == 1)
        first = replica_set(world, 1)["metadata"]["name"]
        made_by = f"kubectl create deployment web --image={ref}{d1}"
        admin.patch("apps/v1", "ReplicaSet", namespace, first, {"metadata": {"annotations": {CHANGE_CAUSE: made_by}}})
        assert invoke("apply", *common, "--yes").exit_code == 0
        admin.wait("revision 2", lambda: len(owned(admin, "apps/v1", "ReplicaSet", namespace, "web")) == 2)
        assert world.image() == ref + d2

        # a revision that is not retained: kubectl's message, the revisions kept, the trail's digest offered
        missing = invoke("rollback", *common, "prod-web", "--to-revision", "9", "--yes")
        assert missing.exit_code == 1
        assert ("not rolled back: unable to find specified revision 9 in history of Deployment/web (revisions: 1, 2); "
                f"the audit trail's deploy history offers --to {d1}") in missing.stderr
        assert world.image() == ref + d2

        # already at the revision asked for (or the digest): exit 0, nothing patched, nothing held
        version = deployment(world)["metadata"]["resourceVersion"]
        current = invoke("rollback", *common, "prod-web", "--to-revision", "2", "--yes")
        assert current.exit_code == 0, current.output
        assert ("prod-web: already at revision 2: skipped rollback (current template already matches revision 2); "
                "nothing patched, nothing held") in current.stderr
        same = invoke("rollback", *common, "prod-web", "--to", d2, "--yes")
        assert same.exit_code == 0 and f"prod-web: already at {d2}" in same.stderr
        assert deployment(world)["metadata"]["resourceVersion"] == version
        assert invoke("plan", *common, "--detailed-exitcode").exit_code == 0  # nothing held, nothing to do

        # --to-revision 1: its pod template, and its change-cause with it (as kubectl); reconcile's own
        # annotation says who restored it
        undone = invoke("rollback", *common, "prod-web", "--to-revision", "1", "--yes")
        assert undone.exit_code == 0, undone.output
        assert f"to revision 1, build-1 ({d1})" in undone.stderr
        assert world.image() == ref + d1
        annotations = deployment(world)["metadata"]["annotations"]
        assert annotations[CHANGE_CAUSE] == made_by
        assert annotations[ROLLBACK_CAUSE].startswith("reconcile rollback of DeployPolicy/prod-web at ")

        # a deploy after it: the change-cause says the deploy, the rollback's note is gone
        assert invoke("release-hold", *common, "prod-web").exit_code == 0
        assert invoke("run", *common).exit_code == 0
        annotations = deployment(world)["metadata"]["annotations"]
        assert annotations[CHANGE_CAUSE].startswith("DeployPolicy/prod-web at ") and ROLLBACK_CAUSE not in annotations

    recorded = rows(db)
    skips = [(r["status"], r["cause"], r["reason"]) for r in recorded if r["kind"] == "skip"][:3]
    assert skips == [
        ("skipped", "requested", "refused: unable to find specified revision 9 in history of Deployment/web "
                                 f"(revisions: 1, 2); the audit trail's deploy history offers --to {d1} (or no "
                                 "--revision: its last good digest)"),
        ("skipped", "up-to-date", "already at revision 2: skipped rollback (current template already matches "
                                  "revision 2)"),
        ("skipped", "up-to-date", f"already at {d2}: prod-web runs it; skipped rollback")]
    assert [(r["kind"], r["status"], r["digest_before"], r["digest_after"]) for r in recorded
            if r["kind"] == "rollback"] == [("rollback", "succeeded", d2, d1)]
    assert invoke("audit", "verify", "--audit-db", str(db)).exit_code == 0


def test_a_paused_deployment_is_refused_before_any_patch_or_resumed_with_resume(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, common: list[str]) -> None:
    db = tmp_path / "audit.db"
    with web_in_prod(tmp_path, plain_registry, repo, builds=2) as world:
        (d1, d2), ref, admin, namespace = world.digests, world.ref, world.admin, world.namespace
        common = ["--repo", str(world.root), *common]
        assert invoke("apply", *common, "--yes").exit_code == 0
        admin.patch("apps/v1", "Deployment", namespace, "web", {"spec": {"paused": True}})  # kubectl rollout pause
        admin.wait("the pause observed", lambda: deployment(world)["status"].get("observedGeneration")
                   == deployment(world)["metadata"]["generation"])
        version = deployment(world)["metadata"]["resourceVersion"]

        refused = invoke("rollback", *common, "prod-web", "--yes")
        assert refused.exit_code == 1
        assert (f"not rolled back: deployment {namespace}/web is paused; resume it (kubectl rollout resume "
                f"deployment/web -n {namespace}) or pass --resume") in refused.stderr
        assert deployment(world)["metadata"]["resourceVersion"] == version and world.image() == ref + d2
        assert invoke("plan", *common, "--detailed-exitcode").exit_code == 0  # nothing was held either

        resumed = invoke("rollback", *common, "prod-web", "--resume", "--yes")
        assert resumed.exit_code == 0, resumed.output
        assert "note: --resume: Deployment/web paused; the rollback's patch resumes it" in resumed.stderr
        live = deployment(world)
        assert world.image() == ref + d1 and not live["spec"].get("paused")

    recorded = rows(db)
    assert [(r["kind"], r["status"], r["cause"]) for r in recorded[1:]] == [
        ("skip", "skipped", "requested"), ("rollback", "succeeded", "requested")]
    assert recorded[1]["reason"].startswith(f"refused: deployment {namespace}/web is paused")
    assert recorded[2]["reason"] == f"manual rollback to {d1}; resuming Deployment/web (--resume)"


def test_no_revision_history_a_hand_edit_and_a_tag_the_pods_report(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, common: list[str]) -> None:
    db = tmp_path / "audit.db"
    with web_in_prod(tmp_path, plain_registry, repo, builds=3) as world:
        (d1, d2, d3), ref, admin, namespace = world.digests, world.ref, world.admin, world.namespace
        common = ["--repo", str(world.root), *common]
        admin.patch("apps/v1", "Deployment", namespace, "web", {"spec": {"revisionHistoryLimit": 0}})
        assert invoke("apply", *common, "--yes").exit_code == 0
        admin.wait("only the current ReplicaSet", lambda: len(owned(admin, "apps/v1", "ReplicaSet", namespace,
                                                                    "web")) == 1)

        # revisionHistoryLimit: 0: the cluster keeps no history; the audit trail's digests still do
        by_revision = invoke("rollback", *common, "prod-web", "--revision", "1", "--yes")
        assert by_revision.exit_code == 1
        assert ("unable to find specified revision 1 in history: Deployment/web keeps no revision history "
                "(revisionHistoryLimit: 0), the cluster has only the current one; the audit trail's deploy "
                f"history offers --to {d1}") in by_revision.stderr

        # a hand edit since reconcile's last deploy: named before it is overwritten, and in the trail
        set_image(admin, deployment(world), "web", ref + d3)  # kubectl set image, by digest
        admin.wait("the hand edit rolled out", lambda: deployment(world)["status"].get("updatedReplicas") == 1
                   and world.image() == ref + d3)
        hand = (f"hand edit: Deployment/web run {d3}, but reconcile last deployed {d2}: changed since (kubectl set "
                "image, kubectl edit, a commit?); this rollback overwrites it")
        questions: list[str] = []
        with pytest.raises(NotConfirmed):  # the question names it; declined, it is recorded and nothing changes
            Reconciler(str(world.root), audit_db=str(db)).rollback(
                "prod-web", confirm=lambda question: bool(questions.append(question)))
        assert questions == [f"{hand}. Roll prod-web back from {d3} to {d2}?"] and world.image() == ref + d3
        rolled = invoke("rollback", *common, "prod-web", "--yes")
        assert rolled.exit_code == 0, rolled.output
        assert f"warning: {hand}" in rolled.stderr
        assert ("note: Deployment/web keeps no revision history (revisionHistoryLimit: 0): `kubectl rollout undo` "
                f"has nothing to go back to; set by digest to {d2[:19]} from the audit trail's deploy history"
                ) in rolled.stderr
        assert world.image() == ref + d2

        # set by tag, as `kubectl set image web=…:build-2` leaves it: its pods' imageID says what runs
        set_image(admin, deployment(world), "web", f"{plain_registry.host}/{repo}:build-2")
        admin.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "web-1", "namespace": namespace, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": f"{plain_registry.host}/{repo}:build-2"}]}})
        admin.api.set_status("pods", namespace, "web-1", {"phase": "Running", "containerStatuses": [
            {"name": "web", "image": f"{plain_registry.host}/{repo}:build-2", "imageID": ref + d2, "ready": True}]})
        by_tag = invoke("rollback", *common, "prod-web", "--yes")
        assert by_tag.exit_code == 0, by_tag.output
        assert (f"note: Deployment/web is set by tag ({plain_registry.host}/{repo}:build-2); its pods run it as {d2} "
                "(status.containerStatuses[].imageID)") in by_tag.stderr
        assert f"rolled prod-web back from build-2 ({d2}) to build-1 ({d1})" in by_tag.stderr
        assert world.image() == ref + d1

    rollbacks = [r for r in rows(db) if r["kind"] == "rollback"]
    assert [(r["digest_before"], r["digest_after"]) for r in rollbacks] == [(d3, d2), (d2, d1)]
    assert rollbacks[0]["reason"] == f"manual rollback to {d2}; {hand}"
    skips = [r for r in rows(db) if r["kind"] == "skip"]
    assert skips[1]["reason"] == f"not confirmed: {hand}. Roll prod-web back from {d3} to {d2}?"
    assert skips[0]["reason"].startswith("refused: unable to find specified revision 1 in history: Deployment/web "
                                         "keeps no revision history")


def test_a_deploy_that_replaced_a_tag_recorded_no_digest_and_the_rollback_says_what_the_tag_is_now(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, common: list[str]) -> None:
    """The known gap: `kubectl set image web=…:build-1`, then reconcile's deploy; the trail has no
    digest before it and the tag's pods are gone. The refusal names the tag and what the stage's
    registry resolves it to now, as a --to to check, never as the default."""
    with web_in_prod(tmp_path, plain_registry, repo, builds=2) as world:
        (d1, d2), ref, admin, namespace = world.digests, world.ref, world.admin, world.namespace
        common = ["--repo", str(world.root), *common]
        tagged = f"{plain_registry.host}/{repo}:build-1"
        admin.wait("revision 1", lambda: len(owned(admin, "apps/v1", "ReplicaSet", namespace, "web")) == 1)
        set_image(admin, deployment(world), "web", tagged)
        admin.wait("revision 2, by tag", lambda: len(owned(admin, "apps/v1", "ReplicaSet", namespace, "web")) == 2)
        assert invoke("apply", *common, "--yes").exit_code == 0
        assert world.image() == ref + d2

        refused = invoke("rollback", *common, "prod-web", "--yes")
        assert refused.exit_code == 1
        assert (f"Deployment/web: revision 2 ran {tagged}, set by tag: no digest was recorded for it when it was "
                "replaced, and its pods are gone; the stage's repository has build-1 at "
                f"{d1} now (tags move: check it is what ran): --to {d1}") in refused.stderr
        assert world.image() == ref + d2
        asked = invoke("rollback", *common, "prod-web", "--to", d1, "--yes")
        assert asked.exit_code == 0, asked.output
        assert world.image() == ref + d1
