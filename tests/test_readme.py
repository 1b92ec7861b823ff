"""The README's two commands are the project's front door: keep them true."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import git

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [block.strip() for block in blocks[:2]]


def test_readme_opens_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    quickstart, tests = readme_commands()
    assert text.index(quickstart) < text.index(tests) < text.index("---")
    assert "reconcile validate --repo policies" in quickstart
    assert "apt-get install -y" in tests and "pytest" in tests and "ruff check" in tests


def test_ci_runs_exactly_the_readme_test_command() -> None:
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
             if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert lines == [readme_commands()[1]]


def test_quickstart_command_works_on_a_fresh_clone(tmp_path: Path) -> None:
    """Paste the first command into a shell in a fresh clone of what is committed or staged."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True, text=True).stdout.split()
    clone = tmp_path / "reconcile"
    for name in files:
        if (ROOT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
    repo = git.Repo.init(clone)
    with repo.config_writer() as config:
        config.set_value("user", "name", "test").set_value("user", "email", "test@example.com")
    repo.git.add(A=True)
    repo.index.commit("fresh clone")
    run = subprocess.run(["bash", "-c", readme_commands()[0]], cwd=clone, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"valid: 10 documents (3 Registry, 2 Cluster, 1 RetentionPolicy, 1 PromotionPolicy, 3 DeployPolicy) " \
           f"at commit {repo.head.commit.hexsha[:12]}" in run.stderr
