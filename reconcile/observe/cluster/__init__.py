"""The cluster adapter: every image in use (and in retained Helm release history), deploy by
digest, rollout watch and rollback, through the official ``kubernetes`` client.
``connect(cluster, resolver)`` gives a :class:`ClusterClient`."""

from reconcile.observe.cluster.client import (
    DEFAULT_PAGE_SIZE,
    ClusterClient,
    connect,
    read_cluster_state,
    read_helm_release_state,
)
from reconcile.observe.cluster.deploy import CHANGE_CAUSE, DeployResult
from reconcile.observe.cluster.errors import (
    ClusterError,
    ConflictError,
    ExpiredError,
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
    UnreachableError,
)
from reconcile.observe.cluster.references import parse_image, parse_image_id, pinned, running_references
from reconcile.observe.cluster.rollback import Revision, RollbackResult
from reconcile.observe.cluster.rollout import RolloutResult

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
