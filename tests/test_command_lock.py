"""Commands that change things take turns on one audit trail: `run` gives up at once when another
holds the lock (exit 5, a `locked` run in the trail), `apply`, `rollback` and `release-hold` wait for
it. Beyond the file lock, a Lease that pods on other nodes see: held, renewed, and lost."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconcile.adapters.cluster import ClusterError
from reconcile.audit import AuditStore
from reconcile.cli import LOCKED, cli, session
from reconcile.quickstart.sandbox import Sandbox, build, prepare
from reconcile.reconciler import LockLost, Reconciler
from tests.adapters.registry.faults import FaultProxy
from tests.conftest import RunningRegistry

POLICIES = str(Path(__file__).resolve().parents[1] / "policies")
# Take the lock, say so, hold it a while, and leave a mark just before letting go.
HOLD = ("import fcntl, pathlib, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
        "print('locked', flush=True); time.sleep(float(sys.argv[2])); pathlib.Path(sys.argv[3]).touch(); f.close()")


def test_run_gives_up_and_release_hold_waits_for_the_lock(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    finished = tmp_path / "holder-finished"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, f"{db}.lock", "2", str(finished)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        run = CliRunner().invoke(cli, ["run", "--repo", POLICIES, "--audit-db", str(db)])
        assert run.exit_code == LOCKED == 5
        assert f"another reconcile run holds {db}.lock" in run.output
        assert not finished.exists()  # it did not wait
        with AuditStore.open(str(db), read_only=True) as store:  # and said so in the trail
            (locked,) = store.runs()
            assert (locked.mode, locked.outcome) == ("run", "locked")
        released = CliRunner().invoke(cli, ["release-hold", "prod-web", "--repo", POLICIES, "--audit-db", str(db)])
        assert released.exit_code == 0, released.output
        assert f"waiting for the reconcile command holding {db}.lock to finish" in released.stderr
        assert "DeployPolicy prod-web holds nothing back" in released.stderr
        assert finished.exists()  # it went on only once the holder had let go
    finally:
        holder.kill()
        holder.wait()


class FakeLease:
    """A RunLock as reconcile.adapters.cluster.lease.LeaseLock behaves: ``held`` refuses when
    another holds it, ``check`` raises once it is lost (after ``lost_after`` checks)."""

    def __init__(self, *, holder: str | None = None, lost_after: int | None = None) -> None:
        self.where, self.holder, self.lost_after = "ops/reconcile", holder, lost_after
        self.checks, self.released = 0, False

    @contextmanager
    def held(self) -> Iterator[FakeLease]:
        if self.holder is not None:
            error = ClusterError("prod", f"the Lease ops/reconcile is held by {self.holder}")
            error.holder, error.expires = self.holder, datetime(2026, 12, 3, 12, 0, tzinfo=UTC)  # type: ignore[attr-defined]
            raise error
        try:
            yield self
        finally:
            self.released = True

    def check(self) -> None:
        self.checks += 1
        if self.lost_after is not None and self.checks > self.lost_after:
            raise ClusterError("prod", "renewing the Lease ops/reconcile failed for longer than its 60s")


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    now = datetime.now(UTC)
    prepare(tmp_path / "sandbox", force=False, now=now)
    return build(tmp_path / "sandbox", now)


def test_a_lease_held_elsewhere_is_exit_5_and_a_locked_run(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    lease = FakeLease(holder="reconcile-28812345-abcde_1")
    monkeypatch.setattr(session, "run_lock", lambda setting, shard: lease)
    db = str(sandbox.audit_db)
    result = CliRunner().invoke(cli, ["run", "--repo", str(sandbox.policies), "--audit-db", db])
    assert result.exit_code == 5, result.output
    assert ("another reconcile run holds the Lease ops/reconcile (holder reconcile-28812345-abcde_1 until "
            "2026-12-03T12:00:00Z unless renewed)") in result.stderr
    with AuditStore.open(db, read_only=True) as store:
        (run,) = store.runs()
        assert run.outcome == "locked"
        (row,) = store.conn.execute("SELECT kind, target, reason FROM actions").fetchall()
        assert tuple(row)[:2] == ("skip", "ops/reconcile") and "holder reconcile-28812345" in row[2]


def test_a_lease_lost_mid_run_stops_every_change_after_it(sandbox: Sandbox) -> None:
    lease = FakeLease(lost_after=2)
    db = str(sandbox.audit_db)
    library = Reconciler(str(sandbox.policies), audit_db=db, lock=lease, notice=lambda _message: None)
    planned = library.plan(only="RetentionPolicy/ci-cleanup")
    assert len(planned.changes) > 2
    with pytest.raises(LockLost, match=r"the Lease ops/reconcile was lost: .*no change was made after that"):
        library.run(only="RetentionPolicy/ci-cleanup")
    assert lease.released
    with AuditStore.open(db, read_only=True) as store:
        (run,) = store.runs()
        assert run.outcome == "failed"
        kinds = [tuple(r) for r in store.conn.execute("SELECT kind, status FROM actions ORDER BY seq")]
    # two changes (side by side, in lanes), each with its outcome, then nothing but the error
    assert sorted(kinds[:4]) == [("prune", "intent")] * 2 + [("prune", "succeeded")] * 2
    assert kinds[4:] == [("error", "failed")]
    with AuditStore.open(db, read_only=True) as store:
        done = {r[0] for r in store.conn.execute("SELECT target FROM actions WHERE status = 'succeeded'")}
    assert len(done) == 2
    # the rest is planned again, but for the platform manifests of a pruned index: no tag reaches them now
    replanned = {a.target for a in library.plan(only="RetentionPolicy/ci-cleanup").changes}
    assert not done & replanned
    assert {a.target for a in planned.changes if a.target not in done and a.depends_on not in done} <= replanned


def test_in_a_pod_run_takes_the_pods_lease_and_one_held_elsewhere_is_exit_5(
        sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real Lease on the API-server fixture, as a pod sees it (service-account token and CA
    files, KUBERNETES_SERVICE_HOST): while another pod holds `reconcile` in the pod's namespace, a
    run exits 5 and is recorded locked; once released, a run proceeds, holding it, and releases it."""
    from reconcile.adapters.cluster import LeaseLock
    from reconcile.adapters.cluster.connection import pod_configuration
    from tests.kube import ADMIN, mount_service_account, running
    from tests.kube.server import BY_PLURAL

    db = str(sandbox.audit_db)
    args = ["run", "--repo", str(sandbox.policies), "--audit-db", db, "--only", "RetentionPolicy/ci-cleanup"]
    with running(tls=True) as api:
        api.create_object(BY_PLURAL["namespaces"], None, {"metadata": {"name": "reconcile"}})
        mount_service_account(api, tmp_path / "serviceaccount", ADMIN, monkeypatch)
        other = LeaseLock("reconcile", "reconcile", "reconcile-29012345-other_7", configuration=pod_configuration)
        with other.held():
            refused = CliRunner().invoke(cli, args)
            assert refused.exit_code == LOCKED, refused.output
            assert "another reconcile run holds the Lease reconcile/reconcile (holder reconcile-29012345-other_7" in \
                refused.stderr
        ran = CliRunner().invoke(cli, args)
        assert ran.exit_code == 0, ran.output
        lease = api.get("leases", "reconcile", "reconcile")
    assert lease is not None and lease["spec"]["holderIdentity"] == ""  # released at the end
    assert lease["spec"]["leaseTransitions"] >= 1  # taken over from the other pod's released one
    with AuditStore.open(db, read_only=True) as store:
        assert [run.outcome for run in reversed(store.runs())] == ["locked", "succeeded"]


def test_two_concurrent_runs_in_pods_exactly_one_proceeds(tmp_path: Path, plain_registry: RunningRegistry, repo: str,
                                                         proxy_factory: Callable[..., FaultProxy],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Two `reconcile run` processes as two pods of one CronJob see them (the same service account,
    the API-server fixture): the one that takes the Lease first proceeds, the other exits 5 at once
    and leaves a `locked` run; the Lease is free again afterwards."""
    from tests.adapters.registry.oci import Layout, push
    from tests.apply.test_retention_end_to_end import policies
    from tests.kube import ADMIN, mount_service_account, running
    from tests.kube.server import BY_PLURAL

    layout = Layout(tmp_path / "layout")
    for day, tag in enumerate(("v1", "build-1"), 1):
        layout.tag(layout.image(created=f"2026-11-0{day}T00:00:00Z"), tag)
        push(layout, tag, plain_registry.host, repo)
    proxy = proxy_factory(plain_registry.url)
    proxy.inject(r"/tags/list", "delay", delay=3.0, times=1)  # the first run is slow to observe: they overlap
    root = policies(tmp_path, None, repo, url=proxy.url)
    # Two pods on two nodes: their own volumes, so no file lock in common; the Lease alone keeps them apart.
    command = [sys.executable, "-m", "reconcile", "run", "--repo", str(root), "--audit-db"]
    with running(tls=True) as api:
        api.create_object(BY_PLURAL["namespaces"], None, {"metadata": {"name": "reconcile"}})
        mount_service_account(api, tmp_path / "serviceaccount", ADMIN, monkeypatch)
        env = {**os.environ, "RECONCILE_CACHE_DIR": str(tmp_path / "cache")}
        first = subprocess.Popen([*command, str(tmp_path / "a.db")], env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not ((api.get("leases", "reconcile", "reconcile") or {}).get("spec") or {}).get("holderIdentity"):
            assert time.monotonic() < deadline and first.poll() is None, first.communicate()
            time.sleep(0.05)
        second = subprocess.run([*command, str(tmp_path / "b.db")], env=env, capture_output=True, text=True,
                                timeout=60)
        _, first_err = first.communicate(timeout=60)
        lease = api.get("leases", "reconcile", "reconcile")
    assert second.returncode == LOCKED, second.stderr
    assert "another reconcile run holds the Lease reconcile/reconcile (holder " in second.stderr
    assert first.returncode == 0, first_err
    assert lease is not None and lease["spec"]["holderIdentity"] == ""
    outcomes = []
    for name in ("a.db", "b.db"):
        with AuditStore.open(str(tmp_path / name), read_only=True) as store:
            outcomes += [run.outcome for run in store.runs()]
    assert outcomes == ["succeeded", "locked"]
