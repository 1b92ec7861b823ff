"""deploy/rbac.yaml grants exactly what the adapter calls, the opt-in for Helm history exactly what
reading it needs (and is not applied with the rest), and RBAC.md documents each rule."""

from __future__ import annotations

from pathlib import Path

import yaml

from reconcile.adapters.cluster.errors import HELM_RBAC_FILE, HELM_ROLE
from reconcile.adapters.cluster.kinds import DEPLOYABLE, DISCOVERED, SECRET
from tests.adapters.cluster.backends import HELM_RBAC_MANIFEST, RBAC_MANIFEST, ROOT, SERVICE_ACCOUNT
from tests.kube import manifest_rules


def permissions(namespace: str | None, manifest: Path = RBAC_MANIFEST) -> set[tuple[str, str, str]]:
    rules = manifest_rules(manifest, service_account=SERVICE_ACCOUNT)
    return {(verb, group, resource) for rule in rules if rule.namespace == namespace
            for verb in rule.verbs for group in rule.groups for resource in rule.resources}


def test_the_cluster_role_lists_and_watches_exactly_the_discovered_kinds() -> None:
    assert permissions(None) == {(verb, r.group, r.plural) for r in DISCOVERED for verb in ("list", "watch")}


def test_the_role_gets_and_patches_exactly_the_deployable_kinds() -> None:
    assert permissions("web") == {(verb, r.group, r.plural) for r in DEPLOYABLE.values() for verb in ("get", "patch")}


def test_the_manifest_is_complete_and_grants_no_wildcard_nor_secret() -> None:
    documents = [d for d in yaml.safe_load_all(RBAC_MANIFEST.read_text()) if d]
    assert [d["kind"] for d in documents] == ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                                              "RoleBinding"]
    for rule in (r for d in documents for r in d.get("rules", ())):
        assert "*" not in {*rule["verbs"], *rule["apiGroups"], *rule["resources"]}
        assert "secrets" not in rule["resources"]


def test_rbac_md_documents_every_rule_and_the_helm_opt_in() -> None:
    text = (RBAC_MANIFEST.parent / "RBAC.md").read_text()
    for resource in {r.plural for r in DISCOVERED} | {r.plural for r in DEPLOYABLE.values()}:
        assert f"`{resource}`" in text, resource
    assert "reconcile-images-in-use" in text and "reconcile-deploy" in text
    assert "helm.sh/release.v1" in text and "Opt-in" in text


def test_the_helm_opt_in_lists_secrets_and_nothing_else_and_is_not_in_the_default_manifest() -> None:
    assert HELM_RBAC_MANIFEST == ROOT / HELM_RBAC_FILE  # the file the 403 message names
    assert permissions(None, HELM_RBAC_MANIFEST) == {("list", SECRET.group, SECRET.plural)}  # no get, no watch
    documents = [d for d in yaml.safe_load_all(HELM_RBAC_MANIFEST.read_text()) if d]
    assert [(d["kind"], d["metadata"]["name"]) for d in documents] == [("ClusterRole", HELM_ROLE),
                                                                       ("ClusterRoleBinding", HELM_ROLE)]
    # `kubectl apply -f deploy/` does not descend into subdirectories: opting in is a separate step.
    assert HELM_RBAC_MANIFEST.parent != RBAC_MANIFEST.parent
    assert "OPT-IN" in HELM_RBAC_MANIFEST.read_text() and HELM_RBAC_FILE in RBAC_MANIFEST.read_text()
    text = (RBAC_MANIFEST.parent / "RBAC.md").read_text()
    assert HELM_RBAC_FILE.removeprefix("deploy/") in text
    assert "fieldSelector=type=helm.sh/release.v1" in text and "returns their values" in text
