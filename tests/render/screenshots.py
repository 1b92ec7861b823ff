"""The screenshots in docs/screenshots/: the main views (audit list, audit runs, plan, validate)
as the real commands print them on a terminal 80 and 160 columns wide, as SVG (rich's
``save_svg``) and as plain text.

Each is made by running the command (click's runner, with ``COLUMNS`` and ``FORCE_COLOR`` as a
terminal gives them) against real inputs built here: an audit trail written through the audit
store, and the quickstart's sandbox (its OCI-layout registries and git repo-of-record) for plan
and validate. Clocks, ids, hosts and git dates are fixed, so the same code prints the same bytes:
``tests/render/test_screenshots.py`` makes them again and fails when a committed file differs.

Refresh them after changing what a table prints::

    .venv/bin/python -m tests.render.screenshots
    UPDATE_SCREENSHOTS=1 .venv/bin/python -m pytest tests/render/test_screenshots.py   # the same
"""

from __future__ import annotations

import io
import itertools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

from click.testing import CliRunner
from rich.console import Console
from rich.text import Text

ROOT = Path(__file__).resolve().parents[2]
DIRECTORY = ROOT / "docs" / "screenshots"
WIDTHS = (80, 160)
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
GIT_DATE = "2026-11-21T08:00:00+0000"
HOST = "reconcile-28871520-x7k2p"  # a CronJob's pod


class _Clock:
    """``datetime`` for the modules that read the time: now is NOW, always."""

    @staticmethod
    def now(tz: Any = None) -> datetime:
        return NOW if tz is not None else NOW.replace(tzinfo=None)

    def __getattr__(self, name: str) -> Any:
        return getattr(datetime, name)


class _Ids:
    """``secrets`` for the audit store: ``token_hex`` counts instead of drawing."""

    def __init__(self) -> None:
        self._next = itertools.count(0x1a2b3c40)

    def token_hex(self, nbytes: int) -> str:
        return f"{next(self._next):0{nbytes * 2}x}"


def stamps(start: datetime) -> Callable[[], str]:
    """The store's clock: ``start``, then a second later at each call."""
    ticks = itertools.count()
    return lambda: (start + timedelta(seconds=next(ticks))).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@contextmanager
def frozen() -> Iterator[None]:
    """Fixed time (the reconciler's, the audit commands', the store's ids), host, pid and git dates."""
    import reconcile.audit.store
    import reconcile.cli.audit
    import reconcile.reconciler

    clock = _Clock()
    with mock.patch.object(reconcile.audit.store, "datetime", clock), \
            mock.patch.object(reconcile.audit.store, "secrets", _Ids()), \
            mock.patch("reconcile.audit.store.socket.gethostname", lambda: HOST), \
            mock.patch("reconcile.audit.store.os.getpid", lambda: 1), \
            mock.patch.object(reconcile.cli.audit, "datetime", clock), \
            mock.patch.object(reconcile.reconciler, "datetime", clock), \
            mock.patch.object(reconcile.reconciler, "utc_now", lambda: "2026-11-21T12:00:00.000000Z"), \
            mock.patch.dict(os.environ, {"GIT_AUTHOR_DATE": GIT_DATE, "GIT_COMMITTER_DATE": GIT_DATE}):
        yield


# --- the inputs -------------------------------------------------------------------------------------

D = {name: f"sha256:{digit * 64}" for name, digit in (("web125", "1"), ("web126", "2"), ("b3", "3"), ("b4", "4"),
                                                        ("api57", "5"), ("web124", "6"))}


def audit_trail(path: Path) -> None:
    """Three runs as a CronJob leaves them: retention with a skip, a promotion and a deploy, a
    failed deploy and its rollback."""
    from reconcile.audit import AuditStore

    commit_a, commit_b = "1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d", "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432"
    repo = "https://git.example.com/platform/policies.git"
    retention, promotion, deploy = "RetentionPolicy/ci-cleanup", "PromotionPolicy/web", "DeployPolicy/prod-web"
    with AuditStore.open(path, clock=stamps(NOW - timedelta(days=2, hours=3))) as store:
        run = store.start_run("run", repo_url=repo, repo_commit=commit_a, actor="system:serviceaccount:reconcile")
        for tag, digest in (("build-3", D["b3"]), ("build-4", D["b4"])):
            with run.mutation("prune", f"ci/team-a/web@{digest}", policy=retention, digest_before=digest,
                              reason=f"no keep rule selects {tag}", tags=(tag,)):
                pass
        run.append("skip", "ci/team-a/api:build-57", status="skipped", policy=retention, digest_before=D["api57"],
                   reason="protected: running in cluster prod (Deployment team-a/api)")
        run.finish("succeeded")
    with AuditStore.open(path, clock=stamps(NOW - timedelta(hours=5))) as store:
        run = store.start_run("run", repo_url=repo, repo_commit=commit_b, actor="system:serviceaccount:reconcile")
        with run.mutation("promote", "prod/team-a/web:126", policy=promotion, digest_before=None,
                          digest_after=D["web126"], reason="build-126 soaked 24h in staging; approved"):
            pass
        with run.mutation("deploy", "prod/Deployment/team-a/web", policy=deploy, digest_before=D["web124"],
                          digest_after=D["web126"], reason="126 is the newest approved release"):
            pass
        run.finish("succeeded")
    with AuditStore.open(path, clock=stamps(NOW - timedelta(minutes=42))) as store:
        run = store.start_run("rollback", repo_url=repo, repo_commit=commit_b, actor="alice")
        with run.mutation("rollback", "prod/Deployment/team-a/web", policy=deploy, digest_before=D["web126"],
                          digest_after=D["web124"], reason="by hand: 126 rolled back to 124; 126 held"):
            pass
        run.finish("succeeded")


def sandbox(root: Path) -> Path:
    """The quickstart's sandbox at NOW; its repo-of-record."""
    from reconcile.quickstart.sandbox import build, prepare

    prepare(root, force=False, now=NOW)
    return build(root, NOW).policies


def broken_policies(policies: Path) -> None:
    """Two mistakes committed to the sandbox's repo-of-record, for validate to find."""
    import git

    bad = policies / "retention" / "broken.yaml"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("apiVersion: reconcile/v1\nkind: RetentionPolicy\nmetadata:\n  name: typo\nspec:\n"
                   "  registry: cii\n  repositories: ['team-a/*']\n  keep:\n    - tags: '^v'\n      last: three\n")
    with git.Repo(policies) as repo:
        repo.index.add([bad.relative_to(policies).as_posix()])
        repo.index.commit("A policy with mistakes")


# --- the screenshots ----------------------------------------------------------------------------------

def run(args: list[str], width: int, cwd: Path, env: dict[str, str] | None = None) -> str:
    """What ``reconcile ARGS`` prints (stdout, then stderr) in ``cwd`` on a terminal ``width``
    columns wide."""
    from reconcile.cli import cli

    terminal = {"FORCE_COLOR": "1", "COLUMNS": str(width), "LINES": "200", "TERM": "xterm-256color",
                "NO_COLOR": None, "PAGER": None, "MANPAGER": None, **(env or {})}
    before = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(cli, args, env=terminal, catch_exceptions=False)
    finally:
        os.chdir(before)
    return result.stdout + result.stderr


def views(work: Path) -> Iterator[tuple[str, list[str], int, str]]:
    """(name, the command as typed, width, what it printed) for every screenshot."""
    here = work / "sandbox"
    policies = sandbox(here)
    audit_trail(here / "audit.db")
    state = {"RECONCILE_AUDIT_DB": "audit.db", "RECONCILE_CACHE_DIR": str(work / "cache")}
    commands = [("audit-list", ["audit", "list"]), ("audit-runs", ["audit", "runs"]),
                ("plan", ["plan", "--repo", "policies", "--audit-db", "plan.db"])]
    for width in WIDTHS:
        for name, args in commands:
            yield name, args, width, run(args, width, here, state)
    broken_policies(policies)
    for width in WIDTHS:
        args = ["validate", "--repo", "policies"]
        yield "validate", args, width, run(args, width, here, state)


def typed(args: list[str]) -> str:
    return "$ reconcile " + " ".join(args)


def render(name: str, args: list[str], width: int, output: str) -> tuple[str, str]:
    """(svg, text) of one view: the command line as typed, then its output."""
    console = Console(record=True, width=width, file=io.StringIO(), force_terminal=True, color_system="truecolor",
                      legacy_windows=False)
    console.print(Text(typed(args), style="bold"), crop=False)
    for line in Text.from_ansi(output.rstrip("\n")).split("\n"):
        # As the terminal shows a longer line (validate's file:line messages): wrapped at its edge.
        for part in line.divide(range(width, len(line), width)) if len(line) > width else [line]:
            console.print(part, crop=False, overflow="ignore", no_wrap=True)
    text = console.export_text(clear=False)
    svg = console.export_svg(title=f"reconcile — {width} columns", unique_id=f"{name}-{width}")
    return svg, text


def generate(work: Path) -> dict[str, str]:
    """Every screenshot file's name and content."""
    files: dict[str, str] = {}
    with frozen():
        for name, args, width, output in views(work):
            svg, text = render(name, args, width, output)
            files[f"{name}-{width}.svg"] = svg
            files[f"{name}-{width}.txt"] = text
    return files


def write(files: dict[str, str]) -> None:
    DIRECTORY.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (DIRECTORY / name).write_text(content, encoding="utf-8")


@contextmanager
def scratch() -> Iterator[Path]:
    """Where the inputs are built: always the same path, as the sandbox's Cluster names its
    manifests repository by absolute path and the plan shows it (and sizes its columns by it)."""
    import fcntl
    import shutil

    work = WORK
    with open(f"{work}.lock", "w") as lock:  # two test runs on one machine take turns
        fcntl.flock(lock, fcntl.LOCK_EX)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            yield work
        finally:
            shutil.rmtree(work, ignore_errors=True)


WORK = Path("/tmp/reconcile-screenshots")


if __name__ == "__main__":
    with scratch() as work:
        write(generate(work))
    print(f"wrote {DIRECTORY.relative_to(ROOT)}/", file=sys.stderr)
