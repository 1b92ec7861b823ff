"""How every command that acts (plan --record, apply, run, rollback) sits on the audit trail:
report what an earlier run left unfinished, then record this run truthfully and print its chain
head."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

import click

from reconcile.audit import AuditError, AuditStore, Run
from reconcile.audit.store import RunMode, RunOutcome, outcome_of
from reconcile.cli import Settings
from reconcile.render.audit import unfinished_warnings


class Refused(click.ClickException):
    """The command refused to act (a saved plan that is no longer the plan): the run's outcome is
    ``refused``, exit status 1."""


@contextmanager
def audited_run(settings: Settings, mode: RunMode, *, repo_url: str | None = None,
                repo_commit: str | None = None, dry_run: bool = False) -> Iterator[Run]:
    """A recorded run. Its outcome (``RunOutcome``) is ``refused`` if the body raises Refused;
    ``failed`` if it raises anything else (recorded as an ``error`` action with its reason first);
    else decided from what it recorded by ``outcome_of``: ``failed`` or ``partial`` when changes
    failed, ``partial`` when some were left for the next run (``run.partial``), ``blocked`` when a
    policy was blocked (``run.blocked``), else ``succeeded``.

    The final chain head goes to stderr so it can be anchored outside the file
    (``reconcile audit verify --expect-head HEAD`` then catches a truncated trail).
    """
    try:
        store = AuditStore.open(settings.audit_db)
    except AuditError as e:
        raise click.ClickException(str(e)) from None
    with store:
        run = store.start_run(mode, repo_url=repo_url, repo_commit=repo_commit, dry_run=dry_run)
        for warning in unfinished_warnings(store.unfinished_runs(exclude=run.id), store.pending_intents()):
            click.echo(f"warning: {warning}", err=True)
        try:
            yield run
        except Refused:
            _finish(run, RunOutcome.REFUSED)
            raise
        except BaseException as e:
            _record_error(run, e, repo_url or settings.repo)
            _finish(run, RunOutcome.FAILED)
            raise
        _finish(run, outcome_of(run.counts, partial=run.partial, blocked=run.blocked))


@contextmanager
def audited_failures(settings: Settings, mode: RunMode) -> Iterator[None]:
    """Before a run can start (the policies do not load): a failure is still a run in the trail,
    with an ``error`` action saying why, so a CronJob that fails every time leaves a record."""
    try:
        yield
    except click.ClickException as e:
        try:
            with audited_run(settings, mode, repo_url=settings.repo):
                raise
        except AuditError:
            pass  # the trail itself cannot be written: the error still reaches the caller
        raise e from None


def _record_error(run: Run, error: BaseException, target: str) -> None:
    if isinstance(error, SystemExit) and error.code in (0, None):
        return
    if isinstance(error, click.ClickException):
        reason = error.message
    elif isinstance(error, SystemExit | KeyboardInterrupt):
        reason = f"{type(error).__name__} ({error.code if isinstance(error, SystemExit) else 'interrupted'})"
    else:
        reason = f"{type(error).__name__}: {error}"
    with suppress(AuditError):  # the trail cannot take it; the run's end (if it can be written) still says failed
        run.append("error", target, status="failed", reason=reason)


def _finish(run: Run, outcome: RunOutcome) -> None:
    head = run.finish(str(outcome))
    click.echo(f"audit: run {run.id} {outcome}; chain head {head}", err=True)
