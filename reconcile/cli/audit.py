"""``reconcile audit``: review the audit trail (list, runs, show, export, verify), read-only.

On a terminal: rich tables with relative times and colored statuses, paged when taller than the
screen. Piped: plain TSV (or the export formats), absolute UTC times, nothing truncated.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console, RenderableType

from reconcile.audit.query import ActionFilter, find_outcome, list_actions, parse_when
from reconcile.audit.store import KINDS, STATUSES, AuditError, AuditStore
from reconcile.cli import AuditUnavailableError, Settings, cli, common_options
from reconcile.render import audit as render

TERMINAL_LIMIT = 100


@cli.group("audit")
def audit_group() -> None:
    """Review the audit trail: what happened, when, why, by whom, and whether it is intact.

    Every subcommand opens the trail (--audit-db) read-only.
    """


# --- shared -------------------------------------------------------------------------------------

@contextmanager
def _reading(settings: Settings) -> Iterator[AuditStore]:
    try:
        with AuditStore.open(settings.audit_db, read_only=True) as store:
            yield store
    except AuditError as e:
        raise AuditUnavailableError(str(e)) from None
    except sqlite3.Error as e:
        raise AuditUnavailableError(f"cannot read the audit trail {settings.audit_db}: {e}") from None


def _console() -> Console:
    # highlight=False: numbers and paths in the trail are data, not something to colour by guess.
    return Console(highlight=False)


def _show(console: Console, renderable: RenderableType) -> None:
    """Print, through the pager only when the output is taller than the terminal."""
    with console.capture() as capture:
        console.print(renderable)
    text = capture.get()
    if text.count("\n") <= console.height:
        console.file.write(text)
        return
    with console.pager(styles=_pager_keeps_colors()):
        console.print(renderable)


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
    try:
        return parse_when(value, datetime.now(UTC))
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that select actions (``list``, ``export``); they become an ``ActionFilter``."""
    options = [
        click.option("--since", metavar="WHEN", callback=_when,
                     help="Only actions at or after WHEN: a duration back from now (30m, 2h, 7d, 1w), "
                          "an RFC 3339 date-time (2026-11-21T08:00:00Z) or a date (midnight UTC)."),
        click.option("--until", metavar="WHEN", callback=_when, help="Only actions before WHEN (same forms)."),
        click.option("--action", "actions", multiple=True, type=click.Choice(KINDS),
                     help="Only this kind of action (repeatable)."),
        click.option("--status", "statuses", multiple=True, type=click.Choice(STATUSES),
                     help="Only this status (repeatable)."),
        click.option("--target", metavar="GLOB",
                     help="Actions whose target, REGISTRY/REPOSITORY:TAG of a tag they removed or set, or digest "
                          "matches GLOB (case-sensitive; * and ?): 'ci/team-a/web:*', '*build-10*' (the prune "
                          "that removed build-10), '*sha256:4f2a*'."),
        click.option("--policy", metavar="KIND/NAME", help="Actions caused by this policy (exact, or a GLOB)."),
        click.option("--run", metavar="RUN_ID", help="Actions of this run."),
        click.option("--commit", metavar="SHA", help="Actions of runs at a policy commit starting with SHA."),
        click.option("--limit", type=click.IntRange(min=0), metavar="N",
                     help="The newest N matching actions (0: all). list: 100 on a terminal unless given."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _filter(filters: dict[str, Any]) -> ActionFilter:
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
@filter_options
def list_command(settings: Settings, **filters: Any) -> None:
    """List actions in chain order (oldest first), newest 100 on a terminal, all when piped.

    A prune is listed with the tags it removed, a promotion with those it set, an untag with its
    tag (under the target on a terminal, in the last column when piped); --target finds them by
    those tags too.

    \b
    reconcile audit list --since 2h --action prune --target 'ci/team-a/*'
    reconcile audit list --target '*build-10*'
    reconcile audit list --commit 1a2b3c --status failed | cut -f1,7,12
    """
    console = _console()
    flt = _filter(filters)
    limit = _terminal_limit(console, filters["limit"])
    with _reading(settings) as store:
        rows = list_actions(store, replace(flt, limit=limit + 1 if limit else None))
    rows, left_out = _newest(rows, limit)
    _listing(console, rows, left_out, "actions", render.actions_tsv, render.actions_table, "no actions match")


@audit_group.command()
@common_options
@click.option("--limit", type=click.IntRange(min=0), metavar="N",
              help="The newest N runs (default 100 on a terminal, all when piped; 0: all).")
def runs(settings: Settings, limit: int | None) -> None:
    """List runs, oldest first: mode, who, policy commit, outcome, action counts."""
    console = _console()
    limit = _terminal_limit(console, limit)
    with _reading(settings) as store:
        records = store.runs(limit=limit + 1 if limit else None)
    records, left_out = _newest(records[::-1], limit)
    _listing(console, records, left_out, "runs", render.runs_tsv, render.runs_table, "no runs recorded")


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
@click.argument("entry_id", metavar="RUN_ID|EVENT_ID")
def show(settings: Settings, entry_id: str) -> None:
    """Show a run (its fields and actions) or one event (intent and outcome side by side)."""
    console = _console()
    with _reading(settings) as store:
        if entry_id.startswith("evt-"):
            event = store.action(entry_id)
            if event is None:
                raise click.ClickException(f"no event {entry_id} in the audit trail {settings.audit_db}")
            intent, outcome = _mutation_of(store, event)
            if not console.is_terminal:
                click.echo(render.event_detail_tsv(event, intent, outcome), nl=False)
                return
            _show(console, render.event_detail(event, intent, outcome, datetime.now(UTC)))
            return
        run = store.run(entry_id)
        if run is None:
            hint = "" if entry_id.startswith("run-") else " (ids look like run-… or evt-…)"
            raise click.ClickException(f"no run {entry_id} in the audit trail {settings.audit_db}{hint}")
        actions = list_actions(store, ActionFilter(run=entry_id))
    if not console.is_terminal:
        click.echo(render.run_detail_tsv(run, actions), nl=False)
        return
    _show(console, render.run_detail(run, actions, datetime.now(UTC)))


def _mutation_of(store: AuditStore, event: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(intent, outcome) when ``event`` is half of a write-ahead mutation, else (None, None)."""
    if event["intent_id"]:
        return store.action(event["intent_id"]), event
    if event["status"] == "intent":
        return event, find_outcome(store, event["event_id"])
    return None, None


@audit_group.command()
@common_options
@click.option("--format", "output", type=click.Choice(["json", "jsonl", "csv"]), default="json", show_default=True,
              help='json: {"runs": [...], "actions": [...]}; jsonl: one object per line with "type": '
                   '"run" or "action"; csv: actions only, with a header row.')
@filter_options
def export(settings: Settings, output: str, **filters: Any) -> None:
    """Export actions and runs for other tools; with filters, only the runs of the exported actions.

    Each action has its repository (REGISTRY/REPOSITORY) and tags (those a prune removed, a
    promotion set, an untag removed): an array in json and jsonl (null when none were recorded),
    comma-separated in csv.
    """
    flt = _filter(filters)
    with _reading(settings) as store:
        actions = [_exported_action(row) for row in list_actions(store, flt)]
        runs = [render.run_dict(run) for run in reversed(store.runs())]
    if not flt.is_empty():
        wanted = {a["run_id"] for a in actions}
        runs = [r for r in runs if r["id"] in wanted]
    if output == "json":
        click.echo(json.dumps({"runs": runs, "actions": actions}, indent=2))
    elif output == "jsonl":
        for kind, objects in (("run", runs), ("action", actions)):
            for obj in objects:
                click.echo(json.dumps({"type": kind, **obj}))
    else:
        click.echo(_csv(actions), nl=False)


def _exported_action(row: dict[str, Any]) -> dict[str, Any]:
    """The row, ``dry_run`` a boolean and ``tags`` an array (null when none were recorded); a trail
    from before schema version 2 gets the newer columns as null."""
    tags = render.tags_of(row)
    return {**row, "repository": row.get("repository"), "tags": list(tags) if tags else None,
            "dry_run": bool(row["dry_run"]) if row["dry_run"] is not None else None}


def _csv(actions: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    columns = [*render.ACTION_COLUMNS, "prev_hash", "hash"]
    writer.writerow(columns)
    for action in actions:
        values = [render.tags_text(action) if c == "tags" else action.get(c) for c in columns]
        writer.writerow([render.tsv_value(v) if isinstance(v, bool) else v for v in values])
    return buffer.getvalue()


@audit_group.command()
@common_options
@click.option("--expect-head", metavar="HASH",
              help="A chain head printed by an earlier run and kept elsewhere; it must still be in the "
                   "trail (catches a removed tail).")
def verify(settings: Settings, expect_head: str | None) -> None:
    """Recompute the whole hash chain; exit status 1 naming the first entry that does not match.

    Also warns (on stderr, without changing the exit status) about runs that never finished and
    intents without an outcome: mutations that may or may not have happened.
    """
    with _reading(settings) as store:
        result = store.verify(expect_head)
        unfinished = store.unfinished_runs()
        pending = store.pending_intents()
    if result.ok:
        click.echo(f"ok: {result.entries} entries, head {result.head}")
    else:
        click.echo(f"broken: {result.first_break}")
    for warning in render.unfinished_warnings(unfinished, pending):
        click.echo(f"warning: {warning}", err=True)
    if not result.ok:
        sys.exit(1)
