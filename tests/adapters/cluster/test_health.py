"""What a workload is set to, and whether its rollout is complete: what healthyIn gates read."""

from __future__ import annotations

from reconcile.policy import model
from tests.adapters.cluster.backends import Backend
from tests.adapters.cluster.scenarios import deployment, digest

IMAGE = f"localhost:5000/acme/api@{digest('a')}"


def test_a_completed_rollout_is_healthy_and_reports_its_image(kube: Backend) -> None:
    namespace = kube.namespace("api")
    kube.create(deployment(namespace, "api", {"api": IMAGE, "log": "ghcr.io/acme/log:1"}))
    web = model.Workload("Deployment", "api", "api")
    with kube.connect(kube.identity([namespace])) as client:
        kube.wait("the rollout to complete", lambda: client.workload_health(namespace, web)[1])
        image, healthy, _reason = client.workload_health(namespace, web)
    assert (image, healthy) == (IMAGE, True)


def test_a_rollout_past_its_deadline_is_not_healthy(kube: Backend) -> None:
    namespace = kube.namespace("api")
    kube.rollout_outcome(namespace, "api", "fail")
    kube.create(deployment(namespace, "api", {"api": IMAGE}, replicas=1, deadline=1))
    web = model.Workload("Deployment", "api", "api")
    with kube.connect(kube.identity([namespace])) as client:
        kube.wait("the deadline to pass", lambda: not client.workload_health(namespace, web)[1]
                  and "deadline" in client.workload_health(namespace, web)[2].lower())
        image, healthy, reason = client.workload_health(namespace, web)
    assert image == IMAGE and healthy is False and reason
