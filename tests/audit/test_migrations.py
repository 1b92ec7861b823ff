"""Schema versions: recorded, applied forward once, and a newer database refused; a trail written
before migration 2 (repository, tags, action_refs) migrated, verified and reviewed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import sqlite_utils
from click.testing import CliRunner, Result

import reconcile.cli.audit  # noqa: F401  (registers the command group)
from reconcile.audit import AuditError, AuditStore
from reconcile.audit import store as store_module
from reconcile.audit.query import removals
from reconcile.cli import cli as main


def versions(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM schema_versions ORDER BY version")]


def test_a_new_trail_records_its_schema_version_once(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    AuditStore.open(path).close()
    AuditStore.open(path).close()
    assert versions(path) == [1, 2, 3]


def test_a_later_migration_is_applied_forward_and_old_entries_still_verify(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.db"
    with AuditStore.open(path) as store:
        run = store.start_run("apply")
        run.append("prune", "ci/web:old", status="succeeded")
        head = run.finish("succeeded")

    def add_approver(db: sqlite_utils.Database) -> None:
        db["actions"].add_column("approver", str)

    latest = store_module.MIGRATIONS[-1][0]
    monkeypatch.setattr(store_module, "MIGRATIONS", (*store_module.MIGRATIONS, (latest + 1, add_approver)))
    with AuditStore.open(path) as store:
        assert "approver" in store.db["actions"].columns_dict
        assert store.verify(expect_head=head).ok  # NULL columns are not part of old entries' hashes
        store.start_run("run").finish("succeeded")
        assert store.verify().ok
    assert versions(path) == list(range(1, latest + 2))


def test_a_trail_from_a_newer_reconcile_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    AuditStore.open(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_versions VALUES (99, '2030-01-01T00:00:00Z')")
    with pytest.raises(AuditError, match="schema version 99, newer than this reconcile understands"):
        AuditStore.open(path)


# --- migration 2: repository and tags on actions, the action_refs index --------------------------

V1_DUMP = Path(__file__).parent / "data" / "trail-v1.sql"
V1_HEAD = "f500a660ab343b619a80a06ecef4a75b6ccb3bf82e3a68e12d9266ec6a591d77"  # what its run printed
D_A, D_B, D_C = (f"sha256:{c * 64}" for c in "abc")


def v1_trail(tmp_path: Path) -> Path:
    """A trail written by reconcile before migration 2 (``git archive`` of 0365a34, one run: a
    prune, an untag, a skip and a failed promotion), restored from its SQL dump."""
    path = tmp_path / "audit.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(V1_DUMP.read_text())
    conn.close()
    return path


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_a_trail_from_before_migration_2_still_verifies_after_it(tmp_path: Path) -> None:
    path = v1_trail(tmp_path)
    assert versions(path) == [1]
    with AuditStore.open(path, read_only=True) as store:  # review commands do not migrate
        assert not store.has_refs and store.verify(expect_head=V1_HEAD).ok
    with AuditStore.open(path) as store:
        assert store.has_refs
        assert store.verify(expect_head=V1_HEAD).ok
        assert {"repository", "tags"} <= set(store.db["actions"].columns_dict)
        assert store.conn.execute("SELECT COUNT(*) FROM actions WHERE repository IS NOT NULL "
                                  "OR tags IS NOT NULL").fetchone()[0] == 0  # old rows are not rewritten
        # earlier actions are indexed by their digests (their tags were never recorded)
        assert sorted(tuple(r) for r in store.conn.execute("SELECT seq, ref FROM action_refs")) == [
            (2, D_A), (3, D_A), (4, D_B), (5, D_B), (7, D_C), (8, D_C)]
        run = store.start_run("apply")
        with run.mutation("prune", f"ci/team-a/web@{D_B}", digest_before=D_B, tags=("v1",)):
            pass
        head = run.finish("succeeded")
        assert store.verify(expect_head=V1_HEAD).ok and store.verify(expect_head=head).ok
    assert versions(path) == [1, 2, 3]
    verified = cli("audit", "verify", "--audit-db", str(path), "--expect-head", V1_HEAD)
    assert (verified.exit_code, verified.stdout) == (0, f"ok: 13 entries, head {head}\n")


def test_migration_2_keeps_every_table_append_only(tmp_path: Path) -> None:
    path = v1_trail(tmp_path)
    with AuditStore.open(path) as store:
        store.start_run("apply").append("prune", f"ci/team-a/web@{D_A}", status="succeeded", tags=("build-1",))
    with sqlite3.connect(path) as conn:
        for statement in ("UPDATE actions SET tags = '[\"v9\"]' WHERE seq = 3",
                          "UPDATE actions SET repository = 'ci/other' WHERE seq = 11", "DELETE FROM actions",
                          "UPDATE run_starts SET actor = 'x'", "DELETE FROM run_ends",
                          "UPDATE action_refs SET ref = 'ci/other:v9'", "DELETE FROM action_refs WHERE seq = 11"):
            with pytest.raises(sqlite3.DatabaseError, match="the audit trail is append-only"):
                conn.execute(statement)
        with pytest.raises(sqlite3.DatabaseError, match="malformed JSON"):  # the index could not file its tags
            conn.execute("INSERT INTO actions (seq, event_id, run_id, timestamp, kind, status, repository, tags) "
                         "VALUES (99, 'e', 'r', 't', 'prune', 'succeeded', 'ci/web', 'not json')")
    conn.close()
    assert versions(path) == [1, 2, 3]


def test_an_unmigrated_trail_is_reviewed_read_only(tmp_path: Path) -> None:
    """`audit` commands open a trail read-only and so do not migrate it: they work without the new
    columns, finding actions by target and digest."""
    path = v1_trail(tmp_path)
    before = path.read_bytes()
    listed = cli("audit", "list", "--audit-db", str(path), "--target", "*sha256:aaaa*")
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["seq", "2", "3"]
    assert listed.stdout.splitlines()[0].endswith("\tintent_id\trepository\ttags\tcause")
    by_tag = cli("audit", "list", "--audit-db", str(path), "--target", "*build-3")
    assert [line.split("\t")[0] for line in by_tag.stdout.splitlines()] == ["seq", "4", "5"]  # the untag's target
    exported = json.loads(cli("audit", "export", "--audit-db", str(path)).stdout)
    assert {(a["repository"], a["tags"]) for a in exported["actions"]} == {(None, None)}
    assert cli("audit", "export", "--format", "csv", "--audit-db", str(path)).exit_code == 0
    with AuditStore.open(path, read_only=True) as store:  # what explain reads about a tag or digest that went
        assert [r["seq"] for r in removals(store, digest=D_A)] == [3]
        assert [r["seq"] for r in removals(store, tag="build-3")] == [5]
        assert removals(store, tag="build-1") == []  # the prune's tags were never recorded
    assert path.read_bytes() == before and versions(path) == [1]
