"""Pull-request mode on the command line: what ``--ref`` changes in Registries and Clusters, shown as
changes to review (the library loads the policies with the trusted ref's connections and never
connects to what only ``--ref`` defines); and the plan as forges take it: markdown within a
comment's limit, a GitHub step summary and workflow annotations."""

from __future__ import annotations

import json
import os
from pathlib import Path

from rich.console import Console

from reconcile.plan import Plan
from reconcile.policy.model import ConnectionChange, PolicySet
from reconcile.policy.secrets import redact
from reconcile.policy.trust import described_changes
from reconcile.render.plan import (
    CONTENT_HASH,
    MARKDOWN_LIMIT,
    STEP_SUMMARY_LIMIT,
    Writer,
    content_hash,
    md_code,
    md_text,
    plan_document,
    summary_line,
    to_json,
    to_markdown,
    write_json,
)

ANNOTATIONS_PER_KIND = 10  # GitHub shows at most 10 error and 10 warning annotations per step


def plan_json(plan: Plan, policies: PolicySet) -> str:
    """``to_json``, with ``connectionChanges`` (covered by the content hash) when there are any."""
    if not policies.connection_changes:
        return to_json(plan)
    document = plan_document(plan)
    document["connectionChanges"] = described_changes(policies.connection_changes)
    document[CONTENT_HASH] = content_hash(document)
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def write_plan_json(plan: Plan, policies: PolicySet, *outs: Writer) -> None:
    """:func:`plan_json` written to each of ``outs`` an action at a time (the same bytes), without
    the document in memory (``reconcile.render.plan.write_json``)."""
    extra = {"connectionChanges": described_changes(policies.connection_changes)} \
        if policies.connection_changes else None
    write_json(plan, *outs, extra=extra)


def _code(text: str) -> str:
    return md_code(text, table=False)


def _line(change: ConnectionChange) -> str:
    return f"{change.kind}/{change.name} {change.change}: " + "; ".join(change.details)


def plan_markdown(plan: Plan, policies: PolicySet, limit: int = MARKDOWN_LIMIT) -> str:
    """The connection review first (it is what a reviewer must not miss), then the plan; all of it
    within ``limit`` characters (the review is cut by whole lines only if it alone would not leave
    the plan room for its summary)."""
    if not policies.connection_changes:
        return to_markdown(plan, limit=limit)
    head = [f"### ⚠️ Connection changes (not used by this plan): {len(policies.connection_changes)}", "",
            f"Registries, Clusters and Notifications come from the trusted ref {_code(policies.trusted_ref or '')} "
            f"(commit {_code((policies.trusted_commit or '')[:12])}); what this ref changes in them takes effect only "
            "once merged, and nothing here was connected to with it. Review:", ""]
    items = []
    for change in policies.connection_changes:
        details = "; ".join(_code(d) for d in change.details)
        items.append(f"- **{change.kind}/{_code(change.name)}** {change.change}{': ' + details if details else ''}"
                     f" — {md_text(change.used, table=False)}")
    room = max(limit - min(limit // 2, 2000), 0)  # the plan keeps at least its summary
    section = "\n".join(head + items) + "\n\n"
    if len(section) > room:
        kept: list[str] = []
        for item in items:
            if len("\n".join(head + kept + [item])) + 100 > room:
                break
            kept.append(item)
        section = "\n".join(head + kept + ["", f"_… {len(items) - len(kept)} more connection changes not shown; "
                                                "the JSON plan lists them all (`connectionChanges`)._"]) + "\n\n"
    return section + to_markdown(plan, limit=max(limit - len(section), 0))


def step_summary(plan: Plan, policies: PolicySet, path: Path) -> None:
    """Append the markdown plan to GitHub's step summary file, within what is left of its 1 MiB."""
    used = path.stat().st_size if path.exists() else 0
    room = STEP_SUMMARY_LIMIT - used - 2
    limit = room
    while limit > 0:
        text = plan_markdown(plan, policies, limit=limit)
        size = len(text.encode("utf-8"))
        if size <= room:
            break
        limit = limit * room // size - 1  # characters are bytes or more; shrink until the bytes fit
    else:
        text = ""
    with path.open("a", encoding="utf-8") as summary:
        summary.write(("\n" if used else "") + text)


def _escape_data(text: str) -> str:
    return redact(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(level: str, message: str, title: str | None = None) -> str:
    """``::error title=…::message`` with GitHub's escaping: a message or title can neither end the
    command nor start another (every newline is ``%0A``)."""
    properties = f" title={_escape_property(title)}" if title else ""
    return f"::{level}{properties}::{_escape_data(message)}"


def plan_annotations(plan: Plan, policies: PolicySet) -> list[str]:
    """Workflow commands for what a reviewer must see: errors for what could not be decided and for
    blocked actions that mean a source or a limit stopped a policy, warnings for other blocked
    actions (a gate, a hold), plan warnings and connection changes; at most 10 of a level, then
    one notice counting the rest."""
    found: dict[str, list[tuple[str, str]]] = {"error": [], "warning": []}
    found["error"] += [("reconcile plan: could not be decided", e) for e in plan.errors]
    for action in plan.actions:
        if action.kind == "blocked":
            level = "error" if action.is_error else "warning"
            found[level].append((f"{action.policy} blocked", f"{action.target}: {action.reason}"))
    found["warning"] += [("reconcile plan: warning", w) for w in plan.warnings]
    found["warning"] += [("connection change to review (not used by this plan)", _line(c))
                         for c in policies.connection_changes]
    lines: list[str] = []
    for level, items in found.items():
        lines += [workflow_command(level, message, title) for title, message in items[:ANNOTATIONS_PER_KIND]]
        if len(items) > ANNOTATIONS_PER_KIND:
            more = len(items) - ANNOTATIONS_PER_KIND
            lines.append(workflow_command("notice", f"{more} more {level}{'s' * (more != 1)} not shown as annotations; "
                                          "the step summary and the JSON plan list them all"))
    return lines


def github_output(plan: Plan, policies: PolicySet) -> str:
    """``plan --format github``: the markdown goes to ``$GITHUB_STEP_SUMMARY`` (appended); what is
    printed is the annotations and the summary line, so the log stays short and no plan string can
    start a line there (workflow commands are read from the start of a line). Outside Actions (no
    ``$GITHUB_STEP_SUMMARY``) the markdown is printed after them instead."""
    lines = plan_annotations(plan, policies)
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        try:
            step_summary(plan, policies, Path(target))
        except OSError as e:  # the plan is still shown, and the exit status still says what it should
            lines.append(workflow_command("warning", f"could not write the step summary {target}: {e.strerror or e}"))
        else:
            lines.append(f"reconcile plan: {redact(summary_line(plan))} (the plan is in the step summary)")
            return "\n".join(lines) + "\n"
    lines.append(f"reconcile plan: {redact(summary_line(plan))}")
    return "\n".join(lines) + "\n\n" + plan_markdown(plan, policies)


def print_review(console: Console, policies: PolicySet) -> None:
    if not policies.connection_changes:
        return
    console.print(f"connection changes (not used by this plan; connections come from the trusted ref "
                  f"{policies.trusted_ref} at {(policies.trusted_commit or '')[:12]}):", style="bold yellow",
                  markup=False, soft_wrap=True)  # urls and hosts stay whole, to copy
    for change in policies.connection_changes:
        console.print(f"  {_line(change)} — {change.used}", style="yellow", markup=False, soft_wrap=True)
