"""Pull-request mode: the policies of the ref read, the connections of the trusted ref.

A ref other than the trusted one (a pull request's branch) may change retention, promotion and
deploy policies: that is what its plan is for. It may not change where reconcile connects or with
which credentials: every Registry and Cluster document (url, allowedHosts, credentials and every
secret reference, TLS, kubeconfig, context, inCluster, manifests...) comes from the trusted ref,
by default the repository's default branch (``source.default_branch``), else ``--trusted-ref``.
What the ref read changes there is kept as :class:`ConnectionChange` entries for review; a
Registry or Cluster only the ref read defines is not connected to at all (not even anonymously),
so the policies that use it are blocked as for any source that cannot be read.

Secret references appear in Registry, Cluster and Notification documents and in a DeployPolicy's
``heroku`` target (the schemas' ``secretRef``), so taking those from the trusted ref is what keeps
a pull request from naming a secret. A heroku target's token (and the API host it goes to) is used
only when the DeployPolicy's heroku block is identical at the trusted ref; else the policy is listed
in ``unconnectable`` and its deploy is blocked. A Notification decides where run summaries (and,
through its URLs, tokens) go: every Notification is the trusted ref's; one the ref read adds,
changes or removes is a change to review.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Any, Literal

from reconcile.policy.loader import validate_repo, validate_snapshot
from reconcile.policy.model import (
    Cluster,
    ConnectionChange,
    Credentials,
    Listing,
    ManifestsSource,
    Notification,
    PolicySet,
    RateLimit,
    Registry,
    Retry,
    Webhook,
)
from reconcile.policy.problems import PolicyError
from reconcile.policy.secrets import SecretRef
from reconcile.policy.source import SourceError, default_branch, read_snapshot, redact_url, unambiguous

__all__ = ["compose", "connection_changes", "load_with_trusted_connections", "short_ref"]


def short_ref(full: str) -> str:
    """``refs/heads/main`` -> ``main``, ``refs/remotes/origin/main`` -> ``origin/main``."""
    for prefix in ("refs/heads/", "refs/remotes/"):
        if full.startswith(prefix):
            return full[len(prefix):]
    return full


def load_with_trusted_connections(repo: str, ref: str | None, trusted_ref: str | None) -> PolicySet:
    """The policies of ``repo`` at ``ref``, with the Registries and Clusters of ``trusted_ref``
    (None: the default branch). Raises PolicyError when the ref read is invalid, SourceError when
    the trusted ref cannot be told, read or used."""
    validation = validate_repo(repo, ref)
    if validation.policies is None:
        raise PolicyError(list(validation.errors))
    proposed = validation.policies
    if proposed.commit is None:  # a plain directory: one version, nothing to compare
        if trusted_ref:
            raise SourceError(f"--trusted-ref {trusted_ref!r} given, but {repo!r} is not a git repository")
        return proposed
    name = trusted_ref or default_branch(repo)
    if not name:
        raise SourceError(f"cannot tell which ref of {repo!r} is trusted for connections: it has no "
                          "origin/HEAD and no main branch; pass --trusted-ref REF (the default branch, "
                          "e.g. origin/main) or set RECONCILE_TRUSTED_REF")
    shown = short_ref(name)
    try:
        unambiguous(repo, name)  # a tag 'origin/main' would shadow the branch the job means
        snapshot = read_snapshot(repo, name, fetch=False)  # the remote as the read above fetched it
    except SourceError as e:
        raise SourceError(f"the trusted ref {shown!r} cannot be read: {e}") from None
    if snapshot.commit == proposed.commit:
        return proposed
    trusted = validate_snapshot(snapshot)
    if trusted.policies is None:
        first = trusted.errors[0]
        raise SourceError(f"the trusted ref {shown} (commit {(snapshot.commit or '-')[:12]}), where connections come "
                          f"from, is invalid ({len(trusted.errors)} problems, the first: {first}); nothing "
                          "is connected to")
    return compose(trusted.policies, proposed, shown)


def compose(trusted: PolicySet, proposed: PolicySet, trusted_ref: str) -> PolicySet:
    """``proposed``'s retention, promotion and deploy policies with ``trusted``'s Registries and
    Clusters. One only ``proposed`` defines is kept by name, stripped of every credential and
    listed in ``unconnectable``; one only ``trusted`` defines stays (no policy of ``proposed`` can
    name it: validation refuses unknown names)."""
    at = f"{trusted_ref} (commit {trusted.commit[:12] if trusted.commit else '-'})"
    unconnectable: dict[str, str] = {}
    registries = dict(trusted.registries)
    for name, registry in proposed.registries.items():
        if name not in registries:
            registries[name] = dataclasses.replace(registry, credentials=None, allowed_hosts=(), ca_file=None,
                                                   insecure_skip_verify=False, listing=None)
            unconnectable[f"Registry/{name}"] = _not_trusted("Registry", name, at)
    clusters = dict(trusted.clusters)
    for name, cluster in proposed.clusters.items():
        if name not in clusters:
            clusters[name] = dataclasses.replace(cluster, in_cluster=False, kubeconfig=None, context=None,
                                                 manifests=None)
            unconnectable[f"Cluster/{name}"] = _not_trusted("Cluster", name, at)
    # A heroku target names a token and where it is sent: usable only as the trusted ref has it.
    for name, deploy in proposed.deploy_policies.items():
        trusted_deploy = trusted.deploy_policies.get(name)
        if deploy.heroku is not None and (trusted_deploy is None or trusted_deploy.heroku != deploy.heroku):
            unconnectable[f"DeployPolicy/{name}"] = (
                f"DeployPolicy/{name}'s heroku target (app, process, api, token reference) differs from the trusted "
                f"ref {at} or is not there; its token is not used (connections come from the trusted ref) until "
                "it is merged")
    return dataclasses.replace(
        proposed, registries=MappingProxyType(dict(sorted(registries.items()))),
        clusters=MappingProxyType(dict(sorted(clusters.items()))), notifications=trusted.notifications,
        trusted_ref=trusted_ref,
        trusted_commit=trusted.commit, connection_changes=connection_changes(trusted, proposed, at),
        unconnectable=MappingProxyType(unconnectable))


def _not_trusted(kind: str, name: str, at: str) -> str:
    return (f"{kind}/{name} is defined only at the ref read, not at the trusted ref {at}; reconcile does not "
            "connect to it (connections come from the trusted ref) until it is merged")


def connection_changes(trusted: PolicySet, proposed: PolicySet, at: str) -> tuple[ConnectionChange, ...]:
    changes = []
    kinds: tuple[tuple[Literal["Registry", "Cluster"], Mapping[str, Registry | Cluster],
                       Mapping[str, Registry | Cluster]], ...] = (
        ("Registry", trusted.registries, proposed.registries), ("Cluster", trusted.clusters, proposed.clusters))
    for kind, old_all, new_all in kinds:
        for name in sorted(set(old_all) | set(new_all)):
            old, new = old_all.get(name), new_all.get(name)
            if new is None:
                changes.append(ConnectionChange(kind, name, "removed", (), "removed by the ref read; no policy there "
                                                "names it, so nothing connects to it"))
            elif old is None:
                changes.append(ConnectionChange(kind, name, "added", _described(new), "not connected to (not even "
                                                f"anonymously): it is not defined at the trusted ref {at}; the "
                                                "policies that use it are blocked until it is merged"))
            elif old != new:
                changes.append(ConnectionChange(kind, name, "changed", _differences(old, new),
                                                f"not used by this plan: the definition at the trusted ref {at} "
                                                "is, until the change is merged"))
    for name in sorted(set(trusted.notifications) | set(proposed.notifications)):
        was, now = trusted.notifications.get(name), proposed.notifications.get(name)
        if now is None:
            changes.append(ConnectionChange("Notification", name, "removed", (), f"still notified: the "
                                            f"Notification at the trusted ref {at} is used until the change is "
                                            "merged"))
        elif was is None:
            changes.append(ConnectionChange("Notification", name, "added", _described(now), "nothing is sent to "
                                            f"it: it is not defined at the trusted ref {at}"))
        elif was != now:
            changes.append(ConnectionChange("Notification", name, "changed", _differences(was, now),
                                            f"not used: the definition at the trusted ref {at} is, until the "
                                            "change is merged"))
    return tuple(changes)


_LABELS = {"url": "url", "allowed_hosts": "allowedHosts", "credentials": "credentials",
           "ca_file": "tls.caFile", "insecure_skip_verify": "tls.insecureSkipVerify", "concurrency": "concurrency",
           "rate_limit": "rateLimit", "timeout": "timeout", "retry": "retry", "deletion": "deletion",
           "limits": "limits", "listing": "listing",
           "in_cluster": "inCluster", "kubeconfig": "kubeconfig", "context": "context", "manifests": "manifests",
           "include_namespaces": "namespaces.include", "exclude_namespaces": "namespaces.exclude",
           "username": "credentials.username", "password": "credentials.password", "token": "credentials.token",
           "docker_config": "credentials.dockerConfig", "when": "when", "apprise": "apprise", "webhook": "webhook"}
_SKIPPED = {"name", "origin"}


def _fields(value: Any) -> list[tuple[str, Any]]:
    return [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value) if f.name not in _SKIPPED]


def _differences(old: Registry | Cluster | Notification, new: Registry | Cluster | Notification) -> tuple[str, ...]:
    found = []
    for (attribute, before), (_, after) in zip(_fields(old), _fields(new), strict=True):
        if before == after:
            continue
        if isinstance(before, Credentials) and isinstance(after, Credentials):
            found += [f"{_LABELS[a]} {_show(a, b)} → {_show(a, c)}" for (a, b), (_, c)
                      in zip(_fields(before), _fields(after), strict=True) if b != c]
        else:
            found.append(f"{_LABELS[attribute]} {_show(attribute, before)} → {_show(attribute, after)}")
    return tuple(found)


def _described(new: Registry | Cluster | Notification) -> tuple[str, ...]:
    """What an added Registry, Cluster or Notification says (its references by name), for review."""
    found = []
    for attribute, value in _fields(new):
        if isinstance(value, Credentials):
            found += [f"{_LABELS[a]} {_show(a, v)}" for a, v in _fields(value) if v is not None]
        elif value not in (None, (), False):
            found.append(f"{_LABELS[attribute]} {_show(attribute, value)}")
    return tuple(found)


def _show(attribute: str, value: Any) -> str:
    """A value as a reviewer may see it: secret references by what they name, never a secret;
    a plain user name is not shown either (it is half of a credential)."""
    if value is None:
        return "(none)"
    if isinstance(value, SecretRef):
        return "{" + value.describe().replace(":", ": ", 1) + "}"
    if attribute == "username":
        return "(a user name)"
    if isinstance(value, Credentials):
        parts = [f"{_LABELS[a].removeprefix('credentials.')} {_show(a, v)}" for a, v in _fields(value) if v is not None]
        return "{" + ", ".join(parts) + "}"
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, tuple):
        return ", ".join(_show(attribute, v) if isinstance(v, SecretRef) else str(v) for v in value) \
            if value else "(none)"
    if isinstance(value, Webhook):
        url = _show("url", value.url)
        return (f"{{url {url}, secret {_show('secret', value.secret)}, {value.attempts} attempts, "
                f"{value.timeout.total_seconds():g}s timeout}}")
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, RateLimit):
        return f"{value.requests_per_second:g}/s, burst {value.burst}"
    if isinstance(value, Retry):
        return f"{value.attempts} attempts, {value.budget.total_seconds():g}s budget"
    if isinstance(value, Listing):
        shown = f"api {value.api}, url {redact_url(value.url)}" + (f", region {value.region}" if value.region else "")
        keys = value.credentials
        if keys is not None:  # by reference, as the registry's credentials; the key id is half of one
            token = f", sessionToken {_show('token', keys.session_token)}" if keys.session_token else ""
            key_id = "(an access key id)" if isinstance(keys.access_key_id, str) else _show("id", keys.access_key_id)
            shown += (f", credentials {{accessKeyId {key_id}, secretAccessKey "
                      f"{_show('password', keys.secret_access_key)}{token}}}")
        return "{" + shown + "}"
    if isinstance(value, ManifestsSource):
        return f"{redact_url(value.repo)} {value.path}" + (f" (branch {value.branch})" if value.branch else "")
    return str(value).lower() if isinstance(value, bool) else str(value)


def described_changes(changes: tuple[ConnectionChange, ...]) -> list[dict[str, Any]]:
    """The JSON form (the plan's ``connectionChanges``)."""
    return [{"kind": c.kind, "name": c.name, "change": c.change, "details": list(c.details), "used": c.used}
            for c in changes]


def unconnectable_reason(policies: PolicySet, kind: str, name: str) -> str | None:
    reasons: Mapping[str, str] = policies.unconnectable
    return reasons.get(f"{kind}/{name}")
