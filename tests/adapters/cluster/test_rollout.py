"""Rollout watch and rollback: a failed rollout rolled back automatically, a manual rollback to a
digest, a rollout that outlives its timeout, and revision history of StatefulSets."""

from __future__ import annotations

from datetime import timedelta

import pytest

from reconcile.adapters.cluster import CHANGE_CAUSE, ClusterError, rollout
from reconcile.adapters.cluster.deploy import ROLLBACK_CAUSE
from reconcile.adapters.cluster.rollout import assess
from reconcile.policy import model
from reconcile.policy.model import Workload
from tests.adapters.cluster.backends import Backend, FixtureBackend
from tests.adapters.cluster.scenarios import UNPULLABLE, cron_job, deployment, digest, owned, revision, stateful_set

CAUSE = "DeployPolicy/prod-api at 3f9c2ab"
API = Workload("Deployment", "api", "api")
V1, V2 = f"{UNPULLABLE}@{digest('1')}", f"{UNPULLABLE}@{digest('2')}"


def api_deployment(backend: Backend, *, deadline: int) -> str:
    namespace = backend.namespace("api")
    backend.create(deployment(namespace, "api", {"api": V1}, replicas=1, deadline=deadline))
    backend.wait("revision 1", lambda: revision(backend.read("apps/v1", "Deployment", namespace, "api")) == 1)
    return namespace


def test_a_failed_rollout_with_auto_rollback_restores_the_previous_revision(kube: Backend) -> None:
    namespace = api_deployment(kube, deadline=5)
    kube.rollout_outcome(namespace, "api", "fail")  # a real cluster: V2 cannot be pulled within 5s
    policy = model.Rollout(timeout=timedelta(seconds=kube.rollout_timeout), auto_rollback=True)
    with kube.connect(kube.identity([namespace])) as client:
        deployed = client.deploy(namespace, API, V2, cause=CAUSE)
        rollout = client.wait_for_rollout(namespace, "Deployment", "api", policy.timeout)
        assert (rollout.status, rollout.revision) == ("failed", 2)
        assert rollout.reason.startswith("ProgressDeadlineExceeded: "), rollout.reason
        assert policy.auto_rollback
        undone = client.rollback(namespace, "Deployment", "api", to_revision=deployed.revision_before)
    assert (undone.changed, undone.from_revision, undone.to_revision) == (True, 2, 1)
    assert (dict(undone.before), dict(undone.after)) == ({"api": V2}, {"api": V1})
    assert undone.reason.startswith("restored revision 1's pod template (ReplicaSet api-")

    def restored() -> bool:
        live = kube.read("apps/v1", "Deployment", namespace, "api")
        return revision(live) == 3 and live["spec"]["template"]["spec"]["containers"][0]["image"] == V1

    # The controller reuses revision 1's ReplicaSet as revision 3: no third ReplicaSet.
    kube.wait("the Deployment at revision 3 running V1 again", restored)
    assert len(owned(kube, "apps/v1", "ReplicaSet", namespace, "api")) == 2


def test_a_manual_rollback_to_a_digest_sets_it_and_says_what_changed(kube: Backend) -> None:
    namespace = kube.namespace("api")
    kube.create(deployment(namespace, "api", {"api": V2, "log": "ghcr.io/acme/log:1"}))
    with kube.connect(kube.identity([namespace])) as client:
        with pytest.raises(ClusterError, match="has 2 containers: name the one to roll back"):
            client.rollback(namespace, "Deployment", "api", to_digest=digest("0"))
        result = client.rollback(namespace, "Deployment", "api", to_digest=digest("0"), container="api")
        again = client.rollback(namespace, "Deployment", "api", to_digest=f"{UNPULLABLE}@{digest('0')}",
                                container="api")
    back = f"{UNPULLABLE}@{digest('0')}"
    assert (result.changed, result.to_digest, result.reason) == (True, digest("0"), f"container api set to {back}")
    assert dict(result.before) == {"api": V2, "log": "ghcr.io/acme/log:1"}
    assert dict(result.after) == {"api": back, "log": "ghcr.io/acme/log:1"}
    assert (again.changed, again.reason) == (False, f"container api already at {digest('0')}")
    live = kube.read("apps/v1", "Deployment", namespace, "api")
    assert live["metadata"]["annotations"][CHANGE_CAUSE] == f"reconcile rollback to {digest('0')}"


def test_a_rollout_that_does_not_finish_times_out(kube: Backend) -> None:
    namespace = api_deployment(kube, deadline=600)
    kube.rollout_outcome(namespace, "api", "hang")  # a real cluster: V2 never pulls, no deadline for 10 minutes
    with kube.connect(kube.identity([namespace])) as client:
        client.deploy(namespace, API, V2, cause=CAUSE)
        result = client.wait_for_rollout(namespace, "Deployment", "api", 1.0)
    assert result.status == "timeout"
    assert result.reason.startswith("not complete after 1s: "), result.reason
    assert 1.0 <= result.elapsed < 1.0 + 2 * kube.poll_interval + 1.0


def test_a_stateful_set_rolls_back_through_its_controller_revisions(kube: Backend) -> None:
    namespace = kube.namespace("db")
    kube.create(stateful_set(namespace, "db", {"db": "localhost:5000/db:15"}))
    kube.wait("revision 1", lambda: len(owned(kube, "apps/v1", "ControllerRevision", namespace, "db")) == 1)
    with kube.connect(kube.identity([namespace])) as client:
        client.deploy(namespace, Workload("StatefulSet", "db", "db"), f"localhost:5000/db@{digest('6')}", cause=CAUSE)
        kube.wait("revision 2", lambda: len(owned(kube, "apps/v1", "ControllerRevision", namespace, "db")) == 2)
        assert client.wait_for_rollout(namespace, "StatefulSet", "db", kube.rollout_timeout).status == "complete"
        undone = client.rollback(namespace, "StatefulSet", "db")
        assert client.wait_for_rollout(namespace, "StatefulSet", "db", kube.rollout_timeout).status == "complete"
    assert (undone.changed, undone.from_revision, undone.to_revision) == (True, 2, 1)
    assert dict(undone.after) == {"db": "localhost:5000/db:15"}
    live = kube.read("apps/v1", "StatefulSet", namespace, "db")
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "localhost:5000/db:15"


def test_revision_history_lists_each_retained_revision_with_its_images(kube: Backend) -> None:
    namespace = api_deployment(kube, deadline=600)
    kube.create(stateful_set(namespace, "db", {"db": "localhost:5000/db:15"}))
    kube.create(cron_job(namespace, "report", {"report": "ghcr.io/acme/report:1"}))
    with kube.connect(kube.identity([namespace])) as client:
        client.deploy(namespace, API, V2, cause=CAUSE)
        assert client.wait_for_rollout(namespace, "Deployment", "api", kube.rollout_timeout).status == "complete"
        client.deploy(namespace, Workload("StatefulSet", "db", "db"), f"localhost:5000/db@{digest('6')}", cause=CAUSE)
        kube.wait("db revision 2", lambda: len(owned(kube, "apps/v1", "ControllerRevision", namespace, "db")) == 2)
        api = client.revisions(namespace, "Deployment", "api")
        db = client.revisions(namespace, "StatefulSet", "db")
        report = client.revisions(namespace, "CronJob", "report")
    assert [(r.number, dict(r.images)) for r in api] == [(1, {"api": V1}), (2, {"api": V2})]
    assert [(r.number, dict(r.images)) for r in db] == [
        (1, {"db": "localhost:5000/db:15"}), (2, {"db": f"localhost:5000/db@{digest('6')}"})]
    assert report == []


def test_rollback_refusals_say_why(fixture_backend: FixtureBackend) -> None:
    namespace = api_deployment(fixture_backend, deadline=600)
    fixture_backend.create(cron_job(namespace, "report", {"report": "ghcr.io/acme/report:1"}))
    with fixture_backend.connect(fixture_backend.identity([namespace])) as client:
        with pytest.raises(ClusterError) as no_history:
            client.rollback(namespace, "Deployment", "api")
        with pytest.raises(ClusterError) as no_revision:
            client.rollback(namespace, "Deployment", "api", to_revision=7)
        with pytest.raises(ClusterError) as cron:
            client.rollback(namespace, "CronJob", "report")
        current = client.rollback(namespace, "Deployment", "api", to_revision=1)
    # kubectl's words (polymorphichelpers/rollback.go: "no rollout history found", revisionNotFoundErr)
    assert str(no_history.value) == (f"cluster prod-eu: no rollout history found for Deployment {namespace}/api "
                                     "(revisions: 1)")
    assert str(no_revision.value) == (f"cluster prod-eu: unable to find specified revision 7 in history of "
                                      f"Deployment {namespace}/api (revisions: 1)")
    assert str(cron.value) == (f"cluster prod-eu: a CronJob keeps no revision history: roll {namespace}/report back "
                               "to a digest instead")
    assert (current.changed, current.reason) == (False, "skipped rollback (current template already matches "
                                                        "revision 1)")


@pytest.mark.parametrize(("kind", "obj", "expected"), [
    ("Deployment", {"metadata": {"generation": 3}, "spec": {"replicas": 2}, "status": {"observedGeneration": 2}},
     (None, "waiting for the controller to observe generation 3 (observed 2)")),
    ("Deployment", {"metadata": {"generation": 3}, "spec": {"replicas": 2},
                    "status": {"observedGeneration": 3, "updatedReplicas": 2, "replicas": 3, "availableReplicas": 2}},
     (None, "1 old replicas pending termination")),
    ("Deployment", {"metadata": {"generation": 3}, "spec": {"replicas": 2},
                    "status": {"observedGeneration": 3, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 1}},
     (None, "1 of 2 updated replicas available")),
    ("Deployment", {"metadata": {"generation": 1}, "spec": {"paused": True}, "status": {"observedGeneration": 1}},
     ("failed", "the Deployment is paused (spec.paused): it does not roll out until resumed")),
    ("StatefulSet", {"metadata": {"generation": 2}, "spec": {"replicas": 3, "updateStrategy": {
        "type": "RollingUpdate", "rollingUpdate": {"partition": 2}}},
        "status": {"observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 1}},
     ("complete", "partitioned rollout complete: 1 pods updated above partition 2")),
    ("StatefulSet", {"metadata": {"generation": 2}, "spec": {"updateStrategy": {"type": "OnDelete"}}},
     ("complete", "OnDelete update strategy: pods take the new template only when deleted")),
    ("DaemonSet", {"metadata": {"generation": 4}, "status": {
        "observedGeneration": 4, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 2}},
     (None, "2 of 3 updated pods available")),
])
def test_rollout_assessment_follows_kubectl_rollout_status(kind: str, obj: dict, expected: tuple) -> None:
    assert assess(kind, obj) == expected


# --- as `kubectl rollout undo`, and what reconcile adds (issue 18) -----------------------------------

def _two_revisions(backend: FixtureBackend, **spec: object) -> str:
    """Deployment api: revision 1 runs V1 (change-cause "first"), revision 2 V2 (change-cause "second")."""
    namespace = backend.namespace("api")
    body = deployment(namespace, "api", {"api": V1}, replicas=1, deadline=600)
    body["metadata"]["annotations"] = {CHANGE_CAUSE: "first"}
    body["spec"].update(spec)
    backend.create(body)
    backend.wait("revision 1", lambda: revision(backend.read("apps/v1", "Deployment", namespace, "api")) == 1)
    backend.patch("apps/v1", "Deployment", namespace, "api", {
        "metadata": {"annotations": {CHANGE_CAUSE: "second"}},
        "spec": {"template": {"spec": {"containers": [{"name": "api", "image": V2}]}}}},
        "application/strategic-merge-patch+json")
    backend.wait("revision 2", lambda: revision(backend.read("apps/v1", "Deployment", namespace, "api")) == 2)
    return namespace


def test_an_undo_restores_the_revisions_change_cause_and_says_who_restored_it(
        fixture_backend: FixtureBackend) -> None:
    namespace = _two_revisions(fixture_backend)
    with fixture_backend.connect(fixture_backend.identity([namespace])) as client:
        undone = client.rollback(namespace, "Deployment", "api", to_revision=1, cause="reconcile rollback of X")
    live = fixture_backend.read("apps/v1", "Deployment", namespace, "api")
    annotations = live["metadata"]["annotations"]
    # kubectl copies the revision's annotations: its change-cause comes back with its template
    assert (annotations[CHANGE_CAUSE], annotations[ROLLBACK_CAUSE]) == ("first", "reconcile rollback of X")
    assert (undone.changed, undone.change_cause, dict(undone.after)) == (True, "first", {"api": V1})


def test_a_rollback_to_a_digest_restores_the_change_cause_of_the_revision_that_ran_it(
        fixture_backend: FixtureBackend) -> None:
    namespace = _two_revisions(fixture_backend)
    with fixture_backend.connect(fixture_backend.identity([namespace])) as client:
        back = client.rollback(namespace, "Deployment", "api", to_digest=digest("1"), container="api",
                               cause="reconcile rollback of X")
        forward = client.deploy(namespace, API, f"{UNPULLABLE}@{digest('3')}", cause=CAUSE)
    assert (back.changed, back.change_cause) == (True, "first")
    assert forward.changed
    annotations = fixture_backend.read("apps/v1", "Deployment", namespace, "api")["metadata"]["annotations"]
    # a deploy after it says it is a deploy, and no longer carries the rollback's note
    assert annotations[CHANGE_CAUSE] == CAUSE and ROLLBACK_CAUSE not in annotations


def test_a_paused_deployment_is_refused_before_anything_is_patched_or_resumed_when_asked(
        fixture_backend: FixtureBackend) -> None:
    namespace = _two_revisions(fixture_backend)
    fixture_backend.patch("apps/v1", "Deployment", namespace, "api", {"spec": {"paused": True}})

    def observed() -> bool:
        live = fixture_backend.read("apps/v1", "Deployment", namespace, "api")
        return bool(live["status"].get("observedGeneration") == live["metadata"]["generation"])

    fixture_backend.wait("the pause observed", observed)
    version = fixture_backend.read("apps/v1", "Deployment", namespace, "api")["metadata"]["resourceVersion"]
    message = (f"cluster prod-eu: deployment {namespace}/api is paused; resume it (kubectl rollout resume "
               f"deployment/api -n {namespace}) or pass --resume")
    with fixture_backend.connect(fixture_backend.identity([namespace])) as client:
        assert client.rollback_facts(namespace, "Deployment", "api", "api").paused
        with pytest.raises(ClusterError) as by_revision:
            client.rollback(namespace, "Deployment", "api", to_revision=1)
        with pytest.raises(ClusterError) as by_digest:
            client.rollback(namespace, "Deployment", "api", to_digest=digest("1"), container="api")
        assert str(by_revision.value) == str(by_digest.value) == message
        live = fixture_backend.read("apps/v1", "Deployment", namespace, "api")
        assert live["metadata"]["resourceVersion"] == version  # nothing patched
        resumed = client.rollback(namespace, "Deployment", "api", to_revision=1, resume=True)
    live = fixture_backend.read("apps/v1", "Deployment", namespace, "api")
    assert (resumed.changed, resumed.resumed) == (True, True)
    assert resumed.reason.endswith("; resumed (spec.paused: false)")
    assert live["spec"].get("paused") in (False, None)
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == V1


def test_no_revision_history_is_said_as_such(fixture_backend: FixtureBackend) -> None:
    namespace = _two_revisions(fixture_backend, revisionHistoryLimit=0)
    fixture_backend.wait("revision 1's ReplicaSet cleaned up",
                         lambda: len(owned(fixture_backend, "apps/v1", "ReplicaSet", namespace, "api")) == 1)
    with fixture_backend.connect(fixture_backend.identity([namespace])) as client:
        assert client.rollback_facts(namespace, "Deployment", "api", "api").history_limit == 0
        with pytest.raises(ClusterError) as undo:
            client.rollback(namespace, "Deployment", "api")
        with pytest.raises(ClusterError) as to_revision:
            client.rollback(namespace, "Deployment", "api", to_revision=1)
    assert str(undo.value) == (f"cluster prod-eu: no rollout history found for Deployment {namespace}/api "
                               "(revisionHistoryLimit: 0: the cluster keeps no earlier revision) (revisions: 2)")
    assert str(to_revision.value).startswith("cluster prod-eu: unable to find specified revision 1 in history of "
                                             f"Deployment {namespace}/api (revisionHistoryLimit: 0")


def test_a_container_set_by_tag_is_known_by_the_digest_its_pods_report(fixture_backend: FixtureBackend) -> None:
    namespace = fixture_backend.namespace("api")
    fixture_backend.create(deployment(namespace, "api", {"api": f"{UNPULLABLE}:v2"}))
    with fixture_backend.connect(fixture_backend.identity([namespace])) as client:
        unknown = client.rollback_facts(namespace, "Deployment", "api", "api")
        fixture_backend.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "api-1", "namespace": namespace, "labels": {"app": "api"}},
            "spec": {"containers": [{"name": "api", "image": f"{UNPULLABLE}:v2"}]}})
        fixture_backend.api.set_status("pods", namespace, "api-1", {"phase": "Running", "containerStatuses": [
            {"name": "api", "image": f"{UNPULLABLE}:v2", "imageID": f"{UNPULLABLE}@{digest('2')}", "ready": True}]})
        known = client.rollback_facts(namespace, "Deployment", "api", "api")
    with fixture_backend.connect(fixture_backend.identity([namespace], lacking=("list", "", "pods"))) as client:
        unread = client.rollback_facts(namespace, "Deployment", "api", "api")  # a hint: not an error
    assert (unknown.image, unknown.running, unknown.unread) == (f"{UNPULLABLE}:v2", (), None)
    assert (known.paused, known.history_limit, known.running) == (False, None, (digest("2"),))
    assert (unread.running, unread.unread) == ((), "cluster prod-eu: forbidden: the service account needs 'list' on "
                                                   "'pods' (core) — add it to deploy/rbac.yaml's ClusterRole")


def test_the_waits_between_reads_grow_from_a_quarter_second_to_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rollout done in half a second is seen after 0.75 s, not after the 2 s interval: the
    waits double from 0.25 s, then stay at the interval."""
    in_progress = {"metadata": {"generation": 2}, "spec": {"replicas": 1}, "status": {"observedGeneration": 1}}
    done = {"metadata": {"generation": 2}, "spec": {"replicas": 1},
            "status": {"observedGeneration": 2, "updatedReplicas": 1, "replicas": 1, "availableReplicas": 1}}
    answers = [in_progress] * 6 + [done]

    class Reads:
        cluster = "prod"

        def get(self, *_: object, **__: object) -> dict:
            return answers.pop(0)

    waits: list[float] = []
    monkeypatch.setattr(rollout.time, "sleep", waits.append)
    result = rollout.wait_for_rollout(Reads(), "ns", "Deployment", "api", 600, poll_interval=2.0)  # type: ignore[arg-type]
    assert result.status == "complete"
    assert waits == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
