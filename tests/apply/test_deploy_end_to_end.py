"""Deploy and rollback end to end: a real registry holds the stage, the API-server fixture runs the
workload (through the real client). Deploy by digest, a failed rollout rolled back automatically and
held, a manual rollback the next run respects, release-hold; every step in the audit trail."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from reconcile.audit import AuditStore
from reconcile.cli import cli
from tests.adapters.cluster.backends import FixtureBackend
from tests.adapters.cluster.scenarios import deployment
from tests.adapters.registry.oci import Layout, push
from tests.conftest import RunningRegistry
from tests.kube import running


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def write_policies(root: Path, registry: RunningRegistry, repo: str, target: str, *, more: str = "") -> Path:
    """Registry ci; PromotionPolicy web (build-N -> prod); DeployPolicy prod-web deploying the build
    stage to ``target`` (its spec lines); ``more`` documents."""
    root.mkdir()
    (root / "deploy.yaml").write_text(f"""\
apiVersion: reconcile/v1
kind: Registry
metadata: {{name: ci}}
spec: {{url: "{registry.url}"}}
---
apiVersion: reconcile/v1
kind: PromotionPolicy
metadata: {{name: web}}
spec:
  stages:
    - {{name: build, registry: ci, repository: "{repo}", track: {{tags: '^build-(?P<version>\\d+)$', order: numeric}}}}
    - {{name: prod, from: build, registry: ci, repository: "{repo}-prod", tags: [prod, "{{version}}"]}}
---
apiVersion: reconcile/v1
kind: DeployPolicy
metadata: {{name: prod-web}}
spec:
  stage: web/build
{target}  workloads: [{{kind: Deployment, name: web, container: web}}]
{more}""")
    return root


@dataclass
class WebInProd:
    """Builds 1..N of one repository (1 and 2 pushed), the Deployment prod/web running build 1, and
    the policies deploying the newest build to it."""

    layout: Layout
    built: dict[int, Any]
    registry: RunningRegistry
    repo: str
    admin: FixtureBackend
    namespace: str
    root: Path

    @property
    def digests(self) -> list[str]:
        return [self.built[n].digest for n in sorted(self.built)]

    @property
    def ref(self) -> str:
        return f"{self.registry.host}/{self.repo}@"

    def push(self, n: int) -> None:
        self.layout.tag(self.built[n], f"build-{n}")
        push(self.layout, f"build-{n}", self.registry.host, self.repo)

    def image(self) -> str:
        return self.admin.read("apps/v1", "Deployment", self.namespace, "web")["spec"]["template"]["spec"][
            "containers"][0]["image"]


@contextmanager
def web_in_prod(tmp_path: Path, registry: RunningRegistry, repo: str, *, builds: int) -> Iterator[WebInProd]:
    layout = Layout(tmp_path / "layout")
    built = {n: layout.image(created=f"2026-11-0{n}T00:00:00Z") for n in range(1, builds + 1)}
    with running() as api:
        admin = FixtureBackend(api, tmp_path)
        namespace = admin.namespace("web")
        root = write_policies(tmp_path / "policies", registry, repo, f"""\
  cluster: prod
  namespace: {namespace}
  rollout: {{timeout: 5s, autoRollback: true}}
""", more=f"""\
---
apiVersion: reconcile/v1
kind: Cluster
metadata: {{name: prod}}
spec: {{kubeconfig: {{file: "{tmp_path / 'admin.kubeconfig'}"}}, timeout: 2s}}
""")
        world = WebInProd(layout, built, registry, repo, admin, namespace, root)
        for n in (1, 2):
            world.push(n)
        admin.create(deployment(namespace, "web", {"web": world.ref + built[1].digest}, replicas=1, deadline=5))
        try:
            yield world
        finally:
            admin.close()


def deploy_rows(db: Path) -> list[tuple[Any, ...]]:
    with AuditStore.open(db, read_only=True) as store:
        return [tuple(r) for r in store.conn.execute(
            "SELECT kind, status, digest_before, digest_after, substr(coalesce(reason, ''), 1, 13) FROM actions "
            "WHERE policy = 'DeployPolicy/prod-web' AND status != 'intent' ORDER BY seq")]


def test_deploy_auto_rollback_hold_manual_rollback_and_release(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    db = tmp_path / "audit.db"
    with web_in_prod(tmp_path, plain_registry, repo, builds=3) as world:
        (d1, d2, d3), ref, admin, namespace = world.digests, world.ref, world.admin, world.namespace
        image, common = world.image, ["--repo", str(world.root), "--audit-db", str(db)]

        # 1. the stage's newest candidate is deployed, by digest
        planned = invoke("plan", *common, "--format", "markdown", "--detailed-exitcode")
        assert planned.exit_code == 2, planned.output
        assert f"{ref}{d2}" in planned.stdout
        applied = invoke("apply", *common, "--yes")
        assert applied.exit_code == 0, applied.output
        assert image() == ref + d2
        assert invoke("plan", *common, "--detailed-exitcode").exit_code == 0  # converged
        runs = f"prod/{namespace}/Deployment/web (tags: build-2): keep — DeployPolicy/prod-web: runs build-2 " \
               f"({d2[:19]}) held by web/build\n"
        assert invoke("explain", *common, "build-2").stdout == runs
        assert invoke("explain", *common, f"{repo}:build-2").stdout == runs
        assert invoke("explain", *common, "DeployPolicy/prod-web").stdout == runs
        assert runs in invoke("explain", *common, d2).stdout  # and the promotion of d2 to prod
        assert invoke("explain", *common, "build-1").stdout.startswith("no policy decides anything about build-1")

        # 2. a failed rollout is rolled back automatically, and the digest held
        world.push(3)
        admin.rollout_outcome(namespace, "web", "fail", image=ref + d3)  # d3 cannot start; d2 still can
        failed = invoke("run", *common)
        assert failed.exit_code == 1, failed.output
        assert image() == ref + d2
        admin.patch("apps/v1", "Deployment", namespace, "web", {"metadata": {"annotations": {"poke": "1"}}})
        held = invoke("plan", *common, "--format", "markdown", "--detailed-exitcode")
        assert held.exit_code == 0, held.output  # nothing to do: the failed digest is held
        assert f"held: {d3[:19]} was rolled back automatically" in held.stdout
        explained = invoke("explain", *common, "DeployPolicy/prod-web").stdout
        assert explained.startswith(f"prod/{namespace}/Deployment/web (tags: build-3): blocked — DeployPolicy/"
                                    f"prod-web: held: {d3[:19]} was rolled back automatically")
        assert invoke("explain", *common, "build-3").stdout == explained
        assert invoke("run", *common).exit_code == 0
        assert image() == ref + d2  # not deployed again

        # 3. release-hold lets it deploy again
        admin.rollout_outcome(namespace, "web", "complete", image=ref + d3)  # fixed on the nodes' side
        released = invoke("release-hold", *common, "prod-web")
        assert released.exit_code == 0 and f"released the hold on {d3}" in released.stderr
        assert invoke("run", *common).exit_code == 0
        assert image() == ref + d3

        # 4. a manual rollback (to the previous good digest) is respected by the next run
        rolled = invoke("rollback", *common, "prod-web", "--yes")
        assert rolled.exit_code == 0, rolled.output
        assert image() == ref + d2
        # cross-checked with the Deployment's retained revisions (1: d1, 2: d2, 3: d3 after the undo reused 2's)
        assert "note: Deployment/web: revision " in rolled.stderr and f"ran {d2[:19]}" in rolled.stderr
        assert "workload(s) rolled out" in rolled.stderr
        again = invoke("run", *common)
        assert again.exit_code == 0, again.output
        assert image() == ref + d2
        plan = invoke("plan", *common, "--format", "markdown").stdout
        assert f"held: {d3[:19]} was rolled back by hand" in plan

        # 5. released again: rolls forward
        assert invoke("release-hold", *common, "prod-web").exit_code == 0
        assert invoke("run", *common).exit_code == 0
        assert image() == ref + d3

    rows = deploy_rows(db)
    assert [row[:4] for row in rows] == [
        ("deploy", "succeeded", d1, d2),
        ("deploy", "failed", d2, d3),
        ("rollback", "succeeded", d3, d2),  # its own audited action
        ("skip", "skipped", d2, d3),  # the held digest, not deployed
        ("skip", "skipped", d3, None),  # release-hold
        ("deploy", "succeeded", d2, d3),
        ("rollback", "succeeded", d3, d2),  # reconcile rollback
        ("skip", "skipped", d2, d3),
        ("skip", "skipped", d3, None),
        ("deploy", "succeeded", d2, d3),
    ]
    assert [rows[i][4] for i in (2, 3, 4, 6)] == ["auto-rollback", "held: sha256:", "hold released", "manual rollba"]
    with AuditStore.open(db, read_only=True) as store:  # the causes, as data
        causes = [r[0] for r in store.conn.execute("SELECT cause FROM actions WHERE policy = 'DeployPolicy/prod-web' "
                                                    "AND status != 'intent' ORDER BY seq")]
    assert [causes[i] for i in (0, 2, 3, 6)] == ["out-of-date", "rollout-failed", "held", "requested"]
    assert invoke("audit", "verify", "--audit-db", str(db)).exit_code == 0
    with AuditStore.open(db, read_only=True) as store:
        modes = [run.mode for run in store.runs()]
    assert modes.count("release-hold") == 2 and modes.count("rollback") == 1


def test_rollbacks_whose_rollout_fails_still_hold_and_refusals_change_nothing(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    db = tmp_path / "audit.db"
    with web_in_prod(tmp_path, plain_registry, repo, builds=4) as world:
        (d1, d2, d3, d4), ref, admin, namespace = world.digests, world.ref, world.admin, world.namespace
        image, common = world.image, ["--repo", str(world.root), "--audit-db", str(db)]
        assert invoke("apply", *common, "--yes").exit_code == 0
        assert image() == ref + d2

        # --revision N restores that revision's template, and is watched like any rollout
        by_revision = invoke("rollback", *common, "prod-web", "--revision", "1", "--yes")
        assert by_revision.exit_code == 0, by_revision.output
        assert image() == ref + d1
        assert f"rolled prod-web back from build-2 ({d2}) to revision 1, build-1 ({d1})" in by_revision.stderr
        assert invoke("release-hold", *common, "prod-web").exit_code == 0
        assert invoke("run", *common).exit_code == 0
        assert image() == ref + d2

        # an automatic rollback whose own rollout fails: the run fails, and the digest is held all the same
        world.push(3)
        admin.rollout_outcome(namespace, "web", "fail", image=ref + d3)
        admin.rollout_outcome(namespace, "web", "fail", image=ref + d2)
        failed = invoke("run", *common)
        assert failed.exit_code == 1
        assert "the automatic rollback failed too: Deployment" in failed.stderr
        assert "the rollback's rollout failed" in failed.stderr
        assert image() == ref + d2
        held = invoke("plan", *common, "--format", "markdown").stdout
        assert f"held: {d3[:19]} was rolled back automatically" in held and "(the rollback failed)" in held

        # a digest the stage's registry does not hold is refused: nothing changes, the refusal is recorded
        before = deploy_rows(db)
        refused = invoke("rollback", *common, "prod-web", "--to", d4, "--yes")
        assert refused.exit_code == 1
        assert f"not rolled back: {d4} is no longer in the stage's repository (pruned?)" in refused.stderr
        unpinned = invoke("rollback", *common, "prod-web", "--to", "v1", "--yes")
        assert "expected a digest, sha256: and 64 hex digits" in unpinned.stderr
        refusals = deploy_rows(db)[len(before):]
        assert [r[:2] for r in refusals] == [("skip", "skipped")] * 2 and image() == ref + d2
        assert all(r[4] == "refused: " + r[4][9:] for r in refusals)

        # a manual rollback whose rollout fails exits 1, and holds what it rolled back from
        admin.rollout_outcome(namespace, "web", "fail", image=ref + d1)
        manual = invoke("rollback", *common, "prod-web", "--to", d1, "--yes")
        assert manual.exit_code == 1
        assert "not rolled back: Deployment" in manual.stderr and "the rollback's rollout failed" in manual.stderr
        assert image() == ref + d1
        plan = invoke("plan", *common, "--format", "markdown").stdout
        assert f"held: {d3[:19]}" not in plan  # the newest hold wins: d2 was rolled back from by hand

    rows = [row for row in deploy_rows(db) if row[0] != "skip"]
    assert [row[:4] for row in rows][-3:] == [
        ("deploy", "failed", d2, d3), ("rollback", "failed", d3, d2), ("rollback", "failed", d2, d1)]


# --- GitOps write-back: a manifests repository as the target --------------------------------------

MANIFEST = """\
# prod web: Argo CD syncs this file
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop   # the prod namespace
spec:
  replicas: 3
  template:
    spec:
      containers:
        - name: web
          image: {image}   # pinned by reconcile
          args: ["--port", "8080"]
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def test_manifests_write_back_changes_only_the_image_line_and_is_idempotent(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "gitconfig").write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "fixture")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "fixture@example.com")
    layout = Layout(tmp_path / "layout")
    built = {n: layout.image(created=f"2026-11-0{n}T00:00:00Z") for n in (1, 2)}
    for n in (1, 2):
        layout.tag(built[n], f"build-{n}")
        push(layout, f"build-{n}", plain_registry.host, repo)
    d1, d2 = built[1].digest, built[2].digest
    old, new = f"{plain_registry.host}/{repo}:build-1@{d1}", f"{plain_registry.host}/{repo}:build-2@{d2}"
    seed = tmp_path / "seed"
    (seed / "envs" / "prod").mkdir(parents=True)
    (seed / "envs" / "prod" / "web.yaml").write_text(MANIFEST.format(image=old))
    git(seed, "init", "--quiet", "--initial-branch", "main")
    git(seed, "add", "--all")
    git(seed, "commit", "--quiet", "-m", "manifests")
    bare = tmp_path / "manifests.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(seed), str(bare))
    first = git(bare, "rev-parse", "main")
    root = write_policies(tmp_path / "policies", plain_registry, repo, f"""\
  manifests: {{repo: "file://{bare}", path: envs/prod, branch: main}}
  namespace: shop
""", more=f"""\
---
apiVersion: reconcile/v1
kind: RetentionPolicy
metadata: {{name: ci-cleanup}}
spec:
  registry: ci
  repositories: ["{repo}"]
  keep: [{{tags: '^build-2$'}}]
  protect: {{deployedHistory: 2}}
""")
    common = ["--repo", str(root), "--audit-db", str(tmp_path / "audit.db")]

    planned = invoke("plan", *common, "--format", "markdown", "--only", "DeployPolicy/prod-web")
    assert planned.exit_code == 0, planned.output
    assert f"{d1[:19]} -> {new}" in planned.stdout
    # build-1 is kept by no rule: only the manifests' pin protects it (no cluster needed)
    assert invoke("explain", *common, f"{repo}:build-1").stdout == (
        f"ci/{repo}:build-1: keep — RetentionPolicy/ci-cleanup: protected: DeployPolicy/prod-web's target runs or "
        f"pins {d1[:19]} now\n")
    applied = invoke("apply", *common, "--yes")
    assert applied.exit_code == 0, applied.output
    # once replaced, the rollback window keeps it: the rollback below can go back to it
    assert invoke("explain", *common, f"{repo}:build-1").stdout == (
        f"ci/{repo}:build-1: keep — RetentionPolicy/ci-cleanup: protected: among the last digests "
        "DeployPolicy/prod-web deployed\n")
    second = git(bare, "rev-parse", "main")
    assert second != first
    diff = git(bare, "diff", "--unified=0", first, second)
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == [f"-          image: {old}   # pinned by reconcile",
                       f"+          image: {new}   # pinned by reconcile"]
    message = git(bare, "log", "-1", "--format=%B", "main")
    assert "DeployPolicy/prod-web" in message and d1 in message and d2 in message
    assert "Repo-of-record commit:" in message

    assert invoke("plan", *common, "--only", "DeployPolicy/prod-web", "--detailed-exitcode").exit_code == 0
    runs = f"git:file://{bare}#main:envs/prod Deployment/web (tags: build-2): keep — DeployPolicy/prod-web: " \
           f"runs build-2 ({d2[:19]}) held by web/build\n"
    kept = f"ci/{repo}:build-2: keep — RetentionPolicy/ci-cleanup: keep[0]: matches '^build-2$'\n"
    assert invoke("explain", *common, "build-2").stdout == runs + kept  # the deploy and the retention rule
    assert invoke("explain", *common, f"ci/{repo}:build-2").stdout == runs + kept
    assert invoke("explain", *common, f"{repo}-prod:build-2").stdout.startswith("no policy decides anything")
    assert runs in invoke("explain", *common, d2).stdout
    assert invoke("run", *common).exit_code == 0
    assert git(bare, "rev-parse", "main") == second  # no new commit

    # a manual rollback writes the previous digest back (only the image line again), and holds d2
    rolled = invoke("rollback", *common, "prod-web", "--yes")
    assert rolled.exit_code == 0, rolled.output
    third = git(bare, "rev-parse", "main")
    diff = git(bare, "diff", "--unified=0", second, third)
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == [f"-          image: {new}   # pinned by reconcile",
                       f"+          image: {old}   # pinned by reconcile"]
    assert git(bare, "log", "-1", "--format=%s", "main") == f"reconcile: rollback DeployPolicy/prod-web {d2} -> {d1}"
    held = invoke("plan", *common, "--format", "markdown", "--only", "DeployPolicy/prod-web", "--detailed-exitcode")
    assert held.exit_code == 0, held.output
    assert f"held: {d2[:19]} was rolled back by hand" in held.stdout
    assert invoke("explain", *common, "DeployPolicy/prod-web").stdout.startswith(
        f"git:file://{bare}#main:envs/prod Deployment/web (tags: build-2): blocked — DeployPolicy/prod-web: "
        f"held: {d2[:19]} was rolled back by hand")
    assert invoke("run", *common).exit_code == 0
    assert git(bare, "rev-parse", "main") == third  # the next run respects the hold
    by_revision = invoke("rollback", *common, "prod-web", "--revision", "1", "--yes")
    assert by_revision.exit_code == 1
    assert "--revision applies to cluster targets; a manifests target's history is its git log" in by_revision.stderr

    # released: the next run writes d2 again
    assert invoke("release-hold", *common, "prod-web").exit_code == 0
    assert invoke("run", *common).exit_code == 0
    assert git(bare, "show", "main:envs/prod/web.yaml") == MANIFEST.format(image=new).strip()
    with AuditStore.open(tmp_path / "audit.db", read_only=True) as store:
        rows = [tuple(r) for r in store.conn.execute(
            "SELECT kind, digest_before, digest_after FROM actions WHERE status = 'succeeded' "
            "AND policy = 'DeployPolicy/prod-web' ORDER BY seq")]
    assert rows == [("deploy", d1, d2), ("rollback", d2, d1), ("deploy", d1, d2)]
