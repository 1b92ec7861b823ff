"""Every image a cluster uses: one paginated, cluster-wide list per kind, namespaces filtered here.

Running: Pods (with what each tag resolved to), Deployments, StatefulSets, DaemonSets, Jobs,
CronJobs, ReplicaSets with replicas and the newest ControllerRevision of each owner. Kept for
rollback: ReplicaSets scaled to 0 (what ``kubectl rollout undo`` restores) and older
ControllerRevisions (a StatefulSet's or DaemonSet's history).
"""

from __future__ import annotations

import fnmatch
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from types import MappingProxyType
from typing import Any

from reconcile.adapters.cluster.connection import Connection
from reconcile.adapters.cluster.kinds import (
    CONTAINER_LISTS,
    CONTROLLER_REVISION,
    DISCOVERED,
    POD,
    REPLICA_SET,
    Resource,
)
from reconcile.adapters.cluster.references import parse_image, running_references
from reconcile.observe.state import ClusterState, ImageReference, Usage, UsageState
from reconcile.policy import model

log = logging.getLogger(__name__)

_STATUS_LISTS = {"containers": "containerStatuses", "initContainers": "initContainerStatuses",
                 "ephemeralContainers": "ephemeralContainerStatuses"}


def namespace_filter(include: tuple[str, ...], exclude: tuple[str, ...]) -> Callable[[str], bool]:
    """``namespace -> bool``: in an ``include`` glob (all when empty) and in no ``exclude`` glob."""

    def keep(namespace: str) -> bool:
        if include and not any(fnmatch.fnmatchcase(namespace, glob) for glob in include):
            return False
        return not any(fnmatch.fnmatchcase(namespace, glob) for glob in exclude)

    return keep


def discover(connection: Connection, cluster: model.Cluster, *, page_size: int) -> ClusterState:
    """The cluster's images in use; a :class:`ClusterError` if any kind cannot be listed (callers
    protecting images must fail closed rather than see a partial answer)."""
    listed = _list_all(connection, cluster.name, page_size)
    keep = namespace_filter(cluster.include_namespaces, cluster.exclude_namespaces)
    newest = _newest_revisions(listed[CONTROLLER_REVISION])
    usages: dict[ImageReference, set[Usage]] = defaultdict(set)
    for resource, objects in listed.items():
        for obj in objects:
            metadata = obj.get("metadata") or {}
            namespace = metadata.get("namespace") or ""
            if not keep(namespace):
                continue
            state = _state(resource, obj, newest)
            for reference, container in _references(resource, obj):
                usages[reference].add(Usage(cluster.name, namespace, resource.kind, metadata.get("name") or "",
                                            container, state))
    images = {ref: tuple(sorted(usages[ref], key=_usage_key)) for ref in sorted(usages, key=str)}
    return ClusterState(cluster=cluster.name, images=MappingProxyType(images))


def _list_all(connection: Connection, name: str, page_size: int) -> dict[Resource, list[dict[str, Any]]]:
    # One list per kind, all at once: an unreachable cluster then fails within one request timeout.
    with ThreadPoolExecutor(max_workers=len(DISCOVERED), thread_name_prefix=f"list-{name}") as pool:
        futures = {pool.submit(connection.list, resource, page_size=page_size): resource for resource in DISCOVERED}
        try:
            for future in as_completed(futures):
                future.result()  # the first failure is raised as soon as it happens
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return {resource: future.result() for future, resource in futures.items()}


def _usage_key(usage: Usage) -> tuple[str, ...]:
    return usage.namespace, usage.kind, usage.name, usage.container, usage.state


def _state(resource: Resource, obj: dict[str, Any], newest: dict[str, int]) -> UsageState:
    if resource is REPLICA_SET:
        # A Deployment scales its old ReplicaSets to 0 and keeps them as its rollback history.
        replicas = (obj.get("spec") or {}).get("replicas", 1)
        return "rollback" if replicas == 0 else "running"
    if resource is CONTROLLER_REVISION:
        owner = _controller_uid(obj)
        current = owner is not None and obj.get("revision") == newest.get(owner)
        return "running" if current else "rollback"
    return "running"


def _controller_uid(obj: dict[str, Any]) -> str | None:
    for owner in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if owner.get("controller"):
            uid: str | None = owner.get("uid")
            return uid
    return None


def _newest_revisions(revisions: list[dict[str, Any]]) -> dict[str, int]:
    """Owner UID -> its highest ControllerRevision number (the template it runs or rolls to)."""
    newest: dict[str, int] = {}
    for revision in revisions:
        owner, number = _controller_uid(revision), revision.get("revision")
        if owner is not None and isinstance(number, int):
            newest[owner] = max(newest.get(owner, number), number)
    return newest


def _references(resource: Resource, obj: dict[str, Any]) -> Iterator[tuple[ImageReference, str]]:
    spec = resource.pod_spec(obj)
    statuses = (obj.get("status") or {}) if resource is POD else {}
    for list_name in CONTAINER_LISTS:
        image_ids = {s.get("name"): s.get("imageID") for s in statuses.get(_STATUS_LISTS[list_name]) or ()}
        for container in spec.get(list_name) or ():
            name, image = container.get("name") or "", container.get("image")
            if not isinstance(image, str):
                continue
            try:
                references = running_references(image, image_ids.get(name)) if resource is POD else (
                    parse_image(image),)
            except ValueError as exc:
                # Nothing in a registry matches an unparsable reference; the runtime cannot pull it either.
                meta = obj.get("metadata") or {}
                log.warning("%s %s/%s container %s: %s", resource.kind, meta.get("namespace"), meta.get("name"),
                            name, exc)
                continue
            for reference in references:
                yield reference, name
