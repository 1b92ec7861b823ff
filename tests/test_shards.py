"""Sharding on Indexed Jobs: `--shard K/N` (or JOB_COMPLETION_INDEX of RECONCILE_SHARDS) plans and
applies only the shard's repositories and pipelines, with its own audit trail; N shards together
plan exactly what one unsharded run plans, no repository in two of them, a pipeline in one."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconcile.audit import AuditStore
from reconcile.cli import cli
from reconcile.plan.actions import parse_target
from reconcile.policy.model import PromotionPolicy, Stage
from reconcile.policy.shards import Shard
from tests.adapters.registry.oci import Layout, push
from tests.conftest import RunningRegistry

SHARDS = 4
APPS = [f"app-{n}" for n in range(10)]


@pytest.fixture
def world(tmp_path: Path, plain_registry: RunningRegistry, repo: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Ten repositories of three tags each (v1 kept, build-1 and build-2 pruned) and a pipeline from
    app-0 to prod-web, in the real registry; the repo-of-record for them."""
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    for variable in ("RECONCILE_SHARD", "RECONCILE_SHARDS", "JOB_COMPLETION_INDEX"):
        monkeypatch.delenv(variable, raising=False)
    base = repo.split("/")[0]
    layout = Layout(tmp_path / "layout")
    for n, app in enumerate(APPS):
        for day, tag in enumerate(("v1", "build-1", "build-2"), 1):
            layout.tag(layout.image(created=f"2026-11-{day:02d}T0{n % 10}:00:00Z", arch=f"amd64-{n}-{tag}"), tag)
            push(layout, tag, plain_registry.host, f"{base}/{app}")
    root = tmp_path / "policies"
    root.mkdir()
    (root / "ci.yaml").write_text(f"""\
apiVersion: reconcile/v1
kind: Registry
metadata: {{name: ci}}
spec: {{url: "{plain_registry.url}"}}
---
apiVersion: reconcile/v1
kind: RetentionPolicy
metadata: {{name: ci-cleanup}}
spec: {{registry: ci, repositories: ["{base}/app-*"], keep: [{{tags: '^v\\d+$'}}]}}
---
apiVersion: reconcile/v1
kind: PromotionPolicy
metadata: {{name: web}}
spec:
  stages:
    - {{name: build, registry: ci, repository: "{base}/app-0", track: {{tags: '^v(?P<version>\\d+)$', order: numeric}}}}
    - {{name: prod, registry: ci, repository: "{base}/prod-web", from: build, tags: [prod, "{{version}}"]}}
""")
    return root


def actions(*args: str) -> list[dict[str, object]]:
    result = CliRunner().invoke(cli, ["plan", "--format", "json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["actions"]


def key(action: dict[str, object]) -> tuple[object, ...]:
    return action["policy"], action["kind"], action["target"], tuple(action["tags"])  # type: ignore[arg-type]


def test_the_shards_together_plan_what_one_run_plans(world: Path, tmp_path: Path) -> None:
    common = ["--repo", str(world), "--audit-db", str(tmp_path / "audit.db")]
    whole = actions(*common)
    assert {a["policy"] for a in whole} == {"RetentionPolicy/ci-cleanup", "PromotionPolicy/web"}
    shards = [actions(*common, "--shard", f"{k}/{SHARDS}") for k in range(SHARDS)]
    assert sorted(key(a) for shard in shards for a in shard) == sorted(key(a) for a in whole)
    where: dict[str, set[int]] = defaultdict(set)
    for k, shard in enumerate(shards):
        for action in shard:
            if action["policy"] == "RetentionPolicy/ci-cleanup":
                where[parse_target(str(action["target"]))[1]].add(k)
    assert len(where) == len(APPS) and all(len(found) == 1 for found in where.values())  # one shard each
    assert len({k for found in where.values() for k in found}) > 1  # and not all in one
    (pipeline,) = [k for k, shard in enumerate(shards) if any(a["policy"] == "PromotionPolicy/web" for a in shard)]
    first_stage = Stage("build", "ci", sorted(where)[0].rsplit("/", 1)[0] + "/app-0")
    assert Shard(pipeline, SHARDS).owns_promotion(PromotionPolicy("web", (first_stage,)))  # its first stage's shard


def test_an_indexed_job_runs_its_shard_into_its_own_trail(world: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "audit.db"
    monkeypatch.setenv("RECONCILE_SHARDS", str(SHARDS))
    for k in range(SHARDS):
        monkeypatch.setenv("JOB_COMPLETION_INDEX", str(k))
        ran = CliRunner().invoke(cli, ["run", "--repo", str(world), "--audit-db", str(db), "--lock", "none"])
        assert ran.exit_code == 0, ran.output
        assert (tmp_path / f"audit.shard-{k}-of-{SHARDS}.db").exists()
    assert not db.exists()  # each shard wrote only its own trail
    monkeypatch.delenv("RECONCILE_SHARDS")
    assert [a for a in actions("--repo", str(world), "--audit-db", str(db)) if a["mutates"]] == []  # all done
    pruned = 0
    for k in range(SHARDS):
        with AuditStore.open(str(tmp_path / f"audit.shard-{k}-of-{SHARDS}.db"), read_only=True) as store:
            assert store.verify().ok
            pruned += store.conn.execute("SELECT COUNT(*) FROM actions WHERE kind = 'prune' AND status = "
                                         "'succeeded'").fetchone()[0]
    assert pruned == 2 * len(APPS)


def test_a_shard_setting_is_checked() -> None:
    result = CliRunner().invoke(cli, ["plan", "--shard", "4/4", "--repo", "."])
    assert result.exit_code == 2 and "K must be 0 to N-1" in result.output


def test_a_shard_reads_history_from_every_trail_and_writes_its_own(tmp_path: Path) -> None:
    """Retention in one shard protects what a DeployPolicy of another shard deployed, and what was
    deployed before sharding: the deploy history is read from the other shards' trails and the
    unsharded one too (an unreadable one fails closed)."""
    from reconcile.reconciler.runs import history

    base, shard = str(tmp_path / "audit.db"), Shard(1, 3)
    own = shard.audit_db(base)
    assert own == str(tmp_path / "audit.shard-1-of-3.db")
    assert shard.other_audit_dbs(base) == [str(tmp_path / "audit.shard-0-of-3.db"),
                                           str(tmp_path / "audit.shard-2-of-3.db"), base]
    for path, digest in ((base, "sha256:" + "a" * 64), (str(tmp_path / "audit.shard-2-of-3.db"), "sha256:" + "b" * 64)):
        with AuditStore.open(path) as store:
            run = store.start_run("run")
            with run.mutation("deploy", "prod/web/Deployment/web", policy="DeployPolicy/prod-web",
                              digest_after=digest):
                pass
            run.finish("succeeded")
    deployed, _, _ = history(own, *shard.other_audit_dbs(base))
    # another shard's, then the one from before sharding
    assert deployed == {"prod-web": ["sha256:" + "b" * 64, "sha256:" + "a" * 64]}
    (tmp_path / "audit.shard-0-of-3.db").write_bytes(b"not a database " * 100)
    deployed, arrivals, _ = history(own, *shard.other_audit_dbs(base))
    assert deployed is None and "could not be read" in str(arrivals)


def test_audit_with_a_shard_reviews_that_shards_trail(world: Path, tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    ran = CliRunner().invoke(cli, ["run", "--repo", str(world), "--audit-db", str(db), "--shard", "1/4",
                                   "--lock", "none"])
    assert ran.exit_code == 0, ran.output
    runs = CliRunner().invoke(cli, ["audit", "runs", "--audit-db", str(db), "--shard", "1/4"])
    assert runs.exit_code == 0 and len(runs.stdout.strip().splitlines()) == 2, runs.output  # header and the run
    several = CliRunner().invoke(cli, ["audit", "verify", "--db", str(tmp_path)])
    assert several.exit_code == 0 and several.stdout.startswith("ok: "), several.output  # one trail in the directory
