"""One plan, three renderings: rich for terminals, markdown for pull-request comments, JSON for
machines (schema: schemas/plan.schema.json). A plan holds no secret, so none can show here."""

from __future__ import annotations

import json
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from reconcile.plan.actions import Action
from reconcile.plan.plan import FORMAT_VERSION, Plan, count_kinds

MARKDOWN_LIMIT = 60_000  # GitHub refuses comments over 65,536 characters
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

def to_json(plan: Plan) -> str:
    """Deterministic: same plan, same bytes."""
    document = {
        "formatVersion": FORMAT_VERSION, "repo": plan.repo, "commit": plan.commit,
        "observedAt": plan.observed_at, "fingerprint": plan.fingerprint, "summary": plan.counts(),
        "hasChanges": plan.has_changes, "errors": list(plan.errors), "actions": [_action_json(a) for a in plan.actions],
        **({"warnings": list(plan.warnings)} if plan.warnings else {})}
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _action_json(action: Action) -> dict[str, Any]:
    return {"policy": action.policy, "kind": action.kind, "target": action.target,
            "digestBefore": action.digest_before, "digestAfter": action.digest_after,
            "reason": action.reason, "tags": list(action.tags), "mutates": action.mutates,
            **({"dependsOn": action.depends_on} if action.depends_on else {})}


# --- markdown -----------------------------------------------------------------------------------

def to_markdown(plan: Plan, limit: int = MARKDOWN_LIMIT) -> str:
    """For a pull-request comment: summary, deletions and rollbacks called out, details folded,
    never over ``limit`` characters — what does not fit is counted, not silently dropped."""
    lines = [f"### reconcile plan: {summary_line(plan)}", ""]
    if plan.errors:
        lines += ["**Could not be decided:**", ""] + [f"- ⚠️ {_md(e)}" for e in plan.errors] + [""]
    if plan.warnings:
        lines += ["**Warnings:**", ""] + [f"- {_md(w)}" for w in plan.warnings] + [""]
    called_out = [a for a in plan.actions if a.kind in ("prune", "untag", "rollback", "blocked")]
    sections: list[list[str]] = []
    if called_out:
        sections.append(["**Deletions, rollbacks and blocked policies:**", ""] +
                        [f"- {_md_action(a)}" for a in called_out] + [""])
    for policy, actions in plan.by_policy().items():
        counts = ", ".join(f"{n} {_VERBS[k]}" for k, n in count_kinds(actions).items())
        body = ["| action | target | reason |", "| --- | --- | --- |"]
        body += [f"| {a.kind} | `{_md(a.target)}` | {_md(a.reason)} |" for a in actions]
        sections.append([f"<details><summary>{_md(policy)}: {counts}</summary>", "", *body, "", "</details>", ""])
    return _fit(lines, sections, limit)


def _fit(head: list[str], sections: list[list[str]], limit: int) -> str:
    text = "\n".join(head)
    kept_lines = 0
    total = sum(len(s) for s in sections)
    for section in sections:
        for line in section:
            candidate = text + "\n" + line
            if len(candidate) + 80 > limit:  # room for the note below
                omitted = total - kept_lines
                return text + f"\n\n_… {omitted} more lines omitted to stay under {limit} characters; " \
                              "run `reconcile plan` for the full plan._\n"
            text = candidate
            kept_lines += 1
    return text + "\n"


def _md_action(action: Action) -> str:
    label = "removes tags" if action.kind == "prune" else "tags"  # a promotion's or deploy's: tags it sets or holds
    extra = f" ({label}: {', '.join(action.tags)})" if action.tags else ""
    return f"**{action.kind}** `{_md(action.target)}`{_md(extra)} — {_md(action.reason)}"


def _md(text: str) -> str:
    # Table cells and list items: keep pipes and newlines from breaking the layout.
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


# --- rich ---------------------------------------------------------------------------------------

def to_rich(plan: Plan) -> RenderableType:
    """Summary counts first, then a table per policy; deletions highlighted."""
    parts: list[RenderableType] = [Text(summary_line(plan), style="bold")]
    for error in plan.errors:
        parts.append(Text(f"could not be decided: {error}", style="bold yellow"))
    for warning in plan.warnings:
        parts.append(Text(f"warning: {warning}", style="yellow"))
    for policy, actions in plan.by_policy().items():
        table = Table(title=policy, title_justify="left", box=box.SIMPLE_HEAD, expand=False)
        table.add_column("action", no_wrap=True)
        table.add_column("target", overflow="fold")
        table.add_column("reason", overflow="fold")
        for action in actions:
            style = _STYLES[action.kind]
            target = action.target + (f"\n(tags: {', '.join(action.tags)})" if action.tags else "")
            table.add_row(Text(action.kind, style=style), Text(target, style=style if action.mutates else ""),
                          Text(action.reason))
        parts.append(table)
    return Group(*parts)


def from_json(text: str) -> Plan:
    """A plan saved by ``to_json``; ValueError when it is not one this version can apply."""
    document = json.loads(text)
    if not isinstance(document, dict) or document.get("formatVersion") != FORMAT_VERSION:
        raise ValueError(f"not a reconcile plan of format version {FORMAT_VERSION}")
    actions = tuple(Action(a["policy"], a["kind"], a["target"], a["digestBefore"], a["digestAfter"], a["reason"],
                           tuple(a["tags"]), a.get("dependsOn")) for a in document["actions"])
    return Plan(document["repo"], document["commit"], document["observedAt"], actions, tuple(document["errors"]),
                document["fingerprint"], tuple(document.get("warnings", ())))
