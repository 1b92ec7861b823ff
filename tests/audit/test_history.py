"""The deploy history retention protects: from the audit trail, newest first."""

from __future__ import annotations

from pathlib import Path

from reconcile.audit import AuditStore
from reconcile.audit.query import deploy_history

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
