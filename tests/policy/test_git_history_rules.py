"""gitRefs.imagesPerReference and gitRefs.limit (werf's keepPolicies) as the loader reads them and
as `reconcile validate` checks them, each problem with its file and line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from reconcile.policy import load_policies
from reconcile.policy.model import GitRefsLimit
from tests.policy.test_validate_rules import BASE, expect, retention

RULE = "- gitRefs: {{repo: ./src, branches: '.*', tagCommit: '^sha-(?P<commit>[0-9a-f]{{7,40}})$', {fields}}}"


def test_they_are_read_with_werfs_defaults(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "case.yaml").write_text(retention(
        RULE.format(fields="imagesPerReference: {in: 7d, operator: Or}, limit: {in: 168h}") + "\n"
        + RULE.format(fields="imagesPerReference: {last: 3}")))
    policy = load_policies(str(tmp_path)).retention_policies["r"]
    first, second = (rule.git_refs for rule in policy.keep)
    assert first is not None and second is not None
    assert first.images_per_reference == GitRefsLimit(last=1, within=timedelta(days=7), operator="Or")  # last: 1
    assert first.limit == GitRefsLimit(last=None, within=timedelta(hours=168), operator="And")  # no count limit
    assert second.images_per_reference == GitRefsLimit(last=3) and second.limit is None


def test_images_per_reference_and_commits_per_branch_exclude_each_other(tmp_path: Path) -> None:
    expect(tmp_path, retention(RULE.format(fields="commitsPerBranch: 2, imagesPerReference: {last: 2}")),
           "@:8: RetentionPolicy/r: /spec/keep/0/gitRefs/imagesPerReference: imagesPerReference counts images, "
           "commitsPerBranch counts commits: set one of them (drop commitsPerBranch to count images)")


def test_a_limit_operator_needs_last_and_in(tmp_path: Path) -> None:
    expect(tmp_path, retention(RULE.format(fields="limit: {last: 2, operator: Or}")),
           "@:8: RetentionPolicy/r: /spec/keep/0/gitRefs/limit/operator: operator combines last and in; set both "
           "or drop it")


def test_the_schema_checks_their_fields(tmp_path: Path) -> None:
    lines = "\n".join(str(p) for p in _problems(tmp_path, RULE.format(
        fields="imagesPerReference: {last: 0, in: soon, operator: Xor}, limit: {}")))
    for pointer in ("imagesPerReference/last", "imagesPerReference/in", "imagesPerReference/operator", "limit"):
        assert f"/spec/keep/0/gitRefs/{pointer}:" in lines, lines


def _problems(tmp_path: Path, keep: str) -> list[str]:
    from tests.policy.test_validate_rules import problems
    return problems(tmp_path, retention(keep))
