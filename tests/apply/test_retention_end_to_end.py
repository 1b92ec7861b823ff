"""`reconcile plan`, `apply` and `run` for retention, end to end: a real registry, a policy
directory, the audit trail; skopeo and the registry itself as witnesses."""

from __future__ import annotations

import json
from pathlib import Path

import git
import pytest
from click.testing import CliRunner, Result

from reconcile.audit import AuditStore
from reconcile.cli import cli
from reconcile.cli import reconcile as plan_commands
from reconcile.policy import load_policies
from reconcile.reconciler.connections import connections_for
from tests.adapters.cluster.backends import FixtureBackend
from tests.adapters.registry.oci import Layout, push, put_tag, skopeo
from tests.conftest import RunningRegistry
from tests.kube import running, write_kubeconfig


def policies(tmp_path: Path, registry: RunningRegistry | None, repository: str, *, max_deletions: int = 100,
             url: str | None = None, spec: str = "") -> Path:
    """A repo-of-record: Registry ci (``url``, default the registry's, with ``spec`` fields added)
    and RetentionPolicy ci-cleanup keeping ``v<N>`` tags of ``repository``."""
    root = tmp_path / "policies"
    root.mkdir()
    address = url or (registry.url if registry is not None else "")
    (root / "ci.yaml").write_text(f"""\
apiVersion: reconcile/v1
kind: Registry
metadata: {{name: ci}}
spec: {{url: "{address}"{", " + spec if spec else ""}}}
---
apiVersion: reconcile/v1
kind: RetentionPolicy
metadata: {{name: ci-cleanup}}
spec:
  registry: ci
  repositories: ["{repository}"]
  keep:
    - tags: '^v\\d+$'
  maxDeletions: {max_deletions}
""")
    return root


@pytest.fixture
def images(tmp_path: Path, plain_registry: RunningRegistry, repo: str) -> dict[str, str]:
    """v1 and v2 kept by the policy; build-1 and build-2 (one digest) and build-3 pruned."""
    layout = Layout(tmp_path / "layout")
    names = ["v1", "v2", "b12", "b3"]
    built = {name: layout.image(created=f"2026-11-0{i}T00:00:00Z") for i, name in enumerate(names, 1)}
    for tag, image in (("v1", "v1"), ("v2", "v2"), ("build-1", "b12"), ("build-3", "b3")):
        layout.tag(built[image], tag)
        push(layout, tag, plain_registry.host, repo)
    put_tag(plain_registry.url, repo, "build-2", built["b12"])
    return {name: b.digest for name, b in built.items()}


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def tags(registry: RunningRegistry, repository: str) -> list[str]:
    return sorted(json.loads(skopeo("list-tags", "--tls-verify=false", f"docker://{registry.host}/{repository}"))["Tags"])


def test_plan_changes_nothing_and_apply_prunes_with_an_audit_record_per_step(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, images: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    root, db = policies(tmp_path, plain_registry, repo), str(tmp_path / "audit.db")
    common = ["--repo", str(root), "--audit-db", db]

    planned = invoke("plan", *common, "--format", "json", "--detailed-exitcode", "--out", str(tmp_path / "plan.json"))
    assert planned.exit_code == 2, planned.output  # changes pending
    plan = json.loads(planned.stdout)
    changes = [(a["kind"], a["target"].split("@")[-1], a["tags"]) for a in plan["actions"] if a["mutates"]]
    assert sorted(changes) == sorted([("prune", images["b12"], ["build-1", "build-2"]),
                                      ("prune", images["b3"], ["build-3"])])
    assert tags(plain_registry, repo) == ["build-1", "build-2", "build-3", "v1", "v2"]  # plan changed nothing
    assert not Path(db).exists()  # not even the audit trail

    applied = invoke("apply", *common, "--plan", str(tmp_path / "plan.json"))
    assert applied.exit_code == 0, applied.output
    assert tags(plain_registry, repo) == ["v1", "v2"]
    assert "applied 2 of 2 changes" in applied.stderr
    assert "chain head" in applied.stderr

    with AuditStore.open(db, read_only=True) as store:
        rows = store.conn.execute("SELECT kind, status, target, digest_before FROM actions ORDER BY seq").fetchall()
        assert [tuple(r)[:2] for r in rows] == [("prune", "intent"), ("prune", "succeeded")] * 2
        assert {r["digest_before"] for r in rows} == {images["b12"], images["b3"]}
        assert store.verify().ok and store.runs()[0].outcome == "succeeded"

    again = invoke("plan", *common, "--detailed-exitcode")
    assert again.exit_code == 0, again.output  # idempotent: nothing left to do
    assert invoke("apply", *common).exit_code == 0
    assert tags(plain_registry, repo) == ["v1", "v2"]


def test_a_saved_plan_is_refused_when_the_registry_changed(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, images: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    root, db = policies(tmp_path, plain_registry, repo), str(tmp_path / "audit.db")
    common = ["--repo", str(root), "--audit-db", db]
    invoke("plan", *common, "--out", str(tmp_path / "plan.json"))
    layout = Layout(tmp_path / "more")
    layout.tag(layout.image(created="2026-11-20T00:00:00Z"), "build-4")
    push(layout, "build-4", plain_registry.host, repo)

    stale = invoke("apply", *common, "--plan", str(tmp_path / "plan.json"))
    assert stale.exit_code == 1
    assert "registries or clusters changed since the plan was saved; nothing was applied" in stale.stderr
    assert tags(plain_registry, repo) == ["build-1", "build-2", "build-3", "build-4", "v1", "v2"]


def test_over_max_deletions_nothing_is_deleted_and_the_run_says_why(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, images: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    root, db = policies(tmp_path, plain_registry, repo, max_deletions=2), str(tmp_path / "audit.db")
    result = invoke("run", "--repo", str(root), "--audit-db", db)
    assert result.exit_code == 1
    assert tags(plain_registry, repo) == ["build-1", "build-2", "build-3", "v1", "v2"]
    with AuditStore.open(db, read_only=True) as store:
        (row,) = store.conn.execute("SELECT kind, status, reason FROM actions").fetchall()
        assert (row["kind"], row["status"]) == ("skip", "skipped")
        assert row["reason"].startswith("would delete 3 tags, over maxDeletions 2; nothing is pruned")
        assert store.runs()[0].outcome == "blocked"  # nothing failed, and the run says it was blocked


def test_an_unreachable_registry_blocks_its_policy_and_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    down = RunningRegistry("down", "http://127.0.0.1:9", tmp_path, None)  # type: ignore[arg-type]
    root = policies(tmp_path, down, "team-a/web")
    result = invoke("plan", "--repo", str(root), "--audit-db", str(tmp_path / "a.db"), "--format", "markdown")
    assert result.exit_code == 1
    assert "registry ci could not be read" in result.stdout


# --- protection by what runs in a cluster (the API-server fixture, through the real client) ---


def protected_policies(tmp_path: Path, registry: RunningRegistry, repository: str, kubeconfig: Path) -> Path:
    root = policies(tmp_path, registry, repository)
    text = (root / "ci.yaml").read_text().replace("  maxDeletions:", "  protect: {inUse: [prod]}\n  maxDeletions:")
    (root / "ci.yaml").write_text(text + f"""\
---
apiVersion: reconcile/v1
kind: Cluster
metadata: {{name: prod}}
spec: {{kubeconfig: {{file: "{kubeconfig}"}}, timeout: 2s}}
""")
    return root


def test_a_digest_running_in_a_protecting_cluster_survives(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, images: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    with running() as api:
        admin = FixtureBackend(api, tmp_path)
        namespace = admin.namespace("web")
        image = f"{plain_registry.host}/{repo}@{images['b3']}"
        admin.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0", "namespace": namespace},
                      "spec": {"containers": [{"name": "web", "image": image}]}})
        root = protected_policies(tmp_path, plain_registry, repo, tmp_path / "admin.kubeconfig")
        result = invoke("apply", "--repo", str(root), "--audit-db", str(tmp_path / "audit.db"))
        admin.close()
    assert result.exit_code == 0, result.output
    assert tags(plain_registry, repo) == ["build-3", "v1", "v2"]  # build-3 runs in prod: kept


def test_an_unreachable_protecting_cluster_prunes_nothing(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, images: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    kubeconfig = write_kubeconfig(tmp_path / "down.kubeconfig", "http://127.0.0.1:9", "token")
    root = protected_policies(tmp_path, plain_registry, repo, kubeconfig)
    result = invoke("run", "--repo", str(root), "--audit-db", str(tmp_path / "audit.db"))
    assert result.exit_code == 1
    assert "cluster prod could not be read" in result.stderr
    assert tags(plain_registry, repo) == ["build-1", "build-2", "build-3", "v1", "v2"]


@pytest.mark.parametrize(("answer", "expected"), [("n\n", ["build-1", "build-2", "build-3", "v1", "v2"]),
                                                   ("y\n", ["v1", "v2"])])
def test_apply_on_a_terminal_asks_first(tmp_path: Path, plain_registry: RunningRegistry, repo: str,
                                        images: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                        answer: str, expected: list[str]) -> None:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(plan_commands, "interactive", lambda: True)
    root = policies(tmp_path, plain_registry, repo)
    result = CliRunner().invoke(cli, ["apply", "--repo", str(root), "--audit-db", str(tmp_path / "a.db")],
                                input=answer)
    assert "Apply these 2 changes?" in result.stderr
    assert result.exit_code == (1 if answer == "n\n" else 0)
    assert tags(plain_registry, repo) == expected


def test_explain_says_which_rule_or_protection_decides(tmp_path: Path, plain_registry: RunningRegistry, repo: str,
                                                         images: dict[str, str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    common = ["--repo", str(policies(tmp_path, plain_registry, repo)), "--audit-db", str(tmp_path / "a.db")]
    assert invoke("explain", *common, "v1").stdout == (
        f"ci/{repo}:v1: keep — RetentionPolicy/ci-cleanup: keep[0]: matches '^v\\d+$'\n")
    pruned = f"ci/{repo}@{images['b12']} (tags: build-1, build-2): prune — RetentionPolicy/ci-cleanup: delete " \
             f"manifest {images['b12'][:19]}, which removes tags build-1, build-2: no keep rule or protection " \
             "applies to them\n"
    assert invoke("explain", *common, f"{repo}:build-2").stdout == pruned
    assert invoke("explain", *common, images["b12"]).stdout == pruned
    assert invoke("explain", *common, "other/repo:v1").stdout.startswith("no policy decides anything about")


def test_end_to_end_on_a_basic_auth_registry_with_a_protecting_cluster(
        tmp_path: Path, auth_registry: RunningRegistry, repo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plan shows exactly the deletions, apply performs them, skopeo confirms, the protected tag
    remains, the trail verifies, and planning again finds nothing to do."""
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CI_REGISTRY_PASSWORD", auth_registry.password or "")
    layout = Layout(tmp_path / "layout")
    built = {tag: layout.image(created=f"2026-11-{day:02d}T00:00:00Z") for day, tag in
             enumerate(["v1", "build-1", "build-2", "build-3"], 1)}
    for tag, image in built.items():
        layout.tag(image, tag)
        push(layout, tag, auth_registry.host, repo, creds=auth_registry.creds)
    creds = ["--creds", auth_registry.creds or ""]

    def remaining() -> list[str]:
        listed = skopeo("list-tags", "--tls-verify=false", *creds, f"docker://{auth_registry.host}/{repo}")
        return sorted(json.loads(listed)["Tags"])

    with running() as api:
        admin = FixtureBackend(api, tmp_path)
        namespace = admin.namespace("web")
        image = f"{auth_registry.host}/{repo}@{built['build-2'].digest}"
        admin.create({"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": "web", "namespace": namespace},
                      "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                          "metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "web", "image": image}]}}}})
        root = protected_policies(tmp_path, auth_registry, repo, tmp_path / "admin.kubeconfig")
        text = (root / "ci.yaml").read_text().replace(
            f'spec: {{url: "{auth_registry.url}"}}',
            f'spec: {{url: "{auth_registry.url}", credentials: {{username: "{auth_registry.username}", '
            'password: {env: CI_REGISTRY_PASSWORD}}}')
        (root / "ci.yaml").write_text(text)
        db = str(tmp_path / "audit.db")
        common = ["--repo", str(root), "--audit-db", db]

        planned = json.loads(invoke("plan", *common, "--format", "json").stdout)
        assert sorted((a["kind"], a["tags"][0]) for a in planned["actions"] if a["mutates"]) == [
            ("prune", "build-1"), ("prune", "build-3")]
        assert remaining() == ["build-1", "build-2", "build-3", "v1"]
        applied = invoke("apply", *common, "--yes")
        assert applied.exit_code == 0, applied.output
        assert remaining() == ["build-2", "v1"]  # build-2 runs in the cluster: protected
        assert invoke("plan", *common, "--detailed-exitcode").exit_code == 0
        admin.close()
    verified = invoke("audit", "verify", "--audit-db", db)
    assert verified.exit_code == 0 and verified.stdout.startswith("ok: ")
    assert auth_registry.password not in Path(db).read_bytes().decode("utf-8", "replace")


def test_a_run_builds_one_client_per_cluster_and_closes_it(tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "k.kubeconfig", "http://127.0.0.1:9", "token")
    (tmp_path / "c.yaml").write_text("apiVersion: reconcile/v1\nkind: Cluster\nmetadata: {name: prod}\n"
                                     f"spec: {{kubeconfig: {{file: '{kubeconfig}'}}}}\n")
    with connections_for(load_policies(str(tmp_path))) as connections:
        first = connections.cluster("prod")
        assert connections.cluster("prod") is first  # readers, health and deploys share it
    assert connections.clusters == {"prod": first}


def test_a_pruned_tag_is_found_in_the_audit_trail_and_explained_after_it_is_gone(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """build-10 is pruned by a real apply (policies committed to a real git repo-of-record); then
    `audit list --target '*build-10*'` lists that prune (not build-1's), by its digest too, and
    `explain` of the tag and of the digest, both gone, say when, which run and commit, which policy
    and rule, why, and what the tag pointed at."""
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RECONCILE_ACTOR", "cronjob")
    layout = Layout(tmp_path / "layout")
    built = {tag: layout.image(created=f"2026-11-0{day}T00:00:00Z") for day, tag in
             enumerate(["v1", "build-1", "build-10"], 1)}
    for tag, image in built.items():
        layout.tag(image, tag)
        push(layout, tag, plain_registry.host, repo)
    root = policies(tmp_path, plain_registry, repo)
    record = git.Repo.init(root)
    with record.config_writer() as config:
        config.set_value("user", "name", "Policy Author")
        config.set_value("user", "email", "author@example.com")
    record.index.add(["ci.yaml"])
    commit = record.index.commit("ci-cleanup").hexsha
    db = str(tmp_path / "audit.db")
    common = ["--repo", str(root), "--audit-db", db]

    applied = invoke("apply", *common, "--yes")
    assert applied.exit_code == 0, applied.output
    assert tags(plain_registry, repo) == ["v1"]
    digest = built["build-10"].digest
    with AuditStore.open(db, read_only=True) as store:
        (pruned,) = store.conn.execute("SELECT * FROM actions WHERE target = ? AND status = 'succeeded'",
                                       (f"ci/{repo}@{digest}",)).fetchall()
        assert (pruned["repository"], pruned["tags"]) == (f"ci/{repo}", '["build-10"]')
        assert store.verify().ok

    def listed(pattern: str) -> list[tuple[str, ...]]:
        result = invoke("audit", "list", "--audit-db", db, "--target", pattern)
        assert result.exit_code == 0, result.output
        header, *rows = (line.split("\t") for line in result.stdout.splitlines())
        return [tuple(dict(zip(header, row, strict=True))[c] for c in ("kind", "status", "target", "tags"))
                for row in rows]

    expected = [("prune", status, f"ci/{repo}@{digest}", "build-10") for status in ("intent", "succeeded")]
    assert listed("*build-10*") == expected
    assert listed(f"ci/{repo}:build-10") == expected
    assert listed(f"*{digest[7:19]}*") == expected
    assert len(listed(f"ci/{repo}:build-1*")) == 4  # build-1 and build-10
    exported = json.loads(invoke("audit", "export", "--audit-db", db, "--target", "*build-10*").stdout)
    assert [a["tags"] for a in exported["actions"]] == [["build-10"], ["build-10"]]

    assert "no keep rule or protection applies" in pruned["reason"]  # the planner's words, as recorded
    why = f"RetentionPolicy/ci-cleanup: {pruned['reason']}"
    when = f"pruned at {pruned['timestamp'][:10]}T{pruned['timestamp'][11:19]}Z in run {pruned['run_id']} " \
           f"(apply by cronjob at policy commit {commit[:12]})"
    for reference in (f"{repo}:build-10", f"ci/{repo}:build-10", "build-10"):
        explained = invoke("explain", *common, reference)
        assert explained.exit_code == 0, explained.output
        assert explained.stdout == f"ci/{repo}:build-10: {when} — {why}; it pointed at {digest}\n", reference
    by_digest = invoke("explain", *common, digest)
    assert (by_digest.exit_code, by_digest.stdout) == (0, f"ci/{repo}@{digest} (tags: build-10): {when} — {why}\n")
    never = invoke("explain", *common, f"{repo}:build-11")
    assert never.exit_code == 0
    assert never.stdout.startswith("no policy decides anything about") and "records no prune" in never.stdout
