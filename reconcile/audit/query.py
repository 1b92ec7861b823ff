"""Reading the audit trail for review: a filter, the SQL it becomes, and time arguments.

Pure apart from the functions taking a store, which run the SQL on it. Results are always in
chain order (``seq``), never by timestamp: clocks skew between hosts, the chain does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconcile.audit.store import AuditStore
from reconcile.policy.durations import parse_duration

_GLOB_CHARS = frozenset("*?[")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})?")
_WHEN_HINT = ("a duration back from now (30m, 2h, 7d, 1w), an RFC 3339 date-time "
              "(2026-11-21T08:00:00Z) or a date (2026-11-21, midnight UTC)")


@dataclass(frozen=True)
class ActionFilter:
    """Which actions to list; every field narrows, ``None``/empty means no constraint."""

    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive, so ``--until 2026-11-21`` means "before that day"
    actions: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    # SQLite GLOB (case-sensitive, * and ?) on the target, on registry/repository:TAG of each tag the
    # action removed or set, and on its digests
    target: str | None = None
    policy: str | None = None  # exact Kind/name, or a GLOB when it holds * ? [
    run: str | None = None
    commit: str | None = None  # prefix of the run's repo_commit
    limit: int | None = None  # the newest N matches (still returned oldest first)

    def is_empty(self) -> bool:
        """Selects every action (no constraint and no limit)."""
        return self == ActionFilter()


def timestamp_text(when: datetime) -> str:
    """The store's timestamp format, so comparisons are plain text comparisons on an index."""
    if when.tzinfo is None:
        raise ValueError(f"{when!r} has no time zone")
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def build_query(flt: ActionFilter, *, refs: bool = True) -> tuple[str, tuple[Any, ...]]:
    """The parameterised SQL (and its parameters) selecting ``flt``'s actions in ``seq`` order.

    ``refs``: the trail has ``action_refs`` (schema version 2); one from before, opened read-only
    and so not migrated, is searched by target and digests only.
    """
    where: list[str] = []
    params: list[Any] = []
    if flt.since is not None:
        where.append("a.timestamp >= ?")
        params.append(timestamp_text(flt.since))
    if flt.until is not None:
        where.append("a.timestamp < ?")
        params.append(timestamp_text(flt.until))
    if flt.actions:
        where.append(f"a.kind IN ({', '.join('?' * len(flt.actions))})")
        params.extend(flt.actions)
    if flt.target is not None:
        # Each side of the OR has an index (target; action_refs' primary key), so a pattern with a
        # literal prefix is a range search on both.
        if refs:
            where.append("(a.target GLOB ? OR a.seq IN (SELECT r.seq FROM action_refs r WHERE r.ref GLOB ?))")
            params.extend((flt.target, flt.target))
        else:
            where.append("(a.target GLOB ? OR a.digest_before GLOB ? OR a.digest_after GLOB ?)")
            params.extend((flt.target,) * 3)
    if flt.run is not None:
        where.append("a.run_id = ?")
        params.append(flt.run)
    if flt.commit is not None:
        where.append("a.run_id IN (SELECT s.run_id FROM run_starts s "
                     "WHERE substr(s.repo_commit, 1, ?) = ?)")
        params.extend((len(flt.commit), flt.commit.lower()))
    # Everything above can use an index; with such a filter, "+seq" stops SQLite from preferring
    # a full scan in primary-key order over the index (it would, to skip the sort for LIMIT).
    indexed = bool(where)
    if flt.statuses:
        where.append(f"a.status IN ({', '.join('?' * len(flt.statuses))})")
        params.extend(flt.statuses)
    if flt.policy is not None:
        where.append("a.policy GLOB ?" if _GLOB_CHARS & set(flt.policy) else "a.policy = ?")
        params.append(flt.policy)
    order = "+a.seq" if indexed else "a.seq"
    sql = "SELECT a.* FROM actions a" + (" WHERE " + " AND ".join(where) if where else "")
    if flt.limit is None:
        return f"{sql} ORDER BY {order}", tuple(params)
    return f"SELECT * FROM ({sql} ORDER BY {order} DESC LIMIT ?) ORDER BY seq", (*params, flt.limit)


def list_actions(store: AuditStore, flt: ActionFilter) -> list[dict[str, Any]]:
    """The actions matching ``flt``, oldest first by chain sequence."""
    sql, params = build_query(flt, refs=store.has_refs)
    return [dict(row) for row in store.conn.execute(sql, params)]


def glob_literal(text: str) -> str:
    """``text`` as a GLOB pattern matching only itself."""
    return "".join(f"[{c}]" if c in _GLOB_CHARS else c for c in text)


def removals(store: AuditStore, *, tag: str | None = None, digest: str | None = None) -> list[dict[str, Any]]:
    """Prunes and untags that succeeded outside a dry run and removed ``tag`` (in any repository) or
    ``digest``, oldest first, each with its run's ``run_mode``, ``run_actor`` and ``run_commit``:
    how a tag or digest that registries no longer hold went (``reconcile explain``). Actions from
    before schema version 2 carry no tags: of them, only untags are found by tag (by their target).
    """
    where: list[str] = []
    params: list[Any] = []
    if tag is not None:
        # an untag's target names its tag, also in rows from before the tags column
        where.append("(a.kind = 'untag' AND substr(a.target, -?) = ?)")
        params.extend((len(tag) + 1, f":{tag}"))
        if store.has_refs:
            where.append("a.seq IN (SELECT r.seq FROM action_refs r WHERE r.ref GLOB ?)")
            params.append(f"*:{glob_literal(tag)}")
    if digest is not None:
        where.append("a.seq IN (SELECT r.seq FROM action_refs r WHERE r.ref = ?)" if store.has_refs
                     else "a.digest_before = ?")
        params.append(digest)
    if not where:
        return []
    rows = store.conn.execute(
        "SELECT a.*, s.mode AS run_mode, s.actor AS run_actor, s.repo_commit AS run_commit FROM actions a "
        "LEFT JOIN run_starts s ON s.run_id = a.run_id WHERE a.kind IN ('prune', 'untag') AND a.status = 'succeeded' "
        f"AND a.dry_run = 0 AND ({' OR '.join(where)}) ORDER BY a.seq", params)
    return [dict(row) for row in rows]


def find_outcome(store: AuditStore, intent_event_id: str) -> dict[str, Any] | None:
    """The outcome row completing an intent, or None when the mutation never reported back."""
    row = store.conn.execute("SELECT * FROM actions WHERE intent_id = ? ORDER BY seq LIMIT 1",
                             (intent_event_id,)).fetchone()
    return dict(row) if row else None


def parse_when(text: str, now: datetime) -> datetime:
    """``2h``/``7d``/``30m``/``90s``/``1w`` back from ``now``, or an RFC 3339 date-time or date.

    Returns an aware UTC datetime; raises ValueError naming the accepted forms.
    """
    text = text.strip()
    if _DATE.match(text):
        return _parse_absolute(text)
    if not text[:1].isdigit():
        raise ValueError(f"{text!r} is not a time: use {_WHEN_HINT}")
    try:
        return (now - parse_duration(text)).astimezone(UTC)
    except ValueError as e:
        reason = str(e).removeprefix(f"{text!r} is not a duration: ")
        raise ValueError(f"{text!r} is not a time: {reason}; use {_WHEN_HINT}") from None
    except OverflowError:
        raise ValueError(f"{text!r} is not a time: it reaches back before the year 1") from None


def _parse_absolute(text: str) -> datetime:
    if _DATE.fullmatch(text):
        try:
            return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError as e:
            raise ValueError(f"{text!r} is not a date ({e}): use {_WHEN_HINT}") from None
    match = _DATE_TIME.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not a time: use {_WHEN_HINT}")
    if not match.group(3):
        raise ValueError(f"{text!r} has no time zone: add Z (UTC) or an offset such as +02:00")
    # RFC 3339 allows any number of fraction digits; Python keeps microseconds.
    normal = re.sub(r"(\.\d{6})\d+", r"\1", text.upper().replace(" ", "T"))
    try:
        when = datetime.fromisoformat(normal)
    except ValueError as e:
        raise ValueError(f"{text!r} is not a time ({e}): use {_WHEN_HINT}") from None
    return when.astimezone(UTC)



def deploy_history(store: AuditStore) -> dict[str, list[str]]:
    """DeployPolicy name -> digests it deployed (or rolled back to) successfully, newest first,
    each once, and what each deploy replaced (what ran before the first deploy is where its
    rollback goes): the rollback window retention protects, and where ``reconcile rollback`` looks.
    What a rollback rolled back *from* is not in it."""
    rows = store.conn.execute(
        "SELECT policy, digest_after, CASE kind WHEN 'deploy' THEN digest_before END FROM actions "
        "WHERE kind IN ('deploy', 'rollback') AND status = 'succeeded' AND policy LIKE 'DeployPolicy/%' "
        "AND digest_after IS NOT NULL AND dry_run = 0 ORDER BY seq DESC")
    history: dict[str, list[str]] = {}
    for policy, after, replaced in rows:
        digests = history.setdefault(policy.removeprefix("DeployPolicy/"), [])
        for digest in (after, replaced):
            if digest is not None and digest not in digests:
                digests.append(digest)
    return history


def promotion_arrivals(store: AuditStore) -> dict[tuple[str, str], datetime]:
    """(registry/repository, digest) -> when it was first promoted there: what soak gates count from."""
    rows = store.conn.execute(
        "SELECT target, MIN(timestamp) FROM actions WHERE kind = 'promote' AND status = 'succeeded' AND dry_run = 0 "
        "AND target LIKE '%@sha256:%' GROUP BY target")
    arrivals = {}
    for target, timestamp in rows:
        where, digest = target.split("@", 1)
        arrivals[(where, digest)] = _parse_absolute(timestamp)
    return arrivals


HOLD_RELEASED = "hold released"


def deploy_holds(store: AuditStore) -> dict[str, tuple[str, str]]:
    """DeployPolicy name -> (held digest, why): the digest a rollback rolled back *from* (an
    automatic one after a failed rollout, or a manual ``reconcile rollback``) — attempted is enough:
    a rollback that failed or never reported back still says not to run that digest. A hold ends
    with a later ``skip`` recorded as ``hold released`` for the policy, or a later succeeded deploy
    of another digest (a newer candidate)."""
    rows = store.conn.execute(
        "SELECT policy, kind, status, digest_before, digest_after, reason, timestamp FROM actions "
        "WHERE policy LIKE 'DeployPolicy/%' AND dry_run = 0 AND (kind = 'rollback' OR kind IN ('deploy', 'skip') "
        "AND status IN ('succeeded', 'skipped')) ORDER BY seq")
    holds: dict[str, tuple[str, str]] = {}
    for policy, kind, status, before, after, reason, timestamp in rows:
        name = policy.removeprefix("DeployPolicy/")
        if kind == "rollback" and before and before != after:
            how = "rolled back automatically after a failed rollout" if (reason or "").startswith(
                "auto-rollback") else "rolled back by hand"
            if status == "intent":  # the hold starts when the rollback does; its outcome only adds a failure
                holds[name] = (before, f"was {how} at {timestamp[:19]}Z")
            elif status == "failed" and name in holds:
                holds[name] = (before, f"{holds[name][1]} (the rollback failed)")
        elif kind == "skip" and (reason or "").startswith(HOLD_RELEASED):
            holds.pop(name, None)
        elif kind == "deploy" and status == "succeeded" and name in holds and after != holds[name][0]:
            del holds[name]
    return holds
