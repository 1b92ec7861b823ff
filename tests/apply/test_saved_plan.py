"""`apply --plan FILE` does exactly the saved plan or nothing, end to end through the CLI on a real
registry: an edited file (even with its content hash recomputed), a prune that lost a tag, a gate
that closed since, a registry that grew past maxDeletions and a plan too old are all refused,
nothing is done and the refusal is in the audit trail; an honest saved plan applies."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result

from reconcile import reconciler
from reconcile.audit import AuditStore
from reconcile.cli import cli
from tests.adapters.registry.oci import Layout, push, put_tag
from tests.apply.test_retention_end_to_end import policies as retention
from tests.apply.test_retention_end_to_end import tags
from tests.conftest import RunningRegistry

KEPT = ["build-1", "build-2", "build-3", "v1", "v2"]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)  # a traceback fails the test


@pytest.fixture
def images(tmp_path: Path, plain_registry: RunningRegistry, repo: str,
           monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """v1 and v2 kept by the policy; build-1 and build-2 (one digest) and build-3 pruned."""
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    layout = Layout(tmp_path / "layout")
    built = {name: layout.image(created=f"2026-11-0{i}T00:00:00Z")
             for i, name in enumerate(["v1", "v2", "b12", "b3"], 1)}
    for tag, image in (("v1", "v1"), ("v2", "v2"), ("build-1", "b12"), ("build-3", "b3")):
        layout.tag(built[image], tag)
        push(layout, tag, plain_registry.host, repo)
    put_tag(plain_registry.url, repo, "build-2", built["b12"])
    return {name: b.digest for name, b in built.items()}


def saved_plan(tmp_path: Path, common: list[str]) -> tuple[Path, dict[str, Any]]:
    path = tmp_path / "plan.json"
    planned = invoke("plan", *common, "--out", str(path))
    assert planned.exit_code == 0, planned.output
    return path, json.loads(path.read_text())


def forge(path: Path, document: dict[str, Any], *, rehash: bool) -> None:
    """What someone with write access to the file can do: edit it and, knowing sha256, hash it again
    the way the schema says."""
    if rehash:
        rest = {k: v for k, v in document.items() if k != "contentHash"}
        canonical = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        document["contentHash"] = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    path.write_text(json.dumps(document, indent=2))


def kept_prunes(repo: str, images: dict[str, str]) -> list[dict[str, Any]]:
    return [{"policy": "RetentionPolicy/ci-cleanup", "kind": "prune", "target": f"ci/{repo}@{images[tag]}",
             "digestBefore": images[tag], "digestAfter": None, "reason": "no keep rule or protection applies",
             "tags": [tag], "mutates": True} for tag in ("v1", "v2")]


def assert_refused_and_audited(db: str, result: Result, *expected: str) -> str:
    assert result.exit_code == 1, result.output
    for text in expected:
        assert text in result.stderr, result.stderr
    assert "nothing was applied" in result.stderr
    with AuditStore.open(db, read_only=True) as store:
        (run,) = [r for r in store.runs() if r.mode == "apply"]
        assert run.outcome == "refused"
        rows = store.conn.execute("SELECT kind, status, target, reason FROM actions WHERE run_id = ?",
                                  (run.id,)).fetchall()
        assert [(r["kind"], r["status"]) for r in rows] == [("skip", "skipped")]  # no intent: nothing was tried
        assert rows[0]["target"].endswith("plan.json") and rows[0]["reason"].startswith("saved plan ")
        assert store.verify().ok
        return str(rows[0]["reason"])


# --- (g) the honest path --------------------------------------------------------------------------

def test_a_saved_plan_applies_when_planning_again_gives_the_same_actions(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, images: dict[str, str]) -> None:
    db = str(tmp_path / "audit.db")
    common = ["--repo", str(retention(tmp_path, plain_registry, repo)), "--audit-db", db]
    path, document = saved_plan(tmp_path, common)
    rest = {k: v for k, v in document.items() if k != "contentHash"}
    canonical = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert document["contentHash"] == "sha256:" + hashlib.sha256(canonical).hexdigest()

    applied = invoke("apply", *common, "--plan", str(path))
    assert applied.exit_code == 0, applied.output
    assert "applied 2 of 2 changes" in applied.stderr
    assert tags(plain_registry, repo) == ["v1", "v2"]
    with AuditStore.open(db, read_only=True) as store:
        assert store.runs()[0].outcome == "succeeded"


# --- (a), (b) forged plans ------------------------------------------------------------------------

def test_a_plan_edited_to_prune_kept_tags_is_refused(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, images: dict[str, str]) -> None:
    db = str(tmp_path / "audit.db")
    common = ["--repo", str(retention(tmp_path, plain_registry, repo)), "--audit-db", db]
    path, document = saved_plan(tmp_path, common)
    document["actions"] += kept_prunes(repo, images)
    forge(path, document, rehash=False)

    refused = invoke("apply", *common, "--plan", str(path))
    reason = assert_refused_and_audited(
        db, refused, "the plan file was edited after it was saved (content hash mismatch)",
        "it differs from planning again now first at actions (",
        f"- prune ci/{repo}@{images['v1']} (tags: v1)", f"- prune ci/{repo}@{images['v2']} (tags: v2)")
    assert "content hash mismatch" in reason
    assert tags(plain_registry, repo) == KEPT  # not even the honest prunes ran


def test_a_forged_plan_with_its_hash_recomputed_is_refused_by_planning_again(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, images: dict[str, str]) -> None:
    db = str(tmp_path / "audit.db")
    common = ["--repo", str(retention(tmp_path, plain_registry, repo)), "--audit-db", db]
    path, document = saved_plan(tmp_path, common)
    prunes = [a for a in document["actions"] if a["mutates"]]
    document["actions"] = prunes + kept_prunes(repo, images) + [a for a in document["actions"] if not a["mutates"]]
    document["summary"]["prune"] = 4
    forge(path, document, rehash=True)

    refused = invoke("apply", *common, "--plan", str(path))
    reason = assert_refused_and_audited(
        db, refused, "planning again now gives other actions than the saved plan",
        "the saved plan (-) and the plan made now (+) differ:",
        f"- prune ci/{repo}@{images['v1']} (tags: v1)", f"- prune ci/{repo}@{images['v2']} (tags: v2)")
    assert "content hash" not in refused.stderr  # the hash is intact; the actions are not
    assert "+ " not in refused.stderr.split("differ:", 1)[1]  # nothing the plan made now has is missing
    assert f"- prune ci/{repo}@{images['v1']} (tags: v1)" in reason
    assert tags(plain_registry, repo) == KEPT


# --- (c) a prune that lost a tag ------------------------------------------------------------------

def test_a_saved_prune_that_lost_a_tag_is_refused(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, images: dict[str, str]) -> None:
    db = str(tmp_path / "audit.db")
    common = ["--repo", str(retention(tmp_path, plain_registry, repo)), "--audit-db", db]
    path, document = saved_plan(tmp_path, common)
    (pair,) = [a for a in document["actions"] if a["tags"] == ["build-1", "build-2"]]
    pair["tags"], original = ["build-1"], document.get("contentHash")
    forge(path, document, rehash=True)

    refused = invoke("apply", *common, "--plan", str(path))
    assert_refused_and_audited(db, refused, f"- prune ci/{repo}@{images['b12']} (tags: build-1)\n"
                                            f"+ prune ci/{repo}@{images['b12']} (tags: build-1, build-2)")
    assert tags(plain_registry, repo) == KEPT

    document["contentHash"] = original
    forge(path, document, rehash=False)  # the same edit, hash left alone: named
    edited = invoke("apply", *common, "--plan", str(path))
    assert edited.exit_code == 1
    index = document["actions"].index(pair)
    assert f"first at actions[{index}].tags (1 in the file, 2 planned now);" in edited.stderr


# --- (e) the registry grew past maxDeletions --------------------------------------------------------

def test_a_saved_plan_is_refused_when_planning_again_is_blocked_by_max_deletions(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, images: dict[str, str]) -> None:
    db = str(tmp_path / "audit.db")
    common = ["--repo", str(retention(tmp_path, plain_registry, repo, max_deletions=3)), "--audit-db", db]
    path, _ = saved_plan(tmp_path, common)  # 3 tags to prune: within maxDeletions
    layout = Layout(tmp_path / "more")
    layout.tag(layout.image(created="2026-11-20T00:00:00Z"), "build-4")
    push(layout, "build-4", plain_registry.host, repo)

    refused = invoke("apply", *common, "--plan", str(path))
    assert_refused_and_audited(
        db, refused, "registries or clusters changed since the plan was saved",
        "+ blocked ci: would delete 4 tags, over maxDeletions 3; nothing is pruned",
        f"- prune ci/{repo}@{images['b12']} (tags: build-1, build-2)",
        f"- prune ci/{repo}@{images['b3']} (tags: build-3)")
    assert tags(plain_registry, repo) == [*KEPT[:3], "build-4", *KEPT[3:]]


# --- (f) too old ----------------------------------------------------------------------------------

def test_a_saved_plan_older_than_max_plan_age_is_refused(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, images: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    db = str(tmp_path / "audit.db")
    common = ["--repo", str(retention(tmp_path, plain_registry, repo)), "--audit-db", db]
    two_hours_ago = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with monkeypatch.context() as patched:
        patched.setattr(reconciler, "utc_now", lambda: two_hours_ago)
        path, document = saved_plan(tmp_path, common)
    assert document["observedAt"] == two_hours_ago

    refused = invoke("apply", *common, "--plan", str(path))
    assert_refused_and_audited(db, refused, "it is 2h", f" old (observed at {two_hours_ago}), over --max-plan-age 1h")
    assert tags(plain_registry, repo) == KEPT

    monkeypatch.setenv("RECONCILE_MAX_PLAN_AGE", "3h")  # a longer limit: the same plan applies
    applied = invoke("apply", *common, "--plan", str(path))
    assert applied.exit_code == 0, applied.output
    assert tags(plain_registry, repo) == ["v1", "v2"]


def test_max_plan_age_zero_means_no_limit_and_a_bad_duration_is_a_usage_error(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, images: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    db = str(tmp_path / "audit.db")
    common = ["--repo", str(retention(tmp_path, plain_registry, repo)), "--audit-db", db]
    long_ago = "2020-01-01T00:00:00.000000Z"
    with monkeypatch.context() as patched:
        patched.setattr(reconciler, "utc_now", lambda: long_ago)
        path, _ = saved_plan(tmp_path, common)
    bad = invoke("apply", *common, "--plan", str(path), "--max-plan-age", "1.5h")
    assert bad.exit_code == 2 and "fractions are not allowed" in bad.stderr
    applied = invoke("apply", *common, "--plan", str(path), "--max-plan-age", "0")
    assert applied.exit_code == 0, applied.output
    assert tags(plain_registry, repo) == ["v1", "v2"]


# --- files that are not plans ---------------------------------------------------------------------

@pytest.mark.parametrize(("content", "expected"), [
    ("not json", "it is not JSON: "),
    ("[1, 2]", "it is not a reconcile plan (a JSON object with formatVersion"),
    ('{"formatVersion": 2}', "not a reconcile plan of format version 1 (formatVersion 2)"),
    ("[" * 100_000 + "]" * 100_000, "it nests deeper than 16 levels"),
    ('{"formatVersion": 1, "x": ' + "{" * 20 + "}" * 20 + "}", "it nests deeper than 16 levels"),
    ('{"formatVersion": 1, "repo": "p", "commit": null, "observedAt": "t", "fingerprint": "", "errors": [], '
     '"actions": []}', "it has no contentHash, so it cannot be checked for edits"),
    ('{"formatVersion": 1, "repo": "p", "commit": null, "observedAt": "t", "fingerprint": "", "errors": [], '
     '"actions": [{"policy": "p", "kind": "wipe", "target": "t", "digestBefore": null, "digestAfter": null, '
     '"reason": "", "tags": []}], "contentHash": "sha256:0"}', 'actions[0]: unknown action kind "wipe"'),
    ('{"formatVersion": 1, "repo": "p", "commit": null, "observedAt": "t", "fingerprint": "", "errors": [], '
     '"actions": [{"policy": "p", "kind": "keep", "target": "t", "digestBefore": null, "digestAfter": null, '
     '"reason": "", "tags": "v1"}], "contentHash": "sha256:0"}', "actions[0]: tags is not a list of strings"),
    ('{"formatVersion": 1, "repo": "p", "commit": null, "observedAt": "t", "fingerprint": "", "errors": [], '
     '"actions": [], "more": 1, "contentHash": "sha256:0"}', 'the plan has unknown field "more"'),
    ('{"formatVersion": 1, "repo": "p", "commit": null, "observedAt": "t", "fingerprint": "", "errors": [], '
     '"summary": {}, "hasChanges": false, "actions": [{"policy": "p", "kind": "keep", "target": "t", '
     '"digestBefore": "../../etc/passwd", "digestAfter": null, "reason": "", "tags": [], "mutates": false}], '
     '"contentHash": "sha256:' + "0" * 64 + '"}',
     "it does not follow the plan schema at actions[0].digestBefore: '../../etc/passwd' does not match"),
])
def test_a_file_that_is_not_a_saved_plan_is_refused_with_a_message(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, images: dict[str, str],
        content: str, expected: str) -> None:
    db = str(tmp_path / "audit.db")
    common = ["--repo", str(retention(tmp_path, plain_registry, repo)), "--audit-db", db]
    (tmp_path / "plan.json").write_text(content)
    refused = invoke("apply", *common, "--plan", str(tmp_path / "plan.json"))
    assert_refused_and_audited(db, refused, f"saved plan {tmp_path / 'plan.json'} refused: {expected}")
    assert tags(plain_registry, repo) == KEPT


# --- (d) a gate that closed since the plan was saved ------------------------------------------------

def promotion(tmp_path: Path, registry: RunningRegistry, repository: str, freeze_from: datetime) -> Path:
    root = tmp_path / "policies"
    root.mkdir()
    until = freeze_from + timedelta(hours=2)
    (root / "pipeline.yaml").write_text(f"""\
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
    - name: build
      registry: ci
      repository: "{repository}/build"
      track: {{tags: '^build-(?P<version>\\d+)$', order: numeric}}
    - name: prod
      from: build
      registry: ci
      repository: "{repository}/prod"
      tags: [prod, "{{version}}"]
      gates:
        freeze:
          - {{from: "{freeze_from.isoformat()}", until: "{until.isoformat()}", reason: year end}}
""")
    return root


def test_a_promotion_saved_before_a_freeze_window_is_refused_inside_it(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    layout = Layout(tmp_path / "release")
    built = layout.image(created="2026-11-01T00:00:00Z")
    layout.tag(built, "build-7")
    push(layout, "build-7", plain_registry.host, f"{repo}/build")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    db = str(tmp_path / "audit.db")
    common = ["--repo", str(promotion(tmp_path, plain_registry, repo, start)), "--audit-db", db]
    path, document = saved_plan(tmp_path, common)  # before the window: the promotion is planned
    assert [(a["kind"], a["tags"]) for a in document["actions"] if a["mutates"]] == [("promote", ["prod", "7"])]

    class InTheWindow(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> InTheWindow:  # type: ignore[override]
            return cls.fromtimestamp((start + timedelta(minutes=30)).timestamp(), tz)

    monkeypatch.setattr(reconciler, "datetime", InTheWindow)  # the planner's clock, inside the freeze
    refused = invoke("apply", *common, "--plan", str(path))
    target = f"ci/{repo}/prod@{built.digest}"
    assert_refused_and_audited(db, refused, "planning again now gives other actions than the saved plan",
                               f"- promote {target} (tags: prod, 7)\n+ blocked {target} (tags: prod, 7)",
                               "freeze waiting until")
    listed = requests.get(f"{plain_registry.url}/v2/{repo}/prod/tags/list", timeout=5)
    assert listed.status_code == 404  # nothing promoted
