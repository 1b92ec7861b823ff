"""`reconcile validate` on a git repo-of-record whose policy is indented with a tab: the file, line
and column, and what to do, in every format."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from reconcile.cli import cli
from tests.repos import policy_repo

POLICY = "apiVersion: reconcile/v1\nkind: Registry\nmetadata: {name: ci}\nspec:\n\turl: https://ci.example.com\n"
MESSAGE = "tabs are not allowed for indentation in YAML; use spaces"


def test_a_tab_indented_policy_names_file_line_column_and_the_fix(tmp_path: Path) -> None:
    root = policy_repo(tmp_path / "policies", {"registry.yaml": POLICY}, "a tab")
    where = f"{root}/registry.yaml"
    runner = CliRunner()

    text = runner.invoke(cli, ["validate", "--repo", str(root)])
    assert text.exit_code == 1
    assert text.stdout == f"{where}:5:1: {MESSAGE}\n"
    assert "cannot start any token" not in text.output

    as_json = runner.invoke(cli, ["validate", "--repo", str(root), "--format", "json"])
    assert json.loads(as_json.stdout)["problems"] == [
        {"path": where, "line": 5, "column": 1, "subject": None, "severity": "error", "message": MESSAGE}]

    github = runner.invoke(cli, ["validate", "--repo", str(root), "--format", "github"])
    assert github.stdout == f"::error file={where},line=5,col=1::{MESSAGE}\n"
