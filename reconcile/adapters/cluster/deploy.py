"""Deploy by digest: a strategic-merge patch of one container of a workload's pod template.

Strategic merge merges the ``containers`` list by ``name``, so the patch names only the target
container and every other container is left as it is
(https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/).
The patch carries the ``resourceVersion`` that was read: the API server answers 409 if the object
changed in between (https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions),
and the deploy reads again and retries (``reconcile.adapters.cluster.retry``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import Any

from reconcile.adapters.cluster.connection import STRATEGIC_MERGE_PATCH, Connection
from reconcile.adapters.cluster.errors import ClusterError
from reconcile.adapters.cluster.kinds import Resource, deployable
from reconcile.adapters.cluster.references import parse_image, pinned
from reconcile.adapters.cluster.retry import retry_conflicts
from reconcile.observe.state import ImageReference
from reconcile.policy import model

CHANGE_CAUSE = "kubernetes.io/change-cause"
REVISION = "deployment.kubernetes.io/revision"
# What reconcile's last rollback of the workload did (a rollback restores its revision's
# change-cause, so this says who restored it); a deploy removes it.
ROLLBACK_CAUSE = "reconcile/rollback"


@dataclass(frozen=True)
class DeployResult:
    """What a deploy did. ``generation`` is the workload's spec generation after the patch (what
    a rollout watch waits to see observed); ``revision_before`` is the Deployment revision that
    ran before it (what an automatic rollback restores). Deployment revision numbers for the new
    template are assigned by the controller, later: :class:`RolloutResult` reports them."""

    cluster: str
    namespace: str
    kind: str
    name: str
    container: str
    before: str  # the container's image before
    after: str  # and after
    changed: bool
    generation: int | None
    revision_before: int | None
    cause: str
    attempts: int


def as_reference(image: str | ImageReference) -> ImageReference:
    return image if isinstance(image, ImageReference) else parse_image(image)


def deploy(connection: Connection, namespace: str, workload: model.Workload, image: str | ImageReference, *,
           cause: str) -> DeployResult:
    """Set ``workload``'s ``container`` to ``image`` pinned by digest; a no-op when already there."""
    resource = deployable(workload.kind)
    reference = as_reference(image)
    return set_image(connection, resource, namespace, workload.name, workload.container, reference, cause=cause)


def set_image(connection: Connection, resource: Resource, namespace: str, name: str, container: str,
              reference: ImageReference, *, cause: str, rollback_cause: str | None = None,
              resume: bool = False) -> DeployResult:
    """``rollback_cause``: set ``reconcile/rollback`` to it (a deploy, None, removes it); ``resume``:
    ``spec.paused: false`` in the same patch."""
    target = pinned(reference)

    def attempt(number: int) -> DeployResult:
        obj = connection.get(resource, namespace, name)
        list_name, current = find_container(connection.cluster, resource, obj, container)
        before = current.get("image") or ""
        metadata = obj.get("metadata") or {}
        result = partial(DeployResult, cluster=connection.cluster, namespace=namespace, kind=resource.kind, name=name,
                         container=container, before=before, revision_before=revision(obj), cause=cause,
                         attempts=number)
        if at_digest(before, reference):
            return result(after=before, changed=False, generation=metadata.get("generation"))
        body = template_patch(resource, {list_name: [{"name": container, "image": target}]})
        annotations: dict[str, str | None] = {CHANGE_CAUSE: cause}
        if rollback_cause is not None or ROLLBACK_CAUSE in (metadata.get("annotations") or {}):
            annotations[ROLLBACK_CAUSE] = rollback_cause  # null: the strategic merge removes it
        body["metadata"] = {"resourceVersion": metadata.get("resourceVersion"), "annotations": annotations}
        if resume:
            body.setdefault("spec", {})["paused"] = False
        updated = connection.patch(resource, namespace, name, body, STRATEGIC_MERGE_PATCH)
        _, after = find_container(connection.cluster, resource, updated, container)
        return result(after=after.get("image") or "", changed=True,
                      generation=(updated.get("metadata") or {}).get("generation"))

    return retry_conflicts(connection.cluster, f"{resource.kind} {namespace}/{name}", attempt)


def at_digest(image: str, reference: ImageReference) -> bool:
    """Whether ``image`` already names ``reference``'s repository at its digest (tag or not)."""
    try:
        current = parse_image(image)
    except ValueError:
        return False
    same = (current.registry, current.repository, current.digest)
    return same == (reference.registry, reference.repository, reference.digest)


def template_patch(resource: Resource, pod_spec: dict[str, Any]) -> dict[str, Any]:
    """``{"spec": {"template": {"spec": pod_spec}}}``, along ``resource``'s template path."""
    body: dict[str, Any] = {"spec": pod_spec}
    for key in reversed(resource.template or ()):
        body = {key: body}
    return body


def template(resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    node: Any = obj
    for key in resource.template or ():
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def find_container(cluster: str, resource: Resource, obj: dict[str, Any],
                   name: str) -> tuple[str, dict[str, Any]]:
    """``(list name, container)`` of container ``name`` in the pod template (init containers too)."""
    spec = resource.pod_spec(obj)
    for list_name in ("containers", "initContainers"):
        for container in spec.get(list_name) or ():
            if container.get("name") == name:
                return list_name, container
    meta = obj.get("metadata") or {}
    names = [c.get("name") for c in spec.get("containers") or ()]
    raise ClusterError(cluster, f"{resource.kind} {meta.get('namespace')}/{meta.get('name')} has no container "
                       f"{name!r} (containers: {', '.join(map(str, names)) or 'none'})")


def images(resource: Resource, obj: dict[str, Any]) -> MappingProxyType[str, str]:
    """Container name -> image, for a result's before/after."""
    spec = resource.pod_spec(obj)
    return MappingProxyType({c.get("name", ""): c.get("image", "") for key in ("initContainers", "containers")
                             for c in spec.get(key) or ()})


def revision(obj: dict[str, Any]) -> int | None:
    """A Deployment's (or ReplicaSet's) ``deployment.kubernetes.io/revision``."""
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
