"""Runs are recorded truthfully: the outcome follows from what the run recorded, a failure is an
``error`` action with its reason, and no run ends with an empty summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconcile.audit import AuditStore
from reconcile.audit.store import RunOutcome, outcome_of
from reconcile.cli import cli
from reconcile.reconciler.errors import ReconcileError
from reconcile.reconciler.runs import audited_run
from tests.apply.test_retention_end_to_end import images  # noqa: F401 (a fixture)

CASES = [
    ({}, False, False, RunOutcome.SUCCEEDED),
    ({"changes.planned": 0}, False, False, RunOutcome.SUCCEEDED),
    ({"prune.succeeded": 2}, False, False, RunOutcome.SUCCEEDED),
    ({"prune.succeeded": 2, "prune.failed": 1}, False, False, RunOutcome.PARTIAL),
    ({"prune.failed": 1}, False, False, RunOutcome.FAILED),
    ({"prune.failed": 1, "skip.skipped": 1}, False, True, RunOutcome.FAILED),
    ({"prune.succeeded": 1, "prune.skipped": 1}, True, False, RunOutcome.PARTIAL),
    ({"skip.skipped": 1}, False, True, RunOutcome.BLOCKED),
    ({"prune.succeeded": 3, "skip.skipped": 1}, False, True, RunOutcome.BLOCKED),
    ({"prune.skipped": 1}, False, False, RunOutcome.SUCCEEDED),  # "already gone": nothing left to do
]


@pytest.mark.parametrize(("counts", "partial", "blocked", "expected"), CASES)
def test_the_outcome_follows_from_what_the_run_recorded(counts: dict[str, int], partial: bool, blocked: bool,
                                                        expected: RunOutcome) -> None:
    assert outcome_of(counts, partial=partial, blocked=blocked) is expected


def test_a_run_that_raises_records_an_error_action_with_its_reason(tmp_path: Path) -> None:
    db = str(tmp_path / "audit.db")
    with pytest.raises(ReconcileError), audited_run(db, "apply", print, repo_url="policies"):
        raise ReconcileError("registry ci could not be read: connection refused")
    with AuditStore.open(db, read_only=True) as store:
        (run,) = store.runs()
        assert run.outcome == "failed" and run.summary == {"error.failed": 1}
        (row,) = store.conn.execute("SELECT kind, status, target, reason FROM actions").fetchall()
        assert tuple(row) == ("error", "failed", "policies", "registry ci could not be read: connection refused")


def test_policies_that_do_not_load_still_leave_a_failed_run(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("apiVersion: reconcile/v1\nkind: Registry\nmetadata: {name: ci}\nspec: {}\n")
    db = tmp_path / "audit.db"
    result = CliRunner().invoke(cli, ["run", "--repo", str(tmp_path), "--audit-db", str(db)])
    assert result.exit_code == 6  # the repo-of-record is invalid: the same again until fixed
    with AuditStore.open(str(db), read_only=True) as store:
        (run,) = store.runs()
        assert (run.mode, run.outcome, run.summary) == ("run", "failed", {"error.failed": 1})
        reason = store.conn.execute("SELECT reason FROM actions WHERE kind = 'error'").fetchone()[0]
        assert "the repo-of-record is invalid" in reason


def test_plan_record_leaves_a_dry_run_plan_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.apply.test_retention_end_to_end import policies  # a real registry is not needed to plan nothing
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "layout-registry"
    root.mkdir()
    from tests.conftest import RunningRegistry
    layout = RunningRegistry("layout", f"oci-layout:{root}", tmp_path, None)  # type: ignore[arg-type]
    repo = policies(tmp_path, layout, "team-a/web")
    db = tmp_path / "audit.db"
    plain = CliRunner().invoke(cli, ["plan", "--repo", str(repo), "--audit-db", str(db)])
    assert plain.exit_code == 0, plain.output
    assert not db.exists()  # a plan writes nothing unless asked
    recorded = CliRunner().invoke(cli, ["plan", "--record", "--repo", str(repo), "--audit-db", str(db)])
    assert recorded.exit_code == 0, recorded.output
    with AuditStore.open(str(db), read_only=True) as store:
        (run,) = store.runs()
        assert (run.mode, run.dry_run, run.outcome) == ("plan", True, "succeeded")
        assert json.dumps(run.summary) != "{}" and run.summary == {"changes.planned": 0}


def test_plan_record_lists_what_it_would_change_as_dry_run_rows(
        tmp_path: Path, plain_registry: object, repo: str, images: dict[str, str],  # noqa: F811 (the fixture)
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.apply.test_retention_end_to_end import policies, tags
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    root, db = policies(tmp_path, plain_registry, repo), tmp_path / "audit.db"  # type: ignore[arg-type]
    result = CliRunner().invoke(cli, ["plan", "--record", "--repo", str(root), "--audit-db", str(db)])
    assert result.exit_code == 0, result.output
    assert tags(plain_registry, repo) == ["build-1", "build-2", "build-3", "v1", "v2"]  # type: ignore[arg-type]
    with AuditStore.open(str(db), read_only=True) as store:
        (run,) = store.runs()
        assert run.summary == {"changes.planned": 2, "prune.skipped": 2}
        rows = store.conn.execute("SELECT kind, status, dry_run, tags FROM actions ORDER BY seq").fetchall()
        assert [tuple(r)[:3] for r in rows] == [("prune", "skipped", 1)] * 2
