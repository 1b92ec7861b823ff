"""Several audit trails read as one: the shard files of a sharded run (``audit.shard-K-of-N.db``).

Each trail is its own hash chain, opened read-only. Questions that span trails (runs, actions)
are answered by merging each trail's answer in time order: by timestamp, then by the order the
trails were given, then by ``seq``; each trail's own rows keep their chain order (a merge, not a
sort, so clock skew inside one trail never reorders its chain). Each row says which trail it
came from (its ``name``: the file name, or the path as given when two trails share a file name).
"""

from __future__ import annotations

import heapq
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from reconcile.audit import chain
from reconcile.audit.query import ActionFilter, list_actions
from reconcile.audit.store import AuditError, AuditStore, RunRecord

TRAIL_SUFFIX = ".db"


@dataclass(frozen=True)
class Trail:
    """One open trail and the name it is shown by."""

    name: str
    store: AuditStore


@dataclass(frozen=True)
class TrailRun:
    trail: str
    run: RunRecord


def _natural(name: str) -> list[Any]:
    """Sort key: digit runs by value, so ``shard-2-of-12`` comes before ``shard-10-of-12``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def trail_paths(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """The trail files ``paths`` name, in the order given: a file as is, a directory as every
    ``*.db`` file in it sorted by name (numbers by value). Each file once. A directory without a
    ``*.db`` file is an ``AuditError``; whether each file is a trail is checked when it is opened."""
    found: list[str] = []
    seen: set[str] = set()
    for given in paths:
        path = os.fspath(given)
        if os.path.isdir(path):
            names = sorted((n for n in os.listdir(path) if n.endswith(TRAIL_SUFFIX)
                            and os.path.isfile(os.path.join(path, n))), key=_natural)
            if not names:
                raise AuditError(f"no audit trail (*{TRAIL_SUFFIX}) in the directory {path}")
            files = [os.path.join(path, n) for n in names]
        else:
            files = [path]
        for file in files:
            key = os.path.realpath(file)
            if key not in seen:
                seen.add(key)
                found.append(file)
    return found


def trail_names(paths: Sequence[str]) -> list[str]:
    """The file name of each, or the path as given where two share a file name."""
    bases = [os.path.basename(p) or p for p in paths]
    return [base if bases.count(base) == 1 else path for base, path in zip(bases, paths, strict=True)]


class AuditTrails:
    """Several trails (or one), each opened read-only; ``AuditTrails.open(paths)``, then close."""

    def __init__(self, trails: Sequence[Trail], stack: ExitStack):
        self.trails = list(trails)
        self._stack = stack

    @classmethod
    def open(cls, paths: Iterable[str | os.PathLike[str]]) -> AuditTrails:
        """Open every trail ``paths`` name (see ``trail_paths``); the first that cannot be opened,
        or is not an audit trail, is an ``AuditError`` naming it (none stays open)."""
        files = trail_paths(paths)
        with ExitStack() as stack:
            trails = [Trail(name, stack.enter_context(AuditStore.open(file, read_only=True)))
                      for name, file in zip(trail_names(files), files, strict=True)]
            return cls(trails, stack.pop_all())

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> AuditTrails:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def several(self) -> bool:
        return len(self.trails) > 1

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.trails]

    def __iter__(self) -> Iterator[Trail]:
        return iter(self.trails)

    # -- across trails --

    def actions(self, flt: ActionFilter) -> list[dict[str, Any]]:
        """The actions matching ``flt`` in every trail, merged in time order; with several trails
        each row has its ``trail`` (one trail's rows are exactly ``list_actions``'). ``flt.limit``:
        the newest N of the merged actions."""
        per_trail = [[{**row, "trail": t.name} if self.several else row for row in list_actions(t.store, flt)]
                     for t in self.trails]
        merged = list(heapq.merge(*[[((row["timestamp"], i, row["seq"]), row) for row in rows]
                                    for i, rows in enumerate(per_trail)], key=lambda pair: pair[0]))
        rows = [row for _, row in merged]
        return rows if flt.limit is None else rows[len(rows) - flt.limit:]

    def runs(self, *, limit: int | None = None) -> list[TrailRun]:
        """Every trail's runs, oldest first (by start, then trail); ``limit``: the newest N."""
        per_trail = [[((run.started_at, i, run.id), TrailRun(t.name, run)) for run in t.store.runs(limit=limit)[::-1]]
                     for i, t in enumerate(self.trails)]
        runs = [run for _, run in heapq.merge(*per_trail, key=lambda pair: pair[0])]
        return runs[-limit:] if limit else runs

    def find_action(self, event_id: str) -> list[tuple[Trail, dict[str, Any]]]:
        """Each trail holding the event, with its row (ids are random: one, unless a trail was copied)."""
        return [(t, row) for t in self.trails if (row := t.store.action(event_id)) is not None]

    def find_run(self, run_id: str) -> list[tuple[Trail, RunRecord]]:
        return [(t, run) for t in self.trails if (run := t.store.run(run_id)) is not None]

    def unfinished(self) -> list[tuple[Trail, list[RunRecord], list[dict[str, Any]]]]:
        """Per trail: runs that never finished and intents without an outcome."""
        return [(t, t.store.unfinished_runs(), t.store.pending_intents()) for t in self.trails]

    def verify(self, expect_heads: dict[str, str] | None = None) -> list[tuple[Trail, chain.Verification]]:
        """Each chain on its own, with the head expected of it (by trail name), if any."""
        heads = expect_heads or {}
        return [(t, t.store.verify(heads.get(t.name))) for t in self.trails]
