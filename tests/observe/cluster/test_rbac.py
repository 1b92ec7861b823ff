"""deploy/rbac.yaml grants exactly what the adapter calls, and RBAC.md documents each rule."""

from __future__ import annotations

import yaml

from reconcile.observe.cluster.kinds import DEPLOYABLE, DISCOVERED
from tests.kube import manifest_rules
from tests.observe.cluster.backends import RBAC_MANIFEST, SERVICE_ACCOUNT


def permissions(namespace: str | None) -> set[tuple[str, str, str]]:
    rules = manifest_rules(RBAC_MANIFEST, service_account=SERVICE_ACCOUNT)
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
