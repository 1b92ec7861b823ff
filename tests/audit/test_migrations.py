"""Schema versions: recorded, applied forward once, and a newer database refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from reconcile.audit import AuditError, AuditStore
from reconcile.audit import store as store_module


def versions(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM schema_versions ORDER BY version")]


def test_a_new_trail_records_its_schema_version_once(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    AuditStore.open(path).close()
    AuditStore.open(path).close()
    assert versions(path) == [1]


def test_a_later_migration_is_applied_forward_and_old_entries_still_verify(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.db"
    with AuditStore.open(path) as store:
        run = store.start_run("apply")
        run.append("prune", "ci/web:old", status="succeeded")
        head = run.finish("succeeded")

    def add_approver(db: sqlite_utils.Database) -> None:
        db["actions"].add_column("approver", str)

    monkeypatch.setattr(store_module, "MIGRATIONS", (*store_module.MIGRATIONS, (2, add_approver)))
    with AuditStore.open(path) as store:
        assert "approver" in store.db["actions"].columns_dict
        assert store.verify(expect_head=head).ok  # NULL columns are not part of old entries' hashes
        store.start_run("run").finish("succeeded")
        assert store.verify().ok
    assert versions(path) == [1, 2]


def test_a_trail_from_a_newer_reconcile_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    AuditStore.open(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_versions VALUES (99, '2030-01-01T00:00:00Z')")
    with pytest.raises(AuditError, match="schema version 99, newer than this reconcile understands"):
        AuditStore.open(path)
