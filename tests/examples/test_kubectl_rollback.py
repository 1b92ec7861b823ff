"""examples/kubectl-rollback: CI pushes each build of main once as main-<run>-<sha> (and branch builds
alike); where it ran `kubectl set image`, reconcile deploys the newest build by digest; where someone
ran `kubectl rollout undo`, `reconcile rollback web` puts the previous digest back and holds the one
it undid; old builds are pruned, but never one a rollback could go back to."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.adapters.cluster.backends import FixtureBackend
from tests.adapters.cluster.scenarios import deployment, owned, set_image
from tests.adapters.registry.oci import OCI_CONFIG, OCI_LAYER, Built, Layout, push, put_tag
from tests.examples.harness import Endpoints, actions, invoke, localize, plan_json
from tests.kube import running

REPOSITORY = "shop/web"  # the example's stage and retention repository
RETENTION, DEPLOY = "RetentionPolicy/web-builds", "DeployPolicy/web"


def tag(n: int, branch: str = "main") -> str:
    """CI's unique tag: <branch>-<run number>-<short sha>."""
    return f"{branch}-{n}-{hashlib.sha1(f'{branch} {n}'.encode()).hexdigest()[:7]}"


class Builds:
    """Distinct images sharing one layer: the first pushed with skopeo, the rest as a config blob
    and a manifest PUT, so many builds cost little."""

    def __init__(self, layout: Layout, base: str, host: str) -> None:
        self.layout, self.base, self.host = layout, base, host
        self.layer = layout.blob(b"the web application", OCI_LAYER)
        self.images: dict[str, Built] = {}

    def push(self, name: str, created: str) -> Built:
        image = self.images[name] = self.layout.image(created=created, layers=[self.layer], layer_sizes=())
        if len(self.images) == 1:
            self.layout.tag(image, name)
            push(self.layout, name, self.host, REPOSITORY)
            return image
        config = json.loads(image.data)["config"]
        assert config["mediaType"] == OCI_CONFIG
        started = requests.post(f"{self.base}/v2/{REPOSITORY}/blobs/uploads/", timeout=30)
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        blob = (self.layout.path / "blobs" / "sha256" / config["digest"][7:]).read_bytes()
        done = requests.put(location if location.startswith("http") else self.base + location, data=blob,
                            params={"digest": config["digest"]}, headers={"Content-Type": "application/octet-stream"},
                            timeout=30)
        assert done.status_code == 201, done.text
        put_tag(self.base, REPOSITORY, name, image)
        return image

    def main(self, *runs: int) -> None:
        for n in runs:
            self.push(tag(n), f"2026-11-{n:02d}T12:00:00Z")

    def digest(self, n: int) -> str:
        return self.images[tag(n)].digest

    def tags(self) -> set[str]:
        listed = requests.get(f"{self.base}/v2/{REPOSITORY}/tags/list", timeout=30)
        assert listed.status_code == 200, listed.text
        return set(listed.json().get("tags") or ())


def retention(plan: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(pruned tag -> cause, kept tag -> cause) of the example's RetentionPolicy."""
    pruned = {t: a["cause"] for a in actions(plan, "prune", RETENTION) for t in a["tags"]}
    kept = {a["target"].rsplit(":", 1)[1]: a["cause"] for a in actions(plan, "keep", RETENTION)}
    return pruned, kept


def test_deploys_the_newest_build_by_digest_rolls_back_and_never_prunes_a_rollback_target(
        tmp_path: Path, registries: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    local = registries("registry")
    builds = Builds(Layout(tmp_path / "layout"), local["registry"].url, local["registry"].host)
    builds.main(3, 4, 5, 6, 7, 8, 9, 10)
    builds.push(tag(4, "fix-login"), "2026-11-04T15:30:00Z")  # a branch build weeks old
    fresh = tag(11, "fix-login")
    builds.push(fresh, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))  # and one pushed just now
    d = builds.digest
    pinned = f"{builds.host}/{REPOSITORY}@"

    with running() as api:
        admin = FixtureBackend(api, tmp_path)  # writes tmp_path/admin.kubeconfig
        admin.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}})
        # the pipeline's history: `kubectl set image` by tag (revision 1), then build 5 by digest (revision 2)
        web = deployment("web", "web", {"web": f"{builds.host}/{REPOSITORY}:{tag(4)}"}, replicas=1, deadline=5)
        web["spec"]["revisionHistoryLimit"] = 2  # `rollout undo` can go back two revisions; deployedHistory five
        admin.create(web)
        set_image(admin, admin.read("apps/v1", "Deployment", "web", "web"), "web", pinned + d(5))
        admin.wait("revision 2", lambda: len(owned(admin, "apps/v1", "ReplicaSet", "web", "web")) == 2)

        def image() -> str:
            return str(admin.read("apps/v1", "Deployment", "web", "web")["spec"]["template"]["spec"]["containers"][0][
                "image"])

        root = localize("kubectl-rollback", tmp_path / "repo",
                        Endpoints(local, clusters={"prod": tmp_path / "admin.kubeconfig"}), monkeypatch)
        db = tmp_path / "audit.db"
        common = ["--repo", str(root), "--audit-db", str(db)]
        validated = invoke("validate", "--repo", str(root))
        assert validated.exit_code == 0 and "warning" not in validated.output.lower(), validated.output

        # 1. the plan: main-10 (numeric: after main-9) deployed by digest; old builds pruned, the ones
        #    a rollback could need kept, each with its cause
        plan = plan_json(root, db, "--detailed-exitcode")
        assert not actions(plan, "blocked"), actions(plan, "blocked")
        (deploy,) = actions(plan, "deploy", DEPLOY)
        assert (deploy["digestBefore"], deploy["digestAfter"]) == (d(5), d(10))
        assert deploy["target"] == "prod/web/Deployment/web" and deploy["cause"] == "out-of-date"
        pruned, kept = retention(plan)
        assert pruned == {tag(3): "expired", tag(4, "fix-login"): "expired"}
        assert kept == {tag(4): "rollback-history",  # an old ReplicaSet runs it, by tag
                        tag(5): "in-use",  # what runs now
                        **{tag(n): "kept-by-rule" for n in range(6, 11)}, fresh: "kept-by-rule"}

        # 2. the scheduled run: deployed (the Deployment pinned by digest, never a tag), pruned
        ran = invoke("run", *common)
        assert ran.exit_code == 0, ran.output
        assert image() == pinned + d(10)
        assert builds.tags() == set(kept)
        assert invoke("plan", *common, "--detailed-exitcode").exit_code == 0  # converged

        # 3. `kubectl rollout undo deployment/web`, the reconcile way: the previous digest, by digest
        rolled = invoke("rollback", *common, "web", "--yes")
        assert rolled.exit_code == 0, rolled.output
        assert image() == pinned + d(5)
        assert f"rolled web back from {tag(10)} ({d(10)}) to {tag(5)} ({d(5)})" in rolled.stderr
        assert "note: Deployment/web: revision " in rolled.stderr and f"ran {d(5)[:19]}" in rolled.stderr

        # 4. the next scheduled run leaves it there: main-10 is held; nothing is pruned
        held = plan_json(root, db, "--detailed-exitcode")
        (blocked,) = actions(held, "blocked", DEPLOY)
        assert blocked["cause"] == "held" and blocked["digestAfter"] == d(10)
        assert f"held: {d(10)[:19]} was rolled back by hand" in blocked["reason"]
        assert not actions(held, "deploy") and not actions(held, "prune")
        assert invoke("run", *common).exit_code == 0
        assert image() == pinned + d(5)
        twice = invoke("rollback", *common, "web", "--yes")  # unlike `rollout undo` twice: main-10 stays undone
        assert twice.exit_code == 1 and f"{d(10)[:19]} is held: a rollback undid it" in twice.stderr
        assert image() == pinned + d(5)

        # 5. five more builds (the fix among them): the newest rolls forward, main-6..9 are pruned; the
        #    build rolled back from and the one rolled back to stay, each still a rollback target
        builds.main(11, 12, 13, 14, 15)
        later = plan_json(root, db, "--detailed-exitcode")
        (deploy,) = actions(later, "deploy", DEPLOY)
        assert (deploy["digestBefore"], deploy["digestAfter"]) == (d(5), d(15))
        pruned, kept = retention(later)
        assert pruned == {tag(n): "expired" for n in (6, 7, 8, 9)}
        assert {t: kept[t] for t in (tag(4), tag(5), tag(10))} == {
            tag(4): "rollback-history", tag(5): "in-use", tag(10): "rollback-history"}
        assert invoke("run", *common).exit_code == 0
        assert image() == pinned + d(15)
        assert builds.tags() == {tag(4), tag(5), tag(10), *(tag(n) for n in range(11, 16)), fresh}

        # 6. a build whose rollout fails is undone by the run itself (autoRollback) and held; the run
        #    prunes main-11 (past the last five) and main-4, whose ReplicaSet the Deployment dropped
        builds.main(16)
        admin.rollout_outcome("web", "web", "fail", image=pinned + d(16))
        failed = invoke("run", *common)
        assert failed.exit_code == 1, failed.output
        assert image() == pinned + d(15)
        assert builds.tags() == {tag(5), tag(10), *(tag(n) for n in range(12, 17)), fresh}

        # 7. held, and every rollback target kept: main-5 by a ReplicaSet, main-10 (whose ReplicaSet is
        #    gone too) by the audit trail's deploy history alone
        after = plan_json(root, db, "--detailed-exitcode")
        (blocked,) = actions(after, "blocked", DEPLOY)
        assert blocked["cause"] == "held" and f"held: {d(16)[:19]} was rolled back automatically" in blocked["reason"]
        assert not actions(after, "prune") and not actions(after, "deploy")
        kept = retention(after)[1]
        assert (kept[tag(5)], kept[tag(10)]) == ("rollback-history", "deployed-history")
        again = invoke("rollback", *common, "web", "--yes")
        assert again.exit_code == 0, again.output
        assert image() == pinned + d(5)
        assert f"rolled web back from {tag(15)} ({d(15)}) to {tag(5)} ({d(5)})" in again.stderr
        admin.close()
