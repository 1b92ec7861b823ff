"""`validate` refuses a Registry url the adapter would refuse (one parser, reconcile.policy.urls):
a backslash that would route credentials elsewhere, an inline user:password, a path; with file and
line. And a pull request changing a Registry's limits is shown for review like any connection field."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconcile.policy import validate_repo
from reconcile.policy.model import (
    ConnectionChange,  # noqa: F401 (the type described_changes reads)
    Limits,
    Registry,
)

DOCUMENT = """apiVersion: reconcile/v1
kind: Registry
metadata: {{name: ci}}
spec: {{url: '{url}'}}
"""


@pytest.mark.parametrize(("url", "why"), [
    ("http://127.0.0.1:5001\\@127.0.0.1:5002", "not a valid registry url"),
    ("https://ci-bot:hunter2@registry.example.com", "not a valid registry url"),
    ("https://registry.example.com/v2", "without a path, query or fragment"),
])
def test_validate_refuses_a_registry_url_the_adapter_would_refuse(tmp_path: Path, url: str, why: str) -> None:
    (tmp_path / "registry.yaml").write_text(DOCUMENT.format(url=url))
    problems = validate_repo(str(tmp_path)).problems
    assert [p.line for p in problems if why in p.message] == [4], problems
    assert all("hunter2" not in str(p) for p in problems)


def test_a_sound_registry_url_is_valid(tmp_path: Path) -> None:
    (tmp_path / "registry.yaml").write_text(DOCUMENT.format(url="https://registry.example.com:8443"))
    assert not validate_repo(str(tmp_path)).problems


def test_credentials_go_where_the_one_parser_says(tmp_path: Path) -> None:
    registry = Registry("ci", "https://registry.example.com", None, ("registry.example.com",))
    assert registry.may_receive_credentials("https://registry.example.com/v2/")
    assert not registry.may_receive_credentials("http://registry.example.com/v2/")  # https's, not to plain http
    assert not registry.may_receive_credentials("https://registry.example.com:8443/v2/")
    assert not registry.may_receive_credentials("https://registry.example.com\\@evil.example/v2/")


def test_a_changed_limit_is_a_connection_change_to_review() -> None:
    from reconcile.policy.trust import _differences  # the labels of every Registry field

    before = Registry("ci", "https://r.example.com", None, ("r.example.com",))
    after = Registry("ci", "https://r.example.com", None, ("r.example.com",), limits=Limits(max_pages=5))
    assert any(line.startswith("limits ") for line in _differences(before, after))
