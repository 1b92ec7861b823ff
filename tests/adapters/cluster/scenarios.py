"""Workload manifests the scenarios create, valid for a real API server too.

Nothing here pulls an image on a real cluster unless a scenario wants it to: workloads have 0
replicas or a node selector no node has, Jobs and CronJobs are suspended, and images that must
fail to pull point at a closed loopback port.
"""

from __future__ import annotations

from typing import Any

from tests.adapters.cluster.backends import NOWHERE, Backend

UNPULLABLE = "127.0.0.1:9/reconcile-test/api"  # nothing listens on port 9: pulls fail fast
# The cluster-wide lists discovery makes, one per kind.
LISTS = {"/api/v1/pods", "/apis/apps/v1/deployments", "/apis/apps/v1/replicasets", "/apis/apps/v1/statefulsets",
         "/apis/apps/v1/controllerrevisions", "/apis/apps/v1/daemonsets", "/apis/batch/v1/jobs",
         "/apis/batch/v1/cronjobs"}


def digest(character: str) -> str:
    return "sha256:" + character * 64


def _containers(images: dict[str, str]) -> list[dict[str, Any]]:
    return [{"name": name, "image": image} for name, image in images.items()]


def pod_spec(images: dict[str, str], *, init: dict[str, str] | None = None, pending: bool = True,
             restart: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": _containers(images), "terminationGracePeriodSeconds": 0}
    if init:
        spec["initContainers"] = _containers(init)
    if pending:
        spec["nodeSelector"] = dict(NOWHERE)
    if restart:
        spec["restartPolicy"] = restart
    return spec


def deployment(namespace: str, name: str, images: dict[str, str], *, replicas: int = 0, deadline: int = 600,
               init: dict[str, str] | None = None) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "progressDeadlineSeconds": deadline, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": pod_spec(images, init=init, pending=replicas == 0)}}}


def stateful_set(namespace: str, name: str, images: dict[str, str]) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 0, "serviceName": name, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": pod_spec(images)}}}


def daemon_set(namespace: str, name: str, images: dict[str, str]) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": pod_spec(images)}}}


def job(namespace: str, name: str, images: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": namespace},
            "spec": {"suspend": True, "template": {"spec": pod_spec(images, restart="Never")}}}


def cron_job(namespace: str, name: str, images: dict[str, str], *, init: dict[str, str] | None = None
             ) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name, "namespace": namespace},
            "spec": {"schedule": "0 3 * * *", "suspend": True, "jobTemplate": {"spec": {"template": {
                "spec": pod_spec(images, init=init, restart="Never")}}}}}


def pod(namespace: str, name: str, images: dict[str, str], *, init: dict[str, str] | None = None,
        pending: bool = True) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": pod_spec(images, init=init, pending=pending)}


def owned(backend: Backend, api_version: str, kind: str, namespace: str, owner: str) -> list[dict[str, Any]]:
    """Objects of ``kind`` in ``namespace`` controlled by the workload named ``owner``."""
    return [o for o in backend.list(api_version, kind, namespace)
            if any(r.get("controller") and r.get("name") == owner
                   for r in o["metadata"].get("ownerReferences") or ())]


def set_image(backend: Backend, obj: dict[str, Any], container: str, image: str) -> None:
    """A change made by someone else (kubectl set image), as a strategic-merge patch."""
    meta = obj["metadata"]
    body = {"spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}}
    backend.patch(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"], body,
                  "application/strategic-merge-patch+json")


def revision(obj: dict[str, Any]) -> int:
    return int((obj["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", 0))
