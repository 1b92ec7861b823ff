"""Every example repo-of-record validates exactly as shipped, is listed in examples/README.md and
says which pipeline it reproduces; each is planned against real registries in its own test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.examples.harness import EXAMPLES, invoke, seed_examples

SEEDS = {"azure-devops", "gitlab-heroku", "werf-cleanup", "watchtower-follow", "kubectl-rollback"}


def test_one_example_per_seed_pipeline() -> None:
    assert set(seed_examples()) == SEEDS
    index = (EXAMPLES / "README.md").read_text()
    for name in SEEDS:
        assert f"[`{name}/`]({name}/)" in index, name
        assert (EXAMPLES / name / "README.md").is_file(), name
        assert Path(__file__).with_name(f"test_{name.replace('-', '_')}.py").is_file(), name


@pytest.mark.parametrize("example", sorted(SEEDS))
def test_the_example_validates_as_shipped(tmp_path: Path, example: str) -> None:
    copy = shutil.copytree(EXAMPLES / example, tmp_path / example)  # a plain directory, as a user's checkout
    result = invoke("validate", "--repo", str(copy))
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output.lower(), result.output
