"""Retention planned a repository at a time (``reconcile.plan.stream``) is ``build_plan`` over the
whole observation: the same actions in the same order, errors, warnings, summary, fingerprint and
contentHash, on generated worlds (several RetentionPolicies on two registries beside a promotion
pipeline and its deploys; registries, clusters, deploy targets, the deploy history and git
unreadable; ``only=``; shards), whatever order the repositories are planned in."""

from __future__ import annotations

import random
import tempfile
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.observe.state import DeployHealth, Observation, PlannedRepository, RepositoryState, RetentionObservation
from reconcile.plan import Plan, build_plan, fingerprint, tags_hash
from reconcile.plan.stream import RetentionStream
from reconcile.policy import load_policies
from reconcile.policy.model import PolicySet
from reconcile.policy.shards import Shard
from reconcile.render.plan import to_json
from tests.properties.conftest import PROFILE
from tests.properties.strategies import CLUSTERS, NOW, chance, inputs, scenarios

POLICIES = """\
apiVersion: reconcile/v1
kind: Registry
metadata: {name: ci}
spec: {url: "https://registry.ci.example.com"}
---
apiVersion: reconcile/v1
kind: Registry
metadata: {name: staging}
spec: {url: "https://registry.staging.example.com", deletion: tag}
---
apiVersion: reconcile/v1
kind: Cluster
metadata: {name: prod}
spec: {inCluster: true}
---
apiVersion: reconcile/v1
kind: Cluster
metadata: {name: stage}
spec: {inCluster: true}
---
apiVersion: reconcile/v1
kind: PromotionPolicy
metadata: {name: web}
spec:
  stages:
    - name: build
      registry: ci
      repository: team-a/web
      track: {tags: '^v(?P<version>\\d+\\.\\d+\\.\\d+)$', order: semver}
    - name: staging
      from: build
      registry: staging
      repository: team-a/web
      tags: [staging, "{version}"]
---
apiVersion: reconcile/v1
kind: DeployPolicy
metadata: {name: stage-web}
spec:
  stage: web/staging
  cluster: stage
  namespace: web
  workloads: [{kind: Deployment, name: web, container: web}]
---
apiVersion: reconcile/v1
kind: DeployPolicy
metadata: {name: prod-web}
spec:
  stage: web/build
  cluster: prod
  namespace: web
  workloads: [{kind: Deployment, name: web, container: web}]
---
apiVersion: reconcile/v1
kind: DeployPolicy
metadata: {name: ci-web}
spec:
  stage: web/build
  manifests: {repo: "https://git.example.com/manifests.git", path: envs/ci, branch: main}
  workloads: [{kind: Deployment, name: web, container: web}]
"""


@lru_cache(maxsize=1)
def base() -> PolicySet:
    """Registries, clusters, the pipeline and its deploys (the RetentionPolicies are generated)."""
    root = Path(tempfile.mkdtemp(prefix="reconcile-stream-"))
    (root / "policies.yaml").write_text(POLICIES)
    return load_policies(str(root))


DOWN = "registry {} could not be read: 503 Service Unavailable"


@st.composite
def worlds(draw: st.DrawFn) -> tuple[PolicySet, Observation, dict[str, list[str]] | None, str | None, Shard | None]:
    """Policies, an observation of them, the deploy history, ``only`` and a shard."""
    retention, observed = {}, {}
    clusters: dict[str, object] = {}
    deployed: dict[str, list[str]] | None = {}
    targets: dict[str, DeployHealth | str] = {}
    every: list[RepositoryState] = []
    for p in range(draw(st.integers(1, 3))):
        scenario = draw(scenarios(readable=False, repositories=2, max_nodes=6, max_tags=8))
        found = inputs(scenario)
        registry = "ci" if p < 2 else "staging"
        name = f"keep-{p}"
        retention[name] = replace(scenario.policy, name=name, registry=registry)
        states = tuple(replace(s, registry=registry) for s in found.repositories)
        states += tuple(replace(states[0], repository=f"{states[0].repository}-{k}")
                        for k in range(draw(st.integers(0, 3))))  # more repositories, in no order
        states = tuple(draw(st.permutations(states)))
        every += states
        for cluster, state in found.clusters.items():
            clusters.setdefault(cluster, state)
        if found.deployed is None:
            deployed = None
        elif deployed is not None:
            for policy, history in found.deployed.items():
                deployed.setdefault(policy, list(history))
        for policy, target in found.deploy_targets.items():
            targets.setdefault(policy, target)
        repositories = DOWN.format(registry) if chance(draw, 1 / 8) else states
        observed[name] = RetentionObservation(repositories, dict(found.git_commits))
    if chance(draw, 1 / 6):  # a protecting cluster's read failed
        clusters[draw(st.sampled_from(CLUSTERS))] = "403 forbidden: list pods"
    digests = sorted({d.digest for s in every for d in s.tags.values()})

    def health() -> st.SearchStrategy[DeployHealth | str]:
        return st.one_of(st.builds(DeployHealth, st.sampled_from(digests) | st.none(), st.booleans()),
                         st.just("deployment web not found"))

    seen_health = {"stage-web": targets.get("stage-web") or draw(health()),
                   "prod-web": targets.get("prod-web") or draw(health())}
    written = {"ci-web": draw(health())}

    def stage(registry: str) -> st.SearchStrategy[RepositoryState | str]:
        return st.one_of(st.sampled_from(every).map(lambda s: replace(s, registry=registry)),
                         st.just(DOWN.format(registry)))

    promotion = {"web": {"build": draw(stage("ci")), "staging": draw(stage("staging"))}}
    policies = replace(base(), retention_policies=retention)
    observation = Observation("2026-11-21T12:00:00.000000Z", clusters, observed, promotion,  # type: ignore[arg-type]
                              seen_health, written)
    only = draw(st.sampled_from([None, None, *(f"RetentionPolicy/{n}" for n in retention), "PromotionPolicy/web",
                                 "DeployPolicy/prod-web"]))
    shard = draw(st.sampled_from([None, None, Shard(0, 2), Shard(1, 2)]))
    return policies, observation, deployed, only, shard


def streamed(policies: PolicySet, observation: Observation, deployed: dict[str, list[str]] | None,
             only: str | None, rng: random.Random) -> Observation:
    """The observation as ``observe(retained=...)`` hands it over: every RetentionPolicy's repository
    planned on its own, in ``rng``'s order (as walks complete), its state replaced by the result."""
    stream = RetentionStream(policies, deployed, now=NOW, only=only)
    stream.protecting(observation.clusters, observation.health, observation.written)
    work = [(name, i, state) for name, seen in observation.retention.items() if not isinstance(seen.repositories, str)
            for i, state in enumerate(seen.repositories)]
    rng.shuffle(work)
    planned: dict[tuple[str, int], PlannedRepository] = {}
    for name, i, state in work:
        assert isinstance(state, RepositoryState)
        planned[name, i] = stream.repository(name, observation.retention[name].git_commits, state)
    retention = {name: seen if isinstance(seen.repositories, str) else RetentionObservation(
        tuple(planned[name, i] for i in range(len(seen.repositories))), seen.git_commits)
        for name, seen in observation.retention.items()}
    return replace(observation, retention=retention)


def same(first: Plan, second: Plan) -> None:
    assert to_json(first) == to_json(second)  # actions in order, errors, warnings, summary, fingerprint, contentHash
    assert first == second
    assert [(a, a.tags, a.depends_on, a.reason, a.cause, a.block) for a in first.actions] == [
        (a, a.tags, a.depends_on, a.reason, a.cause, a.block) for a in second.actions]


@settings(settings.get_profile(PROFILE), max_examples=200)
@given(worlds(), st.randoms(use_true_random=False))
def test_streamed_retention_plans_what_build_plan_plans_on_the_whole_observation(world: tuple, rng: random.Random
                                                                                ) -> None:
    policies, observation, deployed, only, shard = world
    whole = build_plan(policies, observation, deployed, now=NOW, only=only, shard=shard)
    stream = build_plan(policies, streamed(policies, observation, deployed, only, rng), deployed, now=NOW, only=only,
                        shard=shard)
    same(whole, stream)


def test_the_generated_worlds_cover_what_matters() -> None:
    """Blocked and unreadable policies, prunes, warnings and errors all occur in the worlds above."""
    kinds: set[str] = set()

    # Derandomized (and no example database): which worlds are drawn is the same on every run, so
    # whether they cover everything is decided once, not by the luck of a run.
    @settings(settings.get_profile(PROFILE), max_examples=200, derandomize=True, database=None)
    @given(worlds())
    def collect(world: tuple) -> None:
        policies, observation, deployed, only, shard = world
        plan = build_plan(policies, observation, deployed, now=NOW, only=only, shard=shard)
        kinds.update(a.kind.value for a in plan.actions)
        kinds.update(str(a.cause) for a in plan.actions if a.kind == "blocked")
        kinds.update({"warning"} if plan.warnings else set())
        kinds.update({"error"} if plan.errors else set())
    collect()
    assert {"prune", "keep", "blocked", "promote", "deploy", "warning", "error"} <= kinds, kinds
    assert {"registry-unreadable", "cluster-unreadable", "over-max-deletions"} <= kinds, kinds


def test_a_repository_before_the_protecting_sources_is_refused() -> None:
    stream = RetentionStream(replace(base(), retention_policies={"p": _policy()}), {}, now=NOW)
    with pytest.raises(RuntimeError, match="protecting"):
        stream.repository("p", {}, RepositoryState("ci", "team-a/web", {}, {}))


def _policy():  # type: ignore[no-untyped-def]
    from reconcile.policy.model import KeepRule, RetentionPolicy
    from reconcile.policy.patterns import compile_pattern
    return RetentionPolicy("p", "ci", ("team-a/*",), (KeepRule(tags=compile_pattern("^v")),))


def test_a_planned_repository_is_its_state_in_the_fingerprint() -> None:
    from reconcile.observe.state import OCI_MANIFEST, Descriptor
    state = RepositoryState("ci", "team-a/web", {"v1": Descriptor(OCI_MANIFEST, "sha256:" + "1" * 64, 1)}, {})
    whole = Observation("t", {}, {"p": RetentionObservation((state,))})
    planned = Observation("t", {}, {"p": RetentionObservation((PlannedRepository("ci", "team-a/web",
                                                                                 tags_hash(state)),))})
    assert fingerprint(whole, {}) == fingerprint(planned, {})
    moved = replace(state, tags={"v1": Descriptor(OCI_MANIFEST, "sha256:" + "2" * 64, 1)})
    assert tags_hash(moved) != tags_hash(state)
