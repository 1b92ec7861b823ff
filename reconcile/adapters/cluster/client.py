"""``connect()`` and :class:`ClusterClient`: the cluster adapter's whole surface."""

from __future__ import annotations

from datetime import timedelta

from reconcile.adapters.cluster import deploy as _deploy
from reconcile.adapters.cluster import discovery as _discovery
from reconcile.adapters.cluster import helm as _helm
from reconcile.adapters.cluster import rollback as _rollback
from reconcile.adapters.cluster import rollout as _rollout
from reconcile.adapters.cluster.connection import DEFAULT_PAGE_SIZE, Connection, configuration_loader
from reconcile.adapters.cluster.kinds import deployable
from reconcile.observe.state import ClusterState, ImageReference
from reconcile.policy import model
from reconcile.policy.secrets import SecretResolver


def connect(cluster: model.Cluster, resolver: SecretResolver, *, page_size: int = DEFAULT_PAGE_SIZE,
            poll_interval: float = _rollout.POLL_INTERVAL) -> ClusterClient:
    """A client for ``cluster``: its configuration is loaded now (a :class:`ClusterError` if it
    cannot be), the network is first used by the first call."""
    return ClusterClient(cluster, Connection(cluster, configuration_loader(cluster, resolver)),
                         page_size=page_size, poll_interval=poll_interval)


def read_cluster_state(cluster: model.Cluster, resolver: SecretResolver) -> ClusterState:
    """Every image ``cluster`` uses, running or kept for rollback: the reader ``reconcile plan``
    protects images with (``reconcile.observe.world.ClusterReader``)."""
    with connect(cluster, resolver) as client:
        return client.images()


def read_helm_release_state(cluster: model.Cluster, resolver: SecretResolver) -> ClusterState:
    """Every image in ``cluster``'s retained Helm release history: the reader ``reconcile plan``
    protects ``protect.helmReleases`` images with. Needs the opt-in RBAC rule (list Secrets)."""
    with connect(cluster, resolver) as client:
        return client.helm_release_images()


class ClusterClient:
    """One cluster for one run. Every method raises :class:`ClusterError` (naming the cluster) when
    the API server cannot be reached, rejects the credentials, or forbids the call."""

    def __init__(self, cluster: model.Cluster, connection: Connection, *, page_size: int = DEFAULT_PAGE_SIZE,
                 poll_interval: float = _rollout.POLL_INTERVAL) -> None:
        self.cluster = cluster
        self.connection = connection
        self.page_size = page_size
        self.poll_interval = poll_interval

    def __repr__(self) -> str:
        return f"ClusterClient({self.cluster.name!r}, {self.connection!r})"

    def __enter__(self) -> ClusterClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.connection.close()

    @property
    def name(self) -> str:
        return self.cluster.name

    def images(self) -> ClusterState:
        """Every image in use, running or kept for rollback, in the namespaces the policy selects."""
        return _discovery.discover(self.connection, self.cluster, page_size=self.page_size)

    def helm_release_images(self) -> ClusterState:
        """Every image of every retained revision of every Helm release (Secrets of type
        ``helm.sh/release.v1``) in the namespaces the policy selects: the newest revision of each
        release ``running``, older ones ``rollback``. A release that cannot be decoded is a
        :class:`ClusterError` naming its Secret; a 403 names the opt-in RBAC rule."""
        return _helm.release_images(self.connection, self.cluster, page_size=self.page_size)

    def deploy(self, namespace: str, workload: model.Workload, image_ref: str | ImageReference, *,
               cause: str) -> _deploy.DeployResult:
        """Pin ``workload``'s container to ``image_ref``'s digest; ``cause`` (policy and repo
        commit) goes to the ``kubernetes.io/change-cause`` annotation."""
        return _deploy.deploy(self.connection, namespace, workload, image_ref, cause=cause)

    def workload_health(self, namespace: str, workload: model.Workload) -> tuple[str | None, bool, str]:
        """(image the container is set to, whether its rollout is complete, why) — one GET, no wait."""
        resource = deployable(workload.kind)
        obj = self.connection.get(resource, namespace, workload.name)
        containers = [*(resource.pod_spec(obj).get("initContainers") or []),
                      *(resource.pod_spec(obj).get("containers") or [])]
        image = next((c.get("image") for c in containers if c.get("name") == workload.container), None)
        status, reason = _rollout.assess(workload.kind, obj)
        return image, status == "complete", reason

    def wait_for_rollout(self, namespace: str, kind: str, name: str,
                         timeout: float | timedelta) -> _rollout.RolloutResult:
        return _rollout.wait_for_rollout(self.connection, namespace, kind, name, timeout,
                                         poll_interval=self.poll_interval)

    def rollback(self, namespace: str, kind: str, name: str, *, to_revision: int | None = None,
                 to_digest: str | None = None, container: str | None = None,
                 cause: str | None = None, resume: bool = False) -> _rollback.RollbackResult:
        return _rollback.rollback(self.connection, namespace, kind, name, to_revision=to_revision,
                                  to_digest=to_digest, container=container, cause=cause, resume=resume,
                                  page_size=self.page_size)

    def rollback_facts(self, namespace: str, kind: str, name: str, container: str) -> _rollback.RollbackFacts:
        """Paused, revisionHistoryLimit, the container's image and the digests its pods run it as."""
        return _rollback.rollback_facts(self.connection, namespace, kind, name, container, page_size=self.page_size)

    def revisions(self, namespace: str, kind: str, name: str) -> list[_rollback.Revision]:
        """The revisions the workload keeps for rollback, oldest first (``kubectl rollout history``)."""
        return _rollback.revision_history(self.connection, namespace, kind, name, page_size=self.page_size)
