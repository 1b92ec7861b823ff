"""protect.helmReleases: every image in the retained Helm release history, from real-format release
Secrets, read with the opt-in RBAC rule only, and failing closed on anything it cannot read."""

from __future__ import annotations

import base64
import gzip
import json
import re
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconcile.adapters.cluster import ClusterError, ForbiddenError
from reconcile.adapters.cluster.helm import FIELD_SELECTOR, RELEASE_TYPE, decode_release
from reconcile.observe.state import (
    OCI_MANIFEST,
    ClusterState,
    Descriptor,
    Image,
    ImageReference,
    RepositoryState,
    Usage,
)
from reconcile.observe.world import observe
from reconcile.plan.retention import RetentionInputs, plan_retention
from reconcile.policy import model
from reconcile.policy.model import KeepRule, ManifestsSource, PolicySet, Protection, RetentionPolicy
from reconcile.policy.secrets import SecretResolver
from reconcile.reconciler.connections import Connections, cluster_reader, helm_reader
from tests.adapters.cluster.backends import HELM_RBAC_MANIFEST, RBAC_MANIFEST, SERVICE_ACCOUNT, Backend, FixtureBackend
from tests.adapters.cluster.scenarios import digest
from tests.kube import manifest_rules

HELM = manifest_rules(HELM_RBAC_MANIFEST, service_account=SERVICE_ACCOUNT)  # the opt-in ClusterRole's rules
SECRETS = "/api/v1/secrets"
REGISTRY = "registry.ci.example.com"


# -- release Secrets, built as Helm 3 builds them ---------------------------------------------------

def deployment(name: str, images: dict[str, str], *, kind: str = "Deployment") -> str:
    """One manifest document as `helm template` renders it: a Source comment, no namespace."""
    containers = "\n".join(f"        - name: {c}\n          image: \"{i}\"" for c, i in images.items())
    return textwrap.dedent(f"""\
        ---
        # Source: {name}/templates/{kind.lower()}.yaml
        apiVersion: apps/v1
        kind: {kind}
        metadata:
          name: {name}
          labels:
            app.kubernetes.io/managed-by: Helm
        spec:
          template:
            spec:
              containers:
        """) + containers + "\n"


SERVICE = """\
---
# Source: web/templates/service.yaml
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
    - port: 80
"""


def release(namespace: str, name: str, version: int, status: str, manifest: str, *,
            hooks: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    """The release object Helm 3 stores (pkg/release.Release as JSON)."""
    deployed = datetime(2025, 1, version, tzinfo=UTC).isoformat()
    return {
        "name": name,
        "info": {"first_deployed": deployed, "last_deployed": deployed, "deleted": "", "status": status,
                 "description": "Install complete" if version == 1 else "Upgrade complete"},
        "chart": {"metadata": {"name": name, "version": f"1.{version}.0", "apiVersion": "v2"},
                  "lock": None, "templates": [{"name": "templates/deployment.yaml",
                                               "data": base64.b64encode(b"{{ .Values.image }}").decode()}],
                  "values": {"image": "x"}, "schema": None, "files": []},
        "config": {"replicas": 2},
        "manifest": manifest,
        "hooks": [{"name": hook, "kind": "Job", "path": f"{name}/templates/{hook}.yaml", "manifest": text,
                   "events": ["pre-upgrade"], "last_run": {"started_at": "", "completed_at": "", "phase": ""},
                   "weight": 0, "delete_policies": ["before-hook-creation"]} for hook, text in hooks],
        "version": version,
        "namespace": namespace,
    }


def helm_encoded(body: dict[str, Any], *, compress: bool = True) -> str:
    """Helm's encodeRelease: JSON, gzip at BestCompression (Go writes mtime 0), base64."""
    data = json.dumps(body).encode()
    return base64.b64encode(gzip.compress(data, compresslevel=9, mtime=0) if compress else data).decode()


def release_secret(namespace: str, body: dict[str, Any], *, encoded: str | None = None) -> dict[str, Any]:
    """Helm's newSecretsObject; the API serves the bytes of data.release base64-encoded once more."""
    name, version, status = body["name"], body["version"], body["info"]["status"]
    value = encoded if encoded is not None else helm_encoded(body)
    return {"apiVersion": "v1", "kind": "Secret", "type": RELEASE_TYPE,
            "metadata": {"name": f"sh.helm.release.v1.{name}.v{version}", "namespace": namespace,
                         "labels": {"owner": "helm", "name": name, "version": str(version), "status": status,
                                    "createdAt": str(1735689600 + version)}},
            "data": {"release": base64.b64encode(value.encode()).decode()}}


def install(backend: Backend, namespace: str, body: dict[str, Any], **options: Any) -> None:
    backend.create(release_secret(namespace, body, **options))


# -- the scenario -----------------------------------------------------------------------------------

Found = dict[str, list[tuple[str, str, str, str]]]


def build(backend: Backend) -> tuple[list[str], Found]:
    """Two namespaces of releases (one of them with three revisions, one with a hook), a third
    excluded by the Cluster policy, and Secrets that are not Helm's. Returns the namespaces to
    include and the usages expected: image -> (namespace, release.vN, where, state)."""
    a, b, x = (backend.namespace(suffix) for suffix in "abx")
    web = f"{REGISTRY}/acme/web"
    install(backend, a, release(a, "web", 1, "superseded",
                                deployment("web", {"web": f"{web}:1.0", "proxy": "envoyproxy/envoy:v1.30"}) + SERVICE))
    install(backend, a, release(a, "web", 2, "superseded",
                                deployment("web", {"web": f"{web}@{digest('2')}"}) + SERVICE))
    migrate = deployment("web-migrate", {"migrate": f"{REGISTRY}/acme/migrate:3.0"}, kind="Job")
    install(backend, a, release(a, "web", 3, "deployed", deployment("web", {"web": f"{web}:3.0"}) + SERVICE,
                                hooks=(("web-migrate", migrate),)))
    install(backend, b, release(b, "db", 1, "deployed", deployment("db", {"db": "localhost:5000/db:16"},
                                                                     kind="StatefulSet")))
    install(backend, x, release(x, "hidden", 1, "deployed", deployment("hidden", {"h": "excluded.example.com/h:1"})))
    # Not Helm's: never sent by the server, and could not be decoded if they were.
    backend.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-password", "namespace": a},
                    "data": {"release": base64.b64encode(b"hunter2, not a release").decode()}})
    backend.create({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
                    "metadata": {"name": "pull", "namespace": b},
                    "data": {".dockerconfigjson": base64.b64encode(b'{"auths": {}}').decode()}})
    # Excluded by the Cluster policy: not decoded, so not an error although it is corrupt.
    install(backend, x, release(x, "broken", 1, "deployed", ""), encoded="not base64 at all!")
    expected: Found = {
        f"{web}:1.0": [(a, "web.v1", "Deployment/web/web", "rollback")],
        "docker.io/envoyproxy/envoy:v1.30": [(a, "web.v1", "Deployment/web/proxy", "rollback")],
        f"{web}@{digest('2')}": [(a, "web.v2", "Deployment/web/web", "rollback")],
        f"{web}:3.0": [(a, "web.v3", "Deployment/web/web", "running")],
        f"{REGISTRY}/acme/migrate:3.0": [(a, "web.v3", "hook web-migrate: Job/web-migrate/migrate", "running")],
        "localhost:5000/db:16": [(b, "db.v1", "StatefulSet/db/db", "running")],
    }
    return [a, b, x], expected


def found(state: ClusterState) -> Found:
    assert all(u.kind == "HelmRelease" and u.cluster == "prod-eu" for us in state.images.values() for u in us)
    return {str(ref): [(u.namespace, u.name, u.container, u.state) for u in usages]
            for ref, usages in state.images.items()}


def helm_client(backend: Backend, namespaces: list[str], **cluster: Any) -> Any:
    kubeconfig = backend.identity([], extra=HELM)
    return backend.connect(kubeconfig, **{"exclude_namespaces": (namespaces[2],),
                                          "include_namespaces": (f"{backend.prefix}-*",), **cluster})


def test_every_retained_revision_of_every_release_is_found(kube: Backend) -> None:
    namespaces, expected = build(kube)
    with helm_client(kube, namespaces) as client:
        assert found(client.helm_release_images()) == expected


def test_only_helm_secrets_are_listed_page_by_page(fixture_backend: FixtureBackend) -> None:
    namespaces, expected = build(fixture_backend)
    api = fixture_backend.api
    before = len(api.seen("GET", SECRETS))
    with helm_client(fixture_backend, namespaces) as client:
        assert found(client.helm_release_images()) == expected
    lists = api.seen("GET", SECRETS)[before:]
    # Six release Secrets match (the excluded namespace's too: the list is cluster-wide), two a page.
    assert [(r.query.get("fieldSelector"), r.query.get("limit"), r.status) for r in lists] == [
        (FIELD_SELECTOR, "2", 200)] * 3
    assert [bool(r.query.get("continue")) for r in lists] == [False, True, True]
    # No get of any one Secret, no other list: the values of other Secrets never leave the server.
    assert {(r.method, r.path) for r in api.requests if "secrets" in r.path and r.user != "kubernetes-admin"} == {
        ("GET", SECRETS)}


def test_literal_namespaces_are_listed_each_so_a_role_per_namespace_suffices(fixture_backend: FixtureBackend,
                                                                          tmp_path: Path) -> None:
    namespaces, expected = build(fixture_backend)
    a, b, _ = namespaces
    roles = tmp_path / "helm-roles.yaml"
    roles.write_text(documented_role())
    rules = manifest_rules(roles, service_account=SERVICE_ACCOUNT, role_namespaces=[a, b])
    assert {rule.namespace for rule in rules} == {a, b}  # no cluster-wide rule at all
    kubeconfig = fixture_backend.identity([], extra=rules)
    api = fixture_backend.api
    before = len(api.requests)
    with fixture_backend.connect(kubeconfig, include_namespaces=(b, a)) as client:
        assert found(client.helm_release_images()) == expected
    lists = [r for r in api.requests[before:] if "secrets" in r.path]
    assert [(r.path, r.query.get("fieldSelector"), r.status) for r in lists] == [
        *[(f"/api/v1/namespaces/{a}/secrets", FIELD_SELECTOR, 200)] * 2,  # three releases, two a page
        (f"/api/v1/namespaces/{b}/secrets", FIELD_SELECTOR, 200)]


def documented_role() -> str:
    """The per-namespace Role and RoleBinding deploy/RBAC.md offers instead of the ClusterRole."""
    text = (RBAC_MANIFEST.parent / "RBAC.md").read_text()
    opt_in = text[text.index("## Opt-in: Helm release Secrets"):]
    block = re.search(r"^( *)```yaml\n(.*?)^\1```", opt_in, re.MULTILINE | re.DOTALL)
    assert block is not None
    return textwrap.dedent(block.group(2))


def test_without_the_opt_in_rule_a_403_names_it(kube: Backend) -> None:
    namespaces, _ = build(kube)
    with (kube.connect(kube.identity([]), include_namespaces=(f"{kube.prefix}-*",)) as client,
          pytest.raises(ForbiddenError) as raised):
        client.helm_release_images()
    message = str(raised.value)
    assert message.startswith("cluster prod-eu: forbidden: the service account needs 'list' on 'secrets' (core) "
                              "cluster-wide — protect.helmReleases")
    assert "OPT-IN ClusterRole reconcile-helm-history (deploy/opt-in/rbac-helm-history.yaml)" in message
    literal = namespaces[0]
    with (kube.connect(kube.identity([]), include_namespaces=(literal,)) as client,
          pytest.raises(ForbiddenError, match=f"in namespace {literal} — .* or a Role reconcile-helm-history "
                                              f"in namespace {literal}")):
        client.helm_release_images()


def broken_gzip(body: dict[str, Any]) -> str:
    data = gzip.compress(json.dumps(body).encode(), mtime=0)
    return base64.b64encode(data[:10] + bytes(len(data) - 10)).decode()


@pytest.mark.parametrize(("encode", "why"), [
    (lambda body: "%%% not base64", "data.release is not base64 of base64"),
    (broken_gzip, "corrupt gzip data"),
    (lambda body: helm_encoded(body)[:40], "data.release is not base64 of base64|truncated gzip data"),
    (lambda body: base64.b64encode(gzip.compress(b"{not json", mtime=0)).decode(), "not a JSON release"),
    (lambda body: helm_encoded({**body, "version": "3"}), "the release version is '3'"),
    (lambda body: helm_encoded({**body, "name": ""}), "the release has no name"),
    (lambda body: helm_encoded({**body, "manifest": "image: [unclosed"}), "YAML syntax error"),
    (lambda body: helm_encoded({**body, "manifest": deployment("web", {"web": "x:1"}) + "kind: Job\n"}),
     "duplicate key 'kind'"),
])
def test_a_release_that_cannot_be_decoded_fails_naming_its_secret(fixture_backend: FixtureBackend, encode: Any,
                                                                   why: str) -> None:
    namespace = fixture_backend.namespace("a")
    install(fixture_backend, namespace, release(namespace, "web", 1, "deployed", deployment("web", {"web": "w:1"})))
    body = release(namespace, "broken", 4, "deployed", deployment("broken", {"b": "b:1"}))
    install(fixture_backend, namespace, body, encoded=encode(body))
    with (fixture_backend.connect(fixture_backend.identity([], extra=HELM)) as client,
          pytest.raises(ClusterError) as raised):
        client.helm_release_images()
    message = str(raised.value)
    assert message.startswith(f"cluster prod-eu: Helm release Secret {namespace}/sh.helm.release.v1.broken.v4: "
                              "cannot read the release (")
    assert re.search(why, message), message
    assert message.endswith("its images cannot be protected, so nothing is pruned")


def test_releases_stored_before_compression_and_other_helm_details(fixture_backend: FixtureBackend) -> None:
    namespace = fixture_backend.namespace("a")
    plain = release(namespace, "old", 1, "deployed", deployment("old", {"old": "busybox:1.36"}))
    install(fixture_backend, namespace, plain, encoded=helm_encoded(plain, compress=False))
    # A failed upgrade: the deployed revision runs, the newest may be partly applied; both 'running'.
    install(fixture_backend, namespace, release(namespace, "app", 1, "deployed", deployment("app", {"a": "app:1"})))
    install(fixture_backend, namespace, release(namespace, "app", 2, "failed", deployment("app", {"a": "app:2"})))
    # Uninstalled with --keep-history: nothing runs, every revision is a rollback target.
    install(fixture_backend, namespace, release(namespace, "gone", 1, "superseded", deployment("gone", {"g": "g:1"})))
    install(fixture_backend, namespace, release(namespace, "gone", 2, "uninstalled", deployment("gone", {"g": "g:2"})))
    # An empty manifest, documents without images, an invalid reference (skipped, as discovery does).
    install(fixture_backend, namespace, release(namespace, "empty", 1, "deployed", ""))
    install(fixture_backend, namespace, release(namespace, "odd", 1, "deployed",
                                                SERVICE + deployment("odd", {"ok": "ok:1", "bad": "UPPER/Case:1"})))
    with fixture_backend.connect(fixture_backend.identity([], extra=HELM)) as client:
        state = found(client.helm_release_images())
    assert state == {
        "docker.io/library/busybox:1.36": [(namespace, "old.v1", "Deployment/old/old", "running")],
        "docker.io/library/app:1": [(namespace, "app.v1", "Deployment/app/a", "running")],
        "docker.io/library/app:2": [(namespace, "app.v2", "Deployment/app/a", "running")],
        "docker.io/library/g:1": [(namespace, "gone.v1", "Deployment/gone/g", "rollback")],
        "docker.io/library/g:2": [(namespace, "gone.v2", "Deployment/gone/g", "rollback")],
        "docker.io/library/ok:1": [(namespace, "odd.v1", "Deployment/odd/ok", "running")],
    }


def test_decoding_matches_helms_own_encoding() -> None:
    body = release("web", "web", 1, "deployed", SERVICE)
    assert decode_release(release_secret("web", body)["data"]["release"]) == body
    assert decode_release(release_secret("web", body, encoded=helm_encoded(body, compress=False))["data"]["release"]) \
        == body
    bomb = base64.b64encode(gzip.compress(b" " * (65 * 1024 * 1024), mtime=0)).decode()
    with pytest.raises(ValueError, match="inflates to more than 64 MiB"):
        decode_release(base64.b64encode(bomb.encode()).decode())


# -- what it protects ---------------------------------------------------------------------------------

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def cluster_policy(**fields: Any) -> model.Cluster:
    return model.Cluster(name="prod-eu", in_cluster=True, kubeconfig=None, **fields)


def test_a_digest_only_in_an_old_helm_revision_is_kept_with_the_protection_reason(
        fixture_backend: FixtureBackend) -> None:
    namespaces, _ = build(fixture_backend)
    with helm_client(fixture_backend, namespaces) as client:
        history = client.helm_release_images()
    tags = {"3.0": digest("3"), "build-2": digest("2"), "build-1": digest("1")}  # digest 2: only web.v2 names it
    images = {d: Image(d, OCI_MANIFEST, NOW - timedelta(days=30)) for d in tags.values()}
    repository = RepositoryState("ci", "acme/web", {t: Descriptor(OCI_MANIFEST, d, 100) for t, d in tags.items()},
                                 images)
    policy = RetentionPolicy("helm", "ci", ("acme/*",), (KeepRule(tags=re.compile(r"^\d+\.\d+$")),),
                             Protection(helm_releases=("prod-eu",)), 100)
    actions = plan_retention(policy, RetentionInputs(REGISTRY, (repository,), {"prod-eu": history}), NOW)
    decided = {a.target.rsplit("/", 1)[-1]: (a.kind, a.reason) for a in actions}
    assert decided == {
        "web:3.0": ("keep", r"keep[0]: matches '^\d+\.\d+$'"),
        "web:build-2": ("keep", f"protected: {digest('2')[:19]} is running or kept for rollback in a protecting "
                                "cluster"),
        f"web@{digest('1')}": ("prune", f"delete manifest {digest('1')[:19]}, which removes tags build-1: no keep rule "
                                        "or protection applies to them"),
    }


def policy_set(in_use: tuple[str, ...], helm: tuple[str, ...], *clusters: model.Cluster) -> PolicySet:
    retention = RetentionPolicy("r", "ci", ("acme/*",), (), Protection(in_use=in_use, helm_releases=helm), 10)
    registry = model.Registry(name="ci", url=f"https://{REGISTRY}", credentials=None, allowed_hosts=(REGISTRY,))
    return PolicySet("test", None, clusters={c.name: c for c in clusters}, registries={"ci": registry},
                     retention_policies={"r": retention})


def state(*references: str, kind: str) -> ClusterState:
    return ClusterState("prod-eu", {ImageReference(REGISTRY, "acme/web", tag=r): (
        Usage("prod-eu", "web", kind, "web", "web", "running"),) for r in references})


def test_observe_reads_each_protection_with_its_reader_and_merges_a_cluster_in_both(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import reconcile.observe.world as world

    monkeypatch.setattr(world, "_observe_retention", lambda *args: None)
    calls: list[str] = []

    def in_use(cluster: model.Cluster) -> ClusterState:
        calls.append(f"in-use {cluster.name}")
        return state("1", "2", kind="Pod")

    def helm(cluster: model.Cluster) -> ClusterState:
        calls.append(f"helm {cluster.name}")
        return state("2", "3", kind="HelmRelease")

    def observed(in_use_names: tuple[str, ...], helm_names: tuple[str, ...], **readers: Any) -> Any:
        calls.clear()
        policies = policy_set(in_use_names, helm_names, cluster_policy())
        return observe(policies, resolver=SecretResolver(environ={}), observed_at="now",
                       **{"read_cluster": in_use, "read_helm": helm, **readers}).clusters["prod-eu"]

    merged = observed(("prod-eu",), ("prod-eu",))
    assert calls == ["in-use prod-eu", "helm prod-eu"]
    assert {ref.tag: [u.kind for u in usages] for ref, usages in merged.images.items()} == {
        "1": ["Pod"], "2": ["Pod", "HelmRelease"], "3": ["HelmRelease"]}
    assert set(observed((), ("prod-eu",)).images) == set(state("2", "3", kind="HelmRelease").images)
    assert calls == ["helm prod-eu"]
    assert set(observed(("prod-eu",), ()).images) == set(state("1", "2", kind="Pod").images)
    assert calls == ["in-use prod-eu"]

    def forbidden(cluster: model.Cluster) -> ClusterState:
        raise ForbiddenError(cluster.name, verb="list", group="", resource="secrets", namespace=None, hint="opt in")

    assert observed(("prod-eu",), ("prod-eu",), read_helm=forbidden) == (
        "protect.helmReleases: forbidden: the service account needs 'list' on 'secrets' (core) cluster-wide — opt in")
    assert observed((), ("prod-eu",), read_helm=None) == "protect.helmReleases: no Helm release reader is configured"


def test_a_cluster_known_by_its_manifests_has_no_helm_history(tmp_path: Path) -> None:
    cluster = cluster_policy(manifests=ManifestsSource(repo=str(tmp_path), path="."))
    (tmp_path / "web.yaml").write_text(yaml.safe_dump({"kind": "Pod", "metadata": {"name": "web"},
                                                       "spec": {"containers": [{"name": "w", "image": "w:1"}]}}))
    connections = Connections(PolicySet("policies", None, clusters={cluster.name: cluster}),
                              SecretResolver(environ={}))
    assert [str(ref) for ref in cluster_reader(connections)(cluster).images] == ["docker.io/library/w:1"]
    with pytest.raises(ClusterError, match="cluster prod-eu is known by its manifests; it has no Helm release "
                                           r"history \(name it in protect.inUse instead\)"):
        helm_reader(connections)(cluster)
