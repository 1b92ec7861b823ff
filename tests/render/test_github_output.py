"""`reconcile plan --format github` (or --github-step-summary): the markdown plan appended to
$GITHUB_STEP_SUMMARY within its 1 MiB, workflow annotations for what could not be decided, blocked
actions and warnings (at most 10 of a level, then a notice), GitHub's workflow-command escaping; the
same exit codes as every other format. And ``plan_markdown``'s connection review within the limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconcile.cli import cli
from reconcile.cli.pullrequest import github_output, plan_annotations, plan_markdown, step_summary, workflow_command
from reconcile.plan.actions import Action
from reconcile.plan.plan import make_plan
from reconcile.policy.model import ConnectionChange, PolicySet
from reconcile.render.plan import STEP_SUMMARY_LIMIT
from tests.adapters.registry.oci import Layout, push
from tests.conftest import RunningRegistry

NO_CHANGES = PolicySet("policies", None)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def write_policies(tmp_path: Path, url: str, repository: str) -> Path:
    root = tmp_path / "policies"
    root.mkdir()
    (root / "ci.yaml").write_text(f"""\
apiVersion: reconcile/v1
kind: Registry
metadata: {{name: ci}}
spec: {{url: "{url}"}}
---
apiVersion: reconcile/v1
kind: RetentionPolicy
metadata: {{name: ci-cleanup}}
spec:
  registry: ci
  repositories: ["{repository}"]
  keep:
    - tags: '^v\\d+$'
""")
    return root


@pytest.mark.parametrize(("level", "message", "title", "command"), [
    ("error", "plain", None, "::error::plain"),
    ("error", "100% sure\r\nnext line", "a: b, c", "::error title=a%3A b%2C c::100%25 sure%0D%0Anext line"),
    ("warning", "::stop-commands::x\n::error::injected", None, "::warning::::stop-commands::x%0A::error::injected"),
    ("notice", "a,b:c", "t%", "::notice title=t%25::a,b:c"),  # ':' and ',' are escaped in properties only
])
def test_workflow_commands_are_escaped(level: str, message: str, title: str | None, command: str) -> None:
    assert workflow_command(level, message, title) == command
    assert "\n" not in workflow_command(level, message, title)


def test_annotations_are_capped_at_ten_per_level_and_the_rest_counted() -> None:
    blocked = [Action(f"RetentionPolicy/p{n:02}", "blocked", "ci", reason=f"registry ci unreadable {n}",
                      block="unreadable") for n in range(13)]
    gated = [Action("PromotionPolicy/web", "blocked", f"ci/web:s{n}", reason="soak", block="gate") for n in range(3)]
    plan = make_plan("p", None, "t", blocked + gated, ["registry ci could not be read: 403"], warnings=["w"])
    lines = plan_annotations(plan, NO_CHANGES)
    errors = [line for line in lines if line.startswith("::error ")]
    warnings = [line for line in lines if line.startswith("::warning ")]
    assert len(errors) == 10 and errors[0] == "::error title=reconcile plan%3A could not be decided::registry ci " \
                                             "could not be read: 403"
    assert errors[1] == "::error title=RetentionPolicy/p00 blocked::ci: registry ci unreadable 0"
    assert len(warnings) == 4 and warnings[-1] == "::warning title=reconcile plan%3A warning::w"
    assert "::notice::4 more errors not shown as annotations; the step summary and the JSON plan list them all" \
        in lines
    assert not any("more warning" in line for line in lines)


def test_a_connection_review_stays_first_and_within_the_limit() -> None:
    changes = tuple(ConnectionChange("Registry", f"r{n}", "changed", (f"url https://a{n} → https://b{n}",),
                                     "not used by this plan: the trusted ref's is") for n in range(300))
    policies = PolicySet("policies", "c", trusted_ref="origin/main", trusted_commit="0" * 40,
                         connection_changes=changes)
    plan = make_plan("p", None, "t", [Action("RetentionPolicy/ci", "prune", f"ci/web@sha256:{n:064x}",
                                             f"sha256:{n:064x}", None, "expired", (f"b-{n}",)) for n in range(2000)])
    for limit in (5_000, 20_000, 65_536):
        text = plan_markdown(plan, policies, limit=limit)
        assert len(text) <= limit
        assert text.startswith("### ⚠️ Connection changes (not used by this plan): 300")
        assert "### reconcile plan: 2000 changes" in text and "actions not shown" in text
    assert "more connection changes not shown" in plan_markdown(plan, policies, limit=5_000)


def test_the_step_summary_is_appended_within_what_is_left_of_one_mib(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("x" * (STEP_SUMMARY_LIMIT - 50_000))  # an earlier command of the step wrote most of it
    plan = make_plan("p", None, "t", [Action("RetentionPolicy/ci", "prune", f"ci/web@sha256:{n:064x}",
                                             f"sha256:{n:064x}", None, "expired ✓", (f"b-{n}",)) for n in range(3000)])
    step_summary(plan, NO_CHANGES, summary)
    text = summary.read_text()
    assert len(text.encode()) <= STEP_SUMMARY_LIMIT
    assert text.startswith("x" * 100) and "### reconcile plan: 3000 changes" in text and "actions not shown" in text


def test_a_step_summary_that_cannot_be_written_is_a_warning_and_the_plan_is_printed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path))  # a directory
    plan = make_plan("p", None, "t", [Action("RetentionPolicy/ci", "keep", "ci/web:v1", reason="keep[0]")])
    lines = github_output(plan, NO_CHANGES).splitlines()
    assert lines[0].startswith(f"::warning::could not write the step summary {tmp_path}: ")
    assert lines[1] == "reconcile plan: no changes: 1 kept" and "### reconcile plan: no changes: 1 kept" in lines


def test_format_github_writes_the_step_summary_and_annotates_what_is_blocked(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    layout = Layout(tmp_path / "layout")
    for i, tag in enumerate(("v1", "build-10", "build-9"), 1):
        layout.tag(layout.image(created=f"2026-11-0{i}T00:00:00Z"), tag)
        push(layout, tag, plain_registry.host, repo)
    common = ["plan", "--repo", str(write_policies(tmp_path, plain_registry.url, repo)),
              "--audit-db", str(tmp_path / "audit.db")]
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    result = invoke(*common, "--format", "github", "--detailed-exitcode")
    assert result.exit_code == 2, result.output  # as with every other format
    assert result.stdout.splitlines() == ["reconcile plan: 2 changes: 2 to prune, 1 kept (the plan is in the step "
                                          "summary)"]
    text = summary.read_text()
    assert text.startswith("earlier\n\n### reconcile plan: 2 changes: 2 to prune, 1 kept\n")
    rows = [line.split("`")[1] for line in text.splitlines() if line.startswith("| prune |")]
    assert rows == ["build-9", "build-10"]  # tag order
    assert text.rstrip().endswith("| keep\\[0\\]: matches '^v\\\\d+$' |\n\n</details>")  # the regex as written

    again = invoke(*common, "--github-step-summary")
    assert again.exit_code == 0 and summary.read_text().count("### reconcile plan:") == 2  # appended
    markdown = invoke(*common, "--format", "markdown", "--detailed-exitcode")
    assert markdown.exit_code == 2 and markdown.stdout == text.removeprefix("earlier\n\n")


def test_format_github_annotates_an_unreadable_registry_and_exits_1(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)  # outside Actions: the markdown is printed
    common = ["plan", "--repo", str(write_policies(tmp_path, "http://127.0.0.1:9", "team-a/web")),
              "--audit-db", str(tmp_path / "audit.db")]
    result = invoke(*common, "--format", "github", "--detailed-exitcode")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("::error title=reconcile plan%3A could not be decided::registry ci could not be read")
    assert any(line.startswith("::error title=RetentionPolicy/ci-cleanup blocked::") for line in lines)
    assert "**⚠️ Could not be decided:**" in result.stdout and "**🚫 Blocked:**" in result.stdout
    for fmt in ("markdown", "json", "rich"):
        assert invoke(*common, "--format", fmt, "--detailed-exitcode").exit_code == 1


def test_the_markdown_limit_option_and_its_environment_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    common = ["plan", "--repo", str(write_policies(tmp_path, "http://127.0.0.1:9", "team-a/web")),
              "--audit-db", str(tmp_path / "audit.db"), "--format", "markdown"]
    assert "--markdown-limit" in invoke("plan", "--help").stdout
    refused = CliRunner().invoke(cli, [*common, "--markdown-limit", "10"])
    assert refused.exit_code == 2 and "10 is not in the range x>=1000" in refused.output
    monkeypatch.setenv("RECONCILE_MARKDOWN_LIMIT", "nope")
    assert CliRunner().invoke(cli, common).exit_code == 2
    monkeypatch.setenv("RECONCILE_MARKDOWN_LIMIT", "1000")
    result = invoke(*common)
    assert result.exit_code == 1 and len(result.stdout) <= 1000 and "### reconcile plan:" in result.stdout
