"""Rollout watch: poll a workload until its rollout completes, fails, or the policy's timeout ends.

The checks are ``kubectl rollout status``'s (k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go):
the controller must have observed the latest spec generation, then for a Deployment the updated
and available replicas must reach the desired count, and a ``Progressing`` condition with reason
``ProgressDeadlineExceeded`` is a failure
(https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#failed-deployment).
StatefulSets and DaemonSets have no progress deadline: only the timeout ends their wait.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from reconcile.adapters.cluster.connection import Connection
from reconcile.adapters.cluster.deploy import revision
from reconcile.adapters.cluster.kinds import deployable

RolloutStatus = Literal["complete", "failed", "timeout"]
POLL_INTERVAL = 2.0  # seconds between two reads of a workload whose rollout is watched, at most
FIRST_POLL = 0.25  # the first wait, doubled each read up to the interval: a quick rollout is seen quickly


@dataclass(frozen=True)
class RolloutResult:
    cluster: str
    namespace: str
    kind: str
    name: str
    status: RolloutStatus
    reason: str
    revision: int | None  # a Deployment's revision when the watch ended
    generation: int | None
    observed_generation: int | None
    elapsed: float  # seconds

    @property
    def ok(self) -> bool:
        return self.status == "complete"


def wait_for_rollout(connection: Connection, namespace: str, kind: str, name: str, timeout: float | timedelta, *,
                     poll_interval: float = POLL_INTERVAL) -> RolloutResult:
    """Poll ``kind`` ``namespace/name`` until complete or failed; ``timeout`` bounds the wait. The
    waits between reads grow from ``FIRST_POLL`` to ``poll_interval``."""
    resource = deployable(kind)
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
    start = time.monotonic()
    deadline = start + seconds
    wait = min(FIRST_POLL, poll_interval)
    while True:
        # No request may outlive the deadline by more than a second (the API timeout caps it too).
        obj = connection.get(resource, namespace, name, timeout=max(deadline - time.monotonic(), 1.0))
        status, reason = assess(kind, obj)
        now = time.monotonic()
        if status is None and now >= deadline:
            status, reason = "timeout", f"not complete after {seconds:g}s: {reason}"
        if status is not None:
            metadata, observed = obj.get("metadata") or {}, (obj.get("status") or {}).get("observedGeneration")
            return RolloutResult(connection.cluster, namespace, kind, name, status, reason,
                                 revision(obj) if kind == "Deployment" else None, metadata.get("generation"),
                                 observed, round(now - start, 3))
        time.sleep(min(wait, max(deadline - now, 0.0)))
        wait = min(wait * 2, poll_interval)


def assess(kind: str, obj: dict[str, Any]) -> tuple[RolloutStatus | None, str]:
    """``(status, reason)``; status None while the rollout is still in progress."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if kind == "CronJob":
        return "complete", "a CronJob has no rollout: its next Job uses the new template"
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    strategy = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
    if kind in ("StatefulSet", "DaemonSet") and strategy != "RollingUpdate":
        return "complete", f"{strategy} update strategy: pods take the new template only when deleted"
    if observed is None or (generation is not None and observed < generation):
        return None, f"waiting for the controller to observe generation {generation} (observed {observed})"
    if kind == "Deployment":
        return _deployment(spec, status)
    if kind == "StatefulSet":
        return _stateful_set(spec, status)
    return _daemon_set(status)


def _deployment(spec: dict[str, Any], status: dict[str, Any]) -> tuple[RolloutStatus | None, str]:
    progressing: dict[str, Any] = next(
        (c for c in status.get("conditions") or () if c.get("type") == "Progressing"), {})
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return "failed", f"ProgressDeadlineExceeded: {progressing.get('message') or 'no progress'}"
    if spec.get("paused"):
        return "failed", "the Deployment is paused (spec.paused): it does not roll out until resumed"
    desired = spec.get("replicas", 1)
    updated, total = status.get("updatedReplicas", 0), status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    if updated < desired:
        return None, f"{updated} of {desired} new replicas updated"
    if total > updated:
        return None, f"{total - updated} old replicas pending termination"
    if available < updated:
        return None, f"{available} of {updated} updated replicas available"
    return "complete", f"{updated} of {desired} replicas updated and available ({progressing.get('reason') or 'ok'})"


def _stateful_set(spec: dict[str, Any], status: dict[str, Any]) -> tuple[RolloutStatus | None, str]:
    desired = spec.get("replicas", 1)
    ready, updated = status.get("readyReplicas", 0), status.get("updatedReplicas", 0)
    if ready < desired:
        return None, f"{ready} of {desired} pods ready"
    partition = ((spec.get("updateStrategy") or {}).get("rollingUpdate") or {}).get("partition") or 0
    if partition:
        if updated < desired - partition:
            return None, f"{updated} of {desired - partition} pods above partition {partition} updated"
        return "complete", f"partitioned rollout complete: {updated} pods updated above partition {partition}"
    if status.get("updateRevision") != status.get("currentRevision"):
        return None, f"{updated} of {desired} pods at revision {status.get('updateRevision')}"
    return "complete", f"{desired} pods at revision {status.get('currentRevision')}"


def _daemon_set(status: dict[str, Any]) -> tuple[RolloutStatus | None, str]:
    desired = status.get("desiredNumberScheduled", 0)
    updated, available = status.get("updatedNumberScheduled", 0), status.get("numberAvailable", 0)
    if updated < desired:
        return None, f"{updated} of {desired} updated pods scheduled"
    if available < desired:
        return None, f"{available} of {desired} updated pods available"
    return "complete", f"{desired} pods updated and available"
