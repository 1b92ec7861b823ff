"""How every command that acts (plan, apply, run, rollback) sits on the audit trail: report
what an earlier run left unfinished, then record this run and print its chain head."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from reconcile.audit import AuditError, AuditStore, Run
from reconcile.audit.store import RunMode
from reconcile.cli import Settings
from reconcile.render.audit import unfinished_warnings


class Refused(click.ClickException):
    """The command refused to act (a saved plan that is no longer the plan): the run's outcome is
    ``refused``, exit status 1."""


@contextmanager
def audited_run(settings: Settings, mode: RunMode, *, repo_url: str | None = None,
                repo_commit: str | None = None, dry_run: bool = False) -> Iterator[Run]:
    """A recorded run. Its outcome is ``refused`` if the body raises Refused, ``failed`` if it raises
    anything else or any action failed, else
    ``incomplete`` if the body left changes for the next run (``run.incomplete``), else ``succeeded``.

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
            _finish(run, "refused")
            raise
        except BaseException:
            _finish(run, "failed")
            raise
        failed = any(key.endswith(".failed") for key in run.counts)
        _finish(run, "failed" if failed else "incomplete" if run.incomplete else "succeeded")


def _finish(run: Run, outcome: str) -> None:
    head = run.finish(outcome)
    click.echo(f"audit: run {run.id} {outcome}; chain head {head}", err=True)
