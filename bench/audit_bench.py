"""Benchmark of the audit trail at scale.

    python bench/audit_bench.py [--rows 1000000] [--runs 1000] [--appends 10000] [--chunks 10]
                                [--db PATH] [--keep]

1. Builds a trail of ``--rows`` actions spread over ``--runs`` runs and 30 days, in one bulk
   transaction but VALIDLY chained (every hash computed with ``chain.entry_hash``, exactly as
   the store would), so ``verify`` accepts it.
2. Times ``--appends`` actions appended in one run through the real ``Run.append`` API (one
   durable ``BEGIN IMMEDIATE`` transaction per action, ``synchronous=FULL``).
3. Times the same rows appended by a peer: sqlite-utils' ``Table.insert_all`` into an
   un-chained copy of the ``actions`` table (same columns, indexes and size, no chain, no
   triggers), the way any SQLite user writes rows; and, for a durability-for-durability
   comparison, sqlite-utils ``Table.insert`` one row (one commit) at a time, alternating with
   the store in chunks so both see the same disk.
4. Times the query behind ``reconcile audit list --since 1h --action prune`` (through
   ``reconcile.audit.query`` when it is there, else the equivalent SQL) and prints its
   ``EXPLAIN QUERY PLAN``.
5. Times a full ``verify()`` of the trail, against its target (< 5 s at 1M actions, scaled to
   the size built), and ``reconcile audit verify`` and ``reconcile audit list --since 1h
   --action prune`` as fresh processes, against ``python -c pass`` and a process that only
   imports the CLI (start-up), so the part that is the command's own work shows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlite_utils

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconcile.audit import chain
from reconcile.audit.store import ACTION_FIELDS, AuditStore

TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
SPAN = timedelta(days=30)
# (kind, probability per event); mutating kinds write two rows (intent, outcome), so prune is
# ~10% of the rows.
EVENTS = (("skip", 0.60), ("error", 0.04), ("prune", 0.07), ("promote", 0.14), ("deploy", 0.12),
          ("rollback", 0.03))
MUTATING = frozenset({"prune", "promote", "deploy", "rollback"})
RUN_START_FIELDS = ("seq", "run_id", "mode", "actor", "host", "pid", "repo_url", "repo_commit",
                    "started_at", "dry_run")
RUN_END_FIELDS = ("seq", "run_id", "finished_at", "outcome", "summary")


# --- building a large, valid trail --------------------------------------------------------------

class Builder:
    """Generates entries in chain order and hashes each over its previous one."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.seq = 0
        self.prev = chain.GENESIS
        self.events = 0
        self.kinds = [k for k, _ in EVENTS]
        self.weights = [w for _, w in EVENTS]

    def entry(self, table: str, fields: dict[str, Any], columns: tuple[str, ...]) -> tuple[Any, ...]:
        self.seq += 1
        fields["seq"] = self.seq
        digest = chain.entry_hash(self.prev, {"table": table, **fields})
        row = (*(fields.get(c) for c in columns), self.prev, digest)
        self.prev = digest
        return row

    def action(self, run_id: str, when: datetime, kind: str, status: str, target: str, *,
               intent_id: str | None = None, error: str | None = None, reason: str | None = None,
               duration: float | None = None) -> tuple[Any, ...]:
        self.events += 1
        event_id = f"evt-{when.strftime('%Y%m%dT%H%M%S')}-{self.events:08x}"
        fields = {"event_id": event_id, "run_id": run_id, "timestamp": when.strftime(TS_FORMAT),
                  "kind": kind, "target": target, "digest_before": f"sha256:{self.events:064x}",
                  "digest_after": f"sha256:{self.events + 1:064x}" if kind in ("promote", "deploy") else None,
                  "policy": f"RetentionPolicy/team-{self.events % 7}" if kind in ("prune", "skip")
                  else f"PromotionPolicy/app-{self.events % 13}", "reason": reason, "status": status,
                  "error": error, "duration": duration, "dry_run": 0, "intent_id": intent_id}
        return self.entry("actions", fields, ACTION_FIELDS)

    def run(self, index: int, start: datetime, step: timedelta, count: int
            ) -> tuple[tuple[Any, ...], list[tuple[Any, ...]], tuple[Any, ...]]:
        rng = self.rng
        run_id = f"run-{start.strftime('%Y%m%dT%H%M%S')}-{index:08x}"
        started = self.entry("run_starts", {
            "run_id": run_id, "mode": "run", "actor": "system:serviceaccount:reconcile:cronjob",
            "host": "reconcile-cronjob-28315", "pid": 1, "repo_url": "https://git.example.com/platform/policies.git",
            "repo_commit": f"{rng.getrandbits(160):040x}", "started_at": start.strftime(TS_FORMAT), "dry_run": 0},
            RUN_START_FIELDS)
        actions: list[tuple[Any, ...]] = []
        counts: dict[str, int] = {}
        when = start
        while len(actions) < count:
            kind = rng.choices(self.kinds, self.weights)[0]
            target = (f"registry.example.com/team-{rng.randrange(40)}/app-{rng.randrange(25)}"
                      f":build-{rng.randrange(10**6)}")
            when += step
            if kind in MUTATING and len(actions) + 2 <= count:
                intent = self.action(run_id, when, kind, "intent", target, reason="policy")
                actions.append(intent)
                roll = rng.random()
                status = "succeeded" if roll < 0.95 else "failed" if roll < 0.99 else "skipped"
                when += step
                actions.append(self.action(
                    run_id, when, kind, status, target, intent_id=intent[1], reason="policy",
                    error="ConnectionError: registry returned 503" if status == "failed" else None,
                    duration=round(rng.uniform(0.01, 3.0), 6)))
            else:
                kind = "skip" if kind in MUTATING else kind
                status = "skipped" if kind == "skip" else "failed"
                actions.append(self.action(run_id, when, kind, status, target, reason="kept by rule 1",
                                           error="policy error" if kind == "error" else None))
            key = f"{kind}.{actions[-1][ACTION_FIELDS.index('status')]}"
            counts[key] = counts.get(key, 0) + 1
        finished = self.entry("run_ends", {
            "run_id": run_id, "finished_at": (when + step).strftime(TS_FORMAT),
            "outcome": "failed" if any(k.endswith(".failed") for k in counts) else "succeeded",
            "summary": json.dumps(dict(sorted(counts.items())))}, RUN_END_FIELDS)
        return started, actions, finished


def insert_sql(table: str, columns: tuple[str, ...]) -> str:
    names = (*columns, "prev_hash", "hash")
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"


def build(path: Path, rows: int, runs: int, seed: int = 1) -> None:
    AuditStore.open(path).close()  # the real schema, indexes and triggers
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")  # a bulk load: durable at the COMMIT's checkpoint below
    conn.execute("PRAGMA cache_size=-262144")
    builder = Builder(random.Random(seed))
    now = datetime.now(UTC)
    first = now - SPAN
    run_gap = SPAN / runs
    conn.execute("BEGIN")
    for index in range(runs):
        count = rows // runs + (1 if index < rows % runs else 0)
        # actions spread over the run's slot (the last run ends just before now)
        start = first + run_gap * index
        started, actions, finished = builder.run(index, start, (run_gap * 0.9) / max(count, 1), count)
        conn.execute(insert_sql("run_starts", RUN_START_FIELDS), started)
        conn.executemany(insert_sql("actions", ACTION_FIELDS), actions)
        conn.execute(insert_sql("run_ends", RUN_END_FIELDS), finished)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def make_peer_table(path: Path) -> None:
    """``actions_plain``: the actions table without the chain (no hashes, no triggers), same
    columns, same indexes, same rows, in the same file."""
    columns = ", ".join(ACTION_FIELDS)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA cache_size=-262144")
    conn.execute("BEGIN")
    conn.execute("CREATE TABLE actions_plain (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL, "
                 "run_id TEXT NOT NULL, timestamp TEXT NOT NULL, kind TEXT NOT NULL, target TEXT, "
                 "digest_before TEXT, digest_after TEXT, policy TEXT, reason TEXT, status TEXT NOT NULL, "
                 "error TEXT, duration FLOAT, dry_run INTEGER, intent_id TEXT, repository TEXT, tags TEXT, "
                 "cause TEXT)")
    conn.execute(f"INSERT INTO actions_plain ({columns}) SELECT {columns} FROM actions")
    for name, cols, unique in (("event_id", "event_id", True), ("run_id", "run_id", False),
                               ("timestamp", "timestamp", False), ("kind_timestamp", "kind, timestamp", False),
                               ("target", "target", False), ("intent_id", "intent_id", False)):
        conn.execute(f"CREATE {'UNIQUE ' if unique else ''}INDEX idx_actions_plain_{name} "
                     f"ON actions_plain ({cols})")
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


# --- measurements -------------------------------------------------------------------------------

def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def workload(count: int, seed: int = 2) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    kinds = [k for k, _ in EVENTS]
    weights = [w for _, w in EVENTS]
    for i in range(count):
        kind = rng.choices(kinds, weights)[0]
        status = {"skip": "skipped", "error": "failed"}.get(kind, "succeeded")
        yield {"kind": kind, "target": f"registry.example.com/team-{i % 40}/app-{i % 25}:build-{i}",
               "status": status, "policy": "RetentionPolicy/team-1", "reason": "benchmark",
               "digest_before": f"sha256:{i:064x}", "duration": 0.05}


def append_interleaved(path: Path, count: int, chunks: int, peer: sqlite_utils.Database
                       ) -> tuple[float, float, list[dict[str, Any]]]:
    """``count`` actions in one run through ``Run.append``, and the same rows inserted one commit
    at a time by the peer, alternating in ``chunks`` so both see the same disk (fsync latency
    on a shared VM disk varies by an order of magnitude from minute to minute)."""
    work = list(workload(count))
    written: list[dict[str, Any]] = []
    store_s = peer_s = 0.0
    with AuditStore.open(path) as store:
        run = store.start_run("run", actor="bench")
        size = -(-count // chunks)
        for start in range(0, count, size):
            started = time.perf_counter()
            for item in work[start:start + size]:
                written.append(run.append(item.pop("kind"), item.pop("target"), **item))
            store_s += time.perf_counter() - started
            rows = peer_rows(written[start:], offset=2 * 10**9, prefix="row-")
            started = time.perf_counter()
            for row in rows:
                peer["actions_plain"].insert(row)
            peer_s += time.perf_counter() - started
        run.finish("succeeded")
    return store_s, peer_s, written


def peer_rows(written: list[dict[str, Any]], offset: int, prefix: str) -> list[dict[str, Any]]:
    """The same rows the store wrote, without the chain columns, under fresh keys."""
    rows = []
    for row in written:
        plain = {k: v for k, v in row.items() if k not in ("prev_hash", "hash")}
        plain["seq"] += offset
        plain["event_id"] = prefix + plain["event_id"]
        rows.append(plain)
    return rows


def peer_database(path: Path) -> sqlite_utils.Database:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=FULL")  # as durable per commit as the store
    return sqlite_utils.Database(conn)


def query_prune_last_hour(path: Path) -> tuple[str, list[float], int, list[str]]:
    """``audit list --since 1h --action prune``: (source, timings, matches, query plan)."""
    now = datetime.now(UTC)
    try:
        from reconcile.audit import query

        flt = query.ActionFilter(since=query.parse_when("1h", now), actions=("prune",))
        sql, params = query.build_query(flt)

        def run_it(store: AuditStore) -> list[Any]:
            return query.list_actions(store, flt)

        source = "reconcile.audit.query"
    except (ImportError, AttributeError, TypeError):  # being written concurrently
        sql = "SELECT * FROM actions WHERE kind = ? AND timestamp >= ? ORDER BY seq"
        params = ("prune", (now - timedelta(hours=1)).strftime(TS_FORMAT))

        def run_it(store: AuditStore) -> list[Any]:
            return store.conn.execute(sql, params).fetchall()

        source = "equivalent SQL (reconcile.audit.query not importable)"
    timings = []
    with AuditStore.open(path, read_only=True) as store:
        for _ in range(5):
            seconds, result = timed(lambda: run_it(store))
            timings.append(seconds)
        plan = [row[3] for row in store.conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    return source, timings, len(result), plan


VERIFY_TARGET_S = 5.0  # at 1,000,000 actions (issue 17)
LIST_TARGET_S = 0.3  # ``reconcile audit list``, start-up included


def verify_all(path: Path) -> tuple[float, float, chain.Verification]:
    """Wall time, CPU time (this process and the workers it forks), the result."""
    def cpu() -> float:
        own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime

    with AuditStore.open(path, read_only=True) as store:
        before = cpu()
        seconds, result = timed(store.verify)
        return seconds, cpu() - before, result


def process_seconds(argv: list[str], repeat: int = 3) -> float:
    """Median wall time of a fresh process (the CLI as a user runs it)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(argv, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


# --- main ---------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="actions in the built trail")
    parser.add_argument("--runs", type=int, default=1000, help="runs they are spread over")
    parser.add_argument("--appends", type=int, default=10_000, help="actions appended through Run.append")
    parser.add_argument("--chunks", type=int, default=10,
                        help="alternate the store and the one-commit-per-row peer in this many chunks")
    parser.add_argument("--db", type=Path, help="where to build the trail (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)

    workdir = None
    if args.db is None:
        workdir = Path(tempfile.mkdtemp(prefix="audit-bench-"))
        args.db = workdir / "audit.db"
    elif args.db.exists():
        parser.error(f"{args.db} exists; give a new path")
    results: list[tuple[str, str, str]] = []
    total_started = time.perf_counter()
    try:
        print(f"building {args.rows:,} actions over {args.runs:,} runs in {args.db} ...", flush=True)
        seconds, _ = timed(lambda: build(args.db, args.rows, args.runs))
        results.append(("build (bulk, chained)", f"{seconds:8.1f} s", f"{args.rows / seconds:,.0f} rows/s"))
        seconds, _ = timed(lambda: make_peer_table(args.db))
        results.append(("  peer table copy + indexes", f"{seconds:8.1f} s", "actions_plain, same rows"))

        print(f"appending {args.appends:,} actions through Run.append (and the peer) ...", flush=True)
        peer = peer_database(args.db)
        store_s, row_s, written = append_interleaved(args.db, args.appends, args.chunks, peer)
        results.append((f"Run.append x {args.appends:,}", f"{store_s:8.2f} s",
                        f"{store_s / args.appends * 1000:.2f} ms/action, a durable commit each"))
        rows = peer_rows(written, offset=10**9, prefix="bulk-")
        peer_s, _ = timed(lambda: peer["actions_plain"].insert_all(rows))
        results.append((f"peer: Table.insert_all x {args.appends:,}", f"{peer_s:8.2f} s",
                        f"{peer_s / args.appends * 1000:.3f} ms/row; store/peer = {store_s / peer_s:,.1f}x"))
        results.append((f"peer: Table.insert x {args.appends:,}", f"{row_s:8.2f} s",
                        f"{row_s / args.appends * 1000:.2f} ms/row, a commit each; "
                        f"store/peer = {store_s / row_s:.2f}x"))
        peer.conn.close()
        hashes = [{"table": "actions", **{k: v for k, v in r.items() if k not in ("prev_hash", "hash")}}
                  for r in written]
        hash_s, _ = timed(lambda: [chain.entry_hash(chain.GENESIS, h) for h in hashes])
        results.append(("  hashing alone (entry_hash)", f"{hash_s:8.2f} s",
                        f"{hash_s / len(hashes) * 1e6:.1f} us/action"))

        print("querying ...", flush=True)
        source, timings, matches, plan = query_prune_last_hour(args.db)
        results.append(("audit list --since 1h --action prune", f"{statistics.median(timings) * 1000:8.1f} ms",
                        f"median of 5, first {timings[0] * 1000:.1f} ms; {matches:,} rows"))

        print("verifying ...", flush=True)
        verify_s, verify_cpu, verification = verify_all(args.db)
        target = VERIFY_TARGET_S * args.rows / 1_000_000
        meets = "meets it" if verify_s < target else "MISSES it"
        results.append(("verify()", f"{verify_s:8.1f} s",
                        f"target < {target:.1f} s ({VERIFY_TARGET_S:.0f} s at 1M actions): {meets}; "
                        f"CPU {verify_cpu:.1f} s; {verification.entries:,} entries, "
                        f"{verification.entries / verify_s:,.0f}/s, "
                        f"{'ok' if verification.ok else 'BROKEN: ' + str(verification.first_break)}"))

        print("timing the CLI ...", flush=True)
        python = [sys.executable]
        bare = process_seconds([*python, "-c", "pass"])
        startup = process_seconds([*python, "-c", "import reconcile.cli"])
        cli = [*python, "-m", "reconcile", "audit"]
        listing = process_seconds([*cli, "list", "--db", str(args.db), "--since", "1h", "--action", "prune"])
        verifying = process_seconds([*cli, "verify", "--db", str(args.db)], repeat=1)
        results.append(("python -c pass", f"{bare * 1000:8.0f} ms", "interpreter start, for scale"))
        results.append(("  start-up (import reconcile.cli)", f"{startup * 1000:8.0f} ms", "median of 3"))
        results.append(("reconcile audit list --since 1h --action prune", f"{listing * 1000:8.0f} ms",
                        f"median of 3; target < {LIST_TARGET_S * 1000:.0f} ms: "
                        f"{'meets it' if listing < LIST_TARGET_S else 'MISSES it'}; "
                        f"{max(listing - startup, 0) * 1000:.0f} ms past start-up"))
        results.append(("reconcile audit verify", f"{verifying:8.1f} s",
                        f"one run; {max(verifying - startup, 0):.1f} s past start-up "
                        "(verify, then the unfinished runs and intents it warns about)"))
        size = sum(p.stat().st_size for p in args.db.parent.glob(args.db.name + "*"))
    finally:
        if workdir is not None and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(f"audit trail benchmark: {args.rows:,} actions, {args.runs:,} runs, {os.cpu_count()} CPUs, "
          f"{socket.gethostname()}, SQLite {sqlite3.sqlite_version}, {size / 2**20:,.0f} MiB")
    width = max(len(name) for name, _, _ in results)
    for name, value, note in results:
        print(f"  {name:<{width}}  {value:>11}  {note}")
    print(f"  {'total':<{width}}  {time.perf_counter() - total_started:9.1f} s")
    print()
    print(f"query ({source}) plan:")
    for line in plan:
        print(f"  {line}")
    if args.keep:
        print(f"\nkept: {args.db}")
    return 0 if verification.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
