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

As kubectl: a paused Deployment is refused before anything is patched (``resume=True`` patches
``spec.paused: false`` in the same request instead, as ``kubectl rollout resume`` would after); a
revision that is not retained is "unable to find specified revision N in history"; a template that
already matches the revision is skipped (``changed`` False), and the revision's annotations,
``kubernetes.io/change-cause`` among them, are restored with its template. What reconcile did is
written to its own annotation, ``reconcile/rollback`` (``ROLLBACK_CAUSE``), so the change-cause can
say what the restored revision was while the workload still says who restored it.
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
    ROLLBACK_CAUSE,
    as_reference,
    images,
    revision,
    set_image,
    template,
)
from reconcile.adapters.cluster.errors import ClusterError
from reconcile.adapters.cluster.kinds import CONTROLLER_REVISION, POD, REPLICA_SET, Resource, deployable
from reconcile.adapters.cluster.references import parse_image, parse_image_id
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
class RollbackFacts:
    """What a rollback checks before it patches anything: whether the workload is paused, how many
    old revisions it keeps (``spec.revisionHistoryLimit``; None: the API's default), the image its
    container is set to and, when that is a tag, the digests its running pods report for it
    (``status.containerStatuses[].imageID``)."""

    paused: bool
    history_limit: int | None
    image: str | None
    running: tuple[str, ...] = ()  # distinct digests the pods run the container as, when set by tag
    unread: str | None = None  # why the pods could not be read (then ``running`` is empty)


def rollback_facts(connection: Connection, namespace: str, kind: str, name: str, container: str,
                   page_size: int = DEFAULT_PAGE_SIZE) -> RollbackFacts:
    """One GET (and, for a container set by tag, one list of the workload's pods)."""
    resource = deployable(kind)
    obj = connection.get(resource, namespace, name)
    spec = obj.get("spec") or {}
    image = images(resource, obj).get(container)
    limit = spec.get("revisionHistoryLimit")
    facts = RollbackFacts(bool(spec.get("paused")), limit if isinstance(limit, int) else None, image)
    try:
        reference = parse_image(image) if image else None
    except ValueError:
        reference = None
    if reference is None or reference.digest is not None or kind not in ("Deployment", "StatefulSet", "DaemonSet"):
        return facts
    try:
        pods = connection.list(POD, namespace=namespace, page_size=page_size,
                               label_selector=_selector(connection.cluster, obj))
    except ClusterError as e:  # a hint only: the rollback goes on without it, and says why
        return RollbackFacts(facts.paused, facts.history_limit, image, (), str(e))
    running = set()
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or ():
            if status.get("name") != container or status.get("image") not in (image, None):
                continue
            ran = parse_image_id(status.get("imageID"))
            if ran is not None and (ran.registry, ran.repository) == (reference.registry, reference.repository):
                running.add(str(ran.digest))
    return RollbackFacts(facts.paused, facts.history_limit, image, tuple(sorted(running)))


def paused_message(namespace: str, name: str) -> str:
    return (f"deployment {namespace}/{name} is paused; resume it (kubectl rollout resume deployment/{name} "
            f"-n {namespace}) or pass --resume")


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
    resumed: bool = False  # a paused Deployment was resumed by the same patch
    change_cause: str | None = None  # the kubernetes.io/change-cause the workload has now


def rollback(connection: Connection, namespace: str, kind: str, name: str, *, to_revision: int | None = None,
             to_digest: str | None = None, container: str | None = None, cause: str | None = None,
             resume: bool = False, page_size: int = DEFAULT_PAGE_SIZE) -> RollbackResult:
    """Restore ``kind`` ``namespace/name``'s previous revision (or ``to_revision``), or set its
    container to ``to_digest`` (``sha256:...`` in the current repository, or a full reference).
    A paused Deployment is refused unless ``resume``, which unpauses it in the same patch."""
    resource = deployable(kind)
    if to_revision is not None and to_digest is not None:
        raise ValueError("roll back to a revision or to a digest, not both")
    if to_digest is not None:
        return _to_digest(connection, resource, namespace, name, to_digest, container, cause, resume, page_size)
    if kind == "Deployment":
        return _undo_deployment(connection, namespace, name, to_revision, cause, resume, page_size)
    if kind in ("StatefulSet", "DaemonSet"):
        return _undo_history(connection, resource, namespace, name, to_revision, page_size)
    raise ClusterError(connection.cluster, f"a {kind} keeps no revision history: roll {namespace}/{name} back "
                       "to a digest instead")


def _to_digest(connection: Connection, resource: Resource, namespace: str, name: str, to_digest: str,
               container: str | None, cause: str | None, resume: bool, page_size: int) -> RollbackResult:
    obj = connection.get(resource, namespace, name)
    paused = resource.kind == "Deployment" and bool((obj.get("spec") or {}).get("paused"))
    if paused and not resume:
        raise ClusterError(connection.cluster, paused_message(namespace, name))
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
    ours = cause or f"reconcile rollback to {reference.digest}"
    # As an undo restores its revision's annotations: the change-cause of the retained revision
    # that ran this digest, when there is one; else what reconcile did.
    restored = _cause_of(connection, resource, obj, container, reference.digest, page_size) or ours
    result = set_image(connection, resource, namespace, name, container, reference, cause=restored,
                       rollback_cause=ours, resume=paused)
    after = dict(before) | {container: result.after}
    reason = (f"container {container} set to {result.after}" if result.changed
              else f"container {container} already at {reference.digest}")
    if paused and result.changed:
        reason += "; resumed (spec.paused: false)"
    return RollbackResult(connection.cluster, namespace, resource.kind, name, result.changed, reason, before,
                          MappingProxyType(after), revision(obj), None, reference.digest,
                          resumed=paused and result.changed, change_cause=restored if result.changed else None)


def _cause_of(connection: Connection, resource: Resource, obj: dict[str, Any], container: str, digest: str | None,
              page_size: int) -> str | None:
    """The change-cause of the newest retained ReplicaSet whose container ran ``digest``."""
    if resource.kind != "Deployment" or digest is None:
        return None
    metadata = obj.get("metadata") or {}
    owned = _owned(connection.list(REPLICA_SET, namespace=metadata.get("namespace"), page_size=page_size,
                                   label_selector=_selector(connection.cluster, obj)), metadata.get("uid"))
    for rs in sorted(owned, key=lambda r: revision(r) or 0, reverse=True):
        try:
            ran = parse_image(images(REPLICA_SET, rs).get(container) or "").digest
        except ValueError:
            continue
        if ran == digest:
            found = ((rs.get("metadata") or {}).get("annotations") or {}).get(CHANGE_CAUSE)
            return str(found) if found else None
    return None


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


def _pick(cluster: str, what: str, by_number: dict[int, dict[str, Any]], wanted: int | None,
          history_limit: int | None = None) -> tuple[int, Any]:
    kept = ", ".join(map(str, sorted(by_number))) or "none"
    none_kept = " (revisionHistoryLimit: 0: the cluster keeps no earlier revision)" if history_limit == 0 else ""
    if wanted is None:
        # kubectl: the previous revision is the second highest (the highest is the current one).
        numbers = sorted(by_number)
        if len(numbers) < 2:
            raise ClusterError(cluster, f"no rollout history found for {what}{none_kept} (revisions: {kept})")
        wanted = numbers[-2]
    if wanted not in by_number:
        raise ClusterError(cluster, f"unable to find specified revision {wanted} in history of {what}{none_kept} "
                           f"(revisions: {kept})")
    return wanted, by_number[wanted]


def _without_hash(pod_template: dict[str, Any]) -> dict[str, Any]:
    restored = copy.deepcopy(pod_template)
    labels = (restored.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH, None)
    return restored


def _undo_deployment(connection: Connection, namespace: str, name: str, to_revision: int | None,
                     cause: str | None, resume: bool, page_size: int) -> RollbackResult:
    resource = deployable("Deployment")
    what = f"Deployment {namespace}/{name}"

    def attempt(_: int) -> RollbackResult:
        deployment = connection.get(resource, namespace, name)
        metadata, spec = deployment.get("metadata") or {}, deployment.get("spec") or {}
        paused = bool(spec.get("paused"))
        if paused and not resume:
            raise ClusterError(connection.cluster, paused_message(namespace, name))
        replica_sets = _owned(connection.list(REPLICA_SET, namespace=namespace, page_size=page_size,
                                              label_selector=_selector(connection.cluster, deployment)),
                              metadata.get("uid"))
        by_number = {number: rs for rs in replica_sets if (number := revision(rs)) is not None}
        limit = spec.get("revisionHistoryLimit")
        target, replica_set = _pick(connection.cluster, what, by_number, to_revision,
                                    limit if isinstance(limit, int) else None)
        restored = _without_hash(template(REPLICA_SET, replica_set))
        before, current = images(resource, deployment), revision(deployment)
        if restored == _without_hash(template(resource, deployment)):
            # kubectl: "skipped rollback (current template already matches revision N)"
            return RollbackResult(connection.cluster, namespace, "Deployment", name, False,
                                  f"skipped rollback (current template already matches revision {target})", before,
                                  before, current, target)
        annotations = {k: v for k, v in (metadata.get("annotations") or {}).items() if k in _SKIPPED_ANNOTATIONS}
        annotations |= {k: v for k, v in ((replica_set.get("metadata") or {}).get("annotations") or {}).items()
                        if k not in _SKIPPED_ANNOTATIONS}
        # The revision's change-cause comes back with its template, as kubectl's; reconcile's own
        # record of the rollback goes beside it (and stands in for a revision that had none).
        if cause:
            annotations[ROLLBACK_CAUSE] = cause
            annotations.setdefault(CHANGE_CAUSE, cause)
        else:
            annotations.pop(ROLLBACK_CAUSE, None)
        # JSON patch as kubectl's getDeploymentPatch ('add' also replaces, and works when no annotation
        # exists yet), plus the resourceVersion read as a precondition.
        body = [{"op": "replace", "path": "/spec/template", "value": restored},
                {"op": "add", "path": "/metadata/annotations", "value": annotations},
                {"op": "add", "path": "/metadata/resourceVersion", "value": metadata.get("resourceVersion")}]
        if paused:
            body.append({"op": "replace", "path": "/spec/paused", "value": False})
        updated = connection.patch(resource, namespace, name, body, JSON_PATCH)
        rs_name = (replica_set.get("metadata") or {}).get("name")
        return RollbackResult(connection.cluster, namespace, "Deployment", name, True,
                              f"restored revision {target}'s pod template (ReplicaSet {rs_name})"
                              + ("; resumed (spec.paused: false)" if paused else ""), before,
                              images(resource, updated), current, target, resumed=paused,
                              change_cause=annotations.get(CHANGE_CAUSE))

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
                                  f"skipped rollback (current template already matches revision {target})", before,
                                  before, current, target)
        patch.setdefault("metadata", {})["resourceVersion"] = metadata.get("resourceVersion")
        updated = connection.patch(resource, namespace, name, patch, STRATEGIC_MERGE_PATCH)
        cr_name = (controller_revision.get("metadata") or {}).get("name")
        return RollbackResult(connection.cluster, namespace, resource.kind, name, True,
                              f"restored revision {target}'s pod template (ControllerRevision {cr_name})", before,
                              images(resource, updated), current, target)

    return retry_conflicts(connection.cluster, what, attempt)
