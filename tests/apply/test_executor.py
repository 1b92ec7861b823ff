"""The executor: one failing action does not stop the independent ones, and every step is audited."""

from __future__ import annotations

from pathlib import Path

from reconcile.adapters.registry import copy_image, open_registry
from reconcile.apply.executor import apply_plan, parse_target
from reconcile.audit import AuditStore
from reconcile.plan.actions import Action
from reconcile.plan.plan import make_plan
from reconcile.policy.secrets import SecretResolver
from tests.adapters.registry.oci import Layout, push
from tests.conftest import OpenClient, RunningRegistry, registry_policy


def test_a_failed_action_is_recorded_and_the_others_still_run(
        tmp_path: Path, nodelete_registry: RunningRegistry, open_client: OpenClient, repo: str) -> None:
    layout = Layout(tmp_path / "images")
    doomed, other = layout.image(), layout.image()
    layout.tag(doomed, "old")
    layout.tag(other, "older")
    push(layout, "old", nodelete_registry.host, repo)  # this registry refuses deletes
    local = registry_policy("local", f"oci-layout:{tmp_path / 'local'}")
    local_client = open_registry(local, SecretResolver())
    remote = open_client(registry_policy("archive", nodelete_registry.url))
    # the same image in a layout, which can delete
    copy_image(remote, repo, doomed.digest, local_client, "team/web", ["old"])

    plan = make_plan("p", None, "t", [
        Action("RetentionPolicy/a", "prune", f"archive/{repo}@{doomed.digest}", doomed.digest, None, "old", ("old",)),
        Action("RetentionPolicy/b", "prune", f"local/team/web@{doomed.digest}", doomed.digest, None, "old", ("old",)),
    ])
    with AuditStore.open(tmp_path / "a.db") as store:
        run = store.start_run("apply")
        result = apply_plan(plan, {"archive": remote, "local": local_client}, run)
        run.finish("failed")
        statuses = [(r["policy"], r["status"]) for r in store.conn.execute(
            "SELECT policy, status FROM actions ORDER BY seq")]
    assert [a.policy for a in result.succeeded] == ["RetentionPolicy/b"]
    ((failed, error),) = result.failed
    assert failed.policy == "RetentionPolicy/a" and "storage.delete.enabled: true" in error
    assert statuses == [("RetentionPolicy/a", "intent"), ("RetentionPolicy/a", "failed"),
                        ("RetentionPolicy/b", "intent"), ("RetentionPolicy/b", "succeeded")]
    assert local_client.tags("team/web") == []
    assert remote.tags(repo) == ["old"]


def test_targets_parse_back_into_registry_repository_tag_and_digest() -> None:
    digest = "sha256:" + "a" * 64
    assert parse_target(f"ci/team-a/web@{digest}") == ("ci", "team-a/web", None, digest)
    assert parse_target("ci/team-a/web:v1.2.3") == ("ci", "team-a/web", "v1.2.3", None)
