"""The run's Lease against the API-server fixture: client-go's leader-election semantics (one holder,
takeover only after expiry, resourceVersion-guarded writes, release clears the holder), renewal in
a thread, and loss seen by check() before the next mutation. Time is the ``clock`` parameter."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config
from kubernetes.client import Configuration

from reconcile.adapters.cluster import (
    ClusterError,
    ForbiddenError,
    LeaseHeld,
    LeaseLock,
    LeaseLost,
    NotFoundError,
    UnreachableError,
)
from tests.kube import ADMIN, ApiServer, Identity, Rule, mount_service_account, running
from tests.kube.server import BY_PLURAL

NAMESPACE = "reconcile"
LEASE = "reconcile-run"
START = datetime(2026, 12, 3, 12, 0, 0, 123456, tzinfo=UTC)
MINUTE = timedelta(seconds=60)


class Clock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def api() -> Iterator[ApiServer]:
    with running() as server:
        server.create_object(BY_PLURAL["namespaces"], None, {"metadata": {"name": NAMESPACE}})
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


def configuration_for(api: ApiServer, tmp_path: Path, token: str = "admin-token") -> Callable[[], Configuration]:
    path = api.kubeconfig(tmp_path / f"{token}.kubeconfig", token)

    def load() -> Configuration:
        configuration = Configuration()
        config.load_kube_config(config_file=str(path), client_configuration=configuration, persist_config=False)
        return configuration

    return load


@pytest.fixture
def lock(api: ApiServer, tmp_path: Path, clock: Clock) -> Callable[..., LeaseLock]:
    made: list[LeaseLock] = []

    def make(identity: str, *, duration: timedelta = MINUTE, token: str = "admin-token") -> LeaseLock:
        lease = LeaseLock(NAMESPACE, LEASE, identity, duration=duration,
                          configuration=configuration_for(api, tmp_path, token), clock=clock)
        made.append(lease)
        return lease

    yield make
    for lease in made:
        lease.close()


def spec(api: ApiServer) -> dict[str, Any]:
    lease = api.get("leases", NAMESPACE, LEASE)
    assert lease is not None
    return dict(lease["spec"])


def test_of_two_candidates_one_acquires_the_other_is_told_who_holds_it(api: ApiServer, lock: Any,
                                                                      clock: Clock) -> None:
    first, second = lock("reconcile-28870560-abcde"), lock("reconcile-28870561-fghij")
    first.acquire()
    with pytest.raises(LeaseHeld) as held:
        second.acquire()
    assert held.value.holder == "reconcile-28870560-abcde"
    assert held.value.expires == START + MINUTE
    assert str(held.value) == (
        "cluster kubeconfig: lease reconcile/reconcile-run is held by reconcile-28870560-abcde until "
        "2026-12-03T12:01:00.123456Z (another run is in progress, or a crashed one's lease has not expired yet)")
    assert isinstance(held.value, ClusterError)
    assert spec(api) == {"holderIdentity": "reconcile-28870560-abcde", "leaseDurationSeconds": 60,
                         "acquireTime": "2026-12-03T12:00:00.123456Z", "renewTime": "2026-12-03T12:00:00.123456Z",
                         "leaseTransitions": 0}
    first.check()
    with pytest.raises(LeaseLost, match="not acquired"):
        second.check()


def test_a_lease_left_unrenewed_is_taken_over_only_after_it_expires(api: ApiServer, lock: Any,
                                                                   clock: Clock) -> None:
    crashed, next_run = lock("crashed-pod"), lock("next-pod")
    crashed.acquire()  # and never renews nor releases: the pod was killed
    clock.advance(MINUTE)  # renewTime + leaseDurationSeconds == now: not expired yet
    with pytest.raises(LeaseHeld):
        next_run.acquire()
    clock.advance(timedelta(microseconds=1))
    next_run.acquire()
    after = spec(api)
    assert after["holderIdentity"] == "next-pod"
    assert after["leaseTransitions"] == 1
    assert after["acquireTime"] == after["renewTime"] == "2026-12-03T12:01:00.123457Z"
    with pytest.raises(LeaseLost):
        crashed.check()  # its own clock says it is older than the duration, too


def test_renew_keeps_acquire_time_and_moves_renew_time(api: ApiServer, lock: Any, clock: Clock) -> None:
    lease = lock("pod-a")
    lease.acquire()
    clock.advance(timedelta(seconds=20))
    lease.renew()
    assert spec(api)["acquireTime"] == "2026-12-03T12:00:00.123456Z"
    assert spec(api)["renewTime"] == "2026-12-03T12:00:20.123456Z"
    clock.advance(timedelta(seconds=50))  # 50 s after the last renewal: still valid
    with pytest.raises(LeaseHeld):
        lock("pod-b").acquire()
    lease.check()
    lease.acquire()  # already ours: taken again, no transition
    assert spec(api)["leaseTransitions"] == 0
    assert spec(api)["acquireTime"] == "2026-12-03T12:00:00.123456Z"


def test_held_renews_in_a_thread_and_releases_at_the_end(api: ApiServer, tmp_path: Path) -> None:
    lease = LeaseLock(NAMESPACE, LEASE, "pod-a", duration=timedelta(seconds=3),
                      configuration=configuration_for(api, tmp_path))
    with lease.held() as holding:
        assert holding is lease
        first = spec(api)["renewTime"]
        deadline = time.monotonic() + 5
        while spec(api)["renewTime"] == first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert spec(api)["renewTime"] > first  # renewed every second
        lease.check()
    released = spec(api)
    assert released["holderIdentity"] == "" and released["leaseDurationSeconds"] == 1
    assert released["leaseTransitions"] == 0
    with pytest.raises(LeaseLost, match="released"):
        lease.check()
    other = LeaseLock(NAMESPACE, LEASE, "pod-b", configuration=configuration_for(api, tmp_path))
    other.acquire()  # at once: no waiting for an expiry
    assert spec(api)["holderIdentity"] == "pod-b" and spec(api)["leaseTransitions"] == 1
    other.close()
    lease.close()


def test_release_lets_the_other_acquire_at_once(api: ApiServer, lock: Any, clock: Clock) -> None:
    first, second = lock("pod-a"), lock("pod-b")
    first.acquire()
    first.release()
    second.acquire()
    assert spec(api)["holderIdentity"] == "pod-b"
    first.release()  # not ours any more: nothing written
    assert spec(api)["holderIdentity"] == "pod-b"


def test_a_takeover_makes_renew_and_check_raise_lease_lost(api: ApiServer, lock: Any, clock: Clock) -> None:
    first, second = lock("pod-a"), lock("pod-b")
    first.acquire()
    clock.advance(MINUTE + timedelta(seconds=1))  # pod-a stalled past its lease
    second.acquire()
    clock.now = START + timedelta(seconds=30)  # pod-a's view: within its own duration
    with pytest.raises(LeaseLost) as lost:
        first.renew()
    assert str(lost.value) == "cluster kubeconfig: lease reconcile/reconcile-run lost: taken over by pod-b"
    with pytest.raises(LeaseLost, match="taken over by pod-b"):
        first.check()
    first.release()  # lost: the new holder's lease is left alone
    assert spec(api)["holderIdentity"] == "pod-b"


def test_a_409_during_acquire_is_lease_held(api: ApiServer, lock: Any, clock: Clock) -> None:
    first, second = lock("pod-a"), lock("pod-b")
    first.acquire()
    first.release()
    api.inject_conflict("leases", NAMESPACE, LEASE)  # another candidate's write lands first
    with pytest.raises(LeaseHeld) as held:
        second.acquire()
    assert held.value.holder == "another candidate"
    with pytest.raises(LeaseLost):
        second.check()


def test_two_creators_race_one_wins(api: ApiServer, lock: Any, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """pod-b reads "not found" just before pod-a creates the Lease: pod-b's create is a 409."""
    first, second = lock("pod-a"), lock("pod-b")
    real_get = second._get
    calls = []

    def get_after_the_other_created() -> dict[str, Any]:
        if not calls:
            calls.append(1)
            first.acquire()
            raise NotFoundError("kubeconfig", "get leases: 404 Not Found", status=404)
        return real_get()

    monkeypatch.setattr(second, "_get", get_after_the_other_created)
    with pytest.raises(LeaseHeld) as held:
        second.acquire()
    assert held.value.holder == "pod-a"


def test_renewal_failing_longer_than_the_duration_marks_it_lost(api: ApiServer, lock: Any, clock: Clock) -> None:
    lease = lock("pod-a")
    lease.acquire()
    stopped = api.identities.pop("admin-token")  # the API server refuses it now: renewals fail
    clock.advance(timedelta(seconds=20))
    with pytest.raises(ClusterError) as failed:
        lease.renew()
    assert not isinstance(failed.value, LeaseLost)
    lease.check()  # one failure: still ours until the duration has passed
    clock.advance(timedelta(seconds=41))  # 61 s since the last renewal
    with pytest.raises(LeaseLost, match=r"not renewed for 61s \(lease duration 60s\)"):
        lease.renew()
    api.identities["admin-token"] = stopped
    with pytest.raises(LeaseLost):
        lease.check()  # lost stays lost
    with pytest.raises(LeaseLost):
        lease.renew()


def test_renewal_failure_in_the_thread_stops_mutations(api: ApiServer, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    lease = LeaseLock(NAMESPACE, LEASE, "pod-a", duration=timedelta(seconds=1.2),
                      configuration=configuration_for(api, tmp_path))
    with lease.held():
        api.identities.clear()  # every renewal fails from now on
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                lease.check()
            except LeaseLost as exc:
                assert "not renewed for" in exc.why
                break
            time.sleep(0.05)
        else:
            pytest.fail("check() never raised LeaseLost")
    assert "renewal failed" in caplog.text
    lease.close()


def test_a_403_names_the_lease_rule(api: ApiServer, lock: Any) -> None:
    api.identities["getter"] = Identity("system:serviceaccount:reconcile:reconcile",
                                        (Rule.of(["get"], ["coordination.k8s.io"], ["leases"], NAMESPACE),))
    with pytest.raises(ForbiddenError) as forbidden:
        lock("pod-a", token="getter").acquire()
    assert str(forbidden.value) == (
        "cluster kubeconfig: forbidden: the service account needs 'create' on 'leases' (coordination.k8s.io) in "
        "namespace reconcile — the Lease needs a Role in namespace reconcile with apiGroups [coordination.k8s.io], "
        "resources [leases], verbs [get, create, update], bound to it")
    assert isinstance(forbidden.value, ClusterError)


def test_a_missing_namespace_and_an_unreachable_server_are_cluster_errors(api: ApiServer, lock: Any, tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    lease = LeaseLock("nowhere", LEASE, "pod-a", configuration=configuration_for(api, tmp_path))
    with pytest.raises(ClusterError) as missing:
        lease.acquire()
    assert str(missing.value) == ('cluster kubeconfig: lease nowhere/reconcile-run: cannot create it: create '
                                  'leases: 404 Not Found: namespaces "nowhere" not found')
    lease.close()
    unreachable = LeaseLock(NAMESPACE, LEASE, "pod-a", configuration=lambda: configuration_at("http://127.0.0.1:9"))
    with pytest.raises(UnreachableError) as refused:
        unreachable.acquire()
    assert str(refused.value).startswith("cluster kubeconfig: unreachable: http://127.0.0.1:9: cannot connect")
    held = lock("pod-a")
    held.acquire()
    api.identities.clear()  # the release is refused
    caplog.set_level(logging.WARNING)
    held.release()  # best effort: logged, not raised
    assert "lease reconcile/reconcile-run: not released" in caplog.text
    assert spec(api)["holderIdentity"] == "pod-a"  # it expires on its own


def configuration_at(url: str) -> Configuration:
    configuration = Configuration(host=url)
    configuration.api_key = {"BearerToken": "t"}
    return configuration


def test_the_lease_uses_the_pods_credentials_and_a_rotated_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  clock: Clock) -> None:
    """In a pod: no configuration given, the service account's token and CA are used; after the
    kubelet rotates the token (and the old one is refused) the next renewal uses the new one."""
    account = Identity("system:serviceaccount:reconcile:reconcile",
                       (Rule.of(["get", "create", "update"], ["coordination.k8s.io"], ["leases"], NAMESPACE),))
    with running(tls=True) as api:
        api.create_object(BY_PLURAL["namespaces"], None, {"metadata": {"name": NAMESPACE}})
        pod = mount_service_account(api, tmp_path / "serviceaccount", account, monkeypatch)
        lease = LeaseLock(NAMESPACE, LEASE, "reconcile-28870560-abcde", clock=clock)
        lease.acquire()
        pod.rotate("bound-token-2")
        clock.advance(timedelta(seconds=20))
        lease.renew()
        lease.close()
    writes = [r for r in api.requests if r.method in ("POST", "PUT")]
    assert [(r.method, r.status, r.user) for r in writes] == [
        ("POST", 201, account.user), ("PUT", 401, None), ("PUT", 200, account.user), ("PUT", 200, account.user)]
    assert ADMIN.user not in {r.user for r in writes}


def test_outside_a_pod_the_lease_uses_the_kubeconfig(api: ApiServer, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(tmp_path / "config", "admin-token")))
    lease = LeaseLock(NAMESPACE, LEASE, "laptop")
    with lease.held():
        lease.check()
        assert spec(api)["holderIdentity"] == "laptop"
    assert {r.user for r in api.requests} == {ADMIN.user}
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(ClusterError) as failed:
        LeaseLock(NAMESPACE, LEASE, "laptop").acquire()
    assert str(failed.value).startswith(f"cluster kubeconfig: cannot load the kubeconfig {tmp_path}/missing: ")
