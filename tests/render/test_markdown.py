"""The markdown plan for pull-request comments and step summaries: counts first, one folded section
per policy, each deletion once, by repository in tag order, every user string escaped, and never
over the limit (what does not fit is counted and pointed to)."""

from __future__ import annotations

import re

import pytest

from reconcile.plan.actions import Action
from reconcile.plan.plan import Plan, make_plan
from reconcile.render.plan import (
    FULL_PLAN_HINT,
    GITLAB_MARKDOWN_LIMIT,
    MARKDOWN_LIMIT,
    md_code,
    md_html,
    md_text,
    tag_order,
    to_markdown,
)


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


# --- escaping -----------------------------------------------------------------------------------

TEXT_CASES = [  # (user string, as markdown text in a table cell)
    ("^build-(\\d+)$", "^build-(\\\\d+)$"),  # the backslash survives
    ("a|b", "a\\|b"),  # one cell stays one cell
    ("use `latest`", "use \\`latest\\`"),
    ("<script>&amp;", "&lt;script>&amp;amp;"),  # no HTML, no entity gets through
    ("*bold* _it_ [link](x) ~s~", "\\*bold\\* \\_it\\_ \\[link\\](x) \\~s\\~"),
    ("one\ntwo\r\nthree", "one<br>two<br>three"),
    ("d1 -> d2", "d1 -> d2"),  # mid-line '>' opens nothing: left readable
]
CODE_CASES = [  # (user string, as a code span in a table cell)
    ("^build-(\\d+)$", "`^build-(\\d+)$`"),  # nothing is markdown in a code span: backslashes as they are
    ("a|b", "`a\\|b`"),  # GFM splits cells before it sees code spans
    ("x`y", "``x`y``"),
    ("`edge`", "`` `edge` ``"),
    ("a``b`c", "```a``b`c```"),
    ("two\nlines", "`two lines`"),
    ("<b>", "`<b>`"),
]
HTML_CASES = [("RetentionPolicy/a<b>&c", "RetentionPolicy/a&lt;b&gt;&amp;c"), ("x\ny", "x y"), ("a|b", "a|b")]


@pytest.mark.parametrize(("raw", "escaped"), TEXT_CASES)
def test_text_is_escaped_for_table_cells(raw: str, escaped: str) -> None:
    assert md_text(raw) == escaped


def test_text_outside_tables_turns_newlines_into_spaces() -> None:
    assert md_text("a\nb|c") == "a<br>b\\|c" and md_text("a\nb|c", table=False) == "a b\\|c"


@pytest.mark.parametrize(("raw", "escaped"), CODE_CASES)
def test_code_spans_hold_anything(raw: str, escaped: str) -> None:
    assert md_code(raw) == escaped


def test_code_spans_outside_tables_keep_pipes() -> None:
    assert md_code("a|b", table=False) == "`a|b`"


@pytest.mark.parametrize(("raw", "escaped"), HTML_CASES)
def test_html_summaries_are_entities(raw: str, escaped: str) -> None:
    assert md_html(raw) == escaped


@pytest.mark.parametrize(("tags", "ordered"), [
    (["build-10", "build-9", "build-1"], ["build-1", "build-9", "build-10"]),
    (["v1.10.0", "v1.9.0", "v1.9.1"], ["v1.9.0", "v1.9.1", "v1.10.0"]),
    (["b", "a10", "a2"], ["a2", "a10", "b"]),
])
def test_tag_order_is_natural(tags: list[str], ordered: list[str]) -> None:
    assert sorted(tags, key=tag_order) == ordered


def test_user_strings_reach_the_plan_escaped() -> None:
    policy = "RetentionPolicy/ci"
    plan = make_plan("p", None, "t", [
        Action(policy, "keep", "ci/web:build-1", digest(1), digest(1), "keep[0]: matches '^build-(\\d+)$'"),
        Action(policy, "prune", f"ci/web@{digest(2)}", digest(2), None, "no rule matches a|b or `x`", ("a|b",)),
        Action(policy, "blocked", "ci", reason="registry ci could not be read: <html>\nforbidden"),
        Action("PromotionPolicy/web", "promote", "ci/web:staging", digest(1), digest(2), "gates open", ("s|t",))])
    text = to_markdown(plan)
    assert "| keep | `ci/web:build-1` | keep\\[0\\]: matches '^build-(\\\\d+)$' |" in text
    assert "| prune | `a\\|b` | `sha256:000000000000` | no rule matches a\\|b or \\`x\\` |" in text
    assert "`RetentionPolicy/ci` `ci`: registry ci could not be read: &lt;html> forbidden" in text
    assert "| promote | `ci/web:staging` (tags: `s\\|t`) |" in text
    for table in re.findall(r"(?m)(?:^\|.*\n)+", text):  # every row of a table has its header's cells
        assert len({len(re.findall(r"(?<!\\)\|", row)) for row in table.splitlines()}) == 1, table


# --- layout -------------------------------------------------------------------------------------

SMALL = make_plan("policies", "0123456789abcdef", "t", [
    Action("RetentionPolicy/ci", "prune", f"ci/web@{digest(3)}", digest(3), None, "expired", ("build-10", "latest-10")),
    Action("RetentionPolicy/ci", "prune", f"ci/web@{digest(4)}", digest(4), None, "expired", ("build-9",)),
    Action("RetentionPolicy/ci", "prune", f"ci/web@{digest(5)}", digest(5), None, "goes with it", (),
           depends_on=f"ci/web@{digest(4)}"),
    Action("RetentionPolicy/ci", "untag", "ci/api:old", digest(6), None, "expired"),
    Action("RetentionPolicy/ci", "keep", "ci/web:v1", digest(1), digest(1), "keep[0]"),
    Action("DeployPolicy/prod", "deploy", "prod/ns/Deployment/web", digest(1), digest(2), "runs d1 -> d2"),
    Action("PromotionPolicy/web", "blocked", "ci/web:staging", reason="soak: 2h left", block="gate"),
    Action("RetentionPolicy/other", "blocked", "ci", reason="registry ci could not be read", block="unreadable"),
], ["registry ci could not be read"], warnings=["keep[1] ranks nothing"])


def test_summary_table_comes_first_with_counts_per_kind_per_policy() -> None:
    lines = to_markdown(SMALL).splitlines()
    assert lines[0].startswith("### reconcile plan: 5 changes at 0123456789ab")
    assert lines[2:9] == [
        "| policy | prune | untag | deploy | blocked | keep |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        "| `DeployPolicy/prod` | 0 | 0 | 1 | 0 | 0 |",
        "| `PromotionPolicy/web` | 0 | 0 | 0 | 1 | 0 |",
        "| `RetentionPolicy/ci` | 3 | 1 | 0 | 0 | 1 |",
        "| `RetentionPolicy/other` | 0 | 0 | 0 | 1 | 0 |",
        "| **total** | **3** | **1** | **1** | **2** | **1** |"]


def test_errors_blocked_and_warnings_come_before_the_folded_sections() -> None:
    text = to_markdown(SMALL)
    first_details = text.index("<details>")
    for shown in ("- ⚠️ registry ci could not be read", "- ⛔ `RetentionPolicy/other` `ci`: registry ci could",
                  "- ⏸️ `PromotionPolicy/web` `ci/web:staging`: soak: 2h left", "- keep\\[1\\] ranks nothing"):
        assert 0 <= text.index(shown) < first_details
    assert text.count("soak: 2h left") == 1  # blocked: listed once, above


def test_one_section_per_policy_and_deletions_once_in_tag_order() -> None:
    text = to_markdown(SMALL)
    assert re.findall(r"<details><summary>([^:]+):", text) == [
        "DeployPolicy/prod", "PromotionPolicy/web", "RetentionPolicy/ci", "RetentionPolicy/other"]
    assert text.count("<details>") == text.count("</details>") == 4
    retention = text[text.index("<summary>RetentionPolicy/ci:"):text.index("<summary>RetentionPolicy/other")]
    assert retention.index("#### `ci/api`: 1 to delete") < retention.index("#### `ci/web`: 3 to delete, 1 kept")
    rows = [line for line in retention.splitlines() if line.startswith(("| prune", "| untag"))]
    assert rows == [
        "| untag | `old` | `sha256:000000000000` | expired |",
        "| prune | `build-9` | `sha256:000000000000` | expired |",
        "| prune (with the one above) | — | `sha256:000000000000` | goes with it |",
        "| prune | `build-10`, `latest-10` | `sha256:000000000000` | expired |"]
    assert text.count("build-10") == 1  # not also a row of its own, nor a called-out list
    assert "| deploy | `prod/ns/Deployment/web` | `sha256:000000000000` → `sha256:000000000000` | runs d1 -> d2 |" \
        in text


# --- a large plan -------------------------------------------------------------------------------

def large_plan(deletions: int = 1200, policies: int = 3, repositories: int = 4) -> Plan:
    """``deletions`` prunes (one tag each, in shuffled order) spread over policies and repositories,
    with 20 keeps per repository, a blocked policy and an error."""
    actions: list[Action] = []
    for n in range(deletions):
        k = (n * 7919) % deletions  # not in tag order, nor digest order
        policy, repository = f"RetentionPolicy/team-{k % policies}", f"repo-{k % repositories}"
        actions.append(Action(policy, "prune", f"ci/{repository}@{digest(k)}", digest(k), None,
                              f"no keep rule matches build-{k} (keep[0]: '^v(\\d+)$')", (f"build-{k}",)))
    for p in range(policies):
        for r in range(repositories):
            actions += [Action(f"RetentionPolicy/team-{p}", "keep", f"ci/repo-{r}:v{n}", digest(10_000 + n),
                               digest(10_000 + n), "keep[0]: matches '^v(\\d+)$'") for n in range(20)]
    actions.append(Action("RetentionPolicy/zz-blocked", "blocked", "ci", reason="over maxDeletions: 500 > 100",
                          block="over-limit"))
    return make_plan("policies", "abc", "t", actions, ["registry other could not be read"])


def shown_deletions(text: str) -> dict[tuple[str, str], list[str]]:
    """(policy, repository) -> the tags of the prune rows shown, in order."""
    found: dict[tuple[str, str], list[str]] = {}
    policy = repository = ""
    for line in text.splitlines():
        if m := re.match(r"<details><summary>([^:]+):", line):
            policy = m.group(1)
        elif m := re.match(r"#### `([^`]+)`", line):
            repository = m.group(1)
        elif line.startswith("| prune |"):
            found.setdefault((policy, repository), []).append(line.split("`")[1])
    return found


def test_a_large_plan_fits_github_keeps_every_section_and_counts_what_it_leaves_out() -> None:
    plan = large_plan()
    text = to_markdown(plan)
    assert len(text) <= MARKDOWN_LIMIT
    assert re.findall(r"<details><summary>([^:]+):", text) == sorted(plan.by_policy())  # every policy
    assert text.count("<details>") == text.count("</details>")
    assert "- ⛔ `RetentionPolicy/zz-blocked` `ci`: over maxDeletions" in text
    assert "- ⚠️ registry other could not be read" in text
    shown = shown_deletions(text)
    assert len(shown) == 12  # every repository of every policy shows some of its deletions
    tags = [t for ts in shown.values() for t in ts]
    assert len(tags) == len(set(tags)) < 1200  # once each, and not all fit
    for listed in shown.values():
        assert listed == sorted(listed, key=tag_order)  # tag order, not digest order
    keeps = re.findall(r"- 20 kept \(one row each in the JSON plan\)", text)
    assert len(keeps) == 12 and "\n| keep |" not in text  # space is short: keeps are counted per repository
    not_shown = 1200 + 240 - len(tags) - 240
    assert text.rstrip().endswith(f"_… {not_shown} actions not shown; {FULL_PLAN_HINT}._")
    per_policy = sum(int(n) for n in re.findall(r"_… (\d+) more actions? of this policy not shown_", text))
    assert per_policy == not_shown


def test_a_large_plan_under_gitlabs_limit_shows_everything_once() -> None:
    text = to_markdown(large_plan(), limit=GITLAB_MARKDOWN_LIMIT)
    assert "actions not shown" not in text
    shown = shown_deletions(text)
    tags = [t for ts in shown.values() for t in ts]
    assert sorted(tags, key=tag_order) == [f"build-{k}" for k in range(1200)]  # each once
    for listed in shown.values():
        assert listed == sorted(listed, key=tag_order)
    assert text.count("\n| keep |") == 240


@pytest.mark.parametrize("limit", [500, 2_000, 10_000, 30_000, 65_536])
def test_any_limit_is_kept(limit: int) -> None:
    text = to_markdown(large_plan(), limit=limit)
    assert len(text) <= limit
    assert "actions not shown" in text


def test_a_plan_that_fits_is_not_cut_and_keeps_show_one_row_each() -> None:
    text = to_markdown(large_plan(deletions=30, policies=1, repositories=2))
    assert "actions not shown" not in text and text.count("\n| keep |") == 40 and text.count("\n| prune |") == 30
