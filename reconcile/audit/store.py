"""The audit store: one SQLite file of append-only, hash-chained entries.

Physical tables ``run_starts``, ``actions`` and ``run_ends`` share one chain (a global ``seq``);
the ``runs`` view joins a run's start and end, so no row is ever updated. ``action_refs`` indexes
each action by the ``registry/repository:TAG`` of every tag it removed or set and by its digests
(filled by a trigger, checked by ``verify``). Triggers refuse UPDATE and DELETE on every table.
Writers append in ``BEGIN IMMEDIATE`` transactions, so concurrent processes serialise on SQLite's
lock and extend one chain; review commands open the file read-only (and do not migrate it).
"""

from __future__ import annotations

import bisect
import functools
import getpass
import itertools
import json
import math
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import quote

from reconcile.audit import chain
from reconcile.plan.actions import Cause, MutatingKind
from reconcile.policy.secrets import redact

if TYPE_CHECKING:  # sqlite-utils loads with the migrations that use it, not with every reader
    import sqlite_utils


class AuditKind(StrEnum):
    """What an action row records: a plan's mutations, and the audit's own ``skip`` and ``error``.
    The values are what ``actions.kind`` holds; members compare equal to them."""

    PROMOTE = "promote"
    PRUNE = "prune"
    UNTAG = "untag"
    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    SKIP = "skip"  # a change not made: blocked, refused, left for the next run
    ERROR = "error"  # the run stopped on an error
    NOTIFY = "notify"  # a notification delivered (or not) about a run, in a run of mode ``notify``


# The kind as a caller may name it: the enum, a plan action's mutation kind, or its wire string.
AuditKindName = Literal["promote", "prune", "untag", "deploy", "rollback", "skip", "error", "notify"]
ActionStatus = Literal["intent", "succeeded", "failed", "skipped"]
RunMode = Literal["plan", "apply", "run", "rollback", "release-hold", "notify"]


class RunOutcome(StrEnum):
    """How a run ended, recorded truthfully in ``run_ends.outcome``."""

    SUCCEEDED = "succeeded"  # every planned change done, nothing blocked
    PARTIAL = "partial"  # some changes done, some failed or left for the next run (state changed since the plan)
    FAILED = "failed"  # the run stopped on an error, or every change it tried failed
    BLOCKED = "blocked"  # nothing failed, but a policy was blocked (a gate, a hold, a source, a limit)
    REFUSED = "refused"  # the run refused to act (a saved plan that is no longer the plan)
    LOCKED = "locked"  # another run held the lock (a file or a Lease): nothing was done


CHANGE_KINDS: frozenset[AuditKind] = frozenset(set(AuditKind) - {AuditKind.SKIP, AuditKind.ERROR, AuditKind.NOTIFY})


def outcome_of(counts: Mapping[str, int], *, partial: bool = False, blocked: bool = False) -> RunOutcome:
    """The outcome of a run that ran to its end, from what it recorded (``kind.status`` counts)."""
    failed = any(key.endswith(".failed") for key in counts)
    done = any(counts.get(f"{kind}.succeeded") for kind in CHANGE_KINDS)
    if failed:
        return RunOutcome.PARTIAL if done else RunOutcome.FAILED
    if partial:
        return RunOutcome.PARTIAL
    return RunOutcome.BLOCKED if blocked else RunOutcome.SUCCEEDED
KINDS: tuple[str, ...] = tuple(kind.value for kind in AuditKind)
STATUSES: tuple[str, ...] = ("intent", "succeeded", "failed", "skipped")
MODES: tuple[str, ...] = ("plan", "apply", "run", "rollback", "release-hold", "notify")
CHAINED_TABLES = ("run_starts", "actions", "run_ends")
BUSY_TIMEOUT_SECONDS = 60.0
VERIFY_BATCH = 4096  # entries ``verify`` fetches and hashes at a time
PARALLEL_ENTRIES = 200_000  # a longer trail is verified in stretches, one forked process each
MAX_WORKERS = 4


class AuditError(Exception):
    """The audit trail cannot be written or read; a mutation that cannot be audited must not run."""


def utc_now() -> str:
    """RFC 3339 UTC with microseconds: sorts as text, so time filters use plain indexes."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id(prefix: str) -> str:
    """Sortable, unique ids (time, then randomness), readable in a terminal."""
    return f"{prefix}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"


# --- schema and migrations ----------------------------------------------------------------------

def _migration_1(db: sqlite_utils.Database) -> None:
    chained = {"prev_hash": str, "hash": str}
    db.table("run_starts").create({"seq": int, "run_id": str, "mode": str, "actor": str, "host": str,
                             "pid": int, "repo_url": str, "repo_commit": str, "started_at": str,
                             "dry_run": int, **chained}, pk="seq", not_null={"run_id", "started_at"})
    db.table("actions").create({"seq": int, "event_id": str, "run_id": str, "timestamp": str, "kind": str,
                          "target": str, "digest_before": str, "digest_after": str, "policy": str,
                          "reason": str, "status": str, "error": str, "duration": float,
                          "dry_run": int, "intent_id": str, **chained},
                         pk="seq", not_null={"event_id", "run_id", "timestamp", "kind", "status"})
    db.table("run_ends").create({"seq": int, "run_id": str, "finished_at": str, "outcome": str,
                           "summary": str, **chained}, pk="seq", not_null={"run_id", "finished_at"})
    db.table("run_starts").create_index(["run_id"], unique=True)
    db.table("run_ends").create_index(["run_id"], unique=True)
    db.table("actions").create_index(["event_id"], unique=True)
    db.table("actions").create_index(["run_id"])
    db.table("actions").create_index(["timestamp"])
    db.table("actions").create_index(["kind", "timestamp"])
    db.table("actions").create_index(["target"])
    db.table("actions").create_index(["intent_id"])
    for table in CHAINED_TABLES:
        for verb in ("UPDATE", "DELETE"):
            message = f"the audit trail is append-only: {verb} on {table} refused"
            db.execute(f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, '{message}'); END")
    db.execute("""CREATE VIEW runs AS
        SELECT s.run_id AS id, s.mode, s.actor, s.host, s.pid, s.repo_url, s.repo_commit,
               s.dry_run, s.started_at, e.finished_at, COALESCE(e.outcome, 'unfinished') AS outcome,
               e.summary, e.hash AS chain_head
        FROM run_starts s LEFT JOIN run_ends e ON e.run_id = s.run_id""")
    db.execute("""CREATE VIEW pending_intents AS
        SELECT i.* FROM actions i
        WHERE i.status = 'intent'
          AND NOT EXISTS (SELECT 1 FROM actions o WHERE o.intent_id = i.event_id)""")


def _migration_2(db: sqlite_utils.Database) -> None:
    """Actions carry the image they concern as data: ``repository`` (``registry/repository``) and
    ``tags`` (a JSON array: the tags a prune removes, a promotion sets, an untag removes), and
    ``action_refs`` finds them by every name besides their target (``audit list --target``,
    ``explain``): ``registry/repository:TAG`` of each tag and each digest. A trigger files a new
    action's refs as it is inserted; earlier actions get their digests'. Rows written before have
    NULL in both columns, which ``chain.canonical`` leaves out: their hashes do not change."""
    db.execute("ALTER TABLE actions ADD COLUMN repository TEXT")
    db.execute("ALTER TABLE actions ADD COLUMN tags TEXT")
    db.execute("CREATE TABLE action_refs (ref TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (ref, seq)) "
               "WITHOUT ROWID")
    db.execute("""INSERT INTO action_refs (ref, seq)
        SELECT digest_before, seq FROM actions WHERE digest_before IS NOT NULL
        UNION SELECT digest_after, seq FROM actions WHERE digest_after IS NOT NULL""")
    db.execute("""CREATE TRIGGER actions_refs AFTER INSERT ON actions BEGIN
        INSERT INTO action_refs (ref, seq)
            SELECT NEW.repository || ':' || t.value, NEW.seq FROM json_each(NEW.tags) t
                WHERE NEW.repository IS NOT NULL
            UNION SELECT NEW.digest_before, NEW.seq WHERE NEW.digest_before IS NOT NULL
            UNION SELECT NEW.digest_after, NEW.seq WHERE NEW.digest_after IS NOT NULL;
        END""")
    for verb in ("UPDATE", "DELETE"):
        message = f"the audit trail is append-only: {verb} on action_refs refused"
        db.execute(f"CREATE TRIGGER action_refs_no_{verb.lower()} BEFORE {verb} ON action_refs "
                   f"BEGIN SELECT RAISE(ABORT, '{message}'); END")


# The refs (``action_refs``) every action should have, as the trigger files them: what ``verify`` checks.
EXPECTED_REFS = """SELECT a.repository || ':' || t.value AS ref, a.seq AS seq FROM actions a, json_each(a.tags) t
        WHERE a.repository IS NOT NULL
    UNION SELECT a.digest_before, a.seq FROM actions a WHERE a.digest_before IS NOT NULL
    UNION SELECT a.digest_after, a.seq FROM actions a WHERE a.digest_after IS NOT NULL"""


# ``EXPECTED_REFS`` per action ``a``, for ``verify``: ``a`` lacks one of its refs in ``action_refs``;
# ``action_refs`` row ``r`` is one of ``a``'s refs. The same comparisons as ``EXCEPT`` makes.
_LACKS_A_REF = """(a.digest_before IS NOT NULL AND NOT EXISTS
        (SELECT 1 FROM action_refs r WHERE r.ref = a.digest_before AND r.seq = a.seq))
    OR (a.digest_after IS NOT NULL AND NOT EXISTS
        (SELECT 1 FROM action_refs r WHERE r.ref = a.digest_after AND r.seq = a.seq))
    OR (a.repository IS NOT NULL AND EXISTS (SELECT 1 FROM json_each(a.tags) t WHERE NOT EXISTS
        (SELECT 1 FROM action_refs r WHERE r.ref = a.repository || ':' || t.value AND r.seq = a.seq)))"""
_EXPECTED_REFS_OF = """SELECT a.repository || ':' || t.value AS ref FROM actions a, json_each(a.tags) t
        WHERE a.seq = :seq AND a.repository IS NOT NULL
    UNION SELECT digest_before FROM actions WHERE seq = :seq AND digest_before IS NOT NULL
    UNION SELECT digest_after FROM actions WHERE seq = :seq AND digest_after IS NOT NULL"""
_EXPECTS_REF = """r.ref IS a.digest_before OR r.ref IS a.digest_after
    OR (a.repository IS NOT NULL AND EXISTS
        (SELECT 1 FROM json_each(a.tags) t WHERE a.repository || ':' || t.value = r.ref))"""


def _migration_3(db: sqlite_utils.Database) -> None:
    """Actions carry why as data: ``cause`` (a ``Cause`` value: ``expired``, ``in-use``, ``gates-open``…)
    beside the human ``reason``. Chained like every column; rows written before have NULL, which
    ``chain.canonical`` leaves out, so their hashes do not change."""
    db.execute("ALTER TABLE actions ADD COLUMN cause TEXT")


# (version, migration), oldest first; a released migration is never edited, only followed by a new one.
MIGRATIONS: tuple[tuple[int, Callable[[sqlite_utils.Database], None]], ...] = (
    (1, _migration_1), (2, _migration_2), (3, _migration_3))


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_versions "
                     "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
        current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_versions").fetchone()[0]
        latest = MIGRATIONS[-1][0]
        if current > latest:
            raise AuditError(f"the audit database has schema version {current}, newer than this "
                             f"reconcile understands ({latest}); upgrade reconcile")
        import sqlite_utils

        db = sqlite_utils.Database(conn)
        for version, migration in MIGRATIONS:
            if version > current:
                migration(db)
                conn.execute("INSERT INTO schema_versions VALUES (?, ?)", (version, utc_now()))
        conn.execute("COMMIT")
    except BaseException:
        _roll_back(conn)
        raise


def _roll_back(conn: sqlite3.Connection) -> None:
    """End a failed write. SQLite has already rolled back after some errors (a full disk: SQLITE_FULL
    on COMMIT), and a ROLLBACK then would raise "no transaction is active" over the real error."""
    if conn.in_transaction:
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


# --- rows ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunRecord:
    id: str
    mode: str
    actor: str | None
    host: str | None
    pid: int | None
    repo_url: str | None
    repo_commit: str | None
    dry_run: bool
    started_at: str
    finished_at: str | None
    outcome: str
    summary: dict[str, int] | None
    chain_head: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RunRecord:
        values = dict(row)
        values["dry_run"] = bool(values["dry_run"])
        values["summary"] = json.loads(values["summary"]) if values["summary"] else None
        return cls(**values)

    def is_running(self) -> bool:
        """Still in progress: its process is alive on this host (else it was interrupted)."""
        if self.finished_at is not None or self.host != socket.gethostname() or not self.pid:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


ACTION_FIELDS = ("seq", "event_id", "run_id", "timestamp", "kind", "target", "digest_before",
                 "digest_after", "policy", "reason", "status", "error", "duration", "dry_run",
                 "intent_id", "repository", "tags", "cause")
# Kinds whose target is ``registry/repository@digest`` or ``registry/repository:tag``.
IMAGE_KINDS: frozenset[AuditKind] = frozenset({AuditKind.PRUNE, AuditKind.UNTAG, AuditKind.PROMOTE})


def repository_of(kind: str, target: str) -> str | None:
    """``registry/repository`` a prune, untag or promotion target names; None for other kinds."""
    if kind not in IMAGE_KINDS:
        return None
    name = target.split("@", 1)[0] if "@" in target else target.rpartition(":")[0]
    return name if "/" in name else None


def encode_tags(tags: Sequence[str]) -> str | None:
    """The ``tags`` column: a compact JSON array, NULL when there are none."""
    if isinstance(tags, str):
        raise AuditError(f"tags must be a sequence of tags, not the string {tags!r}")
    for tag in tags:
        if not isinstance(tag, str):
            raise AuditError(f"cannot store a {type(tag).__name__} value as a tag")
    return json.dumps([_safe("tags", tag) for tag in tags], separators=(",", ":")) if tags else None


def decode_tags(value: str | None) -> tuple[str, ...]:
    """The tags a ``tags`` column holds (none for NULL, or a row from before migration 2)."""
    return tuple(json.loads(value)) if value else ()


@dataclass
class Outcome:
    """What the code performing a mutation reports back to ``Run.mutation``."""

    digest_after: str | None = None
    status: Literal["succeeded", "skipped"] = "succeeded"
    reason: str | None = None
    tags: Sequence[str] | None = None  # None: the tags the mutation was started with


# --- the store ----------------------------------------------------------------------------------

class AuditStore:
    """An open audit database. ``AuditStore.open(path)`` to write, ``read_only=True`` to review."""

    def __init__(self, conn: sqlite3.Connection, path: str, *, read_only: bool,
                 clock: Callable[[], str] = utc_now):
        self.conn = conn
        self.path = path
        self.read_only = read_only
        self.clock = clock
        # One writer at a time on this connection: apply's lanes append from several threads.
        self._writing = threading.RLock()
        # A trail opened read-only is not migrated: readers ask what it has.
        self.schema_version: int = conn.execute("SELECT COALESCE(MAX(version), 1) FROM schema_versions").fetchone()[0]

    @functools.cached_property
    def db(self) -> sqlite_utils.Database:
        """The connection through sqlite-utils (migrations, tests); loaded on first use."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

    @property
    def has_refs(self) -> bool:
        """Actions carry ``repository`` and ``tags`` and are indexed in ``action_refs`` (migration 2)."""
        return self.schema_version >= 2

    @property
    def has_causes(self) -> bool:
        """Actions carry ``cause`` (migration 3)."""
        return self.schema_version >= 3

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, read_only: bool = False,
             clock: Callable[[], str] = utc_now) -> AuditStore:
        path = os.fspath(path)
        try:
            if read_only:
                if not Path(path).is_file():
                    raise AuditError(f"no audit trail at {path}")
                conn = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode=ro", uri=True,
                                       timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                                       check_same_thread=False)
            else:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                                       check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")  # an intent is on disk before its mutation
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
            if not read_only:
                _migrate(conn)
            elif not conn.execute("SELECT 1 FROM sqlite_master WHERE name='actions'").fetchone():
                raise AuditError(f"{path} is not a reconcile audit trail")
            return cls(conn, path, read_only=read_only, clock=clock)
        except sqlite3.Error as e:
            raise AuditError(f"cannot open the audit trail {path}: {e}") from None

    def close(self) -> None:
        with self._writing:  # never under an append of another thread (an interrupted apply's lane)
            self.conn.close()

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- appending --

    def _append(self, table: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Append one chained entry: read the head and insert under one write lock."""
        if self.read_only:
            raise AuditError("the audit trail was opened read-only")
        fields = {k: _safe(k, v) for k, v in fields.items()}
        with self._writing:
            return self._append_locked(table, fields)

    def _append_locked(self, table: str, fields: dict[str, Any]) -> dict[str, Any]:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                seq, prev_hash = self._head_entry()
                entry = {**fields, "seq": seq + 1}
                digest = chain.entry_hash(prev_hash, {"table": table, **entry})
                row = {**entry, "prev_hash": prev_hash, "hash": digest}
                columns = ", ".join(row)
                self.conn.execute(f"INSERT INTO {table} ({columns}) VALUES "
                                  f"({', '.join('?' * len(row))})", tuple(row.values()))
                self.conn.execute("COMMIT")
            except BaseException:
                _roll_back(self.conn)
                raise
        except sqlite3.Error as e:
            raise AuditError(f"cannot write to the audit trail {self.path}: {e}") from None
        return row

    def _head_entry(self) -> tuple[int, str]:
        best = (0, chain.GENESIS)
        for table in CHAINED_TABLES:
            found = self.conn.execute(f"SELECT seq, hash FROM {table} ORDER BY seq DESC LIMIT 1").fetchone()
            if found and found[0] > best[0]:
                best = (found[0], found[1])
        return best

    def head(self) -> str:
        """Hash of the newest entry: print it, keep it elsewhere, pass it to ``verify``."""
        return self._head_entry()[1]

    def start_run(self, mode: RunMode, *, repo_url: str | None = None, repo_commit: str | None = None,
                  actor: str | None = None, dry_run: bool = False) -> Run:
        if mode not in MODES:
            raise ValueError(f"unknown run mode {mode!r}")
        run_id = new_id("run")
        self._append("run_starts", {
            "run_id": run_id, "mode": mode, "actor": actor or default_actor(),
            "host": socket.gethostname(), "pid": os.getpid(), "repo_url": repo_url,
            "repo_commit": repo_commit, "started_at": self.clock(), "dry_run": int(dry_run)})
        return Run(self, run_id, dry_run)

    # -- reading --

    def run(self, run_id: str) -> RunRecord | None:
        row = self.conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return RunRecord.from_row(row) if row else None

    def runs(self, *, limit: int | None = None) -> list[RunRecord]:
        sql = "SELECT * FROM runs ORDER BY started_at DESC, id DESC"
        rows = self.conn.execute(sql + (" LIMIT ?" if limit else ""), (limit,) if limit else ())
        return [RunRecord.from_row(r) for r in rows]

    def unfinished_runs(self, *, exclude: str | None = None) -> list[RunRecord]:
        """Runs with a start and no end: interrupted (or, on this host, possibly still running)."""
        rows = self.conn.execute("SELECT * FROM runs WHERE finished_at IS NULL AND id IS NOT ? "
                                 "ORDER BY started_at", (exclude,))
        return [RunRecord.from_row(r) for r in rows]

    def pending_intents(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Intents with no outcome: mutations that may or may not have happened."""
        sql = "SELECT * FROM pending_intents" + (" WHERE run_id = ?" if run_id else "") + " ORDER BY seq"
        return [dict(r) for r in self.conn.execute(sql, (run_id,) if run_id else ())]

    def action(self, event_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM actions WHERE event_id = ?", (event_id,)).fetchone()
        return dict(row) if row else None

    def chain_entries(self) -> Iterator[tuple[str, int, str, str, dict[str, Any]]]:
        """Every entry in chain order, as ``chain.verify`` wants them."""
        # Merged in Python: three primary-key scans instead of sorting the whole trail.
        cursors = {t: self.conn.execute(f"SELECT * FROM {t} ORDER BY seq") for t in CHAINED_TABLES}
        pending = {t: cursors[t].fetchone() for t in CHAINED_TABLES}
        while True:
            live = [(row["seq"], t) for t, row in pending.items() if row is not None]
            if not live:
                return
            _, table = min(live)
            row = dict(pending[table])
            pending[table] = cursors[table].fetchone()
            prev_hash, digest = row.pop("prev_hash"), row.pop("hash")
            yield table, row["seq"], prev_hash, digest, {"table": table, **row}

    def chain_rows(self, batch: int | None = None, seqs: tuple[int, int] | None = None
                   ) -> tuple[dict[str, tuple[str, ...]], Iterator[list[tuple[Any, ...]]]]:
        """Every entry in chain order (``seqs``: those with seq in that range) as ``chain.check_segment``
        wants them: the names of each table's values (sorted, ``table`` among them: its name), and
        batches of ``(table, seq, prev_hash, hash, *values)``. One primary-key scan per table read
        with ``fetchmany``, merged here on (seq, table) as ``chain_entries`` merges them (cheaper
        than SQLite's ``MERGE (UNION ALL)``, which copies every row through a co-routine). Memory:
        a batch per table."""
        size = batch or VERIFY_BATCH
        keys: dict[str, tuple[str, ...]] = {}
        where = "" if seqs is None else f" WHERE seq BETWEEN {int(seqs[0])} AND {int(seqs[1])}"
        cursors = []
        for table in CHAINED_TABLES:
            columns = [c for (c,) in self.conn.execute(f"SELECT name FROM pragma_table_info('{table}')")
                       if c not in ("prev_hash", "hash")]
            keys[table] = tuple(sorted({"table", *columns}))
            cursor = self.conn.cursor()
            cursor.row_factory = None  # plain tuples
            values = ", ".join(f"'{table}'" if key == "table" else _quoted(key) for key in keys[table])
            cursor.execute(f"SELECT '{table}', seq, prev_hash, hash, {values} FROM {table}{where} ORDER BY seq")
            cursors.append(cursor)
        return keys, _merged(cursors, size)

    def verify(self, expect_head: str | None = None, *, workers: int | None = None) -> chain.Verification:
        """The chain; then (when it holds) that ``action_refs`` indexes each chained action by exactly
        the names its row gives (an edited index could hide an action from ``audit list --target``);
        then that the views and triggers are the ones reconcile made (``runs`` and
        ``pending_intents`` are not hashed: a redefined view could hide an interrupted run). Refs
        of actions no longer in the trail find nothing; a removed tail is ``expect_head``'s.

        The same answer as ``chain.verify(self.chain_entries(), expect_head)``, from one streaming
        pass in batches of ``VERIFY_BATCH`` entries (memory: a batch). A trail of more than
        ``PARALLEL_ENTRIES`` entries on a file is checked in ``workers`` (default: the CPUs this
        process may use, at most ``MAX_WORKERS``) stretches of seq side by side, each in a forked
        process, the links between them checked here; meanwhile this process checks the index."""
        segments, refs = self._verify_segments(expect_head, workers)
        result = chain.join(segments, expect_head)
        if not result.ok:
            return result
        if refs is _NOT_CHECKED:
            refs = self._check_refs()
        if isinstance(refs, BaseException):
            raise refs
        return result if refs is None else chain.Verification(result.entries, result.head, refs)

    def _check_refs(self) -> chain.Break | None:
        found = self._unindexed() if self.has_refs else None
        if found is None and (changed := self._changed_schema_object()) is not None:
            found = chain.Break("schema", 0, changed)
        return found

    def _verify_segments(self, expect_head: str | None, workers: int | None
                         ) -> tuple[list[chain.Segment], Any]:
        bounds = self.conn.execute(" UNION ALL ".join(
            f"SELECT MIN(seq), MAX(seq) FROM {t}" for t in CHAINED_TABLES)).fetchall()
        lows = [low for low, _ in bounds if low is not None]
        highs = [high for _, high in bounds if high is not None]
        if workers is None:
            workers = min(MAX_WORKERS, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                          else os.cpu_count() or 1)
            if not highs or max(highs) - min(lows) < PARALLEL_ENTRIES:
                workers = 1
        import concurrent.futures
        import multiprocessing

        forking = "fork" in multiprocessing.get_all_start_methods() and self.path != ":memory:"
        if workers <= 1 or not highs or not forking:
            keys, batches = self.chain_rows()
            return [chain.check_segment(batches, keys, expect_head)], _NOT_CHECKED
        low, high = min(lows), max(highs)
        step = -(-(high - low + 1) // workers)
        ranges = [(start, min(start + step - 1, high)) for start in range(low, high + 1, step)]
        # Forked (spawn would run ``python -m reconcile``'s ``__main__`` again), all at the first
        # submit, while this connection has no statement open and so holds no lock: each worker
        # uses only a connection of its own, never this one (SQLite's rule for fork).
        fork = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(len(ranges), mp_context=fork) as pool:
            futures = [pool.submit(_verify_range, self.path, seqs, expect_head) for seqs in ranges]
            try:  # the index and the schema meanwhile (their answer counts only if the chain holds)
                refs: Any = self._check_refs()
            except sqlite3.Error as e:
                refs = e
            try:
                return [future.result() for future in futures], refs
            except Exception:  # a value canonical refuses, a worker that died: decided below
                pass
        # In one process, what is found first (a break before the value, or the error it raises).
        keys, batches = self.chain_rows()
        return [chain.check_segment(batches, keys, expect_head)], refs

    def _unindexed(self) -> chain.Break | None:
        """The first action (by seq) whose refs in ``action_refs`` are not exactly ``EXPECTED_REFS``'
        (refs filed under a seq no action has are not looked at): one scan of ``actions`` looking
        each expected ref up by the primary key, one scan of ``action_refs`` looking each action up
        by its seq, instead of materialising both sets."""
        lacking = self.conn.execute(f"SELECT a.seq FROM actions a WHERE {_LACKS_A_REF} ORDER BY a.seq LIMIT 1"
                                    ).fetchone()
        holding = self.conn.execute(
            "SELECT r.seq, r.ref FROM action_refs r JOIN actions a ON a.seq = r.seq "
            f"WHERE NOT ({_EXPECTS_REF}) ORDER BY r.seq, r.ref LIMIT 1").fetchone()
        if lacking is None and holding is None:
            return None
        if holding is None or (lacking is not None and lacking[0] <= holding[0]):
            seq = lacking[0]
            ref = self.conn.execute(f"SELECT e.ref FROM ({_EXPECTED_REFS_OF}) e WHERE NOT EXISTS "
                                    "(SELECT 1 FROM action_refs r WHERE r.ref = e.ref AND r.seq = :seq) "
                                    "ORDER BY e.ref LIMIT 1", {"seq": seq}).fetchone()[0]
            how = "lacks"
        else:
            seq, ref = holding
            how = "holds"
        return chain.Break("action_refs", seq, f"the search index {how} {ref!r} for this action (edited outside "
                                               "reconcile)")

    def _changed_schema_object(self) -> str | None:
        """The first view or trigger that is not as this trail's migrations defined it, and how."""
        found = {(kind, name): sql for kind, name, sql in self.conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE type IN ('view', 'trigger')")}
        expected = _schema_objects(self.schema_version)
        for key in sorted(expected.keys() | found.keys()):
            kind, name = key
            if key not in found:
                return f"the {kind} {name} is missing (dropped outside reconcile)"
            if key not in expected:
                return f"the {kind} {name} is not one reconcile made (created outside reconcile)"
            if _normal(found[key]) != _normal(expected[key]):
                return f"the {kind} {name} was redefined outside reconcile (it could hide runs or actions)"
        return None


_NOT_CHECKED = object()
_CHAIN_ORDER = itemgetter(1, 0)  # (seq, table)


def _merged(cursors: list[sqlite3.Cursor], size: int) -> Iterator[list[tuple[Any, ...]]]:
    """Rows of cursors each ordered by seq (unique in each), in batches ordered by (seq, table):
    each round takes, from every cursor's buffered rows, those up to the smallest last buffered
    seq (every row up to it is buffered, seqs being unique per table) and sorts them together
    (timsort merging a few sorted runs)."""
    buffers: list[list[tuple[Any, ...]]] = [[] for _ in cursors]
    live = list(range(len(cursors)))
    while True:
        for i in list(live):
            if not buffers[i]:
                buffers[i] = cursors[i].fetchmany(size)
                if not buffers[i]:
                    live.remove(i)
        if not live:
            return
        high = min(buffers[i][-1][1] for i in live)
        pieces = []
        for i in live:
            rows = buffers[i]
            if rows[-1][1] <= high:
                pieces.append(rows)
                buffers[i] = []
            else:
                cut = bisect.bisect_right(rows, high, key=_SEQ)
                if cut:
                    pieces.append(rows[:cut])
                    buffers[i] = rows[cut:]
        if len(pieces) == 1:
            yield pieces[0]
            continue
        # Runs' rows are a few among many actions: each is inserted where it goes in the largest
        # piece (a bisection and a move in C) instead of sorting the batch.
        pieces.sort(key=len, reverse=True)
        merged = list(pieces[0])
        for row in itertools.chain.from_iterable(pieces[1:]):
            merged.insert(bisect.bisect_right(merged, _CHAIN_ORDER(row), key=_CHAIN_ORDER), row)
        yield merged


_SEQ = itemgetter(1)


def _verify_range(path: str, seqs: tuple[int, int], expect_head: str | None) -> chain.Segment:
    """A forked worker of ``AuditStore.verify``: the entries with seq in ``seqs``, on its own connection."""
    with AuditStore.open(path, read_only=True) as store:
        keys, batches = store.chain_rows(seqs=seqs)
        return chain.check_segment(batches, keys, expect_head)


@functools.cache
def _schema_objects(version: int) -> dict[tuple[str, str], str]:
    """Views and triggers as the migrations up to ``version`` create them, in a scratch database."""
    import sqlite_utils

    conn = sqlite3.connect(":memory:")
    try:
        db = sqlite_utils.Database(conn)
        for number, migration in MIGRATIONS:
            if number <= version:
                migration(db)
        return {(kind, name): sql for kind, name, sql in conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE type IN ('view', 'trigger')")}
    finally:
        conn.close()


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _normal(sql: str | None) -> str:
    return " ".join((sql or "").split())


_E = TypeVar("_E", bound=StrEnum)


def _member(enum: type[_E], value: str, what: str) -> _E:
    """``value`` as a member of ``enum`` (its member or its wire string); ValueError naming it otherwise."""
    try:
        return enum(value)
    except ValueError:
        shown = str.__str__(value) if isinstance(value, str) else value
        raise ValueError(f"unknown {what} {shown!r} (known: {', '.join(enum)})") from None


def default_actor() -> str:
    """Who is acting: RECONCILE_ACTOR (CI user, service account), else the OS user."""
    if os.environ.get("RECONCILE_ACTOR"):
        return os.environ["RECONCILE_ACTOR"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


_NUMBER_FIELDS: dict[str, type] = {"duration": float, "pid": int, "dry_run": int}


def _safe(name: str, value: Any) -> Any:
    """The store's own guard: nothing a secret reference produced is written, whoever calls.

    Values also take the type their column stores (every column is text but these numbers),
    so the hash covers exactly what ``verify`` reads back.
    """
    if value is None:
        return None
    number = _NUMBER_FIELDS.get(name)
    if isinstance(value, str) and number is None:
        return redact(str.__str__(value))  # a Secret's str value is its mask; others get redacted
    if isinstance(value, bool | int | float) and math.isfinite(value) and abs(value) < 2**63:
        return number(value) if number is not None else str(value)
    raise AuditError(f"cannot store a {type(value).__name__} value in audit field {name!r}")


@dataclass
class Run:
    """One invocation's handle on the trail: actions in, then ``finish``."""

    store: AuditStore
    id: str
    dry_run: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    partial: bool = False  # some planned changes were left for the next run (state changed since the plan)
    blocked: bool = False  # a policy was blocked (recorded as a skip with its reason)
    locked: bool = False  # another run held the lock, so this one did nothing

    def append(self, kind: AuditKind | MutatingKind | AuditKindName, target: str, *, status: ActionStatus,
               policy: str | None = None, reason: str | None = None, digest_before: str | None = None,
               digest_after: str | None = None, error: str | None = None, duration: float | None = None,
               intent_id: str | None = None, tags: Sequence[str] = (),
               repository: str | None = None, cause: Cause | None = None) -> dict[str, Any]:
        """One action. ``tags``: the tags a prune removes, a promotion sets, an untag removes;
        ``repository`` (``registry/repository``) defaults to the one a prune, untag or promotion
        target names. Both are chained and make the action findable by ``registry/repository:TAG``.
        ``cause``: why, as data (the plan action's ``cause``), chained too."""
        recorded = _member(AuditKind, kind, "action kind")
        if status not in STATUSES:
            raise ValueError(f"unknown action status {status!r}")
        why = None if cause is None else _member(Cause, cause, "cause")
        if repository is None and isinstance(target, str):
            repository = repository_of(recorded, target)
        row = self.store._append("actions", {
            "event_id": new_id("evt"), "run_id": self.id, "timestamp": self.store.clock(), "kind": recorded.value,
            "target": target, "digest_before": digest_before, "digest_after": digest_after,
            "policy": policy, "reason": reason, "status": status, "error": error, "duration": duration,
            "dry_run": int(self.dry_run), "intent_id": intent_id, "repository": repository,
            "tags": encode_tags(tags),
            # Named only when there is one: NULL either way (and unhashed), and a row without one is
            # written as it was before migration 3.
            **({"cause": why.value} if why is not None else {})})
        if status != "intent":
            key = f"{recorded.value}.{status}"
            with self.store._writing:
                self.counts[key] = self.counts.get(key, 0) + 1
        return row

    @contextmanager
    def mutation(self, kind: AuditKind | MutatingKind | AuditKindName, target: str, *, policy: str | None = None,
                 reason: str | None = None, digest_before: str | None = None, digest_after: str | None = None,
                 tags: Sequence[str] = (), cause: Cause | None = None) -> Iterator[Outcome]:
        """Write-ahead: the intent is on disk before the body runs, the outcome after it.

        If the intent cannot be written, AuditError propagates and the body never runs. ``tags``
        and ``cause`` go on both rows; the body may report other tags on the outcome (``outcome.tags``).
        """
        intent = self.append(kind, target, status="intent", reason=reason, digest_after=digest_after,
                             tags=tags, policy=policy, digest_before=digest_before, cause=cause)
        outcome = Outcome(digest_after=digest_after)
        started = time.monotonic()
        try:
            yield outcome
        except BaseException as e:
            self.append(kind, target, status="failed", reason=reason, digest_after=outcome.digest_after,
                        error=f"{type(e).__name__}: {e}", duration=time.monotonic() - started,
                        intent_id=intent["event_id"], tags=tags if outcome.tags is None else outcome.tags,
                        policy=policy, digest_before=digest_before, cause=cause)
            raise
        self.append(kind, target, status=outcome.status, reason=outcome.reason or reason,
                    digest_after=outcome.digest_after, duration=time.monotonic() - started,
                    intent_id=intent["event_id"], tags=tags if outcome.tags is None else outcome.tags,
                    policy=policy, digest_before=digest_before, cause=cause)

    def finish(self, outcome: str) -> str:
        """Close the run; returns the chain head to print."""
        row = self.store._append("run_ends", {
            "run_id": self.id, "finished_at": self.store.clock(), "outcome": outcome,
            "summary": json.dumps(dict(sorted(self.counts.items())))})
        return str(row["hash"])
