"""What every command shares: a Reconciler made from the common options, its notices on stderr,
and its errors as click errors (exit 1)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from reconcile.cli import AuditUnavailableError, Settings

if TYPE_CHECKING:
    from reconcile.reconciler import Reconciler


def reconciler_for(settings: Settings) -> Reconciler:
    from reconcile.reconciler import Reconciler  # the library loads with the command that needs it

    return Reconciler(settings.repo, ref=settings.ref, audit_db=settings.audit_db, trusted_ref=settings.trusted_ref,
                      trust_ref_connections=settings.trust_ref_connections,
                      notice=lambda message: click.echo(message, err=True))


@contextmanager
def library_errors() -> Iterator[None]:
    """A ReconcileError as the command's error: its problems (file and line) first, then its message."""
    from reconcile.reconciler import AuditUnavailable, InvalidPolicies, ReconcileError

    try:
        yield
    except ReconcileError as e:
        for problem in e.problems if isinstance(e, InvalidPolicies) else ():
            click.echo(str(problem), err=True)
        raise (AuditUnavailableError if isinstance(e, AuditUnavailable) else click.ClickException)(e.message) from None


def interactive() -> bool:
    """Whether a person can answer a question: stdin and stderr are terminals."""
    return sys.stdin.isatty() and sys.stderr.isatty()
