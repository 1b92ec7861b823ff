"""Every delete is re-verified against a real registry immediately before it happens: if a tag moved,
a new tag or image points at the digest, or the digest is now in use, that delete is skipped,
audited as skipped with the reason, and the run ends non-zero. What did not move still goes."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconcile import reconciler
from reconcile.adapters.registry import RegistryClient
from reconcile.apply.executor import apply_plan
from reconcile.apply.verify import InUse
from reconcile.audit import AuditStore
from reconcile.cli import cli
from reconcile.observe.repositories import observe_repository
from reconcile.observe.state import OCI_MANIFEST
from reconcile.plan.actions import Action, ActionKind, Cause
from reconcile.plan.plan import Plan, make_plan
from reconcile.plan.retention import RetentionInputs, plan_retention
from reconcile.policy.model import KeepRule, Listing, Protection, RetentionPolicy
from reconcile.policy.patterns import compile_pattern
from tests.adapters.registry.listing_fakes import ListingFake
from tests.adapters.registry.oci import Built, Layout, push, put_tag
from tests.apply.test_retention_end_to_end import policies, tags
from tests.conftest import RunningRegistry, registry_policy

KEEP_V = RetentionPolicy("ci-cleanup", "ci", ("x",), (KeepRule(tags=compile_pattern(r"^v\d+$")),), Protection(), 100)


@pytest.fixture
def built(tmp_path: Path, plain_registry: RunningRegistry, repo: str) -> dict[str, Built]:
    """v1 kept; build-1 and build-3 pruned; an index 'multi' (two platforms) pruned with its children."""
    layout = Layout(tmp_path / "layout")
    images = {name: layout.image(created=f"2026-11-0{i}T00:00:00Z", arch="amd64" if i != 4 else "arm64")
              for i, name in enumerate(["v1", "b1", "b3", "arm"], 1)}
    images["multi"] = layout.index([(images["b3"], "amd64"), (images["arm"], "arm64")])
    for tag, name in (("v1", "v1"), ("build-1", "b1"), ("build-3", "b3"), ("multi", "multi")):
        layout.tag(images[name], tag)
        push(layout, tag, plain_registry.host, repo)
    return images


def planned(client: RegistryClient, repo: str, policy: RetentionPolicy = KEEP_V) -> Plan:
    state = observe_repository(client, repo)
    actions = plan_retention(policy, RetentionInputs(client.endpoint, (state,)), datetime.now(UTC))
    return make_plan("test", None, "now", actions)


def apply(tmp_path: Path, plan: Plan, client: RegistryClient,
          in_use: Callable[[str], InUse] | None = None) -> tuple:
    with AuditStore.open(str(tmp_path / "audit.db")) as store:
        run = store.start_run("apply")
        result = apply_plan(plan, {"ci": client}, run, in_use=in_use)
        run.finish("done")
        rows = [dict(r) for r in store.conn.execute(
            "SELECT kind, status, target, reason FROM actions WHERE status != 'intent' ORDER BY seq")]
    return result, rows


@pytest.fixture
def client(open_client: Callable[..., RegistryClient], plain_registry: RunningRegistry) -> RegistryClient:
    return open_client(registry_policy("ci", plain_registry.url, username=None))


def test_a_kept_tag_repushed_onto_a_doomed_digest_stops_that_delete(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, built: dict[str, Built],
        client: RegistryClient) -> None:
    plan = planned(client, repo)
    assert {a.digest_before for a in plan.changes} >= {built["b1"].digest, built["b3"].digest}
    put_tag(plain_registry.url, repo, "v1", built["b1"])  # someone moves the kept tag onto build-1's image
    result, rows = apply(tmp_path, plan, client)
    skipped = {a.digest_before: why for a, why in result.skipped}
    assert skipped[built["b1"].digest] == f"tag v1 now points at {built['b1'].digest[:19]}"
    assert "v1" in tags(plain_registry, repo) and "build-1" in tags(plain_registry, repo)
    assert "build-3" not in tags(plain_registry, repo)  # unaffected deletes still happen
    (row,) = [r for r in rows if r["target"].endswith(built["b1"].digest)]
    assert row["status"] == "skipped" and row["reason"].startswith("state changed since plan: ")


def test_a_new_tag_on_a_doomed_digest_stops_that_delete(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, built: dict[str, Built],
        client: RegistryClient) -> None:
    plan = planned(client, repo)
    put_tag(plain_registry.url, repo, "release-candidate", built["b1"])
    result, _ = apply(tmp_path, plan, client)
    assert [why for a, why in result.skipped if a.digest_before == built["b1"].digest] == [
        f"new tag release-candidate now points at {built['b1'].digest[:19]}"]
    assert "release-candidate" in tags(plain_registry, repo)


def test_a_doomed_tag_that_moved_to_another_image_stops_the_delete(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, built: dict[str, Built],
        client: RegistryClient) -> None:
    plan = planned(client, repo)
    put_tag(plain_registry.url, repo, "build-1", built["v1"])
    result, _ = apply(tmp_path, plan, client)
    assert any(why.startswith("tag build-1 now points at") for _, why in result.skipped)
    assert "v1" in tags(plain_registry, repo)


def test_a_new_index_including_a_doomed_platform_manifest_keeps_it(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, built: dict[str, Built],
        client: RegistryClient) -> None:
    plan = planned(client, repo)
    children = [a for a in plan.changes if a.depends_on]
    assert {a.digest_before for a in children} == {built["arm"].digest}  # b3 is tagged: a prune of its own
    layout = Layout(tmp_path / "layout")  # the same blobs: the arm64 image is byte for byte the doomed one
    arm = built["arm"]
    other = layout.image(created="2026-11-09T00:00:00Z")
    layout.tag(layout.index([(other, "amd64"), (arm, "arm64")]), "v2-multi")
    push(layout, "v2-multi", plain_registry.host, repo)
    result, _ = apply(tmp_path, plan, client)
    assert any("an index that now includes" in why for a, why in result.skipped if a.digest_before == arm.digest)
    assert client.resolve(repo, arm.digest) is not None


def test_a_digest_now_in_use_or_unknown_use_is_not_deleted(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, built: dict[str, Built],
        client: RegistryClient) -> None:
    plan = planned(client, repo)
    result, _ = apply(tmp_path / "a", plan, client, in_use=lambda name: InUse(frozenset({built["b1"].digest})))
    assert [(a.digest_before, why) for a, why in result.skipped if not a.depends_on] == [
        (built["b1"].digest, f"{built['b1'].digest[:19]} is now in use or protected")]
    assert "build-1" in tags(plain_registry, repo)

    def unreadable(name: str) -> InUse:
        raise RuntimeError("cluster prod: connection refused")

    (tmp_path / "b").mkdir()
    result, _ = apply(tmp_path / "b", planned(client, repo), client, in_use=unreadable)
    assert result.succeeded == [] and {why for _, why in result.skipped} >= {
        "what is in use could not be read again: cluster prod: connection refused"}
    assert "build-1" in tags(plain_registry, repo)


def test_dependants_are_skipped_with_what_they_go_with(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, built: dict[str, Built],
        client: RegistryClient) -> None:
    plan = planned(client, repo)
    put_tag(plain_registry.url, repo, "keep-me", built["multi"])
    result, _ = apply(tmp_path, plan, client)
    index_target = next(a.target for a in plan.changes if a.digest_before == built["multi"].digest)
    assert (next(why for a, why in result.skipped if a.digest_before == built["arm"].digest)
            == f"it goes with {index_target}, which was not deleted")
    assert client.resolve(repo, built["arm"].digest) is not None


def test_nothing_moved_everything_goes_and_plan_again_is_empty(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, built: dict[str, Built],
        client: RegistryClient) -> None:
    result, _ = apply(tmp_path, planned(client, repo), client)
    assert result.skipped == [] and result.failed == []
    assert tags(plain_registry, repo) == ["v1"]
    assert client.resolve(repo, built["arm"].digest) is None  # the index's untagged platform went with it
    assert not planned(client, repo).changes


def test_the_cli_reports_skipped_deletions_exits_1_and_records_the_run_partial(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, built: dict[str, Built],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    root, db = policies(tmp_path, plain_registry, repo), str(tmp_path / "audit.db")
    # Between this run's plan and its deletes, build-1's image starts running somewhere protected.
    monkeypatch.setattr(reconciler, "in_use_reader", lambda policies, connections: (
        lambda name: InUse(frozenset({built["b1"].digest}))))
    result = CliRunner().invoke(cli, ["apply", "--yes", "--repo", str(root), "--audit-db", db])
    assert result.exit_code == 1, result.output
    assert "1 deletion skipped: state changed since plan; re-run to re-plan" in result.stderr
    assert "build-1" in tags(plain_registry, repo) and "build-3" not in tags(plain_registry, repo)
    with AuditStore.open(db, read_only=True) as store:
        assert store.runs()[0].outcome == "partial"
        assert json.loads(json.dumps(store.runs()[0].summary))["prune.skipped"] == 1


def test_a_tag_a_cluster_now_runs_by_tag_is_neither_untagged_nor_pruned(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, built: dict[str, Built],
        client: RegistryClient) -> None:
    plan = planned(client, repo)
    result, _ = apply(tmp_path, plan, client, in_use=lambda name: InUse(tags=frozenset({f"{repo}:build-1"})))
    assert [why for a, why in result.skipped if a.digest_before == built["b1"].digest] == [
        f"a protecting cluster now runs {repo}:build-1 by tag"]
    assert "build-1" in tags(plain_registry, repo)


def test_an_image_deployed_between_plan_and_delete_is_read_again_from_the_cluster_and_kept(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.adapters.cluster.backends import FixtureBackend
    from tests.apply.test_retention_end_to_end import protected_policies
    from tests.kube import running

    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    layout = Layout(tmp_path / "layout")
    b1 = layout.image(created="2026-11-01T00:00:00Z")
    for tag, image in (("v1", layout.image(created="2026-11-02T00:00:00Z")), ("build-1", b1)):
        layout.tag(image, tag)
        push(layout, tag, plain_registry.host, repo)
    with running() as api:
        admin = FixtureBackend(api, tmp_path)
        namespace = admin.namespace("web")
        real_plan = reconciler.Reconciler._observe_and_plan

        def plan_then_deploy(*args: object, **kwargs: object) -> Plan:
            plan = real_plan(*args, **kwargs)  # type: ignore[arg-type]
            # A deploy lands after the plan was made, before its deletes: the real cluster read again sees it.
            image = f"{plain_registry.host}/{repo}@{b1.digest}"
            admin.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0", "namespace": namespace},
                          "spec": {"containers": [{"name": "web", "image": image}]}})
            return plan

        monkeypatch.setattr(reconciler.Reconciler, "_observe_and_plan", plan_then_deploy)
        root = protected_policies(tmp_path, plain_registry, repo, tmp_path / "admin.kubeconfig")
        result = CliRunner().invoke(cli, ["apply", "--yes", "--repo", str(root), "--audit-db", str(tmp_path / "a.db")])
        admin.close()
    assert result.exit_code == 1, result.output
    assert f"{b1.digest[:19]} is now in use or protected" in result.stderr
    assert tags(plain_registry, repo) == ["build-1", "v1"]


def test_a_prune_of_an_untagged_manifest_a_listing_reported_is_re_verified_like_any(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str,
        open_client: Callable[..., RegistryClient]) -> None:
    """Untagged manifests come from a listing (here Harbor's, faked in front of the real registry);
    their prunes (``registry/repo@digest``, no tags, depending on nothing) are re-verified on the
    Distribution API like any: one a tag now points at, or a new index now lists, is kept."""
    layout = Layout(tmp_path / "layout")
    v1 = layout.image(created="2026-11-01T00:00:00Z")
    layout.tag(v1, "v1")
    push(layout, "v1", plain_registry.host, repo)
    document = json.loads(v1.data)
    lone = {name: layout.manifest({**document, "annotations": {"n": name}}, OCI_MANIFEST) for name in "abc"}
    for built in lone.values():
        put_tag(plain_registry.url, repo, built.digest, built)  # by digest: on no tag
    fake = ListingFake(plain_registry.url, "harbor")
    try:
        fake.untagged = [(b.digest, b.media_type, len(b.data)) for b in lone.values()]
        policy = replace(registry_policy("ci", fake.url, username=None), listing=Listing("harbor", fake.url))
        client = open_client(policy, cache_dir=tmp_path / "cache")
        state = observe_repository(client, repo)
        assert state.untagged == {b.digest for b in lone.values()}
        actions = [Action("RetentionPolicy/ci-cleanup", ActionKind.KEEP, f"ci/{repo}:v1", v1.digest, v1.digest, "kept",
                          cause=Cause.KEPT_BY_RULE)]
        actions += [Action("RetentionPolicy/ci-cleanup", ActionKind.PRUNE, f"ci/{repo}@{digest}", digest, None,
                           f"delete untagged manifest {digest[:19]}", (), cause=Cause.NO_RULE_MATCHES)
                    for digest in sorted(state.untagged)]
        plan = make_plan("test", None, "now", actions)

        put_tag(plain_registry.url, repo, "rescued", lone["b"])  # a tag on b since the plan
        layout.tag(layout.index([(lone["c"], "amd64")]), "multi")  # c now in a tagged index
        push(layout, "multi", plain_registry.host, repo)
        result, rows = apply(tmp_path, plan, client)
    finally:
        fake.close()
    assert [a.digest_before for a in result.succeeded] == [lone["a"].digest]
    skipped = {a.digest_before: why for a, why in result.skipped}
    assert skipped[lone["b"].digest] == f"new tag rescued now points at {lone['b'].digest[:19]}"
    assert "an index that now includes " + lone["c"].digest[:19] in skipped[lone["c"].digest]
    assert client.resolve(repo, lone["a"].digest) is None
    assert client.resolve(repo, lone["b"].digest) is not None and client.resolve(repo, lone["c"].digest) is not None
    assert {r["target"]: r["status"] for r in rows if r["kind"] == "prune"} == {
        f"ci/{repo}@{lone['a'].digest}": "succeeded", f"ci/{repo}@{lone['b'].digest}": "skipped",
        f"ci/{repo}@{lone['c'].digest}": "skipped"}
