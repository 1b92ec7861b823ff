"""examples/werf-cleanup: werf's default keep policies over a real git history. CI pushed one image
per commit, tagged sha-<commit>; the plan keeps the commits of the git tag, the last ten of main,
the last two of every branch, a build younger than two hours and the image the cluster runs, and
prunes the rest by digest; apply leaves the registry holding exactly what the plan kept."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.adapters.cluster.backends import FixtureBackend
from tests.adapters.cluster.scenarios import deployment
from tests.adapters.registry.oci import OCI_CONFIG, Built, Layout, push, put_tag
from tests.examples.harness import Endpoints, actions, git, invoke, localize, plan_json
from tests.kube import running

SOURCE = "https://git.example.com/team/app.git"  # the gitRefs repo the example names
REPOSITORY = "team/app"


def _commit(source: Path, branch: str, n: int) -> list[str]:
    """``n`` commits on ``branch`` (checked out); their SHAs, oldest first."""
    if git(source, "symbolic-ref", "--short", "HEAD").strip() != branch:
        git(source, "checkout", "-q", branch)
    shas = []
    for _ in range(n):
        git(source, "commit", "-q", "--allow-empty", "-m", f"{branch} change")
        shas.append(git(source, "rev-parse", "HEAD").strip())
    return shas


def _history(source: Path) -> dict[str, list[str]]:
    """main with 12 commits and a release tag on its first; a live feature branch; an old branch
    off main's second commit; an experiment branch deleted after its builds."""
    source.mkdir()
    git(source, "init", "-q", "-b", "main")
    main = _commit(source, "main", 12)
    git(source, "tag", "-a", "v1.0.0", "-m", "first release", main[0])
    git(source, "branch", "feature/login", main[7])
    feature = _commit(source, "feature/login", 3)
    git(source, "branch", "feature/old", main[1])
    old = _commit(source, "feature/old", 4)
    git(source, "branch", "experiment", main[4])
    experiment = _commit(source, "experiment", 2)
    git(source, "checkout", "-q", "main")
    git(source, "branch", "-q", "-D", "experiment")  # gone: its commits are no git ref's any more
    return {"main": main, "feature": feature, "old": old, "experiment": experiment}


def _upload_blob(base: str, data: bytes, digest: str) -> None:
    started = requests.post(f"{base}/v2/{REPOSITORY}/blobs/uploads/", timeout=30)
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    location = location if location.startswith("http") else base + location
    done = requests.put(location, params={"digest": digest}, data=data,
                        headers={"Content-Type": "application/octet-stream"}, timeout=30)
    assert done.status_code == 201, done.text


def _push_builds(layout: Layout, base: str, host: str, builds: dict[str, str]) -> dict[str, Built]:
    """One image per tag (tag -> creation time), all sharing one layer: the first goes with skopeo,
    the rest as a config blob and a manifest PUT, so many distinct digests cost little."""
    shared = layout.blob(b"the application layer", "application/vnd.oci.image.layer.v1.tar")
    images: dict[str, Built] = {}
    for tag, created in builds.items():
        image = images[tag] = layout.image(created=created, layers=[shared], layer_sizes=())
        if len(images) == 1:
            layout.tag(image, tag)
            push(layout, tag, host, REPOSITORY)
            continue
        config = json.loads(image.data)["config"]
        assert config["mediaType"] == OCI_CONFIG
        _upload_blob(base, (layout.path / "blobs" / "sha256" / config["digest"].split(":")[1]).read_bytes(),
                     config["digest"])
        put_tag(base, REPOSITORY, tag, image)
    return images


def _tags(base: str) -> set[str]:
    listed = requests.get(f"{base}/v2/{REPOSITORY}/tags/list", timeout=30)
    assert listed.status_code == 200, listed.text
    return set(listed.json().get("tags") or ())


def test_werf_defaults_keep_git_refs_and_what_runs(tmp_path: Path, registries: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    history = _history(tmp_path / "app")
    tag = {sha: f"sha-{sha[:8]}" for shas in history.values() for sha in shas}  # CI_COMMIT_SHORT_SHA
    local = registries("ci")
    base, host = local["ci"].url, local["ci"].host
    now = datetime.now(UTC)
    old = now - timedelta(days=30)
    created = {tag[sha]: (old + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
               for i, sha in enumerate(sha for shas in history.values() for sha in shas)}
    fresh = tag[history["experiment"][1]]
    created[fresh] = (now - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")  # built half an hour ago
    images = _push_builds(Layout(tmp_path / "layout"), base, host, created)
    main, feature, old_branch, experiment = (history[k] for k in ("main", "feature", "old", "experiment"))
    running_tag = tag[old_branch[0]]  # deep in a branch's history: no git rule keeps it

    with running() as api:
        admin = FixtureBackend(api, tmp_path)  # writes tmp_path/admin.kubeconfig
        admin.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app-production"}})
        admin.create(deployment("app-production", "app", {"app": f"{host}/{REPOSITORY}@{images[running_tag].digest}"},
                                replicas=1, deadline=5))
        endpoints = Endpoints(local, clusters={"production": tmp_path / "admin.kubeconfig"},
                              git={SOURCE: tmp_path / "app"})
        root = localize("werf-cleanup", tmp_path / "repo", endpoints, monkeypatch)
        db = tmp_path / "audit.db"
        validated = invoke("validate", "--repo", str(root))
        assert validated.exit_code == 0 and "warning" not in validated.output.lower(), validated.output

        plan = plan_json(root, db)
        assert not actions(plan, "blocked"), actions(plan, "blocked")
        pruned = {a["digestBefore"]: a for a in actions(plan, "prune", "RetentionPolicy/werf-cleanup")}
        kept = {a["target"].rsplit(":", 1)[1]: a for a in actions(plan, "keep", "RetentionPolicy/werf-cleanup")}

        # Pruned, by digest: main's 2nd commit (past its last ten, no tag on it), the feature branch's
        # and the old branch's commits past their last two, and the deleted branch's old build.
        gone = {tag[main[1]], tag[feature[0]], tag[old_branch[1]], tag[experiment[0]]}
        assert set(pruned) == {images[t].digest for t in gone}
        for t in gone:
            assert pruned[images[t].digest]["tags"] == [t] and pruned[images[t].digest]["cause"] == "expired"

        why = {t: (a["cause"], a["reason"].split(":", 1)[0]) for t, a in kept.items()}
        expected = {tag[main[0]]: ("git-ref", "keep[0]")}  # the commit v1.0.0 points at
        expected |= {tag[sha]: ("git-ref", "keep[1]") for sha in (*main[-2:], *feature[-2:], *old_branch[-2:])}
        expected |= {tag[sha]: ("git-ref", "keep[2]") for sha in main[2:10]}  # main's last ten, beyond two
        expected[fresh] = ("kept-by-rule", "keep[3]")  # keepImagesBuiltWithinLastNHours
        expected[running_tag] = ("in-use", "protected")  # werf's Kubernetes-based policy
        assert why == expected
        assert set(kept) | gone == set(created)

        applied = invoke("apply", "--repo", str(root), "--audit-db", str(db), "--yes")
        assert applied.exit_code == 0, applied.output
        assert _tags(base) == set(kept)
        for t in gone:
            assert requests.head(f"{base}/v2/{REPOSITORY}/manifests/{images[t].digest}", timeout=30,
                                 headers={"Accept": images[t].media_type}).status_code == 404, t
        survivor = requests.get(f"{base}/v2/{REPOSITORY}/manifests/{running_tag}", timeout=30,
                                headers={"Accept": images[running_tag].media_type})
        assert survivor.status_code == 200 and survivor.headers["Docker-Content-Digest"] == images[running_tag].digest

        again = plan_json(root, db)  # the next scheduled run: nothing left to prune
        admin.close()
    assert not actions(again, "prune") and not actions(again, "blocked")
