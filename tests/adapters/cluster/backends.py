"""Where the cluster scenarios run: the API-server fixture, or a real cluster.

Both are driven the same way: objects are created through the official client's DynamicClient
(which discovers resources through ``/api`` and ``/apis``), reconcile runs as a service account
holding exactly the rules of ``deploy/rbac.yaml``, and what only a kubelet or a controller decides
(a pod's image digest, whether a rollout completes) goes through one backend method each.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from reconcile.adapters.cluster import ClusterClient, connect
from reconcile.policy import model
from reconcile.policy.secrets import SecretRef, SecretResolver
from tests.kube import ApiServer, Identity, Rule, manifest_rules, without

ROOT = Path(__file__).resolve().parents[3]
RBAC_MANIFEST = ROOT / "deploy" / "rbac.yaml"
HELM_RBAC_MANIFEST = ROOT / "deploy" / "opt-in" / "rbac-helm-history.yaml"  # protect.helmReleases' opt-in rule
SERVICE_ACCOUNT = ("reconcile", "reconcile")
NOWHERE = {"reconcile.test/nowhere": "true"}  # a node selector no node has: pods stay Pending, pull nothing


class Backend:
    name: str
    poll_interval: float  # rollout polling of the adapter
    rollout_timeout: float  # long enough for a rollout to complete or exceed its deadline

    def __init__(self, admin: client.ApiClient, tmp_path: Path) -> None:
        self.admin = admin
        self.tmp_path = tmp_path
        self.dynamic = DynamicClient(admin, cache_file=str(tmp_path / "discovery-cache.json"))
        self.prefix = f"rc{secrets.token_hex(3)}"

    # -- objects --------------------------------------------------------------------------------

    def namespace(self, suffix: str) -> str:
        name = f"{self.prefix}-{suffix}"
        self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        return name

    def _resource(self, api_version: str, kind: str) -> Any:
        return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        resource = self._resource(obj["apiVersion"], obj["kind"])
        return resource.create(body=obj, namespace=obj["metadata"].get("namespace")).to_dict()

    def read(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return self._resource(api_version, kind).get(name=name, namespace=namespace).to_dict()

    def list(self, api_version: str, kind: str, namespace: str) -> list[dict[str, Any]]:
        return self._resource(api_version, kind).get(namespace=namespace).to_dict()["items"]

    def patch(self, api_version: str, kind: str, namespace: str, name: str, body: Any,
              content_type: str = "application/merge-patch+json") -> dict[str, Any]:
        resource = self._resource(api_version, kind)
        return resource.patch(body=body, name=name, namespace=namespace, content_type=content_type).to_dict()

    def add_ephemeral_container(self, namespace: str, pod: str, name: str, image: str) -> None:
        # Only through the pods/ephemeralcontainers subresource, as kubectl debug does.
        client.CoreV1Api(self.admin).patch_namespaced_pod_ephemeralcontainers(
            pod, namespace, {"spec": {"ephemeralContainers": [{"name": name, "image": image}]}},
            _content_type="application/strategic-merge-patch+json", _preload_content=False)

    def wait(self, what: str, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)

    # -- reconcile's side -----------------------------------------------------------------------

    def connect(self, kubeconfig: Path, **cluster: Any) -> ClusterClient:
        policy = model.Cluster(name="prod-eu", in_cluster=False,
                               kubeconfig=SecretRef.from_mapping({"file": str(kubeconfig)}),
                               timeout=timedelta(seconds=10), **cluster)
        return connect(policy, SecretResolver(environ={}), page_size=2, poll_interval=self.poll_interval)

    def identity(self, namespaces: list[str], *, lacking: tuple[str, str, str] | None = None,
                 extra: tuple[Rule, ...] = ()) -> Path:
        """A kubeconfig for reconcile's service account, holding ``deploy/rbac.yaml``'s rules (its
        Role granted in ``namespaces``) and ``extra`` ones (an opt-in), minus ``lacking`` (verb,
        group, resource)."""
        rules = manifest_rules(RBAC_MANIFEST, service_account=SERVICE_ACCOUNT, role_namespaces=namespaces) + extra
        if lacking is not None:
            rules = without(rules, *lacking)
        return self._identity(rules)

    def _identity(self, rules: tuple[Rule, ...]) -> Path:
        raise NotImplementedError

    # -- what kubelets and controllers decide ----------------------------------------------------

    def rollout_outcome(self, namespace: str, name: str, outcome: str, image: str | None = None) -> None:
        """complete | fail | hang, for the workload or only for templates running ``image``. A real
        cluster decides from the spec; scenarios write specs that make it decide the same (replicas
        0 complete; an unpullable image with a short progress deadline fails; with a long one it hangs)."""

    def start_pod(self, namespace: str, name: str) -> dict[str, str]:
        """Run pod ``name``; its containers' ``imageID`` as the kubelet reports them."""
        raise NotImplementedError

    def close(self) -> None:
        self.admin.close()


class FixtureBackend(Backend):
    name = "fixture"
    poll_interval = 0.02
    rollout_timeout = 5.0

    def __init__(self, api: ApiServer, tmp_path: Path) -> None:
        self.api = api
        admin = config.new_client_from_config(config_file=str(api.kubeconfig(tmp_path / "admin.kubeconfig",
                                                                               "admin-token")),
                                              persist_config=False)
        super().__init__(admin, tmp_path)

    def _identity(self, rules: tuple[Rule, ...]) -> Path:
        token = secrets.token_urlsafe(16)
        self.api.identities[token] = Identity("system:serviceaccount:reconcile:reconcile", rules)
        return self.api.kubeconfig(self.tmp_path / f"reconcile-{token[:6]}.kubeconfig", token)

    def rollout_outcome(self, namespace: str, name: str, outcome: str, image: str | None = None) -> None:
        self.api.rollouts[(namespace, name, image) if image else (namespace, name)] = outcome

    def start_pod(self, namespace: str, name: str) -> dict[str, str]:
        pod = self.api.get("pods", namespace, name)
        assert pod is not None
        statuses, image_ids = [], {}
        for container in pod["spec"]["containers"]:
            # As containerd reports it: the repository digest the tag resolved to when pulled.
            repository = container["image"].rsplit(":", 1)[0]
            image_ids[container["name"]] = (
                f"{repository}@sha256:{hashlib.sha256(container['image'].encode()).hexdigest()}")
            statuses.append({"name": container["name"], "image": container["image"], "ready": True,
                             "started": True, "imageID": image_ids[container["name"]],
                             "state": {"running": {"startedAt": "2025-01-01T00:00:00Z"}}})
        self.api.set_status("pods", namespace, name, {"phase": "Running", "containerStatuses": statuses})
        return image_ids


class RealBackend(Backend):
    """A cluster reached through ``RECONCILE_TEST_KUBECONFIG`` (cluster-admin): every scenario gets
    fresh namespaces, and every object made here is deleted at the end."""

    name = "real"
    poll_interval = 1.0
    rollout_timeout = 180.0

    def __init__(self, kubeconfig: Path, tmp_path: Path) -> None:
        super().__init__(config.new_client_from_config(config_file=str(kubeconfig), persist_config=False), tmp_path)
        self._cluster_objects: list[tuple[str, str, str]] = []
        self._home: str | None = None  # the namespace of the test service accounts

    def namespace(self, suffix: str) -> str:
        name = super().namespace(suffix)
        self._cluster_objects.append(("v1", "Namespace", name))
        return name

    def _identity(self, rules: tuple[Rule, ...]) -> Path:
        if self._home is None:
            self._home = self.namespace("sa")
        home = self._home
        account = f"{self.prefix}-reconcile-{len(self._cluster_objects)}"  # one service account per identity
        self.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, "namespace": home}})
        subject = [{"kind": "ServiceAccount", "name": account, "namespace": home}]
        rbac = "rbac.authorization.k8s.io/v1"
        cluster_rules = [_rule(r) for r in rules if r.namespace is None]
        self.create({"apiVersion": rbac, "kind": "ClusterRole", "metadata": {"name": account}, "rules": cluster_rules})
        self.create({"apiVersion": rbac, "kind": "ClusterRoleBinding", "metadata": {"name": account},
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": account},
                     "subjects": subject})
        self._cluster_objects += [(rbac, "ClusterRole", account), (rbac, "ClusterRoleBinding", account)]
        for namespace in sorted({r.namespace for r in rules if r.namespace is not None}):
            meta = {"name": account, "namespace": namespace}
            self.create({"apiVersion": rbac, "kind": "Role", "metadata": meta,
                         "rules": [_rule(r) for r in rules if r.namespace == namespace]})
            self.create({"apiVersion": rbac, "kind": "RoleBinding", "metadata": meta, "subjects": subject,
                         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account}})
        response = client.CoreV1Api(self.admin).create_namespaced_service_account_token(
            account, home, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                            "spec": {"expirationSeconds": 3600}}, _preload_content=False)
        token = json.loads(response.data)["status"]["token"]
        settings = self.admin.configuration
        cluster: dict[str, Any] = {"server": settings.host}
        if settings.ssl_ca_cert:
            cluster["certificate-authority"] = settings.ssl_ca_cert
        if not settings.verify_ssl:
            cluster["insecure-skip-tls-verify"] = True
        path = self.tmp_path / f"{account}.kubeconfig"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "reconcile",
            "clusters": [{"name": "test", "cluster": cluster}], "users": [{"name": account, "user": {"token": token}}],
            "contexts": [{"name": "reconcile", "context": {"cluster": "test", "user": account}}]}))
        time.sleep(1.0)  # RBAC bindings reach the authorizer's cache asynchronously
        return path

    def start_pod(self, namespace: str, name: str) -> dict[str, str]:
        def running() -> bool:
            status = self.read("v1", "Pod", namespace, name).get("status") or {}
            return status.get("phase") == "Running" and all(
                s.get("imageID") for s in status.get("containerStatuses") or [{}])

        self.wait(f"pod {namespace}/{name} to run", running, timeout=180)
        statuses = self.read("v1", "Pod", namespace, name)["status"]["containerStatuses"]
        return {s["name"]: s["imageID"] for s in statuses}

    def close(self) -> None:
        for api_version, kind, name in reversed(self._cluster_objects):
            with contextlib.suppress(ApiException):  # already gone
                self._resource(api_version, kind).delete(name=name)
        super().close()


def _rule(rule: Rule) -> dict[str, Any]:
    return {"apiGroups": sorted(rule.groups), "resources": sorted(rule.resources), "verbs": sorted(rule.verbs)}
