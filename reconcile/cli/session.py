"""What every command shares: a Reconciler made from the common options, its notices on stderr,
and its errors as click errors (exit 1)."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconcile import defaults
from reconcile.cli import AuditUnavailableError, InvalidPoliciesError, LockedError, Settings

if TYPE_CHECKING:
    from reconcile.policy.shards import Shard
    from reconcile.reconciler import Reconciler
    from reconcile.reconciler.runs import RunLock


def reconciler_for(settings: Settings, *, writes: bool = False) -> Reconciler:
    """``writes``: the command records a run (apply, run, rollback, release-hold, plan --record)."""
    from reconcile.reconciler import Reconciler  # the library loads with the command that needs it

    shard = shard_of(settings.shard)
    audit_db = audit_db_of(settings, writes=writes)
    return Reconciler(settings.repo, ref=settings.ref, audit_db=audit_db, trusted_ref=settings.trusted_ref,
                      trust_ref_connections=settings.trust_ref_connections,
                      notice=lambda message: click.echo(message, err=True), lock=run_lock(settings.lock, shard),
                      shard=shard, strict=click.get_current_context().meta.get("reconcile.strict", False))


def shard_of(setting: str | None) -> Shard | None:
    """``--shard K/N``, else an Indexed Job's JOB_COMPLETION_INDEX of RECONCILE_SHARDS, else none."""
    if setting is None and os.environ.get("RECONCILE_SHARDS"):
        index = os.environ.get("JOB_COMPLETION_INDEX")
        if index is None:
            raise click.UsageError("RECONCILE_SHARDS is set but JOB_COMPLETION_INDEX is not: run as an Indexed Job "
                                   "(completionMode: Indexed) or pass --shard K/N")
        setting = f"{index}/{os.environ['RECONCILE_SHARDS']}"
    if setting is None:
        return None
    from reconcile.policy.shards import Shard  # (and the policy model) only when sharded: audit reads none

    try:
        return Shard.parse(setting)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--shard") from None


def audit_db_of(settings: Settings, *, writes: bool) -> str:
    """``--audit-db``/``RECONCILE_AUDIT_DB``, else ``audit.db`` in the XDG state directory.

    A trail an older version left in the working directory by default (``reconcile-audit.db``) is
    never silently passed over: a command that would start a new trail at the new default while it
    is there refuses (exit 3, nothing done), as two trails would split the hash chain and the deploy
    history that holds and rollbacks are decided from; a command that only reads says which trail
    it reads. Either way the message says how to keep using the old file, or move it."""
    if settings.audit_db is not None:
        return settings.audit_db
    default = defaults.audit_db()
    legacy = Path(defaults.LEGACY_AUDIT_DB)
    if legacy.is_file():
        keep = (f"keep using it with --audit-db ./{defaults.LEGACY_AUDIT_DB} (or RECONCILE_AUDIT_DB="
                f"$PWD/{defaults.LEGACY_AUDIT_DB}), or move it to the new default: mkdir -p "
                f"{shlex.quote(str(Path(default).parent))} && mv {defaults.LEGACY_AUDIT_DB} {shlex.quote(default)}")
        found = (f"./{defaults.LEGACY_AUDIT_DB} is an audit trail an older reconcile kept in the working directory; "
                 f"the default audit trail is now {default}")
        if writes and not Path(default).exists():
            raise AuditUnavailableError(f"{found}, which does not exist yet: nothing was done, so that the trail "
                                        f"(its hash chain, deploy history and holds) does not split in two: {keep}")
        click.echo(f"warning: {found}, and ./{defaults.LEGACY_AUDIT_DB} is not read: {keep}", err=True)
    return default


LEASE_DURATION = timedelta(seconds=60)  # renewed every 20 s while a run holds it; a crashed pod's expires in 60


def run_lock(setting: str, shard: Shard | None = None) -> RunLock | None:
    """The Lease ``setting`` names (``lease:NAMESPACE/NAME``), the pod's own ``reconcile`` Lease for
    ``auto`` in a cluster, or none; a shard's has its own (``NAME-shard-K-of-N``)."""
    if setting == "none" or (setting == "auto" and not os.environ.get("KUBERNETES_SERVICE_HOST")):
        return None
    from reconcile.adapters.cluster.connection import pod_namespace
    from reconcile.adapters.cluster.lease import LeaseLock

    if setting == "auto":
        namespace, name = pod_namespace(), "reconcile"
        if namespace is None:
            raise click.UsageError("--lock auto: in a cluster, but the pod's namespace file cannot be read; name the "
                                   "Lease with --lock lease:NAMESPACE/NAME")
    else:
        kind, _, where = setting.partition(":")
        namespace, _, name = where.partition("/")
        if kind != "lease" or not namespace or not name or "/" in name:
            raise click.BadParameter(f"{setting!r}: expected auto, none or lease:NAMESPACE/NAME",
                                     param_hint="--lock")
    own = name if shard is None else f"{name}-{shard.suffix}"
    return LeaseLock(namespace, own, identity(), duration=LEASE_DURATION)


def identity() -> str:
    """Who holds the Lease: the pod's name (its hostname), and the process, as kubectl shows it."""
    import socket

    return f"{socket.gethostname()}_{os.getpid()}"


@contextmanager
def library_errors() -> Iterator[None]:
    """A ReconcileError as the command's error: its problems (file and line) first, then its message."""
    from reconcile.reconciler import AuditUnavailable, Busy, InvalidPolicies, ReconcileError

    try:
        yield
    except ReconcileError as e:
        for problem in e.problems if isinstance(e, InvalidPolicies) else ():
            click.echo(str(problem), err=True)
        kinds = ((AuditUnavailable, AuditUnavailableError), (Busy, LockedError),
                 (InvalidPolicies, InvalidPoliciesError))
        kind = next((error for library, error in kinds if isinstance(e, library)), click.ClickException)
        raise kind(e.message) from None


def interactive() -> bool:
    """Whether a person can answer a question: stdin and stderr are terminals."""
    return sys.stdin.isatty() and sys.stderr.isatty()
