"""What the library raises when it does not do what was asked: each a ReconcileError with a message
fit for a person (the CLI prints it and exits 1)."""

from __future__ import annotations

from reconcile.policy.problems import Problem
from reconcile.policy.secrets import redact


class ReconcileError(Exception):
    """Nothing (more) was done, and ``message`` says why."""

    def __init__(self, message: str) -> None:
        message = redact(message)  # whatever it quotes, no secret value leaves the library in it
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidPolicies(ReconcileError):
    """The repo-of-record does not load or validate: ``problems`` lists each, with file and line."""

    def __init__(self, message: str, problems: tuple[Problem, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class PlanRefused(ReconcileError):
    """A saved plan is no longer the plan (edited, another commit, too old, the world or the gates
    moved): nothing was applied, and the run is recorded ``refused``."""


class Busy(ReconcileError):
    """Another reconcile command holds the lock (the audit trail's file lock, or the Lease) and this
    one was told not to wait, or cannot wait for a Lease: nothing was done. The CLI exits 5."""


class LockLost(ReconcileError):
    """The Lease was lost while the run held it (renewal failed, or another holder took it over):
    no change was made after that."""


class NotConfirmed(ReconcileError):
    """The caller's confirmation said no: nothing was done."""


class RollbackFailed(ReconcileError):
    """A rollback was refused or did not complete (the message starts with "not rolled back")."""


class AuditUnavailable(ReconcileError):
    """The audit trail cannot be opened, read or written (a full disk, a read-only directory, a
    locked or corrupt file): nothing (more) was changed, since no change is made without its
    intent on record. The CLI exits 3."""
