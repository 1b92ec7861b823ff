"""Renderings of the audit trail: rich tables for a terminal, plain TSV for pipes.

Every value from the trail goes into a ``Text`` (never markup) with control characters made
visible: reasons and errors can carry text from registries, and a review tool must not let that
text drive the reader's terminal.

rich loads with the first table: the TSV renderings, and what ``audit verify`` and ``audit export``
use, need none of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from reconcile.audit.store import RunRecord, decode_tags

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table
    from rich.text import Text

    from reconcile.render.fit import FittedTable

STATUS_STYLES = {"intent": "yellow", "succeeded": "green", "failed": "bold red", "skipped": "dim"}
OUTCOME_STYLES = {"succeeded": "green", "partial": "yellow", "failed": "bold red", "blocked": "yellow",
                  "refused": "yellow", "locked": "yellow", "unfinished": "bold yellow reverse"}
# New columns go last: scripts cut fields by position.
ACTION_COLUMNS = ("seq", "timestamp", "event_id", "run_id", "kind", "status", "target", "policy", "digest_before",
                  "digest_after", "reason", "error", "duration", "dry_run", "intent_id", "repository", "tags", "cause")
RUN_COLUMNS = ("id", "started_at", "finished_at", "outcome", "mode", "dry_run", "actor", "host", "pid", "repo_url",
               "repo_commit", "summary", "chain_head")
EVENT_FIELDS = (*ACTION_COLUMNS, "prev_hash", "hash")

_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(32), 127)}
_TERMINAL_ESCAPES = {c: v for c, v in _CONTROLS.items() if chr(c) not in "\n\t"}
_TSV_ESCAPES = str.maketrans({**_CONTROLS, ord("\\"): "\\\\", ord("\t"): "\\t", ord("\n"): "\\n", ord("\r"): "\\r"})


# --- values ---------------------------------------------------------------------------------------

def parse_timestamp(ts: str) -> datetime:
    return datetime.fromisoformat(ts).astimezone(UTC)


def absolute_time(ts: str | None) -> str:
    """``2026-11-21T08:00:03Z``: RFC 3339, UTC, to the second, for a table (the trail, and so the
    TSV and the exports, keep microseconds)."""
    return parse_timestamp(ts).strftime("%Y-%m-%dT%H:%M:%SZ") if ts else ""


def relative_time(ts: str | None, now: datetime) -> str:
    """``just now``, ``45s ago``, ``3m ago``, ``2h ago``, ``yesterday``, ``5d ago``, then the date."""
    if not ts:
        return ""
    seconds = int((now - parse_timestamp(ts)).total_seconds())
    if seconds < 0:  # another host's clock ahead of ours
        return "in " + _span(-seconds) if seconds < -10 else "just now"
    if seconds < 10:
        return "just now"
    if 86_400 <= seconds < 2 * 86_400:
        return "yesterday"
    if seconds >= 30 * 86_400:
        return parse_timestamp(ts).strftime("%Y-%m-%d")
    return _span(seconds) + " ago"


def _span(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def elapsed(start: str | None, end: str | None) -> str:
    if not start or not end:
        return ""
    seconds = max(0.0, (parse_timestamp(end) - parse_timestamp(start)).total_seconds())
    return f"{seconds:.1f}s" if seconds < 60 else _span(int(seconds))


def short_digest(digest: str | None) -> str:
    """``sha256:`` and 12 hex digits: enough to tell digests apart in a table."""
    if not digest:
        return ""
    return digest[:19] if digest.startswith("sha256:") else digest


def digest_change(before: str | None, after: str | None) -> str:
    if not before and not after:
        return ""
    return f"{short_digest(before) or '—'} → {short_digest(after) or '—'}"


def tags_of(row: Mapping[str, Any]) -> tuple[str, ...]:
    """The tags an action removed or set (none recorded before schema version 2), from the column's
    JSON or from an exported row's list."""
    value = row.get("tags")
    return tuple(value) if isinstance(value, list | tuple) else decode_tags(value)


def tags_text(row: Mapping[str, Any], separator: str = ",") -> str | None:
    """The tags as one field (tags hold no commas), None when there are none."""
    return separator.join(tags_of(row)) or None


def summary_text(summary: Mapping[str, int] | None) -> str:
    return ", ".join(f"{key} {count}" for key, count in (summary or {}).items())


def _text(value: Any, style: str = "") -> Text:
    from rich.text import Text

    if value is None:
        return Text("", style=style)
    return Text(str(value).translate(_TERMINAL_ESCAPES), style=style)


def status_text(status: str) -> Text:
    return _text(status, STATUS_STYLES.get(status, ""))


def outcome_text(outcome: str) -> Text:
    return _text(outcome, OUTCOME_STYLES.get(outcome, ""))


def _run_outcome(run: RunRecord) -> Text:
    text = outcome_text(run.outcome)
    if run.outcome == "unfinished" and run.is_running():
        text.append(f" (pid {run.pid} still running)", style="dim")
    return text


def _target(row: Mapping[str, Any]) -> Text:
    """The target, a digest in it as short as in the digest column (``show`` and TSV have it all),
    and under it, in the same cell, the tags the action removed or set (unless the target names
    its one tag, as an untag's does)."""
    target = row["target"] or ""
    where, at, digest = target.partition("@")
    text = _text(f"{where}@{short_digest(digest)}" if at and digest.startswith("sha256:") else target)
    tags = tags_of(row)
    if tags and not (len(tags) == 1 and target.endswith(f":{tags[0]}")):
        text.append("\n")
        text.append(_text(f"tags: {', '.join(tags)}", "cyan"))
    return text


def _reason(row: Mapping[str, Any]) -> Text:
    """The error, else the reason; under it the cause (why, as data), when the row has one."""
    text = _text(row["error"], "red") if row.get("error") else _text(row.get("reason"))
    if row.get("cause"):
        text.append("\n")
        text.append(_text(f"cause: {row['cause']}", "dim"))
    return text


# --- terminal -------------------------------------------------------------------------------------

def _table(title: str | None = None) -> Table:
    from rich import box
    from rich.table import Table

    return Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), show_edge=False, title_justify="left",
                 title_style="bold")


def actions_table(rows: Sequence[Mapping[str, Any]], now: datetime, *, title: str | None = None,
                  by_event: bool = False, trail: bool = False, wide: bool = False) -> RenderableType:
    """One row per action, in the order given (chain order). ``by_event`` shows the event id
    instead of the run id (for one run's actions); a run id shared by every row goes in the title
    instead of a column, leaving the width to targets and reasons. ``trail``: a first column with
    each row's ``trail`` (rows from several audit trails).

    Never cut: the trail, the run or event id, kind, status (and the time columns while shown).
    Where the table fits with its target and reason readable (about 105 columns, by what the rows
    hold), one table; when it does not fit, dropped first to last: the RFC 3339 time (``when`` says how long ago), the
    digests, the policy, seq, ``when``; target and reason wrap. Narrower (80 columns), each run's
    actions under a ``run ID`` line (no run column), the reason under the target in one column,
    no policy or digest; then the RFC 3339 time, seq and ``when`` go, in that order.
    ``wide``: one table, every column."""
    from rich.console import Group
    from rich.text import Text

    from reconcile.render.fit import Either

    runs = {row["run_id"] for row in rows}
    one_run = len(runs) == 1 and not by_event
    if one_run:
        title = f"{title + ' of ' if title else ''}run {next(iter(runs))}"
    flat = _actions_flat(rows, now, title, by_event=by_event, trail=trail, one_run=one_run, wide=wide)
    if wide:
        return flat
    kept = [i for i, column in enumerate(flat.columns) if column.drop is None]
    parts: list[RenderableType] = [Text(title, style="bold")] if title else []
    groups: list[list[Mapping[str, Any]]] = []
    def run_of(row: Mapping[str, Any]) -> tuple[Any, ...] | None:
        return None if by_event or one_run else (row["run_id"], row.get("trail"))

    for row in rows:
        if not groups or run_of(groups[-1][0]) != run_of(row):
            groups.append([])
        groups[-1].append(row)
    cells = [_stacked_cells(row, now, by_event=by_event, trail=trail) for row in rows]
    measured: list[tuple[list[Text], str | None]] = [(c, None) for c in cells]
    at = 0
    for n, group in enumerate(groups):
        named = "" if by_event or one_run else f"run {group[0]['run_id']}"
        if named and trail:
            named += f"  ({group[0].get('trail')})"
        table = _actions_stacked(cells[at:at + len(group)], named or None, by_event=by_event, trail=trail,
                                 show_header=n == 0)
        table.measured = measured
        parts.append(table)
        at += len(group)
    return Either(flat, flat.needed(kept, comfortable=True), Group(*parts))


def _actions_flat(rows: Sequence[Mapping[str, Any]], now: datetime, title: str | None, *, by_event: bool,
                  trail: bool, one_run: bool, wide: bool) -> FittedTable:
    from reconcile.render.fit import Column, FittedTable

    columns = [
        *([Column("trail")] if trail else []),
        Column("seq", justify="right", style="dim", drop=4), Column("when", drop=5),
        Column("time (UTC)", style="dim", drop=1),
        *([] if one_run else [Column("event" if by_event else "run")]),
        Column("kind"), Column("status"), Column("target", wrap=True, min_width=16, comfort=26),
        Column("policy", wrap=True, drop=3, min_width=16), Column("digest", wrap=True, drop=2, min_width=21),
        Column("reason / error", wrap=True, comfort=24)]
    table = FittedTable(columns, title, wide)
    for row in rows:
        ids = [] if one_run else [_text(row["event_id"] if by_event else row["run_id"])]
        table.add_row(
            *([_text(row.get("trail"))] if trail else []),
            _text(row["seq"]), _text(relative_time(row["timestamp"], now)), _text(absolute_time(row["timestamp"])),
            *ids, _text(row["kind"]), status_text(row["status"]), _target(row), _text(row["policy"]),
            _text(digest_change(row["digest_before"], row["digest_after"])), _reason(row))
    return table


def _stacked_cells(row: Mapping[str, Any], now: datetime, *, by_event: bool, trail: bool) -> list[Text]:
    target = _target(row)
    reason = _reason(row)
    if reason.plain:
        target.append("\n")
        target.append(reason)
    return [_text(row["seq"]), _text(relative_time(row["timestamp"], now)), _text(absolute_time(row["timestamp"])),
            *([_text(row["event_id"])] if by_event else []), _text(row["kind"]), status_text(row["status"]), target]


def _actions_stacked(cells: list[list[Text]], title: str | None, *, by_event: bool, trail: bool,
                     show_header: bool) -> FittedTable:
    from reconcile.render.fit import Column, FittedTable

    columns = [Column("seq", justify="right", style="dim", drop=2), Column("when", drop=3),
               Column("time (UTC)", style="dim", drop=1), *([Column("event")] if by_event else []),
               Column("kind"), Column("status"), Column("target / reason", wrap=True, min_width=24)]
    table = FittedTable(columns, title, show_header=show_header)
    for row in cells:
        table.add_row(*row)
    return table


def runs_table(runs: Sequence[RunRecord], now: datetime, *, title: str | None = None,
               trails: Sequence[str] | None = None, wide: bool = False) -> FittedTable:
    """One row per run; ``trails``: the audit trail of each run, in a first column.

    Never cut: the trail, the run id, ``started``, the outcome. When it does not fit, dropped first
    to last: the RFC 3339 start time, who ran it, how long it took, the policy commit, the mode;
    the action counts wrap (``wide``: every column)."""
    from reconcile.render.fit import Column, FittedTable

    columns = [
        *([Column("trail")] if trails is not None else []),
        Column("run"), Column("started"), Column("time (UTC)", style="dim", drop=1),
        Column("took", justify="right", drop=3), Column("mode", drop=5), Column("by", wrap=True, drop=2),
        Column("commit", drop=4), Column("outcome", wrap=True, min_width=10),
        Column("actions", wrap=True, min_width=14)]
    table = FittedTable(columns, title, wide)
    for i, run in enumerate(runs):
        mode = run.mode + (" (dry run)" if run.dry_run else "")
        table.add_row(
            *([_text(trails[i])] if trails is not None else []),
            _text(run.id), _text(relative_time(run.started_at, now)), _text(absolute_time(run.started_at)),
            _text(elapsed(run.started_at, run.finished_at)), _text(mode), _text(_actor(run)),
            _text((run.repo_commit or "")[:12]), _run_outcome(run), _text(summary_text(run.summary)),
            style="bold" if run.outcome == "unfinished" else None)
    return table


def _actor(run: RunRecord) -> str:
    return f"{run.actor or '?'}@{run.host or '?'}"


def _when(ts: str | None, now: datetime) -> Text:
    from rich.text import Text

    if not ts:
        return Text("")
    return Text.assemble(absolute_time(ts) + "  ", (f"({relative_time(ts, now)})", "dim"))


def _fields(pairs: Iterable[tuple[str, Text | str]]) -> RenderableType:
    """``name  value`` lines; a value with an id too long to sit beside the names goes under its name."""
    from rich.text import Text

    from reconcile.render.fit import Fields

    return Fields([(name, value if isinstance(value, Text) else _text(value)) for name, value in pairs])


def run_detail(run: RunRecord, actions: Sequence[Mapping[str, Any]], now: datetime, *,
               trail: str | None = None, wide: bool = False) -> RenderableType:
    """The run's fields (first the audit trail holding it, when given) and its actions (``wide``:
    every column of them)."""
    from rich.console import Group
    from rich.text import Text

    fields = _fields([
        *([("trail", _text(trail))] if trail is not None else []),
        ("run", _text(run.id, "bold")), ("outcome", _run_outcome(run)),
        ("mode", run.mode + (" (dry run)" if run.dry_run else "")), ("by", _actor(run)), ("pid", str(run.pid or "")),
        ("repo", run.repo_url or ""), ("commit", run.repo_commit or ""),
        ("started", _when(run.started_at, now)), ("finished", _when(run.finished_at, now)),
        ("took", elapsed(run.started_at, run.finished_at)), ("actions", summary_text(run.summary)),
        ("chain head", run.chain_head or "")])
    if not actions:
        return Group(fields, Text("\nno actions recorded", style="dim"))
    return Group(fields, Text(""), actions_table(actions, now, title=f"{len(actions)} actions", by_event=True,
                                                       wide=wide))


def event_detail(event: Mapping[str, Any], intent: Mapping[str, Any] | None, outcome: Mapping[str, Any] | None,
                 now: datetime, *, trail: str | None = None, wide: bool = False) -> RenderableType:
    """Every field of ``event`` and its digest before and after, side by side. When it is half of
    a mutation: the intent (BEFORE) and the outcome (AFTER) side by side, field by field.
    ``trail``: the audit trail holding it, as a first field.

    Side by side only where it fits with no id folded (about 160 columns for a mutation, with its
    full digests and hashes; ``wide``: always): narrower, each field's intent value, then under it
    ``→`` the outcome's where it differs; the digests one under the other."""
    from rich.console import Group
    from rich.text import Text

    from reconcile.render.fit import Either, Fields, longest_word

    first = [("trail", _text(trail))] if trail is not None else []
    status = status_text(event["status"])
    title = Text.assemble((event["event_id"], "bold"), "  ", event["kind"], " ", status, "  ", _text(event["target"]))
    if intent is None and outcome is None:
        fields = _fields([*first, *((name, _event_value(name, event.get(name), now)) for name in EVENT_FIELDS)])
        return Group(title, Text(""), _digests(event["digest_before"], event["digest_after"], wide), Text(""),
                     fields)
    table = _table()
    table.add_column("field", style="bold", no_wrap=True)
    before = f"BEFORE: intent {intent['event_id'] if intent else ''}".rstrip()
    table.add_column(before, overflow="fold", ratio=1)
    after = f"AFTER: outcome {outcome['event_id']}" if outcome else "AFTER: no outcome recorded"
    table.add_column(after, overflow="fold", ratio=1)
    stacked: list[tuple[str, Text]] = []
    lefts: list[Text] = [Text(before)]
    rights: list[Text] = [Text(after)]
    for name, value in first:
        table.add_row(name, value, value.copy())
        stacked.append((name, value.copy()))
    for name in EVENT_FIELDS:
        left = _event_value(name, intent.get(name), now) if intent else Text("")
        right = _event_value(name, outcome.get(name), now) if outcome else Text("")
        if intent and outcome and name in _COMPARED and intent.get(name) != outcome.get(name):
            right.stylize("bold")
        table.add_row(name, left, right)
        lefts.append(left)
        rights.append(right)
        both = left.copy()
        if outcome and right.plain != left.plain:
            both.append("\n→ ")
            both.append(right)
        stacked.append((name, both))
    names = max(len(name) for name, _ in stacked)
    needs = names + 2 + max(map(longest_word, lefts)) + 2 + max(map(longest_word, rights)) + 1
    legend = Text("each field: the intent's value (BEFORE), then → the outcome's (AFTER) where it differs"
                  if outcome else "each field: the intent's value (BEFORE); AFTER: no outcome recorded", style="dim")
    last = outcome or intent or event
    digests = _digests((intent or event)["digest_before"], last["digest_after"], wide)
    parts: list[RenderableType] = [title, Text(""), digests, Text(""),
                                   Either(table, needs, Group(legend, Fields(stacked)), wide)]
    if outcome is None:
        parts.append(Text("The run did not report back: the mutation may or may not have happened.",
                          style="bold yellow"))
    return Group(*parts)


_COMPARED = frozenset({"kind", "target", "policy", "status", "digest_before", "digest_after", "reason", "error",
                       "tags", "cause"})


def _digests(before: str | None, after: str | None, wide: bool = False) -> RenderableType:
    """``BEFORE → AFTER`` side by side, in full; one under the other where they do not fit."""
    from reconcile.render.fit import Either, Fields

    table = _table()
    table.add_column("digest BEFORE", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("digest AFTER", no_wrap=True)
    table.add_row(_text(before or "—"), "→", _text(after or "—"))
    needs = max(len(before or "—"), 13) + max(len(after or "—"), 12) + 6
    stacked = Fields([("digest BEFORE", _text(before or "—")), ("digest AFTER", _text(after or "—"))])
    return Either(table, needs, stacked, wide)


def _event_value(name: str, value: Any, now: datetime) -> Text:
    if name == "status" and value:
        return status_text(value)
    if name == "timestamp":
        return _when(value, now)
    if name == "dry_run" and value is not None:
        return _text("true" if value else "false")
    if name == "tags":
        return _text(tags_text({"tags": value}, ", "))
    return _text(value)


# --- pipes ----------------------------------------------------------------------------------------

def tsv_value(value: Any) -> str:
    """One TSV field: nothing truncated; tab, newline, CR, backslash and controls escaped."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).translate(_TSV_ESCAPES)


def tsv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["\t".join(columns)]
    lines.extend("\t".join(tsv_value(v) for v in row) for row in rows)
    return "\n".join(lines) + "\n"


def run_dict(run: RunRecord) -> dict[str, Any]:
    """A run as plain data (summary as a mapping), for exports."""
    return asdict(run)


def _run_row(run: RunRecord) -> list[Any]:
    values = run_dict(run)
    values["summary"] = json.dumps(run.summary, separators=(",", ":")) if run.summary is not None else None
    return [values[c] for c in RUN_COLUMNS]


def _action_row(row: Mapping[str, Any]) -> list[Any]:
    return [_plain(c, row.get(c)) for c in ACTION_COLUMNS]


def actions_tsv(rows: Iterable[Mapping[str, Any]], *, trail: bool = False) -> str:
    """``trail``: a leading ``trail`` column with each row's ``trail`` (rows from several audit trails)."""
    if trail:
        return tsv(("trail", *ACTION_COLUMNS), ([r.get("trail"), *_action_row(r)] for r in rows))
    return tsv(ACTION_COLUMNS, (_action_row(r) for r in rows))


def runs_tsv(runs: Iterable[RunRecord], *, trails: Sequence[str] | None = None) -> str:
    """``trails``: the audit trail of each run, in a leading ``trail`` column."""
    if trails is not None:
        return tsv(("trail", *RUN_COLUMNS), ([name, *_run_row(r)] for name, r in zip(trails, runs, strict=True)))
    return tsv(RUN_COLUMNS, (_run_row(r) for r in runs))


def run_detail_tsv(run: RunRecord, actions: Sequence[Mapping[str, Any]], *, trail: str | None = None) -> str:
    """The run's fields as ``field<TAB>value`` lines (first ``trail``, the audit trail holding it,
    when given), a blank line, then its actions' TSV."""
    first = [("trail", trail)] if trail is not None else []
    return (tsv(("field", "value"), [*first, *zip(RUN_COLUMNS, _run_row(run), strict=True)]) + "\n"
            + actions_tsv(actions))


def event_detail_tsv(event: Mapping[str, Any], intent: Mapping[str, Any] | None,
                     outcome: Mapping[str, Any] | None, *, trail: str | None = None) -> str:
    """``trail``: the audit trail holding the event, as a first field."""
    if intent is None and outcome is None:
        first: list[tuple[Any, ...]] = [("trail", trail)] if trail is not None else []
        return tsv(("field", "value"), [*first, *((name, _plain(name, event.get(name))) for name in EVENT_FIELDS)])
    first = [("trail", trail, trail)] if trail is not None else []
    return tsv(("field", "before", "after"),
               [*first, *((name, _plain(name, (intent or {}).get(name)), _plain(name, (outcome or {}).get(name)))
                          for name in EVENT_FIELDS)])


def _plain(name: str, value: Any) -> Any:
    if name == "tags":
        return tags_text({"tags": value})
    return bool(value) if name == "dry_run" and value is not None else value


def unfinished_warnings(unfinished: Sequence[RunRecord], pending: Sequence[dict[str, Any]]) -> Iterator[str]:
    """One line per run that never finished, or finished leaving intents without an outcome."""
    by_run: dict[str, list[dict[str, Any]]] = {}
    for intent in pending:
        by_run.setdefault(intent["run_id"], []).append(intent)
    for run in unfinished:
        state = f"is still running (pid {run.pid})" if run.is_running() else "never finished"
        text = f"run {run.id} (started {run.started_at}, {run.actor}@{run.host}) {state}"
        yield text + _intents(by_run.pop(run.id, []))
    for run_id, intents in by_run.items():
        yield f"run {run_id} finished" + _intents(intents)


def _intents(intents: Sequence[dict[str, Any]]) -> str:
    if not intents:
        return ""
    listed = ", ".join(f"{i['event_id']} ({i['kind']} {i['target']})" for i in intents)
    return f"; {len(intents)} intent{'s' * (len(intents) != 1)} without outcome: {listed}"
