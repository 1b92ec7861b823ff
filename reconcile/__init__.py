"""reconcile: declarative GitOps reconciliation for container images.

``reconcile.Reconciler`` is the library API (plan, apply, run, rollback, release_hold, explain,
audit); the ``reconcile`` command is a thin layer over it. It loads on first use, so the command
line starts without it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconcile.reconciler import (
        Applied,
        AuditUnavailable,
        Busy,
        Explanation,
        InvalidPolicies,
        LockLost,
        NotConfirmed,
        PlanRefused,
        ReconcileError,
        Reconciler,
        RollbackFailed,
        RolledBack,
    )

__version__ = "0.1.0"
_LIBRARY = ("Applied", "AuditUnavailable", "Busy", "Explanation", "InvalidPolicies", "LockLost", "NotConfirmed",
            "PlanRefused", "ReconcileError", "Reconciler", "RollbackFailed", "RolledBack")
__all__ = ["Applied", "AuditUnavailable", "Busy", "Explanation", "InvalidPolicies", "LockLost", "NotConfirmed",
           "PlanRefused", "ReconcileError", "Reconciler", "RollbackFailed", "RolledBack", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LIBRARY:  # by name: the layers below import __version__ from here, never the library
        return getattr(import_module("reconcile.reconciler"), name)
    raise AttributeError(f"module 'reconcile' has no attribute {name!r}")
