"""The one URL parser (reconcile.policy.urls) and the Registry limits' documented defaults."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from reconcile.policy.model import Limits
from reconcile.policy.urls import URLError, may_receive_credentials, parse_url, registry_url_problem

SCHEMA = Path(__file__).resolve().parents[3] / "schemas" / "registry.schema.json"


@pytest.mark.parametrize(("text", "reason"), [
    ("http://127.0.0.1:5000\\@127.0.0.1:6000", "backslash"),
    ("http://user:hunter2@127.0.0.1:5000", "user information"),
    ("https://hunter2@registry.example", "user information"),
    ("http://[::1", "unparsable"),
    ("http://[::1]x", "invalid host"),
    ("http://[fe80::1%25eth0]/", "zone"),
    ("http://127.1/", "dotted-quad"),
    ("http://0x7f.0.0.1/", "dotted-quad"),
    ("http://010.0.0.1/", "dotted-quad"),
    ("http://host:0/", "invalid port"),
    ("http://host:/", "invalid port"),
    ("http://host:99999/", "invalid port"),
    ("http://host:8O/", "invalid port"),
    ("ftp://host/", "not an http"),
    ("javascript:alert(1)", "not an http"),
    ("http://ho st/", "whitespace"),
    ("http://host/\nx", "control"),
    ("http://host/\x00", "control"),
    ("http://ex%41mple.com/", "invalid host name"),
    ("http://bücher.example/", "non-ASCII"),
    ("http:///path", "without a host"),
    ("", "empty"),
    ("http://host/" + "a" * 9000, "longer than"),
])
def test_refused_urls_say_why_without_quoting_the_url(text: str, reason: str) -> None:
    with pytest.raises(URLError) as caught:
        parse_url(text)
    assert reason in str(caught.value)
    assert "hunter2" not in str(caught.value) and "127.0.0.1" not in str(caught.value)


@pytest.mark.parametrize(("text", "origin", "shown"), [
    ("https://Registry.Example.COM./v2/", ("https", "registry.example.com", 443), "https://registry.example.com/v2/"),
    ("https://registry.example.com:443", ("https", "registry.example.com", 443), "https://registry.example.com/"),
    ("HTTP://127.0.0.1:5000/v2/x?n=1", ("http", "127.0.0.1", 5000), "http://127.0.0.1:5000/v2/x?n=1"),
    ("http://[0:0::1]:5000/v2/", ("http", "::1", 5000), "http://[::1]:5000/v2/"),
    ("http://localhost/v2/#fragment", ("http", "localhost", 80), "http://localhost/v2/"),
])
def test_hosts_are_normalised(text: str, origin: tuple[str, str, int], shown: str) -> None:
    url = parse_url(text)
    assert url.origin == origin
    assert str(url) == shown


def test_relative_urls_resolve_against_their_base_and_are_checked_after() -> None:
    base = "http://127.0.0.1:5000/v2/web/tags/list?n=10"
    assert str(parse_url("/v2/web/tags/list?last=b", base)) == "http://127.0.0.1:5000/v2/web/tags/list?last=b"
    assert str(parse_url("//other.example:8443/x", base)) == "http://other.example:8443/x"
    with pytest.raises(URLError, match="backslash"):
        parse_url("/v2\\..\\x", base)
    with pytest.raises(URLError, match="user information"):
        parse_url("//user:pw@other/", base)


@pytest.mark.parametrize(("url", "allowed", "registry", "expected"), [
    ("http://127.0.0.1:5000/v2/", ["127.0.0.1:5000"], "http://127.0.0.1:5000", True),
    ("http://127.0.0.1:5001/v2/", ["127.0.0.1:5000"], "http://127.0.0.1:5000", False),
    ("http://127.0.0.1:5000\\@127.0.0.1:5001/v2/", ["127.0.0.1:5001"], "http://127.0.0.1:5001", False),
    ("https://REGISTRY.example.:443/v2/", ["registry.example"], "https://registry.example", True),
    ("https://registry.example:8443/v2/", ["registry.example"], "https://registry.example", False),
    ("http://registry.example/v2/", ["registry.example"], "https://registry.example", False),  # no downgrade
    ("https://auth.example/token", ["registry.example"], "https://registry.example", False),
    ("https://auth.example/token", ["registry.example", "auth.example"], "https://registry.example", True),
    ("http://[::1]:5000/v2/", ["[::1]:5000"], "http://[::1]:5000", True),
    ("http://[::1/v2/", ["[::1]:5000"], "http://[::1]:5000", False),
    ("https://u:p@registry.example/v2/", ["registry.example"], "https://registry.example", False),
])
def test_credentials_go_to_the_exact_normalised_host_and_port(url: str, allowed: list[str], registry: str,
                                                              expected: bool) -> None:
    assert may_receive_credentials(url, allowed, registry) is expected


@pytest.mark.parametrize(("url", "problem"), [
    ("https://registry.example", None),
    ("http://127.0.0.1:5000/", None),
    ("oci-layout:/srv/layouts", None),
    ("http://127.0.0.1:5000\\@127.0.0.1:6000", "not a valid registry url: a URL with a backslash"),
    ("https://user:password@registry.example", "not a valid registry url: a URL with user information"),
    ("https://registry.example/v2", "without a path, query or fragment"),
    ("https://registry.example?x=1", "without a path, query or fragment"),
])
def test_registry_url_problem(url: str, problem: str | None) -> None:
    found = registry_url_problem(url)
    assert found == problem if problem is None else found is not None and problem in found


def test_the_schema_documents_every_limits_default() -> None:
    properties = json.loads(SCHEMA.read_text())["properties"]["spec"]["properties"]["limits"]["properties"]
    fields = {"manifestBytes": "manifest_bytes", "configBytes": "config_bytes", "listPageBytes": "list_page_bytes",
              "tokenBytes": "token_bytes", "errorBodyBytes": "error_body_bytes", "maxPages": "max_pages",
              "requestDeadline": "request_deadline", "blobDeadline": "blob_deadline",
              "phaseDeadline": "phase_deadline"}
    assert set(properties) == set(fields)
    for name, attribute in fields.items():
        default = getattr(Limits, attribute)
        if isinstance(default, timedelta):
            minutes, hours = default.total_seconds() / 60, default.total_seconds() / 3600
            shown = f"{hours:g}h" if hours >= 1 else f"{minutes:g}m"
            assert properties[name]["description"].endswith(f"default {shown}."), name
        else:
            assert properties[name]["default"] == default, name
