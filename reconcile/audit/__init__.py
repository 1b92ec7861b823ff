"""The audit trail: an append-only, hash-chained SQLite store and its views.

``AuditStore.open(path)`` to write (``start_run`` -> ``Run.mutation``/``Run.append`` ->
``Run.finish``), ``AuditStore.open(path, read_only=True)`` to review and ``verify``.
"""

from reconcile.audit.chain import Verification
from reconcile.audit.store import AuditError, AuditStore, Outcome, Run, RunRecord

__all__ = ["AuditError", "AuditStore", "Outcome", "Run", "RunRecord", "Verification"]
