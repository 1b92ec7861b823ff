"""observe(retained=...): each RetentionPolicy's repository planned as soon as it is observed and its
state dropped, held until the clusters and deploy targets are read; the plan is the one
``build_plan`` makes of the whole observation (clusters slow or failing, a registry failing
part-way, ``only``, shards), and a saved plan's fingerprint check still holds."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bench.memory_bench import GeneratedRegistry
from reconcile.adapters.cluster import ClusterError
from reconcile.adapters.registry import RegistryError
from reconcile.observe.state import (
    ClusterState,
    DeployHealth,
    ImageReference,
    Observation,
    PlannedRepository,
    RepositoryState,
    Usage,
)
from reconcile.observe.world import observe
from reconcile.plan import Plan, build_plan
from reconcile.plan.stream import RetentionStream
from reconcile.policy import load_policies
from reconcile.policy.model import Cluster, DeployPolicy, PolicySet, Registry
from reconcile.policy.secrets import SecretResolver
from reconcile.policy.shards import Shard
from reconcile.reconciler.errors import PlanRefused
from reconcile.reconciler.saved import check_saved, in_memory
from reconcile.render.plan import to_json

NOW = datetime(2026, 12, 1, tzinfo=UTC)
HOST = "registry.bench.invalid"
POLICIES = """\
apiVersion: reconcile/v1
kind: Registry
metadata: {name: bench}
spec: {url: "https://registry.bench.invalid"}
---
apiVersion: reconcile/v1
kind: Cluster
metadata: {name: prod}
spec: {inCluster: true}
---
apiVersion: reconcile/v1
kind: RetentionPolicy
metadata: {name: builds}
spec:
  registry: bench
  repositories: ["bench/svc-*"]
  keep: [{tags: '^build-(\\d+)$', last: 3, order: numeric}]
  protect: {inUse: [prod], deployedHistory: 2}
  maxDeletions: 100000
---
apiVersion: reconcile/v1
kind: RetentionPolicy
metadata: {name: shas}
spec:
  registry: bench
  repositories: ["bench/svc-00*"]
  keep: [{tags: '^sha-', last: 2, order: alphabetical}]
  maxDeletions: 30
---
apiVersion: reconcile/v1
kind: PromotionPolicy
metadata: {name: pipe}
spec:
  stages:
    - name: build
      registry: bench
      repository: bench/svc-001
      track: {tags: '^build-(?P<version>\\d+)$', order: numeric}
    - {name: next, from: build, registry: bench, repository: bench/svc-002, tags: ["{version}"]}
---
apiVersion: reconcile/v1
kind: DeployPolicy
metadata: {name: prod-web}
spec:
  stage: pipe/build
  cluster: prod
  namespace: web
  workloads: [{kind: Deployment, name: web, container: web}]
"""


class Registry_(GeneratedRegistry):
    """The generated registry, with a repository whose tag list fails (``broken``) after ``delay``."""

    broken: str | None = None
    delay = 0.0

    def tags(self, repository: str) -> list[str]:
        time.sleep(self.delay)
        if repository == self.broken:
            raise RegistryError(self.name, repository, "list tags", "503 Service Unavailable", 503)
        return super().tags(repository)


@pytest.fixture
def policies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[int, int], PolicySet]:
    import reconcile.observe.world as world

    def install(repositories: int, images: int, broken: str | None = None, delay: float = 0.0) -> PolicySet:
        def open_generated(registry: Registry, resolver: object, **_: Any) -> GeneratedRegistry:
            client = Registry_(registry, repositories, images)
            client.broken, client.delay = broken, delay
            return client
        monkeypatch.setattr(world, "open_registry", open_generated)
        return load_policies(str(tmp_path / "policies"))

    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "policies.yaml").write_text(POLICIES)
    return install  # type: ignore[return-value]


def readers(*, cluster_delay: float = 0.0, cluster_fails: bool = False) -> dict[str, Any]:
    running = GeneratedRegistry.digest(0, 1)  # svc-000's build-1, kept only because prod runs it

    def read_cluster(cluster: Cluster) -> ClusterState:
        time.sleep(cluster_delay)
        if cluster_fails:
            raise ClusterError("403 forbidden: list pods")
        usage = (Usage("prod", "web", "Deployment", "web", "web", "running"),)
        return ClusterState("prod", {ImageReference(HOST, "bench/svc-000", digest=running): usage,
                                     ImageReference(HOST, "bench/svc-003", tag="build-0"): usage})

    def read_health(policy: DeployPolicy) -> DeployHealth:
        return DeployHealth(GeneratedRegistry.digest(1, 2), True)  # svc-001's build-2: a deploy target

    return {"read_cluster": read_cluster, "read_health": read_health}


def observed(policies: PolicySet, retained: RetentionStream | None = None, *, shard: Shard | None = None,
             **reading: Any) -> Observation:
    return observe(policies, resolver=SecretResolver(environ={}), observed_at="2026-12-01T00:00:00.000000Z",
                   retained=retained, shard=shard, **readers(**reading))


DEPLOYED = {"prod-web": [GeneratedRegistry.digest(2, 0), GeneratedRegistry.digest(2, 1)]}


def plans(policies: PolicySet, *, only: str | None = None, shard: Shard | None = None,
          deployed: dict[str, list[str]] | None = DEPLOYED, **reading: Any) -> tuple[Plan, Plan, Observation]:
    """The plan of the whole observation, the streamed plan, and the streamed observation."""
    whole = build_plan(policies, observed(policies, shard=shard, **reading), deployed, now=NOW, only=only,
                       shard=shard)
    stream = RetentionStream(policies, deployed, now=NOW, only=only)
    seen = observed(policies, stream, shard=shard, **reading)
    return whole, build_plan(policies, seen, deployed, now=NOW, only=only, shard=shard), seen


def same(first: Plan, second: Plan) -> None:
    assert to_json(first) == to_json(second)
    assert [(a, a.tags, a.depends_on, a.reason, a.cause) for a in first.actions] == [
        (a, a.tags, a.depends_on, a.reason, a.cause) for a in second.actions]


@pytest.mark.parametrize("reading", [{}, {"cluster_delay": 0.3}, {"cluster_fails": True},
                                     {"cluster_fails": True, "cluster_delay": 0.3}],
                         ids=["clusters-fast", "clusters-slow", "cluster-fails", "cluster-fails-late"])
def test_a_streamed_observation_plans_what_the_whole_one_plans(policies: Callable[..., PolicySet],
                                                                 reading: dict[str, Any]) -> None:
    whole, streamed, seen = plans(policies(12, 15), **reading)
    same(whole, streamed)
    assert all(isinstance(r, PlannedRepository) for o in seen.retention.values() for r in o.repositories)
    assert all(isinstance(s, RepositoryState) for s in seen.promotion["pipe"].values())  # stages keep theirs
    kept = {a.target: a.cause for a in whole.actions if a.kind == "keep"}
    if reading.get("cluster_fails"):  # the policy the cluster protects prunes nothing, blocked
        assert [a.cause for a in whole.actions if a.policy == "RetentionPolicy/builds" and a.kind != "keep"] == [
            "cluster-unreadable"]
    else:
        assert kept["bench/bench/svc-000:build-1"] == "in-use"
        assert kept["bench/bench/svc-003:build-0"] == "in-use"
        assert kept["bench/bench/svc-001:build-2"] == "deploy-target"
        assert kept["bench/bench/svc-002:build-1"] == "deployed-history"
        assert any(a.kind == "prune" for a in whole.actions)
    assert [a.cause for a in whole.actions if a.policy == "RetentionPolicy/shas" and a.kind == "blocked"] == [
        "over-max-deletions"]


@pytest.mark.parametrize("broken", ["bench/svc-000", "bench/svc-005", "bench/svc-011"])
def test_a_repository_that_fails_fails_its_policies_as_before(policies: Callable[..., PolicySet], broken: str) -> None:
    whole, streamed, seen = plans(policies(12, 15, broken=broken, delay=0.01))
    same(whole, streamed)
    assert any(f"{broken}: list tags: 503" in e for e in whole.errors)
    assert isinstance(seen.retention["builds"].repositories, str)


@pytest.mark.parametrize(("only", "shard"), [("RetentionPolicy/shas", None), ("PromotionPolicy/pipe", None),
                                             (None, Shard(0, 2)), (None, Shard(1, 2)),
                                             ("RetentionPolicy/builds", Shard(1, 3))])
def test_only_and_shards(policies: Callable[..., PolicySet], only: str | None, shard: Shard | None) -> None:
    whole, streamed, _ = plans(policies(12, 15), only=only, shard=shard)
    same(whole, streamed)
    assert whole.actions


def test_an_unreadable_deploy_history_blocks_as_before(policies: Callable[..., PolicySet]) -> None:
    whole, streamed, _ = plans(policies(4, 15), deployed=None)
    same(whole, streamed)
    assert "the audit trail (deploy history) could not be read" in "\n".join(whole.errors)


class Counted(RepositoryState):
    """A RepositoryState that counts how many of its kind are alive."""

    __slots__ = ()
    alive = 0
    lock = threading.Lock()

    def __new__(cls, *args: Any, **kwargs: Any) -> Counted:
        with Counted.lock:
            Counted.alive += 1
        return super().__new__(cls)

    def __del__(self) -> None:
        with Counted.lock:
            Counted.alive -= 1


def test_planned_repositories_are_dropped_as_they_are_planned(policies: Callable[..., PolicySet],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """However many repositories, the states alive at any hand-over are about those walked at once
    (16), not all of them; after observing, only the promotion stages' states are."""
    import reconcile.observe.repositories as repositories

    monkeypatch.setattr(repositories, "RepositoryState", Counted)
    chosen = policies(60, 20)
    stream = RetentionStream(chosen, DEPLOYED, now=NOW)
    alive: list[int] = []

    class Counting:
        def protecting(self, *args: Any) -> None:
            stream.protecting(*args)

        def repository(self, policy: str, commits: Any, state: RepositoryState) -> PlannedRepository:
            alive.append(Counted.alive)
            return stream.repository(policy, commits, state)

    seen = observed(chosen, Counting())  # type: ignore[arg-type]
    assert len(alive) == 60 + 10  # builds: 60 repositories, shas: svc-000 to svc-009
    assert max(alive) < 40, alive
    gc.collect()
    assert Counted.alive == len(seen.promotion["pipe"])
    whole = build_plan(chosen, observed(chosen), DEPLOYED, now=NOW)
    same(whole, build_plan(chosen, seen, DEPLOYED, now=NOW))


def test_a_saved_plan_still_applies_to_the_same_world_and_not_to_a_changed_one(
        policies: Callable[..., PolicySet]) -> None:
    """The saved-plan check (``apply --plan``) compares fingerprints made the same way: planning
    again over the same world is accepted, over a world with one tag moved it is refused."""
    def plan_now(chosen: PolicySet) -> Plan:
        stream = RetentionStream(chosen, DEPLOYED, now=NOW)
        return build_plan(chosen, observed(chosen, stream), DEPLOYED, now=NOW)

    saved = plan_now(policies(4, 15))
    assert check_saved("the plan", in_memory(saved), plan_now(policies(4, 15)), None) == saved
    with pytest.raises(PlanRefused, match="registries or clusters changed"):
        check_saved("the plan", in_memory(saved), plan_now(policies(4, 16)), None)  # one more image each
