"""``reconcile quickstart [DIR]``: build a sandbox with no server (CI, staging and prod registries as
OCI layouts, a repo-of-record and the GitOps manifests in git) and run validate, plan, apply (three
times: the pipeline moves one stage on per run), a rollback and audit on it, each command printed before its
output exactly as it can be typed (after ``cd DIR``).

Each command runs as its own process (``python -m reconcile …``, or ``git``, in DIR), so what the walkthrough
shows is what typing the command shows. On a terminal the commands write to it directly (tables,
colours); otherwise their output (stdout and stderr, in order) is passed on.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

import reconcile
from reconcile.cli import cli

if TYPE_CHECKING:
    from reconcile.quickstart.sandbox import Sandbox, Seeded

# The sandbox (and the audit store) load with the command, not with --help: the functions below
# that use them import them.

DEFAULT_DIR = "reconcile-quickstart"
STEP_TIMEOUT = 300  # seconds; a step on local directories takes about one


@dataclass(frozen=True)
class Step:
    comment: str
    args: tuple[str, ...]  # after the program name
    program: str = "reconcile"  # or "git"


def steps() -> list[Step]:
    from reconcile.quickstart.sandbox import APPROVER, PROMOTED

    common = ("--repo", "policies", "--audit-db", "audit.db")
    return [
        Step("Check the repo-of-record: schemas, references, patterns (read at its git commit).",
             ("validate", "--repo", "policies")),
        Step("What would change, and why every other tag stays. Changes nothing, not even the audit trail; "
             "--out saves the plan.", ("plan", *common, "--out", "plan.json")),
        Step("Carry it out: an audit record before and after each change (--yes: no question asked). The "
             f"pipeline moves one stage per run: web {PROMOTED.removeprefix('build-')} (build {PROMOTED}) is "
             "copied, digest for digest, into the staging registry.", ("apply", *common, "--yes")),
        Step("Run again, as the CronJob would: staging is deployed by a commit to the manifests (write-back), and, "
             f"approved by {APPROVER} in policies/approvals/web-prod.yaml, the same digest is promoted to prod.",
             ("apply", *common, "--yes")),
        Step("And once more: prod is deployed by write-back. Nothing else is left to do.",
             ("apply", *common, "--yes")),
        Step(f"Say {PROMOTED} misbehaves in prod: roll it back. The digest prod ran before (from the audit trail's "
             f"deploy history, still in prod's registry) is written back by a commit, and {PROMOTED}'s is held.",
             ("rollback", "prod-web", *common, "--yes")),
        Step("The next scheduled run respects the hold: nothing to deploy, and the plan says why.", ("plan", *common)),
        Step("The write-back commits in the manifests repository (bare, as the one Argo CD or Flux watches): "
             "two deploys and the rollback.",
             ("-C", "manifests.git", "log", "--oneline"), program="git"),
        Step("Review the audit trail.", ("audit", "list", "--audit-db", "audit.db")),
        Step("Check that the trail is intact: every entry's hash chains to the one before.",
             ("audit", "verify", "--audit-db", "audit.db")),
    ]


@cli.command("quickstart")
@click.argument("directory", metavar="[DIR]", required=False, default=DEFAULT_DIR,
                type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, envvar="RECONCILE_QUICKSTART_FORCE",
              help="Rebuild DIR when it holds an earlier quickstart sandbox (never touches any other directory).")
def quickstart_command(directory: Path, force: bool) -> None:
    """Try reconcile on a sandbox in DIR (default ./reconcile-quickstart), no server needed.

    Builds a CI registry of OCI image layouts seeded with releases, CI builds, commit tags, a
    multi-arch index and signatures, and staging and prod registries; a git repo-of-record with
    retention, promotion (build -> staging -> prod, approval-gated) and deploy policies; and the
    GitOps manifests of staging and prod. Then runs validate, plan, apply (three times), a
    rollback and audit there, printing each command before its output, and what to try next.
    Exit status 1 naming the step that failed, if any.
    """
    from reconcile.quickstart.sandbox import DirectoryInUse, SandboxError, build, prepare

    now = datetime.now(UTC).replace(microsecond=0)
    try:
        prepare(directory, force=force, now=now)
        sandbox = build(directory, now)
    except DirectoryInUse as e:
        raise click.ClickException(str(e)) from None
    except SandboxError as e:
        raise click.ClickException(f"quickstart failed while {e}; the sandbox is incomplete "
                                   f"(rebuild it with --force)") from None
    where = shlex.quote(str(directory))
    program = display_program(sandbox.root)
    _describe(sandbox, where)
    _say("")
    _command(f"cd {where} && export RECONCILE_CACHE_DIR=\"$PWD/cache\"")
    env = child_environment(sandbox)
    planned = steps()
    for number, step in enumerate(planned, 1):
        _say("")
        _comment(step.comment)
        _command(" ".join([program if step.program == "reconcile" else step.program, *map(shlex.quote, step.args)]))
        status = _run(step.args, sandbox.root, env, step.program)
        if status != 0:
            raise click.ClickException(
                f"quickstart step {number} of {len(planned)} failed: `{step.program} {' '.join(step.args)}` exited "
                f"{status} (in {sandbox.root}); the sandbox is left there as it is")
    _next_steps(sandbox, where, program)


# --- running the commands ---------------------------------------------------------------------------

def display_program(cwd: Path) -> str:
    """How to type this installation's ``reconcile`` in ``cwd``: ``reconcile`` when that is what
    the PATH finds, else the console script's path (relative when short), else ``python -m``."""
    import shutil

    script = Path(sys.executable).parent / "reconcile"
    found = shutil.which("reconcile")
    if script.is_file():
        if found and Path(found).resolve() == script.resolve():
            return "reconcile"
        relative = os.path.relpath(script.absolute(), cwd.absolute())
        # ../.venv/bin/reconcile for a sandbox next to the project; an absolute path when farther away
        return shlex.quote(relative if relative.split(os.sep).count("..") <= 1 else str(script.absolute()))
    return f"{shlex.quote(sys.executable)} -m reconcile"


def child_environment(sandbox: Sandbox) -> dict[str, str]:
    """The commands' environment: the sandbox's cache, and none of the caller's RECONCILE_* options
    (a RECONCILE_REF or RECONCILE_ONLY meant for another repo-of-record would break the walkthrough)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILE_") or k == "RECONCILE_ACTOR"}
    env["RECONCILE_CACHE_DIR"] = str(sandbox.cache)
    env["PYTHONUNBUFFERED"] = "1"  # stdout and stderr in the order they were written
    source = Path(reconcile.__file__).resolve().parents[1]
    if (source / "pyproject.toml").is_file():  # run from a source tree: the same code, installed or not
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(source), env.get("PYTHONPATH")) if p)
    return env


def _run(args: tuple[str, ...], cwd: Path, env: dict[str, str], program: str = "reconcile") -> int:
    """Run ``reconcile ARGS`` (or ``git ARGS``) in ``cwd``; its exit status. Nothing reads stdin: no
    prompt, no pager wait."""
    import subprocess

    command = ["git", "--no-pager", *args] if program == "git" else [sys.executable, "-m", "reconcile", *args]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        if _on_terminal():
            return subprocess.run(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, timeout=STEP_TIMEOUT,
                                  check=False).returncode
        done = subprocess.run(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=STEP_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        click.echo(f"(no answer after {STEP_TIMEOUT}s)", err=True)
        return 124
    click.echo(done.stdout.decode(errors="replace"), nl=False)
    return done.returncode


def _on_terminal() -> bool:
    return sys.stdout.isatty() and sys.stderr.isatty()


# --- what is printed ----------------------------------------------------------------------------------

def _say(text: str) -> None:
    click.echo(text)


def _comment(text: str) -> None:
    click.echo(click.style(f"# {text}", dim=True))


def _command(text: str) -> None:
    click.echo(click.style(f"$ {text}", bold=True))


def _describe(sandbox: Sandbox, where: str) -> None:
    from reconcile.quickstart.sandbox import APPROVER, PROMOTED, RUNNING, STAGING_RUNS

    _say(click.style(f"reconcile quickstart: a sandbox in {where}/ (no server; nothing written outside it)",
                     bold=True))
    _say("  registries/ci/  the 'ci' registry, one OCI image layout per repository:")
    for repository in sorted({i.repository for i in sandbox.images}, reverse=True):
        _say(f"                    {repository}: {_summary(sandbox.tagged(repository))}")
    _say(f"  registries/staging/, registries/prod/  two more: what the pipeline promoted before (web "
         f"{STAGING_RUNS.removeprefix('build-')}, {RUNNING['team-a/web'].removeprefix('build-')}); it promotes "
         f"{PROMOTED} into them")
    short = sandbox.policies_commit[:12]
    _say(f"  policies/       the repo-of-record (git, commit {short}): Registries ci, staging, prod; Cluster prod "
         "(known by its manifests); RetentionPolicy ci-cleanup; PromotionPolicy web (build -> staging -> prod, "
         f"prod approved by {APPROVER}); DeployPolicies staging-web, prod-web (by manifests write-back)")
    running = ", ".join(f"{r.rsplit('/', 1)[-1]} runs {tag}" for r, tag in RUNNING.items())
    _say(f"  manifests.git/  the GitOps manifests (bare git): prod's {running}; staging's web runs {STAGING_RUNS}; "
         "pinned by digest")


def _summary(images: list[Seeded]) -> str:
    """e.g. '18 tags on 16 manifests: releases v1.0.0…v1.3.0 (multi-arch), builds build-118…build-126
    (33 days), latest = v1.3.0, 2 signatures'."""
    tags = [t for i in images for t in i.tags]
    parts = []
    releases = [i.tags[0] for i in images if i.tags[0].startswith("v")]
    if releases:
        multi = " (multi-arch linux/amd64+arm64)" if any(i.kind == "index" for i in images) else ""
        parts.append(f"releases {releases[0]}…{releases[-1]}{multi}")
    builds = [i for i in images if i.tags[0].startswith("build-")]
    if builds:
        days = (max(b.created for b in builds) - min(b.created for b in builds)).days
        parts.append(f"CI builds {builds[0].tags[0]}…{builds[-1].tags[0]} over {days} days")
    parts += [f"{' = '.join(i.tags[1:])} = {i.tags[0]}" for i in images if len(i.tags) > 1]
    signatures = [i for i in images if i.kind == "signature"]
    if signatures:
        parts.append(f"{len(signatures)} cosign signatures (sha256-….sig)")
    return f"{len(tags)} tags on {len(images)} manifests: " + ", ".join(parts)


def _apply_run(sandbox: Sandbox) -> str:
    """The id of the first apply run recorded (the prunes and the promotion to staging, for `audit
    show`), or a placeholder."""
    from reconcile.audit import AuditError, AuditStore

    try:
        with AuditStore.open(sandbox.audit_db, read_only=True) as store:
            return next((run.id for run in reversed(store.runs()) if run.mode == "apply"), "RUN_ID")
    except AuditError:
        return "RUN_ID"


def _next_steps(sandbox: Sandbox, where: str, program: str) -> None:
    from reconcile.quickstart.sandbox import PROMOTED, RUNNING

    common = "--repo policies --audit-db audit.db"
    api = RUNNING["team-a/api"]
    lines = [
        f"cd {where} && export RECONCILE_CACHE_DIR=\"$PWD/cache\"",
        "",
        "# Converged: planning again finds nothing to change (exit status 0; 2 means changes are pending).",
        f"{program} plan {common} --detailed-exitcode; echo \"exit status $?\"",
        f"# Why team-a/api:{api} is still there although no keep rule keeps it.",
        f"{program} explain team-a/api:{api} {common}",
        "# The first apply run change by change: each deletion's intent, written before it, and its outcome.",
        f"{program} audit show {_apply_run(sandbox)} --audit-db audit.db",
        "# The plan as a pull-request comment would show it.",
        f"{program} plan {common} --format markdown",
        "# Keep one release instead of three: edit (releases: last: 1), commit (policies are read at a commit,",
        "# not from the working tree), validate, plan.",
        "${EDITOR:-vi} policies/retention/ci-cleanup.yaml",
        "git -C policies commit -qam 'Keep only the newest release'",
        f"{program} validate --repo policies && {program} plan {common}",
        "# What prod's manifests say now: web pinned, by the rollback's commit, to what it ran before.",
        "git -C manifests.git show main:envs/prod/web.yaml | grep image:",
        f"# Why prod does not get {PROMOTED} back: its DeployPolicy, explained.",
        f"{program} explain DeployPolicy/prod-web {common}",
        f"# {PROMOTED} is fixed: release the hold, and the next run deploys it to prod again.",
        f"{program} release-hold prod-web {common} && {program} apply {common} --yes",
        "# Start again from scratch (from the directory you ran the quickstart in).",
        f"{display_program(Path.cwd())} quickstart --force {where}",
    ]
    _say("")
    _say(click.style(f"Done: validate, plan, apply (three runs: retention, promotion and deploy), rollback and audit "
                     f"ran in {where}/. Try next:", bold=True))
    _say("")
    for line in lines:
        _say(f"  {click.style(line, dim=True) if line.startswith('#') else line}" if line else "")
