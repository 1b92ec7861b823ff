"""Storage faults are clean: a full disk, a read-only directory, a corrupt or locked audit trail
each give one clear error line and exit status 3, no change is made without its intent on record,
and the next run after the fault converges. Against the quickstart's sandbox (OCI-layout
registries), with ``reconcile`` as its own process where the fault is the operating system's."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconcile.audit import AuditStore
from reconcile.audit.store import utc_now
from reconcile.cli import AUDIT_UNAVAILABLE, cli
from reconcile.quickstart.sandbox import Sandbox, build, prepare

ONLY = ["--only", "RetentionPolicy/ci-cleanup"]  # registry changes only: the fault is the trail's


def sandbox(root: Path) -> Sandbox:
    now = datetime.now(UTC)
    prepare(root, force=False, now=now)
    return build(root, now)


def ci_tags(box: Sandbox) -> set[tuple[str, str]]:
    found = set()
    for index in box.registry.glob("**/index.json"):
        repository = index.parent.relative_to(box.registry).as_posix()
        for entry in json.loads(index.read_text())["manifests"]:
            if tag := entry.get("annotations", {}).get("org.opencontainers.image.ref.name"):
                found.add((repository, tag))
    return found


def reconcile(*args: str, cache: Path, file_size_limit: int | None = None,
              wrap: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    def limit() -> None:  # a disk that fills up: every file stops growing at the limit (EFBIG, not a signal)
        if file_size_limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run([*(wrap or []), sys.executable, "-m", "reconcile", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "RECONCILE_CACHE_DIR": str(cache)}, preexec_fn=limit)


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == AUDIT_UNAVAILABLE == 3, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and all(w in errors[0] for w in words), result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def intents(db: Path) -> set[tuple[str, str]]:
    """(repository, tag) of every tag a recorded intent said it would remove."""
    with AuditStore.open(str(db), read_only=True) as store:
        rows = store.conn.execute("SELECT kind, target, tags FROM actions WHERE status = 'intent'").fetchall()
    named = set()
    for kind, target, tags in rows:
        repository = target.split("/", 1)[1].split("@")[0].rsplit(":", 1)[0] if kind == "untag" else \
            target.split("/", 1)[1].split("@")[0]
        names = json.loads(tags or "[]") or [target.rsplit(":", 1)[1]]
        named |= {(repository, tag) for tag in names}
    return named


@pytest.mark.parametrize("kib", [16, 72, 96, 160, 240, 400])
def test_a_disk_that_fills_up_never_removes_a_tag_without_its_intent_and_the_next_run_converges(
        tmp_path: Path, kib: int) -> None:
    box, cache, db = sandbox(tmp_path / "sandbox"), tmp_path / "cache", tmp_path / "audit.db"
    before = ci_tags(box)
    common = ["--repo", str(box.policies), "--audit-db", str(db), *ONLY]

    full = reconcile("apply", "--yes", *common, cache=cache, file_size_limit=kib * 1024)

    if full.returncode != 0:
        assert_one_clear_line(full, "audit trail", f"{db}", "no change is made without its intent on record")
    removed = before - ci_tags(box)
    if db.exists() and removed:
        assert removed <= intents(db)  # the intent of each removal was on disk before it
    else:
        assert not removed
    again = reconcile("apply", "--yes", *common, cache=cache)
    assert again.returncode == 0, again.stderr
    planned = reconcile("plan", "--format", "json", *common, cache=cache)
    assert not [a for a in json.loads(planned.stdout)["actions"] if a["mutates"]]
    verified = reconcile("audit", "verify", "--audit-db", str(db), cache=cache)
    assert verified.returncode == 0 and verified.stdout.startswith("ok: "), verified.stdout + verified.stderr


def test_some_fill_level_stops_an_apply_half_way(tmp_path: Path) -> None:
    """The matrix above exercises the middle of a run, not only its first write: some limit lets
    the run start, remove tags, and then stop on a write of the trail."""
    for kib in (160, 240, 400, 640):
        box, db = sandbox(tmp_path / f"s{kib}"), tmp_path / f"a{kib}.db"
        before = ci_tags(box)
        full = reconcile("apply", "--yes", "--repo", str(box.policies), "--audit-db", str(db), *ONLY,
                         cache=tmp_path / "cache", file_size_limit=kib * 1024)
        if full.returncode == AUDIT_UNAVAILABLE and before - ci_tags(box):
            return
    pytest.fail("no file size limit stopped an apply after its first removal")


def unshare_read_only(directory: Path) -> list[str]:
    """A command prefix running the rest in a mount namespace where ``directory`` is read-only
    (as a read-only volume is to a pod); needs root, which CI and these machines have."""
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed for the read-only directory case")
    return ["unshare", "-m", "sh", "-c", f'mount --bind -o ro "{directory}" "{directory}" && exec "$@"', "sh"]


def test_a_read_only_directory_is_one_line_and_nothing_is_removed(tmp_path: Path) -> None:
    box, cache = sandbox(tmp_path / "sandbox"), tmp_path / "cache"
    audit_dir = tmp_path / "audit"
    audit_dir.mkdir()
    before = ci_tags(box)
    result = reconcile("apply", "--yes", "--repo", str(box.policies), "--audit-db", str(audit_dir / "audit.db"),
                       *ONLY, cache=cache, wrap=unshare_read_only(audit_dir))
    assert_one_clear_line(result, "cannot create the lock file", "Read-only file system", "nothing was done")
    assert ci_tags(box) == before
    assert reconcile("apply", "--yes", "--repo", str(box.policies), "--audit-db", str(audit_dir / "audit.db"),
                     *ONLY, cache=cache).returncode == 0  # writable again: it converges


def test_a_corrupt_trail_is_one_line_for_apply_and_review_and_plan_fails_closed(tmp_path: Path) -> None:
    box, cache, db = sandbox(tmp_path / "sandbox"), tmp_path / "cache", tmp_path / "audit.db"
    db.write_bytes(b"this is not a database " * 1000)
    before = ci_tags(box)
    common = ["--repo", str(box.policies), "--audit-db", str(db)]
    applied = reconcile("apply", "--yes", *common, *ONLY, cache=cache)
    assert_one_clear_line(applied, "audit trail", "file is not a database")
    assert ci_tags(box) == before
    listed = reconcile("audit", "list", "--audit-db", str(db), cache=cache)
    assert_one_clear_line(listed, "file is not a database")
    planned = reconcile("plan", "--format", "json", *common, cache=cache)  # the trail is read for gates and holds
    assert planned.returncode == 1, planned.stderr
    (soak,) = [a for a in json.loads(planned.stdout)["actions"] if a.get("cause") == "gate-unreadable"]
    assert "the audit trail could not be read" in soak["reason"] and "file is not a database" in soak["reason"]


def test_a_locked_trail_is_one_line_and_nothing_is_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    box, db = sandbox(tmp_path / "sandbox"), tmp_path / "audit.db"
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    AuditStore.open(str(db)).close()
    monkeypatch.setattr("reconcile.audit.store.BUSY_TIMEOUT_SECONDS", 0.2)
    before = ci_tags(box)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another writer that never lets go
    try:
        result = CliRunner().invoke(cli, ["apply", "--yes", "--repo", str(box.policies), "--audit-db", str(db), *ONLY])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 3, result.output
    assert "database is locked" in result.stderr and "Traceback" not in result.output
    assert ci_tags(box) == before
    assert utc_now()  # the trail is usable again afterwards
    with AuditStore.open(str(db)) as store:
        assert store.verify().ok
