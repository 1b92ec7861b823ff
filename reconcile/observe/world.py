"""Observe everything a plan needs, through the adapters, turning each source's failure into a
reason rather than an exception: the planner then blocks exactly what depended on it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from reconcile.observe.cluster import ClusterError
from reconcile.observe.git_refs import live_commits
from reconcile.observe.registry import RegistryClient, RegistryError, observe_repository, open_registry
from reconcile.observe.state import ClusterState, RepositoryState
from reconcile.policy.model import Cluster, PolicySet, Registry, RetentionPolicy
from reconcile.policy.secrets import SecretError, SecretResolver
from reconcile.policy.source import SourceError

ClusterReader = Callable[[Cluster], ClusterState]


@dataclass(frozen=True)
class RetentionObservation:
    """What one RetentionPolicy's decision needs, each part either observed or why not."""

    repositories: tuple[RepositoryState, ...] | str
    git_commits: Mapping[int, frozenset[str] | str] = field(default_factory=dict)


@dataclass(frozen=True)
class Observation:
    observed_at: str
    clusters: Mapping[str, ClusterState | str]
    retention: Mapping[str, RetentionObservation]


def registry_host(registry: Registry) -> str:
    """host[:port] as image references in clusters name it ('' for a layout directory)."""
    return urlsplit(registry.url).netloc.lower() if not registry.is_layout else ""


def observe(policies: PolicySet, *, resolver: SecretResolver, read_cluster: ClusterReader | None,
            observed_at: str, cache_dir: Path | None = None,
            clients: dict[str, RegistryClient] | None = None) -> Observation:
    """Observe the registries, clusters and source repositories the retention policies name.

    ``clients`` (registry name -> client) is filled in and returned to the caller, who applies
    through the same connections and closes them.
    """
    clients = {} if clients is None else clients
    cluster_names = sorted({name for p in policies.retention_policies.values()
                            for name in (*p.protect.in_use, *p.protect.helm_releases)})
    clusters: dict[str, ClusterState | str] = {}
    for name in cluster_names:
        clusters[name] = _read_cluster(policies.clusters[name], read_cluster)
    retention = {name: _observe_retention(policy, policies.registries[policy.registry], resolver, cache_dir, clients)
                 for name, policy in sorted(policies.retention_policies.items())}
    return Observation(observed_at, clusters, retention)


def _read_cluster(cluster: Cluster, read_cluster: ClusterReader | None) -> ClusterState | str:
    if read_cluster is None:
        return "no cluster adapter is configured"
    try:
        return read_cluster(cluster)
    except ClusterError as e:
        return e.problem  # the caller names the cluster
    except Exception as e:  # any failure of a protecting source must block pruning, not crash the run
        return str(e) or type(e).__name__


def _observe_retention(policy: RetentionPolicy, registry: Registry, resolver: SecretResolver,
                       cache_dir: Path | None, clients: dict[str, RegistryClient]) -> RetentionObservation:
    commits: dict[int, frozenset[str] | str] = {}
    for index, rule in enumerate(policy.keep):
        if rule.git_refs is not None:
            try:
                commits[index] = live_commits(rule.git_refs, cache_dir=cache_dir and cache_dir / "repos")
            except SourceError as e:
                commits[index] = str(e)
    try:
        client = clients.get(registry.name) or clients.setdefault(
            registry.name, open_registry(registry, resolver, cache_dir=cache_dir and cache_dir / "content"))
        names = client.repositories(policy.repositories)
        repositories = tuple(observe_repository(client, name) for name in names)
    except (RegistryError, SecretError) as e:
        return RetentionObservation(f"registry {registry.name} could not be read: {e}", commits)
    return RetentionObservation(repositories, commits)
