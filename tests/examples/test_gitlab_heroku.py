"""examples/gitlab-heroku: GitLab CI pushes build-N; the newest goes by digest to
registry.heroku.com/demo-app/web and is released through the Platform API (a local fake)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconcile.audit import AuditStore
from tests.adapters.registry.oci import Layout, push
from tests.apply.test_heroku import TOKEN, FakeHeroku, fake_heroku  # noqa: F401 (a fixture)
from tests.examples.harness import Endpoints, actions, invoke, localize, plan_json


def test_newest_build_promoted_by_digest_then_released(tmp_path: Path, registries: Any,
                                                        fake_heroku: FakeHeroku,  # noqa: F811
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEROKU_API_KEY", TOKEN)
    local = registries("ci", "heroku")
    layout = Layout(tmp_path / "layout")
    builds = {n: layout.image(created=f"2026-11-0{n}T00:00:00Z") for n in (1, 2, 10)}
    for n, built in builds.items():
        layout.tag(built, f"build-{n}")
        push(layout, f"build-{n}", local["ci"].host, "example-group/demo-app")
    root = localize("gitlab-heroku", tmp_path / "repo", Endpoints(local, heroku_api=fake_heroku.url), monkeypatch)
    db = tmp_path / "audit.db"
    assert invoke("validate", "--repo", str(root)).exit_code == 0

    plan = plan_json(root, db, "--detailed-exitcode")
    (promote,) = actions(plan, "promote")
    assert promote["digestAfter"] == builds[10].digest  # numeric order: build-10 is newer than build-2
    assert promote["target"].startswith("heroku/demo-app/web") and set(promote["tags"]) == {"latest", "10"}
    assert not actions(plan, "prune") and not actions(plan, "deploy")
    assert not [r for r in fake_heroku.requests if r["method"] != "GET"]  # a plan sends nothing that changes

    # at a terminal, what the plan spent: cached manifests (the JSON plan's run) cost a HEAD per tag
    shown = invoke("plan", "--repo", str(root), "--audit-db", str(db))
    assert "requests to registry ci: GET referrers 1, GET tags 1, HEAD manifest 3\n" in shown.stderr, shown.stderr

    assert invoke("apply", "--repo", str(root), "--audit-db", str(db), "--yes").exit_code == 0
    with AuditStore.open(db, read_only=True) as store:
        (applied,) = [r for r in store.runs() if r.mode == "apply"]
    assert applied.summary["requests.ci.HEAD manifest"] == 3 and "requests.ci.GET manifest" not in applied.summary
    (deploy,) = actions(plan_json(root, db), "deploy")
    assert deploy["digestAfter"] == builds[10].digest and deploy["target"] == "heroku:demo-app/web"
    assert invoke("apply", "--repo", str(root), "--audit-db", str(db), "--yes").exit_code == 0
    image_id = json.loads(builds[10].data)["config"]["digest"]
    assert fake_heroku.formation == {"web": image_id}
