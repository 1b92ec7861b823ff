"""Rollout watch and rollback: a failed rollout rolled back automatically, a manual rollback to a
digest, a rollout that outlives its timeout, and revision history of StatefulSets."""

from __future__ import annotations

from datetime import timedelta

import pytest

from reconcile.adapters.cluster import CHANGE_CAUSE, ClusterError
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
    assert str(no_history.value) == (f"cluster prod-eu: Deployment {namespace}/api has no previous revision to roll "
                                     "back to")
    assert str(no_revision.value) == f"cluster prod-eu: Deployment {namespace}/api has no revision 7 (revisions: 1)"
    assert str(cron.value) == (f"cluster prod-eu: a CronJob keeps no revision history: roll {namespace}/report back "
                               "to a digest instead")
    assert (current.changed, current.reason) == (False, "already at revision 1's template")


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
