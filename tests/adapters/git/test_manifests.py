"""A cluster known by its GitOps manifests: images from every workload kind and kustomization."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import git
import pytest

from reconcile.adapters.git.manifests import read_manifests_state
from reconcile.observe.state import ImageReference
from reconcile.policy.model import (
    Cluster,
    DeployPolicy,
    ManifestsSource,
    ManifestsTarget,
    PolicySet,
    PromotionPolicy,
    Stage,
    Workload,
)
from reconcile.policy.source import SourceError
from reconcile.reconciler import connections as session

DIGEST = "sha256:" + "a" * 64
MANIFESTS = {
    "web/deployment.yaml": f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: shop}}
spec:
  template:
    spec:
      initContainers: [{{name: migrate, image: "registry.example.com:5000/shop/migrate:v3"}}]
      containers:
        - {{name: web, image: "registry.example.com:5000/shop/web@{DIGEST}"}}
        - {{name: sidecar, image: envoyproxy/envoy:v1.30}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec: {{ports: [{{port: 80}}]}}
""",
    "jobs/cron.yaml": """\
apiVersion: batch/v1
kind: CronJob
metadata: {name: reindex, namespace: shop}
spec: {schedule: "0 * * * *", jobTemplate: {spec: {template: {spec: {containers: [{name: r, image: busybox}]}}}}}
""",
    "kustomization.yaml": f"""\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [web/deployment.yaml]
images:
  - {{name: registry.example.com:5000/shop/web, newTag: v9, digest: "sha256:{"b" * 64}"}}
""",
}


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def cluster(repo: Path, path: str = ".", branch: str | None = None) -> Cluster:
    return Cluster("prod", in_cluster=False, kubeconfig=None, manifests=ManifestsSource(str(repo), path, branch))


def test_every_workload_image_and_kustomize_override_is_in_use(tmp_path: Path) -> None:
    state = read_manifests_state(cluster(write(tmp_path / "m", MANIFESTS)))
    assert sorted(str(ref) for ref in state.images) == sorted([
        f"registry.example.com:5000/shop/web@{DIGEST}",
        "registry.example.com:5000/shop/web:v9@sha256:" + "b" * 64,
        "registry.example.com:5000/shop/migrate:v3",
        "docker.io/envoyproxy/envoy:v1.30",
        "docker.io/library/busybox:latest",
    ])
    (usage,) = state.images[ImageReference("registry.example.com:5000", "shop/web", digest=DIGEST)]
    assert (usage.namespace, usage.kind, usage.name, usage.container, usage.state) == (
        "shop", "Deployment", "web", "web", "running")


def test_a_git_repository_is_read_at_its_branch_not_the_working_tree(tmp_path: Path) -> None:
    repo = git.Repo.init(tmp_path / "gitops", initial_branch="main")
    write(tmp_path / "gitops", {"envs/prod/cron.yaml": MANIFESTS["jobs/cron.yaml"]})
    repo.index.add(["envs/prod/cron.yaml"])
    repo.index.commit("prod runs busybox", author=git.Actor("t", "t@example.com"))
    write(tmp_path / "gitops", {"envs/prod/cron.yaml": MANIFESTS["jobs/cron.yaml"].replace("busybox", "alpine")})
    state = read_manifests_state(cluster(tmp_path / "gitops", "envs/prod", "main"))
    assert [str(ref) for ref in state.images] == ["docker.io/library/busybox:latest"]


def test_an_invalid_image_or_broken_yaml_is_an_error_not_a_partial_answer(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad", {"pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
                                               "spec: {containers: [{name: c, image: 'UPPER/Case'}]}\n"})
    with pytest.raises(SourceError, match="Pod default/p: container c: invalid image 'UPPER/Case'"):
        read_manifests_state(cluster(bad))
    broken = write(tmp_path / "broken", {"x.yaml": "a: [\n"})
    with pytest.raises(SourceError, match="YAML syntax error"):
        read_manifests_state(cluster(broken))


def test_a_kustomization_file_without_kind_still_pins_images(tmp_path: Path) -> None:
    root = write(tmp_path / "k", {"overlay/kustomization.yaml": f"images: [{{name: web, digest: '{DIGEST}'}}]\n"})
    assert [str(ref) for ref in read_manifests_state(cluster(root)).images] == [f"docker.io/library/web@{DIGEST}"]


def test_one_run_fetches_a_manifests_repository_once_however_many_read_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Cluster known by its manifests and two DeployPolicies writing to the same repository: one
    fetch and one read for the run, side by side as observe() reads them."""
    seed = git.Repo.init(tmp_path / "seed", initial_branch="main")
    write(tmp_path / "seed", {"envs/prod/web.yaml": MANIFESTS["web/deployment.yaml"],
                              "envs/staging/web.yaml": MANIFESTS["web/deployment.yaml"]})
    seed.index.add(["envs/prod/web.yaml", "envs/staging/web.yaml"])
    seed.index.commit("manifests", author=git.Actor("t", "t@example.com"))
    url = (tmp_path / "seed").as_uri()
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    reads: list[tuple[str, str | None]] = []
    real = session.read_snapshot
    monkeypatch.setattr(session, "read_snapshot", lambda repo, ref: reads.append((repo, ref)) or real(repo, ref))
    web = (Workload("Deployment", "web", "web"),)
    policies = PolicySet(
        "policies", None, promotion_policies={"web": PromotionPolicy("web", (Stage("prod", "ci", "shop/web"),))},
        deploy_policies={env: DeployPolicy(env, "web", "prod", web, manifests=ManifestsTarget(url, f"envs/{env}"),
                                           namespace="shop") for env in ("prod", "staging")})
    connections = session.Connections(policies)
    written, in_use = session.written_reader(connections), session.cluster_reader(connections)
    with ThreadPoolExecutor(max_workers=3) as pool:
        prod, staging = pool.map(written, policies.deploy_policies.values())
        state = pool.submit(in_use, cluster(url, "envs/prod", "main")).result()  # type: ignore[arg-type]
    assert prod.digest == staging.digest == DIGEST
    assert ImageReference("registry.example.com:5000", "shop/web", digest=DIGEST) in state.images
    assert reads == [(url, "main")]


def test_a_path_with_no_manifests_is_an_error_never_an_empty_cluster(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A mistyped path, an empty directory or one a symlink stands for must not read as "nothing
    runs here": that would let retention prune what the cluster runs."""
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    seed = git.Repo.init(tmp_path / "seed", initial_branch="main")
    write(tmp_path / "seed", {"envs/prod/web.yaml": MANIFESTS["web/deployment.yaml"], "README.md": "docs\n"})
    seed.index.add(["envs/prod/web.yaml", "README.md"])
    seed.index.commit("manifests", author=git.Actor("t", "t@example.com"))
    url = (tmp_path / "seed").as_uri()
    remote = Cluster("prod", False, None, manifests=ManifestsSource(url, "envs/prdo", "main"))
    with pytest.raises(SourceError, match="no YAML manifests under envs/prdo at main"):
        read_manifests_state(remote)
    empty = write(tmp_path / "empty", {"notes.txt": "no manifests here\n"})
    with pytest.raises(SourceError, match="no YAML manifests under"):
        read_manifests_state(cluster(empty))
    remote_ok = Cluster("prod", False, None, manifests=ManifestsSource(url, "envs/prod", "main"))
    assert read_manifests_state(remote_ok).images
