"""Rollback as ``kubectl rollout undo`` does it (k8s.io/kubectl/pkg/polymorphichelpers/rollback.go),
or to a given digest.

- Deployment: the owned ReplicaSet with the wanted ``deployment.kubernetes.io/revision`` (by default
  the second highest, i.e. the previous one) gives back its pod template, minus the
  ``pod-template-hash`` label the controller added, and its annotations; the Deployment controller
  then reuses that ReplicaSet under a new revision number
  (https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#rolling-back-a-deployment).
- StatefulSet, DaemonSet: the owned ControllerRevision's ``data`` is a strategic-merge patch that
  restores its template.
- Any deployable kind, ``to_digest``: the container's image is set to that digest (a deploy).

Unlike kubectl, the restoring patch carries the resourceVersion that was read, so a template
changed concurrently is not silently overwritten: a 409 reads again and retries
(``reconcile.adapters.cluster.retry``).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from reconcile.adapters.cluster.connection import DEFAULT_PAGE_SIZE, JSON_PATCH, STRATEGIC_MERGE_PATCH, Connection
from reconcile.adapters.cluster.deploy import (
    CHANGE_CAUSE,
    REVISION,
    as_reference,
    images,
    revision,
    set_image,
    template,
)
from reconcile.adapters.cluster.errors import ClusterError
from reconcile.adapters.cluster.kinds import CONTROLLER_REVISION, REPLICA_SET, Resource, deployable
from reconcile.adapters.cluster.retry import retry_conflicts
from reconcile.observe.state import ImageReference

log = logging.getLogger(__name__)

POD_TEMPLATE_HASH = "pod-template-hash"
# Annotations a Deployment keeps for itself during an undo (kubectl's annotationsToSkip).
_SKIPPED_ANNOTATIONS = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
})


@dataclass(frozen=True)
class Revision:
    """One retained revision of a workload: its number and the container images of its template."""

    number: int
    images: Mapping[str, str]  # container -> image


def revision_history(connection: Connection, namespace: str, kind: str, name: str,
                     page_size: int = DEFAULT_PAGE_SIZE) -> list[Revision]:
    """The revisions ``kind`` ``namespace/name`` keeps (its ReplicaSets or ControllerRevisions), oldest
    first: what ``kubectl rollout history`` lists. A kind without history has none."""
    resource = deployable(kind)
    obj = connection.get(resource, namespace, name)
    uid = (obj.get("metadata") or {}).get("uid")
    selector = _selector(connection.cluster, obj)
    found: list[tuple[int, Mapping[str, str]]]
    if kind == "Deployment":
        owned = _owned(connection.list(REPLICA_SET, namespace=namespace, page_size=page_size,
                                       label_selector=selector), uid)
        found = [(number, images(REPLICA_SET, rs)) for rs in owned if (number := revision(rs)) is not None]
    elif kind in ("StatefulSet", "DaemonSet"):
        owned = _owned(connection.list(CONTROLLER_REVISION, namespace=namespace, page_size=page_size,
                                       label_selector=selector), uid)
        found = [(r["revision"], _controller_revision_images(r)) for r in owned if isinstance(r.get("revision"), int)]
    else:
        return []
    return [Revision(number, images_) for number, images_ in sorted(found, key=lambda pair: pair[0])]


def _controller_revision_images(controller_revision: dict[str, Any]) -> Mapping[str, str]:
    pod_spec = ((((controller_revision.get("data") or {}).get("spec") or {}).get("template") or {}).get("spec")
                or {})
    return MappingProxyType({c.get("name", ""): c.get("image", "") for key in ("initContainers", "containers")
                             for c in pod_spec.get(key) or ()})


@dataclass(frozen=True)
class RollbackResult:
    """What a rollback did: container images before and after, and the revisions involved."""

    cluster: str
    namespace: str
    kind: str
    name: str
    changed: bool
    reason: str
    before: Mapping[str, str]  # container -> image
    after: Mapping[str, str]
    from_revision: int | None = None  # the revision running before (Deployment, or ControllerRevision number)
    to_revision: int | None = None  # the revision whose template was restored
    to_digest: str | None = None


def rollback(connection: Connection, namespace: str, kind: str, name: str, *, to_revision: int | None = None,
             to_digest: str | None = None, container: str | None = None, cause: str | None = None,
             page_size: int = DEFAULT_PAGE_SIZE) -> RollbackResult:
    """Restore ``kind`` ``namespace/name``'s previous revision (or ``to_revision``), or set its
    container to ``to_digest`` (``sha256:...`` in the current repository, or a full reference)."""
    resource = deployable(kind)
    if to_revision is not None and to_digest is not None:
        raise ValueError("roll back to a revision or to a digest, not both")
    if to_digest is not None:
        return _to_digest(connection, resource, namespace, name, to_digest, container, cause)
    if kind == "Deployment":
        return _undo_deployment(connection, namespace, name, to_revision, cause, page_size)
    if kind in ("StatefulSet", "DaemonSet"):
        return _undo_history(connection, resource, namespace, name, to_revision, page_size)
    raise ClusterError(connection.cluster, f"a {kind} keeps no revision history: roll {namespace}/{name} back "
                       "to a digest instead")


def _to_digest(connection: Connection, resource: Resource, namespace: str, name: str, to_digest: str,
               container: str | None, cause: str | None) -> RollbackResult:
    obj = connection.get(resource, namespace, name)
    before = images(resource, obj)
    if container is None:
        names = [c.get("name") for c in resource.pod_spec(obj).get("containers") or ()]
        if len(names) != 1:
            raise ClusterError(connection.cluster, f"{resource.kind} {namespace}/{name} has {len(names)} containers: "
                               "name the one to roll back")
        container = str(names[0])
    current = before.get(container, "")
    if ":" in to_digest and "@" not in to_digest:
        # A bare digest stays in the repository the container runs from.
        base = as_reference(current)
        reference = ImageReference(base.registry, base.repository, None, to_digest)
    else:
        reference = as_reference(to_digest)
    result = set_image(connection, resource, namespace, name, container, reference,
                       cause=cause or f"reconcile rollback to {reference.digest}")
    after = dict(before) | {container: result.after}
    reason = (f"container {container} set to {result.after}" if result.changed
              else f"container {container} already at {reference.digest}")
    return RollbackResult(connection.cluster, namespace, resource.kind, name, result.changed, reason, before,
                          MappingProxyType(after), revision(obj), None, reference.digest)


def _selector(cluster: str, obj: dict[str, Any]) -> str:
    labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if not labels:
        # Owner references still pick the right objects; the selector only narrows the list.
        log.debug("cluster %s: no matchLabels; listing every object of the namespace", cluster)
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def _owned(objects: list[dict[str, Any]], uid: str | None) -> list[dict[str, Any]]:
    return [o for o in objects
            if any(ref.get("controller") and ref.get("uid") == uid
                   for ref in (o.get("metadata") or {}).get("ownerReferences") or ())]


def _pick(cluster: str, what: str, by_number: dict[int, dict[str, Any]], wanted: int | None) -> tuple[int, Any]:
    if wanted is None:
        # kubectl: the previous revision is the second highest (the highest is the current one).
        numbers = sorted(by_number)
        if len(numbers) < 2:
            raise ClusterError(cluster, f"{what} has no previous revision to roll back to")
        wanted = numbers[-2]
    if wanted not in by_number:
        raise ClusterError(cluster, f"{what} has no revision {wanted} (revisions: "
                           f"{', '.join(map(str, sorted(by_number))) or 'none'})")
    return wanted, by_number[wanted]


def _without_hash(pod_template: dict[str, Any]) -> dict[str, Any]:
    restored = copy.deepcopy(pod_template)
    labels = (restored.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH, None)
    return restored


def _undo_deployment(connection: Connection, namespace: str, name: str, to_revision: int | None,
                     cause: str | None, page_size: int) -> RollbackResult:
    resource = deployable("Deployment")
    what = f"Deployment {namespace}/{name}"

    def attempt(_: int) -> RollbackResult:
        deployment = connection.get(resource, namespace, name)
        metadata = deployment.get("metadata") or {}
        if (deployment.get("spec") or {}).get("paused"):
            raise ClusterError(connection.cluster, f"{what} is paused: resume it before rolling back")
        replica_sets = _owned(connection.list(REPLICA_SET, namespace=namespace, page_size=page_size,
                                              label_selector=_selector(connection.cluster, deployment)),
                              metadata.get("uid"))
        by_number = {number: rs for rs in replica_sets if (number := revision(rs)) is not None}
        target, replica_set = _pick(connection.cluster, what, by_number, to_revision)
        restored = _without_hash(template(REPLICA_SET, replica_set))
        before, current = images(resource, deployment), revision(deployment)
        if restored == _without_hash(template(resource, deployment)):
            return RollbackResult(connection.cluster, namespace, "Deployment", name, False,
                                  f"already at revision {target}'s template", before, before, current, target)
        annotations = {k: v for k, v in (metadata.get("annotations") or {}).items() if k in _SKIPPED_ANNOTATIONS}
        annotations |= {k: v for k, v in ((replica_set.get("metadata") or {}).get("annotations") or {}).items()
                        if k not in _SKIPPED_ANNOTATIONS}
        if cause:
            annotations[CHANGE_CAUSE] = cause
        # JSON patch as kubectl's getDeploymentPatch ('add' also replaces, and works when no annotation
        # exists yet), plus the resourceVersion read as a precondition.
        body = [{"op": "replace", "path": "/spec/template", "value": restored},
                {"op": "add", "path": "/metadata/annotations", "value": annotations},
                {"op": "add", "path": "/metadata/resourceVersion", "value": metadata.get("resourceVersion")}]
        updated = connection.patch(resource, namespace, name, body, JSON_PATCH)
        rs_name = (replica_set.get("metadata") or {}).get("name")
        return RollbackResult(connection.cluster, namespace, "Deployment", name, True,
                              f"restored revision {target}'s pod template (ReplicaSet {rs_name})", before,
                              images(resource, updated), current, target)

    return retry_conflicts(connection.cluster, what, attempt)


def _undo_history(connection: Connection, resource: Resource, namespace: str, name: str, to_revision: int | None,
                  page_size: int) -> RollbackResult:
    what = f"{resource.kind} {namespace}/{name}"

    def attempt(_: int) -> RollbackResult:
        obj = connection.get(resource, namespace, name)
        metadata = obj.get("metadata") or {}
        history = _owned(connection.list(CONTROLLER_REVISION, namespace=namespace, page_size=page_size,
                                         label_selector=_selector(connection.cluster, obj)), metadata.get("uid"))
        by_number = {r["revision"]: r for r in history if isinstance(r.get("revision"), int)}
        target, controller_revision = _pick(connection.cluster, what, by_number, to_revision)
        patch = copy.deepcopy(controller_revision.get("data") or {})
        restored = {k: v for k, v in ((patch.get("spec") or {}).get("template") or {}).items() if k != "$patch"}
        before = images(resource, obj)
        current = max(by_number)
        if restored == template(resource, obj):
            return RollbackResult(connection.cluster, namespace, resource.kind, name, False,
                                  f"already at revision {target}'s template", before, before, current, target)
        patch.setdefault("metadata", {})["resourceVersion"] = metadata.get("resourceVersion")
        updated = connection.patch(resource, namespace, name, patch, STRATEGIC_MERGE_PATCH)
        cr_name = (controller_revision.get("metadata") or {}).get("name")
        return RollbackResult(connection.cluster, namespace, resource.kind, name, True,
                              f"restored revision {target}'s pod template (ControllerRevision {cr_name})", before,
                              images(resource, updated), current, target)

    return retry_conflicts(connection.cluster, what, attempt)
