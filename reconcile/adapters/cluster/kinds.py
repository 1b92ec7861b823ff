"""The Kubernetes resources the cluster adapter reads and writes, and where their pod templates are.

One table, so the client calls, the RBAC rules in ``deploy/rbac.yaml`` and the error messages that
name a missing rule all derive from the same names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Resource:
    kind: str
    group: str  # "" is the core group
    plural: str  # the RBAC resource name
    api: str  # the kubernetes.client class serving it
    method: str  # the snake_case name in that class's methods (read_namespaced_<method>, ...)
    template: tuple[str, ...] | None  # path to the pod template; Pod and ControllerRevision differ

    def pod_spec(self, obj: dict[str, Any]) -> dict[str, Any]:
        """The pod spec inside ``obj`` (empty when absent), wherever this kind keeps it."""
        if self.kind == "Pod":
            return _mapping(obj.get("spec"))
        if self.kind == "ControllerRevision":
            # data is the revision's patch: {"spec": {"template": {..., "$patch": "replace"}}}
            return _mapping(_dig(obj, ("data", "spec", "template", "spec")))
        return _mapping(_dig(obj, (*(self.template or ()), "spec")))


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


POD = Resource("Pod", "", "pods", "CoreV1Api", "pod", None)
DEPLOYMENT = Resource("Deployment", "apps", "deployments", "AppsV1Api", "deployment", ("spec", "template"))
REPLICA_SET = Resource("ReplicaSet", "apps", "replicasets", "AppsV1Api", "replica_set", ("spec", "template"))
STATEFUL_SET = Resource("StatefulSet", "apps", "statefulsets", "AppsV1Api", "stateful_set", ("spec", "template"))
CONTROLLER_REVISION = Resource("ControllerRevision", "apps", "controllerrevisions", "AppsV1Api",
                               "controller_revision", None)
DAEMON_SET = Resource("DaemonSet", "apps", "daemonsets", "AppsV1Api", "daemon_set", ("spec", "template"))
JOB = Resource("Job", "batch", "jobs", "BatchV1Api", "job", ("spec", "template"))
CRON_JOB = Resource("CronJob", "batch", "cronjobs", "BatchV1Api", "cron_job",
                    ("spec", "jobTemplate", "spec", "template"))
# Read only for protect.helmReleases (Helm's release storage), under the opt-in RBAC rule.
SECRET = Resource("Secret", "", "secrets", "CoreV1Api", "secret", None)

# Every kind whose objects say which images are used: one cluster-wide list each.
DISCOVERED: tuple[Resource, ...] = (POD, DEPLOYMENT, REPLICA_SET, STATEFUL_SET, CONTROLLER_REVISION, DAEMON_SET,
                                    JOB, CRON_JOB)
# Kinds a DeployPolicy may name: their pod template is patched.
DEPLOYABLE: dict[str, Resource] = {r.kind: r for r in (DEPLOYMENT, STATEFUL_SET, DAEMON_SET, CRON_JOB)}
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


def deployable(kind: str) -> Resource:
    resource = DEPLOYABLE.get(kind)
    if resource is None:
        raise ValueError(f"cannot deploy to a {kind}; deployable kinds: {', '.join(DEPLOYABLE)}")
    return resource
