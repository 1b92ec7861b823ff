"""An API-server fixture that behaves like kube-apiserver where this project depends on it:
discovery, get/list (limit/continue, label and field selectors), create, strategic-merge/merge/JSON
patch, resourceVersion conflicts, bearer-token authentication, RBAC-style authorization, and the
controllers a rollout depends on. See ``server.py`` (each behaviour cites the Kubernetes documentation
it follows); ``pod.py`` lays out a pod's service-account directory for it."""

from tests.kube.pod import Pod, mount_service_account
from tests.kube.rbac import ADMIN, Identity, Rule, manifest_rules, without
from tests.kube.server import ApiServer, Request, running, write_kubeconfig

__all__ = ["ADMIN", "ApiServer", "Identity", "Pod", "Request", "Rule", "manifest_rules", "mount_service_account",
           "running", "without", "write_kubeconfig"]
