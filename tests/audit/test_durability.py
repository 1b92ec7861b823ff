"""The audit store under real conditions: concurrent writer processes, a busy database, a writer
killed mid-mutation, an intent that cannot be written, a failing mutation, and secrets handed to
the store by mistake."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from reconcile.audit.store import CHAINED_TABLES, AuditError, AuditStore, Run
from reconcile.policy.secrets import Secret, SecretRef, SecretResolver

REPO_ROOT = Path(__file__).resolve().parents[2]
ACTIONS_PER_WRITER = 1000


def run_python(code: str, *args: str, timeout: float = 120) -> subprocess.Popen[str]:
    """A real, separate Python process running ``code`` with ``args`` in ``sys.argv[1:]``."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=env, cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.01)


def all_seqs(conn: sqlite3.Connection) -> list[int]:
    union = " UNION ALL ".join(f"SELECT seq FROM {t}" for t in CHAINED_TABLES)
    return [row[0] for row in conn.execute(f"SELECT seq FROM ({union}) ORDER BY seq")]


# --- (a) two writer processes at once -----------------------------------------------------------

WRITER = """
    import sys, time
    from pathlib import Path
    from reconcile.audit.store import AuditStore

    db, name, ready, go, count = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5])
    with AuditStore.open(db) as store:
        run = store.start_run("run", actor=name)
        ready.write_text(run.id)
        while not go.exists():
            time.sleep(0.001)
        for i in range(count):
            run.append("prune", f"registry.example.com/{name}/web:build-{i}", status="succeeded",
                       policy="RetentionPolicy/ci-cleanup", reason="older than 168h")
        print(run.finish("succeeded"))
"""


def test_two_processes_append_to_one_chain(tmp_path: Path) -> None:
    db, go = tmp_path / "audit.db", tmp_path / "go"
    AuditStore.open(db).close()  # the trail exists, as it does for every run but the first
    names = ("writer-a", "writer-b")
    ready = {name: tmp_path / f"ready-{name}" for name in names}
    procs = {name: run_python(WRITER, str(db), name, str(ready[name]), str(go), str(ACTIONS_PER_WRITER))
             for name in names}
    try:
        for name in names:
            wait_for(ready[name])
        go.touch()  # both runs are open: start appending together
        results = {name: proc.communicate(timeout=120) for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for name, proc in procs.items():
        assert proc.returncode == 0, results[name][1]

    with AuditStore.open(db, read_only=True) as store:
        conn = store.conn
        assert conn.execute("SELECT COUNT(*) FROM actions").fetchone()[0] == 2 * ACTIONS_PER_WRITER
        for name in names:
            run_id = ready[name].read_text()
            assert conn.execute("SELECT COUNT(*) FROM actions WHERE run_id = ?", (run_id,)).fetchone()[0] \
                == ACTIONS_PER_WRITER
            record = store.run(run_id)
            assert record is not None and record.outcome == "succeeded" and record.actor == name
            assert record.summary == {"prune.succeeded": ACTIONS_PER_WRITER}
        assert store.unfinished_runs() == []
        total = 2 * ACTIONS_PER_WRITER + 4
        assert all_seqs(conn) == list(range(1, total + 1))  # contiguous across the three tables
        # Both runs started before either appended: the two runs overlapped in one chain.
        starts = sorted(row[0] for row in conn.execute("SELECT seq FROM run_starts"))
        assert starts == [1, 2]
        result = store.verify()
        assert result.ok and result.entries == total
        # Each writer printed the head at its end; both are in the chain, the later one is its head.
        heads = {results[name][0].strip() for name in names}
        assert result.head in heads
        for head in heads:
            assert store.verify(expect_head=head).ok


# --- (b) a busy database is waited on -----------------------------------------------------------

HOLD_SECONDS = 1.5


def test_a_busy_database_is_waited_on_not_failed(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    with AuditStore.open(db) as store:
        run = store.start_run("apply")
        other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
        locked_at = time.monotonic()

        def release() -> None:
            time.sleep(HOLD_SECONDS)
            other.execute("COMMIT")

        releaser = threading.Thread(target=release)
        releaser.start()
        try:
            row = run.append("prune", "registry.example.com/team-a/web:build-1", status="succeeded")
            waited = time.monotonic() - locked_at
        finally:
            releaser.join()
            other.close()
        assert waited >= HOLD_SECONDS
        assert store.action(row["event_id"])["target"] == "registry.example.com/team-a/web:build-1"
        run.finish("succeeded")
        assert store.verify().ok


# --- (c) a writer killed between intent and outcome ---------------------------------------------

KILLED = """
    import os, signal, sys
    from pathlib import Path
    from reconcile.audit.store import AuditStore

    db, marker = sys.argv[1], Path(sys.argv[2])
    store = AuditStore.open(db)
    run = store.start_run("apply", repo_commit="a" * 40)
    print(run.id, flush=True)
    run.append("skip", "registry.example.com/team-a/web:v1.2.3", status="skipped", reason="running in prod-eu")
    with run.mutation("prune", "registry.example.com/team-a/web:build-7", policy="RetentionPolicy/ci-cleanup",
                      reason="older than 168h", digest_before="sha256:" + "c" * 64):
        marker.write_text("deleting")
        os.kill(os.getpid(), signal.SIGKILL)
    marker.write_text("survived the kill")
"""


def test_a_writer_killed_mid_mutation_leaves_an_unfinished_run_and_a_pending_intent(tmp_path: Path) -> None:
    db, marker = tmp_path / "audit.db", tmp_path / "marker"
    proc = run_python(KILLED, str(db), str(marker))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err
    assert marker.read_text() == "deleting"  # the body had started
    killed_run = out.strip()

    with AuditStore.open(db) as store:  # the next run opens the trail
        unfinished = store.unfinished_runs()
        assert [r.id for r in unfinished] == [killed_run]
        assert unfinished[0].outcome == "unfinished" and unfinished[0].finished_at is None
        assert unfinished[0].pid == proc.pid
        assert not unfinished[0].is_running()  # its process is gone
        pending = store.pending_intents()
        assert len(pending) == 1
        assert pending[0]["run_id"] == killed_run
        assert pending[0]["target"] == "registry.example.com/team-a/web:build-7"
        assert pending[0]["status"] == "intent" and pending[0]["digest_before"] == "sha256:" + "c" * 64
        assert store.verify().ok
        # The next run continues the same chain.
        run = store.start_run("apply")
        assert store.unfinished_runs(exclude=run.id)[0].id == killed_run
        run.append("skip", "registry.example.com/team-a/web:build-7", status="skipped",
                   reason=f"outcome of {pending[0]['event_id']} unknown; re-observe")
        head = run.finish("succeeded")
    with AuditStore.open(db, read_only=True) as store:
        assert store.verify(expect_head=head).ok and store.verify().entries == 6


# --- (d) write-ahead: no intent, no mutation ----------------------------------------------------

def test_when_the_intent_cannot_be_written_the_body_never_runs(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    with AuditStore.open(db) as store:
        run = store.start_run("apply")
        before = store.head()
        # Another process holds the write lock for longer than this writer will wait.
        store.conn.execute("PRAGMA busy_timeout=200")
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        ran = False
        try:
            with pytest.raises(AuditError, match="locked"), run.mutation("prune", "web:build-1"):
                ran = True
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert ran is False
        assert store.pending_intents() == [] and store.head() == before  # nothing was written
        assert store.verify().ok


def test_a_read_only_trail_refuses_the_intent_and_the_body_never_runs(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    with AuditStore.open(db) as store:
        run_id = store.start_run("apply").id
    with AuditStore.open(db, read_only=True) as review:
        with pytest.raises(AuditError, match="read-only"):
            review.start_run("apply")
        ran = False
        with pytest.raises(AuditError, match="read-only"), Run(review, run_id).mutation("prune", "web:build-1"):
            ran = True
        assert ran is False
        # Not only the store's flag: SQLite itself refuses the write on this connection.
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            review.conn.execute("INSERT INTO run_ends (seq, run_id, finished_at) VALUES (99, 'x', 'y')")
        assert review.verify().entries == 1


# --- (e) a failing body -------------------------------------------------------------------------

def test_a_failing_body_records_a_failed_outcome_and_re_raises(tmp_path: Path) -> None:
    with AuditStore.open(tmp_path / "audit.db") as store:
        run = store.start_run("apply")
        with pytest.raises(ConnectionError, match="registry returned 503"), run.mutation(
                "promote", "registry.prod.example.com/web:v1.2.3", policy="PromotionPolicy/web",
                reason="soaked 24h in staging", digest_before="sha256:" + "d" * 64):
            raise ConnectionError("registry returned 503")
        intent, failed = (dict(r) for r in store.conn.execute("SELECT * FROM actions ORDER BY seq"))
        assert intent["status"] == "intent" and intent["error"] is None
        assert failed["status"] == "failed"
        assert failed["error"] == "ConnectionError: registry returned 503"
        assert failed["intent_id"] == intent["event_id"]
        assert failed["target"] == intent["target"] and failed["reason"] == "soaked 24h in staging"
        assert failed["duration"] >= 0
        assert store.pending_intents() == []  # the intent has its outcome
        assert run.finish("failed")
        assert store.run(run.id).summary == {"promote.failed": 1}
        assert store.verify().ok


def test_a_succeeding_body_records_what_it_reports(tmp_path: Path) -> None:
    with AuditStore.open(tmp_path / "audit.db") as store:
        run = store.start_run("apply")
        with run.mutation("promote", "registry.prod.example.com/web:v1.2.3") as outcome:
            assert store.pending_intents()[0]["target"] == "registry.prod.example.com/web:v1.2.3"
            outcome.digest_after = "sha256:" + "e" * 64
        with run.mutation("prune", "registry.example.com/team-a/web:build-1") as outcome:
            outcome.status, outcome.reason = "skipped", "already deleted"
        rows = [dict(r) for r in store.conn.execute("SELECT * FROM actions WHERE status != 'intent' ORDER BY seq")]
        assert [(r["kind"], r["status"]) for r in rows] == [("promote", "succeeded"), ("prune", "skipped")]
        assert rows[0]["digest_after"] == "sha256:" + "e" * 64 and rows[1]["reason"] == "already deleted"
        assert store.pending_intents() == [] and store.verify().ok


def test_a_mutation_records_its_tags_and_repository_on_the_intent_and_the_outcome(tmp_path: Path) -> None:
    digest = "sha256:" + "a" * 64
    with AuditStore.open(tmp_path / "audit.db") as store:
        run = store.start_run("apply")
        with run.mutation("prune", f"ci/team-a/web@{digest}", digest_before=digest, tags=("build-1", "build-10")):
            pass
        with pytest.raises(ConnectionError), run.mutation("untag", "ci/team-a/web:build-3", tags=["build-3"]):
            raise ConnectionError("registry returned 503")
        with run.mutation("promote", f"prod/team-a/web@{digest}", digest_after=digest, tags=("prod",)) as outcome:
            outcome.tags = ("prod", "126")  # what the body found out it set
        with run.mutation("deploy", "prod/shop/Deployment/web", tags=("126",)):  # no image in its target
            pass
        run.append("skip", "ci", status="skipped")
        rows = [(r["kind"], r["status"], r["repository"], r["tags"])
                for r in store.conn.execute("SELECT * FROM actions ORDER BY seq")]
        assert rows == [
            ("prune", "intent", "ci/team-a/web", '["build-1","build-10"]'),
            ("prune", "succeeded", "ci/team-a/web", '["build-1","build-10"]'),
            ("untag", "intent", "ci/team-a/web", '["build-3"]'),
            ("untag", "failed", "ci/team-a/web", '["build-3"]'),
            ("promote", "intent", "prod/team-a/web", '["prod"]'),
            ("promote", "succeeded", "prod/team-a/web", '["prod","126"]'),
            ("deploy", "intent", None, '["126"]'),
            ("deploy", "succeeded", None, '["126"]'),
            ("skip", "skipped", None, None),
        ]
        run.append("skip", "ci", status="skipped", repository="ci/team-a/web", tags=("v1",))  # given, not derived
        assert tuple(store.conn.execute("SELECT repository, tags FROM actions ORDER BY seq DESC").fetchone()) == (
            "ci/team-a/web", '["v1"]')
        with pytest.raises(AuditError, match="not the string"):
            run.append("prune", "ci/team-a/web:build-1", status="succeeded", tags="build-1")
        with pytest.raises(AuditError, match="int"):
            run.append("prune", "ci/team-a/web:build-1", status="succeeded", tags=(1,))  # type: ignore[arg-type]
        run.finish("succeeded")
        assert store.verify().ok


# --- (f) secrets at the store's boundary ---------------------------------------------------------

def test_secrets_never_reach_the_file(tmp_path: Path) -> None:
    canary = "canary-" + os.urandom(8).hex()
    resolver = SecretResolver(environ={"REGISTRY_TOKEN": canary})
    secret = resolver.resolve(SecretRef(source="env", env="REGISTRY_TOKEN"), purpose="Registry/ci password")
    revealed = secret.reveal()
    assert revealed == canary
    db = tmp_path / "audit.db"

    def file_bytes() -> bytes:
        return b"".join(Path(f"{db}{suffix}").read_bytes() for suffix in ("", "-wal", "-journal")
                        if Path(f"{db}{suffix}").exists())

    with AuditStore.open(db) as store:
        run = store.start_run("apply", repo_url=f"https://user:{revealed}@git.example.com/policies.git")
        run.append("error", f"registry.example.com/{revealed}/web", status="failed",
                   reason=f"token {revealed} was refused", error=f"401 Unauthorized: bad token {revealed}",
                   policy=secret, digest_before=Secret(revealed))
        with pytest.raises(PermissionError), run.mutation("prune", "registry.example.com/team-a/web:build-1",
                                                          tags=(f"build-{revealed}",)):
            raise PermissionError(f"DELETE refused for Bearer {revealed}")
        with pytest.raises(AuditError, match="dict"):
            run.append("prune", "web:1", status="succeeded", reason={"token": "x"})  # type: ignore[arg-type]
        with pytest.raises(AuditError, match="bytes"):
            run.append("prune", "web:1", status="succeeded", error=canary.encode())  # type: ignore[arg-type]
        with pytest.raises(AuditError, match="list"):
            run.append("prune", [canary], status="succeeded")  # type: ignore[arg-type]

        assert Path(f"{db}-wal").exists()  # the entries are in the WAL now: it is checked too
        assert canary.encode() not in file_bytes()
        row = dict(store.conn.execute("SELECT * FROM actions WHERE kind = 'error'").fetchone())
        assert row["target"] == "registry.example.com/***/web"
        assert row["reason"] == "token *** was refused"
        assert row["error"] == "401 Unauthorized: bad token ***"
        assert row["policy"] == "***" and row["digest_before"] == "***"
        failed = store.conn.execute("SELECT error, tags FROM actions WHERE status = 'failed' AND kind = 'prune'")
        assert tuple(failed.fetchone()) == ("PermissionError: DELETE refused for Bearer ***", '["build-***"]')
        assert store.run(run.id).repo_url == "https://user:***@git.example.com/policies.git"
        assert store.conn.execute("SELECT COUNT(*) FROM actions").fetchone()[0] == 3  # refused ones not written
        run.finish("failed")
        assert store.verify().ok
    assert canary.encode() not in file_bytes()  # after the checkpoint into the main file too
    assert canary not in db.read_bytes().decode("utf-8", "replace")
