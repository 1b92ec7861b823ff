"""Causes in the audit trail (migration 3): each action row carries its plan action's cause, the
chain covers it, a trail written before it still verifies after it, and the kinds a row may hold
are a typed set."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from reconcile.adapters.registry import open_registry
from reconcile.apply.executor import apply_plan
from reconcile.audit import AuditStore
from reconcile.audit import store as store_module
from reconcile.audit.store import CHANGE_KINDS, KINDS, AuditKind
from reconcile.plan.actions import Action, ActionKind, Cause
from reconcile.plan.plan import make_plan
from reconcile.policy.secrets import SecretResolver
from reconcile.render.audit import actions_tsv
from tests.adapters.registry.oci import Layout
from tests.conftest import registry_policy

D_A, D_B = (f"sha256:{c * 64}" for c in "ab")


def causes(store: AuditStore) -> list[tuple[str, str, str | None]]:
    return [tuple(r) for r in store.conn.execute("SELECT kind, status, cause FROM actions ORDER BY seq")]


def test_a_cause_is_stored_chained_and_verified(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with AuditStore.open(path) as store:
        run = store.start_run("apply")
        with run.mutation(Action("RetentionPolicy/r", "prune", f"ci/web@{D_A}").mutation_kind, f"ci/web@{D_A}",
                          digest_before=D_A, tags=("old",), cause=Cause.EXPIRED):
            pass
        run.append("skip", "ci/web", status="skipped", reason="blocked", cause=Cause.OVER_MAX_DELETIONS)
        run.append("skip", "ci/web", status="skipped", reason="refused")  # no cause: none recorded
        head = run.finish("partial")
        assert causes(store) == [("prune", "intent", "expired"), ("prune", "succeeded", "expired"),
                                 ("skip", "skipped", "over-max-deletions"), ("skip", "skipped", None)]
        assert store.has_causes and store.verify(expect_head=head).ok
        assert run.counts == {"prune.succeeded": 1, "skip.skipped": 2}
    with sqlite3.connect(path) as conn:  # an edited cause breaks the chain at its row
        conn.execute("DROP TRIGGER actions_no_update")
        conn.execute("UPDATE actions SET cause = 'no-rule-matches' WHERE status = 'succeeded'")
    conn.close()
    with AuditStore.open(path, read_only=True) as store:
        result = store.verify()
        assert not result.ok and result.first_break is not None and result.first_break.seq == 3
        assert "does not match its hash" in result.first_break.reason


def test_a_row_without_a_cause_hashes_as_before_migration_3(tmp_path: Path) -> None:
    """``chain.canonical`` leaves NULL out: a row with no cause hashes exactly as one written before
    the column existed."""
    with AuditStore.open(tmp_path / "audit.db") as store:
        row = store.start_run("apply").append("error", "x", status="failed", reason="boom")
        assert row.get("cause") is None
        fields = {k: v for k, v in row.items() if k not in ("prev_hash", "hash", "cause")}
        assert store_module.chain.entry_hash(row["prev_hash"], {"table": "actions", **fields}) == row["hash"]


def test_unknown_kinds_and_causes_are_refused_and_kinds_are_typed(tmp_path: Path) -> None:
    with AuditStore.open(tmp_path / "audit.db") as store:
        run = store.start_run("apply")
        with pytest.raises(ValueError, match="unknown action kind 'keep'"):
            run.append(ActionKind.KEEP, "ci/web:v1", status="skipped")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="unknown action kind 'delete'"):
            run.append("delete", "ci/web:v1", status="skipped")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="unknown cause 'because'"):
            run.append("skip", "ci/web", status="skipped", cause="because")  # type: ignore[arg-type]
        row = run.append(ActionKind.PROMOTE, f"ci/web@{D_A}", status="succeeded", cause=Cause.GATES_OPEN)
        assert (row["kind"], row["cause"], row["repository"]) == ("promote", "gates-open", "ci/web")
        assert type(row["kind"]) is str and type(row["cause"]) is str
    assert KINDS == ("promote", "prune", "untag", "deploy", "rollback", "skip", "error", "notify")
    assert {k.value for k in CHANGE_KINDS} == {k.value for k in ActionKind} - {"keep", "blocked"}
    assert AuditKind.SKIP == "skip" and set(KINDS) == {k.value for k in AuditKind}


def test_the_executor_records_each_action_s_cause(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "registry" / "team" / "web")
    old = layout.image()
    layout.tag(old, "old")
    layout.save()
    client = open_registry(registry_policy("local", f"oci-layout:{tmp_path / 'registry'}"), SecretResolver())
    plan = make_plan("p", None, "t", [
        Action("RetentionPolicy/r", ActionKind.PRUNE, f"local/team/web@{old.digest}", old.digest, None, "old",
               ("old",), cause=Cause.EXPIRED)])
    with AuditStore.open(tmp_path / "audit.db") as store:
        run = store.start_run("apply")
        result = apply_plan(plan, {"local": client}, run)
        run.finish("succeeded")
        assert [a.cause for a in result.succeeded] == [Cause.EXPIRED], result
        assert causes(store) == [("prune", "intent", "expired"), ("prune", "succeeded", "expired")]
        rows = [dict(r) for r in store.conn.execute("SELECT * FROM actions ORDER BY seq")]
    header, first, _ = actions_tsv(rows).splitlines()[:3]
    assert header.endswith("\trepository\ttags\tcause") and first.endswith("\tlocal/team/web\told\texpired")


# --- migration 3 on a trail written by schema version 2 ------------------------------------------

def v2_trail(path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A trail as reconcile wrote it before migration 3 (migrations 1 and 2 only): one run, a prune
    with its tags, a skip. Returns its chain head."""
    with monkeypatch.context() as before:
        before.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:2])
        with AuditStore.open(path) as store:
            assert store.schema_version == 2 and not store.has_causes
            assert "cause" not in store.db["actions"].columns_dict
            run = store.start_run("apply")
            with run.mutation("prune", f"ci/web@{D_A}", digest_before=D_A, tags=("old", "older")):
                pass
            # a caller passing a cause to a trail without the column could not write it: none do here
            run.append("skip", f"ci/web@{D_B}", status="skipped", reason="state changed")
            return run.finish("partial")


def test_a_version_2_trail_migrates_and_still_verifies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.db"
    head = v2_trail(path, monkeypatch)
    with AuditStore.open(path, read_only=True) as store:  # review does not migrate: still version 2
        assert store.schema_version == 2 and not store.has_causes and store.verify(expect_head=head).ok
    with AuditStore.open(path) as store:
        assert store.schema_version == 3 and store.has_causes
        assert "cause" in store.db["actions"].columns_dict
        assert store.verify(expect_head=head).ok  # old rows: NULL cause, hashes unchanged
        assert [c for *_, c in causes(store)] == [None, None, None]
        run = store.start_run("apply")
        run.append("untag", "ci/web:old", status="succeeded", tags=("old",), cause=Cause.NO_RULE_MATCHES)
        new_head = run.finish("succeeded")
        assert store.verify(expect_head=head).ok and store.verify(expect_head=new_head).ok
        assert causes(store)[-1] == ("untag", "succeeded", "no-rule-matches")
    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("SELECT version FROM schema_versions ORDER BY version")] == [1, 2, 3]
        with pytest.raises(sqlite3.DatabaseError, match="the audit trail is append-only"):
            conn.execute("UPDATE actions SET cause = 'expired'")
    conn.close()
