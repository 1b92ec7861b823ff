"""``reconcile plan``, ``apply`` and ``run``: observe, plan (pure), and carry out the plan.

``plan`` changes nothing, not even the audit trail (it only reads its deploy history), so CI can
run it on pull requests with no write access anywhere.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from reconcile.apply.executor import DeployContext, apply_plan, promotion_sources
from reconcile.audit import Run
from reconcile.cli import Settings, cli, common_options
from reconcile.cli.auditing import audited_run
from reconcile.cli.session import (
    command_lock,
    connections_for,
    in_use_reader,
    interactive,
    load_checked,
    observe_and_plan,
)
from reconcile.plan import Plan
from reconcile.policy.source import default_cache_dir
from reconcile.render.plan import from_json, summary_line, to_json, to_markdown, to_rich


def only_option(command: Any) -> Any:
    return click.option("--only", metavar="KIND/NAME", envvar="RECONCILE_ONLY",
                        help="Plan and apply one policy only, e.g. RetentionPolicy/ci-cleanup. [env: RECONCILE_ONLY]"
                        )(command)


@cli.command("plan")
@common_options
@only_option
@click.option("--format", "output", type=click.Choice(["rich", "markdown", "json"]), default="rich",
              show_default=True, help="rich for terminals, markdown for pull-request comments, json for machines.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True),
              help="Also save the plan (JSON) for `apply --plan`.")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 0 when there is nothing to change, 2 when changes are pending, 1 on error (as Terraform).")
def plan_command(settings: Settings, only: str | None, output: str, out: str | None, detailed_exitcode: bool) -> None:
    """Compare the policies with registries and clusters; change nothing.

    Exit status 1 when a source could not be read (the policies depending on it prune nothing).
    """
    policies = load_checked(settings, only)
    with connections_for(policies) as connections:
        plan = observe_and_plan(settings, policies, only, connections)
    if out:
        Path(out).write_text(to_json(plan))
    if output == "json":
        click.echo(to_json(plan), nl=False)
    elif output == "markdown":
        click.echo(to_markdown(plan), nl=False)
    else:
        Console(highlight=False).print(to_rich(plan))
    if plan.errors:
        sys.exit(1)
    if detailed_exitcode and plan.has_changes:
        sys.exit(2)


def _saved_plan(saved_path: str, fresh: Plan) -> Plan:
    """The saved plan, if the world is still the one it was made for (Terraform's stale-plan
    check): same policy commit, and observing again gives the same fingerprint. Then exactly
    what was reviewed is applied."""
    try:
        saved = from_json(Path(saved_path).read_text())
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise click.ClickException(f"cannot read the saved plan {saved_path}: {e}") from None
    if saved.commit != fresh.commit:
        raise click.ClickException(f"the saved plan was made at commit {saved.commit}, the policies are now "
                                   f"at {fresh.commit}; plan again")
    if saved.fingerprint != fresh.fingerprint:
        raise click.ClickException("registries or clusters changed since the plan was saved; nothing was applied "
                                   "(plan again and review)")
    return saved


def _execute(settings: Settings, mode: str, only: str | None, saved: str | None, *, confirm: bool = False) -> None:
    policies = load_checked(settings, only)
    err = Console(stderr=True, highlight=False)
    with connections_for(policies) as connections, audited_run(settings, mode, repo_url=policies.source,  # type: ignore[arg-type]
                                                            repo_commit=policies.commit) as run:
        plan = observe_and_plan(settings, policies, only, connections)
        if saved:
            plan = _saved_plan(saved, plan)
        if confirm and plan.has_changes:
            err.print(to_rich(plan))
            if not click.confirm(f"Apply these {len(plan.changes)} changes?", err=True):
                raise click.ClickException("not applied: not confirmed")
        err.print(summary_line(plan))
        for error in plan.errors:
            err.print(f"blocked: {error}", style="yellow")
        _record_blocked(run, plan)
        result = apply_plan(plan, connections.registries, run, promotion_sources(policies),
                            DeployContext(policies, connections.cluster, default_cache_dir(), policies.commit),
                            in_use_reader(policies, connections))
        for action, error in result.failed:
            err.print(f"failed: {action.kind} {action.target}: {error}", style="red")
        for action, why in result.skipped:
            err.print(f"skipped: {action.kind} {action.target}: state changed since plan: {why}", style="yellow")
        err.print(f"applied {len(result.succeeded)} of {len(plan.changes)} changes")
        if result.skipped:
            err.print(f"{len(result.skipped)} deletion{'s' * (len(result.skipped) != 1)} skipped: state changed "
                      "since plan; re-run to re-plan", style="bold yellow")
            run.incomplete = True
    if plan.errors or not result.ok or result.skipped:
        sys.exit(1)


def _record_blocked(run: Run, plan: Plan) -> None:
    """What was not done, and why, belongs in the trail as much as what was."""
    for action in plan.actions:
        if action.kind == "blocked":
            run.append("skip", action.target, status="skipped", policy=action.policy, reason=action.reason,
                       digest_before=action.digest_before, digest_after=action.digest_after)


@cli.command("apply")
@common_options
@only_option
@click.option("--plan", "saved", type=click.Path(exists=True, dir_okay=False),
              help="Apply a plan saved by `plan --out`, after checking the world has not changed since.")
@click.option("--yes", "-y", is_flag=True, envvar="RECONCILE_YES",
              help="Do not ask for confirmation on a terminal (a saved plan, or no terminal, never asks).")
def apply_command(settings: Settings, only: str | None, saved: str | None, yes: bool) -> None:
    """Plan and carry out the changes, recording each in the audit trail (exit 1 if any failed).

    On a terminal, the plan is shown and confirmation asked first unless --yes.
    """
    with command_lock(settings, wait=True):
        _execute(settings, "apply", only, saved, confirm=not yes and not saved and interactive())


@cli.command("run")
@common_options
@only_option
def run_command(settings: Settings, only: str | None) -> None:
    """The CronJob entry point: take the lock, plan, apply. A second run while one holds the lock
    exits 1 at once rather than racing it."""
    with command_lock(settings, wait=False):
        _execute(settings, "run", only, None)
