"""The fingerprint a saved plan carries: same world, same fingerprint; any observed change, another."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from reconcile.observe.state import (
    OCI_MANIFEST,
    ClusterState,
    Descriptor,
    ImageReference,
    Observation,
    PlannedRepository,
    RepositoryState,
    RetentionObservation,
    Usage,
)
from reconcile.plan import fingerprint, tags_hash
from reconcile.plan.actions import Action
from reconcile.plan.plan import make_plan
from reconcile.render.plan import from_json, to_json

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def world(tags: dict[str, str], running: tuple[str, ...] = (), commits: frozenset[str] = frozenset()) -> Observation:
    repo = RepositoryState("ci", "web", {t: Descriptor(OCI_MANIFEST, d, 1) for t, d in tags.items()}, {})
    cluster = ClusterState("prod", {ImageReference("r", "web", digest=d): (Usage("prod", "n", "Pod", "p", "c",
                                                                                   "running"),) for d in running})
    return Observation("2026-11-21T00:00:00Z", {"prod": cluster},
                       {"ci": RetentionObservation((repo,), {0: commits})})


def test_the_same_world_gives_the_same_fingerprint_whatever_the_order() -> None:
    assert fingerprint(world({"a": D1, "b": D2}), {}) == fingerprint(world({"b": D2, "a": D1}), {})


def test_any_observed_change_changes_it() -> None:
    base = fingerprint(world({"a": D1}), {})
    changed = [
        world({"a": D2}), world({"a": D1, "b": D1}), world({"a": D1}, running=(D1,)),
        world({"a": D1}, commits=frozenset({"abc"})),
    ]
    assert all(fingerprint(w, {}) != base for w in changed)
    assert fingerprint(world({"a": D1}), {"prod-web": [D1]}) != base
    assert fingerprint(world({"a": D1}), None) != base  # an unreadable audit trail is a different world


def test_a_saved_plan_reads_back_as_the_same_plan() -> None:
    plan = make_plan("p", "abc", "t", [Action("RetentionPolicy/r", "prune", f"ci/web@{D1}", D1, None, "why", ("a",)),
                                       Action("RetentionPolicy/r", "keep", "ci/web:b", D2, D2, "kept")],
                     ["an error"], fingerprint="f" * 64)
    assert from_json(to_json(plan)) == plan


def _repository(tags: dict[str, str], untagged: frozenset[str] = frozenset(),
                pushed: dict[str, datetime] | None = None) -> RepositoryState:
    return RepositoryState("ci", "web", {t: Descriptor(OCI_MANIFEST, d, 1) for t, d in tags.items()}, {},
                           untagged=untagged, pushed=pushed or {})


def _observed(state: RepositoryState) -> Observation:
    return Observation("2026-11-21T00:00:00Z", {}, {"ci": RetentionObservation((state,), {})})


def test_untagged_manifests_change_it_push_times_do_not_and_a_repository_without_them_hashes_as_before() -> None:
    D3 = "sha256:" + "3" * 64
    plain = _repository({"a": D1, "b": D2})
    # Pinned: the hash of a repository without untagged manifests is what it was before they were observed.
    assert tags_hash(plain) == "6a550a5c3da050acd1c7296a6ece9bf4b204347047af7ac6cf15ae10dff2c909"
    assert tags_hash(plain) == hashlib.sha256(json.dumps([["a", D1], ["b", D2]]).encode()).hexdigest()
    with_untagged = _repository({"a": D1, "b": D2}, frozenset({D3, D1}))
    assert tags_hash(with_untagged) == hashlib.sha256(
        json.dumps([["a", D1], ["b", D2], {"untagged": [D1, D3]}]).encode()).hexdigest()
    assert tags_hash(_repository({}, frozenset({D3}))) == hashlib.sha256(
        json.dumps([{"untagged": [D3]}]).encode()).hexdigest()
    assert tags_hash(_repository({})) == hashlib.sha256(b"[]").hexdigest()

    base = fingerprint(_observed(plain), {})
    changed = [_repository({"a": D1, "b": D2}, frozenset({D3})), _repository({"a": D1, "b": D2}, frozenset({D1})),
               with_untagged]
    assert len({base, *(fingerprint(_observed(s), {}) for s in changed)}) == 1 + len(changed)
    # A streamed observation keeps only the hash: the same fingerprint.
    streamed = PlannedRepository("ci", "web", tags_hash(with_untagged))
    assert fingerprint(Observation("2026-11-21T00:00:00Z", {}, {"ci": RetentionObservation((streamed,), {})}),
                       {}) == fingerprint(_observed(with_untagged), {})

    # Push times are not hashed (each is of a digest hashed already; see tags_hash).
    timed = _repository({"a": D1, "b": D2}, frozenset({D3}), pushed={D1: datetime(2026, 11, 1, tzinfo=UTC)})
    assert tags_hash(timed) == tags_hash(changed[0]) and tags_hash(_repository(
        {"a": D1, "b": D2}, pushed={D3: datetime(2026, 11, 1, tzinfo=UTC)})) == tags_hash(plain)
