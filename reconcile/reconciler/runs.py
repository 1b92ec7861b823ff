"""How every command that acts (plan --record, apply, run, rollback, release-hold) sits on the audit
trail: one at a time per trail (a lock), report what an earlier run left unfinished, record this
run truthfully, and say its chain head."""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Protocol

from reconcile.adapters.cluster import ClusterError
from reconcile.audit import AuditError, AuditStore, Run
from reconcile.audit.query import deploy_history, deploy_holds, promotion_arrivals
from reconcile.audit.store import RunMode, RunOutcome, outcome_of
from reconcile.plan.deploy import Hold
from reconcile.reconciler.errors import AuditUnavailable, Busy, LockLost, PlanRefused, ReconcileError
from reconcile.render.audit import unfinished_warnings

Notice = Callable[[str], None]


@contextmanager
def audited_run(audit_db: str, mode: RunMode, notice: Notice, *, repo_url: str | None = None,
                repo_commit: str | None = None, dry_run: bool = False) -> Iterator[Run]:
    """A recorded run. Its outcome (``RunOutcome``) is ``refused`` if the body raises PlanRefused;
    ``failed`` if it raises anything else (recorded as an ``error`` action with its reason first);
    else decided from what it recorded by ``outcome_of``: ``failed`` or ``partial`` when changes
    failed, ``partial`` when some were left for the next run (``run.partial``), ``blocked`` when a
    policy was blocked (``run.blocked``), else ``succeeded``.

    The final chain head goes to ``notice`` so it can be anchored outside the file
    (``reconcile audit verify --expect-head HEAD`` then catches a truncated trail).
    """
    try:
        store = AuditStore.open(audit_db)
        run = store.start_run(mode, repo_url=repo_url, repo_commit=repo_commit, dry_run=dry_run)
        for warning in unfinished_warnings(store.unfinished_runs(exclude=run.id), store.pending_intents()):
            notice(f"warning: {warning}")
    except AuditError as e:
        raise unavailable(e, "nothing was done") from None
    with store:
        try:
            yield run
        except PlanRefused:
            _finish(run, RunOutcome.REFUSED, notice)
            raise
        except AuditError as e:  # an intent could not be written: its change was not made, nor any after it
            with suppress(AuditError):
                _finish(run, RunOutcome.FAILED, notice)
            raise unavailable(e, "nothing more was done") from None
        except BaseException as e:
            _record_error(run, e, repo_url or "")
            _finish(run, RunOutcome.FAILED, notice)
            raise
        _finish(run, RunOutcome.LOCKED if run.locked else outcome_of(run.counts, partial=run.partial,
                                                                      blocked=run.blocked), notice)


def unavailable(error: AuditError, done: str) -> AuditUnavailable:
    return AuditUnavailable(f"{error}; {done} (no change is made without its intent on record): free space, fix "
                            "the permissions or restore the file, then run again")


@contextmanager
def audited_failures(audit_db: str, mode: RunMode, notice: Notice, repo: str) -> Iterator[None]:
    """Before a run can start (the policies do not load): a failure is still a run in the trail,
    with an ``error`` action saying why, so a CronJob that fails every time leaves a record."""
    try:
        yield
    except ReconcileError as e:
        # recorded as a failed run; when the trail itself cannot be written, the error still reaches the caller
        with suppress(ReconcileError, AuditError), audited_run(audit_db, mode, notice, repo_url=repo):
            raise e
        raise


def _record_error(run: Run, error: BaseException, target: str) -> None:
    if isinstance(error, SystemExit) and error.code in (0, None):
        return
    if isinstance(error, ReconcileError):
        reason = error.message
    elif isinstance(error, SystemExit | KeyboardInterrupt):
        reason = f"{type(error).__name__} ({error.code if isinstance(error, SystemExit) else 'interrupted'})"
    else:
        reason = f"{type(error).__name__}: {error}"
    with suppress(AuditError):  # the trail cannot take it; the run's end (if it can be written) still says failed
        run.append("error", target, status="failed", reason=reason)


def _finish(run: Run, outcome: RunOutcome, notice: Notice) -> None:
    try:
        head = run.finish(str(outcome))
    except AuditError as e:
        raise unavailable(e, "the run's end is not recorded (the next run reports it unfinished)") from None
    notice(f"audit: run {run.id} {outcome}; chain head {head}")


@contextmanager
def command_lock(audit_db: str, notice: Notice, *, wait: bool) -> Iterator[None]:
    """One command that changes things at a time per audit trail (``AUDIT_DB.lock``), so a rollback
    cannot land between a run's plan and its apply. Without ``wait`` it gives up at once when
    another holds it (Busy); with ``wait`` it says so and waits."""
    lock_path = Path(f"{audit_db}.lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = lock_path.open("a")
    except OSError as e:
        raise AuditUnavailable(f"cannot create the lock file {lock_path}: {e.strerror or e}; nothing was done: make "
                               "its directory writable (or point --audit-db at a writable volume)") from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise Busy(f"another reconcile run holds {lock_path}") from None
            notice(f"waiting for the reconcile command holding {lock_path} to finish")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class RunLock(Protocol):
    """A lock beyond the file one, that other machines see: a Lease (``reconcile.adapters.cluster.lease``).
    ``held()`` raises a ClusterError with a ``holder`` when another holds it; ``check()`` raises when
    it was lost since (renewal failed, or another took it over)."""

    @property
    def where(self) -> str: ...  # NAMESPACE/NAME, for messages and the trail

    def held(self) -> AbstractContextManager[object]: ...

    def check(self) -> None: ...


@contextmanager
def leased(lock: RunLock | None) -> Iterator[Callable[[], None] | None]:
    """``lock`` held for the body (None: no lock beyond the file one); yields the check to make before
    each change, which raises LockLost once the lock is lost."""
    if lock is None:
        yield None
        return
    held = ExitStack()
    try:
        held.enter_context(lock.held())
    except ClusterError as e:
        holder = getattr(e, "holder", None)
        if holder is not None:
            expires = getattr(e, "expires", None)
            until = f" until {expires:%Y-%m-%dT%H:%M:%SZ} unless renewed" if expires is not None else ""
            raise Busy(f"another reconcile run holds the Lease {lock.where} (holder {holder}{until})") from None
        raise ReconcileError(f"cannot take the Lease {lock.where}: {e}; nothing was done") from None

    def check() -> None:
        try:
            lock.check()
        except ClusterError as e:
            raise LockLost(f"the Lease {lock.where} was lost: {e}; no change was made after that") from None

    with held:
        yield check


History = tuple[dict[str, list[str]] | None, dict[tuple[str, str], datetime] | str, dict[str, Hold] | str]


def history(audit_db: str, *more: str) -> History:
    """Deploy history, promotion arrivals and deploy holds; empty when there is no trail yet. When it
    exists but cannot be read: no deploy history (retention that protects it then fails closed) and,
    for arrivals and holds, why (soak gates and deploys then wait: a rollback may hold the very
    digest they would deploy).

    ``more``: other trails read with it, newest first after it (the other shards', then the one
    from before sharding): a deploy recorded in any of them is in the history, a digest's arrival
    is its first in any, a hold in ``audit_db`` overrides theirs. Any of them unreadable: as above."""
    histories = [_history(path) for path in (audit_db, *more)]
    for deployed, arrivals, holds in histories:
        if deployed is None:
            return deployed, arrivals, holds
    merged: dict[str, list[str]] = {}
    first: dict[tuple[str, str], datetime] = {}
    held: dict[str, Hold] = {}
    for deployed, arrivals, holds in histories:
        assert deployed is not None and not isinstance(arrivals, str) and not isinstance(holds, str)
        for name, digests in deployed.items():
            merged.setdefault(name, []).extend(d for d in digests if d not in merged.get(name, []))
        for key, when in arrivals.items():
            first[key] = min(when, first.get(key, when))
        for name, hold in holds.items():
            held.setdefault(name, hold)
    return merged, first, held


def _history(audit_db: str) -> History:
    if not Path(audit_db).exists():
        return {}, {}, {}
    try:
        with AuditStore.open(audit_db, read_only=True) as store:
            holds = {name: Hold(*held) for name, held in deploy_holds(store).items()}
            return deploy_history(store), promotion_arrivals(store), holds
    except AuditError as e:
        why = f"the audit trail could not be read: {e}"
        return None, why, why
