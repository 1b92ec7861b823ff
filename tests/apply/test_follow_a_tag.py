"""Follow a tag (the Watchtower pattern): a one-stage pipeline tracking a moving tag, and a
DeployPolicy deploying from it. When the tag is pushed again, to another digest, the next run
deploys that digest (pinned, never the tag), watched and recorded, and the webhook hears of it.
The real registry holds the tag; the API-server fixture runs the workload."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconcile.audit import AuditStore
from reconcile.cli import cli
from tests.adapters.cluster.backends import FixtureBackend
from tests.adapters.cluster.scenarios import deployment
from tests.adapters.registry.oci import Layout, push
from tests.conftest import RunningRegistry
from tests.kube import running
from tests.notify.conftest import receiver_factory  # noqa: F401 (a fixture)

KEY = "follow-hmac-key-5a1f"


def test_a_re_pushed_tag_is_deployed_by_digest_and_notified(tmp_path: Path, plain_registry: RunningRegistry,
                                                             repo: str, receiver_factory: Any,  # noqa: F811
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NOTIFY_HMAC_KEY", KEY)
    hook = receiver_factory(200)
    layout = Layout(tmp_path / "layout")
    first, second = (layout.image(created=f"2026-11-0{n}T00:00:00Z") for n in (1, 2))
    layout.tag(first, "latest")
    push(layout, "latest", plain_registry.host, repo)
    pinned = f"{plain_registry.host}/{repo}@"
    with running() as api:
        admin = FixtureBackend(api, tmp_path)
        namespace = admin.namespace("web")
        admin.create(deployment(namespace, "web", {"web": pinned + first.digest}, replicas=1, deadline=5))
        root = tmp_path / "policies"
        root.mkdir()
        (root / "follow.yaml").write_text(f"""\
apiVersion: reconcile/v1
kind: Registry
metadata: {{name: ci}}
spec: {{url: "{plain_registry.url}"}}
---
apiVersion: reconcile/v1
kind: Cluster
metadata: {{name: prod}}
spec: {{kubeconfig: {{file: "{tmp_path / 'admin.kubeconfig'}"}}, timeout: 2s}}
---
apiVersion: reconcile/v1
kind: PromotionPolicy
metadata: {{name: web}}
spec:
  stages:
    - {{name: latest, registry: ci, repository: "{repo}", track: {{tags: '^latest$'}}}}
---
apiVersion: reconcile/v1
kind: DeployPolicy
metadata: {{name: prod-web}}
spec:
  stage: web/latest
  cluster: prod
  namespace: {namespace}
  rollout: {{timeout: 5s, autoRollback: true}}
  workloads: [{{kind: Deployment, name: web, container: web}}]
---
apiVersion: reconcile/v1
kind: Notification
metadata: {{name: ops}}
spec:
  when: [change]
  webhook: {{url: "{hook.url}", secret: {{env: NOTIFY_HMAC_KEY}}}}
""")
        common = ["--repo", str(root), "--audit-db", str(tmp_path / "audit.db")]
        assert CliRunner().invoke(cli, ["validate", "--repo", str(root)]).exit_code == 0
        quiet = CliRunner().invoke(cli, ["run", *common])
        assert quiet.exit_code == 0, quiet.output
        assert hook.requests == []  # nothing changed: nothing to say

        layout.tag(second, "latest")  # the tag moves
        push(layout, "latest", plain_registry.host, repo)
        ran = CliRunner().invoke(cli, ["run", *common])
        image = admin.read("apps/v1", "Deployment", namespace, "web")["spec"]["template"]["spec"]["containers"][0][
            "image"]
        admin.close()
    assert ran.exit_code == 0, ran.output
    assert image == pinned + second.digest  # the digest, never the tag
    with AuditStore.open(str(tmp_path / "audit.db"), read_only=True) as store:
        (deployed,) = store.conn.execute("SELECT digest_before, digest_after, cause FROM actions WHERE kind = 'deploy' "
                                         "AND status = 'succeeded'").fetchall()
    assert tuple(deployed) == (first.digest, second.digest, "out-of-date")
    ((_, headers, body),) = hook.requests
    assert headers["x-reconcile-signature"] == "sha256=" + hmac.new(KEY.encode(), body, hashlib.sha256).hexdigest()
    event = json.loads(body)
    assert event["type"] == "dev.reconcile.run.finished" and event["specversion"] == "1.0"
    assert json.dumps(event["data"]).count("deploy") >= 1
