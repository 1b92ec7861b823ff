"""One plan, three renderings."""

from __future__ import annotations

import json

from jsonschema import Draft202012Validator
from rich.console import Console

from reconcile.plan.actions import Action
from reconcile.plan.plan import make_plan
from reconcile.policy.schema import schemas_dir
from reconcile.render.plan import MARKDOWN_LIMIT, summary_line, to_json, to_markdown, to_rich

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
POLICY = "RetentionPolicy/ci-cleanup"
ACTIONS = [
    Action(POLICY, "keep", "ci/team-a/web:v1", D1, D1, "keep[0]: matches '^v'"),
    Action(POLICY, "prune", f"ci/team-a/web@{D2}", D2, None, "no keep rule or protection applies to a, b",
           ("a", "b")),
    Action("RetentionPolicy/other", "blocked", "ci",
           reason="cluster prod-eu could not be read: 403; nothing is pruned"),
]
PLAN = make_plan("policies", "0123456789abcdef0123", "2026-11-21T12:00:00.000000Z", ACTIONS,
                 ["cluster prod-eu could not be read: 403"])


def test_summary_counts_changes_and_kinds() -> None:
    assert summary_line(PLAN) == "1 change at 0123456789ab: 1 to prune, 1 blocked, 1 kept"
    assert summary_line(make_plan("p", None, "t", [ACTIONS[0]])) == "no changes: 1 kept"


def test_actions_are_ordered_by_policy_then_changes_first() -> None:
    assert [a.kind for a in PLAN.actions] == ["prune", "keep", "blocked"]


def test_json_is_deterministic_and_valid_against_its_schema() -> None:
    text = to_json(PLAN)
    assert text == to_json(make_plan("policies", "0123456789abcdef0123", "2026-11-21T12:00:00.000000Z",
                                     list(reversed(ACTIONS)), ["cluster prod-eu could not be read: 403"]))
    document = json.loads(text)
    schema = json.loads((schemas_dir() / "plan.schema.json").read_text())
    assert list(Draft202012Validator(schema).iter_errors(document)) == []
    assert document["summary"] == {"prune": 1, "blocked": 1, "keep": 1}
    assert document["actions"][0]["tags"] == ["a", "b"] and document["hasChanges"] is True


def test_markdown_puts_counts_first_lists_deletions_once_and_folds_details() -> None:
    text = to_markdown(PLAN)  # the layout in detail: tests/render/test_markdown.py
    assert text.startswith("### reconcile plan: 1 change at 0123456789ab: 1 to prune, 1 blocked, 1 kept\n\n"
                           "| policy | prune | blocked | keep |\n")
    assert text.count("`a`, `b`") == 1 and f"{D2[:19]}" in text
    assert "<details><summary>RetentionPolicy/ci-cleanup: 1 to prune, 1 kept</summary>" in text
    assert "- ⚠️ cluster prod-eu could not be read: 403" in text


def test_markdown_stays_under_the_limit_and_says_what_it_omitted() -> None:
    many = [Action(POLICY, "prune", f"ci/team-a/web@sha256:{n:064x}", f"sha256:{n:064x}", None,
                   "no keep rule or protection applies to build-" + str(n), (f"build-{n}",)) for n in range(5000)]
    text = to_markdown(make_plan("p", None, "t", many))
    assert len(text) <= MARKDOWN_LIMIT == 65_536
    assert "actions not shown; the full plan is in the JSON (`plan --out plan.json`" in text
    assert text.startswith("### reconcile plan: 5000 changes: 5000 to prune")


def test_markdown_cells_cannot_break_the_table() -> None:
    odd = make_plan("p", None, "t", [Action(POLICY, "keep", "x", reason="a | b\nc <script>")])
    assert "| keep | `x` | a \\| b<br>c &lt;script> |" in to_markdown(odd)


def test_rich_puts_the_summary_first_and_highlights_deletions() -> None:
    console = Console(record=True, width=200, force_terminal=True, color_system="truecolor")
    console.print(to_rich(PLAN))
    text = console.export_text(clear=False)
    assert text.splitlines()[0] == summary_line(PLAN)
    assert "RetentionPolicy/ci-cleanup" in text and "(tags: a, b)" in text
    styled = console.export_text(styles=True)
    assert "\x1b[1;31mprune" in styled  # bold red
