"""examples/azure-devops: Azure Pipelines pushes web:$(Build.BuildId) and `helm push`es the chart
to helm/web:<version> in the CI registry; the highest build id and the highest chart version go,
by digest, to dev (then, after a day's soak, to prod), and retention prunes old builds and charts
from CI, by numeric and semver order."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.adapters.registry.oci import OCI_MANIFEST, Built, Layout, push, raw_digest
from tests.examples.harness import Endpoints, actions, invoke, localize, plan_json

HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"

# build id -> age: the pipeline's ids are organisation-wide, so one pipeline's builds are sparse
BUILDS = {9: timedelta(days=90), 10: timedelta(days=60), 48190: timedelta(days=10), 48199: timedelta(days=6),
          48205: timedelta(days=4), 48207: timedelta(days=3), 48209: timedelta(days=2), 48211: timedelta(days=1),
          48213: timedelta(hours=2)}
CHARTS = ("1.3.0", "1.4.2", "1.9.0", "1.10.0")


def _tgz(files: dict[str, str]) -> bytes:
    """A chart archive as `helm package` writes it: web/Chart.yaml, values, templates, gzipped."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"web/{name}")
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def helm_chart(layout: Layout, version: str, created: datetime | None) -> Built:
    """A chart as `helm push` writes it: an OCI manifest, the Chart.yaml fields as its config (no
    `created` there), one chart-content layer. Helm 3.13+ adds a created annotation and (oras-go v2)
    the manifest's own mediaType; Helm 3.12 and older wrote neither (``created=None``)."""
    chart_yaml = f"apiVersion: v2\nname: web\nversion: {version}\nappVersion: \"48213\"\ntype: application\n"
    archive = _tgz({"Chart.yaml": chart_yaml, "values.yaml": "image: contosodev.azurecr.io/web:dev\n",
                    "templates/deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\n"})
    config = layout.blob(json.dumps({"name": "web", "version": version, "appVersion": "48213",
                                     "apiVersion": "v2", "type": "application"}).encode(), HELM_CONFIG)
    annotations = {"org.opencontainers.image.title": "web", "org.opencontainers.image.version": version}
    if created is not None:
        annotations["org.opencontainers.image.created"] = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
                "layers": [layout.blob(archive, HELM_CHART)], "annotations": annotations}
    if created is None:
        del manifest["mediaType"]
    return layout.manifest(manifest, OCI_MANIFEST)


def tags(url: str, repository: str) -> set[str]:
    return set(requests.get(f"{url}/v2/{repository}/tags/list", timeout=10).json().get("tags") or ())


def test_builds_and_charts_promoted_by_digest_and_ci_pruned(tmp_path: Path, registries: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    local = registries("ci", "dev", "prod")
    ci, dev = local["ci"], local["dev"]
    now = datetime.now(UTC)
    layout = Layout(tmp_path / "layout")
    builds: dict[int, Built] = {}
    for build_id, age in BUILDS.items():
        builds[build_id] = layout.image(created=(now - age).strftime("%Y-%m-%dT%H:%M:%SZ"))
        layout.tag(builds[build_id], str(build_id))
        push(layout, str(build_id), ci.host, "web")
    charts: dict[str, Built] = {}
    for n, version in enumerate(CHARTS):  # the oldest pushed by Helm 3.12
        charts[version] = helm_chart(layout, version, None if n == 0 else now - timedelta(days=30 - n))
        layout.tag(charts[version], version)
        push(layout, version, ci.host, "helm/web")
    root = localize("azure-devops", tmp_path / "repo", Endpoints(local), monkeypatch)
    db = tmp_path / "audit.db"
    validated = invoke("validate", "--repo", str(root))
    assert validated.exit_code == 0 and "warning" not in validated.output.lower(), validated.output

    plan = plan_json(root, db, "--detailed-exitcode")
    assert not plan["errors"]
    # Promotion: the highest build id (numeric: 48213, not "9") and chart version (semver: 1.10.0)
    promotions = {a["policy"]: a for a in actions(plan, "promote")}
    assert set(promotions) == {"PromotionPolicy/web", "PromotionPolicy/web-chart"}, plan["actions"]
    image, chart = promotions["PromotionPolicy/web"], promotions["PromotionPolicy/web-chart"]
    assert image["digestAfter"] == builds[48213].digest and image["target"] == f"dev/web@{builds[48213].digest}"
    assert image["tags"] == ["dev", "48213"]
    assert chart["digestAfter"] == charts["1.10.0"].digest
    assert chart["target"] == f"dev/helm/web@{charts['1.10.0'].digest}" and chart["tags"] == ["dev", "1.10.0"]
    waiting = actions(plan, "blocked")  # prod: dev holds nothing yet
    assert {a["policy"] for a in waiting} == {"PromotionPolicy/web", "PromotionPolicy/web-chart"}
    assert all(a["target"].startswith("prod/") for a in waiting)

    # Retention: builds past the last five by value and older than a week go; 1.3.0 is the oldest chart
    pruned = {tag for a in actions(plan, "prune", "RetentionPolicy/web-builds") for tag in a["tags"]}
    assert pruned == {"9", "10", "48190"}
    assert {a["digestBefore"] for a in actions(plan, "prune", "RetentionPolicy/web-builds")} == {
        builds[9].digest, builds[10].digest, builds[48190].digest}
    kept = {a["target"].rsplit(":", 1)[1]: a["reason"] for a in actions(plan, "keep", "RetentionPolicy/web-builds")}
    assert set(kept) == {"48199", "48205", "48207", "48209", "48211", "48213"}
    assert "within 7d" in kept["48199"] and "among the 5 newest" not in kept["48199"]  # newerThan, not last
    assert "among the 5 newest by numeric" in kept["48205"]
    (old_chart,) = actions(plan, "prune", "RetentionPolicy/web-charts")
    assert old_chart["tags"] == ["1.3.0"] and old_chart["digestBefore"] == charts["1.3.0"].digest
    kept_charts = {a["target"].rsplit(":", 1)[1] for a in actions(plan, "keep", "RetentionPolicy/web-charts")}
    assert kept_charts == {"1.4.2", "1.9.0", "1.10.0"}
    assert not (pruned | {"1.3.0"}) & (set(kept) | kept_charts)  # nothing pruned that a rule keeps

    assert invoke("apply", "--repo", str(root), "--audit-db", str(db), "--yes").exit_code == 0
    for repository, tag, built in (("web", "dev", builds[48213]), ("web", "48213", builds[48213]),
                                   ("helm/web", "dev", charts["1.10.0"]), ("helm/web", "1.10.0", charts["1.10.0"])):
        assert raw_digest(f"docker://{dev.host}/{repository}:{tag}") == built.digest, (repository, tag)
    chart_manifest = json.loads(requests.get(f"{dev.url}/v2/helm/web/manifests/1.10.0", timeout=10, headers={
        "Accept": OCI_MANIFEST}).content)
    assert chart_manifest["config"]["mediaType"] == HELM_CONFIG  # still a chart helm can pull
    layer = chart_manifest["layers"][0]
    blob = requests.get(f"{dev.url}/v2/helm/web/blobs/{layer['digest']}", timeout=10).content
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        assert "version: 1.10.0" in tar.extractfile("web/Chart.yaml").read().decode()  # type: ignore[union-attr]
    assert tags(ci.url, "web") == {str(b) for b in BUILDS} - {"9", "10", "48190"}
    assert tags(ci.url, "helm/web") == {"1.4.2", "1.9.0", "1.10.0"}

    # The next run: dev holds both; prod waits out its day of soak
    again = plan_json(root, db, "--detailed-exitcode")
    assert not actions(again, "promote") and not actions(again, "prune")
    gated = {a["policy"]: a for a in actions(again, "blocked")}
    assert set(gated) == {"PromotionPolicy/web", "PromotionPolicy/web-chart"}
    assert gated["PromotionPolicy/web"]["target"] == f"prod/web@{builds[48213].digest}"
    assert gated["PromotionPolicy/web-chart"]["target"] == f"prod/helm/web@{charts['1.10.0'].digest}"
    assert all("soak waiting until" in a["reason"] for a in gated.values())
    assert gated["PromotionPolicy/web"]["tags"] == ["prod", "48213"]
    assert gated["PromotionPolicy/web-chart"]["tags"] == ["prod", "1.10.0"]
