"""Connection: configuration from the Cluster policy, errors naming the cluster (and for a 403 the
RBAC rule to add), a timeout on every request, and one reload of the configuration on a 401."""

from __future__ import annotations

import datetime
import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from kubernetes.config import incluster_config

from reconcile.adapters.cluster import (
    ClusterError,
    ForbiddenError,
    UnauthorizedError,
    UnreachableError,
    connect,
    pod_configuration,
    pod_namespace,
)
from reconcile.policy import model
from reconcile.policy.model import Workload
from reconcile.policy.secrets import SecretRef, SecretResolver
from tests.adapters.cluster.backends import Backend, FixtureBackend
from tests.adapters.cluster.scenarios import LISTS, deployment, digest, pod, revision
from tests.adapters.cluster.test_discovery import found
from tests.kube import ADMIN, ApiServer, Identity, mount_service_account, running, write_kubeconfig

TIMEOUT = 1.0


def cluster(kubeconfig: SecretRef | None, *, timeout: float = 10.0, **options: object) -> model.Cluster:
    # A generous timeout, except where timing out is the point: a busy CI machine is slow.
    return model.Cluster(name="prod-eu", in_cluster=False, kubeconfig=kubeconfig,
                         timeout=timedelta(seconds=timeout), **options)  # type: ignore[arg-type]


def file_ref(path: Path) -> SecretRef:
    return SecretRef.from_mapping({"file": str(path)})


def test_a_403_names_the_missing_permission_and_the_rule_to_add(kube: Backend) -> None:
    namespace = kube.namespace("web")
    kube.create(deployment(namespace, "web", {"web": "ghcr.io/acme/web:1.0"}))
    kube.wait("revision 1", lambda: revision(kube.read("apps/v1", "Deployment", namespace, "web")) == 1)
    no_list = kube.identity([namespace], lacking=("list", "apps", "replicasets"))
    no_patch = kube.identity([namespace], lacking=("patch", "apps", "deployments"))
    with kube.connect(no_list) as client, pytest.raises(ForbiddenError) as listing:
        client.images()
    with kube.connect(no_patch) as client, pytest.raises(ForbiddenError) as patching:
        client.deploy(namespace, Workload("Deployment", "web", "web"), f"ghcr.io/acme/web@{digest('1')}",
                      cause="DeployPolicy/web")
    assert str(listing.value) == ("cluster prod-eu: forbidden: the service account needs 'list' on 'replicasets' "
                                  "(apps) — add it to deploy/rbac.yaml's ClusterRole")
    assert (listing.value.verb, listing.value.group, listing.value.resource) == ("list", "apps", "replicasets")
    assert str(patching.value) == (f"cluster prod-eu: forbidden: the service account needs 'patch' on 'deployments' "
                                   f"(apps) in namespace {namespace} — add it to deploy/rbac.yaml's Role for "
                                   f"namespace {namespace}")


def kubeconfig_for(tmp_path: Path, server: str) -> Path:
    return write_kubeconfig(tmp_path / "unreachable.kubeconfig", server, "token")


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when this returns: connections are refused


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port that accepts connections (the kernel completes the handshake) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


@pytest.mark.parametrize("where", ["closed_port", "blackhole"])
def test_an_unreachable_cluster_fails_with_its_name_within_the_timeout(request: pytest.FixtureRequest,
                                                                        tmp_path: Path, where: str) -> None:
    port = request.getfixturevalue(where)
    path = kubeconfig_for(tmp_path, f"http://127.0.0.1:{port}")
    client = connect(cluster(file_ref(path), timeout=TIMEOUT), SecretResolver(environ={}))
    problem = "cannot connect (Connection refused)" if where == "closed_port" else f"no answer within {TIMEOUT:g}s"
    for call in (client.images,
                 lambda: client.deploy("web", Workload("Deployment", "web", "web"), f"a/b@{digest('1')}", cause="c"),
                 lambda: client.wait_for_rollout("web", "Deployment", "web", 30)):
        start = time.monotonic()
        with pytest.raises(UnreachableError) as failed:
            call()
        assert time.monotonic() - start < TIMEOUT + 1.0  # one request timeout, no retries (each would add one)
        assert str(failed.value) == f"cluster prod-eu: unreachable: http://127.0.0.1:{port}: {problem}"
    client.close()


def test_a_401_reloads_the_configuration_once(fixture_backend: FixtureBackend, api: ApiServer,
                                              tmp_path: Path) -> None:
    """A bound service-account token rotated under a running job: the kubeconfig (or token file)
    on disk has the new one, the client still the old one."""
    reader = Identity("system:serviceaccount:reconcile:reconcile", ADMIN.rules)
    api.identities["old-token"] = reader
    path = api.kubeconfig(tmp_path / "rotating.kubeconfig", "old-token")
    with connect(cluster(file_ref(path)), SecretResolver(environ={})) as client:
        client.images()
        del api.identities["old-token"]
        api.identities["new-token"] = reader
        api.kubeconfig(path, "new-token")
        before = len(api.requests)
        client.images()
        assert client.connection.reloads == 1
        # The concurrent lists that met the old token were each retried once, after one reload.
        second = api.requests[before:]
        unauthorized = [r.path for r in second if r.status == 401]
        assert unauthorized and len(set(unauthorized)) == len(unauthorized)
        assert sorted(r.path for r in second if r.status == 200) == sorted(LISTS)

        del api.identities["new-token"]  # revoked for good: one more reload, then an error
        with pytest.raises(UnauthorizedError) as failed:
            client.images()
        assert client.connection.reloads == 2
    assert str(failed.value) == ("cluster prod-eu: unauthorized: the API server rejected the credentials, also "
                                 "after reloading them")


def test_a_kubeconfig_held_in_an_environment_variable_with_a_context(api: ApiServer, tmp_path: Path) -> None:
    text = api.kubeconfig(tmp_path / "k", "admin-token", context="prod-eu").read_text()
    document = yaml.safe_load(text)
    document["contexts"].append({"name": "other", "context": {"cluster": "fixture", "user": "nobody"}})
    document["current-context"] = "other"
    resolver = SecretResolver(environ={"PROD_EU_KUBECONFIG": yaml.safe_dump(document)})
    policy = cluster(SecretRef.from_mapping({"env": "PROD_EU_KUBECONFIG"}), context="prod-eu")
    with connect(policy, resolver) as client:
        assert client.images().images == {}
    assert {r.user for r in api.requests} == {"kubernetes-admin"}


def test_configuration_problems_name_the_cluster_and_never_the_credentials(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("RECONCILE_SERVICE_ACCOUNT_DIR", str(tmp_path / "sa"))
    token = "s3cr3t-token-value"
    broken = f"users:\n- name: u\n  user: {{token: {token}}}\n  : [unbalanced\n"
    cases = {
        "cannot load the kubeconfig file:/nowhere/kubeconfig: /nowhere/kubeconfig is not a file":
            cluster(SecretRef.from_mapping({"file": "/nowhere/kubeconfig"})),
        "cannot load the kubeconfig env:BROKEN: invalid YAML": cluster(SecretRef.from_mapping({"env": "BROKEN"})),
        "cannot load the kubeconfig env:UNSET: environment variable UNSET is not set":
            cluster(SecretRef.from_mapping({"env": "UNSET"})),
        "no connection configured: set spec.inCluster or spec.kubeconfig": cluster(None),
        f"cannot load the in-cluster service account {tmp_path}/sa: Service host/port is not set.":
            model.Cluster(name="prod-eu", in_cluster=True, kubeconfig=None),
    }
    resolver = SecretResolver(environ={"BROKEN": broken})
    for message, policy in cases.items():
        with pytest.raises(ClusterError) as failed:
            connect(policy, resolver)
        assert str(failed.value).startswith(f"cluster prod-eu: {message}"), str(failed.value)
        assert token not in str(failed.value)
    write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:1", "token")
    relative = cluster(SecretRef.from_mapping({"file": "kubeconfig"}), context="staging")  # the resolver's base dir
    with pytest.raises(ClusterError) as failed:
        connect(relative, SecretResolver(environ={}, base_dir=tmp_path))
    assert str(failed.value) == ("cluster prod-eu: cannot load the kubeconfig file:kubeconfig: Invalid kube-config "
                                 f"file. Expected object with name staging in {tmp_path}/kubeconfig/contexts list")


def test_in_cluster_service_account_over_tls_with_a_rotated_token(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The CronJob's case: the service-account directory as the kubelet mounts it, the API server
    over HTTPS verified with its ca.crt; the kubelet rewrites the projected token file and the old
    token stops working: the next request reloads and uses the new one."""
    account = Identity("system:serviceaccount:reconcile:reconcile", ADMIN.rules)
    with running(tls=True) as api:
        backend = FixtureBackend(api, tmp_path)
        namespace = backend.namespace("web")
        backend.create(pod(namespace, "web", {"web": "ghcr.io/acme/web:1.0"}))
        pod_view = mount_service_account(api, tmp_path / "serviceaccount", account, monkeypatch)
        policy = model.Cluster(name="prod-eu", in_cluster=True, kubeconfig=None)
        with connect(policy, SecretResolver(environ={})) as client:
            assert client.connection.host == f"https://127.0.0.1:{api.port}"
            assert set(found(client.images())) == {"ghcr.io/acme/web:1.0"}
            pod_view.rotate("bound-token-2")
            before = len(api.requests)
            assert set(found(client.images())) == {"ghcr.io/acme/web:1.0"}
            assert client.connection.reloads == 1
        backend.close()
    after = api.requests[before:]
    assert {r.user for r in after if r.status == 200} == {account.user}  # with the new token
    assert {r.status for r in after} == {200, 401}  # the old one, refused once per concurrent list
    assert pod_namespace() == "reconcile"


def test_the_in_cluster_loader_rereads_the_token_file_before_any_401(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The official loader's refresh: once its copy is a minute old it reads the file again, so a
    rotated token is used even while the old one is still accepted."""
    account = Identity("system:serviceaccount:reconcile:reconcile", ADMIN.rules)
    with running(tls=True) as api:
        pod_view = mount_service_account(api, tmp_path / "serviceaccount", account, monkeypatch)
        configuration = pod_configuration()
        assert configuration.ssl_ca_cert == str(tmp_path / "serviceaccount" / "ca.crt")
        assert configuration.get_api_key_with_prefix("BearerToken") == "bearer bound-token-1"
        (pod_view.directory / "token").write_text("bound-token-2")
        assert configuration.get_api_key_with_prefix("BearerToken") == "bearer bound-token-1"  # within the minute

        class Later(datetime.datetime):
            @classmethod
            def now(cls, tz: datetime.tzinfo | None = None) -> Later:
                return cls.fromtimestamp(time.time() + 61, tz)

        # The loader's own clock only (its module's name "datetime"), a minute and a second on.
        monkeypatch.setattr(incluster_config, "datetime", SimpleNamespace(datetime=Later, timedelta=timedelta))
        assert configuration.get_api_key_with_prefix("BearerToken") == "bearer bound-token-2"


def test_a_server_certificate_that_does_not_verify_is_unreachable(tmp_path: Path) -> None:
    with running(tls=True) as api:
        path = write_kubeconfig(tmp_path / "no-ca.kubeconfig", api.url, "admin-token")  # no certificate-authority
        with connect(cluster(file_ref(path)), SecretResolver(environ={})) as client, \
                pytest.raises(UnreachableError) as failed:
            client.images()
    assert str(failed.value).startswith(f"cluster prod-eu: unreachable: {api.url}: TLS: ")
    assert "CERTIFICATE_VERIFY_FAILED" in str(failed.value)
