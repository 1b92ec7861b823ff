"""A pod's view of the fixture: the service-account directory the kubelet mounts (``token``,
``ca.crt``, ``namespace``) and the ``KUBERNETES_SERVICE_HOST``/``PORT`` it sets, pointing at an
:class:`~tests.kube.server.ApiServer` served over HTTPS.

https://kubernetes.io/docs/tasks/run-application/access-api-from-pod/#directly-accessing-the-rest-api
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.kube.rbac import Identity
from tests.kube.server import TLS, ApiServer


@dataclass
class Pod:
    api: ApiServer
    directory: Path  # what RECONCILE_SERVICE_ACCOUNT_DIR names
    identity: Identity
    token: str

    def rotate(self, token: str) -> None:
        """What the kubelet does before a projected token expires: a new token in the file, and
        (here at once) the API server no longer accepts the old one."""
        (self.directory / "token").write_text(token)  # as the kubelet writes it: no newline
        del self.api.identities[self.token]
        self.api.identities[token] = self.identity
        self.token = token


def mount_service_account(api: ApiServer, directory: Path, identity: Identity, monkeypatch: pytest.MonkeyPatch, *,
                          token: str = "bound-token-1", namespace: str = "reconcile") -> Pod:
    """Lay out ``directory`` as a pod sees its service account and point the environment at
    ``api`` (which must be ``tls=True``: the in-cluster configuration speaks HTTPS only)."""
    assert api.tls, "the in-cluster configuration needs the fixture over HTTPS"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "token").write_text(token)
    shutil.copyfile(TLS / "ca.crt", directory / "ca.crt")
    (directory / "namespace").write_text(namespace)
    api.identities[token] = identity
    monkeypatch.setenv("RECONCILE_SERVICE_ACCOUNT_DIR", str(directory))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(api.port))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return Pod(api, directory, identity, token)
