"""A one-stage pipeline is valid: it follows its track (a moving tag), and a DeployPolicy deploys
from it; no dummy second stage."""

from __future__ import annotations

from pathlib import Path

from reconcile.policy import load_policies, validate_repo

FOLLOW = """apiVersion: reconcile/v1
kind: Registry
metadata: {name: ci}
spec: {url: "https://registry.example.com"}
---
apiVersion: reconcile/v1
kind: PromotionPolicy
metadata: {name: web}
spec:
  stages:
    - {name: latest, registry: ci, repository: team/web, track: {tags: '^latest$'}}
---
apiVersion: reconcile/v1
kind: Cluster
metadata: {name: prod}
spec: {inCluster: true}
---
apiVersion: reconcile/v1
kind: DeployPolicy
metadata: {name: prod-web}
spec:
  stage: web/latest
  cluster: prod
  namespace: web
  workloads: [{kind: Deployment, name: web, container: web}]
"""


def test_a_one_stage_pipeline_and_its_deploy_are_valid(tmp_path: Path) -> None:
    (tmp_path / "follow.yaml").write_text(FOLLOW)
    assert not validate_repo(str(tmp_path)).problems
    (stage,) = load_policies(str(tmp_path)).promotion_policies["web"].stages
    assert stage.track is not None and stage.track.follows == "latest"
