"""The deploy history retention protects: from the audit trail, newest first."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconcile.audit import AuditStore
from reconcile.audit.query import HOLD_RELEASED, deploy_history, deploy_holds, removals

A, B, C = ("sha256:" + c * 64 for c in "abc")


def test_succeeded_deploys_and_rollbacks_newest_first_once_each(tmp_path: Path) -> None:
    with AuditStore.open(tmp_path / "a.db") as store:
        run = store.start_run("run")
        for digest in (A, B, A, C):
            run.append("deploy", "prod-eu/web/web", status="succeeded", policy="DeployPolicy/prod-web",
                       digest_after=digest)
        run.append("deploy", "prod-eu/web/web", status="failed", policy="DeployPolicy/prod-web", digest_after=B)
        run.append("rollback", "prod-eu/web/web", status="succeeded", policy="DeployPolicy/prod-web", digest_after=B)
        run.append("deploy", "staging/web/web", status="succeeded", policy="DeployPolicy/staging-web", digest_after=C)
        run.append("prune", "ci/web@x", status="succeeded", policy="RetentionPolicy/ci", digest_before=A)
        run.finish("succeeded")
        dry = store.start_run("apply", dry_run=True)
        dry.append("deploy", "prod-eu/web/web", status="succeeded", policy="DeployPolicy/prod-web", digest_after="x")
        dry.finish("succeeded")
        assert deploy_history(store) == {"prod-web": [B, C, A], "staging-web": [C]}


def test_what_a_deploy_replaced_follows_it_but_what_a_rollback_left_does_not(tmp_path: Path) -> None:
    with AuditStore.open(tmp_path / "a.db") as store:
        run = store.start_run("run")
        for kind, before, after in (("deploy", A, B), ("deploy", B, C), ("rollback", C, B)):
            run.append(kind, "prod-eu/web/web", status="succeeded", policy="DeployPolicy/prod-web",
                       digest_before=before, digest_after=after)
        run.finish("succeeded")
        assert deploy_history(store) == {"prod-web": [B, C, A]}


def _holds(tmp_path: Path, steps: list[tuple[str, str, str | None, str | None, str]]) -> dict[str, str]:
    with AuditStore.open(tmp_path / "h.db") as store:
        run = store.start_run("run")
        for kind, status, before, after, reason in steps:
            run.append(kind, "prod-eu/web/Deployment/web", status=status, policy="DeployPolicy/prod-web",
                       digest_before=before, digest_after=after, reason=reason)
        run.finish("succeeded")
        return {name: f"{digest[7:8]} {why.split(' at ')[0]}{' FAILED' if 'failed)' in why else ''}"
                for name, (digest, why) in deploy_holds(store).items()}


AUTO, HAND = "auto-rollback: failed: ProgressDeadlineExceeded", "manual rollback to " + A
HOLD_CASES = [
    ("a succeeded auto-rollback holds the digest rolled back from",
     [("rollback", "intent", C, B, AUTO), ("rollback", "succeeded", C, B, AUTO)],
     {"prod-web": "c was rolled back automatically after a failed rollout"}),
    ("a manual rollback holds too", [("rollback", "intent", B, A, HAND), ("rollback", "succeeded", B, A, HAND)],
     {"prod-web": "b was rolled back by hand"}),
    ("a rollback that failed still holds, and says so",
     [("rollback", "intent", C, B, AUTO), ("rollback", "failed", C, B, AUTO)],
     {"prod-web": "c was rolled back automatically after a failed rollout FAILED"}),
    ("a rollback that never reported back (a crash) holds", [("rollback", "intent", B, A, HAND)],
     {"prod-web": "b was rolled back by hand"}),
    ("release-hold ends it", [("rollback", "intent", B, A, HAND), ("rollback", "succeeded", B, A, HAND),
                              ("skip", "skipped", B, None, f"{HOLD_RELEASED}: {B} may be deployed again")], {}),
    ("a newer candidate deployed ends it", [("rollback", "intent", B, A, HAND), ("rollback", "succeeded", B, A, HAND),
                                            ("deploy", "succeeded", A, C, "")], {}),
    ("a deploy of the held digest itself does not end it",
     [("rollback", "intent", B, A, HAND), ("deploy", "succeeded", A, B, "")],
     {"prod-web": "b was rolled back by hand"}),
    ("a failed deploy ends nothing", [("rollback", "intent", B, A, HAND), ("deploy", "failed", A, C, "")],
     {"prod-web": "b was rolled back by hand"}),
    ("a rollback that changed nothing holds nothing", [("rollback", "intent", A, A, HAND)], {}),
]


@pytest.mark.parametrize(("steps", "expected"), [c[1:] for c in HOLD_CASES], ids=[c[0] for c in HOLD_CASES])
def test_deploy_holds(tmp_path: Path, steps: list, expected: dict[str, str]) -> None:
    assert _holds(tmp_path, steps) == expected


def test_removals_are_the_succeeded_prunes_and_untags_of_a_tag_or_digest(tmp_path: Path) -> None:
    with AuditStore.open(tmp_path / "a.db") as store:
        run = store.start_run("apply", repo_commit="c" * 40, actor="cronjob")
        run.append("prune", f"ci/web@{A}", status="succeeded", digest_before=A, tags=("build-1", "build-10"))
        run.append("prune", f"ci/web@{B}", status="failed", digest_before=B, tags=("build-10",))
        run.append("prune", f"ci/api@{B}", status="intent", digest_before=B, tags=("build-10",))
        run.append("untag", "ci/web:build-10", status="succeeded", digest_before=C)  # no tags recorded: by target
        run.append("promote", f"prod/web@{C}", status="succeeded", digest_after=C, tags=("build-10",))
        run.append("prune", f"ci/web@{C}", status="succeeded", digest_before=C, tags=("build-100",))
        run.finish("succeeded")
        dry = store.start_run("apply", dry_run=True)
        dry.append("prune", f"ci/web@{B}", status="succeeded", digest_before=B, tags=("build-10",))
        dry.finish("succeeded")

        def found(**which: str) -> list[tuple[str, str, str]]:
            return [(r["kind"], r["target"], r["run_commit"]) for r in removals(store, **which)]

        assert found(tag="build-10") == [("prune", f"ci/web@{A}", "c" * 40), ("untag", "ci/web:build-10", "c" * 40)]
        assert found(tag="build-1") == [("prune", f"ci/web@{A}", "c" * 40)]
        assert found(tag="build-*") == []  # a tag is no pattern
        assert found(digest=C) == [("untag", "ci/web:build-10", "c" * 40), ("prune", f"ci/web@{C}", "c" * 40)]
        assert found(digest=B) == []
        assert {r["run_actor"] for r in removals(store, digest=A)} == {"cronjob"}
        assert removals(store) == []
