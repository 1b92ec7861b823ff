"""The package type-checks: mypy, configured in pyproject.toml ([tool.mypy]: strict for
reconcile.policy and reconcile.plan), reports no error on every test run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_finds_no_type_errors() -> None:
    mypy = shutil.which("mypy", path=str(Path(sys.executable).parent)) or shutil.which("mypy")
    assert mypy, "mypy is not installed (pip install -e '.[test]')"
    # The files checked come from pyproject.toml; the incremental cache is the default .mypy_cache.
    result = subprocess.run([mypy], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
