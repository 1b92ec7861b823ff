"""One plan, three renderings: rich for terminals, markdown for pull-request comments, JSON for
machines (schema: schemas/plan.schema.json). A plan holds no secret, so none can show here."""

from __future__ import annotations

import bisect
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from rich.console import Group, RenderableType
from rich.text import Text

from reconcile.defaults import MARKDOWN_LIMIT as MARKDOWN_LIMIT  # (re-exported: its home before defaults)
from reconcile.plan.actions import Action, ActionKind, Block, Cause, parse_target
from reconcile.plan.plan import FORMAT_VERSION, Plan, count_kinds
from reconcile.policy.secrets import redact

if TYPE_CHECKING:
    from reconcile.render.fit import FittedTable

_VERBS = {"prune": "to prune", "untag": "to untag", "promote": "to promote", "deploy": "to deploy",
          "rollback": "to roll back", "blocked": "blocked", "keep": "kept"}
_STYLES = {"prune": "bold red", "untag": "red", "promote": "green", "deploy": "cyan",
           "rollback": "bold magenta", "blocked": "bold yellow", "keep": "dim"}


def summary_line(plan: Plan) -> str:
    counts = plan.counts()
    parts = [f"{n} {_VERBS[kind]}" for kind, n in counts.items()]
    head = "no changes" if not plan.has_changes else f"{len(plan.changes)} change{'s' * (len(plan.changes) != 1)}"
    commit = f" at {plan.commit[:12]}" if plan.commit else ""
    return f"{head}{commit}: " + (", ".join(parts) if parts else "nothing to do")


# --- JSON ---------------------------------------------------------------------------------------

CONTENT_HASH = "contentHash"
MAX_NESTING = 16  # a plan nests 4 deep (document, actions, action, tags)
MAX_PLAN_BYTES = 64 * 1024 * 1024
_PLAN_FIELDS = {"formatVersion", "repo", "commit", "observedAt", "fingerprint", "summary", "hasChanges", "errors",
                "actions", "warnings", CONTENT_HASH}
_ACTION_FIELDS = {"policy", "kind", "target", "digestBefore", "digestAfter", "reason", "tags", "mutates", "dependsOn",
                  "block", "cause"}


def to_json(plan: Plan) -> str:
    """Deterministic: same plan, same bytes. ``contentHash`` covers everything else in it, so
    ``apply --plan`` can tell a saved plan that was edited."""
    document = plan_document(plan)
    document[CONTENT_HASH] = content_hash(document)
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


_INDENTED = json.JSONEncoder(indent=2, sort_keys=True)  # what json.dumps(..., indent=2, sort_keys=True) uses
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class Writer(Protocol):
    """Where text goes: a text file, ``sys.stdout``, an ``io.StringIO``."""

    def write(self, text: str, /) -> object: ...


def write_json(plan: Plan, *outs: Writer, extra: Mapping[str, Any] | None = None) -> str:
    """:func:`to_json` written to each of ``outs`` a piece at a time, the same bytes, without the
    whole document (or its text) in memory: an action at a time, each encoded and hashed as it is
    written; returns the content hash. ``extra``: more top-level members, covered by the content
    hash, as ``plan --format json`` adds ``connectionChanges`` (not redacted, as there).

    The document's members are in key order; ``contentHash`` comes after ``actions``, so the hash
    is complete when it is reached: the members after it are small and encoded up front."""
    members: dict[str, Any] = _redacted(_head(plan))
    if extra:
        members.update(extra)
    keys = sorted([*members, "actions"])
    at = bisect.bisect_left(keys, CONTENT_HASH)
    hasher = hashlib.sha256()

    def hashed(text: str) -> None:
        hasher.update(text.encode("utf-8"))

    def write(text: str) -> None:
        for out in outs:
            out.write(text)

    def member(index: int, key: str) -> None:  # in the indented document, one level down
        write((",\n  " if index else "{\n  ") + _INDENTED.encode(key) + ": ")
        if key == "actions":
            write_actions()
        else:
            write(_INDENTED.encode(members[key]).replace("\n", "\n  "))

    def write_actions() -> None:  # the document's biggest part, an action at a time: hashed, then written
        write("[" if plan.actions else "[]")
        for n, action in enumerate(plan.actions):
            encoded = _redacted(_action_json(action))
            hashed(("," if n else "") + _CANONICAL.encode(encoded))
            write((",\n    " if n else "\n    ") + _INDENTED.encode(encoded).replace("\n", "\n    "))
        if plan.actions:
            write("\n  ]")

    hashed("{")
    for index, key in enumerate(keys[:at]):  # up to (and with) the actions, hashed as written
        hashed(("," if index else "") + _CANONICAL.encode(key) + ":")
        if key == "actions":
            hashed("[")
            member(index, key)
            hashed("]")
        else:
            hashed(_CANONICAL.encode(members[key]))
            member(index, key)
    for index, key in enumerate(keys[at:], start=at):  # the rest, small: hashed before the hash is written
        hashed(("," if index else "") + _CANONICAL.encode(key) + ":" + _CANONICAL.encode(members[key]))
    hashed("}")
    digest = "sha256:" + hasher.hexdigest()
    members[CONTENT_HASH] = digest
    for index, key in enumerate([CONTENT_HASH, *keys[at:]], start=at):
        member(index, key)
    write("\n}\n")
    return digest


def _head(plan: Plan) -> dict[str, Any]:
    """Every member of the plan's document but its actions (and content hash)."""
    return {"formatVersion": FORMAT_VERSION, "repo": plan.repo, "commit": plan.commit,
            "observedAt": plan.observed_at, "fingerprint": plan.fingerprint, "summary": plan.counts(),
            "hasChanges": plan.has_changes, "errors": list(plan.errors),
            **({"warnings": list(plan.warnings)} if plan.warnings else {})}


def plan_document(plan: Plan) -> dict[str, Any]:
    """The JSON document of a plan, without its content hash; no secret value in any of its strings
    (a registry may echo one into an error, or name a tag like one)."""
    return _redacted({
        "formatVersion": FORMAT_VERSION, "repo": plan.repo, "commit": plan.commit,
        "observedAt": plan.observed_at, "fingerprint": plan.fingerprint, "summary": plan.counts(),
        "hasChanges": plan.has_changes, "errors": list(plan.errors), "actions": [_action_json(a) for a in plan.actions],
        **({"warnings": list(plan.warnings)} if plan.warnings else {})})


_Json = TypeVar("_Json")


def _redacted(value: _Json) -> _Json:
    if isinstance(value, str):
        return redact(value)  # type: ignore[return-value]
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, list):
        return [_redacted(v) for v in value]  # type: ignore[return-value]
    return value


def content_hash(document: dict[str, Any]) -> str:
    """``sha256:`` of the canonical JSON (sorted keys, no whitespace, UTF-8) of ``document``
    without its ``contentHash``."""
    canonical = json.dumps({k: v for k, v in document.items() if k != CONTENT_HASH}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _action_json(action: Action) -> dict[str, Any]:
    return {"policy": action.policy, "kind": action.kind.value, "target": action.target,
            "digestBefore": action.digest_before, "digestAfter": action.digest_after,
            "reason": action.reason, "tags": list(action.tags), "mutates": action.mutates,
            **({"dependsOn": action.depends_on} if action.depends_on else {}),
            **({"block": action.block.value} if action.block else {}),
            **({"cause": action.cause.value} if action.cause else {})}


# --- markdown -----------------------------------------------------------------------------------

# MARKDOWN_LIMIT (GitHub's, 65,536 characters) is in reconcile.defaults: plan --help shows it.
GITLAB_MARKDOWN_LIMIT = 1_000_000  # GitLab's default note limit (an instance setting; set --markdown-limit)
STEP_SUMMARY_LIMIT = 1024 * 1024  # GitHub's cap on a step's $GITHUB_STEP_SUMMARY, in bytes
FULL_PLAN_HINT = "the full plan is in the JSON (`plan --out plan.json`, uploaded as an artifact)"
_KIND_ORDER = ("prune", "untag", "promote", "deploy", "rollback", "blocked", "keep")
_DELETIONS = ("prune", "untag")
_NOTICE_ROOM = 200  # what the truncation notice and closing tags take, at most


def md_text(text: str, *, table: bool = True) -> str:
    """A user string (a reason, a regex, an error) as GitHub-flavoured markdown that shows it as it is:
    backslashes, backticks, emphasis and link characters escaped, ``<`` and ``&`` as entities (no HTML
    gets through), pipes escaped so a table cell stays one cell, newlines as ``<br>`` in a table and as
    spaces elsewhere. ``>`` is left alone: mid-line it opens nothing."""
    text = redact(text).replace("&", "&amp;").replace("<", "&lt;")
    text = re.sub(r"([\\`*_\[\]~|])", r"\\\1", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\n", "<br>" if table else " ")


def md_code(text: str, *, table: bool = True) -> str:
    """A user string as a code span: nothing in it is markdown (backslashes stay), a fence longer than
    any run of backticks in it, pipes escaped in a table (GFM splits cells before code spans), no
    newline (a code span cannot hold one)."""
    text = redact(text).replace("\r", " ").replace("\n", " ")
    if table:
        text = text.replace("|", "\\|")
    runs = [len(r) for r in re.findall(r"`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or (text.startswith(" ") and text.strip()) else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_html(text: str) -> str:
    """A user string inside raw HTML (a ``<summary>``): entities for ``&``, ``<``, ``>``; one line."""
    return redact(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace(
        "\r", " ").replace("\n", " ")


def tag_order(tag: str) -> tuple[tuple[int, int | str], ...]:
    """Natural (version) order: ``build-2`` before ``build-10``, ``v1.9.0`` before ``v1.10.0``."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", tag) if part)


@dataclass
class _Unit:
    """Lines that are shown whole or not at all, and how many actions they show."""

    lines: list[str]
    actions: int = 0
    opens: str | None = None  # what must close it when the rendering stops inside it ("</details>")
    closes: bool = False
    section: int = -1  # the policy section it is in (-1: the head)
    group: int = -1  # the part of it that shares the room left: a repository, or the section
    always: bool = False  # shown even when rows are cut (a count of keeps)

    @property
    def droppable(self) -> bool:
        return not self.always and (self.actions > 0 or self.lines[0].startswith("- "))

    @property
    def size(self) -> int:
        return sum(len(line) + 1 for line in self.lines)


def to_markdown(plan: Plan, limit: int = MARKDOWN_LIMIT) -> str:
    """For a pull-request comment or a step summary, never over ``limit`` characters: the summary
    line and a table of counts per kind per policy first, then what could not be decided, blocked
    actions and warnings (never folded), then one ``<details>`` section per policy. A retention
    policy's deletions are listed once, by repository, in tag order; when space is short its keeps
    are counted per repository, and what still does not fit is cut by whole rows and counted."""
    text, _ = _fit(_units(plan, summarise_keeps=False), limit)
    if text is None:
        short = _units(plan, summarise_keeps=True)
        text, _ = _fit(short, limit)
        if text is None:
            text, _ = _fit(short, limit, cut=True)
    assert text is not None
    return text


def _units(plan: Plan, *, summarise_keeps: bool) -> list[_Unit]:
    by_policy = plan.by_policy()
    kinds = [k for k in _KIND_ORDER if any(a.kind == k for a in plan.actions)]
    units = [_Unit([f"### reconcile plan: {md_text(summary_line(plan), table=False)}", ""])]
    if by_policy:
        header = "| policy | " + " | ".join(kinds) + " |"
        units.append(_Unit([header, "| --- |" + " ---: |" * len(kinds)]))
        for policy, actions in by_policy.items():
            counts = count_kinds(actions)
            units.append(_Unit(["| " + md_code(policy) + " | " + " | ".join(str(counts.get(k, 0)) for k in kinds)
                                + " |"]))
        if len(by_policy) > 1:
            total = plan.counts()
            units.append(_Unit(["| **total** | " + " | ".join(f"**{total.get(k, 0)}**" for k in kinds) + " |"]))
        units.append(_Unit([""]))
    if plan.errors:
        units.append(_Unit(["**⚠️ Could not be decided:**", ""]))
        units += [_Unit([f"- ⚠️ {md_text(e, table=False)}"]) for e in plan.errors]
        units.append(_Unit([""]))
    blocked = [a for a in plan.actions if a.kind == "blocked"]
    if blocked:
        units.append(_Unit(["**🚫 Blocked:**", ""]))
        units += [_Unit([f"- {'⛔' if a.is_error else '⏸️'} {md_code(a.policy, table=False)} "
                         f"{md_code(a.target, table=False)}{_tags(a)}: {md_text(a.reason, table=False)}"], 1)
                  for a in blocked]
        units.append(_Unit([""]))
    if plan.warnings:
        units.append(_Unit(["**Warnings:**", ""]))
        units += [_Unit([f"- {md_text(w, table=False)}"]) for w in plan.warnings]
        units.append(_Unit([""]))
    for index, (policy, actions) in enumerate(by_policy.items()):
        first = len(units)
        shown = [a for a in actions if a.kind != "blocked"]  # blocked: listed above, once
        said = ", ".join(f"{n} {_VERBS[k]}" for k, n in count_kinds(actions).items())
        units.append(_Unit([f"<details><summary>{md_html(policy)}: {md_html(said)}</summary>", ""],
                           opens="</details>"))
        if not shown:
            units.append(_Unit(["_nothing but what is blocked (above)_", ""]))
        if policy.startswith("RetentionPolicy/"):
            units += _retention_units(shown, summarise_keeps)
        else:
            units += _generic_units(shown, summarise_keeps)
        units.append(_Unit(["</details>", ""], closes=True))
        for unit in units[first:]:
            unit.section = index
    group = -1
    for unit in units:
        if unit.opens or unit.lines[0].startswith("#### "):
            group += 1
        unit.group = group if unit.section >= 0 else -1
    return units


def _tags(action: Action, *, table: bool = False) -> str:
    return f" (tags: {', '.join(md_code(t, table=table) for t in action.tags)})" if action.tags else ""


def _repository(target: str) -> str:
    try:
        registry, repository, _, _ = parse_target(target)
    except ValueError:
        return target
    return f"{registry}/{repository}"


def _short(digest: str | None) -> str:
    return md_code(digest[:19]) if digest else ""


def _retention_units(actions: list[Action], summarise_keeps: bool) -> list[_Unit]:
    """Per repository: its deletions (a prune with the tags it removes, once; an untag; the platform
    manifests and referrers that go with a prune right after it), in tag order; then its keeps."""
    repositories: dict[str, list[Action]] = {}
    for action in actions:
        repositories.setdefault(_repository(action.target), []).append(action)
    units: list[_Unit] = []
    for repository in sorted(repositories):
        group = repositories[repository]
        deletions = [a for a in group if a.kind in _DELETIONS]
        others = [a for a in group if a.kind not in _DELETIONS]
        said = ", ".join([f"{len(deletions)} to delete"] * bool(deletions) +
                         [f"{n} {_VERBS[k]}" for k, n in count_kinds(others).items()])
        units.append(_Unit([f"#### {md_code(repository, table=False)}: {said}", ""]))
        if deletions:
            units.append(_Unit(["| delete | tags | digest | reason |", "| --- | --- | --- | --- |"]))
            units += [_Unit([f"| {a.kind}{' (with the one above)' if a.depends_on else ''} | "
                             f"{', '.join(md_code(t) for t in _removed_tags(a)) or '—'} | "
                             f"{_short(a.digest_before)} | {md_text(a.reason)} |"], 1)
                      for a in _in_tag_order(deletions)]
            units.append(_Unit([""]))
        if others:
            units += _kept_units(others, summarise_keeps)
    return units


def _removed_tags(action: Action) -> list[str]:
    if action.kind == "untag":
        _, _, tag, _ = parse_target(action.target)
        return [tag] if tag else list(action.tags)
    return sorted(action.tags, key=tag_order)


def _in_tag_order(deletions: list[Action]) -> list[Action]:
    by_target = {a.target: a for a in deletions}

    def key(action: Action) -> tuple[Any, ...]:
        chain = [action]
        while (parent := by_target.get(chain[-1].depends_on or "")) is not None and parent not in chain:
            chain.append(parent)
        root = chain[-1]
        tags = _removed_tags(root)
        first = (0, tag_order(tags[0])) if tags else (1, ())
        return (first, root.target, len(chain), action.target)

    return sorted(deletions, key=key)


def _kept_units(actions: list[Action], summarise: bool) -> list[_Unit]:
    if summarise:
        kinds = ", ".join(f"{n} {_VERBS[k]}" for k, n in count_kinds(actions).items())
        return [_Unit([f"- {kinds} (one row each in the JSON plan)", ""], len(actions), always=True)]
    rows = sorted(actions, key=lambda a: (a.kind, tag_order(_tag_of(a)), a.target))
    return [_Unit(["| action | target | reason |", "| --- | --- | --- |"])] + [
        _Unit([f"| {a.kind} | {md_code(a.target)}{_tags(a, table=True)} | {md_text(a.reason)} |"], 1) for a in rows
    ] + [_Unit([""])]


def _tag_of(action: Action) -> str:
    try:
        _, _, tag, _ = parse_target(action.target)
    except ValueError:
        return action.target
    return tag or (action.tags[0] if action.tags else "")


def _generic_units(actions: list[Action], summarise_keeps: bool) -> list[_Unit]:
    changes = [a for a in actions if a.kind != "keep"]
    keeps = [a for a in actions if a.kind == "keep"]
    units: list[_Unit] = []
    if changes or (keeps and not summarise_keeps):
        rows = changes + ([] if summarise_keeps else keeps)
        units.append(_Unit(["| action | target | change | reason |", "| --- | --- | --- | --- |"]))
        units += [_Unit([f"| {'**rollback**' if a.kind == 'rollback' else a.kind} | {md_code(a.target)}"
                         f"{_tags(a, table=True)} | {_change(a)} | {md_text(a.reason)} |"], 1) for a in rows]
        units.append(_Unit([""]))
    if keeps and summarise_keeps:
        units.append(_Unit([f"- {len(keeps)} kept (one row each in the JSON plan)", ""], len(keeps), always=True))
    return units


def _change(action: Action) -> str:
    if action.digest_before == action.digest_after or not (action.digest_before or action.digest_after):
        return _short(action.digest_after)
    return f"{_short(action.digest_before) or '—'} → {_short(action.digest_after) or '—'}"


def _fit(units: list[_Unit], limit: int, *, cut: bool = False) -> tuple[str | None, int]:
    """The units in order if they fit in ``limit`` characters (None if not and ``cut`` is not asked).
    With ``cut``: the head and every section's frame stay, the head's rows (errors, blocked) come
    first, then the room left is shared between the sections and their repositories (what one does
    not need goes to the others), each keeping its first rows; a section says how many of its actions it does not
    show, and a notice at the end how many in all."""
    total = sum(u.actions for u in units)
    whole = "\n".join(line for u in units for line in u.lines).rstrip("\n") + "\n"
    if len(whole) <= limit:
        return whole, total
    if not cut:
        return None, total
    sections = sorted({u.section for u in units if u.section >= 0})
    fixed = sum(u.size for u in units if not u.droppable) + _NOTICE_ROOM * (len(sections) + 1)
    if fixed > limit:
        return _cut_in_order(units, limit, total)
    budget = limit - fixed
    chosen: set[int] = set()
    for i, unit in enumerate(units):  # the head's rows: errors and blocked actions, in order
        if unit.section < 0 and unit.droppable:
            if unit.size > budget:
                break
            chosen.add(i)
            budget -= unit.size
    groups = sorted({u.group for u in units if u.group >= 0})
    need = {g: sum(u.size for u in units if u.group == g and u.droppable) for g in groups}
    share: dict[int, int] = {}
    for n, g in enumerate(sorted(groups, key=lambda g: need[g])):  # water-filling
        share[g] = min(need[g], budget // (len(groups) - n))
        budget -= share[g]
    stopped: set[int] = set()
    for i, unit in enumerate(units):
        if unit.group >= 0 and unit.droppable and unit.group not in stopped:
            if unit.size > share[unit.group]:
                stopped.add(unit.group)
                continue
            chosen.add(i)
            share[unit.group] -= unit.size
    lines: list[str] = []
    shown = 0
    for i, unit in enumerate(units):
        if unit.droppable and i not in chosen:
            continue
        if unit.closes:
            hidden = sum(u.actions for j, u in enumerate(units)
                         if u.section == unit.section and j not in chosen and u.droppable)
            if hidden:
                lines += [f"_… {hidden} more action{'s' * (hidden != 1)} of this policy not shown_", ""]
        lines += unit.lines
        shown += unit.actions
    return _with_notice(lines, total - shown, limit), shown


def _cut_in_order(units: list[_Unit], limit: int, total: int) -> tuple[str, int]:
    """Whole units up to the first that does not fit, the open section closed (when even the
    sections' frames do not fit)."""
    lines: list[str] = []
    size, shown, open_close = 0, 0, None
    room = min(_NOTICE_ROOM, limit // 2)
    for unit in units:
        pending = len(open_close) + 2 if open_close and not unit.closes else 0
        if size + unit.size + pending + room > limit:
            break
        lines += unit.lines
        size += unit.size
        shown += unit.actions
        if unit.opens:
            open_close = unit.opens
        if unit.closes:
            open_close = None
    if open_close:
        lines += ["", open_close]
    return _with_notice(lines, total - shown, limit), shown


def _with_notice(lines: list[str], hidden: int, limit: int) -> str:
    notice = f"_… {hidden} action{'s' * (hidden != 1)} not shown; {FULL_PLAN_HINT}._"
    return ("\n".join(lines).rstrip("\n") + "\n\n" + notice + "\n")[:limit]


# --- rich ---------------------------------------------------------------------------------------

def to_rich(plan: Plan, *, wide: bool = False) -> RenderableType:
    """Summary counts first, then a table per policy; deletions highlighted.

    Each table, the widest that fits the terminal of (``wide``: always the first):

    1. action, target, reason: digests in full, no target word (a digest, a cosign tag) folded;
    2. the same with each digest as ``sha256:`` and 12 hex digits (as ``audit list`` shows them;
       ``--wide``, the JSON plan and ``audit show`` have them in full);
    3. action, and the target with its reason under it (dim): short digests, the reason wrapping
       across the width; only a word wider than the terminal (a cosign tag at 80 columns) folds.
    """
    from reconcile.render.fit import Either

    parts: list[RenderableType] = [Text(summary_line(plan), style="bold")]
    for error in plan.errors:
        parts.append(Text(f"could not be decided: {error}", style="bold yellow"))
    for warning in plan.warnings:
        parts.append(Text(f"warning: {warning}", style="yellow"))
    for policy, actions in plan.by_policy().items():
        full = _policy_table(policy, actions, short=False, wide=wide)
        if wide:
            parts.append(full)
            continue
        short = _policy_table(policy, actions, short=True, wide=False)
        stacked = _policy_table(policy, actions, short=True, wide=False, stacked=True)
        parts.append(Either(full, full.needed(range(3), comfortable=True),
                            Either(short, short.needed(range(3), comfortable=True), stacked)))
    return Group(*parts)


_FULL_DIGEST = re.compile(r"(sha256:[0-9a-f]{12})[0-9a-f]{52}")


def _policy_table(policy: str, actions: list[Action], *, short: bool, wide: bool,
                  stacked: bool = False) -> FittedTable:
    from reconcile.render.fit import Column, FittedTable

    if stacked:
        columns = [Column("action"), Column("target / reason", wrap=True, min_width=20)]
    else:
        columns = [Column("action"), Column("target", wrap=True, whole_words=True, min_width=20),
                   Column("reason", wrap=True, min_width=20, comfort=40)]
    table = FittedTable(columns, policy, wide)
    for action in actions:
        style = _STYLES[action.kind]
        target = _FULL_DIGEST.sub(r"\1", action.target) if short else action.target
        cell = Text(target, style=style if action.mutates else "")
        if action.tags:
            cell.append(f"\n(tags: {', '.join(action.tags)})", style=style if action.mutates else "")
        if stacked:
            cell.append("\n")
            cell.append(Text(action.reason, style="dim"))
            table.add_row(Text(action.kind, style=style), cell)
        else:
            table.add_row(Text(action.kind, style=style), cell, Text(action.reason))
    return table


PLAN_TSV_COLUMNS = ("policy", "kind", "target", "digest_before", "digest_after", "tags", "mutates", "block", "cause",
                    "reason")


def to_tsv(plan: Plan) -> str:
    """One action a line with a header, as the audit commands print when piped: nothing cut (digests
    in full), tags comma-separated, tabs and newlines in values escaped. The actions alone: the
    summary, errors and warnings go to stderr."""
    from reconcile.render.audit import tsv

    return tsv(PLAN_TSV_COLUMNS, ([redact(a.policy), a.kind.value, redact(a.target), a.digest_before, a.digest_after,
                                   redact(",".join(a.tags)) or None, a.mutates, a.block.value if a.block else None,
                                   a.cause.value if a.cause else None, redact(a.reason)] for a in plan.actions))


class PlanFileError(ValueError):
    """Not a plan this version can apply; the message says why, without a traceback."""


@dataclass(frozen=True)
class SavedPlan:
    plan: Plan
    document: dict[str, Any]  # as read, without its content hash
    claimed_hash: str  # the contentHash the file carries
    actual_hash: str  # the one its content has

    @property
    def intact(self) -> bool:
        return self.claimed_hash == self.actual_hash


def from_json(text: str) -> Plan:
    """A plan saved by ``to_json``; ValueError when it is not one this version can apply. The
    content hash is not checked here (``read_saved`` does)."""
    return _plan(_parse(text))


def read_saved(text: str) -> SavedPlan:
    """A saved plan for ``apply --plan``: well formed, of this format version, with a content hash
    (PlanFileError otherwise). Whether the hash matches is for the caller to act on (``intact``)."""
    document = _parse(text)
    claimed = document.get(CONTENT_HASH)
    if claimed is None:
        raise PlanFileError("it has no contentHash, so it cannot be checked for edits (it was not saved by this "
                            "version of `reconcile plan --out`)")
    if not isinstance(claimed, str):
        raise PlanFileError("contentHash is not a string")
    plan = _plan(document)  # its own checks first: they name the action and the field in words
    _conforms(document)
    rest = {k: v for k, v in document.items() if k != CONTENT_HASH}
    return SavedPlan(plan, rest, claimed, content_hash(rest))


def _conforms(document: dict[str, Any]) -> None:
    """The document against ``schemas/plan.schema.json``: every field's type and every kind, block
    and cause named there, before anything reads it; the first violation, where it is."""
    import jsonschema  # only apply --plan reads a plan file

    from reconcile.policy.schema import schemas_dir

    schema = json.loads((schemas_dir() / "plan.schema.json").read_text())
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(document))
    if error is not None:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path) or "the top"
        raise PlanFileError(f"it does not follow the plan schema at {where.lstrip('.')}: {error.message[:200]}")


_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _parse(text: str) -> dict[str, Any]:
    if len(text) > MAX_PLAN_BYTES:
        raise PlanFileError(f"it is over {MAX_PLAN_BYTES // (1024 * 1024)} MiB")
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):  # before json.loads, which recurses
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_NESTING:
                raise PlanFileError(f"it nests deeper than {MAX_NESTING} levels; a plan nests 4")
        elif token in "]}":
            depth -= 1
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except (json.JSONDecodeError, RecursionError) as e:
        raise PlanFileError(f"it is not JSON: {e}") from None
    if not isinstance(document, dict) or "formatVersion" not in document:
        raise PlanFileError("it is not a reconcile plan (a JSON object with formatVersion, as `plan --out` saves)")
    if type(document["formatVersion"]) is not int or document["formatVersion"] != FORMAT_VERSION:
        raise PlanFileError(f"not a reconcile plan of format version {FORMAT_VERSION} "
                            f"(formatVersion {json.dumps(document['formatVersion'])[:40]})")
    return document


def _no_constant(name: str) -> None:
    raise PlanFileError(f"it is not a reconcile plan: {name} is not a JSON value")


def _plan(document: dict[str, Any]) -> Plan:
    _fields(document, _PLAN_FIELDS, {"repo", "commit", "observedAt", "fingerprint", "errors", "actions"}, "the plan")
    _typed(document, "repo", str)
    _typed(document, "commit", (str, type(None)))
    _typed(document, "observedAt", str)
    _typed(document, "fingerprint", str)
    errors = _strings(document, "errors")
    warnings = _strings(document, "warnings") if "warnings" in document else ()
    if not isinstance(document["actions"], list):
        raise PlanFileError("actions is not a list")
    actions = tuple(_action(a, i) for i, a in enumerate(document["actions"]))
    return Plan(document["repo"], document["commit"], document["observedAt"], actions, errors,
                document["fingerprint"], warnings)


def _action(raw: Any, index: int) -> Action:
    where = f"actions[{index}]"
    if not isinstance(raw, dict):
        raise PlanFileError(f"{where} is not an object")
    _fields(raw, _ACTION_FIELDS, {"policy", "kind", "target", "digestBefore", "digestAfter", "reason", "tags"}, where)
    kind = _member(ActionKind, raw["kind"], "action kind", where)
    for name, types in (("policy", str), ("target", str), ("digestBefore", (str, type(None))),
                        ("digestAfter", (str, type(None))), ("reason", str), ("dependsOn", (str, type(None))),
                        ("mutates", bool)):
        if name in raw:
            _typed(raw, name, types, where)
    block = _member(Block, raw["block"], "block", where) if "block" in raw else None
    cause = _member(Cause, raw["cause"], "cause", where) if "cause" in raw else None
    action = Action(raw["policy"], kind, raw["target"], raw["digestBefore"], raw["digestAfter"], raw["reason"],
                    _strings(raw, "tags", where), raw.get("dependsOn"), block, cause)
    if "mutates" in raw and raw["mutates"] != action.mutates:
        raise PlanFileError(f"{where}: mutates is {json.dumps(raw['mutates'])} for a {action.kind}")
    return action


_E = TypeVar("_E", ActionKind, Block, Cause)


def _member(enum: type[_E], value: Any, what: str, where: str) -> _E:
    """``value`` as a member of ``enum``; a PlanFileError naming the action, the field and the bad value
    otherwise (a plan this version cannot act on must not be half-understood)."""
    if isinstance(value, str):
        try:
            return enum(value)
        except ValueError:
            pass
    raise PlanFileError(f"{where}: unknown {what} {json.dumps(value)[:40]} (known: {', '.join(enum)})")


def _fields(raw: dict[str, Any], known: set[str], required: set[str], where: str) -> None:
    if unknown := sorted(set(raw) - known):
        raise PlanFileError(f"{where} has unknown field {json.dumps(unknown[0])[:60]}")
    if missing := sorted(required - set(raw)):
        raise PlanFileError(f"{where} has no {missing[0]}")


def _typed(raw: dict[str, Any], name: str, types: type | tuple[type, ...], where: str = "the plan") -> None:
    if not isinstance(raw[name], types):
        raise PlanFileError(f"{where}: {name} is a {type(raw[name]).__name__}, not what a plan holds there")


def _strings(raw: dict[str, Any], name: str, where: str = "the plan") -> tuple[str, ...]:
    value = raw[name]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PlanFileError(f"{where}: {name} is not a list of strings")
    return tuple(value)
