"""The executor: one failing action does not stop the independent ones, and every step is audited."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from reconcile.adapters.registry import copy_image, open_registry
from reconcile.apply.executor import apply_plan, lanes, parse_target
from reconcile.audit import AuditStore
from reconcile.plan.actions import Action
from reconcile.plan.plan import make_plan
from reconcile.policy.secrets import SecretResolver
from tests.adapters.registry.faults import FaultProxy
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
    # two repositories: two lanes, side by side; each action's intent comes before its outcome
    assert [s for p, s in statuses if p == "RetentionPolicy/a"] == ["intent", "failed"]
    assert [s for p, s in statuses if p == "RetentionPolicy/b"] == ["intent", "succeeded"]
    assert local_client.tags("team/web") == []
    assert remote.tags(repo) == ["old"]


def test_targets_parse_back_into_registry_repository_tag_and_digest() -> None:
    digest = "sha256:" + "a" * 64
    assert parse_target(f"ci/team-a/web@{digest}") == ("ci", "team-a/web", None, digest)
    assert parse_target("ci/team-a/web:v1.2.3") == ("ci", "team-a/web", "v1.2.3", None)


D = ["sha256:" + c * 64 for c in "abcdef"]


def _prune(repository: str, digest: str, depends_on: str | None = None, registry: str = "ci") -> Action:
    return Action("RetentionPolicy/r", "prune", f"{registry}/{repository}@{digest}", digest, None, "old", (),
                  depends_on=depends_on)


def _promote(policy: str, repository: str, digest: str, registry: str = "prod") -> Action:
    return Action(f"PromotionPolicy/{policy}", "promote", f"{registry}/{repository}@{digest}", None, digest, "new",
                  ("v1",))


def _deploy(name: str) -> Action:
    return Action(f"DeployPolicy/{name}", "deploy", f"c/ns/Deployment/{name}", None, D[0], "new")


@pytest.mark.parametrize(("changes", "sources", "expected"), [
    # deletes in two repositories: two lanes
    ([_prune("a", D[0]), _prune("b", D[1])], {}, ([[0], [1]], [])),
    # a platform manifest's prune after its index's, in one lane
    ([_prune("a", D[0]), _prune("a", D[1], depends_on=f"ci/a@{D[0]}"), _prune("b", D[2])], {},
     ([[0, 1], [2]], [])),
    # one pipeline's promotions stage after stage (staging, then prod from staging): one lane
    ([_promote("web", "staging/web", D[0], "staging"), _promote("web", "web", D[0])],
     {"prod/web": ("staging", "staging/web")}, ([[0, 1]], [])),
    # two pipelines: side by side
    ([_promote("web", "web", D[0]), _promote("api", "api", D[1])], {}, ([[0], [1]], [])),
    # a promotion into a repository that is being pruned shares its lane, in plan order
    ([_prune("web", D[1], registry="prod"), _promote("web", "web", D[0]), _prune("other", D[2])], {},
     ([[0, 1], [2]], [])),
    # and one from a repository being pruned
    ([_promote("web", "web", D[0]), _prune("team/web", D[3]), _prune("x", D[4])],
     {"prod/web": ("ci", "team/web")}, ([[0, 1], [2]], [])),
    # deploys last, in plan order, whatever their place in the plan
    ([_deploy("b"), _promote("web", "web", D[0]), _deploy("a")], {}, ([[1]], [0, 2])),
])
def test_lanes_keep_order_only_where_it_matters(changes: list[Action], sources: dict[str, tuple[str, str]],
                                                expected: tuple[list[list[int]], list[int]]) -> None:
    assert lanes(changes, sources) == expected


def test_independent_deletes_run_side_by_side_each_with_its_own_intent_and_outcome(
        tmp_path: Path, plain_registry: RunningRegistry, proxy_factory: Callable[..., FaultProxy],
        open_client: OpenClient) -> None:
    layout = Layout(tmp_path / "images")
    repositories = [f"lanes-{secrets.token_hex(3)}/app-{n}" for n in range(4)]
    digests = []
    for repository in repositories:
        image = layout.image()
        layout.tag(image, "old")
        push(layout, "old", plain_registry.host, repository)
        digests.append(image.digest)
    proxy = proxy_factory(plain_registry.url)
    proxy.inject(r"/manifests/sha256:", "delay", method="DELETE", delay=0.4, times=-1)
    client = open_client(registry_policy("ci", proxy.url, concurrency=4))
    plan = make_plan("p", None, "t", [
        Action("RetentionPolicy/r", "prune", f"ci/{repository}@{digest}", digest, None, "old", ("old",))
        for repository, digest in zip(repositories, digests, strict=True)])
    with AuditStore.open(tmp_path / "a.db") as store:
        run = store.start_run("apply")
        result = apply_plan(plan, {"ci": client}, run)
        run.finish("succeeded")
        rows = [dict(r) for r in store.conn.execute("SELECT event_id, intent_id, target, status FROM actions")]
        assert store.verify().ok
    assert [a.target for a in result.succeeded] == [a.target for a in plan.changes]  # reported in plan order
    assert proxy.max_in_flight >= 2  # the deletes overlapped
    intents = {r["event_id"]: r["target"] for r in rows if r["status"] == "intent"}
    outcomes = [r for r in rows if r["status"] != "intent"]
    assert len(intents) == len(outcomes) == 4
    assert all(intents[r["intent_id"]] == r["target"] and r["status"] == "succeeded" for r in outcomes)
    assert all(client.tags(repository) == [] for repository in repositories)


def test_an_interrupt_stops_every_lane_before_its_next_change(tmp_path: Path) -> None:
    """Ctrl-C (or any error) while the lanes run: no lane starts another change, and a change
    already started still gets its outcome recorded."""
    import os
    import signal
    import threading
    import time

    client = open_registry(registry_policy("local", f"oci-layout:{tmp_path / 'local'}"), SecretResolver())
    images = open_registry(registry_policy("src", f"oci-layout:{tmp_path}"), SecretResolver())
    source = Layout(tmp_path / "images")
    actions = []
    for repository in ("team/a", "team/b"):
        for n in range(5):
            image = source.image()
            source.tag(image, f"t{n}")
            copy_image(images, "images", image.digest, client, repository, [f"t{n}"])
            actions.append(Action("RetentionPolicy/r", "prune", f"local/{repository}@{image.digest}", image.digest,
                                  None, "old", (f"t{n}",)))
    calls = []

    def guard() -> None:
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # a Ctrl-C, raised in the thread waiting for the lanes
            time.sleep(0.3)

    with AuditStore.open(tmp_path / "a.db") as store:
        run = store.start_run("apply")
        with pytest.raises(KeyboardInterrupt):
            apply_plan(make_plan("p", None, "t", actions), {"local": client}, run, guard=guard)
        for thread in threading.enumerate():
            if thread.name.startswith("apply"):
                thread.join(10)
        statuses = [r[0] for r in store.conn.execute("SELECT status FROM actions")]
    assert 1 <= len(calls) <= 2  # at most the change each lane was in, then nothing
    assert statuses.count("intent") == statuses.count("succeeded") <= len(calls)
