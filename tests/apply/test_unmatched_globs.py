"""A repositories glob that matches nothing (a typo) is a warning in plan, apply and run output and
in the audit trail, and with --strict (RECONCILE_STRICT) an error that prunes nothing for its
policy: a real registry, a git repo-of-record, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconcile.audit import AuditStore
from tests.apply.test_retention_end_to_end import images, invoke, tags  # noqa: F401 (images: a fixture)
from tests.conftest import RunningRegistry
from tests.repos import policy_repo

WARNING = ("RetentionPolicy/ci-cleanup: repositories 'tema-a/*' matches no repository in registry ci (a typo? "
           "nothing is pruned for it; --strict makes this an error)")
ERROR = "RetentionPolicy/ci-cleanup: repositories 'tema-a/*' matches no repository in registry ci"


@pytest.fixture
def common(tmp_path: Path, plain_registry: RunningRegistry, repo: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A git repo-of-record whose RetentionPolicy names ``repo`` and a glob with a typo."""
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RECONCILE_STRICT", raising=False)
    root = tmp_path / "policies"
    policies = f"""\
apiVersion: reconcile/v1
kind: Registry
metadata: {{name: ci}}
spec: {{url: "{plain_registry.url}"}}
---
apiVersion: reconcile/v1
kind: RetentionPolicy
metadata: {{name: ci-cleanup}}
spec:
  registry: ci
  repositories: ["{repo}", "tema-a/*"]
  keep:
    - tags: '^v\\d+$'
"""
    policy_repo(root, {"ci.yaml": policies})
    return ["--repo", str(root), "--audit-db", str(tmp_path / "audit.db")]


def trail(common: list[str]) -> list[tuple[str, str, str | None, str | None]]:
    with AuditStore.open(common[-1], read_only=True) as store:
        return [(r["kind"], r["status"], r["reason"], r["cause"])
                for r in store.conn.execute("SELECT kind, status, reason, cause FROM actions ORDER BY seq")]


@pytest.mark.usefixtures("images")
def test_a_glob_that_matches_nothing_is_a_warning_in_plan_apply_and_the_trail(
        common: list[str], plain_registry: RunningRegistry, repo: str) -> None:
    planned = invoke("plan", *common, "--detailed-exitcode")
    assert planned.exit_code == 2, planned.output  # the other repository's prunes are pending
    assert f"warning: {WARNING}" in " ".join(planned.stdout.split())
    as_json = json.loads(invoke("plan", *common, "--format", "json").stdout)
    assert as_json["warnings"] == [WARNING]

    applied = invoke("apply", *common, "--yes")
    assert applied.exit_code == 0, applied.output
    assert f"warning: {WARNING}" in " ".join(applied.stderr.split())
    assert tags(plain_registry, repo) == ["v1", "v2"]  # the glob's typo does not stop the rest
    assert ("skip", "skipped", f"warning: {WARNING}", None) in trail(common)


@pytest.mark.usefixtures("images")
@pytest.mark.parametrize("how", ["flag", "env"])
def test_with_strict_it_is_an_error_and_nothing_is_pruned_for_the_policy(
        common: list[str], plain_registry: RunningRegistry, repo: str, how: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    strict = ["--strict"] if how == "flag" else []
    if how == "env":
        monkeypatch.setenv("RECONCILE_STRICT", "1")
    planned = invoke("plan", *common, *strict)
    assert planned.exit_code == 1, planned.output
    assert f"could not be decided: {ERROR}" in " ".join(planned.stdout.split())

    for command in ("apply", "run"):
        done = invoke(command, *common, *strict, *(["--yes"] if command == "apply" else []))
        assert done.exit_code == 1, done.output
        assert f"blocked: {ERROR}" in " ".join(done.stderr.split())
    assert tags(plain_registry, repo) == ["build-1", "build-2", "build-3", "v1", "v2"]  # nothing pruned
    blocked = [row for row in trail(common) if row[3] == "no-repository-matches"]
    assert len(blocked) == 2 and all(row[:2] == ("skip", "skipped") for row in blocked)
    assert blocked[0][2] == f"{ERROR}; nothing is pruned (--strict): correct the glob, or remove it"

    help_text = invoke("plan", "--help").stdout
    assert "--strict" in help_text and "RECONCILE_STRICT" in help_text
