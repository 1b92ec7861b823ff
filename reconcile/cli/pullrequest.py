"""Pull-request mode on the command line: load the policies of ``--ref`` with the connections of the
trusted ref (reconcile.policy.trust), refuse to connect to what only ``--ref`` defines, and show
what ``--ref`` changes in Registries and Clusters as changes to review."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import click
from rich.console import Console

from reconcile.adapters.cluster import ClusterError
from reconcile.adapters.registry import RegistryError
from reconcile.cli import Settings
from reconcile.plan import Plan
from reconcile.policy.loader import load_policies
from reconcile.policy.model import ConnectionChange, PolicySet
from reconcile.policy.trust import described_changes, load_with_trusted_connections, unconnectable_reason
from reconcile.render.plan import CONTENT_HASH, MARKDOWN_LIMIT, content_hash, plan_document, to_json, to_markdown

TRUST_WARNING = ("warning: --trust-ref-connections: the Registries and Clusters of --ref {ref} are used as they "
                 "are written there: whoever wrote that ref chooses where reconcile sends its credentials and "
                 "which secrets it reads. Never use it for pull requests.")


def load_policies_for(settings: Settings) -> PolicySet:
    """Raises PolicyError or SourceError as ``load_policies`` does."""
    if settings.trust_ref_connections:
        click.echo(TRUST_WARNING.format(ref=settings.ref or "HEAD"), err=True)
        return load_policies(settings.repo, settings.ref)
    return load_with_trusted_connections(settings.repo, settings.ref, settings.trusted_ref)


class RefusedRegistry:
    """Stands in for the client of a Registry only the ref read defines: every operation fails
    before anything is sent, so the policies using it are blocked as for a registry that is down."""

    concurrency = 1

    def __init__(self, name: str, reason: str) -> None:
        self.name, self.reason = name, reason

    def __getattr__(self, operation: str) -> Any:
        def refuse(*_args: Any, **_kwargs: Any) -> NoReturn:
            raise RegistryError(self.name, None, operation.lstrip("_"), self.reason)

        return refuse

    def close(self) -> None:
        pass


def refuse_registry(policies: PolicySet, name: str) -> None:
    reason = unconnectable_reason(policies, "Registry", name)
    if reason is not None:
        raise RegistryError(name, None, "connect", reason)


def refuse_cluster(policies: PolicySet, name: str) -> None:
    reason = unconnectable_reason(policies, "Cluster", name)
    if reason is not None:
        raise ClusterError(name, reason)


def refused_registries(policies: PolicySet) -> dict[str, Any]:
    return {key.split("/", 1)[1]: RefusedRegistry(key.split("/", 1)[1], reason)
            for key, reason in policies.unconnectable.items() if key.startswith("Registry/")}


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
                  markup=False)
    for change in policies.connection_changes:
        console.print(f"  {_line(change)} — {change.used}", style="yellow", markup=False)
