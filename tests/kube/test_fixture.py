"""The API-server fixture itself: the kube-apiserver behaviours the cluster tests rely on."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client, config
from kubernetes.dynamic import DynamicClient

from tests.kube import ApiServer, Identity, Rule, running
from tests.kube.patches import PatchError, json_patch, merge_patch, strategic_merge


@pytest.fixture
def api() -> Iterator[ApiServer]:
    with running(controller_delay=0.0) as server:
        yield server


@pytest.fixture
def admin(api: ApiServer, tmp_path: Path) -> Iterator[client.ApiClient]:
    path = api.kubeconfig(tmp_path / "admin.kubeconfig", "admin-token")
    with config.new_client_from_config(config_file=str(path), persist_config=False) as api_client:
        yield api_client


def call(api: ApiServer, method: str, path: str, body: Any = None, *, token: str = "admin-token",
         content_type: str = "application/json") -> tuple[int, Any]:
    response = urllib3.request(method, api.url + path, body=None if body is None else json.dumps(body),
                               headers={"Authorization": f"Bearer {token}", "Content-Type": content_type})
    return response.status, response.json()


def web(api: ApiServer, namespace: str = "web", replicas: int = 2) -> dict[str, Any]:
    call(api, "POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    status, created = call(api, "POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", {
        "metadata": {"name": "web", "annotations": {"kubernetes.io/change-cause": "first"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "web:1", "env": [{"name": "A", "value": "1"}]},
                                    {"name": "side", "image": "side:1"}]}}}})
    assert status == 201
    return created


def settle(api: ApiServer) -> None:
    time.sleep(0.1)  # the controller worker runs right after each template change


def test_discovery_endpoints_parse_with_the_official_client(admin: client.ApiClient) -> None:
    assert client.CoreApi(admin).get_api_versions().versions == ["v1"]
    groups = {g.name: g.preferred_version.group_version for g in client.ApisApi(admin).get_api_versions().groups}
    assert groups == {"apps": "apps/v1", "batch": "batch/v1", "coordination.k8s.io": "coordination.k8s.io/v1"}
    apps = {r.name for r in client.AppsV1Api(admin).get_api_resources().resources}
    assert {"deployments", "deployments/status", "replicasets", "controllerrevisions"} <= apps
    assert client.VersionApi(admin).get_code().git_version.startswith("v1.33")
    dynamic = DynamicClient(admin, cache_file=None)
    assert dynamic.resources.get(api_version="batch/v1", kind="CronJob").namespaced


def test_patch_types_merge_containers_by_name_or_replace_lists(api: ApiServer) -> None:
    web(api)
    path = "/apis/apps/v1/namespaces/web/deployments/web"
    containers = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}}
    status, strategic = call(api, "PATCH", path, containers, content_type="application/strategic-merge-patch+json")
    assert status == 200
    spec = strategic["spec"]["template"]["spec"]
    assert [(c["name"], c["image"]) for c in spec["containers"]] == [("web", "web:2"), ("side", "side:1")]
    assert spec["containers"][0]["env"] == [{"name": "A", "value": "1"}]  # merged, not replaced
    assert strategic["metadata"]["generation"] == 2

    status, merged = call(api, "PATCH", path, containers, content_type="application/merge-patch+json")
    assert [c["name"] for c in merged["spec"]["template"]["spec"]["containers"]] == ["web"]  # lists replace

    ops = [{"op": "add", "path": "/metadata/labels", "value": {"tier": "front"}},
           {"op": "test", "path": "/spec/replicas", "value": 2}]
    status, patched = call(api, "PATCH", path, ops, content_type="application/json-patch+json")
    assert (status, patched["metadata"]["labels"]) == (200, {"tier": "front"})
    status, failed = call(api, "PATCH", path, [{"op": "test", "path": "/spec/replicas", "value": 5}],
                          content_type="application/json-patch+json")
    assert (status, failed["kind"], failed["reason"]) == (422, "Status", "Invalid")


def test_resource_versions_conflict_and_injected_conflicts(api: ApiServer) -> None:
    created = web(api)
    path = "/apis/apps/v1/namespaces/web/deployments/web"
    stale = created["metadata"]["resourceVersion"]
    call(api, "PATCH", path, {"metadata": {"labels": {"a": "b"}}}, content_type="application/merge-patch+json")
    status, conflict = call(api, "PATCH", path, {"metadata": {"resourceVersion": stale, "labels": {"c": "d"}}},
                            content_type="application/merge-patch+json")
    assert (status, conflict["reason"]) == (409, "Conflict")
    assert conflict["message"].startswith('Operation cannot be fulfilled on deployments.apps "web": the object has')
    status, current = call(api, "GET", path)
    status, replaced = call(api, "PUT", path, current)
    assert status == 200 and int(replaced["metadata"]["resourceVersion"]) > int(current["metadata"]["resourceVersion"])

    api.inject_conflict("deployments", "web", "web")
    assert call(api, "PATCH", path, {"metadata": {"labels": {"e": "f"}}},
                content_type="application/merge-patch+json")[0] == 409
    assert call(api, "PATCH", path, {"metadata": {"labels": {"e": "f"}}},
                content_type="application/merge-patch+json")[0] == 200


def test_leases_are_created_and_replaced_with_a_resource_version_precondition(api: ApiServer,
                                                                           admin: client.ApiClient) -> None:
    call(api, "POST", "/api/v1/namespaces", {"metadata": {"name": "reconcile"}})
    leases = client.CoordinationV1Api(admin)
    spec = {"holderIdentity": "pod-a", "leaseDurationSeconds": 60, "leaseTransitions": 0,
            "acquireTime": "2026-01-01T00:00:00.000000Z", "renewTime": "2026-01-01T00:00:00.000000Z"}
    created = leases.create_namespaced_lease("reconcile", {"metadata": {"name": "run"}, "spec": spec})
    assert (created.kind, created.spec.holder_identity, created.spec.renew_time.microsecond) == ("Lease", "pod-a", 0)
    stale = created.metadata.resource_version
    body = {"metadata": {"name": "run", "resourceVersion": stale}, "spec": {**spec, "holderIdentity": "pod-b"}}
    replaced = leases.replace_namespaced_lease("run", "reconcile", body)
    assert replaced.spec.holder_identity == "pod-b" and replaced.metadata.resource_version != stale
    with pytest.raises(client.ApiException) as conflict:  # the same stale version: someone else won
        leases.replace_namespaced_lease("run", "reconcile", {**body, "spec": {**spec, "holderIdentity": "pod-c"}})
    assert conflict.value.status == 409
    with pytest.raises(client.ApiException) as exists:
        leases.create_namespaced_lease("reconcile", {"metadata": {"name": "run"}, "spec": spec})
    assert exists.value.status == 409
    assert api.get("leases", "reconcile", "run")["spec"]["holderIdentity"] == "pod-b"  # type: ignore[index]


def test_authentication_and_authorization_answer_status_objects(api: ApiServer) -> None:
    web(api)
    api.identities["reader"] = Identity("reader", (Rule.of(["list"], ["apps"], ["deployments"]),
                                                   Rule.of(["get"], ["apps"], ["deployments"], namespace="web")))
    assert call(api, "GET", "/apis/apps/v1/deployments", token="reader")[0] == 200
    assert call(api, "GET", "/apis/apps/v1/namespaces/web/deployments/web", token="reader")[0] == 200
    status, forbidden = call(api, "GET", "/apis/apps/v1/replicasets", token="reader")
    assert (status, forbidden["reason"], forbidden["message"]) == (
        403, "Forbidden", 'replicasets.apps is forbidden: User "reader" cannot list resource "replicasets" in API '
                          'group "apps" at the cluster scope')
    status, forbidden = call(api, "PATCH", "/apis/apps/v1/namespaces/web/deployments/web", {}, token="reader",
                             content_type="application/merge-patch+json")
    assert forbidden["message"] == ('deployments.apps "web" is forbidden: User "reader" cannot patch resource '
                                    '"deployments" in API group "apps" in the namespace "web"')
    status, unauthorized = call(api, "GET", "/api/v1/pods", token="wrong")
    assert (status, unauthorized["reason"]) == (401, "Unauthorized")
    assert [r.status for r in api.requests[-3:]] == [403, 403, 401]


def test_creating_needs_the_namespace_and_a_new_name(api: ApiServer) -> None:
    status, missing = call(api, "POST", "/api/v1/namespaces/nowhere/pods", {"metadata": {"name": "p"}})
    assert (status, missing["message"]) == (404, 'namespaces "nowhere" not found')
    web(api)
    status, exists = call(api, "POST", "/apis/apps/v1/namespaces/web/deployments", {"metadata": {"name": "web"}})
    assert (status, exists["reason"]) == (409, "AlreadyExists")


def test_lists_are_chunked_across_namespaces_and_tokens_expire(api: ApiServer) -> None:
    for namespace in ("a", "b", "c"):
        call(api, "POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
        for name in ("p1", "p2"):
            call(api, "POST", f"/api/v1/namespaces/{namespace}/pods", {"metadata": {"name": name}})
    seen, token = [], ""
    while True:
        status, page = call(api, "GET", f"/api/v1/pods?limit=4&continue={token}")
        seen += [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in page["items"]]
        token = page["metadata"].get("continue", "")
        if not token:
            break
        assert page["metadata"]["remainingItemCount"] == 2
        api.objects.pop(("pods", "c", "p2"))  # a consistent snapshot: later pages do not change
    assert seen == [(ns, p) for ns in "abc" for p in ("p1", "p2")]
    status, page = call(api, "GET", "/api/v1/pods?limit=1")
    api.expire_continue_tokens()
    status, expired = call(api, "GET", f"/api/v1/pods?limit=1&continue={page['metadata']['continue']}")
    assert (status, expired["reason"]) == (410, "Expired")


def test_field_selectors_filter_lists_by_supported_fields(api: ApiServer) -> None:
    for namespace in ("a", "b"):
        call(api, "POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
        call(api, "POST", f"/api/v1/namespaces/{namespace}/secrets",
             {"metadata": {"name": "release"}, "type": "helm.sh/release.v1"})
        call(api, "POST", f"/api/v1/namespaces/{namespace}/secrets", {"metadata": {"name": "plain"}})

    def names(query: str, path: str = "/api/v1/secrets") -> list[tuple[str, str]]:
        status, page = call(api, "GET", f"{path}?{query}")
        assert status == 200, page
        return [(s["metadata"]["namespace"], s["metadata"]["name"]) for s in page["items"]]

    assert names("fieldSelector=type%3Dhelm.sh%2Frelease.v1") == [("a", "release"), ("b", "release")]
    assert names("fieldSelector=type%3D%3DOpaque") == [("a", "plain"), ("b", "plain")]  # '' is defaulted
    assert names("fieldSelector=type!%3DOpaque,metadata.namespace%3Db") == [("b", "release")]
    assert names("fieldSelector=type%3Dhelm.sh%2Frelease.v1&limit=1") == [("a", "release")]  # before paging
    assert names("fieldSelector=metadata.name%3Dplain", "/api/v1/namespaces/a/secrets") == [("a", "plain")]
    status, refused = call(api, "GET", "/api/v1/pods?fieldSelector=type%3Dhelm.sh%2Frelease.v1")
    assert (status, refused["reason"], refused["message"]) == (400, "BadRequest", "field label not supported: type")


def test_the_deployment_controller_creates_revisions_and_reuses_them(api: ApiServer) -> None:
    web(api)
    path = "/apis/apps/v1/namespaces/web/deployments/web"
    settle(api)
    for image in ("web:2", "web:1"):  # a new template, then back to the first one
        call(api, "PATCH", path, {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}},
             content_type="application/strategic-merge-patch+json")
        settle(api)
    deployment = call(api, "GET", path)[1]
    replica_sets = call(api, "GET", "/apis/apps/v1/namespaces/web/replicasets")[1]["items"]
    revisions = {rs["spec"]["template"]["spec"]["containers"][0]["image"]:
                 (rs["metadata"]["annotations"], rs["spec"]["replicas"]) for rs in replica_sets}
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert revisions["web:1"] == ({"kubernetes.io/change-cause": "first", "deployment.kubernetes.io/revision": "3",
                                   "deployment.kubernetes.io/revision-history": "1"}, 2)
    assert revisions["web:2"][0]["deployment.kubernetes.io/revision"] == "2" and revisions["web:2"][1] == 0
    assert all(rs["metadata"]["ownerReferences"][0]["uid"] == deployment["metadata"]["uid"] for rs in replica_sets)
    assert deployment["status"]["conditions"][-1]["reason"] == "NewReplicaSetAvailable"
    assert deployment["status"]["observedGeneration"] == deployment["metadata"]["generation"] == 3

    api.rollouts[("web", "web")] = "fail"
    call(api, "PATCH", path, {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:3"}]}}}},
         content_type="application/strategic-merge-patch+json")
    settle(api)
    condition = call(api, "GET", path)[1]["status"]["conditions"][-1]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "Progressing", "False", "ProgressDeadlineExceeded")


def test_strategic_merge_directives() -> None:
    original = {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}],
                         "nodeSelector": {"x": "1"}, "volumes": [{"name": "v"}]}, "keep": True}
    patch = {"spec": {"containers": [{"name": "b", "$patch": "delete"}, {"name": "c", "image": "3"}],
                      "$setElementOrder/containers": [{"name": "a"}, {"name": "c"}],
                      "nodeSelector": {"$patch": "replace", "y": "2"}, "volumes": None}}
    assert strategic_merge(original, patch) == {
        "spec": {"containers": [{"name": "a", "image": "1"}, {"name": "c", "image": "3"}],
                 "nodeSelector": {"y": "2"}}, "keep": True}
    with pytest.raises(PatchError):
        strategic_merge(original, {"spec": {"containers": [{"image": "no-name"}]}})


def test_json_patch_and_merge_patch_follow_their_rfcs() -> None:
    doc = {"a": {"b": [1, 2]}, "c~d": 1, "e/f": 2}
    ops = [{"op": "add", "path": "/a/b/-", "value": 3}, {"op": "add", "path": "/a/b/0", "value": 0},
           {"op": "move", "from": "/c~0d", "path": "/g"}, {"op": "copy", "from": "/e~1f", "path": "/h"},
           {"op": "remove", "path": "/e~1f"}, {"op": "replace", "path": "/a/b/1", "value": 9}]
    assert json_patch(doc, ops) == {"a": {"b": [0, 9, 2, 3]}, "g": 1, "h": 2}
    for bad in ([{"op": "replace", "path": "/missing", "value": 1}], [{"op": "remove", "path": "/a/b/7"}],
                [{"op": "nope", "path": "/a"}], {"op": "add"}):
        with pytest.raises(PatchError):
            json_patch(doc, bad)
    assert merge_patch({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": None, "d": 3}, "l": [2]}) == {
        "a": {"c": 2, "d": 3}, "l": [2]}
