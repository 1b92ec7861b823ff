"""The typed decisions on the wire: plan JSON carries each action's kind, block and cause as their
strings, covered by the content hash and the schema; a saved plan naming a kind, block or cause
this version does not know is refused, naming the action and the value; the saved-plan comparison
counts the cause."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from reconcile.plan.actions import Action, ActionKind, Block, Cause
from reconcile.plan.compare import compare
from reconcile.plan.plan import make_plan
from reconcile.policy.schema import schemas_dir
from reconcile.render.plan import PlanFileError, content_hash, plan_document, read_saved, to_json

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
POLICY = "RetentionPolicy/ci-cleanup"
ACTIONS = [
    Action(POLICY, ActionKind.KEEP, "ci/team-a/web:v1", D1, D1, "keep[0]: matches '^v'", cause=Cause.KEPT_BY_RULE),
    Action(POLICY, ActionKind.PRUNE, f"ci/team-a/web@{D2}", D2, None, "no keep rule or protection applies to a, b",
           ("a", "b"), cause=Cause.EXPIRED),
    Action("RetentionPolicy/other", ActionKind.BLOCKED, "ci", reason="cluster prod-eu could not be read: 403",
           block=Block.UNREADABLE, cause=Cause.CLUSTER_UNREADABLE),
]
PLAN = make_plan("policies", "0123456789abcdef0123", "2026-11-21T12:00:00.000000Z", ACTIONS)
SCHEMA = json.loads((schemas_dir() / "plan.schema.json").read_text())


def test_the_json_carries_kind_block_and_cause_as_strings_and_reads_back_the_same() -> None:
    document = json.loads(to_json(PLAN))
    assert [(a["kind"], a.get("block"), a["cause"]) for a in document["actions"]] == [
        ("prune", None, "expired"), ("keep", None, "kept-by-rule"), ("blocked", "unreadable", "cluster-unreadable")]
    assert list(Draft202012Validator(SCHEMA).iter_errors(document)) == []
    assert all(type(a["kind"]) is str and type(a["cause"]) is str for a in plan_document(PLAN)["actions"])
    saved = read_saved(to_json(PLAN))
    assert saved.intact and saved.plan.actions == PLAN.actions
    assert [a.cause for a in saved.plan.actions] == [Cause.EXPIRED, Cause.KEPT_BY_RULE, Cause.CLUSTER_UNREADABLE]
    assert all(type(a.kind) is ActionKind for a in saved.plan.actions)


def test_the_schema_knows_every_kind_block_and_cause() -> None:
    fields = SCHEMA["properties"]["actions"]["items"]["properties"]
    assert set(fields["kind"]["enum"]) == {k.value for k in ActionKind}
    assert set(fields["block"]["enum"]) == {b.value for b in Block}
    assert fields["cause"]["enum"] == [c.value for c in Cause]
    assert all(c.value in fields["cause"]["description"] for c in Cause)


def test_the_content_hash_covers_the_cause() -> None:
    document = json.loads(to_json(PLAN))
    document["actions"][0]["cause"] = "no-rule-matches"
    saved = read_saved(json.dumps(document))
    assert not saved.intact and saved.plan.actions[0].cause is Cause.NO_RULE_MATCHES


def forged(index: int, field: str, value: object) -> str:
    """The saved plan with one action's field set to ``value`` and its content hash recomputed."""
    document = json.loads(to_json(PLAN))
    document["actions"][index][field] = value
    document.pop("contentHash")
    document["contentHash"] = content_hash(document)
    return json.dumps(document)


@pytest.mark.parametrize(("index", "field", "value", "message"), [
    (0, "kind", "delete", 'actions[0]: unknown action kind "delete" (known: prune, untag, promote, deploy, '
                          "rollback, keep, blocked)"),
    (1, "kind", "KEEP", 'actions[1]: unknown action kind "KEEP"'),
    (1, "kind", 3, "actions[1]: unknown action kind 3"),
    (2, "block", "frozen", 'actions[2]: unknown block "frozen" (known: unreadable, over-limit'),
    (2, "block", None, "actions[2]: unknown block null"),
    (0, "cause", "because", 'actions[0]: unknown cause "because" (known: kept-by-rule, unrankable'),
    (1, "cause", ["expired"], 'actions[1]: unknown cause ["expired"]'),
])
def test_a_saved_plan_with_an_unknown_kind_block_or_cause_is_refused(index: int, field: str, value: object,
                                                                     message: str) -> None:
    with pytest.raises(PlanFileError) as refused:
        read_saved(forged(index, field, value))
    assert message in str(refused.value)


def test_a_saved_plan_without_causes_still_reads() -> None:
    """Plans saved before causes existed: read, and then differ from a plan made now (below)."""
    document = json.loads(to_json(PLAN))
    for action in document["actions"]:
        del action["cause"]
    saved = read_saved(json.dumps(document))
    assert [a.cause for a in saved.plan.actions] == [None, None, None]
    assert compare(saved.plan, PLAN)


def test_the_same_change_for_another_cause_is_a_difference_that_names_the_causes() -> None:
    prune = ACTIONS[1]
    other = Action(prune.policy, prune.kind, prune.target, prune.digest_before, prune.digest_after, prune.reason,
                   prune.tags, cause=Cause.NO_RULE_MATCHES)
    now = make_plan(PLAN.repo, PLAN.commit, PLAN.observed_at, [ACTIONS[0], other, ACTIONS[2]])
    diff = compare(PLAN, now)
    assert diff.lines() == [f"- prune ci/team-a/web@{D2} (tags: a, b) [expired]",
                            f"+ prune ci/team-a/web@{D2} (tags: a, b) [no-rule-matches]"]
    # a keep's cause is not compared: keeps change nothing (only changes and blocks are)
    kept = Action(POLICY, "keep", "ci/team-a/web:v1", D1, D1, "keep[0]", cause=Cause.IN_USE)  # type: ignore[arg-type]
    assert not compare(PLAN, make_plan(PLAN.repo, PLAN.commit, PLAN.observed_at, [kept, *ACTIONS[1:]]))
