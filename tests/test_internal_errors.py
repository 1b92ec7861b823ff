"""No traceback reaches a user: an exception no command expected is one line and exit status 4,
recorded as the run's ``error`` action when a run was being recorded; ``--debug`` or
``RECONCILE_DEBUG=1`` shows the traceback instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconcile.audit import AuditStore
from reconcile.cli import INTERNAL_ERROR, INVALID_POLICIES, cli
from reconcile.reconciler import Reconciler

POLICIES = """apiVersion: reconcile/v1
kind: Registry
metadata: {name: ci}
spec: {url: "oci-layout:LAYOUT"}
"""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RECONCILE_DEBUG", raising=False)
    (tmp_path / "layout").mkdir()
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "registry.yaml").write_text(POLICIES.replace("LAYOUT", str(tmp_path / "layout")))

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("unexpected\nstate in   the planner")

    monkeypatch.setattr(Reconciler, "_observe_and_plan", broken)
    return tmp_path


@pytest.mark.parametrize("command", ["plan", "apply", "run", "explain"])
def test_an_unexpected_error_is_one_line_and_exit_4(repo: Path, command: str) -> None:
    args = [command, "--repo", str(repo / "policies"), "--audit-db", str(repo / "audit.db")]
    result = CliRunner().invoke(cli, [*args, *(["v1"] if command == "explain" else []),
                                      *(["--yes"] if command == "apply" else [])])
    assert result.exit_code == INTERNAL_ERROR == 4, result.output
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert line.startswith("Error: internal error: RuntimeError: unexpected state in the planner (nothing more")
    assert "--debug" in line and "Traceback" not in result.output


def test_the_failed_run_holds_the_error_as_an_action(repo: Path) -> None:
    db = repo / "audit.db"
    result = CliRunner().invoke(cli, ["apply", "--yes", "--repo", str(repo / "policies"), "--audit-db", str(db)])
    assert result.exit_code == 4
    with AuditStore.open(str(db), read_only=True) as store:
        (run,) = store.runs()
        assert run.outcome == "failed"
        (reason,) = store.conn.execute("SELECT reason FROM actions WHERE kind = 'error'").fetchone()
        assert reason.startswith("RuntimeError: unexpected")


@pytest.mark.parametrize("how", ["option", "option-after-command", "environment"])
def test_debug_shows_the_traceback(repo: Path, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["plan", "--repo", str(repo / "policies"), "--audit-db", str(repo / "audit.db")]
    if how == "option":
        args = ["--debug", *args]
    elif how == "option-after-command":
        args = [*args, "--debug"]
    else:
        monkeypatch.setenv("RECONCILE_DEBUG", "1")
    result = CliRunner().invoke(cli, args)
    assert isinstance(result.exception, RuntimeError)  # raised through, as python shows it with its traceback


@pytest.mark.parametrize("command", ["plan", "apply", "run"])
def test_invalid_policies_are_exit_6_with_every_problem_and_validate_stays_1(tmp_path: Path, command: str) -> None:
    (tmp_path / "bad.yaml").write_text("apiVersion: reconcile/v1\nkind: Registry\nmetadata: {name: ci}\nspec: {}\n")
    result = CliRunner().invoke(cli, [command, "--repo", str(tmp_path), "--audit-db", str(tmp_path / "a.db"),
                                      *(["--yes"] if command == "apply" else [])])
    assert result.exit_code == INVALID_POLICIES == 6, result.output
    assert "bad.yaml:4: Registry/ci: /spec: 'url' is a required property" in result.stderr
    assert "the repo-of-record is invalid (1 problems); run `reconcile validate`" in result.stderr
    assert CliRunner().invoke(cli, ["validate", "--repo", str(tmp_path)]).exit_code == 1
