r"""`validate` warns when a keep rule's order can rank none of the tags its pattern selects: the
policy still loads and runs (such tags are kept), but the fix is named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconcile.cli import cli
from reconcile.policy import validate_repo
from reconcile.policy.ordering import capture_suggestion, number, unrankable_pattern, version_part
from tests.policy.test_validate_rules import BASE, expect, retention


def test_a_group_less_numeric_rule_is_warned_about_with_the_fix(tmp_path: Path) -> None:
    expect(tmp_path, retention("""\
        - tags: '^build-\\d+$'
          last: 5
          order: numeric
        """), r"@:8: warning: RetentionPolicy/r: /spec/keep/0/tags: order numeric compares the whole tag, and no "
              r"tag matching '^build-\d+$' is a number, so every one is kept: add a capture group: '^build-(\d+)$'")


@pytest.mark.parametrize("keep", [
    "- {tags: '^build-(\\d+)$', last: 5, order: numeric}",
    "- {tags: '^\\d+$', last: 5, order: numeric}",
    "- {tags: '^v\\d+\\.\\d+\\.\\d+$', last: 5, order: semver}",
    "- {tags: '^v\\d+\\.\\d+\\.\\d+$', last: 5}",
    "- {tags: '^nightly-', last: 5, order: newest}",
    "- {tags: '^nightly-', last: 5, order: alphabetical}",
])
def test_rules_an_order_can_rank_give_no_warning(tmp_path: Path, keep: str) -> None:
    expect(tmp_path, retention(keep))


def test_a_semver_range_with_a_group_less_pattern_is_warned_about(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "case.yaml").write_text(retention("- {tags: '^release-\\d+\\.\\d+\\.\\d+$', semver: '>=1', last: 3}"))
    result = validate_repo(str(tmp_path))
    assert result.ok and result.policies is not None  # a warning never stops the policies loading
    assert [p.message.split(": ", 1)[1] for p in result.warnings] == [
        "order semver compares the whole tag, and no tag matching '^release-\\d+\\.\\d+\\.\\d+$' is a semantic "
        "version, so every one is kept: add a capture group: '^release-(\\d+\\.\\d+\\.\\d+)$'"]


def test_the_cli_prints_warnings_and_exits_0(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "case.yaml").write_text(retention("- {tags: '^build-\\d+$', last: 5, order: numeric}"))
    text = CliRunner().invoke(cli, ["validate", "--repo", str(tmp_path)])
    assert text.exit_code == 0, text.output
    assert ": warning: RetentionPolicy/r: /spec/keep/0/tags: order numeric" in text.output
    assert "1 warning" in text.output
    github = CliRunner().invoke(cli, ["validate", "--repo", str(tmp_path), "--format", "github"])
    assert github.output.startswith("::warning file=")


@pytest.mark.parametrize(("pattern", "order", "fixed"), [
    (r"^build-\d+$", "numeric", r"^build-(\d+)$"),
    (r"^build-[0-9]+-linux$", "numeric", r"^build-([0-9]+)-linux$"),
    (r"^release-\d+\.\d+\.\d+$", "semver", r"^release-(\d+\.\d+\.\d+)$"),
    (r"^ci-\d{8}-\d+$", "numeric", r"^ci-\d{8}-(\d+)$"),
    (r"^main-[a-f]+$", "numeric", "(?P<version>...)"),
])
def test_the_fix_wraps_the_part_to_compare(pattern: str, order: str, fixed: str) -> None:
    assert capture_suggestion(pattern, order) == fixed


@pytest.mark.parametrize(("text", "value"), [
    ("10", 10), ("010", 10), ("1.5", 1.5), ("1.10", 1.1), ("-3", -3), (".5", 0.5),
    ("1e3", None), ("nan", None), ("1.2.3", None), ("", None), ("build-1", None), ("١٢", None),
])
def test_numbers_are_integers_and_decimals(text: str, value: float | None) -> None:
    parsed = number(text)
    assert (None if parsed is None else float(parsed)) == value


def test_the_key_is_group_version_else_group_1_else_the_tag() -> None:
    assert version_part(re.compile(r"^b-(?P<n>\d+)-(?P<version>\d+)$"), "b-1-2") == "2"
    assert version_part(re.compile(r"^b-(\d+)-(\d+)$"), "b-1-2") == "1"
    assert version_part(re.compile(r"^b-\d+$"), "b-1") == "b-1"
    assert version_part(re.compile(r"^b-\d+$"), "c-1") is None
    assert version_part(None, "c-1") == "c-1"
    assert unrankable_pattern(re.compile(r"^b-(\d+)$"), "numeric") is None  # a group: checked at plan time


def test_retention_on_a_registry_that_cannot_delete_is_a_warning(tmp_path: Path) -> None:
    base = BASE.replace('spec: {url: "https://registry.example.com"}',
                        'spec: {url: "https://registry.example.com", deletion: none}')
    (tmp_path / "base.yaml").write_text(base)
    (tmp_path / "case.yaml").write_text(retention("- {tags: '^v'}"))
    result = validate_repo(str(tmp_path))
    assert result.ok
    assert [p.message for p in result.warnings] == [
        "/spec/registry: Registry 'ci' declares deletion: none, so this policy prunes nothing (every plan reports "
        "it blocked)"]
