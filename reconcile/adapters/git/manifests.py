"""A cluster known by its GitOps manifests: every image the manifests under a path reference
(pod templates of every workload kind, and kustomization ``images:`` overrides) counts as
running. Read at a ref of the repository, like the repo-of-record, never from a working tree."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git

from reconcile.adapters.cluster.references import parse_image
from reconcile.observe.state import ClusterState, ImageReference, Usage
from reconcile.policy.documents import parse_documents
from reconcile.policy.model import Cluster, ManifestsSource
from reconcile.policy.source import Snapshot, SourceError, is_remote, read_snapshot

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
# kind -> where its pod spec lives
POD_SPECS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",), "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    **{kind: ("spec", "template", "spec")
       for kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job")},
}


def read_manifests_state(cluster: Cluster, read: Callable[[str, str | None], Snapshot] = read_snapshot
                         ) -> ClusterState:
    """Images in use according to ``cluster.manifests``; SourceError when they cannot be read or
    parsed (a protecting source that cannot be read must block pruning, not be half-read).
    ``read`` reads a repository at a ref (a run passes one that reads each repository once)."""
    source = cluster.manifests
    assert source is not None
    snapshot = read(*_location(source))
    images: dict[ImageReference, list[Usage]] = {}
    read_any = False
    for policy_file in snapshot.files:
        if source.path.strip("/") and is_remote(source.repo) and not _below(policy_file.path, source.path):
            continue
        read_any = True
        if policy_file.content is None:
            raise SourceError(f"{policy_file.path}: {policy_file.problem}")
        documents, problems = parse_documents(policy_file.path, policy_file.content)
        if problems:
            raise SourceError(str(problems[0]))
        kustomization = posixpath.basename(policy_file.path) in KUSTOMIZATION_FILES
        for document in documents:
            if isinstance(document.body, dict):
                body = document.body
                if kustomization and "kind" not in body:  # kind is optional in a kustomization file
                    body = {**body, "kind": "Kustomization"}
                for reference, usage in images_of(cluster.name, body):
                    images.setdefault(reference, []).append(usage)
    if not read_any:  # a mistyped path (or one a symlink stands for) must not read as "nothing runs here"
        raise SourceError(f"{snapshot.source}: no YAML manifests under {source.path or '/'} at "
                          f"{source.branch or 'HEAD'}: the path does not exist or holds none")
    return ClusterState(cluster.name, {ref: tuple(usages) for ref, usages in sorted(images.items(), key=str)})


def _location(source: ManifestsSource) -> tuple[str, str | None]:
    if is_remote(source.repo):
        return source.repo, source.branch
    directory = str(Path(source.repo) / source.path)
    try:
        git.Repo(directory, search_parent_directories=True).close()
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return directory, None  # a plain directory has no branches
    return directory, source.branch


def _below(path: str, directory: str) -> bool:
    directory = posixpath.normpath(directory.strip("/"))
    return directory in ("", ".") or path == directory or path.startswith(directory + "/")


@dataclass(frozen=True)
class ImageField:
    """One image a manifest document names, as written, and where: ``kind`` and ``name`` are the
    document's, ``container`` the container (or the Kustomization ``images`` entry)."""

    text: str
    namespace: str
    kind: str
    name: str
    container: str


def image_fields(body: dict[str, Any]) -> list[ImageField]:
    """Every image ``body`` (one manifest document) names: the containers and init containers of
    any workload kind's pod spec, and a Kustomization's ``images`` overrides. Unparsed."""
    kind = body.get("kind")
    metadata = body.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    namespace = str(metadata.get("namespace") or "default")
    name = str(metadata.get("name") or "?")
    found: list[ImageField] = []
    if kind == "Kustomization":  # images: [{name, newName, newTag, digest}] rewrite what kustomize builds
        for entry in body.get("images") or []:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                found.append(ImageField(kustomize_image(entry), namespace, "Kustomization", name, str(entry["name"])))
        return found
    spec: Any = body
    for key in POD_SPECS.get(str(kind), ()):
        spec = spec.get(key) if isinstance(spec, dict) else None
    if not isinstance(spec, dict) or kind not in POD_SPECS:
        return found
    for field in ("initContainers", "containers"):
        for container in spec.get(field) or []:
            if isinstance(container, dict) and isinstance(container.get("image"), str):
                found.append(ImageField(container["image"], namespace, str(kind), name,
                                        str(container.get("name") or "?")))
    return found


def kustomize_image(entry: dict[str, Any]) -> str:
    """The image a kustomization ``images:`` entry makes kustomize write: ``newName`` (else
    ``name``), then ``:newTag`` and ``@digest`` when set."""
    text = str(entry.get("newName") or entry["name"])
    text += f":{entry['newTag']}" if entry.get("newTag") else ""
    text += f"@{entry['digest']}" if entry.get("digest") else ""
    return text


def images_of(cluster: str, body: dict[str, Any]) -> list[tuple[ImageReference, Usage]]:
    """The images ``body`` names, parsed, each a ``running`` usage in ``cluster``; SourceError for
    an image that is not a valid reference (a manifest the cluster could not run)."""
    return [_reference(cluster, field) for field in image_fields(body)]


def _reference(cluster: str, field: ImageField) -> tuple[ImageReference, Usage]:
    try:
        reference = parse_image(field.text)
    except ValueError:
        raise SourceError(f"{field.kind} {field.namespace}/{field.name}: container {field.container}: "
                          f"invalid image {field.text!r}") from None
    return reference, Usage(cluster, field.namespace, field.kind, field.name, field.container, "running")
