"""One cluster's API connection: configuration from the Cluster policy, the official client's
ApiClient built once per run, a timeout on every request, one configuration reload on a 401, and
HTTP failures turned into :class:`ClusterError` s that name the cluster.

Responses are read raw (``_preload_content=False``) and decoded as JSON: the adapter only reads a
few fields, and plain dicts keep working when a server adds fields the client's models reject.
"""

from __future__ import annotations

import builtins
import functools
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import urllib3
import yaml

from reconcile import __version__
from reconcile.adapters.cluster.errors import (
    ClusterError,
    ConflictError,
    ExpiredError,
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
    UnreachableError,
)
from reconcile.adapters.cluster.kinds import Resource
from reconcile.defaults import DEFAULT_SERVICE_ACCOUNT_DIR, SERVICE_ACCOUNT_DIR_VARIABLE
from reconcile.policy import model
from reconcile.policy.secrets import Secret, SecretError, SecretProblem, SecretResolver, redact

if TYPE_CHECKING:  # the client is imported when a cluster is first reached: commands that reach none start faster
    from kubernetes.client import ApiClient, Configuration

log = logging.getLogger(__name__)

STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
DEFAULT_PAGE_SIZE = 500  # objects per list page: client-go's list pager default

Loader = Callable[[], "Configuration"]



def service_account_dir() -> Path:
    """The pod's service-account directory: ``RECONCILE_SERVICE_ACCOUNT_DIR``, else the kubelet's
    ``/var/run/secrets/kubernetes.io/serviceaccount``."""
    return Path(os.environ.get(SERVICE_ACCOUNT_DIR_VARIABLE) or DEFAULT_SERVICE_ACCOUNT_DIR)


def in_pod() -> bool:
    """Whether this process runs in a pod: the kubelet sets ``KUBERNETES_SERVICE_HOST``."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def pod_configuration(cluster: str = "in-cluster") -> Configuration:
    """The pod's own credentials, through the official client's in-cluster loader: the API server
    at ``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT`` (HTTPS), verified with the
    directory's ``ca.crt``, authenticated with its ``token``. The projected token is re-read from
    the file once a minute (the loader's refresh), and a :class:`Connection` reloads all of it on a
    401, so a token the kubelet rotated is picked up. Used by the ``inCluster: true`` Cluster, the
    ``{kubernetes: ...}`` secret reader and the Lease. Raises :class:`ClusterError` naming
    ``cluster``."""
    return _configured(cluster, f"in-cluster service account {service_account_dir()}", _load_in_cluster)


def pod_namespace() -> str | None:
    """The pod's namespace, from the service-account directory's ``namespace`` file (None when
    absent or empty)."""
    try:
        namespace = (service_account_dir() / "namespace").read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return namespace or None


def local_configuration(cluster: str | None = None) -> Configuration:
    """Where this process runs: :func:`pod_configuration` when ``KUBERNETES_SERVICE_HOST`` is set,
    else the kubeconfig (``KUBECONFIG``, else ``~/.kube/config``; its current context) through the
    official loader. Raises :class:`ClusterError` naming ``cluster`` (default: ``in-cluster`` or
    ``kubeconfig``)."""
    if in_pod():
        return pod_configuration(cluster or "in-cluster")
    # Read KUBECONFIG now: kubernetes.config captures it once, at import time.
    files = os.environ.get("KUBECONFIG") or "~/.kube/config"
    return _configured(cluster or "kubeconfig", f"kubeconfig {files}", lambda c: _load_files(c, files))


def configuration_loader(cluster: model.Cluster, resolver: SecretResolver) -> Loader:
    """A function that (re)loads ``cluster``'s client configuration; called once per run and once
    more after a 401, so a rotated token or kubeconfig file is picked up."""
    name = cluster.name
    if cluster.in_cluster:
        return lambda: pod_configuration(name)
    ref = cluster.kubeconfig
    if ref is None:
        raise ClusterError(name, "no connection configured: set spec.inCluster or spec.kubeconfig")
    what = f"kubeconfig {ref.describe()}"
    if ref.source == "file":
        # By path, as kubectl does: relative certificate and tokenFile paths resolve next to it,
        # and a reload re-reads a file that a Secret volume or a token refresher rewrote.
        path = resolver.file_path(ref)
        return lambda: _configured(name, what, lambda c: _load_file(c, path, cluster.context))
    if ref.source == "dockerConfig":
        raise ClusterError(name, "spec.kubeconfig cannot be a dockerConfig reference")

    def load() -> Configuration:
        try:
            text = resolver.resolve(ref, purpose=f"Cluster/{name} spec.kubeconfig")
        except SecretError as exc:
            raise ClusterError(name, f"cannot load the {what}: {exc.problem}") from None
        return _configured(name, what, lambda c: _load_text(c, text, cluster.context))

    return load


def _load_in_cluster(configuration: Configuration) -> None:
    from kubernetes.config.incluster_config import InClusterConfigLoader

    directory = service_account_dir()
    # try_refresh_token: the loader's hook re-reads the token file when its copy is a minute old,
    # as client-go does for the kubelet's projected (rotated) token.
    InClusterConfigLoader(token_filename=str(directory / "token"), cert_filename=str(directory / "ca.crt"),
                          try_refresh_token=True).load_and_set(configuration)


def _load_files(configuration: Configuration, files: str) -> None:
    from kubernetes import config

    # A KUBECONFIG list (path:path) is merged by the loader, as kubectl does.
    config.load_kube_config(config_file=files, client_configuration=configuration, persist_config=False)


def _load_file(configuration: Configuration, path: Path, context: str | None) -> SecretProblem | None:
    if not path.is_file():
        # The client would only say "No configuration found".
        return SecretProblem(f"{path} is not a file")
    from kubernetes import config

    config.load_kube_config(config_file=str(path), context=context, client_configuration=configuration,
                            persist_config=False)
    return None


def _load_text(configuration: Configuration, text: Secret, context: str | None) -> SecretProblem | None:
    document = _parse_kubeconfig(text)
    if isinstance(document, SecretProblem):
        return document
    from kubernetes import config

    config.load_kube_config_from_dict(document, context=context, client_configuration=configuration,
                                      persist_config=False)
    return None


def _parse_kubeconfig(text: Secret) -> dict[str, Any] | SecretProblem:
    try:
        document = yaml.safe_load(text.reveal())
    except yaml.YAMLError:
        # YAML errors quote the offending line, which may hold a token.
        return SecretProblem("invalid YAML")
    return document if isinstance(document, dict) else SecretProblem("not a kubeconfig mapping")


def _configured(name: str, what: str, load: Callable[[Configuration], SecretProblem | None]) -> Configuration:
    from kubernetes.client import Configuration
    from kubernetes.config.config_exception import ConfigException

    # A private Configuration per cluster: the process-wide default is never touched.
    configuration = Configuration()
    problem: str | None = None
    try:
        outcome = load(configuration)
        problem = outcome.message if isinstance(outcome, SecretProblem) else None
    except ConfigException as exc:
        problem = _first_line(exc)
    except yaml.YAMLError:
        problem = "invalid YAML"
    except OSError as exc:
        problem = exc.strerror or type(exc).__name__
    except Exception as exc:  # exec plugins and auth providers raise anything; their text may quote a token
        problem = f"failed ({type(exc).__name__})"
    if problem is not None:
        raise ClusterError(name, f"cannot load the {what}: {problem}")
    # No urllib3 retries: a retried timeout would multiply the cluster's timeout. Conflicts,
    # 401s and expired list tokens are retried above this layer, where their meaning is known.
    configuration.retries = urllib3.Retry(total=0, redirect=0)
    return configuration


def _first_line(message: object, limit: int = 300) -> str:
    lines = str(message).strip().splitlines()
    return redact(lines[0][:limit]) if lines else ""


class Connection:
    """The low-level calls: get, list (paginated), patch; all through ``kubernetes.client``."""

    def __init__(self, cluster: model.Cluster, loader: Loader) -> None:
        self.cluster = cluster.name
        self.timeout = max(cluster.timeout.total_seconds(), 0.001)
        self._loader = loader
        self._lock = threading.Lock()
        self._api_client = self._new_client()
        self._retired: list[ApiClient] = []
        # True from a reload until a request succeeds with it: a 401 then is final, not a rotation.
        self._untested = False
        self.reloads = 0

    def __repr__(self) -> str:
        return f"Connection(cluster={self.cluster!r}, timeout={self.timeout:g}s, reloads={self.reloads})"

    @property
    def host(self) -> str:
        # Scheme, host and port only: a server URL could carry user info.
        parts = urlsplit(self._api_client.configuration.host)
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"

    def close(self) -> None:
        for api_client in (*self._retired, self._api_client):
            api_client.close()

    def _new_client(self) -> ApiClient:
        from kubernetes.client import ApiClient

        api_client = ApiClient(self._loader())
        api_client.user_agent = f"reconcile/{__version__}"
        return api_client

    def _reload(self, stale: ApiClient) -> bool:
        """After a 401 on ``stale``: whether to retry, with a reloaded configuration if needed."""
        with self._lock:
            if self._api_client is not stale:
                return True  # another thread already reloaded after the same 401
            if self._untested:
                return False  # the reloaded credentials were rejected too: reloading again cannot help
            log.info("cluster %s: 401 Unauthorized, reloading the client configuration", self.cluster)
            self._api_client = self._new_client()
            self._untested = True
            # Closed at close(), not now: another thread may still be reading a response from it.
            self._retired.append(stale)
            self.reloads += 1
            return True

    def call(self, resource: Resource, verb: str, method: str, *, namespace: str | None = None,
             timeout: float | None = None, **arguments: Any) -> Any:
        """``kubernetes.client.<resource.api>.<method>(**arguments)``, decoded from JSON.

        ``verb`` is the RBAC verb the call needs (named in a 403). ``timeout`` caps this request
        below the cluster's timeout (a rollout watch near its deadline).
        """
        limit = self.timeout if timeout is None else max(min(timeout, self.timeout), 0.001)
        if namespace is not None:
            arguments["namespace"] = namespace
        for attempt in (1, 2):
            api_client = self._api_client
            outcome = self._send(api_client, resource, method, arguments, limit)
            if not isinstance(outcome, _Failure):
                if api_client is self._api_client:
                    self._untested = False
                return outcome
            # Bound service-account tokens rotate: reload once and retry.
            if outcome.status == 401 and attempt == 1 and self._reload(api_client):
                continue
            raise self._error(outcome, resource, verb, namespace) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, api_client: ApiClient, resource: Resource, method: str, arguments: dict[str, Any],
              limit: float) -> Any:
        import kubernetes.client
        from kubernetes.client.exceptions import ApiException

        api = getattr(kubernetes.client, resource.api)(api_client)
        try:
            response = getattr(api, method)(**arguments, _preload_content=False, _request_timeout=(limit, limit))
            try:
                body = response.data
            finally:
                response.release_conn()
        except ApiException as exc:
            return _Failure(exc.status or 0, _status_message(exc.body), exc.reason)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            return _Failure(None, _unreachable(exc, limit), None)
        try:
            return json.loads(body)
        except ValueError:
            return _Failure(-1, "the API server answered something that is not JSON", None)

    def _error(self, failure: _Failure, resource: Resource, verb: str, namespace: str | None) -> ClusterError:
        status = failure.status
        if status is None:
            return UnreachableError(self.cluster, f"unreachable: {self.host}: {failure.message}")
        if status == 0:
            # The client's wrapper for TLS failures; reason is the SSL error text.
            return UnreachableError(self.cluster, f"unreachable: {self.host}: TLS: {_first_line(failure.reason)}")
        if status == 401:
            return UnauthorizedError(
                self.cluster, "unauthorized: the API server rejected the credentials, also after reloading them",
                status=401)
        if status == 403:
            return ForbiddenError(self.cluster, verb=verb, group=resource.group, resource=resource.plural,
                                  namespace=namespace)
        detail = f": {failure.message}" if failure.message else ""
        kinds = {404: NotFoundError, 409: ConflictError, 410: ExpiredError}
        error = kinds.get(status, ClusterError)
        return error(self.cluster, f"{verb} {resource.plural}: {status} {failure.reason or ''}".rstrip() + detail,
                     status=status)

    # The verbs the adapter uses, each one client call.

    def get(self, resource: Resource, namespace: str, name: str, *, timeout: float | None = None) -> dict[str, Any]:
        found: dict[str, Any] = self.call(resource, "get", f"read_namespaced_{resource.method}", namespace=namespace,
                                          name=name, timeout=timeout)
        return found

    def patch(self, resource: Resource, namespace: str, name: str, body: Any, content_type: str) -> dict[str, Any]:
        patched: dict[str, Any] = self.call(resource, "patch", f"patch_namespaced_{resource.method}",
                                            namespace=namespace, name=name, body=body, _content_type=content_type)
        return patched

    def list(self, resource: Resource, *, page_size: int, namespace: str | None = None,
             label_selector: str | None = None, field_selector: str | None = None) -> list[dict[str, Any]]:
        """Every object of ``resource`` (cluster-wide when ``namespace`` is None), page by page with
        ``limit``/``continue``; restarted once from a fresh snapshot if the continue token expires."""
        items: list[dict[str, Any]] = []
        for page in self._pages(resource, page_size, namespace, label_selector, field_selector):
            if page is _RESTART:
                items.clear()  # the new snapshot replaces what the expired one gave
            else:
                items.extend(page)
        return items

    def each(self, resource: Resource, *, page_size: int, namespace: str | None = None,
             label_selector: str | None = None, field_selector: str | None = None) -> Iterator[dict[str, Any]]:
        """As :meth:`list`, one object at a time, holding one page in memory (for large objects
        such as Helm release Secrets). When a continue token expires the list starts again from
        its first page, so an object can come twice: callers key what they keep by its name."""
        for page in self._pages(resource, page_size, namespace, label_selector, field_selector):
            if page is not _RESTART:
                yield from page

    def _pages(self, resource: Resource, page_size: int, namespace: str | None, label_selector: str | None,
               field_selector: str | None) -> Iterator[builtins.list[dict[str, Any]]]:  # (list: the method above)
        # https://kubernetes.io/docs/reference/using-api/api-concepts/#retrieving-large-results-sets-in-chunks
        scope: dict[str, Any]  # keyword arguments of the client method, through call()'s **arguments
        if namespace is None:
            method, scope = f"list_{resource.method}_for_all_namespaces", {}
        else:
            method, scope = f"list_namespaced_{resource.method}", {"namespace": namespace}
        if label_selector:
            scope["label_selector"] = label_selector
        if field_selector:
            # https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/
            scope["field_selector"] = field_selector
        for attempt in (1, 2):
            token: str | None = None
            try:
                while True:
                    page = self.call(resource, "list", method, limit=page_size, _continue=token, **scope)
                    token = (page.get("metadata") or {}).get("continue") or None
                    yield page.get("items") or []
                    if token is None:
                        return
            except ExpiredError:
                if attempt == 2:
                    raise
                log.info("cluster %s: %s list continue token expired; listing again", self.cluster, resource.plural)
                yield _RESTART


def raw_body(model: str, document: dict[str, Any]) -> Any:
    """``document`` as the body of a create or replace (whose parameter is typed as the client's
    ``model``, e.g. ``"V1Lease"``), sent exactly as it is. Else the client validates the dict into
    its model, which rejects fields it does not know and re-serializes times with
    ``datetime.isoformat()`` (``+00:00``, no fraction when it is zero: not a MicroTime)."""
    body = _raw_model(model).model_construct()
    body._document = document
    return body


@functools.cache
def _raw_model(name: str) -> type[Any]:
    import kubernetes.client
    from pydantic import PrivateAttr

    class Raw(getattr(kubernetes.client, name)):  # type: ignore[misc]
        _document: dict[str, Any] = PrivateAttr(default_factory=dict)

        def to_dict(self) -> dict[str, Any]:  # what the client serializes
            return self._document

    Raw.__name__ = Raw.__qualname__ = f"Raw{name}"
    return Raw


_RESTART: list[dict[str, Any]] = []  # _pages' marker: the list starts again from a fresh snapshot


@dataclass(frozen=True, slots=True)
class _Failure:
    """A request that got no usable answer: HTTP ``status`` (None: no answer at all, 0: TLS)."""

    status: int | None
    message: str
    reason: str | None


def _status_message(body: object) -> str:
    """The ``message`` of a ``Status`` error body, one line; never the raw body."""
    # https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#response-status-kind
    try:
        status = json.loads(body) if isinstance(body, str | bytes) else None
    except ValueError:
        return ""
    message = status.get("message") if isinstance(status, dict) else None
    return _first_line(message) if isinstance(message, str) else ""


def _unreachable(exc: BaseException, limit: float) -> str:
    reason: BaseException = exc
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        reason = exc.reason
    # NewConnectionError subclasses ConnectTimeoutError in urllib3: test it first.
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        cause = reason.__cause__ if isinstance(reason.__cause__, OSError) else None
        return f"cannot connect ({cause.strerror if cause and cause.strerror else _first_line(reason)})"
    if isinstance(reason, urllib3.exceptions.ConnectTimeoutError):
        return f"no connection within {limit:g}s"
    if isinstance(reason, urllib3.exceptions.ReadTimeoutError | TimeoutError):
        return f"no answer within {limit:g}s"
    if isinstance(reason, urllib3.exceptions.SSLError):
        return f"TLS: {_first_line(reason)}"
    if isinstance(reason, urllib3.exceptions.ProtocolError):
        return "the connection broke before an answer"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return f"{type(reason).__name__}: {_first_line(reason)}"
