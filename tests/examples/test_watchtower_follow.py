"""examples/watchtower-follow: CI pushes each build as latest and sha-<commit>; reconcile follows
latest, redeploys the Deployment by digest when latest moves, signs a webhook about it, and prunes
the builds latest left behind but never what runs or what a rollback would go back to."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
import requests

from reconcile.audit import AuditStore
from tests.adapters.cluster.backends import FixtureBackend
from tests.adapters.cluster.scenarios import deployment
from tests.adapters.registry.oci import Built, Layout, push
from tests.examples.harness import Endpoints, actions, invoke, localize, plan_json
from tests.kube import running
from tests.notify.conftest import receiver_factory  # noqa: F401 (a fixture)

KEY = "watchtower-hmac-key-3e91"
REPOSITORY = "acme/web"


def test_a_moved_latest_is_redeployed_by_digest_notified_and_cleaned_up(
        tmp_path: Path, registries: Any, receiver_factory: Any,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILE_WEBHOOK_KEY", KEY)
    hook, apprise_hook = receiver_factory(200), receiver_factory(200)
    monkeypatch.setenv("APPRISE_URL", f"json://127.0.0.1:{apprise_hook.port}/apprise")
    hub = registries("hub")["hub"]
    layout = Layout(tmp_path / "layout")
    running_build, skipped, newest = (layout.image(created=f"2026-11-0{n}T00:00:00Z") for n in (1, 2, 3))

    def ci_push(built: Built, commit: str) -> None:  # what docker/metadata-action tags a build of main with
        for tag in ("latest", f"sha-{commit}"):
            layout.tag(built, tag)
            push(layout, tag, hub.host, REPOSITORY)

    def tags() -> set[str]:
        return set(requests.get(f"{hub.url}/v2/{REPOSITORY}/tags/list", timeout=5).json()["tags"] or ())

    ci_push(running_build, "1111111")
    pinned = f"{hub.host}/{REPOSITORY}@"
    with running() as api:
        admin = FixtureBackend(api, tmp_path)
        admin.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}})
        admin.create(deployment("web", "web", {"web": pinned + running_build.digest}, replicas=1, deadline=5))
        endpoints = Endpoints({"hub": hub}, clusters={"prod": tmp_path / "admin.kubeconfig"},
                              webhooks={"ops": hook.url})
        root = localize("watchtower-follow", tmp_path / "repo", endpoints, monkeypatch)
        db = tmp_path / "audit.db"
        validated = invoke("validate", "--repo", str(root))
        assert validated.exit_code == 0, validated.output

        quiet = plan_json(root, db, "--detailed-exitcode")
        assert not quiet["hasChanges"], quiet["actions"]  # latest is what runs: nothing to deploy or prune

        ci_push(skipped, "2222222")  # two builds of main land between runs: only the last one is deployed
        ci_push(newest, "3333333")
        plan = plan_json(root, db)
        assert plan["hasChanges"]
        (deploy,) = actions(plan, "deploy", "DeployPolicy/prod-web")
        assert (deploy["digestBefore"], deploy["digestAfter"]) == (running_build.digest, newest.digest)
        (prune,) = actions(plan, "prune", "RetentionPolicy/web-cleanup")
        assert prune["digestBefore"] == skipped.digest and prune["tags"] == ["sha-2222222"]

        ran = invoke("run", "--repo", str(root), "--audit-db", str(db))
        assert ran.exit_code == 0, ran.output
        image = admin.read("apps/v1", "Deployment", "web", "web")["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == pinned + newest.digest  # the digest, never the tag
        after = plan_json(root, db, "--detailed-exitcode")  # the rollback digest now sits in an old ReplicaSet
        admin.close()
    assert tags() == {"latest", "sha-3333333", "sha-1111111"}  # running and rollback kept; the skipped build gone
    assert not after["hasChanges"], after["actions"]

    with AuditStore.open(str(db), read_only=True) as store:
        (deployed,) = store.conn.execute("SELECT digest_before, digest_after FROM actions WHERE kind = 'deploy' "
                                         "AND status = 'succeeded'").fetchall()
    assert tuple(deployed) == (running_build.digest, newest.digest)
    ((_, headers, body),) = hook.requests
    assert headers["x-reconcile-signature"] == "sha256=" + hmac.new(KEY.encode(), body, hashlib.sha256).hexdigest()
    event = json.loads(body)
    assert event["type"] == "dev.reconcile.run.finished" and event["data"]["notification"] == "ops"
    assert event["data"]["when"] == ["change"]
    ((_, _, said),) = apprise_hook.requests  # the same run, in words, to the apprise target
    assert "deploy" in json.loads(said)["message"]
