"""``reconcile plan``, ``apply`` and ``run``: observe, plan (pure), and carry out the plan.

``plan`` changes nothing, not even the audit trail (it only reads its deploy history), so CI can
run it on pull requests with no write access anywhere.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import click

from reconcile import defaults
from reconcile.cli import Settings, cli, common_options, wide_option
from reconcile.cli.session import interactive, library_errors, reconciler_for
from reconcile.policy.durations import format_duration, parse_duration

if TYPE_CHECKING:
    from rich.console import Console

    from reconcile.plan import Plan
    from reconcile.reconciler import Applied

# What renders a plan (rich, the planner's types, the forges' formats) loads with the command that
# shows one, not with --help: the functions below import it.


def only_option(command: Any) -> Any:
    """``--only`` and ``--strict``, on every command that plans (plan, apply, run, explain)."""
    return strict_option(click.option("--only", metavar="KIND/NAME", envvar="RECONCILE_ONLY",
                                      help="Plan (and apply) one policy only: RetentionPolicy/NAME, "
                                           "PromotionPolicy/NAME or DeployPolicy/NAME."
                                      )(command))


STRICT = "reconcile.strict"  # where --strict leaves its value for reconciler_for (click's ctx.meta)


def strict_option(command: Any) -> Any:
    """``--strict``: kept in the context, not passed to the command (reconciler_for reads it)."""
    return click.option("--strict", is_flag=True, envvar="RECONCILE_STRICT", expose_value=False,
                        callback=lambda ctx, _, value: ctx.meta.__setitem__(STRICT, bool(value)),
                        help="A RetentionPolicy's repositories glob that matches no repository is an error "
                             "(exit 1, nothing pruned for that policy) instead of a warning.")(command)


@cli.command("plan")
@common_options
@only_option
@click.option("--format", "output", type=click.Choice(["rich", "markdown", "json", "github", "tsv"]), default="rich",
              show_default=True, envvar="RECONCILE_FORMAT",
              help="rich for terminals, markdown for pull-request comments (within --markdown-limit), json for "
                   "machines, github for GitHub Actions: the markdown appended to $GITHUB_STEP_SUMMARY (within its "
                   "1 MiB) and workflow annotations (::error/::warning, at most 10 each) printed, tsv for pipes (one "
                   "action a line with a header, digests in full; the summary, errors and warnings on stderr).")
@click.option("--github-step-summary", is_flag=True, envvar="RECONCILE_GITHUB_STEP_SUMMARY",
              help="The same as --format github.")
@click.option("--markdown-limit", type=click.IntRange(min=1000), default=defaults.MARKDOWN_LIMIT, show_default=True,
              envvar="RECONCILE_MARKDOWN_LIMIT",
              help="With --format markdown: at most this many characters; what does not fit is cut by whole rows "
                   "and counted (GitHub's comment limit; GitLab's default note limit is 1000000).")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), envvar="RECONCILE_OUT",
              help="Also save the plan (JSON) for `apply --plan` (and as the CI artifact a cut markdown plan "
                   "points to).")
@click.option("--detailed-exitcode", is_flag=True, envvar="RECONCILE_DETAILED_EXITCODE",
              help="Exit 0 when there is nothing to change, 2 when changes are pending, 1 on error (as Terraform); "
                   "the same for every --format.")
@click.option("--record", is_flag=True, envvar="RECONCILE_RECORD",
              help="Record this plan in the audit trail as a dry-run `plan` run: what it would change and what "
                   "is blocked (the only write a plan ever makes, and only when asked).")
@wide_option
def plan_command(settings: Settings, only: str | None, output: str, github_step_summary: bool, markdown_limit: int,
                 out: str | None, detailed_exitcode: bool, record: bool, wide: bool) -> None:
    """Compare the policies with registries and clusters; change nothing.

    Exit status 1 when a source could not be read (the policies depending on it prune nothing).
    With --record, the plan is also written to the audit trail as a `plan` run (CI plans leave a trail).
    """
    from rich.console import Console

    from reconcile.cli.pullrequest import github_output, plan_markdown, print_review, write_plan_json
    from reconcile.render.plan import summary_line, to_rich, to_tsv, write_json

    if github_step_summary:
        output = "github"
    reconciler = reconciler_for(settings, writes=record)
    with library_errors():
        policies = reconciler.load(only)
        plan = reconciler.plan(only, record=record, policies=policies)
    # The JSON is written an action at a time (a plan of 100k tags is tens of MB as one string);
    # with both, in one pass when the two are the same document (no connection changes to add).
    stdout = _Echoed() if output == "json" else None
    if out:
        with open(out, "w", encoding="utf-8") as file:
            if stdout is not None and not policies.connection_changes:
                write_json(plan, file, stdout)
            else:
                write_json(plan, file)
    if stdout is not None:
        if not stdout.written:
            write_plan_json(plan, policies, stdout)
        stdout.flush()
    elif output == "markdown":
        click.echo(plan_markdown(plan, policies, limit=markdown_limit), nl=False)
    elif output == "github":
        click.echo(github_output(plan, policies), nl=False)
    elif output == "tsv":
        click.echo(to_tsv(plan), nl=False)
        click.echo(summary_line(plan), err=True)
        for error in plan.errors:
            click.echo(f"could not be decided: {error}", err=True)
        for warning in plan.warnings:
            click.echo(f"warning: {warning}", err=True)
        print_review(Console(stderr=True, highlight=False), policies)
    else:
        console = Console(highlight=False)
        console.print(to_rich(plan, wide=wide), crop=False)
        print_review(console, policies)
        for registry, made in reconciler.requests.items():  # what the plan spent (pull limits count GETs)
            click.echo(f"requests to registry {registry}: " + ", ".join(f"{what} {n:,}" for what, n in made.items()),
                       err=True)
    if plan.errors:
        sys.exit(1)
    if detailed_exitcode and (plan.has_changes or policies.connection_changes):  # changed connections: review
        sys.exit(2)


class _Echoed:
    """Text for stdout through ``click.echo``, a megabyte at a time rather than as one string."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.written = False

    def write(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        self.written = True
        if self.size >= 1 << 20:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            click.echo("".join(self.parts), nl=False)
            self.parts, self.size = [], 0


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


def _execute(settings: Settings, mode: str, only: str | None, saved: str | None, *, confirm: bool = False,
             max_plan_age: timedelta | None = None, wide: bool = False) -> None:
    from rich.console import Console

    from reconcile.render.plan import summary_line, to_rich

    reconciler = reconciler_for(settings, writes=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)  # a log line stays one line

    def review(plan: Plan) -> bool:
        shown = confirm and plan.has_changes
        if shown:
            err.print(to_rich(plan, wide=wide), crop=False)
            if not click.confirm(f"Apply these {len(plan.changes)} changes?", err=True):
                return False
        err.print(summary_line(plan))
        for error in plan.errors:
            err.print(f"blocked: {error}", style="yellow")
        for warning in () if shown else plan.warnings:  # (the plan shown has them)
            err.print(f"warning: {warning}", style="yellow")
        return True

    with library_errors():
        if mode == "run":
            applied = reconciler.run(only, review=review, report=lambda done: _report(err, done))
        else:
            applied = reconciler.apply(saved, only=only, max_plan_age=max_plan_age, review=review,
                                       report=lambda done: _report(err, done))
    if not applied.ok:
        sys.exit(1)


def _report(err: Console, applied: Applied) -> None:
    from reconcile.cli.pullrequest import print_review

    for action, error in applied.failed:
        err.print(f"failed: {action.kind} {action.target}: {error}", style="red")
    for action, why in applied.skipped:
        err.print(f"skipped: {action.kind} {action.target}: state changed since plan: {why}", style="yellow")
    err.print(f"applied {len(applied.succeeded)} of {len(applied.plan.changes)} changes")
    if applied.skipped:
        err.print(f"{len(applied.skipped)} deletion{'s' * (len(applied.skipped) != 1)} skipped: state changed "
                  "since plan; re-run to re-plan", style="bold yellow")
    print_review(err, applied.policies)  # a pull request's connection changes were not used: say so here too


@cli.command("apply")
@common_options
@only_option
@click.option("--plan", "saved", type=click.Path(exists=True, dir_okay=False), envvar="RECONCILE_PLAN",
              help="Apply a plan saved by `plan --out`, exactly or not at all: refused if the file was edited, "
                   "the policies moved to another commit, it is older than --max-plan-age, or planning again now "
                   "gives other actions, blocks or errors (a gate that closed since, maxDeletions).")
@click.option("--max-plan-age", type=PlanAge(), default=format_duration(defaults.MAX_PLAN_AGE), show_default=True,
              envvar="RECONCILE_MAX_PLAN_AGE",
              help="With --plan: refuse a saved plan observed longer ago than this (0: no limit).")
@click.option("--yes", "-y", is_flag=True, envvar="RECONCILE_YES",
              help="Do not ask for confirmation on a terminal (a saved plan, or no terminal, never asks).")
@wide_option
def apply_command(settings: Settings, only: str | None, saved: str | None, max_plan_age: timedelta | None,
                  yes: bool, wide: bool) -> None:
    """Plan and carry out the changes, recording each in the audit trail (exit 1 if any failed).

    On a terminal, the plan is shown and confirmation asked first unless --yes.
    """
    _execute(settings, "apply", only, saved, confirm=not yes and not saved and interactive(), max_plan_age=max_plan_age,
             wide=wide)


@cli.command("run")
@common_options
@only_option
def run_command(settings: Settings, only: str | None) -> None:
    """The CronJob entry point: take the lock (and the Lease, in a cluster), plan, apply. A second
    run while one holds it exits 5 at once rather than racing it, and is recorded as a locked run."""
    _execute(settings, "run", only, None)
