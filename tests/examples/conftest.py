from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import RunningRegistry, start_registry, stop


@pytest.fixture
def registries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., dict[str, RunningRegistry]]]:
    """``registries("ci", "prod")``: one fresh docker-registry per name, so an example's fixed
    repository names never meet another test's."""
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    started: list[RunningRegistry] = []

    def start(*names: str) -> dict[str, RunningRegistry]:
        for name in names:
            started.append(start_registry(tmp_path / "registries", name))
        return {r.name: r for r in started}

    yield start
    for registry in started:
        stop(registry)
