"""The fingerprint a saved plan carries: same world, same fingerprint; any observed change, another."""

from __future__ import annotations

from reconcile.observe.state import (
    OCI_MANIFEST,
    ClusterState,
    Descriptor,
    ImageReference,
    Observation,
    RepositoryState,
    RetentionObservation,
    Usage,
)
from reconcile.plan import fingerprint
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
