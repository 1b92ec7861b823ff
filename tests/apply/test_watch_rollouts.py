"""The one watch over a deploy's (or rollback's) workloads: each rollout waited for in turn, the
first that does not complete a RolloutFailed naming it and carrying its watch."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

import pytest

from reconcile.adapters.cluster import ClusterClient, RolloutResult
from reconcile.adapters.cluster.rollout import RolloutStatus
from reconcile.apply.executor import RolloutFailed, watch_rollouts

TIMEOUT = timedelta(minutes=3)


class Watches:
    """A stand-in ClusterClient with only wait_for_rollout: a status per workload name, each call recorded."""

    def __init__(self, statuses: dict[str, RolloutStatus]) -> None:
        self.statuses = statuses
        self.waited: list[tuple[str, str, str, float | timedelta]] = []

    def wait_for_rollout(self, namespace: str, kind: str, name: str, timeout: float | timedelta) -> RolloutResult:
        self.waited.append((namespace, kind, name, timeout))
        status = self.statuses[name]
        return RolloutResult("prod-eu", namespace, kind, name, status, f"{name} is {status}", None, 2, 2, 0.1)


def client(watches: Watches) -> ClusterClient:
    return cast(ClusterClient, watches)


def test_every_workload_is_waited_for_in_turn_with_the_timeout() -> None:
    watches = Watches({"web": "complete", "worker": "complete"})
    watch_rollouts(client(watches), "shop", [("Deployment", "web"), ("StatefulSet", "worker")], TIMEOUT)
    assert watches.waited == [("shop", "Deployment", "web", TIMEOUT), ("shop", "StatefulSet", "worker", TIMEOUT)]


def test_the_first_rollout_that_does_not_complete_fails_and_the_rest_are_not_waited_for() -> None:
    watches = Watches({"web": "complete", "worker": "timeout", "cron": "complete"})
    with pytest.raises(RolloutFailed) as failed:
        watch_rollouts(client(watches), "shop", [("Deployment", "web"), ("Deployment", "worker"),
                                                 ("CronJob", "cron")], TIMEOUT)
    assert str(failed.value) == "Deployment shop/worker: rollout timeout: worker is timeout"
    assert failed.value.rollout is not None and failed.value.rollout.name == "worker"
    assert [name for _, _, name, _ in watches.waited] == ["web", "worker"]


def test_what_names_the_rollout_in_the_message() -> None:
    with pytest.raises(RolloutFailed, match=r"^Deployment shop/web: the rollback's rollout failed: web is failed$"):
        watch_rollouts(client(Watches({"web": "failed"})), "shop", [("Deployment", "web")], 60.0,
                       what="the rollback's rollout")


def test_a_failure_without_a_watch_carries_none() -> None:
    assert RolloutFailed("the automatic rollback failed too").rollout is None
