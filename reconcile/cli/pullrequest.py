"""Pull-request mode on the command line: what ``--ref`` changes in Registries and Clusters, shown as
changes to review (the library loads the policies with the trusted ref's connections and never
connects to what only ``--ref`` defines)."""

from __future__ import annotations

import json

from rich.console import Console

from reconcile.plan import Plan
from reconcile.policy.model import ConnectionChange, PolicySet
from reconcile.policy.trust import described_changes
from reconcile.render.plan import CONTENT_HASH, MARKDOWN_LIMIT, content_hash, plan_document, to_json, to_markdown


def plan_json(plan: Plan, policies: PolicySet) -> str:
    """``to_json``, with ``connectionChanges`` (covered by the content hash) when there are any."""
    if not policies.connection_changes:
        return to_json(plan)
    document = plan_document(plan)
    document["connectionChanges"] = described_changes(policies.connection_changes)
    document[CONTENT_HASH] = content_hash(document)
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _code(text: str) -> str:
    return "`" + text.replace("`", "'").replace("\n", " ") + "`"


def _line(change: ConnectionChange) -> str:
    return f"{change.kind}/{change.name} {change.change}: " + "; ".join(change.details)


def plan_markdown(plan: Plan, policies: PolicySet) -> str:
    """The connection review first (it is what a reviewer must not miss), then the plan."""
    if not policies.connection_changes:
        return to_markdown(plan)
    lines = [f"### ⚠️ Connection changes (not used by this plan): {len(policies.connection_changes)}", "",
             f"Registries and Clusters come from the trusted ref {_code(policies.trusted_ref or '')} (commit "
             f"{_code((policies.trusted_commit or '')[:12])}); what this ref changes in them takes effect only "
             "once merged, and nothing here was connected to with it. Review:", ""]
    for change in policies.connection_changes:
        details = "; ".join(_code(d) for d in change.details)
        lines.append(f"- **{change.kind}/{_code(change.name)}** {change.change}{': ' + details if details else ''}"
                     f" — {change.used.replace('`', chr(39))}")
    section = "\n".join(lines) + "\n\n"
    return section + to_markdown(plan, limit=max(MARKDOWN_LIMIT - len(section), 1000))


def print_review(console: Console, policies: PolicySet) -> None:
    if not policies.connection_changes:
        return
    console.print(f"connection changes (not used by this plan; connections come from the trusted ref "
                  f"{policies.trusted_ref} at {(policies.trusted_commit or '')[:12]}):", style="bold yellow",
                  markup=False, soft_wrap=True)  # urls and hosts stay whole, to copy
    for change in policies.connection_changes:
        console.print(f"  {_line(change)} — {change.used}", style="yellow", markup=False, soft_wrap=True)
