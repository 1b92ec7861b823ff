"""``validate``, ``plan``, ``explain`` and ``audit`` only read: run as a user runs them (``python -m
reconcile`` in a subprocess) against a real docker-registry behind a recording proxy, the API-server
fixture (which logs every request it is sent) and a bare git repository of manifests, with policies
that have something of every kind to change: a retention that prunes and untags and is protected by
a cluster, a pending promotion, a pending deploy to the cluster and one by manifests write-back.
Not one request may write (registry: anything but GET/HEAD; cluster: anything but get/list/watch,
TokenReview and SelfSubjectAccessReview POSTs included) and nothing may be pushed, while ``apply``
through the same proxy does delete, push and patch, so the check can fail. And a plan made with
credentials that may not write is the plan made with ones that may: how a registry deletes is
declared on its Registry (``deletion``), never found out by trying."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from reconcile.audit import AuditStore
from tests.adapters.cluster.backends import RBAC_MANIFEST, SERVICE_ACCOUNT, FixtureBackend
from tests.adapters.cluster.scenarios import deployment
from tests.adapters.registry.faults import FaultProxy, Recorded
from tests.adapters.registry.oci import Layout, push, put_tag
from tests.conftest import RunningRegistry
from tests.kube import ApiServer, Identity, Request, Rule, manifest_rules, running

REGISTRY_READS = {"GET", "HEAD"}
CLUSTER_READS = {"GET"}  # get, list and watch are all GETs; everything else writes
WRITES = ("PUT", "POST", "PATCH", "DELETE")
RECONCILE_USER = "system:serviceaccount:reconcile:reconcile"
PROJECT = Path(__file__).resolve().parents[1]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@dataclass
class World:
    tmp_path: Path
    registry: RunningRegistry
    proxy: FaultProxy
    api: ApiServer
    namespace: str
    policies: Path
    manifests: Path  # the bare repository the GitOps write-back pushes to
    kubeconfig: Path  # what the Cluster policy names (a file secret reference, read on every run)
    repo: str
    digests: dict[str, str]

    @property
    def db(self) -> Path:
        return self.tmp_path / "audit.db"

    def reconcile(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILE_")}
        env.update(RECONCILE_CACHE_DIR=str(self.tmp_path / "cache"), GIT_CONFIG_GLOBAL=str(self.tmp_path / "gitconfig"),
                   GIT_CONFIG_NOSYSTEM="1", PYTHONPATH=str(PROJECT))
        return subprocess.run([sys.executable, "-m", "reconcile", *args, "--repo", str(self.policies),
                               "--audit-db", str(self.db)], cwd=self.tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)

    def refs(self) -> str:
        return git(self.manifests, "for-each-ref", "--format=%(refname) %(objectname)")

    def cluster_requests(self, since: int = 0) -> list[Request]:
        with self.api.lock:
            return [r for r in self.api.requests[since:] if r.user != "kubernetes-admin"]

    def tags(self, repository: str) -> list[str]:
        """What the registry itself holds, asked directly (not through the proxy)."""
        response = requests.get(f"{self.registry.url}/v2/{repository}/tags/list", timeout=10)
        return sorted(response.json().get("tags") or []) if response.status_code == 200 else []


def registry_writes(seen: list[Recorded]) -> list[str]:
    return [f"{r.method} {r.path}" for r in seen if r.method not in REGISTRY_READS]


def cluster_writes(seen: list[Request]) -> list[str]:
    return [f"{r.method} {r.path} ({r.user})" for r in seen if r.method not in CLUSTER_READS]


def write_policies(root: Path, proxy: FaultProxy, repo: str, kubeconfig: Path, namespace: str,
                   manifests: Path) -> None:
    (root / "registries.yaml").write_text(f"""\
apiVersion: reconcile/v1
kind: Registry
metadata: {{name: ci}}
spec:
  url: "{proxy.url}"
  deletion: tag   # the proxy gives this distribution 2.8 OCI 1.1 tag deletion
""")
    (root / "clusters.yaml").write_text(f"""\
apiVersion: reconcile/v1
kind: Cluster
metadata: {{name: prod}}
spec: {{kubeconfig: {{file: "{kubeconfig}"}}, timeout: 5s}}
""")
    (root / "retention.yaml").write_text(f"""\
apiVersion: reconcile/v1
kind: RetentionPolicy
metadata: {{name: ci-cleanup}}
spec:
  registry: ci
  repositories: ["{repo}/build"]
  keep:
    - tags: '^v\\d+$'
    - {{tags: '^build-\\d+$', last: 1}}
  untagOthers: true   # sha-d, on the kept build-3, is untagged: a tag deletion to plan
  protect: {{inUse: [prod]}}
  maxDeletions: 10
""")
    (root / "promotion.yaml").write_text(f"""\
apiVersion: reconcile/v1
kind: PromotionPolicy
metadata: {{name: web}}
spec:
  stages:
    - name: build
      registry: ci
      repository: "{repo}/build"
      track: {{tags: '^build-(?P<version>\\d+)$', order: numeric}}
    - {{name: prod, from: build, registry: ci, repository: "{repo}/prod", tags: [prod, "{{version}}"]}}
""")
    (root / "deploy.yaml").write_text(f"""\
apiVersion: reconcile/v1
kind: DeployPolicy
metadata: {{name: prod-web}}
spec:
  stage: web/build
  cluster: prod
  namespace: {namespace}
  rollout: {{timeout: 20s}}
  workloads: [{{kind: Deployment, name: web, container: web}}]
---
apiVersion: reconcile/v1
kind: DeployPolicy
metadata: {{name: staging-web}}
spec:
  stage: web/build
  manifests: {{repo: "{manifests.as_uri()}", path: envs/staging, branch: main}}
  workloads: [{{kind: Deployment, name: web, container: web}}]
""")


def manifests_repository(tmp_path: Path, image: str) -> Path:
    work = tmp_path / "manifests-work"
    (work / "envs" / "staging").mkdir(parents=True)
    (work / "envs" / "staging" / "web.yaml").write_text(f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  template:
    spec:
      containers:
        - name: web
          image: {image}
""")
    git(work, "init", "--quiet", "--initial-branch", "main")
    git(work, "add", "--all")
    git(work, "commit", "--quiet", "-m", "staging runs build-1")
    git(tmp_path, "clone", "--quiet", "--bare", str(work), str(tmp_path / "manifests.git"))
    return tmp_path / "manifests.git"


@pytest.fixture
def world(tmp_path: Path, plain_registry: RunningRegistry, repo: str,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    (tmp_path / "gitconfig").write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "fixture")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "fixture@example.com")
    # build-0 and build-2 pruned, build-1 protected (prod runs it), build-3 kept (the newest build),
    # promoted and deployed; sha-d untagged from build-3's digest; v1 kept.
    layout = Layout(tmp_path / "layout")
    names = ["v1", "build-0", "build-1", "build-2", "build-3"]
    built = {name: layout.image(created=f"2026-11-0{day}T00:00:00Z") for day, name in enumerate(names, 1)}
    for tag, image in built.items():
        layout.tag(image, tag)
        push(layout, tag, plain_registry.host, f"{repo}/build")
    put_tag(plain_registry.url, f"{repo}/build", "sha-d", built["build-3"])
    proxy = FaultProxy(plain_registry.url, untag_storage=plain_registry.root / "data")
    reference = f"{proxy.host}/{repo}/build@"
    try:
        with running() as api:
            admin = FixtureBackend(api, tmp_path)
            namespace = admin.namespace("web")
            admin.create(deployment(namespace, "web", {"web": reference + built["build-1"].digest}, replicas=1))
            kubeconfig = admin.identity([namespace])  # deploy/rbac.yaml's rules, as reconcile's service account
            manifests = manifests_repository(tmp_path, reference + built["build-1"].digest)
            policies = tmp_path / "policies"
            policies.mkdir()
            write_policies(policies, proxy, repo, kubeconfig, namespace, manifests)
            git(policies, "init", "--quiet", "--initial-branch", "main")
            git(policies, "add", "--all")
            git(policies, "commit", "--quiet", "-m", "policies")
            try:
                yield World(tmp_path, plain_registry, proxy, api, namespace, policies, manifests, kubeconfig, repo,
                            {name: b.digest for name, b in built.items()})
            finally:
                admin.close()
    finally:
        proxy.close()


def mutations(plan: dict) -> list[tuple[str, str]]:
    return sorted((a["kind"], a["target"]) for a in plan["actions"] if a["mutates"])


def test_validate_plan_explain_and_audit_send_no_write_and_apply_does(world: World) -> None:
    d = world.digests
    before_refs, before_tags = world.refs(), world.tags(f"{world.repo}/build")
    mark = len(world.api.requests)
    with world.proxy.recording() as seen:
        validated = world.reconcile("validate")
        assert validated.returncode == 0, validated.stderr
        plans = {}
        for output in ("rich", "markdown", "json"):
            planned = world.reconcile("plan", "--format", output, "--out", str(world.tmp_path / f"{output}.json"),
                                      "--detailed-exitcode")
            assert planned.returncode == 2, planned.stdout + planned.stderr  # changes pending, no error
            plans[output] = json.loads((world.tmp_path / f"{output}.json").read_text())
        explained = {ref: world.reconcile("explain", ref) for ref in
                     ("build-2", "sha-d", d["build-3"], "DeployPolicy/prod-web", "PromotionPolicy/web")}
    cluster_seen = world.cluster_requests(mark)

    plan = plans["json"]
    build, prod = f"ci/{world.repo}/build", f"ci/{world.repo}/prod"
    assert {kind for kind, _ in mutations(plan)} == {"prune", "untag", "promote", "deploy"}
    assert sorted(t for k, t in mutations(plan) if k in ("prune", "untag", "promote")) == sorted([
        f"{build}@{d['build-0']}", f"{build}@{d['build-2']}", f"{prod}@{d['build-3']}", f"{build}:sha-d"])
    assert len([k for k, _ in mutations(plan) if k == "deploy"]) == 2  # the cluster and the manifests
    assert {json.dumps(mutations(p)) for p in plans.values()} == {json.dumps(mutations(plan))}
    assert all(result.returncode == 0 for result in explained.values()), explained
    assert "untag" in explained["sha-d"].stdout and "prune" in explained["build-2"].stdout
    assert "deploy" in explained["DeployPolicy/prod-web"].stdout

    assert seen and cluster_seen  # both were read...
    assert registry_writes(seen) == []  # ...and not one request wrote
    assert cluster_writes(cluster_seen) == []
    assert world.refs() == before_refs  # nothing pushed to the manifests repository
    assert world.tags(f"{world.repo}/build") == before_tags and world.tags(f"{world.repo}/prod") == []
    assert not world.db.exists()  # nor written to the audit trail

    # The same proxy, cluster and repository do see writes when reconcile is asked to change things.
    mark = len(world.api.requests)
    with world.proxy.recording() as applying:
        applied = world.reconcile("apply", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    writes = registry_writes(applying)
    assert f"DELETE /v2/{world.repo}/build/manifests/{d['build-0']}" in writes
    assert f"DELETE /v2/{world.repo}/build/manifests/sha-d" in writes
    assert any(w.startswith(f"PUT /v2/{world.repo}/prod/manifests/") for w in writes)
    assert [w for w in cluster_writes(world.cluster_requests(mark)) if w.startswith("PATCH ")]
    assert world.refs() != before_refs  # the write-back was pushed
    assert world.tags(f"{world.repo}/build") == ["build-1", "build-3", "v1"]
    assert world.tags(f"{world.repo}/prod") == ["3", "prod"]

    # With an audit trail now: reviewing it, and planning and explaining again, still only read.
    mark, after_refs = len(world.api.requests), world.refs()
    with AuditStore.open(world.db, read_only=True) as store:
        head = store.verify().head
    with world.proxy.recording() as reviewing:
        listed = world.reconcile("audit", "list")
        verified = world.reconcile("audit", "verify")
        again = world.reconcile("plan", "--format", "json", "--detailed-exitcode")
        explained_again = world.reconcile("explain", "build-3")
    assert listed.returncode == 0 and "prune" in listed.stdout, listed.stderr
    assert verified.returncode == 0 and verified.stdout.startswith("ok: "), verified.stderr
    assert again.returncode in (0, 2) and not json.loads(again.stdout)["errors"], again.stdout + again.stderr
    assert explained_again.returncode == 0, explained_again.stderr
    assert registry_writes(reviewing) == [] and cluster_writes(world.cluster_requests(mark)) == []
    assert world.refs() == after_refs
    with AuditStore.open(world.db, read_only=True) as store:
        assert store.verify().head == head  # nothing appended


def read_only_identity(world: World) -> None:
    """Swap the Cluster's kubeconfig for one whose token may only get, list and watch."""
    rules = manifest_rules(RBAC_MANIFEST, service_account=SERVICE_ACCOUNT, role_namespaces=[world.namespace])
    reading = tuple(Rule(frozenset(r.verbs & {"get", "list", "watch"}), r.groups, r.resources, r.namespace)
                    for r in rules)
    world.api.identities["read-only-token"] = Identity(RECONCILE_USER, reading)
    world.api.kubeconfig(world.kubeconfig, "read-only-token")


@pytest.mark.parametrize("refusal", [401, 403])
def test_a_plan_made_with_read_only_credentials_is_the_plan_apply_carries_out(world: World, refusal: int) -> None:
    """What a pull request's plan shows, with credentials that may only pull, is what apply does with
    ones that may push and delete: the proxy refusing every write stands for the registry's
    permissions (docker-registry has no per-user ones), a read-only token for the cluster's."""
    writable = world.reconcile("plan", "--format", "json")
    assert writable.returncode == 0, writable.stderr
    for method in WRITES:
        world.proxy.inject(".", "status", method=method, status=refusal, times=-1)
    read_only_identity(world)
    with world.proxy.recording() as seen:
        read_only = world.reconcile("plan", "--format", "json")
    assert read_only.returncode == 0, read_only.stderr

    first, second = json.loads(writable.stdout), json.loads(read_only.stdout)
    assert first.pop("observedAt") and second.pop("observedAt")
    assert first.pop("contentHash") != second.pop("contentHash")  # it covers observedAt too
    assert second == first  # the fingerprint included: the same world, seen the same way
    assert ("untag", f"ci/{world.repo}/build:sha-d") in mutations(second)  # as declared: deletion: tag
    assert registry_writes(seen) == []  # the refusals were never even met
