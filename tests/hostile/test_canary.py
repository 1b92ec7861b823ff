"""Redaction at the boundary, end to end: every command runs with a canary password against a
registry (real docker-registry with htpasswd, behind a proxy that echoes the credentials back in
error bodies and headers), and no form of the canary is anywhere afterwards: not in any output,
the audit DB, its WAL, a saved plan, the cache, or a log."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from tests.adapters.registry.faults import FaultProxy
from tests.adapters.registry.oci import Layout, push
from tests.conftest import RunningRegistry


def test_no_command_leaves_a_trace_of_the_password_anywhere(
        tmp_path: Path, auth_registry: RunningRegistry, repo: str, proxy_factory: Callable[..., FaultProxy]) -> None:
    password, user = auth_registry.password or "", auth_registry.username or ""
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    forms = {password, basic, quote(password, safe=""), f"{user}:{password}"}
    layout = Layout(tmp_path / "layout")
    # A registry may echo the secret anywhere it controls, a tag name included (this one is pruned).
    for day, tag in enumerate(["v1", "build-1", "build-2", password], 1):
        layout.tag(layout.image(created=f"2026-11-0{day}T00:00:00Z"), tag)
        push(layout, tag, auth_registry.host, repo, creds=auth_registry.creds)
    proxy = proxy_factory(auth_registry.url)
    echo = json.dumps({"errors": [{"code": "UNAVAILABLE", "message": f"bad credentials {user}:{password}",
                                   "detail": {"Authorization": f"Basic {basic}", "pw": quote(password, safe="")}}]})
    # Echoed in error bodies (retried, then answered) and in a header, on reads and on a delete.
    proxy.inject(r"/tags/list", "status", status=503, body=echo.encode(), times=1,
                 headers={"X-Echo": f"Basic {basic}", "Retry-After": "0"})
    proxy.inject(r"/manifests/", "status", method="HEAD", status=500, body=echo.encode(), times=1)
    proxy.inject(r"/manifests/sha256:", "status", method="DELETE", status=500, body=echo.encode(), times=1)

    root = tmp_path / "policies"
    root.mkdir()
    (root / "ci.yaml").write_text(f"""\
apiVersion: reconcile/v1
kind: Registry
metadata: {{name: ci}}
spec:
  url: "{proxy.url}"
  credentials: {{username: {user}, password: {{env: CANARY_PASSWORD}}}}
---
apiVersion: reconcile/v1
kind: RetentionPolicy
metadata: {{name: ci-cleanup}}
spec: {{registry: ci, repositories: ["{repo}"], keep: [{{tags: '^v\\d+$'}}]}}
""")
    db, cache, plan = tmp_path / "audit.db", tmp_path / "cache", tmp_path / "plan.json"
    env = {**os.environ, "CANARY_PASSWORD": password, "RECONCILE_CACHE_DIR": str(cache)}
    common = ["--repo", str(root), "--audit-db", str(db)]
    commands = [
        ["validate", "--repo", str(root)], ["plan", *common], ["plan", *common, "--format", "json", "--out", str(plan)],
        ["plan", *common, "--format", "markdown", "--record"], ["apply", *common, "--yes"],
        ["apply", *common, "--plan", str(plan)], ["run", *common], ["explain", "build-1", *common],
        ["explain", "RetentionPolicy/ci-cleanup", *common], ["audit", "list", "--audit-db", str(db)],
        ["audit", "runs", "--audit-db", str(db)], ["audit", "export", "--audit-db", str(db)],
        ["audit", "export", "--format", "csv", "--audit-db", str(db)], ["audit", "verify", "--audit-db", str(db)],
    ]
    outputs = []
    for args in commands:
        done = subprocess.run([sys.executable, "-m", "reconcile", *args], capture_output=True, text=True, env=env,
                              timeout=120)
        assert done.returncode in (0, 1, 2), (args, done.stderr)
        assert "Traceback" not in done.stderr, (args, done.stderr)
        outputs.append((" ".join(args[:2]), done.stdout + done.stderr))
    run_id = json.loads(subprocess.run([sys.executable, "-m", "reconcile", "audit", "export", "--audit-db", str(db)],
                                       capture_output=True, text=True, env=env).stdout)["runs"][0]["id"]
    shown = subprocess.run([sys.executable, "-m", "reconcile", "audit", "show", run_id, "--audit-db", str(db)],
                           capture_output=True, text=True, env=env)
    outputs.append(("audit show", shown.stdout + shown.stderr))
    assert any("Authorization" in r.headers for r in proxy.requests)  # the credentials were used, and echoed back
    assert any("failed: prune" in text for _, text in outputs)  # the echoing DELETE failed, and was reported
    assert any("***" in text for _, text in outputs)  # the tag named like the password: shown masked

    for name, text in outputs:
        for form in forms:
            assert form not in text, f"{name} printed the password ({form[:3]}…)"
    files = [p for p in tmp_path.rglob("*") if p.is_file() and "layout" not in p.parts]
    assert any(p.name == "audit.db" for p in files) and plan in files
    for path in files:
        data = path.read_bytes()
        for form in forms:
            assert form.encode() not in data, f"{path.relative_to(tmp_path)} holds the password ({form[:3]}…)"
