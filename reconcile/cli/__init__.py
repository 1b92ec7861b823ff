"""The ``reconcile`` command line: a thin click layer over the library, one module per command."""

from __future__ import annotations

import functools
import io
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

import click
from click.core import ParameterSource

from reconcile import __version__, defaults

_SECRETS = "reconcile.policy.secrets"


def redact(text: str) -> str:
    """``reconcile.policy.secrets.redact``, without loading that module to learn that no secret was
    resolved: only it records secret values, so until something loaded it there are none (``--help``
    and the audit commands never do)."""
    secrets = sys.modules.get(_SECRETS)
    if secrets is None:
        return text
    redacted: str = secrets.redact(text)
    return redacted


@dataclass
class Settings:
    """Options every command shares; set before or after the command name, or from RECONCILE_*."""

    repo: str = "."
    ref: str | None = None
    audit_db: str | None = None  # None: neither --audit-db nor RECONCILE_AUDIT_DB; see session.audit_db_of
    trusted_ref: str | None = None  # where Registries and Clusters come from; None: the default branch
    trust_ref_connections: bool = False  # take them from --ref instead (a loud opt-in)
    debug: bool = False  # an unexpected error shows its traceback
    lock: str = "auto"  # auto | none | lease:NAMESPACE/NAME: the lock beyond the audit trail's file lock
    shard: str | None = None  # K/N: this run's share of the repositories (an Indexed Job's pod)


_COMMON: dict[str, dict[str, Any]] = {
    "repo": dict(metavar="PATH|URL", envvar="RECONCILE_REPO", default=".", show_default=True,
                 help="Repo-of-record: a git work tree (or a directory in one), a plain directory, or a "
                      "git URL (mirrored under RECONCILE_CACHE_DIR, fetched on every run)."),
    "ref": dict(metavar="REF", envvar="RECONCILE_REF",
                help="Git ref to read policies at (branch, tag, SHA); default HEAD. Files are read "
                     "from that commit, not the working tree."),
    "audit_db": dict(metavar="PATH", envvar="RECONCILE_AUDIT_DB", show_default=defaults.AUDIT_DB_SHOWN,
                     help="SQLite audit trail (never on a network filesystem); the default is in the XDG state "
                          "directory, never the current one (the image and CronJob point it at their volume)."),
    "trusted_ref": dict(metavar="REF", envvar="RECONCILE_TRUSTED_REF",
                        help="Git ref whose Registry and Cluster documents (urls, allowedHosts, credentials, "
                             "kubeconfigs) are used when --ref names another commit, as a pull request's does; "
                             "default: the repo's default branch (origin/HEAD, else main). A setting of the job, "
                             "never read from the repo."),
    "trust_ref_connections": dict(is_flag=True, envvar="RECONCILE_TRUST_REF_CONNECTIONS", default=False,
                                  help="DANGEROUS: connect with the Registries and Clusters of --ref itself, so its "
                                       "author chooses where credentials go. Only for refs as trusted as the "
                                       "default branch."),
    "lock": dict(metavar="auto|none|lease:NS/NAME", envvar="RECONCILE_LOCK", default="auto", show_default=True,
                 help="The lock commands that change things take besides the audit trail's file lock: a "
                      "coordination.k8s.io Lease, so runs in two pods never overlap. auto: the Lease 'reconcile' in "
                      "the pod's namespace when running in a cluster, none elsewhere."),
    "shard": dict(metavar="K/N", envvar="RECONCILE_SHARD",
                  help="Act on shard K of N only (K from 0): the repositories whose stable hash falls in it, and "
                       "the pipelines whose first stage does, with the shard's own audit trail (AUDIT_DB's name "
                       "with .shard-K-of-N) and Lease. Default from an Indexed Job: JOB_COMPLETION_INDEX of "
                       "RECONCILE_SHARDS."),
    "debug": dict(is_flag=True, envvar="RECONCILE_DEBUG", default=False,
                  help="On an unexpected error, show the Python traceback instead of one line."),
}


class _Override(click.Option):
    """A common option's copy on a command: a value given after the command name overrides the
    group's (which reads the variable and has the default); its variable is only shown in --help."""

    def resolve_envvar_value(self, ctx: click.Context) -> str | None:
        return None


def _option(name: str, *, on_group: bool) -> Callable[[Any], Any]:
    spec = dict(_COMMON[name])
    if not on_group:
        spec = {k: v for k, v in spec.items()
                if k not in ("default", "show_default") or (k == "show_default" and isinstance(v, str))}
        spec["cls"] = _Override
    return click.option("--" + name.replace("_", "-"), name, **spec)


def common_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Accept the common options after the command name too (``reconcile validate --repo x``)."""

    @functools.wraps(command)
    def wrapper(*args: Any, repo: str | None, ref: str | None, audit_db: str | None, trusted_ref: str | None,
                trust_ref_connections: bool, lock: str | None, shard: str | None, debug: bool,
                **kwargs: Any) -> Any:
        settings = click.get_current_context().find_object(Settings) or Settings()
        for name, value in (("repo", repo), ("ref", ref), ("audit_db", audit_db), ("trusted_ref", trusted_ref),
                            ("trust_ref_connections", trust_ref_connections or None), ("lock", lock),
                            ("shard", shard),
                            ("debug", debug or None)):
            if value is not None:
                setattr(settings, name, value)
        return command(settings, *args, **kwargs)

    for name in reversed(list(_COMMON)):
        wrapper = _option(name, on_group=False)(wrapper)
    return wrapper


WIDE_HELP = ("Every column of the table, digests in full, even where that is wider than the terminal (lines as "
             "long as they need; less -S scrolls them). Without it, a table narrower than its columns drops the "
             "least useful ones first and never cuts an id. Piped, output is TSV (or the --format asked) with "
             "every column anyway.")


def wide_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--wide``, on every command that prints a table (RECONCILE_WIDE, as --only and --yes)."""
    return click.option("--wide", is_flag=True, envvar="RECONCILE_WIDE", help=WIDE_HELP)(command)


AUDIT_UNAVAILABLE = 3  # exit status when the audit trail cannot be opened, read or written
LOCKED = 5  # exit status when another run holds the lock (the file lock, or the Lease)
INVALID_POLICIES = 6  # exit status when the repo-of-record does not load: the same again until someone fixes it
INTERNAL_ERROR = 4  # exit status of an unexpected error: a bug to report, not a policy or a source at fault


class InternalError(click.ClickException):
    exit_code = INTERNAL_ERROR


class AuditUnavailableError(click.ClickException):
    exit_code = AUDIT_UNAVAILABLE


class LockedError(click.ClickException):
    exit_code = LOCKED


class InvalidPoliciesError(click.ClickException):
    exit_code = INVALID_POLICIES


class _Group(click.Group):
    """Any exception a command did not expect becomes one line and exit status 4 (the run, if one
    was being recorded, already holds it as an ``error`` action); ``--debug`` re-raises it."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with redacted_output():
                return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as e:
            settings = ctx.find_object(Settings)
            if settings is not None and settings.debug:
                raise
            raise InternalError(f"internal error: {type(e).__name__}: {_one_line(str(e))} (nothing more was done; "
                                "this is a bug in reconcile: run again with --debug for the traceback and "
                                "report it)") from None


class _Redacting(io.TextIOBase):
    """A text stream that writes through ``redact``: any secret value this process resolved or
    received that made its way into a message (a server echoing a password) is written as ``***``."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:  # buffer, errors, mode: as the stream has them
        return getattr(self._stream, name)


@contextmanager
def redacted_output() -> Iterator[None]:
    """stdout, stderr and every log record through ``redact`` while a command runs."""
    streams, factory = (sys.stdout, sys.stderr), logging.getLogRecordFactory()

    def record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        made = factory(*args, **kwargs)
        made.msg, made.args = redact(made.getMessage()), ()
        return made

    sys.stdout, sys.stderr = _Redacting(sys.stdout), _Redacting(sys.stderr)
    logging.setLogRecordFactory(record)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = streams
        logging.setLogRecordFactory(factory)


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit] + "…"


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="reconcile")
@_option("repo", on_group=True)
@_option("ref", on_group=True)
@_option("audit_db", on_group=True)
@_option("trusted_ref", on_group=True)
@_option("trust_ref_connections", on_group=True)
@_option("lock", on_group=True)
@_option("shard", on_group=True)
@_option("debug", on_group=True)
@click.pass_context
def cli(ctx: click.Context, repo: str, ref: str | None, audit_db: str | None, trusted_ref: str | None,
        trust_ref_connections: bool, lock: str, shard: str | None, debug: bool) -> None:
    """Declarative GitOps reconciliation for container images.

    Reads retention, promotion and deploy policies from a git repo-of-record, compares them with
    registries and clusters, and prunes, promotes (by digest), deploys and rolls back, recording
    every action in a hash-chained SQLite audit trail.

    Every option also reads a RECONCILE_* environment variable, named in its help (for the
    CronJob and CI): RECONCILE_ and the option's name for the options every command takes and
    those of plan, apply, run and explain (RECONCILE_ONLY, RECONCILE_YES and RECONCILE_WIDE wherever
    --only, --yes and --wide are); RECONCILE_<COMMAND>_<OPTION> for the other options of audit, comment, config,
    quickstart, rollback and validate. Flags take 1/0, true/false, yes/no, on/off. `reconcile
    config` shows the settings in effect and where each came from (there is no configuration file).

    Exit status: 0 done (or, with plan --detailed-exitcode, no changes), 1 error (invalid policies, a
    source that could not be read, a refused plan, a failed change), 2 changes pending (plan
    --detailed-exitcode), 3 the audit trail cannot be opened, read or written (nothing was changed),
    4 internal error (a bug: --debug shows the traceback), 5 another run holds the lock (nothing was
    done; recorded as a locked run), 6 the repo-of-record is invalid (nothing was done; `validate`
    lists the problems).
    """
    ctx.obj = Settings(repo=repo, ref=ref, audit_db=audit_db, trusted_ref=trusted_ref,
                       trust_ref_connections=trust_ref_connections, lock=lock, shard=shard, debug=debug)


def main() -> None:
    cli()


# Each command module registers itself on ``cli``; imported last, as they import ``cli`` from here.
from reconcile.cli import audit, comment, config, explain, quickstart, reconcile, rollback, validate  # noqa: E402, F401


class _NamesItsSource(click.Option):
    """An error about an option's value names the variable it came from, and only then (click's
    own hint names the variable whenever --help shows it, even for a value typed after the option)."""

    def get_error_hint(self, ctx: click.Context | None) -> str:
        hint = " / ".join(f"'{opt}'" for opt in self.opts)
        if ctx is not None and self.name and ctx.get_parameter_source(self.name) == ParameterSource.ENVIRONMENT:
            hint += f" (from the environment variable {self.envvar})"
        return hint


_HINTED: dict[type[click.Option], type[click.Option]] = {}


def _show_envvars(command: click.Command) -> None:
    """Every option's variable in its --help (``[env var: RECONCILE_…]``), and named in an error
    about a value it gave; tests/test_settings.py fails for an option that has none."""
    for param in command.params:
        if isinstance(param, click.Option) and param.envvar:
            param.show_envvar = True
            kind = type(param)
            if kind not in _HINTED:
                _HINTED[kind] = type(f"Hinted{kind.__name__}", (_NamesItsSource, kind), {})
            param.__class__ = _HINTED[kind]
    for sub in getattr(command, "commands", {}).values():
        _show_envvars(sub)


_show_envvars(cli)
