"""Observe everything a plan needs, through the adapters, turning each source's failure into a
reason rather than an exception: the planner then blocks exactly what depended on it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from reconcile.adapters.cluster import ClusterError
from reconcile.adapters.git.refs import live_commits, ref_histories
from reconcile.adapters.registry import RegistryClient, RegistryError, open_registry
from reconcile.adapters.registry.content import glob_pattern, is_glob
from reconcile.observe.repositories import observe_repositories, observe_repository, stream_repositories
from reconcile.observe.state import (
    ClusterState,
    DeployHealth,
    GitCommits,
    ImageReference,
    Observation,
    PlannedRepository,
    RepositoryState,
    RetentionObservation,
    Usage,
)
from reconcile.policy.model import Cluster, DeployPolicy, PolicySet, Registry, RetentionPolicy
from reconcile.policy.secrets import SecretError, SecretResolver
from reconcile.policy.shards import Shard
from reconcile.policy.source import SourceError

OBSERVERS = 8  # sources (clusters, registries' repositories, deploy targets) read at once
_CLIENTS_LOCK = threading.Lock()

ClusterReader = Callable[[Cluster], ClusterState]
HealthReader = Callable[[DeployPolicy], DeployHealth]
WrittenReader = Callable[[DeployPolicy], DeployHealth]
Commits = Mapping[int, GitCommits]


class RetentionSink(Protocol):
    """Who a streamed observation hands each RetentionPolicy's repositories to as they are observed
    (``reconcile.plan.stream.RetentionStream``): first, once, every source that protects images
    (``protecting``), then each repository (``repository``), whose answer the observation keeps in
    place of the state. Called one call at a time."""

    def protecting(self, clusters: Mapping[str, ClusterState | str], health: Mapping[str, DeployHealth | str],
                   written: Mapping[str, DeployHealth | str]) -> None: ...

    def repository(self, policy: str, git_commits: Commits, state: RepositoryState) -> PlannedRepository: ...


def observe(policies: PolicySet, *, resolver: SecretResolver, read_cluster: ClusterReader | None,
            observed_at: str, cache_dir: Path | None = None, clients: dict[str, RegistryClient] | None = None,
            read_helm: ClusterReader | None = None, read_health: HealthReader | None = None,
            read_written: WrittenReader | None = None, shard: Shard | None = None,
            retained: RetentionSink | None = None) -> Observation:
    """Observe the registries, clusters and source repositories the retention policies name.

    A cluster named in ``protect.inUse`` is read with ``read_cluster`` (images running or kept for
    rollback), one named in ``protect.helmReleases`` with ``read_helm`` (images in its retained
    Helm release history); one named in both, with both, merged into its one entry of
    ``clusters``. If either read fails, the entry is why (the policies it protects prune nothing).

    ``clients`` (registry name -> client) is filled in and returned to the caller, who applies
    through the same connections and closes them.

    ``health`` covers every DeployPolicy a healthyIn gate names and every one with a cluster or
    heroku target (what it runs now); ``written``, with ``read_written``, what a manifests target's image is now.

    With ``shard``, only its repositories and pipelines are observed; what protects images
    (clusters, deploy targets, their health) is read whole, as retention in any shard needs it.

    With ``retained``, each RetentionPolicy's repository is handed to it as soon as it is observed
    and what it answers kept instead of the state (which is then dropped): repositories observed
    before every protecting source (clusters, ``health``, ``written``) is read wait for them, the
    others go at once. The observation is otherwise the same, and so is each failure's reason.
    """
    clients = {} if clients is None else clients
    pools: dict[str, ThreadPoolExecutor] = {}  # one request queue per registry, shared by every source on it
    retention_policies = policies.retention_policies.values()
    in_use = {name for p in retention_policies for name in p.protect.in_use}
    helm = {name for p in retention_policies for name in p.protect.helm_releases}
    gated = {name for policy in policies.promotion_policies.values() for stage in policy.stages
             for name in stage.gates.healthy_in}
    deployed = {name for name, policy in policies.deploy_policies.items()
                if policy.cluster is not None or policy.heroku is not None}
    handover = None if retained is None else _Handover(retained)
    # Every source is independent of the others: read them side by side (each adapter bounds its own
    # requests in flight), so a run waits for its slowest source, not for their sum.
    try:
        with ThreadPoolExecutor(max_workers=OBSERVERS, thread_name_prefix="observe") as pool:
            cluster_reads = {name: pool.submit(_read_protecting_cluster, policies.clusters[name], name in in_use,
                                               name in helm, read_cluster, read_helm)
                             for name in sorted(in_use | helm)}
            retention_reads = {name: pool.submit(_observe_retention, policy, policies.registries[policy.registry],
                                                 resolver, cache_dir, clients, pools, shard, handover)
                               for name, policy in sorted(policies.retention_policies.items())}
            stage_reads = {name: {stage.name: pool.submit(_observe_stage, policies.registries[stage.registry],
                                                          stage.repository, resolver, cache_dir, clients, pools)
                                  for stage in policy.stages}
                           for name, policy in sorted(policies.promotion_policies.items())
                           if shard is None or shard.owns_promotion(policy)}
            health_reads = {name: pool.submit(_health, policies.deploy_policies[name], read_health)
                            for name in sorted(gated | deployed)}
            written_reads = {name: pool.submit(_health, policy, read_written)
                             for name, policy in sorted(policies.deploy_policies.items())
                             if policy.manifests is not None and read_written}

            def protecting() -> tuple[dict[str, ClusterState | str], dict[str, DeployHealth | str],
                                      dict[str, DeployHealth | str]]:
                clusters = {name: read.result() for name, read in cluster_reads.items()}
                health = {name: read.result() for name, read in health_reads.items()}
                written = {name: written_reads[name].result() if name in written_reads else "the manifests are not read"
                           for name, policy in sorted(policies.deploy_policies.items()) if policy.manifests is not None}
                return clusters, health, written

            if handover is not None:
                handover.when_read([*cluster_reads.values(), *health_reads.values(), *written_reads.values()],
                                   protecting)
    finally:
        for requests in pools.values():
            requests.shutdown()
    clusters, health, written = protecting()
    retention = {name: read.result() for name, read in retention_reads.items()}
    if handover is not None:  # each streamed policy's repositories: what the planner made of them, in order
        retention.update((name, replace(retention[name], repositories=handover.planned(slots)))
                         for name, slots in handover.slots.items())
    promotion = {name: {stage: read.result() for stage, read in stages.items()} for name, stages in stage_reads.items()}
    return Observation(observed_at, clusters, retention, promotion, health, written)


class _Slot:
    """A repository handed over: its state until it is planned, then what the planner made of it."""

    __slots__ = ("planned", "state")

    def __init__(self, state: RepositoryState) -> None:
        self.state: RepositoryState | None = state
        self.planned: PlannedRepository | None = None


class _Handover:
    """Repositories to a :class:`RetentionSink` as each is observed, one call at a time: held until
    every protecting source is read, then planned (and their states dropped) at once."""

    def __init__(self, sink: RetentionSink) -> None:
        self.sink = sink
        self.lock = threading.Lock()
        self.waiting: list[tuple[str, Commits, _Slot]] | None = []  # None once the protecting sources are in
        self.failure: BaseException | None = None  # of handing the protecting sources over (raised at the end)
        self.unread = 0
        self.slots: dict[str, tuple[_Slot, ...]] = {}  # RetentionPolicy -> its repositories, in order

    def put(self, policy: str, commits: Commits, state: RepositoryState) -> _Slot:
        slot = _Slot(state)
        with self.lock:
            if self.waiting is None:
                self._plan(policy, commits, slot)
            else:
                self.waiting.append((policy, commits, slot))
        return slot

    def when_read(self, reads: Sequence[Future[Any]], protecting: Callable[[], tuple[
            Mapping[str, ClusterState | str], Mapping[str, DeployHealth | str], Mapping[str, DeployHealth | str]]]
                  ) -> None:
        """Hand the protecting sources over once every one of ``reads`` is done (now, if none)."""
        count = threading.Lock()
        self.unread = len(reads) + 1  # one more for this call: the callbacks of reads already done run here

        def done(_: object = None) -> None:
            with count:
                self.unread -= 1
                if self.unread:
                    return
            try:
                clusters, health, written = protecting()
                with self.lock:
                    self.sink.protecting(clusters, health, written)
                    waiting, self.waiting = self.waiting or [], None
                    for policy, commits, slot in waiting:
                        self._plan(policy, commits, slot)
            except BaseException as e:  # a callback's exception would be logged and lost: raised at the end
                self.failure = e

        for read in reads:
            read.add_done_callback(done)
        done()

    def _plan(self, policy: str, commits: Commits, slot: _Slot) -> None:
        assert slot.state is not None
        slot.planned = self.sink.repository(policy, commits, slot.state)
        slot.state = None  # planned: the state can go

    def planned(self, slots: Iterable[_Slot]) -> tuple[PlannedRepository, ...]:
        found = []
        for slot in slots:
            if slot.planned is None:
                raise self.failure or RuntimeError("a repository observed for retention was never planned")
            found.append(slot.planned)
        return tuple(found)


def _read_protecting_cluster(cluster: Cluster, in_use: bool, helm: bool, read_cluster: ClusterReader | None,
                             read_helm: ClusterReader | None) -> ClusterState | str:
    parts = []
    if in_use:
        parts.append(_read_cluster(cluster, read_cluster, "no cluster adapter is configured"))
    if helm:
        helm_state = _read_cluster(cluster, read_helm, "no Helm release reader is configured")
        parts.append(helm_state if isinstance(helm_state, ClusterState) else f"protect.helmReleases: {helm_state}")
    return _merged(cluster.name, parts)


def _health(policy: DeployPolicy, read_health: HealthReader | None) -> DeployHealth | str:
    if read_health is None:
        return "deploy health is not observed"
    try:
        return read_health(policy)
    except Exception as e:  # a health gate that cannot be read stays closed, it does not crash the run
        return getattr(e, "problem", None) or str(e) or type(e).__name__


def _client(registry: Registry, resolver: SecretResolver, cache_dir: Path | None,
            clients: dict[str, RegistryClient], pools: dict[str, ThreadPoolExecutor]
            ) -> tuple[RegistryClient, ThreadPoolExecutor]:
    """The registry's one client and its one request queue, as wide as its concurrency."""
    with _CLIENTS_LOCK:  # sources read side by side share one client per registry
        if registry.name not in clients:
            clients[registry.name] = open_registry(registry, resolver, cache_dir=cache_dir and cache_dir / "content")
        client = clients[registry.name]
        if registry.name not in pools:
            pools[registry.name] = ThreadPoolExecutor(max_workers=client.concurrency,
                                                      thread_name_prefix=f"registry-{registry.name}")
        return client, pools[registry.name]


def _observe_stage(registry: Registry, repository: str, resolver: SecretResolver, cache_dir: Path | None,
                   clients: dict[str, RegistryClient], pools: dict[str, ThreadPoolExecutor]) -> RepositoryState | str:
    try:
        client, requests = _client(registry, resolver, cache_dir, clients, pools)
        return observe_repository(client, repository, pool=requests)
    except (RegistryError, SecretError) as e:
        if getattr(e, "status", None) == 404:  # a stage nothing was promoted to yet is empty, not broken
            return RepositoryState(registry.name, repository, {}, {}, can_delete_tags=registry.deletion_mode == "tag",
                                   can_delete=registry.deletion_mode != "none")
        return f"registry {registry.name} could not be read: {e}"


def _read_cluster(cluster: Cluster, read: ClusterReader | None, missing: str) -> ClusterState | str:
    if read is None:
        return missing
    try:
        return read(cluster)
    except ClusterError as e:
        return e.problem  # the caller names the cluster
    except Exception as e:  # any failure of a protecting source must block pruning, not crash the run
        return str(e) or type(e).__name__


def _merged(name: str, parts: list[ClusterState | str]) -> ClusterState | str:
    """One cluster's reads as one state: every usage of each image, or every reason one failed."""
    problems = [part for part in parts if isinstance(part, str)]
    if problems:
        return "; ".join(problems)
    states = [part for part in parts if isinstance(part, ClusterState)]
    if len(states) == 1:
        return states[0]
    usages: dict[ImageReference, dict[Usage, None]] = {}  # insertion-ordered sets
    for state in states:
        for reference, found in state.images.items():
            usages.setdefault(reference, {}).update(dict.fromkeys(found))
    return ClusterState(name, MappingProxyType({ref: tuple(usages[ref]) for ref in sorted(usages, key=str)}))


def _observe_retention(policy: RetentionPolicy, registry: Registry, resolver: SecretResolver,
                       cache_dir: Path | None, clients: dict[str, RegistryClient],
                       pools: dict[str, ThreadPoolExecutor], shard: Shard | None = None,
                       handover: _Handover | None = None) -> RetentionObservation:
    commits: dict[int, GitCommits] = {}
    for index, rule in enumerate(policy.keep):
        if rule.git_refs is not None:
            try:
                repos = cache_dir and cache_dir / "repos"
                refs = rule.git_refs
                # imagesPerReference counts images, limit ranks refs by date: both need each ref's history
                commits[index] = ref_histories(refs, cache_dir=repos) if (
                    refs.images_per_reference is not None or refs.limit is not None) else live_commits(
                    refs, cache_dir=repos)
            except SourceError as e:
                commits[index] = str(e)
    try:
        client, requests = _client(registry, resolver, cache_dir, clients, pools)
        names = client.repositories(policy.repositories)
        unmatched = unmatched_globs(policy.repositories, names)  # before sharding: another shard's match counts
        if shard is not None:
            names = [name for name in names if shard.owns_repository(registry.name, name)]
        if handover is None:
            return RetentionObservation(observe_repositories(client, names, pool=requests), commits, unmatched)
        slots = stream_repositories(client, names, lambda state: handover.put(policy.name, commits, state),
                                    pool=requests)
    except (RegistryError, SecretError) as e:
        return RetentionObservation(f"registry {registry.name} could not be read: {e}", commits)
    handover.slots[policy.name] = slots  # planned, or waiting for the protecting sources: resolved at the end
    return RetentionObservation((), commits, unmatched)


def unmatched_globs(patterns: Sequence[str], names: Iterable[str]) -> tuple[str, ...]:
    """The globs among ``patterns`` that match none of ``names`` (a name without a glob is not
    one: a repository nothing was pushed to yet may be absent from the catalog)."""
    found = list(names)
    return tuple(p for p in patterns if is_glob(p) and not any(glob_pattern([p]).match(n) for n in found))
