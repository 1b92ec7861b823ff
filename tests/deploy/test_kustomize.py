"""deploy/: every overlay renders with ``kubectl kustomize``, every object it renders is valid
against the OpenAPI schemas of current Kubernetes versions, and the CronJob, its RBAC and its
references say what deploy/README.md says they do."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from reconcile.policy.model import Limits
from tests.deploy.tools import (
    DEPLOY,
    KUBERNETES_VERSIONS,
    NAMESPACE,
    OVERLAYS,
    ROOT,
    SERVICE_ACCOUNT,
    container,
    kustomize_version,
    one,
    render,
)

RBAC_MANIFEST = DEPLOY / "rbac.yaml"
RENDERED = ("base", *OVERLAYS)


def pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = one(objects, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


def rules(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: sorted(v) for k, v in rule.items()} for rule in document["rules"]]


def test_kubectl_brings_kustomize_5() -> None:
    # The overlays' NamespaceTransformer uses `unsetOnly`, which kustomize has had since 5.0.
    assert kustomize_version() >= (5, 0, 0)


@pytest.mark.parametrize("directory", RENDERED)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_is_valid_against_the_kubernetes_schemas(directory: str, version: str) -> None:
    objects = render(directory)
    assert objects
    for document in objects:
        kubernetes_validate.validate(document, version, strict=True)  # raises, naming the field


def test_the_schemas_do_reject_what_kubernetes_would() -> None:
    cronjob = one(render("apply"), "CronJob")
    typo = copy.deepcopy(cronjob)
    typo["spec"]["jobTemplate"]["spec"]["concurencyPolicy"] = "Forbid"
    wrong_type = copy.deepcopy(cronjob)
    wrong_type["spec"]["jobTemplate"]["spec"]["backoffLimit"] = "two"
    for bad in (typo, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_base_declares_no_namespace_and_the_overlays_put_everything_in_reconciles() -> None:
    for path in sorted((DEPLOY / "base").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            assert "namespace" not in yaml.safe_load(path.read_text())
            continue
        for document in yaml.safe_load_all(path.read_text()):
            assert "namespace" not in document["metadata"], (path, document["metadata"])
    assert all("namespace" not in o["metadata"] for o in render("base"))
    for overlay in OVERLAYS:
        objects = render(overlay)
        assert one(objects, "Namespace")["metadata"]["name"] == NAMESPACE
        namespaces = {(o["kind"], o["metadata"]["name"]): o["metadata"].get("namespace") for o in objects}
        for (kind, name), namespace in namespaces.items():
            if kind in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
                assert namespace is None, (kind, name)
            elif name == "reconcile-deploy":  # deploy/targets/web: where the workloads are
                assert namespace == "web", (kind, name)
            else:
                assert namespace == NAMESPACE, (overlay, kind, name)


def test_the_cronjob_runs_one_bounded_run_at_a_time_and_cleans_up() -> None:
    for directory in RENDERED:
        spec = one(render(directory), "CronJob")["spec"]
        assert spec["concurrencyPolicy"] == "Forbid"
        assert 0 < spec["startingDeadlineSeconds"] <= 600
        assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
        job = spec["jobTemplate"]["spec"]
        # Above reconcile's own bound on a run phase (recorded in the trail), a backstop beyond it.
        assert Limits.phase_deadline.total_seconds() < job["activeDeadlineSeconds"] <= 6 * 3600
        assert re.fullmatch(r"\*/15 \* \* \* \*", spec["schedule"])
        assert 0 <= job["backoffLimit"] <= 3
        assert job["ttlSecondsAfterFinished"] > 0
        assert job["template"]["spec"]["restartPolicy"] == "Never"  # podFailurePolicy requires it


def test_the_pod_failure_policy_fails_the_job_on_what_a_retry_cannot_fix() -> None:
    """Exit status (`reconcile --help`): 1 error (retried: transient ones are the common case), 2
    changes pending, 3 audit trail unavailable, 4 internal error, 5 locked, 6 invalid policies (not
    retried). Disruptions are retried without counting."""
    for directory in RENDERED:
        objects = render(directory)
        rules_ = one(objects, "CronJob")["spec"]["jobTemplate"]["spec"]["podFailurePolicy"]["rules"]
        fail = [r for r in rules_ if r["action"] == "FailJob"]
        assert fail == [{"action": "FailJob", "onExitCodes": {"containerName": container(objects)["name"],
                                                             "operator": "In", "values": [2, 3, 4, 5, 6]}}]
        assert {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]} in rules_
        assert not any(1 in r.get("onExitCodes", {}).get("values", ()) for r in rules_)
    help_text = (ROOT / "reconcile" / "cli" / "__init__.py").read_text()
    for code in ("3 the audit trail", "4 internal error", "5 another run holds the lock",
                 "6 the repo-of-record is invalid"):
        assert code in help_text  # the codes the rules name


@pytest.mark.parametrize("directory", RENDERED)
def test_the_pod_is_restricted(directory: str) -> None:
    pod = pod_spec(render(directory))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["serviceAccountName"] == SERVICE_ACCOUNT[1]
    assert pod["automountServiceAccountToken"] is True  # inCluster, Secrets by reference, the Lease
    (main,) = pod["containers"]
    context = main["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]} and context["runAsNonRoot"] is True
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "privileged" not in context and "hostNetwork" not in pod and "hostPID" not in pod
    for volume in pod["volumes"]:
        assert "hostPath" not in volume


def quantity(value: str) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "": 1}
    number, unit = re.fullmatch(r"([\d.]+)([A-Za-z]*)", str(value)).groups()  # type: ignore[union-attr]
    return float(number) * units[unit]


def test_requests_and_limits_are_sized_from_the_benchmarks() -> None:
    main = container(render("apply"))
    requests, limits = main["resources"]["requests"], main["resources"]["limits"]
    assert set(requests) == set(limits) == {"cpu", "memory"}
    # bench/README.md: peak RSS 41-45 MiB; the whole CLI with the kubernetes client imported, 60 MiB.
    assert 2 * 60 * 2**20 <= quantity(requests["memory"]) <= quantity(limits["memory"]) <= 2**30
    assert quantity(requests["cpu"]) <= quantity(limits["cpu"]) == 1  # one core: the GIL
    text = (DEPLOY / "base" / "cronjob.yaml").read_text()
    assert "41 MiB" in text and "bench/README.md" in text
    assert "peak RSS 41 MiB" in (ROOT / "bench" / "README.md").read_text()  # the number cited is the one measured


def test_the_overlays_run_what_their_names_say() -> None:
    assert container(render("base"))["args"] == ["plan", "--record"]  # the base changes nothing
    assert container(render("dry-run"))["args"] == ["plan", "--record"]
    assert container(render("apply"))["args"] == ["run"]
    assert container(render("sharded"))["args"] == ["run"]
    for overlay in ("base", "dry-run", "apply"):
        job = one(render(overlay), "CronJob")["spec"]["jobTemplate"]["spec"]
        assert "completionMode" not in job and "parallelism" not in job
        assert "RECONCILE_SHARDS" not in {e["name"] for e in container(render(overlay))["env"]}


def test_the_sharded_overlay_is_one_indexed_job_of_n_pods_told_n() -> None:
    objects = render("sharded")
    job = one(objects, "CronJob")["spec"]["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed"
    env = {e["name"]: e for e in container(objects)["env"]}
    shards = int(env["RECONCILE_SHARDS"]["value"])
    assert shards > 1 and job["completions"] == job["parallelism"] == shards
    assert "JOB_COMPLETION_INDEX" not in env  # Kubernetes sets it, from the pod's completion index
    # All shards on the node the ReadWriteOnce volume is attached to.
    (term,) = pod_spec(objects)["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    labels = one(objects, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= labels.items()
    # Everything else is the apply overlay's.
    apply = render("apply")
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [(o["kind"], o["metadata"]["name"]) for o in apply]


def documents_of(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_the_rbac_is_deploy_rbac_yaml_plus_the_lease_and_one_named_secret() -> None:
    manifest = documents_of(RBAC_MANIFEST)
    for overlay in ("apply", "sharded"):
        objects = render(overlay)
        assert rules(one(objects, "ClusterRole", "reconcile-images-in-use")) == \
               rules(one(manifest, "ClusterRole", "reconcile-images-in-use"))
        assert rules(one(objects, "Role", "reconcile-deploy")) == rules(one(manifest, "Role", "reconcile-deploy"))
        assert one(objects, "Role", "reconcile-deploy")["metadata"]["namespace"] == \
               one(manifest, "Role", "reconcile-deploy")["metadata"]["namespace"] == "web"
        assert rules(one(objects, "Role", "reconcile-lease")) == [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create", "get", "update"]}]
        assert rules(one(objects, "Role", "reconcile-credentials")) == [
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["prod-registry"], "verbs": ["get"]}]
        assert {o["kind"] for o in objects if "rules" in o} == {"ClusterRole", "Role"}
        assert len([o for o in objects if "rules" in o]) == 4
    # A plan patches nothing: the dry-run's Role in web only reads.
    dry = one(render("dry-run"), "Role", "reconcile-deploy")
    assert rules(dry) == [{**rule, "verbs": ["get"]} for rule in rules(one(manifest, "Role", "reconcile-deploy"))]


@pytest.mark.parametrize("directory", OVERLAYS)
def test_no_rule_is_a_wildcard_or_reads_secrets_beyond_one_name_and_every_binding_is_reconciles(directory: str) -> None:
    objects = render(directory)
    for document in objects:
        for rule in document.get("rules", ()):
            assert "*" not in {*rule["verbs"], *rule["apiGroups"], *rule["resources"]}, rule
            assert not {"delete", "deletecollection", "escalate", "bind", "impersonate"} & set(rule["verbs"])
            if "secrets" in rule["resources"]:
                assert rule["verbs"] == ["get"] and rule["resourceNames"], rule
        if document["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            assert document["subjects"] == [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT[1],
                                             "namespace": SERVICE_ACCOUNT[0]}]
            target = one(objects, document["roleRef"]["kind"], document["roleRef"]["name"])
            assert target["metadata"].get("namespace") == document["metadata"].get("namespace")


@pytest.mark.parametrize("directory", RENDERED)
def test_credentials_are_referenced_never_included(directory: str) -> None:
    objects = render(directory)
    assert "Secret" not in {o["kind"] for o in objects}
    settings = one(objects, "ConfigMap", "reconcile-settings")
    assert set(settings["data"]) == {"RECONCILE_REPO", "RECONCILE_REF"}
    assert re.fullmatch(r"https://\S+\.git", settings["data"]["RECONCILE_REPO"])
    main = container(objects)
    assert main["envFrom"] == [{"configMapRef": {"name": "reconcile-settings"}}]
    for variable in main["env"]:
        assert "value" in variable or "valueFrom" in variable
        if "value" in variable:
            assert not re.search(r"(?i)password|token|secret", variable["name"]), variable


@pytest.mark.parametrize("directory", RENDERED)
def test_everything_the_pod_names_is_in_the_package(directory: str) -> None:
    objects = render(directory)
    pod = pod_spec(objects)
    one(objects, "ServiceAccount", pod["serviceAccountName"])
    claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert claims == ["reconcile-data"]
    pvc = one(objects, "PersistentVolumeClaim", "reconcile-data")
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]  # SQLite: a local filesystem, never a network one
    mounted = {m["name"] for m in container(objects)["volumeMounts"]}
    assert mounted == {v["name"] for v in pod["volumes"]}
    assert container(objects)["image"].startswith("registry.example.com/platform/reconcile")  # images: in base


def secret_references(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        if set(node) in ({"env"}, {"file"}, {"kubernetes"}) and not isinstance(next(iter(node.values())), list):
            return [node]
        return [ref for value in node.values() for ref in secret_references(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in secret_references(value)]
    return []


def test_the_example_policies_credentials_resolve_in_the_pod() -> None:
    """policies/ asks for {env: NAME}, {file: PATH}, a dockerConfig, a CA file, a kubeconfig file and a
    {kubernetes: …} Secret: the pod has each variable, a mount over each path and `get` on the Secret."""
    documents = [d for path in sorted((ROOT / "policies").glob("*.yaml")) for d in documents_of(path)]
    references = secret_references(documents)
    files = [r["file"] for r in references if "file" in r]
    files += [d["spec"]["credentials"]["dockerConfig"] for d in documents
              if "dockerConfig" in d["spec"].get("credentials", {})]
    files += [d["spec"]["tls"]["caFile"] for d in documents if "caFile" in d["spec"].get("tls", {})]
    variables = [r["env"] for r in references if "env" in r]
    secrets = [r["kubernetes"] for r in references if "kubernetes" in r]
    assert files and variables and secrets
    objects = render("apply")
    main, pod = container(objects), pod_spec(objects)
    assert set(variables) <= {e["name"] for e in main["env"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for path in files:
        mounts = [m for m in main["volumeMounts"] if Path(path).is_relative_to(m["mountPath"])]
        assert mounts and mounts[-1].get("readOnly"), path
        volume = volumes[mounts[-1]["name"]]
        sources = volume["projected"]["sources"] if "projected" in volume else [volume]
        paths = [item["path"] for source in sources for kind in ("secret", "configMap") if kind in source
                 for item in source[kind]["items"]]
        assert str(Path(path).relative_to(mounts[-1]["mountPath"])) in paths, path
    for secret in secrets:
        granted = [rule for role in objects if role["kind"] == "Role"
                   and role["metadata"]["namespace"] == secret["namespace"] for rule in role["rules"]
                   if "secrets" in rule["resources"] and secret["name"] in rule.get("resourceNames", ())]
        assert granted, secret


def test_the_audit_shell_reads_the_cronjobs_trail_as_the_cronjobs_user() -> None:
    (shell,) = documents_of(DEPLOY / "tools" / "audit-shell.yaml")
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(shell, version, strict=True)
    objects = render("apply")
    job_pod, main = pod_spec(objects), container(objects)
    (reader,) = shell["spec"]["containers"]
    assert reader["image"] == main["image"]
    assert shell["spec"]["securityContext"] == job_pod["securityContext"]
    assert reader["securityContext"] == main["securityContext"]
    assert reader["command"][0] == "sleep" and shell["spec"]["activeDeadlineSeconds"] <= 3600
    env = {e["name"]: e["value"] for e in main["env"] if "value" in e}
    assert {e["name"]: e["value"] for e in reader["env"]}.items() <= env.items()
    mounts = {m["mountPath"]: m["name"] for m in reader["volumeMounts"]}
    volumes = {v["name"]: v for v in shell["spec"]["volumes"]}
    assert volumes[mounts["/var/lib/reconcile"]]["persistentVolumeClaim"] == {"claimName": "reconcile-data"}
    assert shell["spec"]["automountServiceAccountToken"] is False
