"""Blocked actions say why as data (``Action.block``): errors and exit codes follow from it, never
from a reason's words."""

from __future__ import annotations

import pytest

from reconcile.plan.actions import ERROR_BLOCKS, Action, Block
from reconcile.plan.plan import make_plan
from reconcile.render.plan import from_json, to_json


@pytest.mark.parametrize("block", list(Block))
def test_only_unreadable_sources_and_limits_are_errors(block: Block) -> None:
    action = Action("PromotionPolicy/web", "blocked", "ci/web", reason="could not be read", block=block)
    assert action.is_error == (block in {Block.UNREADABLE, Block.OVER_LIMIT, Block.CANNOT_DELETE, Block.UNMATCHED})
    assert (block in ERROR_BLOCKS) == action.is_error


def test_words_in_a_reason_decide_nothing() -> None:
    gate = Action("PromotionPolicy/web", "blocked", "ci/web", reason="stage could not be read", block=Block.GATE)
    source = Action("PromotionPolicy/web", "blocked", "ci/web", reason="all fine", block=Block.UNREADABLE)
    assert not gate.is_error and source.is_error


def test_the_block_survives_a_saved_plan() -> None:
    plan = make_plan("repo", None, "2026-12-03T00:00:00Z", [
        Action("DeployPolicy/prod-web", "blocked", "prod/web", "sha256:" + "a" * 64, "sha256:" + "b" * 64,
               "held", block=Block.HELD)])
    again = from_json(to_json(plan))
    assert again.actions[0].block is Block.HELD and again == plan
