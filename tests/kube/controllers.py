"""Controller emulation for the API-server fixture: what kube-controller-manager does after a
workload's pod template changes, with the outcome of the rollout chosen by the test.

- Deployment (https://kubernetes.io/docs/concepts/workloads/controllers/deployment/): a new pod
  template gets a ReplicaSet owned by the Deployment, labelled ``pod-template-hash``, annotated with
  the next ``deployment.kubernetes.io/revision`` (also set on the Deployment) and the Deployment's
  other annotations (the change cause); a template equal to an old ReplicaSet's reuses it under a
  new revision number (#rolling-back-a-deployment). ``complete`` scales the new one up and old ones
  to 0 and reports Progressing=True/NewReplicaSetAvailable; ``fail`` reports Progressing=False
  /ProgressDeadlineExceeded (#failed-deployment); ``hang`` observes the generation and never
  finishes. Old ReplicaSets beyond ``revisionHistoryLimit`` (default 10) are deleted
  (#clean-up-policy).
- StatefulSet and DaemonSet: a new template gets a ControllerRevision whose ``data`` restores it
  (https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/controller-revision-v1/),
  and the status reports the revisions.
"""

from __future__ import annotations

import copy
import hashlib
import json
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.kube.server import ApiServer

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
HASH_LABEL = "pod-template-hash"
_NOT_COPIED = frozenset({REVISION, REVISION_HISTORY, "kubectl.kubernetes.io/last-applied-configuration",
                         "deployment.kubernetes.io/desired-replicas", "deployment.kubernetes.io/max-replicas"})


def template_hash(template: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def _without_hash(template: dict[str, Any]) -> dict[str, Any]:
    template = copy.deepcopy(template)
    (template.get("metadata") or {}).get("labels", {}).pop(HASH_LABEL, None)
    return template


def _revision(obj: dict[str, Any]) -> int:
    return int((obj["metadata"].get("annotations") or {}).get(REVISION, 0))


def _owner(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
             "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]


class Controllers:
    """A worker thread reconciling workloads ``delay`` seconds after their spec changed."""

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self._queue: queue.Queue[tuple[float, str, str, str] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="kube-fixture-controllers", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def notify(self, plural: str, namespace: str, name: str) -> None:
        if plural in ("deployments", "statefulsets", "daemonsets"):
            self._queue.put((time.monotonic() + self.server.controller_delay, plural, namespace, name))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            due, plural, namespace, name = item
            time.sleep(max(due - time.monotonic(), 0))
            with self.server.lock:
                obj = self.server.objects.get((plural, namespace, name))
                if obj is None:
                    continue
                if plural == "deployments":
                    self._deployment(copy.deepcopy(obj))
                else:
                    self._history(plural, copy.deepcopy(obj))

    def _outcome(self, obj: dict[str, Any]) -> str:
        # An outcome set for one image (a template that cannot be pulled) wins over the workload's.
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        containers = ((obj["spec"].get("template") or {}).get("spec") or {}).get("containers") or []
        for container in containers:
            if (namespace, name, container.get("image")) in self.server.rollouts:
                return self.server.rollouts[(namespace, name, container.get("image"))]
        return self.server.rollouts.get((namespace, name), "complete")

    def _deployment(self, deployment: dict[str, Any]) -> None:
        server, meta, spec = self.server, deployment["metadata"], deployment["spec"]
        namespace, template = meta["namespace"], spec["template"]
        owned = server.owned("replicasets", namespace, meta["uid"])
        newest = max((_revision(rs) for rs in owned), default=0)
        current = next((rs for rs in owned if _without_hash(rs["spec"]["template"]) == _without_hash(template)), None)
        copied = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in _NOT_COPIED}
        if current is None:
            digest = template_hash(template)
            labeled = copy.deepcopy(template)
            labeled.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = digest
            selector = copy.deepcopy(spec.get("selector") or {})
            selector.setdefault("matchLabels", {})[HASH_LABEL] = digest
            current = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
                "name": f"{meta['name']}-{digest}", "namespace": namespace, "uid": f"rs-{digest}-{newest + 1}",
                "labels": labeled["metadata"]["labels"], "ownerReferences": _owner(deployment), "generation": 1,
                "annotations": {**copied, REVISION: str(newest + 1)}},
                "spec": {"replicas": 0, "selector": selector, "template": labeled}, "status": {"replicas": 0}}
        elif _revision(current) < newest:
            # Rolling back to an old template reuses its ReplicaSet under the next revision number.
            annotations = current["metadata"].setdefault("annotations", {})
            history = [h for h in annotations.get(REVISION_HISTORY, "").split(",") if h]
            annotations[REVISION_HISTORY] = ",".join([*history, str(_revision(current))])
            annotations.update(copied)
            annotations[REVISION] = str(newest + 1)
        desired = spec.get("replicas", 1)
        outcome = self._outcome(deployment)
        name = current["metadata"]["name"]
        old = [rs for rs in owned if rs["metadata"]["name"] != name]
        old_replicas = sum(rs["spec"].get("replicas", 0) for rs in old)
        if outcome == "complete":
            current["spec"]["replicas"] = desired
            current["status"] = {"replicas": desired, "readyReplicas": desired, "availableReplicas": desired,
                                 "observedGeneration": current["metadata"]["generation"]}
            for rs in old:
                if rs["spec"].get("replicas"):
                    rs["spec"]["replicas"], rs["status"] = 0, {"replicas": 0}
                    server.store("replicasets", rs)
            status = {"replicas": desired, "updatedReplicas": desired, "readyReplicas": desired,
                      "availableReplicas": desired, "conditions": [
                          _condition("Available", "True", "MinimumReplicasAvailable",
                                     "Deployment has minimum availability."),
                          _condition("Progressing", "True", "NewReplicaSetAvailable",
                                     f'ReplicaSet "{name}" has successfully progressed.')]}
        elif outcome == "fail":
            current["spec"]["replicas"] = min(desired, 1)
            status = {"replicas": old_replicas + 1, "updatedReplicas": 1, "readyReplicas": old_replicas,
                      "availableReplicas": old_replicas, "unavailableReplicas": 1, "conditions": [
                          _condition("Progressing", "False", "ProgressDeadlineExceeded",
                                     f'ReplicaSet "{name}" has timed out progressing.')]}
        else:  # hang: observed, never progressing further
            status = {"replicas": old_replicas, "updatedReplicas": 0, "availableReplicas": old_replicas,
                      "conditions": [_condition("Progressing", "True", "ReplicaSetUpdated",
                                                f'ReplicaSet "{name}" is progressing.')]}
        server.store("replicasets", current)
        self._clean_up(deployment, server.owned("replicasets", namespace, meta["uid"]), name)
        meta.setdefault("annotations", {})[REVISION] = current["metadata"]["annotations"][REVISION]
        deployment["status"] = {"observedGeneration": meta["generation"], **status}
        server.store("deployments", deployment)

    def _clean_up(self, deployment: dict[str, Any], owned: list[dict[str, Any]], current: str) -> None:
        limit = deployment["spec"].get("revisionHistoryLimit", 10)
        old = sorted((rs for rs in owned if rs["metadata"]["name"] != current and not rs["spec"].get("replicas")),
                     key=_revision)
        for rs in old[:max(len(old) - limit, 0)]:
            del self.server.objects[("replicasets", rs["metadata"]["namespace"], rs["metadata"]["name"])]

    def _history(self, plural: str, obj: dict[str, Any]) -> None:
        server, meta, spec = self.server, obj["metadata"], obj["spec"]
        namespace, template = meta["namespace"], spec["template"]
        owned = server.owned("controllerrevisions", namespace, meta["uid"])
        newest = max((r["revision"] for r in owned), default=0)
        match = next((r for r in owned
                      if {k: v for k, v in r["data"]["spec"]["template"].items() if k != "$patch"} == template), None)
        previous = max(owned, key=lambda r: r["revision"])["metadata"]["name"] if owned else None
        if match is None:
            digest = template_hash(template)
            labels = {**((template.get("metadata") or {}).get("labels") or {}), "controller-revision-hash": digest}
            match = {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {
                "name": f"{meta['name']}-{digest}", "namespace": namespace, "uid": f"cr-{digest}-{newest + 1}",
                "labels": labels, "ownerReferences": _owner(obj)},
                "data": {"spec": {"template": {**copy.deepcopy(template), "$patch": "replace"}}},
                "revision": newest + 1}
            server.store("controllerrevisions", match)
        elif match["revision"] < newest:
            match["revision"] = newest + 1
            server.store("controllerrevisions", match)
        update = match["metadata"]["name"]
        done = self._outcome(obj) == "complete"
        if plural == "statefulsets":
            replicas = spec.get("replicas", 1)
            obj["status"] = {"observedGeneration": meta["generation"], "replicas": replicas,
                             "readyReplicas": replicas, "availableReplicas": replicas,
                             "updatedReplicas": replicas if done else 0, "updateRevision": update,
                             "currentRevision": update if done else (previous or update)}
        else:
            obj["status"] = {"observedGeneration": meta["generation"], "desiredNumberScheduled": 1,
                             "currentNumberScheduled": 1, "numberReady": 1, "numberAvailable": 1 if done else 0,
                             "updatedNumberScheduled": 1 if done else 0}
        server.store(plural, obj)


def _condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastUpdateTime": now,
            "lastTransitionTime": now}
