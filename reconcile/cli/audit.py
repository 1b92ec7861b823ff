"""``reconcile audit``: review the audit trail (list, runs, show, export, verify), read-only.

On a terminal: rich tables with relative times and colored statuses, paged when taller than the
screen. Piped: plain TSV (or the export formats), absolute UTC times, nothing truncated.

``--db PATH`` (repeatable; a file or a directory of ``*.db`` trails) reviews several trails, the
shard files of a sharded run, as one: merged in time order, with a ``trail`` column, while
``verify`` checks each chain on its own.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import click

from reconcile.cli import AuditUnavailableError, Settings, _Override, cli, common_options, wide_option
from reconcile.cli.session import audit_db_of, shard_of

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from reconcile.audit.query import ActionFilter
    from reconcile.audit.several import AuditTrails, Trail
    from reconcile.audit.store import AuditStore

# The audit store, its queries and the rendering (rich) load when a subcommand runs (or shows its
# --help, for the --action and --status choices), not when the command tree is built: the functions
# below import what they use.

TERMINAL_LIMIT = 100


_DBS = "reconcile.audit.dbs"  # ctx.meta key: the group's --db values
_DB_HELP = ("An audit trail to review instead of --audit-db (repeatable: several, such as the shard files of a "
            "sharded run, reviewed as one, merged in time order with a trail column; verify checks each chain). "
            "A directory: every *.db file in it, sorted by name; each must be an audit trail (one that is not is "
            "an error naming it, exit 3). The variable: paths separated by colons.")


def db_option(command: Callable[..., Any], *, on_group: bool = False) -> Callable[..., Any]:
    """``--db``, on the group and each subcommand; the group's reads RECONCILE_AUDIT_DBS (a
    subcommand's only shows it), so the trails it names are not read twice."""
    return click.option("--db", "dbs", multiple=True, metavar="PATH", type=click.Path(), envvar="RECONCILE_AUDIT_DBS",
                        help=_DB_HELP, **({} if on_group else {"cls": _Override}))(command)


@cli.group("audit")
@partial(db_option, on_group=True)
@click.pass_context
def audit_group(ctx: click.Context, dbs: tuple[str, ...]) -> None:
    """Review the audit trail: what happened, when, why, by whom, and whether it is intact.

    Every subcommand opens the trail (--audit-db) read-only; or the trails --db names (before or
    after the subcommand), several reviewed as one.
    """
    ctx.meta[_DBS] = dbs


# --- shared -------------------------------------------------------------------------------------

def _paths(settings: Settings, dbs: Sequence[str]) -> list[str]:
    """The --db values given to the group and to the command, else --audit-db (a shard's own trail
    with --shard, as the shard's run wrote it)."""
    given = [*click.get_current_context().meta.get(_DBS, ()), *dbs]
    if given:
        return given
    shard = shard_of(settings.shard)
    audit_db = audit_db_of(settings, writes=False)
    return [audit_db if shard is None else shard.audit_db(audit_db)]


@contextmanager
def _reading(settings: Settings, dbs: Sequence[str] = ()) -> Iterator[AuditTrails]:
    import sqlite3

    from reconcile.audit.several import AuditTrails
    from reconcile.audit.store import AuditError

    paths = _paths(settings, dbs)
    try:
        with AuditTrails.open(paths) as trails:
            yield trails
    except AuditError as e:
        raise AuditUnavailableError(str(e)) from None
    except sqlite3.Error as e:
        raise AuditUnavailableError(f"cannot read the audit trail {', '.join(paths)}: {e}") from None


def _where(trails: AuditTrails) -> str:
    """``the audit trail PATH`` (as given) or ``the audit trails A, B`` (their names), for messages."""
    if trails.several:
        return f"the audit trails {', '.join(trails.names)}"
    return f"the audit trail {trails.trails[0].store.path}"


def _console() -> Console:
    from rich.console import Console

    # highlight=False: numbers and paths in the trail are data, not something to colour by guess.
    return Console(highlight=False)


def _show(console: Console, renderable: RenderableType) -> None:
    """Print, through the pager only when the output is taller than the terminal. Never cropped to
    the terminal's width: a table whose ids do not fit (or --wide) is drawn wider instead."""
    with console.capture() as capture:
        console.print(renderable, crop=False)
    text = capture.get()
    if text.count("\n") <= console.height:
        console.file.write(text)
        return
    with console.pager(styles=_pager_keeps_colors()):
        console.print(renderable, crop=False)


def _pager_keeps_colors() -> bool:
    # As git does: less gets -R (raw colour codes) unless the user configured LESS; for any
    # other configured pager, send plain text.
    pager = os.environ.get("MANPAGER") or os.environ.get("PAGER") or "less"
    if "less" not in pager:
        return False
    os.environ.setdefault("LESS", "FRX")
    return "r" in os.environ["LESS"].lower()


def _when(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    from reconcile.audit.query import parse_when

    try:
        return parse_when(value, datetime.now(UTC))
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


class _StoreChoice(click.Choice[str]):
    """A choice among one of the audit store's lists, read from the store when first needed (a
    subcommand's --help shows them, a value is checked against them): building the command tree
    loads no store."""

    def __init__(self, load: Callable[[], Sequence[str]]) -> None:
        super().__init__(())
        self._load: Callable[[], Sequence[str]] | None = load

    @property
    def choices(self) -> tuple[str, ...]:
        if self._load is not None:
            self._choices, self._load = tuple(self._load()), None
        return self._choices

    @choices.setter
    def choices(self, value: Sequence[str]) -> None:
        self._choices = tuple(value)


def _kinds() -> tuple[str, ...]:
    from reconcile.audit.store import KINDS

    return KINDS


def _statuses() -> tuple[str, ...]:
    from reconcile.audit.store import STATUSES

    return STATUSES


def filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that select actions (``list``, ``export``); they become an ``ActionFilter``."""
    options = [
        click.option("--since", metavar="WHEN", callback=_when, envvar="RECONCILE_AUDIT_SINCE",
                     help="Only actions at or after WHEN: a duration back from now (30m, 2h, 7d, 1w), "
                          "an RFC 3339 date-time (2026-11-21T08:00:00Z) or a date (midnight UTC)."),
        click.option("--until", metavar="WHEN", callback=_when, envvar="RECONCILE_AUDIT_UNTIL",
                     help="Only actions before WHEN (same forms)."),
        click.option("--action", "actions", multiple=True, type=_StoreChoice(_kinds), envvar="RECONCILE_AUDIT_ACTION",
                     help="Only this kind of action (repeatable; the variable: separated by spaces)."),
        click.option("--status", "statuses", multiple=True, type=_StoreChoice(_statuses),
                     envvar="RECONCILE_AUDIT_STATUS",
                     help="Only this status (repeatable; the variable: separated by spaces)."),
        click.option("--target", metavar="GLOB", envvar="RECONCILE_AUDIT_TARGET",
                     help="Actions whose target, REGISTRY/REPOSITORY:TAG of a tag they removed or set, or digest "
                          "matches GLOB (case-sensitive; * and ?): 'ci/team-a/web:*', '*build-10*' (the prune "
                          "that removed build-10), '*sha256:4f2a*'."),
        click.option("--policy", metavar="KIND/NAME", envvar="RECONCILE_AUDIT_POLICY",
                     help="Actions caused by this policy (exact, or a GLOB)."),
        click.option("--run", metavar="RUN_ID", envvar="RECONCILE_AUDIT_RUN", help="Actions of this run."),
        click.option("--commit", metavar="SHA", envvar="RECONCILE_AUDIT_COMMIT",
                     help="Actions of runs at a policy commit starting with SHA."),
        click.option("--limit", type=click.IntRange(min=0), metavar="N", envvar="RECONCILE_AUDIT_LIMIT",
                     help="The newest N matching actions (0: all). list: 100 on a terminal unless given."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _filter(filters: dict[str, Any]) -> ActionFilter:
    from reconcile.audit.query import ActionFilter

    flt = ActionFilter(**filters)
    return replace(flt, limit=None) if flt.limit == 0 else flt


def _newest(rows: list[Any], limit: int | None) -> tuple[list[Any], bool]:
    """``rows`` fetched with ``limit + 1``: the newest ``limit`` of them, and whether any were left out."""
    if limit is not None and len(rows) > limit:
        return rows[len(rows) - limit:], True
    return rows, False


def _terminal_limit(console: Console, given: int | None) -> int | None:
    if given is None:
        return TERMINAL_LIMIT if console.is_terminal else None
    return given or None


# --- commands -----------------------------------------------------------------------------------

@audit_group.command("list")
@common_options
@db_option
@filter_options
@wide_option
def list_command(settings: Settings, dbs: tuple[str, ...], wide: bool, **filters: Any) -> None:
    """List actions in chain order (oldest first), newest 100 on a terminal, all when piped.

    A prune is listed with the tags it removed, a promotion with those it set, an untag with its
    tag (under the target on a terminal, in the last column when piped); --target finds them by
    those tags too.

    \b
    reconcile audit list --since 2h --action prune --target 'ci/team-a/*'
    reconcile audit list --target '*build-10*'
    reconcile audit list --commit 1a2b3c --status failed | cut -f1,7,12
    reconcile audit list --db /var/lib/reconcile/audit/ --status failed   # every shard's trail

    With several trails (--db), actions are merged in time order (each trail's in chain order) and
    a first column names each one's trail.

    On a terminal narrower than every column, the RFC 3339 time goes first (`when` says how long
    ago), then the digests, the policy, seq and `when`; ids are never cut (--wide: every column).
    """
    from reconcile.render import audit as render

    console = _console()
    flt = _filter(filters)
    limit = _terminal_limit(console, filters["limit"])
    with _reading(settings, dbs) as trails:
        rows = trails.actions(replace(flt, limit=limit + 1 if limit else None))
        several = trails.several
    rows, left_out = _newest(rows, limit)
    _listing(console, rows, left_out, "actions", partial(render.actions_tsv, trail=several),
             partial(render.actions_table, trail=several, wide=wide), "no actions match")


@audit_group.command()
@common_options
@db_option
@click.option("--limit", type=click.IntRange(min=0), metavar="N", envvar="RECONCILE_AUDIT_LIMIT",
              help="The newest N runs (default 100 on a terminal, all when piped; 0: all).")
@wide_option
def runs(settings: Settings, dbs: tuple[str, ...], limit: int | None, wide: bool) -> None:
    """List runs, oldest first: mode, who, policy commit, outcome, action counts.

    With several trails (--db), by start time across them, a first column naming each run's trail.

    On a terminal narrower than every column, the RFC 3339 start time goes first, then who ran it,
    how long it took, the commit and the mode; run ids are never cut (--wide: every column).
    """
    from reconcile.render import audit as render

    console = _console()
    limit = _terminal_limit(console, limit)
    with _reading(settings, dbs) as trails:
        found = trails.runs(limit=limit + 1 if limit else None)
        several = trails.several
    found, left_out = _newest(found, limit)
    records = [r.run for r in found]
    names = [r.trail for r in found] if several else None
    _listing(console, records, left_out, "runs", partial(render.runs_tsv, trails=names),
             partial(render.runs_table, trails=names, wide=wide), "no runs recorded")


def _listing(console: Console, rows: list[Any], left_out: bool, noun: str, tsv: Callable[..., str],
             table: Callable[..., RenderableType], empty: str) -> None:
    """TSV when piped; on a terminal a table (or a dim note when there is nothing to show)."""
    if not console.is_terminal:
        click.echo(tsv(rows), nl=False)
    elif not rows:
        console.print(empty, style="dim")
    else:
        title = f"{len(rows)} {noun}" + (", the newest (--limit N, 0 for all)" if left_out else "")
        _show(console, table(rows, datetime.now(UTC), title=title))


@audit_group.command()
@common_options
@db_option
@click.argument("entry_id", metavar="RUN_ID|EVENT_ID")
@wide_option
def show(settings: Settings, dbs: tuple[str, ...], entry_id: str, wide: bool) -> None:
    """Show a run (its fields and actions) or one event (intent and outcome side by side).

    With several trails (--db), from whichever trail holds it, named in a first field.

    An intent and its outcome are side by side where the terminal holds both whole (about 160
    columns), else each field's intent value with the outcome's under it where it differs (--wide:
    side by side at any width).
    """
    from reconcile.audit.query import ActionFilter, list_actions
    from reconcile.render import audit as render

    console = _console()
    with _reading(settings, dbs) as trails:
        where = _where(trails)
        if entry_id.startswith("evt-"):
            found_event = trails.find_action(entry_id)
            if not found_event:
                raise click.ClickException(f"no event {entry_id} in {where}")
            (trail, event), = _one(found_event, f"event {entry_id}")
            intent, outcome = _mutation_of(trail.store, event)
            name = trail.name if trails.several else None
            if not console.is_terminal:
                click.echo(render.event_detail_tsv(event, intent, outcome, trail=name), nl=False)
                return
            _show(console, render.event_detail(event, intent, outcome, datetime.now(UTC), trail=name, wide=wide))
            return
        found_run = trails.find_run(entry_id)
        if not found_run:
            hint = "" if entry_id.startswith("run-") else " (ids look like run-… or evt-…)"
            raise click.ClickException(f"no run {entry_id} in {where}{hint}")
        (trail, run), = _one(found_run, f"run {entry_id}")
        actions = list_actions(trail.store, ActionFilter(run=entry_id))
        name = trail.name if trails.several else None
    if not console.is_terminal:
        click.echo(render.run_detail_tsv(run, actions, trail=name), nl=False)
        return
    _show(console, render.run_detail(run, actions, datetime.now(UTC), trail=name, wide=wide))


def _one(found: list[tuple[Trail, Any]], what: str) -> list[tuple[Trail, Any]]:
    """``found`` when it is one trail's; an id in several trails (a copied trail) is an error."""
    if len(found) > 1:
        raise click.ClickException(f"{what} is in more than one audit trail: "
                                   f"{', '.join(t.name for t, _ in found)} (give one with --db)")
    return found


def _mutation_of(store: AuditStore, event: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(intent, outcome) when ``event`` is half of a write-ahead mutation, else (None, None)."""
    from reconcile.audit.query import find_outcome

    if event["intent_id"]:
        return store.action(event["intent_id"]), event
    if event["status"] == "intent":
        return event, find_outcome(store, event["event_id"])
    return None, None


@audit_group.command()
@common_options
@db_option
@click.option("--format", "output", type=click.Choice(["json", "jsonl", "csv"]), default="json", show_default=True,
              envvar="RECONCILE_AUDIT_FORMAT",
              help='json: {"runs": [...], "actions": [...]}; jsonl: one object per line with "type": '
                   '"run" or "action"; csv: actions only, with a header row.')
@filter_options
def export(settings: Settings, dbs: tuple[str, ...], output: str, **filters: Any) -> None:
    """Export actions and runs for other tools; with filters, only the runs of the exported actions.

    Each action has its repository (REGISTRY/REPOSITORY) and tags (those a prune removed, a
    promotion set, an untag removed): an array in json and jsonl (null when none were recorded),
    comma-separated in csv. With several trails (--db): merged in time order, each run and action
    with a "trail" field first (csv: a first column), the file name of its trail.
    """
    from reconcile.render import audit as render

    flt = _filter(filters)
    with _reading(settings, dbs) as trails:
        several = trails.several
        actions = [_exported_action(row) for row in trails.actions(flt)]
        runs = [{"trail": r.trail, **render.run_dict(r.run)} if several else render.run_dict(r.run)
                for r in trails.runs()]
    if not flt.is_empty():
        wanted = {(a.get("trail"), a["run_id"]) for a in actions}
        runs = [r for r in runs if (r.get("trail"), r["id"]) in wanted]
    if output == "json":
        click.echo(json.dumps({"runs": runs, "actions": actions}, indent=2))
    elif output == "jsonl":
        for kind, objects in (("run", runs), ("action", actions)):
            for obj in objects:
                click.echo(json.dumps({"type": kind, **obj}))
    else:
        click.echo(_csv(actions, trail=several), nl=False)


def _exported_action(row: dict[str, Any]) -> dict[str, Any]:
    """The row, ``dry_run`` a boolean and ``tags`` an array (null when none were recorded); a trail
    from before schema version 2 gets the newer columns as null."""
    from reconcile.render import audit as render

    tags = render.tags_of(row)
    trail = {"trail": row["trail"]} if "trail" in row else {}
    return {**trail, **row, "repository": row.get("repository"), "tags": list(tags) if tags else None,
            "dry_run": bool(row["dry_run"]) if row["dry_run"] is not None else None}


def _csv(actions: Sequence[dict[str, Any]], *, trail: bool = False) -> str:
    from reconcile.render import audit as render

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    columns = [*(["trail"] if trail else []), *render.ACTION_COLUMNS, "prev_hash", "hash"]
    writer.writerow(columns)
    for action in actions:
        values = [render.tags_text(action) if c == "tags" else action.get(c) for c in columns]
        writer.writerow([render.tsv_value(v) if isinstance(v, bool) else v for v in values])
    return buffer.getvalue()


@audit_group.command()
@common_options
@db_option
@click.option("--expect-head", "expect_heads", multiple=True, metavar="[TRAIL=]HASH",
              envvar="RECONCILE_AUDIT_EXPECT_HEAD",
              help="A chain head printed by an earlier run and kept elsewhere; it must still be in the "
                   "trail (catches a removed tail). With several trails (--db): TRAIL=HASH, TRAIL the file "
                   "name verify prints, repeatable, one per trail (a trail without one is verified without "
                   "it; a TRAIL not among those given is reported broken: a shard's file went missing). The variable: "
                   "separated by spaces.")
def verify(settings: Settings, dbs: tuple[str, ...], expect_heads: tuple[str, ...]) -> None:
    """Recompute the whole hash chain; exit status 1 naming the first entry that does not match.

    Also warns (on stderr, without changing the exit status) about runs that never finished and
    intents without an outcome: mutations that may or may not have happened.

    With several trails (--db), each chain is verified on its own, one line each prefixed with its
    trail's file name; exit status 1 when any is broken.
    """
    from reconcile.render import audit as render

    with _reading(settings, dbs) as trails:
        heads, missing = _expected_heads(trails, expect_heads)
        results = trails.verify(heads)
        unfinished = trails.unfinished()
        several = trails.several
    broken = bool(missing)
    for trail, result in results:
        prefix = f"{trail.name}: " if several else ""
        if result.ok:
            click.echo(f"{prefix}ok: {result.entries} entries, head {result.head}")
        else:
            broken = True
            click.echo(f"{prefix}broken: {result.first_break}")
    for name, head in missing.items():
        click.echo(f"{name}: broken: no such trail among those given, but its head {head} was expected "
                   "(a trail went missing, or the name is wrong)")
    for trail, runs_, pending in unfinished:
        prefix = f"{trail.name}: " if several else ""
        for warning in render.unfinished_warnings(runs_, pending):
            click.echo(f"warning: {prefix}{warning}", err=True)
    if broken:
        sys.exit(1)


def _full_hash(head: str) -> str:
    """A chain head as given to --expect-head: all 64 hex characters of it. A prefix is refused,
    not looked up: the check is what catches a removed tail, and a forged tail whose head starts
    with the same 12 characters takes hours to compute, where one with the same 64 is out of reach."""
    if re.fullmatch(r"[0-9a-fA-F]{64}", head):
        return head.lower()
    if re.fullmatch(r"[0-9a-fA-F]{1,63}", head):
        raise click.BadParameter(f"{head} is not a full hash: give all 64 hex characters of the chain head "
                                 "(as the run printed it)", param_hint="'--expect-head'")
    raise click.BadParameter(f"{head!r} is not a chain head: 64 hex characters, as a run prints it",
                             param_hint="'--expect-head'")


def _expected_heads(trails: AuditTrails, values: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """``--expect-head`` values as (trail name -> head, for the trails given; name -> head, for
    names that are not). A bare HASH only with one trail."""
    heads: dict[str, str] = {}
    missing: dict[str, str] = {}
    for value in values:
        name, sep, head = value.rpartition("=")  # hashes hold no "="; trail names may
        if not sep:
            if trails.several:
                raise click.BadParameter(f"{value!r}: with several trails, say whose head it is: TRAIL=HASH "
                                         f"(TRAIL one of {', '.join(trails.names)})", param_hint="'--expect-head'")
            name = trails.names[0]
        if name in heads or name in missing:
            raise click.BadParameter(f"more than one expected head for the trail {name}",
                                     param_hint="'--expect-head'")
        (heads if name in trails.names else missing)[name] = _full_hash(head)
    return heads, missing
