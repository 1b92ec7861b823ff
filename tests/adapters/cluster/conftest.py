"""Cluster scenarios run against the API-server fixture, and also against a real cluster when
``RECONCILE_TEST_KUBECONFIG`` names a cluster-admin kubeconfig."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adapters.cluster.backends import Backend, FixtureBackend, RealBackend
from tests.kube import ApiServer, running

REAL_KUBECONFIG = os.environ.get("RECONCILE_TEST_KUBECONFIG")
# The one conditional of these tests: a configured real cluster joins the fixture as a backend.
BACKENDS = ["fixture", *(["real"] if REAL_KUBECONFIG else [])]


@pytest.fixture
def api() -> Iterator[ApiServer]:
    with running() as server:
        yield server


@pytest.fixture
def fixture_backend(api: ApiServer, tmp_path: Path) -> Iterator[FixtureBackend]:
    backend = FixtureBackend(api, tmp_path)
    yield backend
    backend.close()


@pytest.fixture(params=BACKENDS)
def kube(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A backend the same scenario runs on: the fixture, and the real cluster when configured."""
    if request.param == "real":
        backend: Backend = RealBackend(Path(REAL_KUBECONFIG or ""), tmp_path)
        try:
            yield backend
        finally:
            backend.close()
        return
    with running() as server:
        backend = FixtureBackend(server, tmp_path)
        yield backend
        backend.close()
