"""A command's run on the trail: the next run reports an interrupted one, and each prints its head."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reconcile.audit import AuditStore
from reconcile.reconciler.errors import ReconcileError
from reconcile.reconciler.runs import audited_run

KILLED_WRITER = """
import os, signal, sys
from reconcile.audit import AuditStore
store = AuditStore.open(sys.argv[1])
run = store.start_run("apply", repo_commit="abc123")
with run.mutation("prune", "ci/web:build-7", policy="RetentionPolicy/ci", digest_before="sha256:" + "a" * 64):
    os.kill(os.getpid(), signal.SIGKILL)  # dies after the intent, before the outcome
"""


def test_next_run_reports_the_killed_one_and_prints_its_head(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "audit.db"
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(db)])
    assert killed.returncode == -9

    with audited_run(str(db), "run", _stderr, repo_commit="def456") as run:
        run.append("skip", "ci/web:v1", status="skipped", reason="kept by rule 0")
    err = capsys.readouterr().err.splitlines()

    store = AuditStore.open(db, read_only=True)
    (interrupted,) = store.unfinished_runs()
    assert err[0].startswith(f"warning: run {interrupted.id} (started {interrupted.started_at}, ")
    assert err[0].endswith("never finished; 1 intent without outcome: "
                           f"{store.pending_intents()[0]['event_id']} (prune ci/web:build-7)")
    assert err[1] == f"audit: run {run.id} succeeded; chain head {store.head()}"
    assert store.run(run.id).outcome == "succeeded"
    assert store.verify(expect_head=store.head()).ok


def test_a_failing_body_or_action_fails_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "audit.db")
    with pytest.raises(RuntimeError), audited_run(db, "apply", _stderr) as crashed:
        raise RuntimeError("registry unreachable")
    with audited_run(db, "apply", _stderr) as partial, pytest.raises(OSError), partial.mutation("prune", "ci/web:old"):
        raise OSError("HTTP 503")
    store = AuditStore.open(db, read_only=True)
    assert store.run(crashed.id).outcome == "failed"
    assert store.run(partial.id).outcome == "failed"
    assert store.run(partial.id).summary == {"prune.failed": 1}
    assert "warning" not in capsys.readouterr().err  # both runs finished: nothing to report


def test_an_unwritable_trail_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "not-a-db").write_text("hello")
    with pytest.raises(ReconcileError, match="audit trail"), \
            audited_run(str(tmp_path / "not-a-db"), "apply", _stderr):
        pass


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)
