"""The hash chain: every audit entry (run start, action, run end) in one sequence, each entry's
hash covering the previous hash and a canonical encoding of the entry. Pure functions."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64  # the "previous hash" of the first entry


def canonical(entry: Mapping[str, Any]) -> bytes:
    """Sorted-key, compact, ASCII-only JSON: one byte string per entry, whatever its values
    contain (delimiters inside values are escaped, so no two entries encode alike). NULL fields
    are left out, so a column added by a later migration does not change old entries' hashes."""
    present = {key: value for key, value in entry.items() if value is not None}
    return json.dumps(present, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def entry_hash(prev_hash: str, entry: Mapping[str, Any]) -> str:
    """SHA-256 over the previous hash (fixed length, so the join is unambiguous) and the entry."""
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + canonical(entry)).hexdigest()


@dataclass(frozen=True)
class Break:
    """The first entry that does not match the chain."""

    table: str
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"{self.table} seq {self.seq}: {self.reason}"


@dataclass(frozen=True)
class Verification:
    entries: int
    head: str  # hash of the last entry, GENESIS when empty
    first_break: Break | None

    @property
    def ok(self) -> bool:
        return self.first_break is None


def verify(entries: Iterable[tuple[str, int, str, str, Mapping[str, Any]]],
           expect_head: str | None = None) -> Verification:
    """Recompute the chain over (table, seq, prev_hash, hash, fields) in seq order.

    A row edited, inserted, deleted or moved breaks the link at (or just after) it. A removed
    tail leaves a valid but shorter chain; it is caught by ``expect_head``, a head printed by an
    earlier run and kept elsewhere, which must still be in the chain (entries after it are fine:
    later runs appended them).
    """
    prev = GENESIS
    count = last_seq = 0
    last_table = "actions"
    found_expected = expect_head in (None, GENESIS)  # the empty trail's head precedes every entry
    for table, seq, prev_hash, stored_hash, fields in entries:
        count += 1
        if prev_hash != prev:
            reason = ("its previous hash does not match the entry before it (an entry was "
                      "inserted, deleted or moved here)")
            return Verification(count, prev, Break(table, seq, reason))
        if entry_hash(prev, fields) != stored_hash:
            reason = "its content does not match its hash (edited after it was written)"
            return Verification(count, prev, Break(table, seq, reason))
        prev, last_seq, last_table = stored_hash, seq, table
        found_expected = found_expected or stored_hash == expect_head
    if not found_expected:
        reason = (f"the expected head {expect_head} is not in the trail: entries after this one "
                  "were removed (or the expected head is not from this trail)")
        return Verification(count, prev, Break(last_table, last_seq, reason))
    return Verification(count, prev, None)
