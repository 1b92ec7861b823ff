"""reconcile as a library: ``reconcile.Reconciler`` plans, applies exactly the plan it is given or
nothing, explains, releases holds and reads the audit trail, with no click and no CLI, against the
quickstart's built-in sandbox (OCI layout registries, git repositories, no server)."""

from __future__ import annotations

import fcntl
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

import reconcile
from reconcile import Reconciler
from reconcile.audit.store import RunOutcome
from reconcile.quickstart.sandbox import Sandbox, build, prepare
from reconcile.reconciler import Busy, InvalidPolicies, NotConfirmed, PlanRefused, ReconcileError


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    now = datetime.now(UTC)
    prepare(tmp_path / "sandbox", force=False, now=now)
    return build(tmp_path / "sandbox", now)


def reconciler(sandbox: Sandbox, notices: list[str] | None = None) -> Reconciler:
    return Reconciler(str(sandbox.policies), audit_db=str(sandbox.audit_db),
                      notice=(notices.append if notices is not None else lambda _message: None))


def layout_tags(sandbox: Sandbox, repository: str) -> set[str]:
    import json

    index = json.loads((sandbox.registry / repository / "index.json").read_text())
    return {m.get("annotations", {}).get("org.opencontainers.image.ref.name") for m in index["manifests"]} - {None}


def test_the_library_api_is_the_documented_surface_and_loads_without_the_cli() -> None:
    assert reconcile.Reconciler is Reconciler
    for method in ("load", "plan", "apply", "run", "rollback", "release_hold", "explain", "audit"):
        assert callable(getattr(Reconciler, method)), method
    # (click itself may load: sqlite-utils imports it; the contract in pyproject keeps it out of reconcile's code)
    probe = ("import sys, reconcile; reconcile.Reconciler; "
             "print(any(m.startswith('reconcile.cli') for m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "False"


def test_plan_then_apply_that_plan_records_a_run(sandbox: Sandbox) -> None:
    notices: list[str] = []
    library = reconciler(sandbox, notices)
    plan = library.plan()
    prunes = [a for a in plan.changes if a.kind == "prune"]
    assert prunes and plan.commit == sandbox.policies_commit
    before = layout_tags(sandbox, "team-a/web")

    applied = library.apply(plan)

    assert applied.plan.changes == plan.changes and not applied.failed
    assert applied.outcome in (RunOutcome.SUCCEEDED, RunOutcome.BLOCKED)
    web = "ci/team-a/web"
    removed = {t for a in prunes if a.target.startswith(f"{web}@") for t in a.tags} | {
        a.target.rpartition(":")[2] for a in plan.changes if a.kind == "untag" and a.target.startswith(f"{web}:")}
    assert removed == before - layout_tags(sandbox, "team-a/web")
    assert any(n.startswith(f"audit: run {applied.run_id} ") for n in notices)  # the chain head, to anchor
    with library.audit() as trail:
        run = trail.run(applied.run_id)
        assert (run.mode, run.outcome) == ("apply", str(applied.outcome))
        assert trail.verify().ok
        recorded = trail.conn.execute("SELECT kind, target, cause FROM actions WHERE run_id = ?", (run.id,)).fetchall()
    blocked = {(a.target, str(a.cause)) for a in plan.actions if a.kind == "blocked"}
    assert blocked and blocked <= {(target, cause) for kind, target, cause in recorded if kind == "skip"}
    assert not [a for a in library.plan().changes if a.kind == "prune"]  # converged


def test_a_plan_with_an_added_deletion_is_refused_recorded_and_nothing_is_done(sandbox: Sandbox) -> None:
    library = reconciler(sandbox)
    plan = library.plan()
    kept = next(a for a in plan.actions if a.kind == "keep" and a.target.startswith("ci/team-a/web:"))
    forged = replace(plan, actions=(*plan.actions, replace(kept, kind="untag", reason="forged")))
    before = layout_tags(sandbox, "team-a/web")

    with pytest.raises(PlanRefused, match="planning again now gives other actions") as refused:
        library.apply(forged)

    assert f"+ keep {kept.target}" in refused.value.message or f"- untag {kept.target}" in refused.value.message
    assert layout_tags(sandbox, "team-a/web") == before
    with library.audit() as trail:
        (run,) = trail.runs()
        assert run.outcome == "refused"


def test_a_review_that_says_no_applies_nothing(sandbox: Sandbox) -> None:
    library, seen = reconciler(sandbox), []
    before = layout_tags(sandbox, "team-a/web")
    with pytest.raises(NotConfirmed):
        library.apply(review=lambda plan: seen.append(plan) or False)
    assert seen and seen[0].has_changes
    assert layout_tags(sandbox, "team-a/web") == before


def test_explain_release_hold_and_unknown_names(sandbox: Sandbox) -> None:
    library = reconciler(sandbox)
    explained = library.explain("RetentionPolicy/ci-cleanup")
    assert explained.actions and {a.policy for a in explained.actions} == {"RetentionPolicy/ci-cleanup"}
    assert library.explain("DeployPolicy/nope").unknown == (
        "there is no DeployPolicy named nope (known: prod-web, staging-web)")
    assert library.release_hold("prod-web") is None  # nothing held back yet
    with pytest.raises(ReconcileError, match="no DeployPolicy nope"):
        library.rollback("nope")


def test_a_run_gives_up_at_once_while_another_holds_the_lock(sandbox: Sandbox) -> None:
    library = reconciler(sandbox)
    with open(f"{sandbox.audit_db}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(Busy, match="another reconcile run holds"):
            library.run()


def test_invalid_policies_carry_every_problem_with_its_file(tmp_path: Path) -> None:
    (tmp_path / "registry.yaml").write_text("apiVersion: reconcile/v1\nkind: Registry\nmetadata: {name: ci}\n"
                                            "spec: {}\n")
    with pytest.raises(InvalidPolicies) as invalid:
        Reconciler(str(tmp_path), audit_db=str(tmp_path / "audit.db")).plan()
    assert invalid.value.problems and all(p.path.endswith("registry.yaml") and p.line for p in invalid.value.problems)
