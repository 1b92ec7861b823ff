"""Discovery: every image a cluster uses, over several namespaces and kinds, page by page."""

from __future__ import annotations

from functools import partial

from reconcile.adapters.cluster import read_cluster_state
from reconcile.adapters.cluster.discovery import namespace_filter
from reconcile.observe.state import ClusterState
from reconcile.observe.world import ClusterReader
from reconcile.policy import model
from reconcile.policy.secrets import SecretRef, SecretResolver
from tests.adapters.cluster.backends import Backend, FixtureBackend
from tests.adapters.cluster.scenarios import (
    LISTS,
    cron_job,
    daemon_set,
    deployment,
    digest,
    job,
    owned,
    pod,
    set_image,
    stateful_set,
)
from tests.kube import ApiServer, Request

Found = dict[str, list[tuple[str, str, str, str, str]]]


def build(backend: Backend) -> tuple[list[str], Found]:
    """Four namespaces (the last one excluded by the Cluster policy) with every kind discovery reads;
    returns them and the images discovery must report, with their usages."""
    a, b, c, x = (backend.namespace(suffix) for suffix in "abcx")

    def history(kind: str, namespace: str, name: str, count: int) -> None:
        backend.wait(f"{count} revisions of {name}",
                     lambda: len(owned(backend, "apps/v1", kind, namespace, name)) == count)

    web = backend.create(deployment(a, "web", {"web": "ghcr.io/acme/web:1.0"},
                                    init={"migrate": "ghcr.io/acme/migrate:1.0"}))
    history("ReplicaSet", a, "web", 1)
    set_image(backend, web, "web", f"ghcr.io/acme/web@{digest('a')}")  # revision 1 stays only for rollback
    history("ReplicaSet", a, "web", 2)
    backend.create(pod(a, "runner", {"pause": "registry.k8s.io/pause:3.10"}, pending=False))
    backend.create(pod(a, "pending", {"app": "nginx"}, init={"setup": "busybox:1.36"}))
    backend.add_ephemeral_container(a, "pending", "debug", "docker.io/library/busybox:1.37")

    db = backend.create(stateful_set(b, "db", {"db": "localhost:5000/db:15"}))
    history("ControllerRevision", b, "db", 1)
    set_image(backend, db, "db", "localhost:5000/db:16")
    history("ControllerRevision", b, "db", 2)
    backend.create(daemon_set(b, "agent", {"agent": "quay.io/prometheus/node-exporter:v1.8.0"}))
    history("ControllerRevision", b, "agent", 1)

    backend.create(job(c, "migrate", {"migrate": "python:3.12-slim"}))
    backend.create(cron_job(c, "report", {"report": f"registry.example.com:8443/team/report:2024.1@{digest('c')}"},
                            init={"fetch": "alpine"}))
    backend.create(pod(c, "lonely", {"main": "python:3.12-slim"}))
    backend.create(deployment(x, "hidden", {"hidden": "excluded.example.com/hidden:1"}))
    history("ReplicaSet", x, "hidden", 1)

    ran = backend.start_pod(a, "runner")["pause"]  # the kubelet reports the digest the tag resolved to
    running, rollback = "running", "rollback"
    expected: Found = {
        "ghcr.io/acme/web:1.0": [(a, "ReplicaSet", "web", "web", rollback)],
        f"ghcr.io/acme/web@{digest('a')}": [(a, "Deployment", "web", "web", running),
                                            (a, "ReplicaSet", "web", "web", rollback)],
        "ghcr.io/acme/migrate:1.0": [(a, "Deployment", "web", "migrate", running),
                                     (a, "ReplicaSet", "web", "migrate", rollback),
                                     (a, "ReplicaSet", "web", "migrate", rollback)],
        f"registry.k8s.io/pause:3.10@{ran.rsplit('@', 1)[1]}": [(a, "Pod", "runner", "pause", running)],
        "docker.io/library/nginx:latest": [(a, "Pod", "pending", "app", running)],
        "docker.io/library/busybox:1.36": [(a, "Pod", "pending", "setup", running)],
        "docker.io/library/busybox:1.37": [(a, "Pod", "pending", "debug", running)],
        "localhost:5000/db:15": [(b, "ControllerRevision", "db", "db", rollback)],
        "localhost:5000/db:16": [(b, "ControllerRevision", "db", "db", running),
                                 (b, "StatefulSet", "db", "db", running)],
        "quay.io/prometheus/node-exporter:v1.8.0": [(b, "ControllerRevision", "agent", "agent", running),
                                                    (b, "DaemonSet", "agent", "agent", running)],
        "docker.io/library/python:3.12-slim": [(c, "Job", "migrate", "migrate", running),
                                               (c, "Pod", "lonely", "main", running)],
        f"registry.example.com:8443/team/report:2024.1@{digest('c')}": [(c, "CronJob", "report", "report", running)],
        "docker.io/library/alpine:latest": [(c, "CronJob", "report", "fetch", running)],
    }
    return [a, b, c, x], expected


def found(state: ClusterState) -> Found:
    def owner(kind: str, name: str) -> str:
        # ReplicaSet and ControllerRevision names end in a hash the controller chose.
        return name.rsplit("-", 1)[0] if kind in ("ReplicaSet", "ControllerRevision") else name

    return {str(ref): sorted((u.namespace, u.kind, owner(u.kind, u.name), u.container, u.state) for u in usages)
            for ref, usages in state.images.items()}


def discover(backend: Backend, namespaces: list[str]) -> ClusterState:
    with backend.connect(backend.identity(namespaces), include_namespaces=(f"{backend.prefix}-*",),
                         exclude_namespaces=(namespaces[-1],)) as client:
        return client.images()


def test_discovery_finds_every_image_in_use_and_what_tags_ran_as(kube: Backend) -> None:
    namespaces, expected = build(kube)
    state = discover(kube, namespaces)
    assert found(state) == expected
    assert state.cluster == "prod-eu"
    assert {digest("a"), digest("c")} <= state.digests()


def test_discovery_lists_each_kind_once_cluster_wide_in_pages(fixture_backend: FixtureBackend,
                                                              api: ApiServer) -> None:
    namespaces, expected = build(fixture_backend)
    assert found(discover(fixture_backend, namespaces)) == expected
    lists = [r for r in api.requests if r.user and r.user.startswith("system:serviceaccount") and r.method == "GET"]
    assert {r.path for r in lists} == LISTS  # cluster-wide: no namespaced path
    assert all(r.query.get("limit") == "2" and r.status == 200 for r in lists)
    first_pages = [r.path for r in lists if "continue" not in r.query]
    assert sorted(first_pages) == sorted(LISTS)  # one list per kind
    continued = {r.path for r in lists if "continue" in r.query}
    # 3 pods (a, a, c), 3 ReplicaSets (a, a, x), 3 ControllerRevisions: pages span namespaces.
    assert continued == {"/api/v1/pods", "/apis/apps/v1/replicasets", "/apis/apps/v1/controllerrevisions"}


def test_an_expired_continue_token_restarts_the_list(fixture_backend: FixtureBackend, api: ApiServer) -> None:
    namespace = fixture_backend.namespace("a")
    for name in ("p1", "p2", "p3", "p4", "p5"):
        fixture_backend.create(pod(namespace, name, {"main": f"example.com/{name}:1"}))

    def expire_once(request: Request) -> None:
        # As etcd compaction can between two pages.
        if request.path == "/api/v1/pods" and "continue" not in request.query and not expired:
            expired.append(request)
            api.expire_continue_tokens()

    expired: list[Request] = []
    api.on_request = expire_once
    state = discover(fixture_backend, [namespace, "none"])
    assert sorted(ref.repository for ref in state.images) == ["p1", "p2", "p3", "p4", "p5"]
    pods = [r for r in api.requests if r.path == "/api/v1/pods"]
    assert [r.status for r in pods] == [200, 410, 200, 200, 200]


def test_namespace_globs_include_then_exclude() -> None:
    cases: list[tuple[tuple[str, ...], tuple[str, ...], dict[str, bool]]] = [
        ((), (), {"web": True, "kube-system": True}),
        (("web", "team-*"), (), {"web": True, "team-a": True, "other": False}),
        ((), ("kube-*",), {"kube-system": False, "web": True}),
        (("team-*",), ("team-secret",), {"team-a": True, "team-secret": False}),
    ]
    for include, exclude, expected in cases:
        keep = namespace_filter(include, exclude)
        assert {namespace: keep(namespace) for namespace in expected} == expected, (include, exclude)


def test_init_and_ephemeral_container_statuses_resolve_their_tags_too(fixture_backend: FixtureBackend,
                                                                      api: ApiServer) -> None:
    namespace = fixture_backend.namespace("a")
    fixture_backend.create(pod(namespace, "p", {"app": "ghcr.io/acme/app:1"}, init={"setup": "ghcr.io/acme/setup:1"}))
    fixture_backend.add_ephemeral_container(namespace, "p", "debug", "busybox:1.37")
    api.set_status("pods", namespace, "p", {  # as a dockershim-era kubelet would report them
        "phase": "Running",
        "containerStatuses": [{"name": "app", "imageID": f"ghcr.io/acme/app@{digest('1')}"}],
        "initContainerStatuses": [{"name": "setup", "imageID": f"docker-pullable://ghcr.io/acme/setup@{digest('2')}"}],
        "ephemeralContainerStatuses": [{"name": "debug", "imageID": f"docker.io/library/busybox@{digest('3')}"}]})
    state = discover(fixture_backend, [namespace, "none"])
    assert sorted(map(str, state.images)) == [
        f"docker.io/library/busybox:1.37@{digest('3')}", f"ghcr.io/acme/app:1@{digest('1')}",
        f"ghcr.io/acme/setup:1@{digest('2')}"]


def test_the_plan_reads_a_cluster_through_read_cluster_state(fixture_backend: FixtureBackend) -> None:
    namespace = fixture_backend.namespace("a")
    fixture_backend.create(pod(namespace, "p", {"app": "ghcr.io/acme/app:1"}))
    policy = model.Cluster(name="prod-eu", in_cluster=False, include_namespaces=(namespace,),
                           kubeconfig=SecretRef.from_mapping({"file": str(fixture_backend.identity([namespace]))}))
    reader: ClusterReader = partial(read_cluster_state, resolver=SecretResolver(environ={}))  # as observe() takes it
    state = reader(policy)
    assert [str(ref) for ref in state.images] == ["ghcr.io/acme/app:1"]
