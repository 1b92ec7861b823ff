"""``reconcile plan``, ``apply`` and ``run``: observe, plan (pure), and carry out the plan.

``plan`` changes nothing, not even the audit trail (it only reads its deploy history), so CI can
run it on pull requests with no write access anywhere.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from reconcile.apply.executor import DeployContext, apply_plan, promotion_sources
from reconcile.audit import Run
from reconcile.audit.store import RunMode
from reconcile.cli import Settings, cli, common_options
from reconcile.cli.auditing import Refused, audited_failures, audited_run
from reconcile.cli.pullrequest import plan_json, plan_markdown, print_review
from reconcile.cli.session import (
    command_lock,
    connections_for,
    in_use_reader,
    interactive,
    load_checked,
    observe_and_plan,
)
from reconcile.plan import Plan
from reconcile.plan.compare import PlanDiff, compare, first_difference
from reconcile.policy.durations import format_duration, parse_duration
from reconcile.policy.model import PolicySet
from reconcile.policy.source import default_cache_dir
from reconcile.render.plan import (
    MAX_PLAN_BYTES,
    PlanFileError,
    SavedPlan,
    plan_document,
    read_saved,
    summary_line,
    to_json,
    to_rich,
)


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
@click.option("--record", is_flag=True, envvar="RECONCILE_RECORD",
              help="Record this plan in the audit trail as a dry-run `plan` run: what it would change and what "
                   "is blocked (the only write a plan ever makes, and only when asked). [env: RECONCILE_RECORD]")
def plan_command(settings: Settings, only: str | None, output: str, out: str | None, detailed_exitcode: bool,
                 record: bool) -> None:
    """Compare the policies with registries and clusters; change nothing.

    Exit status 1 when a source could not be read (the policies depending on it prune nothing).
    With --record, the plan is also written to the audit trail as a `plan` run (CI plans leave a trail).
    """
    with audited_failures(settings, "plan") if record else nullcontext():
        policies = load_checked(settings, only)
    with connections_for(policies) as connections:
        plan = observe_and_plan(settings, policies, only, connections)
    if record:
        _record_plan(settings, policies, plan)
    if out:
        Path(out).write_text(to_json(plan))
    if output == "json":
        click.echo(plan_json(plan, policies), nl=False)
    elif output == "markdown":
        click.echo(plan_markdown(plan, policies), nl=False)
    else:
        console = Console(highlight=False)
        console.print(to_rich(plan))
        print_review(console, policies)
    if plan.errors:
        sys.exit(1)
    if detailed_exitcode and (plan.has_changes or policies.connection_changes):  # changed connections: review
        sys.exit(2)


MAX_PLAN_AGE = "1h"
CLOCK_SKEW = timedelta(minutes=5)  # a plan saved on another machine may seem to come from the near future


if TYPE_CHECKING:
    _DurationParam = click.ParamType[timedelta | None]
else:  # click before 8.2 has no generic ParamType at run time
    _DurationParam = click.ParamType


class PlanAge(_DurationParam):
    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta | None:
        if isinstance(value, timedelta) or value is None:
            return value
        if value == "0":
            return None  # no limit
        try:
            age = parse_duration(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)
        return age or None


def _read_saved(path: str) -> SavedPlan:
    try:
        if Path(path).stat().st_size > MAX_PLAN_BYTES:
            raise PlanFileError(f"it is over {MAX_PLAN_BYTES // (1024 * 1024)} MiB")
        return read_saved(Path(path).read_text(encoding="utf-8"))
    except PlanFileError as e:
        raise Refused(f"saved plan {path} refused: {e}; nothing was applied") from None
    except (OSError, UnicodeDecodeError) as e:
        raise Refused(f"saved plan {path} refused: cannot read it: {e}; nothing was applied") from None


def _saved_plan(path: str, saved: SavedPlan, fresh: Plan, max_age: timedelta | None) -> Plan:
    """The plan made now, if it is the saved plan (Terraform's saved plan, stricter): the file is
    intact (content hash), made at the same policy commit, not older than ``max_age``, for a world
    with the same fingerprint, and planning again now gives the same actions, blocks and errors.
    Otherwise Refused, saying why."""
    def refuse(why: str, diff: PlanDiff | None = None) -> Refused:
        lines = diff.lines() if diff else []
        legend = ["the saved plan (-) and the plan made now (+) differ:"] if lines else []
        return Refused("\n".join([f"saved plan {path} refused: {why}; nothing was applied (plan again and review)",
                                   *legend, *lines]))

    plan, diff = saved.plan, compare(saved.plan, fresh)
    if not saved.intact:
        field = first_difference(saved.document, plan_document(fresh), skip=frozenset({"observedAt"}))
        where = f"; it differs from planning again now first at {field}" if field else ""
        raise refuse(f"the plan file was edited after it was saved (content hash mismatch){where}", diff)
    if plan.commit != fresh.commit:
        raise refuse(f"it was made at commit {plan.commit}, the policies are now at {fresh.commit}")
    if max_age is not None:
        try:
            age = _time(fresh.observed_at) - _time(plan.observed_at)
        except ValueError:
            raise refuse(f"its observedAt {plan.observed_at[:40]!r} is not an RFC 3339 time") from None
        if age > max_age:
            raise refuse(f"it is {format_duration(age)} old (observed at {plan.observed_at}), over --max-plan-age "
                         f"{format_duration(max_age)}")
        if -age > CLOCK_SKEW:
            raise refuse(f"it was observed at {plan.observed_at}, {format_duration(-age)} after now; check the "
                         "clocks")
    if plan.fingerprint != fresh.fingerprint:
        raise refuse("registries or clusters changed since the plan was saved", diff)
    if diff:
        raise refuse("planning again now gives other actions than the saved plan", diff)
    return fresh  # equal to the saved plan; its digests were observed just now


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(text)
    return moment


def _execute(settings: Settings, mode: RunMode, only: str | None, saved: str | None, *, confirm: bool = False,
             max_plan_age: timedelta | None = None) -> None:
    with audited_failures(settings, mode):
        policies = load_checked(settings, only)
    err = Console(stderr=True, highlight=False)
    with connections_for(policies) as connections, audited_run(settings, mode, repo_url=policies.source,
                                                            repo_commit=policies.commit) as run:
        try:
            reviewed = _read_saved(saved) if saved else None
            plan = observe_and_plan(settings, policies, only, connections)
            if saved is not None and reviewed is not None:
                plan = _saved_plan(saved, reviewed, plan, max_plan_age)
        except Refused as refused:  # in the trail too: what was not done, and why
            run.append("skip", saved or "", status="skipped", reason=refused.message)
            raise
        if confirm and plan.has_changes:
            err.print(to_rich(plan))
            if not click.confirm(f"Apply these {len(plan.changes)} changes?", err=True):
                raise click.ClickException("not applied: not confirmed")
        err.print(summary_line(plan))
        for error in plan.errors:
            err.print(f"blocked: {error}", style="yellow")
        run.counts["changes.planned"] = len(plan.changes)  # a run that had nothing to do says so
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
            run.partial = True
    if plan.errors or not result.ok or result.skipped:
        sys.exit(1)


def _record_blocked(run: Run, plan: Plan) -> None:
    """What was not done, and why, belongs in the trail as much as what was."""
    for action in plan.actions:
        if action.kind == "blocked":
            run.blocked = True
            run.append("skip", action.target, status="skipped", policy=action.policy, reason=action.reason,
                       digest_before=action.digest_before, digest_after=action.digest_after, tags=action.tags)


def _record_plan(settings: Settings, policies: PolicySet, plan: Plan) -> None:
    """``plan --record``: a dry-run ``plan`` run, each planned change as a skipped dry-run row and
    each block as a skip, so CI plans leave a trail (the plan itself still changes nothing)."""
    with audited_run(settings, "plan", repo_url=policies.source, repo_commit=policies.commit, dry_run=True) as run:
        run.counts["changes.planned"] = len(plan.changes)
        for action in plan.changes:
            run.append(action.mutation_kind, action.target, status="skipped", policy=action.policy,
                       reason=f"planned, not applied: {action.reason}", digest_before=action.digest_before,
                       digest_after=action.digest_after, tags=action.tags)
        _record_blocked(run, plan)


@cli.command("apply")
@common_options
@only_option
@click.option("--plan", "saved", type=click.Path(exists=True, dir_okay=False),
              help="Apply a plan saved by `plan --out`, exactly or not at all: refused if the file was edited, "
                   "the policies moved to another commit, it is older than --max-plan-age, or planning again now "
                   "gives other actions, blocks or errors (a gate that closed since, maxDeletions).")
@click.option("--max-plan-age", type=PlanAge(), default=MAX_PLAN_AGE, show_default=True,
              envvar="RECONCILE_MAX_PLAN_AGE",
              help="With --plan: refuse a saved plan observed longer ago than this (0: no limit). "
                   "[env: RECONCILE_MAX_PLAN_AGE]")
@click.option("--yes", "-y", is_flag=True, envvar="RECONCILE_YES",
              help="Do not ask for confirmation on a terminal (a saved plan, or no terminal, never asks).")
def apply_command(settings: Settings, only: str | None, saved: str | None, max_plan_age: timedelta | None,
                  yes: bool) -> None:
    """Plan and carry out the changes, recording each in the audit trail (exit 1 if any failed).

    On a terminal, the plan is shown and confirmation asked first unless --yes.
    """
    with command_lock(settings, wait=True):
        _execute(settings, "apply", only, saved, confirm=not yes and not saved and interactive(),
                 max_plan_age=max_plan_age)


@cli.command("run")
@common_options
@only_option
def run_command(settings: Settings, only: str | None) -> None:
    """The CronJob entry point: take the lock, plan, apply. A second run while one holds the lock
    exits 1 at once rather than racing it."""
    with command_lock(settings, wait=False):
        _execute(settings, "run", only, None)
