"""Who may do what on the API-server fixture: bearer tokens mapped to RBAC-style rules.

Authorization follows https://kubernetes.io/docs/reference/access-authn-authz/rbac/: a request is
allowed if any rule of the identity matches its verb, API group and resource (``pods/status``
for a subresource); a Role's rules match only in its namespace, a ClusterRole's everywhere,
including cluster-wide lists.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Rule:
    verbs: frozenset[str]
    groups: frozenset[str]
    resources: frozenset[str]
    namespace: str | None = None  # None: a ClusterRole's rule

    @classmethod
    def of(cls, verbs: Iterable[str], groups: Iterable[str], resources: Iterable[str],
           namespace: str | None = None) -> Rule:
        return cls(frozenset(verbs), frozenset(groups), frozenset(resources), namespace)

    def allows(self, verb: str, group: str, resource: str, namespace: str | None) -> bool:
        if self.namespace is not None and self.namespace != namespace:
            return False
        return (_match(self.verbs, verb) and _match(self.groups, group) and _match(self.resources, resource))


def _match(allowed: frozenset[str], value: str) -> bool:
    return "*" in allowed or value in allowed


@dataclass(frozen=True)
class Identity:
    user: str
    rules: tuple[Rule, ...] = field(default=())

    def allows(self, verb: str, group: str, resource: str, namespace: str | None) -> bool:
        return any(rule.allows(verb, group, resource, namespace) for rule in self.rules)


ADMIN = Identity("kubernetes-admin", (Rule.of(["*"], ["*"], ["*"]),))


def _rules(raw: Any, namespace: str | None) -> list[Rule]:
    return [Rule.of(r.get("verbs", ()), r.get("apiGroups", ()), r.get("resources", ()), namespace)
            for r in raw or ()]


def manifest_rules(path: Path, *, service_account: tuple[str, str],
                   role_namespaces: Iterable[str] | None = None) -> tuple[Rule, ...]:
    """The rules ``deploy/rbac.yaml`` grants ``service_account`` (namespace, name).

    With ``role_namespaces``, each namespaced Role bound to it is granted in those namespaces
    instead of its own: the manifest's Role is instantiated once per deploy namespace.
    """
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    cluster_roles = {d["metadata"]["name"]: d for d in documents if d["kind"] == "ClusterRole"}
    roles = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in documents if d["kind"] == "Role"}
    namespace, name = service_account
    rules: list[Rule] = []
    for binding in documents:
        if binding["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == name and s.get("namespace") == namespace
                   for s in binding.get("subjects") or ()):
            continue
        ref = binding["roleRef"]
        if binding["kind"] == "ClusterRoleBinding":
            rules += _rules(cluster_roles[ref["name"]].get("rules"), None)
            continue
        bound_namespace = binding["metadata"]["namespace"]
        role = cluster_roles[ref["name"]] if ref["kind"] == "ClusterRole" else roles[(bound_namespace, ref["name"])]
        for target in (role_namespaces if role_namespaces is not None else [bound_namespace]):
            rules += _rules(role.get("rules"), target)
    return tuple(rules)


def without(rules: Iterable[Rule], verb: str, group: str, resource: str) -> tuple[Rule, ...]:
    """``rules`` minus one permission (the manifest lists no wildcards)."""
    kept: list[Rule] = []
    for rule in rules:
        if verb in rule.verbs and group in rule.groups and resource in rule.resources:
            if rule.resources - {resource}:
                kept.append(Rule(rule.verbs, rule.groups, rule.resources - {resource}, rule.namespace))
            if rule.verbs - {verb}:
                kept.append(Rule(rule.verbs - {verb}, rule.groups, frozenset({resource}), rule.namespace))
        else:
            kept.append(rule)
    return tuple(kept)
