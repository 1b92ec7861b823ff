"""The hash chain against tampering: a real trail built through the store API, then edited,
deleted from, inserted into, reordered and truncated with ``sqlite3`` directly (as someone with
write access to the file would), and ``verify`` must name the first entry that does not match."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconcile.audit import chain
from reconcile.audit.store import CHAINED_TABLES, AuditError, AuditStore, _schema_objects
from reconcile.policy.secrets import Secret

PREV_REASON = "previous hash does not match"
CONTENT_REASON = "content does not match its hash"


# --- a real trail -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Trail:
    path: Path
    run_ids: list[str]
    heads: list[str]  # the head each run printed when it finished


def build_trail(path: Path) -> Trail:
    """Three runs, 23 actions (mutations that succeed, fail and are skipped, plain skips): 29 entries."""
    run_ids, heads = [], []
    with AuditStore.open(path) as store:
        for n, (mode, actor) in enumerate([("apply", "cronjob"), ("run", "ci-bot"), ("rollback", "alice")]):
            run = store.start_run(mode, repo_url="https://git.example.com/team-a/policies.git",
                                  repo_commit=f"{n + 1:040x}", actor=actor)
            run_ids.append(run.id)
            for i in range(3):
                with run.mutation("prune", f"registry.example.com/team-a/web:build-{n}{i}",
                                  policy="RetentionPolicy/ci-cleanup", reason="older than 168h",
                                  digest_before=f"sha256:{n:02x}{i:02x}" + "a" * 60) as outcome:
                    if i == 2:
                        outcome.status, outcome.reason = "skipped", "already gone"
            run.append("skip", "registry.example.com/team-a/web:v1.2.3", status="skipped",
                       policy="RetentionPolicy/ci-cleanup", reason="running in prod-eu")
            if n == 1:
                with contextlib.suppress(RuntimeError), run.mutation(
                        "promote", "registry.prod.example.com/web:v1.2.3", policy="PromotionPolicy/web",
                        digest_before="sha256:" + "b" * 64):
                    raise RuntimeError("registry returned 500")
            heads.append(run.finish("succeeded" if n != 1 else "failed"))
    return Trail(path, run_ids, heads)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Trail:
    return build_trail(tmp_path_factory.mktemp("template") / "audit.db")


@pytest.fixture
def trail(template: Trail, tmp_path: Path) -> Trail:
    """A private copy of the template trail (closed, so the WAL was checkpointed into the file)."""
    path = tmp_path / "audit.db"
    for suffix in ("", "-wal"):
        if Path(f"{template.path}{suffix}").exists():
            shutil.copy(f"{template.path}{suffix}", f"{path}{suffix}")
    return Trail(path, template.run_ids, template.heads)


@contextlib.contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """Someone with write access to the file, going around the store."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def cover_tracks(conn: sqlite3.Connection) -> None:
    """What a careful forger does last: put back the append-only triggers dropped to make an edit."""
    version = conn.execute("SELECT MAX(version) FROM schema_versions").fetchone()[0]
    present = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    for (kind, name), sql in _schema_objects(version).items():
        if kind == "trigger" and name not in present:
            conn.execute(sql)


def order(path: Path) -> list[tuple[str, int]]:
    """(table, seq) of every entry, in chain order."""
    with raw(path) as conn:
        union = " UNION ALL ".join(f"SELECT '{t}', seq FROM {t}" for t in CHAINED_TABLES)
        return [(t, s) for t, s in conn.execute(f"SELECT * FROM ({union}) ORDER BY 2, 1")]


def fields_of(conn: sqlite3.Connection, table: str, seq: int) -> dict[str, Any]:
    """An entry as it is hashed: its columns without the chain columns, NULLs out, plus its table."""
    conn.row_factory = sqlite3.Row
    row = dict(conn.execute(f"SELECT * FROM {table} WHERE seq = ?", (seq,)).fetchone())
    conn.row_factory = None
    return {"table": table, **{k: v for k, v in row.items() if k not in ("prev_hash", "hash")}}


def chain_columns(conn: sqlite3.Connection, table: str, seq: int) -> tuple[str, str]:
    return conn.execute(f"SELECT prev_hash, hash FROM {table} WHERE seq = ?", (seq,)).fetchone()


def verify(path: Path, expect_head: str | None = None) -> chain.Verification:
    with AuditStore.open(path, read_only=True) as store:
        return store.verify(expect_head)


def assert_break(result: chain.Verification, table: str, seq: int, reason: str) -> None:
    assert not result.ok
    assert result.first_break is not None
    assert (result.first_break.table, result.first_break.seq) == (table, seq), str(result.first_break)
    assert reason in result.first_break.reason


def nth_action(path: Path, n: int) -> int:
    return [seq for table, seq in order(path) if table == "actions"][n]


# --- the untouched trail ------------------------------------------------------------------------

def test_the_built_trail_verifies(trail: Trail) -> None:
    entries = order(trail.path)
    assert len(entries) == 29
    assert [seq for _, seq in entries] == list(range(1, 30))  # one contiguous chain over three tables
    assert [t for t, _ in entries].count("actions") == 23
    result = verify(trail.path, expect_head=trail.heads[-1])
    assert result.ok and result.entries == 29 and result.head == trail.heads[-1]


def test_a_fresh_store_verifies_with_no_entries(tmp_path: Path) -> None:
    with AuditStore.open(tmp_path / "new.db") as store:
        assert store.verify() == chain.Verification(0, chain.GENESIS, None)
        assert store.head() == chain.GENESIS
        assert store.verify(expect_head=chain.GENESIS).ok  # the empty trail's head, if anchored
    result = verify(tmp_path / "new.db")
    assert result.ok and result.entries == 0


# --- (a) an edited field ------------------------------------------------------------------------

EDITS = [
    # (table, which entry of that table, column, new value)
    pytest.param("actions", 7, "target", "registry.example.com/team-a/web:v9.9.9", id="action-target"),
    pytest.param("actions", 15, "status", "succeeded", id="failed-made-succeeded"),
    pytest.param("actions", 15, "error", None, id="error-erased"),
    pytest.param("actions", 0, "digest_before", "sha256:" + "f" * 64, id="first-action-digest"),
    pytest.param("actions", 22, "dry_run", 1, id="last-action-dry-run"),
    pytest.param("run_starts", 1, "actor", "mallory", id="run-actor"),
    pytest.param("run_starts", 0, "repo_commit", "f" * 40, id="first-entry-commit"),
    pytest.param("run_ends", 1, "outcome", "succeeded", id="run-outcome"),
]


@pytest.mark.parametrize(("table", "index", "column", "value"), EDITS)
def test_an_edited_field_breaks_at_that_entry(trail: Trail, table: str, index: int, column: str,
                                               value: Any) -> None:
    seq = [s for t, s in order(trail.path) if t == table][index]
    with raw(trail.path) as conn:
        conn.execute(f"DROP TRIGGER {table}_no_update")
        conn.execute(f"UPDATE {table} SET {column} = ? WHERE seq = ?", (value, seq))
        assert conn.total_changes == 1
    assert_break(verify(trail.path), table, seq, CONTENT_REASON)


def test_an_edit_with_its_hash_recomputed_breaks_the_next_link(trail: Trail) -> None:
    seq = nth_action(trail.path, 7)
    with raw(trail.path) as conn:
        conn.execute("DROP TRIGGER actions_no_update")
        conn.execute("UPDATE actions SET target = 'elsewhere' WHERE seq = ?", (seq,))
        prev_hash, _ = chain_columns(conn, "actions", seq)
        forged = chain.entry_hash(prev_hash, fields_of(conn, "actions", seq))
        conn.execute("UPDATE actions SET hash = ? WHERE seq = ?", (forged, seq))
    next_table, next_seq = order(trail.path)[seq]  # entries are 1-based, so this is seq + 1
    assert next_seq == seq + 1
    assert_break(verify(trail.path), next_table, next_seq, PREV_REASON)


def test_a_rewritten_tail_is_caught_only_by_the_anchored_head(trail: Trail) -> None:
    """Recomputing every hash after an edit yields a consistent chain; the head printed by the
    last run (kept outside the file) is what exposes it."""
    seq = nth_action(trail.path, 3)
    with raw(trail.path) as conn:
        conn.execute("DROP TRIGGER actions_no_update")
        conn.execute("UPDATE actions SET target = 'elsewhere' WHERE seq = ?", (seq,))
        for table in CHAINED_TABLES:
            conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
        prev = chain_columns(conn, *order(trail.path)[seq - 2])[1]
        for table, s in order(trail.path)[seq - 1:]:
            digest = chain.entry_hash(prev, fields_of(conn, table, s))
            conn.execute(f"UPDATE {table} SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, s))
            prev = digest
        cover_tracks(conn)
    assert verify(trail.path).ok
    last_table, last_seq = order(trail.path)[-1]
    assert_break(verify(trail.path, expect_head=trail.heads[-1]), last_table, last_seq, "expected head")


# --- (b) a deleted row --------------------------------------------------------------------------

@pytest.mark.parametrize(("table", "index"), [("actions", 0), ("actions", 10), ("run_ends", 0),
                                              ("run_starts", 1)])
def test_a_deleted_entry_breaks_the_entry_after_it(trail: Trail, table: str, index: int) -> None:
    entries = order(trail.path)
    seq = [s for t, s in entries if t == table][index]
    with raw(trail.path) as conn:
        conn.execute(f"DROP TRIGGER {table}_no_delete")
        conn.execute(f"DELETE FROM {table} WHERE seq = ?", (seq,))
        assert conn.total_changes == 1
    following_table, following_seq = entries[seq]  # the entry at seq + 1
    assert_break(verify(trail.path), following_table, following_seq, PREV_REASON)


# --- (c) an inserted row ------------------------------------------------------------------------

def forged_action(run_id: str, seq: int) -> dict[str, Any]:
    return {"seq": seq, "event_id": "evt-20240101T000000-deadbeef", "run_id": run_id,
            "timestamp": "2024-01-01T00:00:00.000000Z", "kind": "prune",
            "target": "registry.example.com/team-a/web:v1.0.0", "policy": "RetentionPolicy/ci-cleanup",
            "reason": "older than 168h", "status": "succeeded", "dry_run": 0}


def insert(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    conn.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                 tuple(row.values()))


def test_a_well_formed_forgery_breaks_the_link_after_it(trail: Trail) -> None:
    """A row slipped in before the second run's start (same seq, a table that sorts first), with
    that entry's previous hash and a correct hash over its own content: the forgery itself checks
    out, but the real entry after it no longer links to its predecessor."""
    start_seq = [s for t, s in order(trail.path) if t == "run_starts"][1]
    with raw(trail.path) as conn:
        prev_hash, _ = chain_columns(conn, "run_starts", start_seq)
        row = forged_action(trail.run_ids[0], start_seq)
        digest = chain.entry_hash(prev_hash, {"table": "actions", **row})
        insert(conn, "actions", {**row, "prev_hash": prev_hash, "hash": digest})
    result = verify(trail.path)
    assert_break(result, "run_starts", start_seq, PREV_REASON)
    assert result.entries == start_seq + 1  # the forged entry passed, the one after it did not


def test_a_forgery_with_the_later_entries_renumbered_breaks_the_link_after_it(trail: Trail) -> None:
    """Making room by renumbering everything after the insertion point (UPDATE triggers dropped)
    and chaining the forgery onto its predecessor still leaves the next entry pointing elsewhere."""
    seq = nth_action(trail.path, 5)
    entries = order(trail.path)
    with raw(trail.path) as conn:
        for table in CHAINED_TABLES:
            conn.execute(f"DROP TRIGGER {table}_no_update")
            conn.execute(f"UPDATE {table} SET seq = -seq - 1 WHERE seq > ?", (seq,))
            conn.execute(f"UPDATE {table} SET seq = -seq WHERE seq < 0")
        _, prev_hash = chain_columns(conn, "actions", seq)
        row = forged_action(trail.run_ids[0], seq + 1)
        insert(conn, "actions", {**row, "prev_hash": prev_hash,
                                 "hash": chain.entry_hash(prev_hash, {"table": "actions", **row})})
    moved_table, _ = entries[seq]  # the entry that was at seq + 1 is now at seq + 2
    assert_break(verify(trail.path), moved_table, seq + 2, PREV_REASON)


def test_a_forgery_with_a_made_up_hash_is_named(trail: Trail) -> None:
    seq = nth_action(trail.path, 9)
    with raw(trail.path) as conn:
        prev_hash, _ = chain_columns(conn, "actions", seq)
        insert(conn, "run_ends", {"seq": seq, "run_id": "run-forged", "finished_at": "2024-01-01T00:00:00Z",
                                  "outcome": "succeeded", "prev_hash": prev_hash, "hash": "e" * 64})
    # sorts after the real entry with the same seq, and does not link to it
    assert_break(verify(trail.path), "run_ends", seq, PREV_REASON)


# --- (d) a swapped order ------------------------------------------------------------------------

@pytest.mark.parametrize(("first", "second"), [(4, 5), (2, 15)], ids=["adjacent", "distant"])
def test_swapped_entries_break_at_the_first_position(trail: Trail, first: int, second: int) -> None:
    a, b = nth_action(trail.path, first), nth_action(trail.path, second)
    with raw(trail.path) as conn:
        conn.execute("DROP TRIGGER actions_no_update")
        conn.execute("UPDATE actions SET seq = -1 WHERE seq = ?", (a,))
        conn.execute("UPDATE actions SET seq = ? WHERE seq = ?", (a, b))
        conn.execute("UPDATE actions SET seq = ? WHERE seq = -1", (b,))
    assert_break(verify(trail.path), "actions", a, PREV_REASON)


# --- (e) a removed tail -------------------------------------------------------------------------

@pytest.mark.parametrize("removed", [1, 5, 12])
def test_a_removed_tail_needs_the_anchored_head(trail: Trail, removed: int) -> None:
    entries = order(trail.path)
    keep = len(entries) - removed
    with raw(trail.path) as conn:
        for table in CHAINED_TABLES:
            conn.execute(f"DROP TRIGGER {table}_no_delete")
            conn.execute(f"DELETE FROM {table} WHERE seq > ?", (keep,))
        cover_tracks(conn)
    # Documented limitation: a shorter chain is still a valid chain.
    result = verify(trail.path)
    assert result.ok and result.entries == keep
    # The head printed by the last run, kept elsewhere, is no longer in it.
    last_table, last_seq = entries[keep - 1]
    assert_break(verify(trail.path, expect_head=trail.heads[-1]), last_table, last_seq, "expected head")


def test_an_older_head_still_in_the_chain_is_accepted(trail: Trail) -> None:
    for head in trail.heads:
        assert verify(trail.path, expect_head=head).ok
    with AuditStore.open(trail.path) as store:  # later runs append after the anchored head
        run = store.start_run("run")
        run.append("skip", "registry.example.com/team-a/web:v1.2.4", status="skipped")
        run.finish("succeeded")
    result = verify(trail.path, expect_head=trail.heads[0])
    assert result.ok and result.entries == 32


def test_a_head_from_another_trail_is_not_accepted(trail: Trail, tmp_path: Path) -> None:
    other = build_trail(tmp_path / "other.db")
    assert other.heads[-1] != trail.heads[-1]
    last_table, last_seq = order(trail.path)[-1]
    assert_break(verify(trail.path, expect_head=other.heads[-1]), last_table, last_seq, "expected head")


# --- the triggers -------------------------------------------------------------------------------

@pytest.mark.parametrize("table", CHAINED_TABLES)
@pytest.mark.parametrize("statement", [
    "UPDATE {table} SET run_id = 'run-other' WHERE seq = {seq}",
    "UPDATE {table} SET hash = hash",  # even a no-op
    "DELETE FROM {table} WHERE seq = {seq}",
    "DELETE FROM {table}",
])
def test_triggers_refuse_update_and_delete(trail: Trail, table: str, statement: str) -> None:
    seq = next(s for t, s in order(trail.path) if t == table)
    with raw(trail.path) as conn:
        before = conn.execute(f"SELECT * FROM {table} ORDER BY seq").fetchall()
        with pytest.raises(sqlite3.DatabaseError, match=f"append-only: .* on {table} refused"):
            conn.execute(statement.format(table=table, seq=seq))
        assert conn.execute(f"SELECT * FROM {table} ORDER BY seq").fetchall() == before
    assert verify(trail.path, expect_head=trail.heads[-1]).ok


def test_the_refusal_is_an_integrity_error_through_the_stores_own_connection(trail: Trail) -> None:
    with AuditStore.open(trail.path) as store:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            store.conn.execute("UPDATE actions SET status = 'succeeded'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            store.db["run_ends"].delete_where()


# --- the canonical encoding ---------------------------------------------------------------------

def naive_pairs(entry: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(entry.items()))


def naive_lines(entry: dict[str, Any]) -> str:
    return "\n".join(f"{k}:{v}" for k, v in sorted(entry.items()))


def naive_json(entry: dict[str, Any]) -> str:  # JSON-looking, but values not escaped
    return "{" + ",".join(f'"{k}":"{v}"' for k, v in sorted(entry.items())) + "}"


COLLISIONS = [
    pytest.param(naive_pairs, {"reason": "old", "target": "web:1,zone=eu"},
                 {"reason": "old,target=web:1", "zone": "eu"}, id="comma-equals"),
    pytest.param(naive_lines, {"reason": "old\ntarget:web:1"}, {"reason": "old", "target": "web:1"},
                 id="newline-colon"),
    pytest.param(naive_json, {"reason": 'old","target":"web:1'}, {"reason": "old", "target": "web:1"},
                 id="quote-comma-quote"),
    pytest.param(naive_pairs, {"pid": 5}, {"pid": "5"}, id="number-vs-text"),
]


@pytest.mark.parametrize(("naive", "one", "other"), COLLISIONS)
def test_values_with_delimiters_cannot_collide(naive: Any, one: dict[str, Any], other: dict[str, Any]) -> None:
    assert one != other
    assert naive(one) == naive(other)  # the collision is real under the naive encoding
    assert chain.canonical(one) != chain.canonical(other)
    assert chain.entry_hash(chain.GENESIS, one) != chain.entry_hash(chain.GENESIS, other)


def test_key_order_is_irrelevant() -> None:
    one = {"table": "actions", "seq": 3, "target": "web:1", "status": "succeeded", "duration": 0.25}
    other = dict(reversed(list(one.items())))
    assert list(one) != list(other)
    assert chain.canonical(one) == chain.canonical(other)
    assert chain.canonical(one) == b'{"duration":0.25,"seq":3,"status":"succeeded","table":"actions","target":"web:1"}'
    assert chain.entry_hash(chain.GENESIS, one) == chain.entry_hash(chain.GENESIS, other)


def test_the_encoding_is_ascii_and_escapes_everything_else() -> None:
    encoded = chain.canonical({"reason": "caf\u00e9 \u2603\n\"\\", "nul": "a\x00b"})
    assert encoded == b'{"nul":"a\\u0000b","reason":"caf\\u00e9 \\u2603\\n\\"\\\\"}'
    assert chain.canonical({"a": 1}) != chain.canonical({"a": 1.0}) != chain.canonical({"a": True})


def test_null_fields_are_omitted() -> None:
    entry = {"table": "actions", "seq": 1, "target": "web:1"}
    assert chain.canonical({**entry, "added_later": None}) == chain.canonical(entry)
    assert chain.entry_hash("a" * 64, {**entry, "error": None}) == chain.entry_hash("a" * 64, entry)
    assert chain.canonical({**entry, "error": ""}) != chain.canonical(entry)  # empty is not NULL


def test_adding_a_nullable_column_keeps_old_hashes_valid(trail: Trail) -> None:
    """What a later migration does: old rows read back NULL in the new column, hash as before."""
    with raw(trail.path) as conn:
        for table in CHAINED_TABLES:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN note TEXT")
    result = verify(trail.path, expect_head=trail.heads[-1])
    assert result.ok and result.head == trail.heads[-1]


def test_the_previous_hash_is_part_of_the_hash() -> None:
    entry = {"table": "actions", "seq": 2}
    assert chain.entry_hash("a" * 64, entry) != chain.entry_hash("b" * 64, entry)


# --- values are hashed as SQLite stores them ----------------------------------------------------

def test_values_are_hashed_as_sqlite_stores_them(tmp_path: Path) -> None:
    """An int in a REAL column is stored as 5.0, a number in a TEXT column as '5', a float with an
    integral value in an INTEGER column as 1: the hash must cover what ``verify`` reads back."""
    with AuditStore.open(tmp_path / "audit.db") as store:
        run = store.start_run("apply", dry_run=True)
        run.append("prune", "web:1", status="succeeded", duration=5)
        run.append("prune", "web:2", status="succeeded", duration=0)
        run.append("prune", 12345, status="succeeded", reason=1.5)  # type: ignore[arg-type]
        run.append("skip", "web:3", status="skipped", policy=Secret("a-real-token-value"))
        row = store.conn.execute("SELECT duration, target, reason, policy FROM actions WHERE seq = 4").fetchone()
        assert tuple(row) == (None, "12345", "1.5", None)
        assert store.action(run.append("prune", "web:4", status="succeeded", duration=2)["event_id"])["duration"] == 2.0
        run.finish("succeeded")
        assert store.verify().ok


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2**64, "5"])
def test_numbers_the_store_cannot_keep_exactly_are_refused(tmp_path: Path, value: Any) -> None:
    with AuditStore.open(tmp_path / "audit.db") as store:
        run = store.start_run("apply")
        with pytest.raises(AuditError, match="duration"):
            run.append("prune", "web:1", status="succeeded", duration=value)
        assert store.conn.execute("SELECT COUNT(*) FROM actions").fetchone()[0] == 0
        assert store.verify().ok


# --- the columns of migration 2: repository and tags, and the action_refs index ------------------

def tagged_trail(path: Path) -> dict[str, int]:
    """A prune, an untag and a promotion as the executor records them: seq of each outcome."""
    digest = "sha256:" + "f" * 64
    with AuditStore.open(path) as store:
        run = store.start_run("apply")
        seqs = {}
        for kind, target, tags in (("prune", f"ci/team-a/web@{digest}", ("build-9", "build-10")),
                                   ("untag", "ci/team-a/web:build-11", ("build-11",)),
                                   ("promote", f"prod/team-a/web@{digest}", ("prod", "126"))):
            with run.mutation(kind, target, digest_before=digest, tags=tags):  # type: ignore[arg-type]
                pass
            seqs[kind] = store.conn.execute("SELECT MAX(seq) FROM actions").fetchone()[0]
        run.finish("succeeded")
        assert store.verify().ok
    return seqs


TAMPERED_COLUMNS = [
    ("prune", "tags", '["build-9"]'),  # a tag it removed, left out
    ("prune", "tags", '["build-10","build-9"]'),  # the same tags in another order
    ("prune", "tags", None),
    ("untag", "tags", '["build-12"]'),
    ("promote", "tags", '["prod","127"]'),
    ("prune", "repository", "ci/team-b/web"),
    ("promote", "repository", None),
]


@pytest.mark.parametrize(("kind", "column", "value"), TAMPERED_COLUMNS,
                         ids=[f"{k}-{c}-{v}" for k, c, v in TAMPERED_COLUMNS])
def test_editing_the_tags_or_repository_of_a_new_row_breaks_the_chain(tmp_path: Path, kind: str, column: str,
                                                                       value: str | None) -> None:
    path = tmp_path / "audit.db"
    seq = tagged_trail(path)[kind]
    with raw(path) as conn:
        conn.execute("DROP TRIGGER actions_no_update")
        conn.execute(f"UPDATE actions SET {column} = ? WHERE seq = ?", (value, seq))
    assert_break(verify(path), "actions", seq, CONTENT_REASON)


def test_giving_an_old_row_tags_breaks_the_chain(trail: Trail) -> None:
    """Rows from before the columns existed hash without them; filling them in later is an edit."""
    seq = nth_action(trail.path, 4)
    with raw(trail.path) as conn:
        conn.execute("DROP TRIGGER actions_no_update")
        conn.execute("UPDATE actions SET tags = '[\"build-10\"]' WHERE seq = ?", (seq,))
    assert_break(verify(trail.path), "actions", seq, CONTENT_REASON)


@pytest.mark.parametrize("edit", [
    "DELETE FROM action_refs WHERE ref = 'ci/team-a/web:build-10'",  # hides the prune from --target '*build-10*'
    "INSERT INTO action_refs VALUES ('ci/team-a/web:v1', {prune})",  # lists it under a tag it never removed
    "UPDATE action_refs SET ref = 'ci/team-a/web:v1' WHERE ref = 'ci/team-a/web:build-10'",
])
def test_an_edited_search_index_is_named(tmp_path: Path, edit: str) -> None:
    path = tmp_path / "audit.db"
    seqs = tagged_trail(path)
    with raw(path) as conn:
        conn.executescript("DROP TRIGGER action_refs_no_update; DROP TRIGGER action_refs_no_delete;")
        conn.execute(edit.format(prune=seqs["prune"]))
    intent = seqs["prune"] - 1  # the intent carries the same tags: the first action whose index no longer matches
    expected = seqs["prune"] if "INSERT" in edit else intent
    assert_break(verify(path), "action_refs", expected, "the search index")


# --- (f) the schema objects outside the chain ------------------------------------------------------

UNFINISHED_HIDDEN = """CREATE VIEW runs AS
    SELECT s.run_id AS id, s.mode, s.actor, s.host, s.pid, s.repo_url, s.repo_commit,
           s.dry_run, s.started_at, COALESCE(e.finished_at, s.started_at) AS finished_at,
           COALESCE(e.outcome, 'succeeded') AS outcome, e.summary, e.hash AS chain_head
    FROM run_starts s LEFT JOIN run_ends e ON e.run_id = s.run_id"""


@pytest.mark.parametrize(("tamper", "reason"), [
    pytest.param(["DROP VIEW runs", UNFINISHED_HIDDEN], "the view runs was redefined outside reconcile",
                 id="runs redefined to hide an unfinished run"),
    pytest.param(["DROP VIEW pending_intents",
                  "CREATE VIEW pending_intents AS SELECT * FROM actions WHERE 0"],
                 "the view pending_intents was redefined outside reconcile", id="pending intents hidden"),
    pytest.param(["DROP TRIGGER actions_no_update"], "the trigger actions_no_update is missing", id="trigger dropped"),
    pytest.param(["CREATE VIEW extra AS SELECT 1"], "the view extra is not one reconcile made", id="view added"),
])
def test_a_schema_object_changed_outside_reconcile_is_named(trail: Trail, tamper: list[str], reason: str) -> None:
    with raw(trail.path) as conn:
        for statement in tamper:
            conn.execute(statement)
    result = verify(trail.path)
    assert not result.ok and result.first_break is not None
    assert (result.first_break.table, result.first_break.seq) == ("schema", 0)
    assert result.first_break.reason.startswith(reason)


def test_the_schema_objects_of_every_migration_verify(tmp_path: Path) -> None:
    """A trail left at an older schema version (read-only review does not migrate) verifies against
    that version's views and triggers, not the newest."""
    from reconcile.audit.store import MIGRATIONS

    for version, _ in MIGRATIONS:
        conn = sqlite3.connect(tmp_path / f"v{version}.db", isolation_level=None)
        import sqlite_utils

        conn.execute("CREATE TABLE schema_versions (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
        for number, migration in MIGRATIONS[:version]:
            migration(sqlite_utils.Database(conn))
            conn.execute("INSERT INTO schema_versions VALUES (?, '2026-01-01T00:00:00Z')", (number,))
        conn.close()
        with AuditStore.open(tmp_path / f"v{version}.db", read_only=True) as store:
            assert store.schema_version == version and store.verify().ok
