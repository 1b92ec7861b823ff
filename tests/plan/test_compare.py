"""A saved plan against the plan made now: action for action on what changes what happens."""

from __future__ import annotations

from dataclasses import replace

from reconcile.plan.actions import Action
from reconcile.plan.compare import compare, first_difference
from reconcile.plan.plan import Plan, make_plan

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")
POLICY = "RetentionPolicy/ci-cleanup"
PRUNE = Action(POLICY, "prune", f"ci/web@{D1}", D1, None, "no keep rule applies", ("build-1", "build-2"))
CHILD = Action(POLICY, "prune", f"ci/web@{D2}", D2, None, "a platform of it", depends_on=f"ci/web@{D1}")
KEEP = Action(POLICY, "keep", "ci/web:v1", D3, D3, "keep[0]")


def plan(*actions: Action, errors: tuple[str, ...] = ()) -> Plan:
    return make_plan("p", "c", "2026-11-21T12:00:00.000000Z", list(actions), list(errors))


def test_reasons_keeps_and_observed_at_do_not_count() -> None:
    saved = plan(PRUNE, CHILD, KEEP)
    now = make_plan("p", "c", "2026-11-21T13:00:00.000000Z",
                    [replace(PRUNE, reason="other words"), CHILD])
    assert not compare(saved, now)


def test_tags_count_and_are_shown() -> None:
    lost = replace(PRUNE, tags=("build-1",))
    assert lost != PRUNE  # tags are part of an action's equality
    diff = compare(plan(lost, CHILD), plan(PRUNE, CHILD))
    assert diff.lines() == [f"- prune ci/web@{D1} (tags: build-1)", f"+ prune ci/web@{D1} (tags: build-1, build-2)"]


def test_a_block_or_an_error_that_appears_counts() -> None:
    blocked = Action("PromotionPolicy/web", "blocked", f"ci/prod@{D1}", None, D1, "freeze waiting until …",
                     ("prod", "7"))
    diff = compare(plan(PRUNE), plan(PRUNE, blocked, errors=("cluster prod could not be read",)))
    assert diff.lines() == [f"+ blocked ci/prod@{D1} (tags: prod, 7): freeze waiting until …",
                            "+ could not be decided: cluster prod could not be read"]


def test_depends_on_and_digests_count() -> None:
    orphan = replace(CHILD, depends_on=None)
    assert compare(plan(PRUNE, orphan), plan(PRUNE, CHILD)).lines() == [
        f"- prune ci/web@{D2}", f"+ prune ci/web@{D2} (after ci/web@{D1})"]
    deploy = Action("DeployPolicy/web", "deploy", "prod/web/web", D1, D2, "", ("7",))
    other = replace(deploy, digest_before=D3)
    assert compare(plan(deploy), plan(other)).lines() == [
        f"- deploy prod/web/web (tags: 7) from {D1[:19]} to {D2[:19]}",
        f"+ deploy prod/web/web (tags: 7) from {D3[:19]} to {D2[:19]}"]


def test_a_long_diff_is_capped_and_counted() -> None:
    many = [Action(POLICY, "prune", f"ci/web@sha256:{n:064x}", f"sha256:{n:064x}", None, "", (f"b-{n}",))
            for n in range(30)]
    lines = compare(plan(*many), plan()).lines(limit=20)
    assert len(lines) == 21 and lines[-1] == "… and 10 more differences"


def test_first_difference_names_the_field() -> None:
    saved = {"commit": "c", "actions": [{"target": "a", "tags": ["x"]}, {"target": "b", "tags": []}]}
    assert first_difference(saved, {**saved, "actions": [saved["actions"][0], {"target": "b", "tags": ["y"]}]}) == \
        "actions[1].tags (0 in the file, 1 planned now)"
    assert first_difference(saved, {**saved, "commit": "d"}) == "commit"
    assert first_difference({**saved, "observedAt": "t"}, saved, skip=frozenset({"observedAt"})) is None
    assert first_difference({"hasChanges": True}, {"hasChanges": 1}) == "hasChanges"
