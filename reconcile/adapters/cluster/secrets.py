"""Reading one key of a Kubernetes Secret for a ``{kubernetes: ...}`` secret reference.

The default reader of :class:`reconcile.policy.secrets.SecretResolver`; it follows the same
leak-proofing rules (see that module): problems are returned by the helper that touches the
response and raised only by the caller, so no traceback frame holds secret bytes.
"""

from __future__ import annotations

import base64
import json
from typing import cast

from reconcile.adapters.cluster.connection import local_configuration
from reconcile.adapters.cluster.errors import ClusterError
from reconcile.policy.secrets import SecretError, SecretProblem

# (connect, read) seconds: a hung API server must not hang the whole run.
_KUBERNETES_TIMEOUT = (10.0, 30.0)


def _first_line(message: object, limit: int = 300) -> str:
    # Config/transport errors can be multi-line (e.g. a helper's stderr); one line is enough.
    text = str(message).strip().splitlines()
    return text[0][:limit] if text else ""


def _fetch_kubernetes_secret(namespace: str, name: str, key: str) -> bytes | SecretProblem:
    # Imported lazily: the client is heavy and only needed when a policy uses this source.
    import urllib3
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    where = f"{namespace}/{name}"
    try:
        # A private Configuration (the process-wide kubernetes default is left untouched): the
        # pod's service account when KUBERNETES_SERVICE_HOST is set, else the kubeconfig.
        configuration = local_configuration()
    except ClusterError as exc:
        # "cannot load the in-cluster service account DIR: ..." or "... the kubeconfig PATH: ...":
        # never a credential.
        return SecretProblem(exc.problem)

    status: int | None = None
    reason = ""
    body: bytes | None = None
    with client.ApiClient(configuration) as api_client:
        try:
            # Raw response: the client then never builds a V1Secret (whose repr shows data) and
            # older client versions do not debug-log the body.
            # (The client annotates this as V1Secret whatever _preload_content says: wrongly here.)
            response = cast(urllib3.BaseHTTPResponse, client.CoreV1Api(api_client).read_namespaced_secret(
                name, namespace, _preload_content=False, _request_timeout=_KUBERNETES_TIMEOUT
            ))
            body = response.data
            response.release_conn()
        except ApiException as exc:
            # Never exc.body / str(exc): the body and headers are echoed there.
            status, reason = exc.status, _first_line(exc.reason or "")
        except urllib3.exceptions.HTTPError as exc:
            return SecretProblem(f"cannot reach the Kubernetes API: {_first_line(exc)}")
        except Exception as exc:
            return SecretProblem(f"error talking to the Kubernetes API ({type(exc).__name__})")

    if status is not None:
        if status == 404:
            return SecretProblem(f"secret {where} not found")
        if status == 403:
            return SecretProblem(
                f"forbidden: the service account needs `get` on `secrets` in namespace {namespace}"
            )
        if status == 401:
            return SecretProblem("unauthorized: the Kubernetes API rejected the credentials")
        if status == 0:
            # Status 0 is the client's wrapper for TLS failures; reason is the SSL error text.
            return SecretProblem(f"cannot reach the Kubernetes API: {reason}")
        return SecretProblem(f"the Kubernetes API answered {status} {reason}".rstrip())

    try:
        document = json.loads(body or b"")
    except (ValueError, RecursionError):
        return SecretProblem(f"the Kubernetes API returned an unreadable secret {where}")
    data = document.get("data") if isinstance(document, dict) else None
    encoded = data.get(key) if isinstance(data, dict) else None
    if encoded is None:
        return SecretProblem(f"secret {where} has no key {key!r}")
    if not isinstance(encoded, str):
        return SecretProblem(f"secret {where} key {key!r} is not a base64 string")
    try:
        return base64.b64decode(encoded, validate=True)
    except ValueError:
        return SecretProblem(f"secret {where} key {key!r} is not valid base64")


def read_kubernetes_secret(namespace: str, name: str, key: str) -> bytes:
    """Default Kubernetes reader: the raw bytes of ``data[key]`` of Secret ``namespace/name``.

    Uses the pod's service account (:func:`~reconcile.adapters.cluster.connection.pod_configuration`,
    the token file re-read on every call) when ``KUBERNETES_SERVICE_HOST`` is set, else the
    kubeconfig (``KUBECONFIG`` or ``~/.kube/config``). Raises :class:`SecretError` with a safe message.
    """
    outcome = _fetch_kubernetes_secret(namespace, name, key)
    if isinstance(outcome, SecretProblem):
        # Raised here, not in the helper, so no frame holding the response is in the traceback.
        raise SecretError(outcome.message) from None
    return outcome
