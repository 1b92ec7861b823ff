"""What the commands that observe share: one set of connections per command, the readers
``observe()`` gets, the plan made from them, the audit history it needs, and the lock that keeps
commands that change things from overlapping."""

from __future__ import annotations

import fcntl
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import click

from reconcile.adapters.cluster import ClusterClient, ClusterError, connect, parse_image
from reconcile.adapters.cluster.secrets import read_kubernetes_secret
from reconcile.adapters.git.manifests import read_manifests_state
from reconcile.adapters.registry import RegistryClient, open_registry
from reconcile.apply.verify import InUse
from reconcile.audit import AuditError, AuditStore
from reconcile.audit.query import deploy_history, deploy_holds, promotion_arrivals
from reconcile.audit.store import utc_now
from reconcile.cli import Settings
from reconcile.cli.pullrequest import load_policies_for, refuse_cluster, refuse_registry, refused_registries
from reconcile.observe.state import ClusterState, DeployHealth
from reconcile.observe.world import ClusterReader, HealthReader, WrittenReader, observe
from reconcile.plan import Plan, build_plan
from reconcile.plan.deploy import Hold
from reconcile.policy import PolicyError, PolicySet, SourceError
from reconcile.policy.approvals import read_approvals
from reconcile.policy.model import Cluster, DeployPolicy, ManifestsSource, registry_host
from reconcile.policy.secrets import SecretResolver
from reconcile.policy.source import Snapshot, read_snapshot


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
        refuse_cluster(self.policies, name)  # only the ref read defines it: never connected to
        with self._lock:
            if name not in self.clusters:
                self.clusters[name] = connect(self.policies.clusters[name], self.resolver)
            return self.clusters[name]

    def registry(self, name: str) -> RegistryClient:
        refuse_registry(self.policies, name)
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
    connections.registries.update(refused_registries(policies))  # observe() opens what is not in there
    try:
        yield connections
    finally:
        connections.close()


def health_reader(connections: Connections) -> HealthReader:
    def read(deploy: DeployPolicy) -> DeployHealth:
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
            if stage.registry == registry and deploy.cluster is not None and (
                    digest := read_health(deploy).digest) is not None:
                digests.add(digest)
        return InUse(frozenset(digests), frozenset(tags))

    return read


def load_checked(settings: Settings, only: str | None) -> PolicySet:
    try:
        policies = load_policies_for(settings)  # connections from the trusted ref
    except PolicyError as e:
        for problem in e.problems:
            click.echo(str(problem), err=True)
        raise click.ClickException(f"the repo-of-record is invalid ({len(e.problems)} problems); "
                                   "run `reconcile validate`") from None
    except SourceError as e:
        raise click.ClickException(str(e)) from None
    known = [f"RetentionPolicy/{n}" for n in policies.retention_policies] + [
        f"PromotionPolicy/{n}" for n in policies.promotion_policies] + [
        f"DeployPolicy/{n}" for n in policies.deploy_policies]
    if only is not None and only not in known:
        raise click.ClickException(f"--only {only}: no such policy that plans actions (known: {', '.join(known)})")
    return policies


def history(settings: Settings) -> tuple[dict[str, list[str]] | None, dict[tuple[str, str], datetime],
                                        dict[str, Hold] | str]:
    """Deploy history, promotion arrivals and deploy holds; empty when there is no trail yet. When it
    exists but cannot be read: no deploy history (retention then fails closed) and, for holds, why
    (deploys then wait: a rollback may hold the very digest they would deploy)."""
    if not Path(settings.audit_db).exists():
        return {}, {}, {}
    try:
        with AuditStore.open(settings.audit_db, read_only=True) as store:
            holds = {name: Hold(*held) for name, held in deploy_holds(store).items()}
            return deploy_history(store), promotion_arrivals(store), holds
    except AuditError as e:
        return None, {}, f"the audit trail could not be read: {e}"


def observe_and_plan(settings: Settings, policies: PolicySet, only: str | None, connections: Connections) -> Plan:
    now = datetime.now(UTC)
    observation = observe(policies, resolver=connections.resolver, read_cluster=cluster_reader(connections),
                          read_helm=helm_reader(connections), read_health=health_reader(connections),
                          read_written=written_reader(connections), observed_at=utc_now(),
                          clients=connections.registries)
    deployed, arrivals, holds = history(settings)
    gates = {s.gates.approval for p in policies.promotion_policies.values() for s in p.stages if s.gates.approval}
    approvals = read_approvals(settings.repo, policies.commit, gates)
    return build_plan(policies, observation, deployed, now=now, only=only, arrivals=arrivals, approvals=approvals,
                      holds=holds)


@contextmanager
def command_lock(settings: Settings, *, wait: bool) -> Iterator[None]:
    """One command that changes things at a time per audit trail (``AUDIT_DB.lock``), so a rollback
    cannot land between a run's plan and its apply. ``run`` gives up at once when another holds it
    (the next schedule comes soon); apply, rollback and release-hold wait, saying so."""
    lock_path = Path(f"{settings.audit_db}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise click.ClickException(f"another reconcile run holds {lock_path}") from None
            click.echo(f"waiting for the reconcile command holding {lock_path} to finish", err=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def interactive() -> bool:
    """Whether a person can answer a question: stdin and stderr are terminals."""
    return sys.stdin.isatty() and sys.stderr.isatty()
