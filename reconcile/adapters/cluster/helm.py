"""Every image in the retained Helm release history of a cluster (``protect.helmReleases``).

Helm 3 stores each revision of a release in a Secret of type ``helm.sh/release.v1`` in the
release's namespace (``sh.helm.release.v1.NAME.vVERSION``, labels ``owner=helm``, ``name``,
``version``, ``status``). Its ``data.release`` is, from the outside in: the API's base64 of any
``[]byte``, Helm's own base64, gzip (Helm 3 always compresses; releases stored before compression
are plain JSON and read too), and the release as JSON, whose ``manifest`` (and each hook's) is the
multi-document YAML Helm applied. See ``encodeRelease``/``decodeRelease`` in Helm's
``pkg/storage/driver/util.go`` and ``newSecretsObject`` in ``pkg/storage/driver/secrets.go``.

The latest revision of a release is what runs (``running``); older ones are what ``helm rollback``
restores (``rollback``). A release that cannot be decoded is an error naming its Secret: this is a
protecting source, and an image it could not read would be an image retention could delete.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from reconcile.adapters.cluster.connection import Connection
from reconcile.adapters.cluster.discovery import namespace_filter
from reconcile.adapters.cluster.errors import HELM_RBAC_FILE, HELM_ROLE, RBAC_FILE, ClusterError, ForbiddenError
from reconcile.adapters.cluster.kinds import SECRET
from reconcile.adapters.cluster.references import parse_image

# A module, not its names: manifests imports this package's references (a cycle at import time).
from reconcile.adapters.git import manifests
from reconcile.observe.state import ClusterState, ImageReference, Usage, UsageState
from reconcile.policy import model
from reconcile.policy.documents import MAX_FILE_BYTES, parse_documents

log = logging.getLogger(__name__)

RELEASE_TYPE = "helm.sh/release.v1"
# Server-side: only Helm's Secrets are sent, never the values of any other Secret.
FIELD_SELECTOR = f"type={RELEASE_TYPE}"
# A release Secret holds up to 1 MiB; a page of them is held in memory while it is decoded.
PAGE_SIZE = 50
# A Secret's 1 MiB of gzip could inflate a thousandfold; real releases are a few MiB at most.
MAX_RELEASE_BYTES = 64 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b\x08"  # Helm's magicGzip: the gzip header with the deflate method
# A document marker: '---' at the start of a line, then a space, a line break or the end.
_DOCUMENT_MARKER = re.compile(r"^---(?=[ \t\r\n]|\Z)", re.MULTILINE)
_TOP_LEVEL_KIND = re.compile(r"^kind:[ \t]*[\"']?([A-Za-z0-9]+)", re.MULTILINE)


@dataclass(frozen=True)
class _Revision:
    namespace: str
    release: str
    version: int
    status: str  # info.status: deployed, superseded, failed, uninstalled, pending-…
    images: tuple[tuple[ImageReference, str], ...]  # (reference, where in the release)


def release_images(connection: Connection, cluster: model.Cluster, *, page_size: int) -> ClusterState:
    """The images of every retained revision of every Helm release in the namespaces ``cluster``
    selects; a :class:`ClusterError` if any release Secret cannot be listed or decoded."""
    keep = namespace_filter(cluster.include_namespaces, cluster.exclude_namespaces)
    documents = _ManifestImages()
    revisions: dict[tuple[str, str], _Revision] = {}  # by Secret, so a restarted list cannot count one twice
    for secret in _release_secrets(connection, cluster, keep, min(page_size, PAGE_SIZE)):
        metadata = secret.get("metadata") or {}
        namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name") or "?")
        if secret.get("type") != RELEASE_TYPE or not keep(namespace):
            continue  # the server filters both already; an older or partial implementation might not
        revisions[(namespace, name)] = _revision(cluster.name, namespace, name, secret, documents)
    latest: dict[tuple[str, str], int] = {}
    for revision in revisions.values():
        key = (revision.namespace, revision.release)
        latest[key] = max(latest.get(key, revision.version), revision.version)
    usages: dict[ImageReference, set[Usage]] = {}
    for revision in revisions.values():
        # Helm runs its 'deployed' revision; a newer one (a failed or pending upgrade) may be
        # partly applied; an uninstalled release (kept with --keep-history) runs nothing.
        newest = revision.version == latest[(revision.namespace, revision.release)]
        running = revision.status == "deployed" or (newest and revision.status != "uninstalled")
        state: UsageState = "running" if running else "rollback"
        for reference, where in revision.images:
            usages.setdefault(reference, set()).add(Usage(
                cluster.name, revision.namespace, "HelmRelease", f"{revision.release}.v{revision.version}", where,
                state))
    images = {ref: tuple(sorted(usages[ref], key=_usage_key)) for ref in sorted(usages, key=str)}
    return ClusterState(cluster=cluster.name, images=MappingProxyType(images))


def _usage_key(usage: Usage) -> tuple[str, ...]:
    return usage.namespace, usage.name, usage.container, usage.state


def _release_secrets(connection: Connection, cluster: model.Cluster, keep: Callable[[str], bool],
                     page_size: int) -> Iterator[dict[str, Any]]:
    """The release Secrets, one at a time. When the Cluster names its namespaces literally, each is
    listed on its own, so a Role in each of them is enough; otherwise one cluster-wide list."""
    include = cluster.include_namespaces
    literal = bool(include) and not any(set(glob) & set("*?[") for glob in include)
    scopes: Sequence[str | None] = sorted({n for n in include if keep(n)}) if literal else [None]
    for namespace in scopes:
        try:
            yield from connection.each(SECRET, page_size=page_size, namespace=namespace,
                                       field_selector=FIELD_SELECTOR)
        except ForbiddenError as e:
            rule = f"the OPT-IN ClusterRole {HELM_ROLE} ({HELM_RBAC_FILE})"
            if namespace is not None:
                rule += f" or a Role {HELM_ROLE} in namespace {namespace}"
            raise ForbiddenError(
                cluster.name, verb="list", group="", resource="secrets", namespace=namespace,
                hint=f"protect.helmReleases reads Helm release Secrets, which {RBAC_FILE} does not grant: "
                     f"bind {rule}; see deploy/RBAC.md") from e


def _revision(cluster: str, namespace: str, name: str, secret: dict[str, Any],
              documents: _ManifestImages) -> _Revision:
    where = f"Helm release Secret {namespace}/{name}"
    try:
        release = decode_release((secret.get("data") or {}).get("release"))
        release_name, version = release.get("name"), release.get("version")
        if not isinstance(release_name, str) or not release_name:
            raise ValueError("the release has no name")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError(f"the release version is {version!r}, not a positive number")
        texts = [("", release.get("manifest") or "")]
        texts += [(f"hook {hook.get('name') or '?'}: ", hook.get("manifest") or "")
                  for hook in release.get("hooks") or () if isinstance(hook, dict)]
        images: list[tuple[ImageReference, str]] = []
        for prefix, text in texts:
            if not isinstance(text, str):
                raise ValueError("a manifest is not text")
            images += [(reference, prefix + place) for reference, place in documents.images(text)]
    except ValueError as e:
        raise ClusterError(cluster, f"{where}: cannot read the release ({e}); its images cannot be protected, "
                                    "so nothing is pruned") from None
    info = release.get("info")
    if not isinstance(info, dict):
        info = {}
    release_namespace = release.get("namespace") if isinstance(release.get("namespace"), str) else ""
    return _Revision(release_namespace or namespace, release_name, version, str(info.get("status") or ""),
                     tuple(images))


def decode_release(value: object) -> dict[str, Any]:
    """A Secret's ``data.release`` to the release object; ValueError saying what is wrong."""
    if not isinstance(value, str) or not value:
        raise ValueError("no data.release")
    try:
        helm_text = base64.b64decode(value, validate=True)  # the API's base64 of the Secret's bytes
        data = base64.b64decode(helm_text, validate=True)  # Helm's own base64
    except (binascii.Error, ValueError):
        raise ValueError("data.release is not base64 of base64") from None
    if data[:3] == _GZIP_MAGIC:
        data = _gunzip(data)
    try:
        release = json.loads(data)
    except (ValueError, RecursionError):
        raise ValueError("not a JSON release") from None
    if not isinstance(release, dict):
        raise ValueError("not a JSON release object")
    return release


def _gunzip(data: bytes) -> bytes:
    out = bytearray()
    while data:  # every gzip member, as Go's gzip.Reader reads them
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(data, MAX_RELEASE_BYTES + 1 - len(out))
        except zlib.error:
            raise ValueError("corrupt gzip data") from None
        if len(out) > MAX_RELEASE_BYTES or inflater.unconsumed_tail:
            raise ValueError(f"the release inflates to more than {MAX_RELEASE_BYTES // (1024 * 1024)} MiB")
        if not inflater.eof:
            raise ValueError("truncated gzip data")
        data = inflater.unused_data
    return bytes(out)


class _ManifestImages:
    """Images of a release manifest, one document at a time (a chart's manifest can exceed the
    1 MiB a policy file may have, its documents do not), each distinct document parsed once per
    run: consecutive revisions of a release mostly repeat each other."""

    def __init__(self) -> None:
        self._seen: dict[bytes, tuple[tuple[ImageReference, str], ...]] = {}

    def images(self, manifest: str) -> list[tuple[ImageReference, str]]:
        found: list[tuple[ImageReference, str]] = []
        for index, text in enumerate(_DOCUMENT_MARKER.split(manifest)):
            # image_fields reads only 'image' fields and Kustomization 'images': a document that
            # never spells the word holds no image (Helm renders keys as the chart writes them).
            if "image" not in text:
                continue
            key = hashlib.sha256(text.encode()).digest()
            if key not in self._seen:
                self._seen[key] = self._parse(index, text)
            found += self._seen[key]
        return found

    def _parse(self, index: int, text: str) -> tuple[tuple[ImageReference, str], ...]:
        data = text.encode()
        if len(data) > MAX_FILE_BYTES:
            kinds = set(_TOP_LEVEL_KIND.findall(text))
            if kinds and not kinds & {*manifests.POD_SPECS, "Kustomization"}:  # what image_fields reads
                return ()  # a large CRD or ConfigMap: nothing image_fields would read
            raise ValueError(f"manifest document {index} is {len(data)} bytes, over the {MAX_FILE_BYTES} "
                             "bytes this reader parses")
        documents, problems = parse_documents(f"manifest document {index}", data)
        if problems:
            raise ValueError(str(problems[0]))
        found: list[tuple[ImageReference, str]] = []
        for document in documents:
            for field in manifests.image_fields(document.body) if isinstance(document.body, dict) else ():
                reference = _parsed(field)
                if reference is not None:
                    found.append((reference, f"{field.kind}/{field.name}/{field.container}"))
        return tuple(found)


def _parsed(field: manifests.ImageField) -> ImageReference | None:
    try:
        return parse_image(field.text)
    except ValueError as exc:
        # As discovery does: nothing in a registry matches an unparsable reference, and no
        # runtime could pull it, so there is nothing to protect.
        log.warning("Helm release %s %s/%s container %s: %s", field.kind, field.namespace, field.name,
                    field.container, exc)
        return None

