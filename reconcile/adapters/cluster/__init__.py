"""The cluster adapter: every image in use (and in retained Helm release history), deploy by
digest, rollout watch and rollback, through the official ``kubernetes`` client; the run's Lease
(:class:`LeaseLock`); the pod's own credentials (:func:`pod_configuration`).
``connect(cluster, resolver)`` gives a :class:`ClusterClient`."""

from reconcile.adapters.cluster.client import ClusterClient, connect, read_cluster_state, read_helm_release_state
from reconcile.adapters.cluster.connection import (
    DEFAULT_PAGE_SIZE,
    local_configuration,
    pod_configuration,
    pod_namespace,
    service_account_dir,
)
from reconcile.adapters.cluster.deploy import CHANGE_CAUSE, DeployResult
from reconcile.adapters.cluster.errors import (
    ClusterError,
    ConflictError,
    ExpiredError,
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
    UnreachableError,
)
from reconcile.adapters.cluster.lease import LeaseHeld, LeaseLock, LeaseLost
from reconcile.adapters.cluster.references import parse_image, parse_image_id, pinned, running_references
from reconcile.adapters.cluster.rollback import Revision, RollbackFacts, RollbackResult
from reconcile.adapters.cluster.rollout import RolloutResult
from reconcile.defaults import DEFAULT_SERVICE_ACCOUNT_DIR, SERVICE_ACCOUNT_DIR_VARIABLE

__all__ = [
    "CHANGE_CAUSE",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_SERVICE_ACCOUNT_DIR",
    "SERVICE_ACCOUNT_DIR_VARIABLE",
    "ClusterClient",
    "ClusterError",
    "ConflictError",
    "DeployResult",
    "ExpiredError",
    "ForbiddenError",
    "LeaseHeld",
    "LeaseLock",
    "LeaseLost",
    "NotFoundError",
    "Revision",
    "RollbackFacts",
    "RollbackResult",
    "RolloutResult",
    "UnauthorizedError",
    "UnreachableError",
    "connect",
    "local_configuration",
    "parse_image",
    "parse_image_id",
    "pinned",
    "pod_configuration",
    "pod_namespace",
    "read_cluster_state",
    "read_helm_release_state",
    "running_references",
    "service_account_dir",
]
