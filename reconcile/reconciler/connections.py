"""One set of connections per command: a secret resolver, one client per registry and per cluster,
each git snapshot read once, and the readers ``observe()`` and the executor get from them.

In pull-request mode a Registry or Cluster that only the ref under review defines is never
connected to (``reconcile.policy.trust``): its client refuses before anything is sent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn

from reconcile.adapters.cluster import ClusterClient, ClusterError, connect, parse_image
from reconcile.adapters.cluster.secrets import read_kubernetes_secret
from reconcile.adapters.git.manifests import read_manifests_state
from reconcile.adapters.heroku import image_id
from reconcile.adapters.registry import RegistryClient, RegistryError, open_registry
from reconcile.apply.executor import open_heroku
from reconcile.apply.verify import InUse
from reconcile.observe.state import ClusterState, DeployHealth
from reconcile.observe.world import ClusterReader, HealthReader, WrittenReader
from reconcile.policy.model import Cluster, DeployPolicy, ManifestsSource, PolicySet, registry_host
from reconcile.policy.secrets import SecretResolver
from reconcile.policy.source import Snapshot, read_snapshot
from reconcile.policy.trust import unconnectable_reason


@dataclass
class Connections:
    """One resolver, one client per registry and one per cluster for the whole run: pooled HTTP
    connections, one token per scope, and a cluster config reloaded at most once on a 401."""

    policies: PolicySet
    resolver: SecretResolver = field(default_factory=lambda: SecretResolver(kubernetes_reader=read_kubernetes_secret))
    registries: dict[str, RegistryClient] = field(default_factory=dict)
    clusters: dict[str, ClusterClient] = field(default_factory=dict)
    _snapshots: dict[tuple[str, str | None], Future[Snapshot]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)  # observe() reads sources side by side

    def cluster(self, name: str) -> ClusterClient:
        _refuse_cluster(self.policies, name)  # only the ref read defines it: never connected to
        with self._lock:
            if name not in self.clusters:
                self.clusters[name] = connect(self.policies.clusters[name], self.resolver)
            return self.clusters[name]

    def registry(self, name: str) -> RegistryClient:
        _refuse_registry(self.policies, name)
        with self._lock:
            if name not in self.registries:
                self.registries[name] = open_registry(self.policies.registries[name], self.resolver)
            return self.registries[name]

    def snapshot(self, repo: str, ref: str | None) -> Snapshot:
        """``repo`` at ``ref``, fetched and read once per run however many Clusters and DeployPolicies
        name it (a manifests repository usually holds every environment)."""
        with self._lock:
            pending = self._snapshots.get((repo, ref))
            reader = pending is None
            if pending is None:
                pending = self._snapshots[(repo, ref)] = Future()
        if reader:
            try:
                pending.set_result(read_snapshot(repo, ref))
            except BaseException as e:  # every reader of this repository sees the same failure
                pending.set_exception(e)
        return pending.result()

    def close(self) -> None:
        clients: list[RegistryClient | ClusterClient] = [*self.registries.values(), *self.clusters.values()]
        for client in clients:
            client.close()


@contextmanager
def connections_for(policies: PolicySet) -> Iterator[Connections]:
    connections = Connections(policies)
    connections.registries.update(_refused_registries(policies))  # observe() opens what is not in there
    try:
        yield connections
    finally:
        connections.close()


def health_reader(connections: Connections) -> HealthReader:
    def read(deploy: DeployPolicy) -> DeployHealth:
        if deploy.heroku is not None:
            return _heroku_health(connections, deploy)
        if deploy.cluster is None or deploy.namespace is None:
            raise ValueError("deploys by manifests write-back; its rollout health is not observable here")
        client = connections.cluster(deploy.cluster)
        images, healthy, why = [], True, []
        for workload in deploy.workloads:
            image, done, reason = client.workload_health(deploy.namespace, workload)
            images.append(parse_image(image).digest if image else None)
            healthy = healthy and done
            why.append(reason)
        digest = images[0] if len(set(images)) == 1 else None  # workloads on different digests: not one rollout
        return DeployHealth(digest, healthy, "; ".join(why) if not healthy else "")

    return read


HEROKU_DIGESTS_SEARCHED = 100  # the stage's tagged manifests whose image ID is compared with what runs


def _heroku_health(connections: Connections, deploy: DeployPolicy) -> DeployHealth:
    """What a heroku target's process runs now, as the stage's manifest digest: Heroku knows the
    image ID (config digest), so it is matched against the stage's tagged manifests. An image ID
    none of them has is reported as no digest (the stage's is then deployed)."""
    target = deploy.heroku
    assert target is not None
    client = open_heroku(connections.policies, deploy, connections.resolver)
    try:
        running = client.current(target.app, target.process)
    finally:
        client.close()
    if running is None:
        return DeployHealth(None, True, f"no image released to {target.process} yet")
    stage = connections.policies.promotion_policies[deploy.promotion].stage(deploy.stage)
    registry = connections.registry(stage.registry)
    seen: set[str] = set()
    for tag in sorted(registry.tags(stage.repository), reverse=True):
        descriptor = registry.resolve(stage.repository, tag)
        if descriptor is None or descriptor.digest in seen:
            continue
        seen.add(descriptor.digest)
        if image_id(registry, stage.repository, descriptor.digest) == running:
            return DeployHealth(descriptor.digest, True, "")
        if len(seen) >= HEROKU_DIGESTS_SEARCHED:
            break
    return DeployHealth(None, True, f"runs image {running[:19]}, not an image of {stage.repository}")


def written_reader(connections: Connections) -> WrittenReader:
    """The image a manifests-target DeployPolicy's manifests name now, at its branch: a kustomization
    ``images:`` entry for the stage's repository wins over the workloads' own ``image:`` lines."""
    def read(deploy: DeployPolicy) -> DeployHealth:
        target = deploy.manifests
        assert target is not None
        stage = connections.policies.promotion_policies[deploy.promotion].stage(deploy.stage)
        source = Cluster(f"DeployPolicy/{deploy.name}", False, None,
                         manifests=ManifestsSource(target.repo, target.path, target.branch))
        state = read_manifests_state(source, connections.snapshot)
        wanted = {(w.kind, w.name, w.container) for w in deploy.workloads}
        entries = {ref.digest for ref, usages in state.images.items() for u in usages
                   if u.kind == "Kustomization" and ref.repository == stage.repository}
        own = {ref.digest for ref, usages in state.images.items() for u in usages
               if (u.kind, u.name, u.container) in wanted and (deploy.namespace in (None, u.namespace)
                                                              or u.namespace == "default")}
        digests = entries or own
        if len(digests) != 1:
            raise ValueError(f"the manifests name {len(digests)} different images for the workloads")
        return DeployHealth(next(iter(digests)), True, "")

    return read


def cluster_reader(connections: Connections) -> ClusterReader:
    def read(cluster: Cluster) -> ClusterState:
        if cluster.manifests:
            return read_manifests_state(cluster, connections.snapshot)
        return connections.cluster(cluster.name).images()

    return read


def helm_reader(connections: Connections) -> ClusterReader:
    """protect.helmReleases: the release Secrets of a cluster reconcile connects to."""
    def read(cluster: Cluster) -> ClusterState:
        if cluster.manifests:
            raise ClusterError(cluster.name, f"cluster {cluster.name} is known by its manifests; it has no Helm "
                                             "release history (name it in protect.inUse instead)")
        return connections.cluster(cluster.name).helm_release_images()

    return read


def in_use_reader(policies: PolicySet, connections: Connections) -> Callable[[str], InUse]:
    """What a RetentionPolicy's protecting clusters use now, read again at apply time just before its
    first delete: a digest deployed since the plan is then not deleted. Raises when a cluster
    cannot be read (the executor then deletes nothing of that policy)."""
    read_cluster, read_helm, read_health = cluster_reader(connections), helm_reader(connections), \
        health_reader(connections)

    def read(name: str) -> InUse:
        protect, registry = policies.retention_policies[name].protect, policies.retention_policies[name].registry
        host = registry_host(policies.registries[registry])
        digests: set[str] = set()
        tags: set[str] = set()
        states = [read_cluster(policies.clusters[cluster]) for cluster in sorted(protect.in_use)]
        states += [read_helm(policies.clusters[cluster]) for cluster in sorted(protect.helm_releases)]
        for state in states:
            for ref in state.images:
                if ref.digest:
                    digests.add(ref.digest)
                elif ref.tag and ref.registry == host:
                    tags.add(f"{ref.repository}:{ref.tag}")
        for deploy in sorted(policies.deploy_policies.values(), key=lambda d: d.name):
            stage = policies.promotion_policies[deploy.promotion].stage(deploy.stage)
            # what its workloads run now (a manifests target's pins change only by reconcile's own commits)
            if stage.registry == registry and (deploy.cluster is not None or deploy.heroku is not None) and (
                    digest := read_health(deploy).digest) is not None:
                digests.add(digest)
        return InUse(frozenset(digests), frozenset(tags))

    return read


class RefusedRegistry:
    """Stands in for the client of a Registry only the ref read defines: every operation fails
    before anything is sent, so the policies using it are blocked as for a registry that is down."""

    concurrency = 1

    def __init__(self, name: str, reason: str) -> None:
        self.name, self.reason = name, reason

    def __getattr__(self, operation: str) -> Any:
        def refuse(*_args: Any, **_kwargs: Any) -> NoReturn:
            raise RegistryError(self.name, None, operation.lstrip("_"), self.reason)

        return refuse

    def requests_made(self) -> dict[str, int]:
        return {}  # nothing is ever sent

    def close(self) -> None:
        pass


def _refuse_registry(policies: PolicySet, name: str) -> None:
    reason = unconnectable_reason(policies, "Registry", name)
    if reason is not None:
        raise RegistryError(name, None, "connect", reason)


def _refuse_cluster(policies: PolicySet, name: str) -> None:
    reason = unconnectable_reason(policies, "Cluster", name)
    if reason is not None:
        raise ClusterError(name, reason)


def _refused_registries(policies: PolicySet) -> dict[str, Any]:
    return {key.split("/", 1)[1]: RefusedRegistry(key.split("/", 1)[1], reason)
            for key, reason in policies.unconnectable.items() if key.startswith("Registry/")}




def requests_made(registries: Mapping[str, RegistryClient]) -> dict[str, dict[str, int]]:
    """What each open registry client has sent so far (``GET manifest``: n, …); layouts send nothing."""
    made = {}
    for name, client in sorted(registries.items()):
        counted = getattr(client, "requests_made", None)
        if counted is not None and (found := counted()):
            made[name] = found
    return made
