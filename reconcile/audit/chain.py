"""The hash chain: every audit entry (run start, action, run end) in one sequence, each entry's
hash covering the previous hash and a canonical encoding of the entry. Pure functions."""

from __future__ import annotations

import hashlib
import json
import json.encoder
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

GENESIS = "0" * 64  # the "previous hash" of the first entry
LINK_REASON = "its previous hash does not match the entry before it (an entry was inserted, deleted or moved here)"
CONTENT_REASON = "its content does not match its hash (edited after it was written)"


# ``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)``
# made once: ``json.dumps`` builds this encoder on every call with other than default options.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
_ENCODE = _ENCODER.encode


def _row_encoder(sorted_already: bool = False) -> Any:
    """``_ENCODE`` for a dict of scalars (what a row holds), without its per-call set-up: the C
    encoder ``JSONEncoder.encode`` itself builds on every call, made once (no cycle check: a
    row's values are scalars). ``sorted_already``: for dicts built in sorted key order, which it
    then need not sort (the same bytes)."""
    make = getattr(json.encoder, "c_make_encoder", None)  # CPython's private accelerator, typeshed omits it
    if make is None:  # no C accelerator: the encoder as it is
        return _ENCODE
    encode = make(None, _ENCODER.default, json.encoder.encode_basestring_ascii, None, _ENCODER.key_separator,
                  _ENCODER.item_separator, not sorted_already, _ENCODER.skipkeys, _ENCODER.allow_nan)
    join = "".join
    return lambda value: join(encode(value, 0))


def canonical(entry: Mapping[str, Any]) -> bytes:
    """Sorted-key, compact, ASCII-only JSON: one byte string per entry, whatever its values
    contain (delimiters inside values are escaped, so no two entries encode alike). NULL fields
    are left out, so a column added by a later migration does not change old entries' hashes."""
    return _ENCODE({key: value for key, value in entry.items() if value is not None}).encode("ascii")


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
           expect_head: str | None = None, *, start: str = GENESIS) -> Verification:
    """Recompute the chain over (table, seq, prev_hash, hash, fields) in seq order.

    A row edited, inserted, deleted or moved breaks the link at (or just after) it. A removed
    tail leaves a valid but shorter chain; it is caught by ``expect_head``, a head printed by an
    earlier run and kept elsewhere, which must still be in the chain (entries after it are fine:
    later runs appended them). ``start``: the hash the first entry follows (GENESIS, or the last
    entry of the part of the chain checked before these).
    """
    prev = start
    count = last_seq = 0
    last_table = "actions"
    found_expected = expect_head in (None, GENESIS)  # the empty trail's head precedes every entry
    for table, seq, prev_hash, stored_hash, fields in entries:
        count += 1
        if prev_hash != prev:
            return Verification(count, prev, Break(table, seq, LINK_REASON))
        if entry_hash(prev, fields) != stored_hash:
            return Verification(count, prev, Break(table, seq, CONTENT_REASON))
        prev, last_seq, last_table = stored_hash, seq, table
        found_expected = found_expected or stored_hash == expect_head
    if not found_expected:
        return Verification(count, prev, Break(last_table, last_seq, _missing_head(expect_head)))
    return Verification(count, prev, None)


def _missing_head(expect_head: str | None) -> str:
    return (f"the expected head {expect_head} is not in the trail: entries after this one "
            "were removed (or the expected head is not from this trail)")




# --- verifying in batches -----------------------------------------------------------------------
#
# ``verify`` above is the reference, one entry at a time. ``check_segment`` checks a stretch of
# the chain fetched in batches of rows ``(table, seq, prev_hash, hash, *values)``, the values
# named by ``keys``: a batch whose links and hashes all match (a few list comparisons, and one
# ``entry_hash`` per row with no other Python per row) is done; a batch that does not is checked
# again by ``verify`` itself, which names its first entry that does not match. ``join`` puts
# stretches checked apart (by other processes) together, checking the link between each two;
# ``verify_batches`` is both over one stretch. The answer is ``verify``'s, for every trail.


@dataclass(frozen=True)
class Segment:
    """A stretch of the chain checked on its own, from its own first entry's previous hash."""

    entries: int  # checked, the broken one included
    first: tuple[str, int, str] | None  # (table, seq, prev_hash) of its first entry; None when empty
    head: str  # hash of its last entry that matched (its first entry's previous hash if none)
    last: tuple[str, int] | None  # (table, seq) of that entry
    first_break: Break | None
    found: bool  # the expected head is among the hashes that matched


def check_segment(batches: Iterable[Sequence[Sequence[Any]]], keys: Mapping[str, Sequence[str]],
                  expect_head: str | None = None) -> Segment:
    """Every row's link to the row before it in the stretch, and its hash recomputed from its
    content (``dict(zip(keys[table], values))``, NULLs left out as ``canonical`` does) and its
    previous hash. Memory: one batch."""
    # A dict built in sorted key order need not be sorted again by the encoder (the same bytes).
    encode = _row_encoder(sorted_already=all(list(k) == sorted(k) for k in keys.values()))
    sha256 = hashlib.sha256
    prev_of, hash_of = itemgetter(2), itemgetter(3)
    first: tuple[str, int, str] | None = None
    prev = ""
    count = 0
    last: tuple[str, int] | None = None
    found = False

    def row_hash(row: Sequence[Any]) -> str:
        present = {key: value for key, value in zip(keys[row[0]], row[FIRST_VALUE:], strict=True)
                   if value is not None}
        return sha256(row[2].encode("ascii") + b"\n" + encode(present).encode("ascii")).hexdigest()

    for batch in batches:
        if not batch:
            continue
        if first is None:
            first = (batch[0][0], batch[0][1], batch[0][2])
            prev = batch[0][2]
        stored = list(map(hash_of, batch))
        try:
            ok = (batch[0][2] == prev and list(map(prev_of, batch[1:])) == stored[:-1]
                  and list(map(row_hash, batch)) == stored)
        except (TypeError, ValueError, AttributeError, UnicodeEncodeError):
            ok = False  # a value ``canonical`` refuses, or a NULL previous hash: as ``verify`` finds it
        if not ok:
            entries = ((row[0], row[1], row[2], row[3], dict(zip(keys[row[0]], row[FIRST_VALUE:], strict=True)))
                       for row in batch)
            result = verify(entries, start=prev)
            if result.first_break is not None:
                return Segment(count + result.entries, first, result.head, last, result.first_break, found)
        count += len(batch)
        prev = stored[-1]
        last = (batch[-1][0], batch[-1][1])
        found = found or expect_head in stored
    return Segment(count, first, prev if first else GENESIS, last, None, found)


FIRST_VALUE = 4  # a row is (table, seq, prev_hash, hash, *values)



def join(segments: Iterable[Segment], expect_head: str | None = None) -> Verification:
    """The chain of these stretches, in order: each one's first entry must follow the last entry
    of the one before (GENESIS for the first), as ``verify`` checks every other link."""
    prev = GENESIS
    count = 0
    last = ("actions", 0)
    found = expect_head in (None, GENESIS)
    for segment in segments:
        if segment.first is None:
            continue
        table, seq, first_prev = segment.first
        if first_prev != prev:
            return Verification(count + 1, prev, Break(table, seq, LINK_REASON))
        if segment.first_break is not None:
            return Verification(count + segment.entries, segment.head, segment.first_break)
        count += segment.entries
        prev = segment.head
        last = segment.last or last
        found = found or segment.found
    if not found:
        return Verification(count, prev, Break(*last, _missing_head(expect_head)))
    return Verification(count, prev, None)


def verify_batches(batches: Iterable[Sequence[Sequence[Any]]], keys: Mapping[str, Sequence[str]],
                   expect_head: str | None = None) -> Verification:
    """``verify`` over rows ``(table, seq, prev_hash, hash, *values)`` in chain order, in batches."""
    return join([check_segment(batches, keys, expect_head)], expect_head)
