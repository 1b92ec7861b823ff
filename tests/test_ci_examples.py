"""The CI recipes in examples/ci (and the one README shows) parse, and every ``reconcile`` command
they run is one the command line accepts, with those options and values."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
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


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout.strip()


def _policies(root: Path, keep: str) -> str:
    return f"""\
apiVersion: reconcile/v1
kind: Registry
metadata: {{name: ci}}
spec: {{url: "oci-layout:{root}"}}
---
apiVersion: reconcile/v1
kind: RetentionPolicy
metadata: {{name: ci-cleanup}}
spec:
  registry: ci
  repositories: ["team/app"]
  keep:
    - tags: '{keep}'
"""


def test_the_recipes_flow_plans_a_pull_request_and_applies_that_plan_after_a_squash_merge(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What both recipes do, with git and the real command line: plan at the pull request's head
    with the trusted base, squash-merge (a new commit, the same tree), then apply the saved plan
    at the planned commit. Applying it at the merge commit instead is refused."""
    from tests.adapters.registry.oci import Layout

    for name in ("RECONCILE_REPO", "RECONCILE_REF", "RECONCILE_TRUSTED_REF", "RECONCILE_TRUST_REF_CONNECTIONS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    registry = tmp_path / "registry"
    layout = Layout(registry / "team" / "app")
    for i, tag in enumerate(("v1", "build-1", "build-2"), 1):
        layout.tag(layout.image(created=f"2026-11-0{i}T00:00:00Z"), tag)
    origin, seed = tmp_path / "origin.git", tmp_path / "seed"
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    _git(tmp_path, "init", "-q", "-b", "main", str(seed))
    (seed / "policies.yaml").write_text(_policies(registry, ".*"))  # main keeps everything
    _git(seed, "add", "policies.yaml")
    _git(seed, "commit", "-q", "-m", "policies")
    _git(seed, "push", "-q", str(origin), "main")
    _git(seed, "checkout", "-q", "-b", "pr")
    (seed / "policies.yaml").write_text(_policies(registry, "^v\\d+$"))  # the pull request prunes builds
    _git(seed, "commit", "-q", "-am", "prune builds")
    _git(seed, "push", "-q", str(origin), "pr:refs/pull/1/head")

    # The plan job: a checkout of the default branch, the pull request's commit fetched.
    plan_job = tmp_path / "plan-job"
    _git(tmp_path, "clone", "-q", str(origin), str(plan_job))
    _git(plan_job, "fetch", "-q", "--no-tags", "origin", "+refs/pull/1/head:refs/remotes/pr/head")
    pr_sha = _git(plan_job, "rev-parse", "refs/remotes/pr/head")
    with monkeypatch.context() as here:
        here.chdir(plan_job)
        planned = CliRunner().invoke(cli, ["plan", "--repo", ".", "--ref", pr_sha, "--trusted-ref",
                                           "refs/remotes/origin/main", "--format", "markdown", "--out", "plan.json",
                                           "--detailed-exitcode"])
    assert planned.exit_code == 2, planned.output  # changes to review: not a failure
    assert "build-1" in planned.output
    saved = plan_job / "plan.json"
    assert json.loads(saved.read_text())["commit"] == pr_sha

    # The merge: squashed, so main gets a new commit with the pull request's tree.
    _git(seed, "checkout", "-q", "main")
    _git(seed, "merge", "-q", "--squash", "pr")
    _git(seed, "commit", "-q", "-m", "prune builds (#1)")
    _git(seed, "push", "-q", str(origin), "main")

    # The apply job: a checkout of the merge, the planned commit fetched, the trees compared.
    apply_job = tmp_path / "apply-job"
    _git(tmp_path, "clone", "-q", str(origin), str(apply_job))
    _git(apply_job, "fetch", "-q", "--no-tags", "origin", "+refs/pull/1/head:refs/remotes/pr/head")
    merged = _git(apply_job, "rev-parse", "HEAD")
    assert merged != pr_sha
    assert subprocess.run(["git", "diff", "--quiet", pr_sha, merged], cwd=apply_job).returncode == 0
    common = ["--repo", str(apply_job), "--audit-db", str(tmp_path / "audit.db"), "--lock", "none"]
    naive = CliRunner().invoke(cli, ["apply", "--plan", str(saved), *common, "--yes"])
    assert naive.exit_code == 1
    assert f"it was made at commit {pr_sha}, the policies are now at {merged}" in naive.output
    applied = CliRunner().invoke(cli, ["apply", "--plan", str(saved), "--ref", pr_sha, "--trusted-ref",
                                       "refs/remotes/origin/main", "--max-plan-age", "7d", "--yes", *common])
    assert applied.exit_code == 0, applied.output
    index = json.loads((registry / "team" / "app" / "index.json").read_text())
    tags = sorted(m.get("annotations", {}).get("org.opencontainers.image.ref.name") for m in index["manifests"])
    assert tags == ["v1"]
