"""Start-up stays cheap: ``reconcile --help``, every command's ``--help`` and the audit commands
load only what they use (issue 17). Each case runs in a fresh interpreter and checks which modules
it loaded; no timings are asserted (these machines are shared and noisy): what a command imports
is the regression that matters, ``bench/startup_bench.py`` measures what it costs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from reconcile.cli import cli

ROOT = Path(__file__).resolve().parent.parent

# Never loaded by ``--help`` (a module or anything under it): the library's heavy dependencies and
# its own layers below the command line.
HEAVY = (
    "jsonschema", "referencing",  # schema validation: validate, plan
    "git",  # GitPython: the repo-of-record
    "requests", "urllib3", "aiohttp", "httpx",  # registries, forges
    "kubernetes",  # clusters, the Lease
    "sqlite_utils", "sqlite3",  # the audit store
    "rich",  # terminal rendering
    "re2",  # policy patterns
    "yaml",  # policy documents
    "apprise", "cloudevents",  # notifications
    "reconcile.reconciler", "reconcile.adapters", "reconcile.observe", "reconcile.apply", "reconcile.plan",
    "reconcile.render", "reconcile.audit", "reconcile.quickstart",
    "reconcile.policy.loader", "reconcile.policy.model", "reconcile.policy.source", "reconcile.policy.trust",
    "reconcile.policy.secrets",  # the command line redacts through it only once something loaded it
)

# What the audit subcommands may load besides; ``x.*`` is x and everything under it, a plain name only
# that module (``reconcile.plan``, the package, but not its planners).
AUDIT_STORE = (
    "sqlite3.*",  # the trail is SQLite
    "reconcile.audit.*",  # the store, its queries, several trails
    "reconcile.plan", "reconcile.plan.actions", "reconcile.plan.plan",  # the store's action kinds and causes
    "reconcile.policy.secrets",  # the store redacts secret values from what it writes
)
AUDIT_RENDER = ("reconcile.render", "reconcile.render.audit")  # the TSV (and table) renderings of the trail
AUDIT_VIEW = (
    *AUDIT_RENDER,
    "rich.*",  # list, runs and show: a table on a terminal (rich's Console says whether it is one)
)


def _commands(command: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path] if path else []
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            found += _commands(command.commands[name], (*path, name))
    return found


COMMANDS = _commands(cli)
# The subcommands whose --help lists the audit store's kinds and statuses (--action, --status).
STORE_CHOICES = {("audit", "list"), ("audit", "export")}


def _loaded(args: list[str]) -> tuple[set[str], str, int]:
    """The modules a fresh interpreter has loaded after ``reconcile ARGS``, its output and exit status."""
    code = f"""
import io, json, sys
from contextlib import redirect_stdout
out = io.StringIO()
with redirect_stdout(out):
    from reconcile.cli import cli
    try:
        status = cli.main({args!r}, prog_name="reconcile", standalone_mode=False)
    except SystemExit as e:
        status = e.code
print(json.dumps({{"modules": sorted(sys.modules), "output": out.getvalue(), "status": status or 0}}))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    return set(result["modules"]), result["output"], result["status"]


def _matches(module: str, patterns: tuple[str, ...]) -> bool:
    return any(module == p or (p.endswith(".*") and (module == p[:-2] or module.startswith(p[:-1])))
               for p in patterns)


def _heavy(modules: set[str], allowed: tuple[str, ...] = ()) -> list[str]:
    return sorted(m for m in modules if _matches(m, tuple(f"{h}.*" for h in HEAVY)) and not _matches(m, allowed))


def test_the_commands_are_all_checked() -> None:
    assert len(COMMANDS) >= 15 and ("audit", "verify") in COMMANDS and ("validate",) in COMMANDS


def test_reconcile_help_loads_click_and_the_command_line_only() -> None:
    modules, output, status = _loaded(["--help"])
    assert status == 0 and "Commands:" in output
    assert _heavy(modules) == []
    assert sorted(m for m in modules if m.startswith("reconcile")) == sorted(
        ["reconcile", "reconcile.defaults", "reconcile.policy", "reconcile.policy.durations",
         *("reconcile.cli" + (f".{c}" if c else "") for c in
           ("", "audit", "comment", "config", "explain", "quickstart", "reconcile", "rollback", "session",
            "validate"))])


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_commands_help_loads_nothing_it_does_not_show(command: tuple[str, ...]) -> None:
    modules, output, status = _loaded([*command, "--help"])
    assert status == 0 and f"Usage: reconcile {' '.join(command)}" in output
    assert _heavy(modules, AUDIT_STORE if command in STORE_CHOICES else ()) == []


def test_the_audit_filters_offer_the_stores_kinds_and_statuses() -> None:
    from reconcile.audit.store import KINDS, STATUSES
    from reconcile.cli.audit import list_command

    params = {p.name: p for p in list_command.params}
    assert params["actions"].type.choices == KINDS  # type: ignore[attr-defined]
    assert params["statuses"].type.choices == STATUSES  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small audit trail written through the library: one apply run pruning three tags."""
    from reconcile.audit import AuditStore

    path = tmp_path_factory.mktemp("startup") / "audit.db"
    with AuditStore.open(path) as store:
        run = store.start_run("apply", repo_commit="1a2b3c4d5e6f")
        for n in range(3):
            with run.mutation("prune", f"ci/team-a/web:build-{n}", policy="RetentionPolicy/ci-cleanup",
                              reason="not kept by any rule", digest_before=f"sha256:{str(n) * 64}",
                              tags=[f"build-{n}"]):
                pass
        run.finish("succeeded")
    return path


def test_audit_list_loads_the_store_and_its_view_only(trail: Path) -> None:
    modules, output, status = _loaded(["audit", "list", "--audit-db", str(trail)])
    assert status == 0 and "ci/team-a/web:build-2" in output  # piped: TSV
    assert _heavy(modules, AUDIT_STORE + AUDIT_VIEW) == []


def test_audit_verify_and_export_load_the_store_and_no_rich(trail: Path) -> None:
    modules, output, status = _loaded(["audit", "verify", "--audit-db", str(trail)])
    assert status == 0 and output.startswith("ok: 8 entries, head ")
    # sqlite-utils only to rebuild the views and triggers the migrations make, to compare them
    assert _heavy(modules, (*AUDIT_STORE, *AUDIT_RENDER, "sqlite_utils.*")) == []
    modules, output, status = _loaded(["audit", "export", "--format", "jsonl", "--audit-db", str(trail)])
    assert status == 0 and output.count('"type": "action"') == 6
    assert _heavy(modules, AUDIT_STORE + AUDIT_RENDER) == []
