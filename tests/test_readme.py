"""The README's two commands are the project's front door: keep them true."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import git
import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [block.strip() for block in blocks[:2]]


def test_readme_opens_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    quickstart, tests = readme_commands()
    assert text.index(quickstart) < text.index(tests) < text.index("---")
    assert quickstart.endswith(".venv/bin/reconcile quickstart")
    assert "apt-get install -y" in tests and "pytest" in tests and "ruff check" in tests


def test_ci_runs_exactly_the_readme_test_command() -> None:
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
             if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert lines == [readme_commands()[1]]


def test_quickstart_command_works_on_a_fresh_clone(tmp_path: Path) -> None:
    """Paste the first command into a shell in a fresh clone of what is committed or staged: it
    builds the sandbox, walks through it, and what it prints next works when pasted too."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True, text=True).stdout.split()
    clone = tmp_path / "reconcile"
    for name in files:
        # A sandbox the first command left in this work tree is no part of a fresh clone.
        if (ROOT / name).is_file() and not name.startswith("reconcile-quickstart/"):
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
    repo = git.Repo.init(clone)
    with repo.config_writer() as config:
        config.set_value("user", "name", "test").set_value("user", "email", "test@example.com")
    repo.git.add(A=True)
    repo.index.commit("fresh clone")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILE_")}
    run = subprocess.run(["bash", "-c", readme_commands()[0]], cwd=clone, capture_output=True, text=True,
                         timeout=900, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    sandbox = clone / "reconcile-quickstart"
    policies = git.Repo(sandbox / "policies").head.commit.hexsha
    assert "$ ../.venv/bin/reconcile validate --repo policies\n" \
           "valid: 8 documents (3 Registry, 1 Cluster, 1 RetentionPolicy, 1 PromotionPolicy, 2 DeployPolicy) " \
           f"at commit {policies[:12]}" in out
    applied = re.findall(r"^applied (\d+) of (\d+) changes\naudit: run (\S+) (?:succeeded|blocked); chain head "
                         r"([0-9a-f]{64})$",
                         out, re.M)
    assert [(run[0], run[1]) for run in applied] == [("16", "16"), ("2", "2"), ("1", "1")], out
    rolled_back = re.search(r"^audit: run (\S+) succeeded; chain head ([0-9a-f]{64})\nrolled prod-web back from 126 "
                            r"\(sha256:\w+\) to 124 \(sha256:\w+\): committed \w+ to main; ", out, re.M)
    assert rolled_back, out
    assert re.search(rf"^ok: \d+ entries, head {rolled_back[2]}$", out, re.M)
    assert "\n$ git -C manifests.git log --oneline\n" in out
    done = out[out.index("Done: "):]
    assert done.startswith("Done: validate, plan, apply (three runs: retention, promotion and deploy), rollback and "
                           "audit ran in reconcile-quickstart/. Try next:\n")
    assert f"../.venv/bin/reconcile audit show {applied[0][2]} --audit-db audit.db\n" in done
    again = next(line.strip() for line in done.splitlines() if "--detailed-exitcode" in line)
    pasted = subprocess.run(["bash", "-c", f'export RECONCILE_CACHE_DIR="$PWD/cache"; {again}'], cwd=sandbox,
                            capture_output=True, text=True, timeout=120, env=env)
    assert pasted.stdout.rstrip().endswith("exit status 0"), pasted.stdout + pasted.stderr


def test_the_python_library_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The README's Python example, as written, against the quickstart's sandbox: it plans, applies
    that plan and prints the recorded run."""
    from datetime import UTC, datetime

    from reconcile.quickstart.sandbox import build, prepare

    (example,) = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert len(example.strip().splitlines()) <= 12
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    now = datetime.now(UTC)
    prepare(tmp_path / "sandbox", force=False, now=now)
    sandbox = build(tmp_path / "sandbox", now)
    monkeypatch.chdir(tmp_path)
    os.symlink(sandbox.policies, tmp_path / "repo-of-record", target_is_directory=True)
    exec(compile(example.replace("path/to/repo-of-record", "repo-of-record"), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "prune ci/team-a/web@sha256:" in out
    assert re.search(r"^(succeeded|blocked) run-[0-9T]+-[0-9a-f]+ \d+$", out, flags=re.M), out
