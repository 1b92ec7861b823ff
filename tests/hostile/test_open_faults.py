"""A registry that cannot even be opened as configured: a `tls.caFile` that is missing, a directory
or unreadable blocks the policies using it with the reason (exit 1), sends nothing, and is no
traceback; the run is recorded blocked with that reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconcile.audit import AuditStore
from tests.hostile.server import hostile, reply, run_reconcile


@pytest.mark.parametrize(("make", "why"), [
    (lambda path: None, "does not exist"),
    (lambda path: path.mkdir(), "is a directory, not a PEM file"),
])
def test_an_unusable_ca_file_blocks_the_registry_and_sends_nothing(tmp_path: Path, make, why: str) -> None:  # type: ignore[no-untyped-def]
    ca = tmp_path / "ca.pem"
    make(ca)
    with hostile(lambda handler, request: reply(handler, 200, b"{}")) as server:
        root = tmp_path / "policies"
        root.mkdir()
        (root / "ci.yaml").write_text(f"""\
apiVersion: reconcile/v1
kind: Registry
metadata: {{name: ci}}
spec: {{url: "https://{server.host}", tls: {{caFile: "{ca}"}}}}
---
apiVersion: reconcile/v1
kind: RetentionPolicy
metadata: {{name: ci-cleanup}}
spec: {{registry: ci, repositories: ["team/web"], keep: [{{tags: '^v\\d+$'}}]}}
""")
        db = tmp_path / "audit.db"
        finished = run_reconcile(["run", "--repo", str(root), "--audit-db", str(db)],
                                 env={"RECONCILE_CACHE_DIR": str(tmp_path / "cache")})
        assert server.requests == []
    assert finished.exit_code == 1, finished.stderr
    assert f"tls.caFile {ca} {why}" in finished.stderr and "Traceback" not in finished.stderr
    with AuditStore.open(str(db), read_only=True) as store:
        (run,) = store.runs()
        assert run.outcome == "blocked"
        (reason,) = store.conn.execute("SELECT reason FROM actions WHERE kind = 'skip'").fetchone()
        assert f"tls.caFile {ca} {why}" in reason
