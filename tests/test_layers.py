"""The architecture holds: import-linter's contracts in pyproject.toml (the planner pure, the policy
layer reading no world, adapters below the snapshot builders, no click below the CLI, the layers in
order) are checked on every test run."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint, "import-linter is not installed (pip install -e '.[test]')"
    result = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert len(contracts) >= 5 and f"{len(contracts)} kept, 0 broken" in result.stdout


def test_the_planner_loads_no_adapter_network_or_git_library() -> None:
    code = ("import sys, reconcile.plan; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('requests', 'kubernetes', 'git', 'urllib3') or m.startswith(('reconcile.adapters.registry', "
            "'reconcile.adapters.cluster', 'reconcile.policy.source'))))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr
