"""Errors of the cluster adapter: each names the cluster, and a 403 names the RBAC rule to add."""

from __future__ import annotations

from reconcile.policy.secrets import redact

RBAC_FILE = "deploy/rbac.yaml"
# Not in RBAC_FILE: list on Secrets is granted only to those who use protect.helmReleases.
HELM_RBAC_FILE = "deploy/opt-in/rbac-helm-history.yaml"
HELM_ROLE = "reconcile-helm-history"


class ClusterError(Exception):
    """Anything that kept a cluster operation from completing. ``str()`` starts ``cluster NAME:``
    and never contains a credential or a response body."""

    def __init__(self, cluster: str, problem: str, *, status: int | None = None) -> None:
        problem = redact(problem)  # an API server's message may quote what it was sent
        super().__init__(f"cluster {cluster}: {problem}")
        self.cluster = cluster
        self.problem = problem
        self.status = status


class UnreachableError(ClusterError):
    """No answer: connection refused, DNS, TLS, or no response within the cluster's timeout."""


class UnauthorizedError(ClusterError):
    """401 even after reloading the configuration: the credentials are wrong or expired."""


class ForbiddenError(ClusterError):
    """403: the identity lacks ``verb`` on ``resource`` in ``group``; the message says which rule
    of ``deploy/rbac.yaml`` grants it, or ``hint`` says what to do instead (an opt-in rule)."""

    def __init__(self, cluster: str, *, verb: str, group: str, resource: str, namespace: str | None,
                 hint: str | None = None) -> None:
        self.verb, self.group, self.resource, self.namespace = verb, group, resource, namespace
        if hint is None:
            where = f" in namespace {namespace}" if namespace and verb not in _CLUSTER_VERBS else ""
            # list/watch come from the ClusterRole (cluster-wide discovery); get/patch from the
            # per-namespace Role on deploy targets: the hint says which one to edit.
            rule = "ClusterRole" if verb in _CLUSTER_VERBS else f"Role for namespace {namespace}"
            hint = f"add it to {RBAC_FILE}'s {rule}"
        else:
            where = f" in namespace {namespace}" if namespace else " cluster-wide"
        super().__init__(
            cluster,
            f"forbidden: the service account needs '{verb}' on '{resource}' ({group or 'core'}){where} — {hint}",
            status=403,
        )


class ConflictError(ClusterError):
    """409 on a write: the object changed since it was read (callers re-read and retry)."""


class NotFoundError(ClusterError):
    """404: the object (or its namespace) does not exist."""


class ExpiredError(ClusterError):
    """410 on a paginated list: the continue token expired; the list must restart."""


_CLUSTER_VERBS = frozenset({"list", "watch"})
