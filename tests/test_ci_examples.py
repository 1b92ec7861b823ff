"""The CI recipes in examples/ci (and the one README shows) parse, and every ``reconcile`` command
they run is one the command line accepts, with those options and values."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from reconcile.cli import cli

ROOT = Path(__file__).resolve().parents[1]
GITHUB = ROOT / "examples" / "ci" / "github-actions.yml"
GITLAB = ROOT / "examples" / "ci" / "gitlab-ci.yml"
_STOP = {">", ">>", "|", "||", "&&", ";", "2>&1", ")"}


def load(path: Path) -> dict[Any, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict)
    return document


def github_scripts(workflow: dict[str, Any]) -> list[str]:
    return [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]


def gitlab_scripts(pipeline: dict[str, Any]) -> list[str]:
    return [line for job in pipeline.values() if isinstance(job, dict)
            for part in ("before_script", "script") for line in job.get(part, [])]


def readme_workflow() -> dict[str, Any]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Pull requests in CI"):]
    block = re.search(r"```yaml\n(.*?)```", section, flags=re.S)
    assert block is not None
    document = yaml.safe_load(block[1])
    assert isinstance(document, dict)
    return document


def invocations(scripts: list[str]) -> list[list[str]]:
    """The argument lists of every ``reconcile`` (or ``.venv/bin/reconcile``) the scripts run."""
    found = []
    for script in scripts:
        for line in script.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            for i, word in enumerate(words):
                if word.rsplit("/", 1)[-1] == "reconcile":
                    args = []
                    for arg in words[i + 1:]:
                        if arg in _STOP:
                            break
                        if arg.endswith(";"):  # `reconcile x y; next`
                            args.append(arg[:-1])
                            break
                        args.append(arg)
                    found.append(args)
    return found


def parse(args: list[str], where: Path) -> tuple[str, dict[str, Any]]:
    """Parse ``args`` as the command line would (without running it), in ``where`` with the files it
    names present; the command's name and its parameters."""
    for arg in args:
        if arg.endswith((".json", ".md")):
            (where / arg).parent.mkdir(parents=True, exist_ok=True)
            (where / arg).touch()
    previous = os.getcwd()
    os.chdir(where)
    try:
        group = click.Context(cli, info_name="reconcile")
        name, rest = args[0], args[1:]  # the recipes put no option before the command's name
        command = cli.get_command(group, name)
        if command is None:
            raise click.UsageError(f"no such command {name!r}")
        with command.make_context(name, rest, parent=group) as ctx:
            return name, dict(ctx.params)
    finally:
        os.chdir(previous)


@pytest.mark.parametrize("recipe", ["github", "gitlab", "readme"])
def test_every_reconcile_command_in_the_recipes_exists(recipe: str, tmp_path: Path) -> None:
    if recipe == "github":
        scripts = github_scripts(load(GITHUB))
    elif recipe == "gitlab":
        scripts = gitlab_scripts(load(GITLAB))
    else:
        scripts = github_scripts(readme_workflow())
    commands: dict[str, list[dict[str, Any]]] = {}
    for args in invocations(scripts):
        try:
            name, params = parse(args, tmp_path)
        except click.UsageError as e:  # pragma: no cover - the failure message
            pytest.fail(f"{recipe}: reconcile {' '.join(args)}: {e.format_message()}")
        commands.setdefault(name, []).append(params)
    plan = [p for p in commands["plan"] if p["output"] == "markdown"]
    assert plan and all(p["out"] == "plan.json" and p["detailed_exitcode"] for p in plan)
    assert commands["comment"] and all(p["markdown"] == "plan.md" for p in commands["comment"])
    if recipe != "readme":
        assert [p["saved"] for p in commands["apply"]] in (["saved/plan.json"], ["plan.json"])
        assert all(p["yes"] for p in commands["apply"])
        assert set(commands) == {"plan", "comment", "apply"}


def test_the_comment_command_has_the_options_the_recipes_rely_on() -> None:
    result = CliRunner().invoke(cli, ["comment", "--help"])
    assert result.exit_code == 0
    for option in ("--key", "--github", "--gitlab", "--author", "--api-url"):
        assert option in result.output


def test_the_github_workflow_plans_pull_requests_from_the_default_branch_and_applies_on_push() -> None:
    workflow = load(GITHUB)
    triggers = workflow[True]  # YAML 1.1 reads `on` as true
    assert set(triggers) == {"pull_request_target", "push"}
    assert triggers["push"] == {"branches": ["main"]}
    assert workflow["permissions"] == {"contents": "read"}
    plan, apply = workflow["jobs"]["plan"], workflow["jobs"]["apply"]
    assert plan["permissions"]["pull-requests"] == "write" and "actions" not in plan["permissions"]
    assert apply["permissions"]["actions"] == "read" and "write" not in apply["permissions"].values()
    for job in (plan, apply):  # the workflow's own ref is checked out, never the pull request's head
        checkout = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/checkout@")]
        assert len(checkout) == 1 and "ref" not in checkout[0].get("with", {})
        assert checkout[0]["with"]["persist-credentials"] is False
    upload = [s for s in plan["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert len(upload) == 1
    name = upload[0]["with"]["name"]
    assert name == "reconcile-plan-pr-${{ github.event.pull_request.number }}"
    assert "plan.json" in upload[0]["with"]["path"]
    fetch = "\n".join(github_scripts({"jobs": {"apply": apply}}))
    assert "actions/artifacts?name=reconcile-plan-pr-$number" in fetch
    assert 'gh run download "$run" --name "reconcile-plan-pr-$number"' in fetch
    assert 'git diff --quiet "$planned" "$GITHUB_SHA"' in fetch
    comment = [s for s in plan["steps"] if "reconcile comment" in s.get("run", "")]
    assert comment[0]["env"] == {"GITHUB_TOKEN": "${{ github.token }}"}


def test_the_gitlab_pipeline_plans_merge_requests_and_applies_on_the_default_branch() -> None:
    pipeline = load(GITLAB)
    plan, fetch, apply = pipeline["plan"], pipeline["fetch-plan"], pipeline["apply"]
    assert [r["if"] for r in plan["rules"]] == ['$CI_PIPELINE_SOURCE == "merge_request_event"']
    for job in (fetch, apply):
        assert [r["if"] for r in job["rules"]] == ['$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && '
                                                   '$CI_PIPELINE_SOURCE == "push"']
    assert "plan.json" in plan["artifacts"]["paths"]
    assert apply["needs"] == ["fetch-plan"] and "plan.json" in fetch["artifacts"]["paths"]
    assert pipeline["stages"] == ["plan", "fetch", "apply"]
    script = "\n".join(fetch["script"])
    assert "jobs/artifacts/refs%2Fmerge-requests%2F$iid%2Fhead/raw/plan.json?job=plan" in script
    assert 'git diff --quiet "$planned" "$CI_COMMIT_SHA"' in script
    # The comment's token is a project access token, never the job token.
    assert "CI_JOB_TOKEN" not in "\n".join(gitlab_scripts(pipeline))
