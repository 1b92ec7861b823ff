"""In a pod: the ``{kubernetes: ...}`` secret reader uses the pod's service account (the same
:func:`pod_configuration` as ``inCluster: true`` Clusters and the Lease), over HTTPS with the
mounted ca.crt, and picks up a token the kubelet rotated."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from reconcile.adapters.cluster import SERVICE_ACCOUNT_DIR_VARIABLE, pod_namespace, service_account_dir
from reconcile.adapters.cluster.secrets import read_kubernetes_secret
from reconcile.policy.secrets import SecretError, SecretRef, SecretResolver
from tests.kube import Identity, Rule, mount_service_account, running
from tests.kube.server import BY_PLURAL

ACCOUNT = Identity("system:serviceaccount:reconcile:reconcile",
                   (Rule.of(["get"], [""], ["secrets"], "reconcile"),))


def test_the_secret_reader_uses_the_pods_service_account_and_a_rotated_token(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with running(tls=True) as api:
        api.create_object(BY_PLURAL["namespaces"], None, {"metadata": {"name": "reconcile"}})
        api.create_object(BY_PLURAL["secrets"], "reconcile", {
            "metadata": {"name": "registry"}, "data": {"password": base64.b64encode(b"hunter2").decode()}})
        pod = mount_service_account(api, tmp_path / "serviceaccount", ACCOUNT, monkeypatch)
        resolver = SecretResolver(kubernetes_reader=read_kubernetes_secret)
        ref = SecretRef.from_mapping({"kubernetes": {"namespace": "reconcile", "name": "registry", "key": "password"}})
        assert resolver.resolve(ref, purpose="Registry/ghcr").reveal() == "hunter2"
        pod.rotate("bound-token-2")  # the old token is refused from now on
        assert read_kubernetes_secret("reconcile", "registry", "password") == b"hunter2"
        with pytest.raises(SecretError, match="forbidden: the service account needs `get` on `secrets` in namespace "
                                              "other"):
            read_kubernetes_secret("other", "registry", "password")
    reads = [(r.user, r.status) for r in api.requests]
    assert reads == [(ACCOUNT.user, 200), (ACCOUNT.user, 200), (ACCOUNT.user, 403)]  # never the old token after
    assert api.requests[0].path == "/api/v1/namespaces/reconcile/secrets/registry"


def test_a_missing_service_account_directory_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    monkeypatch.setenv(SERVICE_ACCOUNT_DIR_VARIABLE, str(tmp_path / "nowhere"))
    with pytest.raises(SecretError) as failed:
        read_kubernetes_secret("reconcile", "registry", "password")
    assert str(failed.value) == (f"cannot load the in-cluster service account {tmp_path}/nowhere: Service token file "
                                 "does not exist.")
    assert service_account_dir() == tmp_path / "nowhere"
    assert pod_namespace() is None
    monkeypatch.delenv(SERVICE_ACCOUNT_DIR_VARIABLE)
    assert str(service_account_dir()) == "/var/run/secrets/kubernetes.io/serviceaccount"
