"""Faults in the middle of an apply, against the real docker-registry behind a fault-injecting
proxy, with ``reconcile`` as its own process: killed at each step, a 500 on a DELETE, a 429 storm
with Retry-After in seconds and as an HTTP date. Each asserts the exit status, the audit rows and
what the registry still holds; and that a plain re-run converges, deleting nothing kept."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path

import pytest

from reconcile.audit import AuditStore
from tests.adapters.registry.faults import FaultProxy
from tests.adapters.registry.oci import Layout, push
from tests.apply.test_retention_end_to_end import policies, tags
from tests.conftest import RunningRegistry

KEPT = ["v1", "v2"]
BUILDS = [f"build-{n}" for n in range(1, 6)]  # five digests, each pruned by its own DELETE
DELETE = r"/manifests/sha256:"


@pytest.fixture
def world(tmp_path: Path, plain_registry: RunningRegistry, repo: str,
          proxy_factory: Callable[..., FaultProxy]) -> dict[str, object]:
    layout = Layout(tmp_path / "layout")
    for day, tag in enumerate([*KEPT, *BUILDS], 1):
        layout.tag(layout.image(created=f"2026-11-{day:02d}T00:00:00Z"), tag)
        push(layout, tag, plain_registry.host, repo)
    proxy = proxy_factory(plain_registry.url)
    root = policies(tmp_path, None, repo, url=proxy.url, spec="concurrency: 1, retry: {attempts: 4, budget: 30s}")
    return {"proxy": proxy, "registry": plain_registry, "repo": repo, "root": root, "db": tmp_path / "audit.db",
            "cache": tmp_path / "cache"}


def start(world: dict[str, object], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "reconcile", *args, "--repo", str(world["root"]),
                             "--audit-db", str(world["db"])], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "RECONCILE_CACHE_DIR": str(world["cache"])})


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    _, err = process.communicate(timeout=120)
    return process.returncode, err


def rows(world: dict[str, object]) -> list[tuple[str, str]]:
    with AuditStore.open(str(world["db"]), read_only=True) as store:
        return [(r["kind"], r["status"]) for r in store.conn.execute("SELECT kind, status FROM actions ORDER BY seq")]


def converges(world: dict[str, object]) -> str:
    """A plain re-run: exit 0, only the kept tags left, a verified trail; its stderr."""
    status, err = finish(start(world, "apply", "--yes"))
    assert status == 0, err
    assert tags(world["registry"], world["repo"]) == KEPT  # type: ignore[arg-type]
    with AuditStore.open(str(world["db"]), read_only=True) as store:
        assert store.verify().ok
    return err


@pytest.mark.parametrize("step", range(1, len(BUILDS) + 1))
def test_killed_at_each_delete_then_a_re_run_converges(world: dict[str, object], step: int) -> None:
    """SIGKILL while the step-th DELETE is in flight (the registry carries it out after reconcile
    died, so its outcome is never recorded): the steps before it are recorded as done, the trail
    has one pending intent, and the next run reports it and finishes the job."""
    proxy: FaultProxy = world["proxy"]  # type: ignore[assignment]
    if step > 1:
        proxy.inject(DELETE, "delay", method="DELETE", delay=0.0, times=step - 1)
    proxy.inject(DELETE, "delay", method="DELETE", delay=1.5, times=1)
    process = start(world, "apply", "--yes")
    deadline = time.monotonic() + 60
    while sum(r.method == "DELETE" for r in proxy.requests) < step:
        assert process.poll() is None and time.monotonic() < deadline, finish(process)
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert finish(process)[0] == -signal.SIGKILL
    time.sleep(2)  # the request in flight reaches the registry after all

    assert rows(world) == [("prune", "intent"), ("prune", "succeeded")] * (step - 1) + [("prune", "intent")]
    assert set(KEPT) <= set(tags(world["registry"], world["repo"]))  # type: ignore[arg-type]
    err = converges(world)
    assert "never finished" in err and "1 intent without outcome" in err


def test_a_500_on_a_delete_fails_that_change_only_and_a_re_run_converges(world: dict[str, object]) -> None:
    proxy: FaultProxy = world["proxy"]  # type: ignore[assignment]
    proxy.inject(DELETE, "delay", method="DELETE", delay=0.0, times=1)
    proxy.inject(DELETE, "status", method="DELETE", status=500, times=1)  # a DELETE is not retried: it failed
    status, err = finish(start(world, "apply", "--yes"))
    assert status == 1, err
    assert "failed: prune ci/" in err and "applied 4 of 5 changes" in err
    assert [kind_status for kind_status in rows(world) if kind_status[1] != "intent"].count(("prune", "failed")) == 1
    left = tags(world["registry"], world["repo"])  # type: ignore[arg-type]
    assert len(set(left) - set(KEPT)) == 1  # the one whose delete failed, still there
    with AuditStore.open(str(world["db"]), read_only=True) as store:
        assert store.runs()[0].outcome == "partial"
    converges(world)


@pytest.mark.parametrize("retry_after", ["1", "http-date"])
def test_a_429_storm_is_waited_out_as_the_registry_asks(world: dict[str, object], retry_after: str) -> None:
    proxy: FaultProxy = world["proxy"]  # type: ignore[assignment]
    value = formatdate(time.time() + 1, usegmt=True) if retry_after == "http-date" else retry_after
    proxy.inject(r"/tags/list", "status", status=429, headers={"Retry-After": value}, times=2)
    proxy.inject(DELETE, "status", method="DELETE", status=429, headers={"Retry-After": value}, times=2)
    started = time.monotonic()
    status, err = finish(start(world, "apply", "--yes"))
    assert status == 0, err
    assert time.monotonic() - started >= 1.0  # it waited, as asked, rather than hammering
    assert tags(world["registry"], world["repo"]) == KEPT  # type: ignore[arg-type]
    assert sum(r.method == "DELETE" for r in proxy.requests) == len(BUILDS) + 2
    planned = start(world, "plan", "--format", "json")
    out, _ = planned.communicate(timeout=120)
    assert not [a for a in json.loads(out)["actions"] if a["mutates"]]
