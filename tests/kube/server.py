"""A threaded loopback HTTP server that behaves like kube-apiserver where this project depends on it.

Each behaviour cites the Kubernetes documentation it follows. Objects live in memory per
resource/namespace/name; nothing is validated beyond what the adapter relies on.
"""

from __future__ import annotations

import base64
import copy
import json
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from tests.kube.controllers import Controllers
from tests.kube.patches import PatchError, json_patch, merge_patch, strategic_merge
from tests.kube.rbac import ADMIN, Identity

TLS = Path(__file__).parent / "tls"  # a test-only CA and server certificate for 127.0.0.1


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    subresources: tuple[str, ...] = ("status",)
    # metadata.generation is bumped on every spec change for these: "a sequence number representing a
    # specific generation of the desired state", https://github.com/kubernetes/community/blob/master/
    # contributors/devel/sig-architecture/api-conventions.md#metadata
    generation: bool = True

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCES = (
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False, generation=False),
    ResourceType("", "v1", "pods", "Pod", subresources=("status", "ephemeralcontainers"), generation=False),
    ResourceType("", "v1", "secrets", "Secret", subresources=(), generation=False),
    ResourceType("apps", "v1", "deployments", "Deployment"),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet"),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet"),
    ResourceType("apps", "v1", "daemonsets", "DaemonSet"),
    ResourceType("apps", "v1", "controllerrevisions", "ControllerRevision", subresources=(), generation=False),
    ResourceType("batch", "v1", "jobs", "Job"),
    ResourceType("batch", "v1", "cronjobs", "CronJob"),
    # Leader election's lock: spec only, written by update (PUT) with a resourceVersion precondition.
    # https://kubernetes.io/docs/concepts/architecture/leases/
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", subresources=(), generation=False),
)
BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
# Field selectors each kind supports besides metadata.name and metadata.namespace (which all do):
# https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/#list-of-supported-fields
FIELD_SELECTORS = {
    "pods": ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
             "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"),
    "secrets": ("type",),
    "namespaces": ("status.phase",),
    "replicasets": ("status.replicas",),
    "jobs": ("status.successful",),
}
BY_PLURAL = {r.plural: r for r in RESOURCES}
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Request:
    """One request as the server saw it, for tests to assert on."""

    method: str
    path: str
    query: dict[str, str]
    user: str | None
    status: int
    content_type: str | None = None


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def status(self) -> dict[str, Any]:
        # Errors are Status objects: https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/status/
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": self.message,
                "reason": self.reason, "details": self.details, "code": self.code}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _qualified(resource: ResourceType) -> str:
    return f"{resource.plural}.{resource.group}" if resource.group else resource.plural


@dataclass
class _Route:
    resource: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


@dataclass
class ApiServer:
    """The fixture. ``start()`` it, point a kubeconfig at ``url`` with a token from ``identities``."""

    controller_delay: float = 0.05
    tls: bool = False  # HTTPS with tests/kube/tls (the in-cluster configuration only speaks HTTPS)
    identities: dict[str, Identity] = field(default_factory=lambda: {"admin-token": ADMIN})
    requests: list[Request] = field(default_factory=list)
    # Deployment/StatefulSet/DaemonSet (namespace, name) -> complete | fail | hang: the test decides.
    rollouts: dict[tuple[str, ...], str] = field(default_factory=dict)  # (ns, name[, image]) -> outcome
    # Called with each request once answered (e.g. to expire continue tokens after a first page).
    on_request: Callable[[Request], None] | None = None

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.resource_version = 100
        self._conflicts: dict[tuple[str, str, str], int] = {}
        self._snapshots: dict[str, list[dict[str, Any]]] = {}
        self.controllers = Controllers(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        if self.tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(TLS / "server.crt", TLS / "server.key")
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self._thread: threading.Thread | None = None

    # -- lifecycle and test hooks ---------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> ApiServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="kube-fixture",
                                        daemon=True)
        self._thread.start()
        self.controllers.start()
        return self

    def stop(self) -> None:
        self.controllers.stop()
        self._httpd.shutdown()
        self._httpd.server_close()

    def kubeconfig(self, path: Path, token: str, *, context: str = "fixture") -> Path:
        """A kubeconfig file for ``token`` on this server."""
        return write_kubeconfig(path, self.url, token, context=context, ca=TLS / "ca.crt" if self.tls else None)

    def inject_conflict(self, plural: str, namespace: str, name: str, times: int = 1) -> None:
        """The next ``times`` writes to the object fail with 409, as if another writer had updated it
        first (its resourceVersion moves, so a re-read sees the change)."""
        with self.lock:
            self._conflicts[(plural, namespace, name)] = times

    def expire_continue_tokens(self) -> None:
        """As etcd compaction does: continue tokens issued so far answer 410 Gone."""
        with self.lock:
            self._snapshots.clear()

    def seen(self, method: str | None = None, path: str | None = None) -> list[Request]:
        with self.lock:
            return [r for r in self.requests
                    if (method is None or r.method == method) and (path is None or r.path == path)]

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self.objects.get((plural, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def set_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        """What a kubelet or controller reports (e.g. a pod's containerStatuses[].imageID)."""
        with self.lock:
            obj = copy.deepcopy(self.objects[(plural, namespace, name)])
            obj["status"] = copy.deepcopy(status)
            self.store(plural, obj)

    # -- storage ----------------------------------------------------------------------------------

    def store(self, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Write ``obj`` with the next resourceVersion (callers hold the lock)."""
        # resourceVersion changes on every write: https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions
        self.resource_version += 1
        metadata = obj.setdefault("metadata", {})
        metadata["resourceVersion"] = str(self.resource_version)
        self.objects[(plural, metadata.get("namespace", ""), metadata["name"])] = obj
        return obj

    def owned(self, plural: str, namespace: str, uid: str) -> list[dict[str, Any]]:
        return [o for (p, ns, _), o in self.objects.items() if p == plural and ns == namespace
                and any(r.get("controller") and r.get("uid") == uid
                        for r in o.get("metadata", {}).get("ownerReferences") or ())]

    def create_object(self, resource: ResourceType, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        metadata = body.setdefault("metadata", {})
        name = metadata.get("name")
        if not name:
            raise ApiError(422, "Invalid", f"{resource.kind} is invalid: metadata.name: Required value")
        if resource.namespaced:
            namespace = namespace or metadata.get("namespace") or "default"
            if ("namespaces", "", namespace) not in self.objects:
                # Creating in a missing namespace is a 404 on the namespace.
                raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found',
                               {"name": namespace, "kind": "namespaces"})
            metadata["namespace"] = namespace
        key = (resource.plural, namespace or "", name)
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", f'{_qualified(resource)} "{name}" already exists',
                           {"name": name, "group": resource.group, "kind": resource.plural})
        body["apiVersion"], body["kind"] = resource.group_version, resource.kind
        if resource.kind == "Secret":
            # An empty type is defaulted: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types
            body["type"] = body.get("type") or "Opaque"
        metadata.update(uid=str(uuid.uuid4()), creationTimestamp=_now())
        if resource.generation:
            metadata["generation"] = 1
        if "status" in resource.subresources:
            # Status is not writable on create: the status subresource owns it.
            body["status"] = {"phase": "Pending"} if resource.kind == "Pod" else {}
        stored = self.store(resource.plural, body)
        self.controllers.notify(resource.plural, namespace or "", name)
        return stored

    # -- request handling -------------------------------------------------------------------------

    def handle(self, method: str, url: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        identity = self._authenticate(headers.get("authorization"))
        code: int
        try:
            if identity is None:
                # Authentication: https://kubernetes.io/docs/reference/access-authn-authz/authentication/
                raise ApiError(401, "Unauthorized", "Unauthorized")
            with self.lock:
                code, payload = 200, self._dispatch(method, parts.path, query, headers, body, identity)
                if method == "POST":
                    code = 201
        except ApiError as exc:
            code, payload = exc.code, exc.status()
        seen = Request(method, parts.path, query, identity.user if identity else None, code,
                       headers.get("content-type"))
        with self.lock:
            self.requests.append(seen)
            if self.on_request is not None:
                self.on_request(seen)
        return code, payload

    def _authenticate(self, authorization: str | None) -> Identity | None:
        scheme, _, token = (authorization or "").partition(" ")
        return self.identities.get(token) if scheme.lower() == "bearer" else None

    def _dispatch(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes,
                  identity: Identity) -> Any:
        segments = [s for s in path.split("/") if s]
        discovery = self._discovery(segments)
        if discovery is not None:
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on {path}")
            return discovery
        route = self._route(segments)
        verb = self._verb(method, route, query)
        resource_name = route.resource.plural + (f"/{route.subresource}" if route.subresource else "")
        if not identity.allows(verb, route.resource.group, resource_name, route.namespace):
            raise self._forbidden(identity, verb, route, resource_name)
        document = self._body(body) if method in ("POST", "PUT", "PATCH") else None
        if verb == "list":
            return self._list(route, query)
        if verb == "create":
            return self.create_object(route.resource, route.namespace, document)
        current = self._current(route)
        if verb == "get":
            return copy.deepcopy(current)
        if verb == "delete":
            del self.objects[(route.resource.plural, route.namespace or "", route.name or "")]
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": route.name, "group": route.resource.group, "kind": route.resource.plural}}
        if verb == "update":
            return self._write(route, current, document)
        return self._write(route, current, self._patched(current, document, headers.get("content-type", "")))

    def _discovery(self, segments: list[str]) -> Any:
        # Discovery: https://kubernetes.io/docs/concepts/overview/kubernetes-api/#discovery-api
        host = self.url.removeprefix("http://")
        if segments == ["version"]:
            return {"major": "1", "minor": "33", "gitVersion": "v1.33.0-reconcile-fixture", "gitCommit": "0" * 40,
                    "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24.0",
                    "compiler": "gc", "platform": "linux/amd64"}
        if segments == ["api"]:
            return {"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]}
        groups = sorted({r.group for r in RESOURCES if r.group})
        if segments == ["apis"]:
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [self._group(g) for g in groups]}
        if len(segments) == 2 and segments[0] == "apis" and segments[1] in groups:
            return {"kind": "APIGroup", "apiVersion": "v1", **self._group(segments[1])}
        if segments in (["api", "v1"], *(["apis", g, "v1"] for g in groups)):
            group = "" if segments[0] == "api" else segments[1]
            resources = []
            for r in RESOURCES:
                if r.group != group:
                    continue
                resources.append({"name": r.plural, "singularName": r.kind.lower(), "namespaced": r.namespaced,
                                  "kind": r.kind, "verbs": VERBS})
                resources += [{"name": f"{r.plural}/{s}", "singularName": "", "namespaced": r.namespaced,
                               "kind": r.kind, "verbs": ["get", "patch", "update"]} for s in r.subresources]
            return {"kind": "APIResourceList", "apiVersion": "v1",
                    "groupVersion": f"{group}/v1" if group else "v1", "resources": resources}
        return None

    @staticmethod
    def _group(name: str) -> dict[str, Any]:
        version = {"groupVersion": f"{name}/v1", "version": "v1"}
        return {"name": name, "versions": [version], "preferredVersion": version}

    def _route(self, segments: list[str]) -> _Route:
        # Resource URLs: https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-uris
        if segments[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", segments[2:]
        elif len(segments) >= 3 and segments[0] == "apis":
            group, version, rest = segments[1], segments[2], segments[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        resource = BY_PATH.get((group, version, rest[0] if rest else ""))
        if resource is None or len(rest) > 3 or (namespace is not None and not resource.namespaced):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        subresource = rest[2] if len(rest) == 3 else None
        if subresource is not None and subresource not in resource.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return _Route(resource, namespace, rest[1] if len(rest) >= 2 else None, subresource)

    @staticmethod
    def _verb(method: str, route: _Route, query: dict[str, str]) -> str:
        # Request verbs: https://kubernetes.io/docs/reference/access-authn-authz/authorization/#determine-the-request-verb
        if method == "GET":
            if route.name is not None:
                return "get"
            if query.get("watch") in ("true", "1"):
                raise ApiError(400, "BadRequest", "watch is not implemented by this fixture")
            return "list"
        verbs = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
        if method not in verbs or (method != "POST" and route.name is None) or (method == "POST" and route.name):
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed here")
        return verbs[method]

    @staticmethod
    def _forbidden(identity: Identity, verb: str, route: _Route, resource_name: str) -> ApiError:
        # The RBAC authorizer's message: https://kubernetes.io/docs/reference/access-authn-authz/rbac/
        resource = route.resource
        target = f'{_qualified(resource)} "{route.name}"' if route.name else _qualified(resource)
        scope = f'in the namespace "{route.namespace}"' if route.namespace else "at the cluster scope"
        message = (f'{target} is forbidden: User "{identity.user}" cannot {verb} resource "{resource_name}" '
                   f'in API group "{resource.group}" {scope}')
        return ApiError(403, "Forbidden", message, {"name": route.name or "", "group": resource.group,
                                                     "kind": resource.plural})

    @staticmethod
    def _body(body: bytes) -> Any:
        try:
            return json.loads(body or b"null")
        except ValueError:
            raise ApiError(400, "BadRequest", "the request body is not JSON") from None

    def _current(self, route: _Route) -> dict[str, Any]:
        obj = self.objects.get((route.resource.plural, route.namespace or "", route.name or ""))
        if obj is None:
            raise ApiError(404, "NotFound", f'{_qualified(route.resource)} "{route.name}" not found',
                           {"name": route.name, "group": route.resource.group, "kind": route.resource.plural})
        return obj

    def _patched(self, current: dict[str, Any], patch: Any, content_type: str) -> dict[str, Any]:
        # Patch types: https://kubernetes.io/docs/reference/using-api/api-concepts/#updates-to-existing-resources
        kind = content_type.split(";")[0].strip()
        try:
            if kind == "application/strategic-merge-patch+json":
                return strategic_merge(current, patch)
            if kind == "application/merge-patch+json":
                return merge_patch(current, patch)
            if kind == "application/json-patch+json":
                return json_patch(current, patch)
        except PatchError as exc:
            raise ApiError(422, "Invalid", str(exc)) from None
        raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {kind}")

    def _write(self, route: _Route, current: dict[str, Any], new: Any) -> dict[str, Any]:
        if not isinstance(new, dict):
            raise ApiError(422, "Invalid", "the object is not a JSON object")
        resource, key = route.resource, (route.resource.plural, route.namespace or "", route.name or "")
        sent_version = (new.get("metadata") or {}).get("resourceVersion")
        pending = self._conflicts.get(key, 0)
        if pending:
            self._conflicts[key] = pending - 1
            concurrent = copy.deepcopy(current)
            annotations = concurrent["metadata"].setdefault("annotations", {})
            annotations["fixture/concurrent-writes"] = str(int(annotations.get("fixture/concurrent-writes", 0)) + 1)
            current = self.store(resource.plural, concurrent)
            sent_version = sent_version or "stale"
        # A resourceVersion in the request is a precondition (optimistic concurrency):
        # https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions
        if sent_version and sent_version != current["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {_qualified(resource)} "{route.name}": '
                           "the object has been modified; please apply your changes to the latest version and try "
                           "again", {"name": route.name, "group": resource.group, "kind": resource.plural})
        updated = copy.deepcopy(current)
        if route.subresource == "status":
            updated["status"] = copy.deepcopy(new.get("status") or {})
        elif route.subresource == "ephemeralcontainers":
            updated.setdefault("spec", {})["ephemeralContainers"] = copy.deepcopy(
                (new.get("spec") or {}).get("ephemeralContainers") or [])
        else:
            updated = copy.deepcopy(new)
            # Identity fields are the server's; status only changes through its subresource.
            for field_name in ("name", "namespace", "uid", "creationTimestamp", "generation"):
                if field_name in current["metadata"]:
                    updated.setdefault("metadata", {})[field_name] = current["metadata"][field_name]
            updated["apiVersion"], updated["kind"] = current["apiVersion"], current["kind"]
            if "status" in resource.subresources:
                updated["status"] = copy.deepcopy(current.get("status", {}))
            if resource.generation and updated.get("spec") != current.get("spec"):
                # metadata.generation: bumped on spec changes, observed by controllers.
                updated["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        stored = self.store(resource.plural, updated)
        if route.subresource is None and updated.get("spec") != current.get("spec"):
            self.controllers.notify(resource.plural, route.namespace or "", route.name or "")
        return copy.deepcopy(stored)

    def _list(self, route: _Route, query: dict[str, str]) -> dict[str, Any]:
        # List chunking with limit/continue over a consistent snapshot:
        # https://kubernetes.io/docs/reference/using-api/api-concepts/#retrieving-large-results-sets-in-chunks
        resource = route.resource
        token = query.get("continue")
        if token:
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()))
                items, offset = self._snapshots[state["snapshot"]], int(state["offset"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(410, "Expired", "The provided continue parameter is too old to display a consistent "
                               "list result. You can start a new list without the continue parameter.") from None
        else:
            selector = _selector(query.get("labelSelector", ""))
            fields = _field_selector(resource, query.get("fieldSelector", ""))
            items = [copy.deepcopy(o) for (p, ns, _), o in sorted(self.objects.items())
                     if p == resource.plural and (route.namespace is None or ns == route.namespace)
                     and selector(o.get("metadata", {}).get("labels") or {}) and fields(o)]
            for item in items:
                # Items of a list carry no apiVersion/kind of their own (the list has them).
                item.pop("apiVersion", None)
                item.pop("kind", None)
            offset = 0
        limit = int(query["limit"]) if query.get("limit", "0").isdigit() and int(query.get("limit", "0")) > 0 else None
        page = items[offset:offset + limit] if limit else items[offset:]
        metadata: dict[str, Any] = {"resourceVersion": str(self.resource_version)}
        end = offset + len(page)
        if end < len(items):
            snapshot = state["snapshot"] if token else uuid.uuid4().hex
            self._snapshots[snapshot] = items
            metadata["continue"] = base64.urlsafe_b64encode(
                json.dumps({"snapshot": snapshot, "offset": end}).encode()).decode()
            metadata["remainingItemCount"] = len(items) - end
        return {"kind": f"{resource.kind}List", "apiVersion": resource.group_version, "metadata": metadata,
                "items": page}


def write_kubeconfig(path: Path, server: str, token: str, *, context: str = "fixture", ca: Path | None = None) -> Path:
    """A kubeconfig file (kubectl's format) for a bearer ``token`` on ``server``."""
    cluster: dict[str, Any] = {"server": server}
    if ca is not None:
        cluster["certificate-authority"] = str(ca)
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "fixture", "cluster": cluster}],
        "users": [{"name": f"user-{context}", "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": "fixture", "user": f"user-{context}"}}],
    }))
    return path


def _selector(text: str) -> Any:
    # Equality-based label selectors: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/
    terms = []
    for term in filter(None, (t.strip() for t in text.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            terms.append(lambda labels, k=key, v=value: labels.get(k) != v)
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            terms.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif term.startswith("!"):
            terms.append(lambda labels, k=term[1:]: k not in labels)
        else:
            terms.append(lambda labels, k=term: k in labels)
    return lambda labels: all(term(labels) for term in terms)


def _field_selector(resource: ResourceType, text: str) -> Callable[[dict[str, Any]], bool]:
    # Field selectors: https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/
    # ('=', '==' and '!=', terms joined by ','; a field the kind does not support is a 400).
    terms: list[tuple[str, str, bool]] = []  # (field, value, negated)
    supported = ("metadata.name", "metadata.namespace", *FIELD_SELECTORS.get(resource.plural, ()))
    for term in filter(None, (t.strip() for t in text.split(","))):
        negated = "!=" in term
        field_name, equals, value = term.replace("!=", "=", 1).replace("==", "=", 1).partition("=")
        if not equals:
            raise ApiError(400, "BadRequest", f"invalid selector: '{text}'; can't understand '{term}'")
        if field_name.strip() not in supported:
            raise ApiError(400, "BadRequest", f"field label not supported: {field_name.strip()}")
        terms.append((field_name.strip(), value.strip(), negated))
    return lambda obj: all((_field(obj, name) == value) != negated for name, value, negated in terms)


def _field(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _handler(server: ApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            code, payload = server.handle(self.command, self.path, headers, body)
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: tests read the request log instead

    return Handler


@contextmanager
def running(**options: Any) -> Iterator[ApiServer]:
    server = ApiServer(**options).start()
    try:
        yield server
    finally:
        server.stop()
