"""The one conflict retry of every write: read, patch with the ``resourceVersion`` read, and on a
409 read again and retry, up to :data:`MAX_ATTEMPTS` times.

A patch carrying ``metadata.resourceVersion`` is refused with 409 Conflict when the object changed
since it was read (https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions):
the write is then redone from a fresh read, so a concurrent change is never silently overwritten.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from reconcile.adapters.cluster.errors import ClusterError, ConflictError

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5  # reads + patches per write when writers keep racing it

T = TypeVar("T")


def retry_conflicts(cluster: str, what: str, attempt: Callable[[int], T]) -> T:
    """``attempt(n)`` for n = 1, 2, ... until it returns; a :class:`ConflictError` from it starts the
    next attempt (``attempt`` reads the object again), any other error ends the retry. ``what``
    (``"Deployment ns/name"``) names the object in the error after :data:`MAX_ATTEMPTS` conflicts."""
    for number in range(1, MAX_ATTEMPTS + 1):
        try:
            return attempt(number)
        except ConflictError:
            log.info("cluster %s: %s changed since it was read (409 Conflict); reading it again", cluster, what)
    raise ClusterError(cluster, f"{what} kept changing: {MAX_ATTEMPTS} attempts ended in 409 Conflict", status=409)
