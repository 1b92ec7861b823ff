"""The cluster adapter: every image in use (and in retained Helm release history), deploy by
digest, rollout watch and rollback, through the official ``kubernetes`` client.
``connect(cluster, resolver)`` gives a :class:`ClusterClient`."""

from reconcile.adapters.cluster.client import ClusterClient, connect, read_cluster_state, read_helm_release_state
from reconcile.adapters.cluster.connection import DEFAULT_PAGE_SIZE
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
from reconcile.adapters.cluster.references import parse_image, parse_image_id, pinned, running_references
from reconcile.adapters.cluster.rollback import Revision, RollbackResult
from reconcile.adapters.cluster.rollout import RolloutResult

__all__ = [
    "CHANGE_CAUSE",
    "DEFAULT_PAGE_SIZE",
    "ClusterClient",
    "ClusterError",
    "ConflictError",
    "DeployResult",
    "ExpiredError",
    "ForbiddenError",
    "NotFoundError",
    "Revision",
    "RollbackResult",
    "RolloutResult",
    "UnauthorizedError",
    "UnreachableError",
    "connect",
    "parse_image",
    "parse_image_id",
    "pinned",
    "read_cluster_state",
    "read_helm_release_state",
    "running_references",
]
