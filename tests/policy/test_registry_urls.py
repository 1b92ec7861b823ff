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


PORTLESS = """apiVersion: reconcile/v1
kind: Registry
metadata: {{name: ci}}
spec:
  url: {url}
  credentials: {{username: ci-bot, password: {{env: CI_PASSWORD}}}}
  allowedHosts: {allowed}
"""


@pytest.mark.parametrize(("url", "allowed", "warning"), [
    ("https://registry.example.com:5000", '["registry.example.com"]',
     "/spec/allowedHosts/0: 'registry.example.com' matches port 443 only (the scheme's default), so credentials are "
     "withheld from registry.example.com:5000: write 'registry.example.com:5000'"),
    ("http://127.0.0.1:5000", '["other.example.com", "127.0.0.1"]',
     "/spec/allowedHosts/1: '127.0.0.1' matches port 80 only (the scheme's default), so credentials are withheld "
     "from 127.0.0.1:5000: write '127.0.0.1:5000'"),
])
def test_an_allowed_host_without_the_registrys_port_is_a_warning(tmp_path: Path, url: str, allowed: str,
                                                                 warning: str) -> None:
    (tmp_path / "registry.yaml").write_text(PORTLESS.format(url=url, allowed=allowed))
    result = validate_repo(str(tmp_path))
    assert result.ok  # the rule is unchanged (exact host:port): only the message is new
    assert [(p.line, p.severity, p.message) for p in result.problems] == [(7, "warning", warning)]


@pytest.mark.parametrize(("url", "allowed"), [
    ("https://registry.example.com:5000", '["registry.example.com:5000"]'),
    ("https://registry.example.com", '["registry.example.com"]'),
    ("https://registry.example.com", '["registry.example.com:443"]'),
])
def test_an_allowed_host_that_matches_is_no_warning(tmp_path: Path, url: str, allowed: str) -> None:
    (tmp_path / "registry.yaml").write_text(PORTLESS.format(url=url, allowed=allowed))
    assert not validate_repo(str(tmp_path)).problems
