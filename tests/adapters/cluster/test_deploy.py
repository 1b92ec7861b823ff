"""Deploy by digest: one container patched, the change cause recorded, no-op when already there,
409s read again and retried."""

from __future__ import annotations

from typing import Any

import pytest

from reconcile.adapters.cluster import CHANGE_CAUSE, ClusterClient, ClusterError, NotFoundError
from reconcile.policy.model import Workload
from tests.adapters.cluster.backends import Backend, FixtureBackend
from tests.adapters.cluster.scenarios import cron_job, daemon_set, deployment, digest, revision, stateful_set
from tests.kube import ApiServer

CAUSE = "DeployPolicy/prod-web at 3f9c2ab"
WEB = Workload("Deployment", "web", "web")
PINNED = f"ghcr.io/acme/web@{digest('1')}"


def web(backend: Backend) -> tuple[str, ClusterClient]:
    namespace = backend.namespace("web")
    backend.create(deployment(namespace, "web", {"web": "ghcr.io/acme/web:1.0", "proxy": "ghcr.io/acme/proxy:2.0"}))
    backend.wait("revision 1", lambda: revision(backend.read("apps/v1", "Deployment", namespace, "web")) == 1)
    return namespace, backend.connect(backend.identity([namespace]))


def containers(obj: dict[str, Any], *path: str) -> list[tuple[str, str]]:
    for key in (path or ("spec", "template")):
        obj = obj[key]
    return [(c["name"], c["image"]) for c in obj["spec"]["containers"]]


def spy_patches(client: ClusterClient, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    sent: list[Any] = []
    original = client.connection.patch

    def patch(*args: Any, **kwargs: Any) -> Any:
        sent.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(client.connection, "patch", patch)
    return sent


def test_deploy_by_digest_patches_only_the_named_container_and_repeating_it_is_a_no_op(
        kube: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    namespace, client = web(kube)
    with client:
        result = client.deploy(namespace, WEB, PINNED, cause=CAUSE)
        assert (result.changed, result.before, result.after) == (True, "ghcr.io/acme/web:1.0", PINNED)
        assert (result.revision_before, result.generation, result.attempts) == (1, 2, 1)
        live = kube.read("apps/v1", "Deployment", namespace, "web")
        assert containers(live) == [("web", PINNED), ("proxy", "ghcr.io/acme/proxy:2.0")]
        assert live["metadata"]["annotations"][CHANGE_CAUSE] == CAUSE

        rollout = client.wait_for_rollout(namespace, "Deployment", "web", kube.rollout_timeout)
        assert (rollout.status, rollout.revision, rollout.observed_generation) == ("complete", 2, 2)

        patches = spy_patches(client, monkeypatch)
        again = client.deploy(namespace, WEB, PINNED, cause=CAUSE)
        # The same digest under a tag is the same deploy.
        tagged = client.deploy(namespace, WEB, f"ghcr.io/acme/web:1.1@{digest('1')}", cause=CAUSE)
    assert (again.changed, again.before, again.after, again.generation) == (False, PINNED, PINNED, 2)
    assert not tagged.changed
    assert patches == []  # nothing sent
    assert revision(kube.read("apps/v1", "Deployment", namespace, "web")) == 2


def test_a_conflict_mid_deploy_is_read_again_and_retried(kube: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    namespace, client = web(kube)
    original = client.connection.patch
    raced: list[bool] = []

    def racing(*args: Any, **kwargs: Any) -> Any:
        if not raced:  # someone else writes between our read and our patch: the server answers 409
            raced.append(True)
            kube.patch("apps/v1", "Deployment", namespace, "web",
                       {"metadata": {"annotations": {"team.example.com/owner": "someone-else"}}})
        return original(*args, **kwargs)

    monkeypatch.setattr(client.connection, "patch", racing)
    with client:
        result = client.deploy(namespace, WEB, PINNED, cause=CAUSE)
    assert (result.changed, result.attempts, result.after) == (True, 2, PINNED)
    live = kube.read("apps/v1", "Deployment", namespace, "web")
    assert live["metadata"]["annotations"]["team.example.com/owner"] == "someone-else"  # not overwritten
    assert containers(live)[0] == ("web", PINNED)


def test_conflicts_that_never_end_give_up_with_the_count(fixture_backend: FixtureBackend, api: ApiServer) -> None:
    namespace, client = web(fixture_backend)
    api.inject_conflict("deployments", namespace, "web", times=10)
    with client, pytest.raises(ClusterError) as failed:
        client.deploy(namespace, WEB, PINNED, cause=CAUSE)
    assert str(failed.value) == (f"cluster prod-eu: Deployment {namespace}/web kept changing: "
                                 "5 attempts ended in 409 Conflict")
    patches = [r for r in api.seen("PATCH") if r.status == 409]
    assert len(patches) == 5


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet", "CronJob"])
def test_deploy_patches_the_pod_template_of_each_kind(kube: Backend, kind: str) -> None:
    namespace = kube.namespace("kinds")
    images = {"app": "ghcr.io/acme/app:1.0", "side": "ghcr.io/acme/side:1.0"}
    make = {"StatefulSet": stateful_set, "DaemonSet": daemon_set, "CronJob": cron_job}[kind]
    api_version = "batch/v1" if kind == "CronJob" else "apps/v1"
    kube.create(make(namespace, "app", images))
    target = f"ghcr.io/acme/app@{digest('2')}"
    with kube.connect(kube.identity([namespace])) as client:
        result = client.deploy(namespace, Workload(kind, "app", "app"), target, cause=CAUSE)
        rollout = client.wait_for_rollout(namespace, kind, "app", kube.rollout_timeout)
    live = kube.read(api_version, kind, namespace, "app")
    path = ("spec", "jobTemplate", "spec", "template") if kind == "CronJob" else ()
    assert containers(live, *path) == [("app", target), ("side", "ghcr.io/acme/side:1.0")]
    assert (result.changed, result.before, live["metadata"]["annotations"][CHANGE_CAUSE]) == (
        True, "ghcr.io/acme/app:1.0", CAUSE)
    assert rollout.status == "complete", rollout.reason


def test_deploy_errors_name_the_cluster_and_what_is_missing(fixture_backend: FixtureBackend) -> None:
    namespace, client = web(fixture_backend)
    with client:
        with pytest.raises(ClusterError) as missing_container:
            client.deploy(namespace, Workload("Deployment", "web", "nope"), PINNED, cause=CAUSE)
        with pytest.raises(NotFoundError) as missing_workload:
            client.deploy(namespace, Workload("Deployment", "gone", "web"), PINNED, cause=CAUSE)
        with pytest.raises(ValueError, match="deploys pin images by digest"):
            client.deploy(namespace, WEB, "ghcr.io/acme/web:2.0", cause=CAUSE)
    assert str(missing_container.value) == (f"cluster prod-eu: Deployment {namespace}/web has no container 'nope' "
                                            "(containers: web, proxy)")
    assert str(missing_workload.value) == ('cluster prod-eu: get deployments: 404 Not Found: '
                                           'deployments.apps "gone" not found')
