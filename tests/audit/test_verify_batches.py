"""``AuditStore.verify`` checks the chain in batches (and, for a long trail, in stretches checked by
forked processes side by side): it must find exactly what the one-entry-at-a-time reference,
``chain.verify(store.chain_entries())``, finds, wherever a break falls: inside a batch, on either
side of a batch boundary, in the last partial batch, on either side of a boundary between two
workers' stretches. The hash itself is pinned for a fixed entry."""

from __future__ import annotations

import concurrent.futures
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from reconcile.audit import chain
from reconcile.audit import store as store_module
from reconcile.audit.store import CHAINED_TABLES, AuditStore
from tests.audit.test_chain import CONTENT_REASON, PREV_REASON, cover_tracks, order, raw

BATCH = 8


# --- the hash, pinned ---------------------------------------------------------------------------

PINNED_ENTRY: dict[str, Any] = {
    "table": "actions", "seq": 7, "event_id": "evt-20260101T000000-0badcafe",
    "run_id": "run-20260101T000000-00c0ffee", "timestamp": "2026-01-01T00:00:00.000001Z", "kind": "prune",
    "target": "registry.example.com/team-a/web@sha256:" + "ab" * 32, "digest_before": "sha256:" + "ab" * 32,
    "digest_after": None, "policy": "RetentionPolicy/ci-cleanup",
    "reason": 'older than 168h: caf\u00e9 \u2603 "quoted" \\ tab\t nul\x00 del\x7f', "status": "succeeded",
    "error": None, "duration": 0.30000000000000004, "dry_run": 0, "intent_id": "evt-20260101T000000-0badcaf0",
    "repository": "registry.example.com/team-a/web", "tags": '["build-9","build-10"]', "cause": "expired",
    "pid": -(2**63)}


def test_the_entry_hash_of_a_fixed_entry_is_pinned() -> None:
    """Computed by the implementation every existing trail was written with: any change to the
    canonical encoding or the hash would make those trails fail to verify."""
    assert chain.canonical(PINNED_ENTRY) == (
        b'{"cause":"expired","digest_before":"sha256:' + b"ab" * 32 + b'","dry_run":0,'
        b'"duration":0.30000000000000004,"event_id":"evt-20260101T000000-0badcafe",'
        b'"intent_id":"evt-20260101T000000-0badcaf0","kind":"prune","pid":-9223372036854775808,'
        b'"policy":"RetentionPolicy/ci-cleanup","reason":"older than 168h: caf\\u00e9 \\u2603 '
        b'\\"quoted\\" \\\\ tab\\t nul\\u0000 del\\u007f","repository":"registry.example.com/team-a/web",'
        b'"run_id":"run-20260101T000000-00c0ffee","seq":7,"status":"succeeded","table":"actions",'
        b'"tags":"[\\"build-9\\",\\"build-10\\"]","target":"registry.example.com/team-a/web@sha256:'
        + b"ab" * 32 + b'","timestamp":"2026-01-01T00:00:00.000001Z"}')
    assert chain.entry_hash(chain.GENESIS, PINNED_ENTRY) == (
        "318b2d8d0952b915f3835350014f53e898ae95328820de1d590c2b39e017f9e1")
    assert chain.entry_hash("f" * 64, PINNED_ENTRY) == (
        "73979fb1f6f7a05227522aea14bde9bbf81e58a676ec21b3d82221688f93dfa1")


# --- a trail of 5 batches and a bit -------------------------------------------------------------

def build(path: Path) -> str:
    """Two runs, 42 entries (5 batches of 8 and a last partial batch of 2), values of every kind
    the store writes, some a JSON encoder has to escape. Returns the head."""
    with AuditStore.open(path) as store:
        for n in range(2):
            run = store.start_run("apply", repo_url="https://git.example.com/p.git", repo_commit=f"{n:040x}")
            for i in range(9):
                with run.mutation("prune", f"registry.example.com/team-a/web:build-{n}{i}", tags=(f"build-{n}{i}",),
                                  policy="RetentionPolicy/ci", reason=f"older than 168h \u2603 \"{i}\"\t\\",
                                  digest_before=f"sha256:{n:02x}{i:02x}" + "a" * 60) as outcome:
                    if i == 4:
                        outcome.status, outcome.reason = "skipped", "caf\u00e9 \x7f gone"
            run.append("skip", "registry.example.com/team-a/web:v1", status="skipped", reason="in use \x00 nul")
            head = run.finish("succeeded")
    return head


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("batches") / "audit.db"
    return path, build(path)


@pytest.fixture
def trail(template: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    path = tmp_path / "audit.db"
    path.write_bytes(template[0].read_bytes())
    monkeypatch.setattr(store_module, "VERIFY_BATCH", BATCH)
    return path, template[1]


def reference(path: Path, expect_head: str | None) -> chain.Verification:
    """The one-entry-at-a-time answer, then the checks after the chain as ``verify`` makes them."""
    with AuditStore.open(path, read_only=True) as store:
        result = chain.verify(store.chain_entries(), expect_head)
        if result.ok and (found := store._check_refs()) is not None:
            return chain.Verification(result.entries, result.head, found)
        return result


def verified(path: Path, expect_head: str | None, workers: int) -> chain.Verification:
    with AuditStore.open(path, read_only=True) as store:
        return store.verify(expect_head, workers=workers)


WORKERS = [1, 2, 3]


def test_the_trail_has_a_last_partial_batch(trail: tuple[Path, str]) -> None:
    assert len(order(trail[0])) == 42 == 5 * BATCH + 2


@pytest.mark.parametrize("workers", WORKERS)
def test_the_untouched_trail_verifies_in_batches(trail: tuple[Path, str], workers: int) -> None:
    path, head = trail
    result = verified(path, head, workers)
    assert result == reference(path, head) == chain.Verification(42, head, None)
    assert verified(path, "e" * 64, workers) == reference(path, "e" * 64)  # not in the trail
    assert not reference(path, "e" * 64).ok


# Positions (1-based, in chain order; seq is the position) where a break is put: the first entry,
# the last of a batch, the first of the next, the middle of a batch, the last partial batch, the
# very last entry; with 2 and 3 workers the stretches start at seq 22 and at 15 and 29, so these
# also fall on either side of a stretch boundary.
POSITIONS = [1, 8, 9, 14, 15, 21, 22, 28, 29, 41, 42]


def entry_at(path: Path, position: int) -> tuple[str, int]:
    return order(path)[position - 1]


def drop_triggers(conn: sqlite3.Connection) -> None:
    for table in CHAINED_TABLES:
        conn.execute(f"DROP TRIGGER {table}_no_update")
        conn.execute(f"DROP TRIGGER {table}_no_delete")


def check(path: Path, workers: int, table: str, seq: int, reason: str) -> None:
    result = verified(path, None, workers)
    assert result == reference(path, None)
    assert result.first_break is not None, result
    assert (result.first_break.table, result.first_break.seq) == (table, seq), str(result.first_break)
    assert reason in result.first_break.reason


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("position", POSITIONS)
def test_a_changed_row_is_found(trail: tuple[Path, str], position: int, workers: int) -> None:
    path, _ = trail
    table, seq = entry_at(path, position)
    column = "target" if table == "actions" else "run_id"
    with raw(path) as conn:
        drop_triggers(conn)
        conn.execute(f"UPDATE {table} SET {column} = {column} || 'x' WHERE seq = ?", (seq,))
    check(path, workers, table, seq, CONTENT_REASON)


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("position", POSITIONS[:-1])
def test_a_deleted_row_is_found(trail: tuple[Path, str], position: int, workers: int) -> None:
    path, _ = trail
    table, seq = entry_at(path, position)
    following = entry_at(path, position + 1)
    with raw(path) as conn:
        drop_triggers(conn)
        conn.execute(f"DELETE FROM {table} WHERE seq = ?", (seq,))
    check(path, workers, *following, PREV_REASON)


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize(("first", "second"), [(8, 9), (3, 40), (14, 15), (28, 29), (40, 41), (20, 23)])
def test_reordered_rows_are_found(trail: tuple[Path, str], first: int, second: int, workers: int) -> None:
    """Two actions swap places (their seqs swapped; positions in chain order, as POSITIONS): the
    chain breaks at the first."""
    path, _ = trail
    (table_a, a), (table_b, b) = entry_at(path, first), entry_at(path, second)
    assert table_a == table_b == "actions"
    with raw(path) as conn:
        drop_triggers(conn)
        conn.execute("UPDATE actions SET seq = -1 WHERE seq = ?", (a,))
        conn.execute("UPDATE actions SET seq = ? WHERE seq = ?", (a, b))
        conn.execute("UPDATE actions SET seq = ? WHERE seq = -1", (b,))
    check(path, workers, "actions", a, PREV_REASON)


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("position", POSITIONS)
def test_a_forged_hash_is_found(trail: tuple[Path, str], position: int, workers: int) -> None:
    """An edit with its hash recomputed over the new content: the entry matches, the next does not
    link to it (the last entry: only the anchored head shows it)."""
    path, head = trail
    table, seq = entry_at(path, position)
    column = "target" if table == "actions" else "run_id"
    with raw(path) as conn:
        drop_triggers(conn)
        conn.execute(f"UPDATE {table} SET {column} = {column} || 'x' WHERE seq = ?", (seq,))
        conn.row_factory = sqlite3.Row
        row = dict(conn.execute(f"SELECT * FROM {table} WHERE seq = ?", (seq,)).fetchone())
        prev_hash = row.pop("prev_hash")
        row.pop("hash")
        forged = chain.entry_hash(prev_hash, {"table": table, **row})
        conn.execute(f"UPDATE {table} SET hash = ? WHERE seq = ?", (forged, seq))
        cover_tracks(conn)
    if position == 42:
        result = verified(path, head, workers)
        assert result == reference(path, head) and not result.ok
        assert result.first_break is not None and "expected head" in result.first_break.reason
        assert verified(path, None, workers) == reference(path, None) == chain.Verification(42, forged, None)
    else:
        check(path, workers, *entry_at(path, position + 1), PREV_REASON)


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("position", [8, 9, 41])
def test_a_made_up_hash_is_found(trail: tuple[Path, str], position: int, workers: int) -> None:
    path, _ = trail
    table, seq = entry_at(path, position)
    with raw(path) as conn:
        drop_triggers(conn)
        conn.execute(f"UPDATE {table} SET hash = ? WHERE seq = ?", ("e" * 64, seq))
    check(path, workers, table, seq, CONTENT_REASON)


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("value", [b"\x00blob", float("inf"), 2.5, 7])
def test_values_the_store_never_writes_get_the_references_answer(trail: tuple[Path, str], workers: int,
                                                                 value: Any) -> None:
    """A BLOB (which ``canonical`` cannot encode), infinity (which it refuses), a number in a text
    column: whatever the one-entry-at-a-time reference does, raise or name the entry."""
    path, _ = trail
    _, seq = entry_at(path, 9)
    with raw(path) as conn:
        drop_triggers(conn)
        conn.execute("UPDATE actions SET reason = ? WHERE seq = ?", (value, seq))
    try:
        expected: Any = reference(path, None)
    except (TypeError, ValueError) as e:
        expected = type(e)
    if isinstance(expected, type):
        with pytest.raises(expected):
            verified(path, None, workers)
    else:
        assert verified(path, None, workers) == expected
        assert expected.first_break is not None and expected.first_break.seq == seq


def test_a_long_trail_is_split_between_workers(trail: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Left to itself, verify forks workers only for a trail longer than PARALLEL_ENTRIES."""
    path, head = trail
    pools: list[int] = []

    class Pool(concurrent.futures.ProcessPoolExecutor):
        def __init__(self, workers: int, **kwargs: Any) -> None:
            pools.append(workers)
            super().__init__(workers, **kwargs)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Pool)
    with AuditStore.open(path, read_only=True) as store:
        assert store.verify(head) == chain.Verification(42, head, None)
        assert not pools
        monkeypatch.setattr(store_module, "PARALLEL_ENTRIES", 10)
        monkeypatch.setattr(store_module, "MAX_WORKERS", 2)
        monkeypatch.setattr(store_module.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
        assert store.verify(head) == chain.Verification(42, head, None)
        assert pools == [2]


@pytest.mark.parametrize("workers", WORKERS)
def test_a_break_before_a_value_canonical_refuses_is_what_is_found(trail: tuple[Path, str], workers: int) -> None:
    """A worker whose stretch holds a BLOB raises; an earlier break is still the answer."""
    path, _ = trail
    (_, early), (_, late) = entry_at(path, 5), entry_at(path, 33)
    with raw(path) as conn:
        drop_triggers(conn)
        conn.execute("UPDATE actions SET reason = ? WHERE seq = ?", (b"\x00blob", late))
        conn.execute("UPDATE actions SET target = 'elsewhere' WHERE seq = ?", (early,))
    check(path, workers, "actions", early, CONTENT_REASON)


@pytest.mark.parametrize("size", [1, 2, 3, BATCH, 100])
def test_the_rows_come_in_chain_order_in_batches_of_at_most_their_size(trail: tuple[Path, str], size: int) -> None:
    """The three tables' scans merged on (seq, table), as ``chain_entries`` merges them, also where a
    forged row shares a seq with a real one in another table; memory: batches, not the trail."""
    path, _ = trail
    with raw(path) as conn:
        conn.execute("INSERT INTO run_ends (seq, run_id, finished_at, outcome, prev_hash, hash) "
                     "VALUES (9, 'run-forged', '2024-01-01T00:00:00Z', 'succeeded', 'x', 'y')")
    with AuditStore.open(path, read_only=True) as store:
        keys, batches = store.chain_rows(batch=size)
        rows = [row for got in batches for row in got]
        assert [(row[0], row[1], row[2], row[3]) for row in rows] == [
            (table, seq, prev, digest) for table, seq, prev, digest, _ in store.chain_entries()]
        assert [{k: v for k, v in zip(keys[row[0]], row[4:], strict=True) if v is not None} for row in rows] == [
            {k: v for k, v in fields.items() if v is not None} for *_, fields in store.chain_entries()]
        _, batches = store.chain_rows(batch=size, seqs=(5, 30))
        assert [(row[0], row[1]) for got in batches for row in got] == [e for e in order(path) if 5 <= e[1] <= 30]
    with AuditStore.open(path, read_only=True) as store:
        assert all(len(got) <= 3 * size for got in store.chain_rows(batch=size)[1])
