"""Hostile registries: answers that never end, trickle, loop, lie about names and URLs, or try to
collect credentials. Every case ends promptly with one clear error (or a warning and the rest of
the run), never a traceback, and the huge ones stay far below 300 MB of memory."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import subprocess
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from reconcile.adapters.registry import RegistryError, RetryPolicy, open_registry
from reconcile.adapters.registry.distribution import DistributionClient
from reconcile.adapters.registry.transport import retry_after
from reconcile.policy.model import Credentials, Limits, Registry
from reconcile.policy.secrets import SecretRef, SecretResolver
from tests.hostile.server import (
    Finished,
    HostileServer,
    Request,
    Route,
    endless,
    hostile,
    reply,
    routes,
    run_reconcile,
    trickle,
    trickle_headers,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
JSON = {"Content-Type": "application/json"}
PASSWORD = "hunter2-registry-password"
RSS_MB = 300
Handler = BaseHTTPRequestHandler


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


CONFIG = json.dumps({"created": "2026-11-01T00:00:00Z", "architecture": "amd64", "os": "linux",
                     "config": {}}).encode()
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [],
                       "config": {"mediaType": OCI_CONFIG, "digest": digest(CONFIG), "size": len(CONFIG)}}).encode()
MANIFEST_HEADERS = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": digest(MANIFEST)}


# -- a registry that is sound except where a test says otherwise -------------------------------------
def _tags(tags: list[object]) -> Route:
    return lambda h, r, m: reply(h, 200, json.dumps({"name": "team/web", "tags": tags}).encode(), JSON)


def _manifest(h: Handler, r: Request, m: object) -> None:
    reply(h, 200, MANIFEST, MANIFEST_HEADERS)


def _config(h: Handler, r: Request, m: object) -> None:
    reply(h, 200, CONFIG, {"Content-Type": "application/octet-stream"})


def registry_rows(**overrides: Route) -> list[tuple[str, str, Route]]:
    """``/v2/``, one repository team/web with the tag v1, its manifest and config; a row named in
    ``overrides`` (``tags``, ``manifest``, ``catalog``, ``ping``) replaced."""
    rows: dict[str, tuple[str, str, Route]] = {
        "ping": ("GET", r"/v2/", lambda h, r, m: reply(h, 200, b"{}", JSON)),
        "catalog": ("GET", r"/v2/_catalog(\?.*)?", lambda h, r, m: reply(
            h, 200, json.dumps({"repositories": ["team/web"]}).encode(), JSON)),
        "tags": ("GET", r"/v2/team/web/tags/list(\?.*)?", _tags(["v1"])),
        "head": ("HEAD", r"/v2/team/web/manifests/[^/]+", _manifest),
        "manifest": ("GET", r"/v2/team/web/manifests/[^/]+", _manifest),
        "config": ("GET", rf"/v2/team/web/blobs/{digest(CONFIG)}", _config),
    }
    for name, route in overrides.items():
        rows[name] = (rows[name][0], rows[name][1], route)
    return list(rows.values())


@pytest.fixture
def server() -> Iterator[HostileServer]:
    """A server whose answer each test sets (``server.answer = routes(...)``)."""
    with hostile(routes(registry_rows())) as running:
        yield running


def repo_of_record(tmp_path: Path, url: str, *, spec: str = "", repositories: str = '["team/web"]') -> Path:
    root = tmp_path / "policies"
    root.mkdir()
    (root / "ci.yaml").write_text(f"""\
apiVersion: reconcile/v1
kind: Registry
metadata: {{name: ci}}
spec:
  url: '{url}'
{spec}
---
apiVersion: reconcile/v1
kind: RetentionPolicy
metadata: {{name: ci-cleanup}}
spec:
  registry: ci
  repositories: {repositories}
  keep:
    - tags: '^v\\d+$'
""")
    return root


def plan(tmp_path: Path, root: Path, *, timeout: float = 120) -> Finished:
    return run_reconcile(["plan", "--repo", str(root), "--format", "json"], cwd=tmp_path, timeout=timeout,
                         env={"RECONCILE_CACHE_DIR": str(tmp_path / "cache"), "CI_PASSWORD": PASSWORD,
                              "NO_COLOR": "1", "COLUMNS": "400"})


def output(finished: Finished) -> str:
    return finished.stdout + finished.stderr


def assert_clean(finished: Finished) -> None:
    text = output(finished)
    assert "Traceback" not in text, text
    assert PASSWORD not in text


def client(url: str, *, limits: Limits | None = None, password: bool = False,
           allowed: tuple[str, ...] | None = None, tmp_path: Path) -> DistributionClient:
    host = url.split("://", 1)[1]
    registry = Registry(name="ci", url=url, allowed_hosts=allowed if allowed is not None else (host,),
                        credentials=Credentials(username="ci", password=SecretRef(source="env", env="CI_PASSWORD"))
                        if password else None, limits=limits)
    opened = open_registry(registry, SecretResolver(environ={"CI_PASSWORD": PASSWORD}, base_dir=tmp_path),
                           cache_dir=tmp_path / "cache", retry=RetryPolicy(attempts=2, base=0.01, budget=1))
    assert isinstance(opened, DistributionClient)
    return opened


# -- endless bodies ----------------------------------------------------------------------------------
def test_an_endless_tag_list_fails_at_the_page_limit(server: HostileServer, tmp_path: Path) -> None:
    server.answer = routes(registry_rows(tags=lambda h, r, m: endless(h, headers=JSON, chunk=b'"v1",' * 13000)))
    finished = plan(tmp_path, repo_of_record(tmp_path, server.url))
    assert finished.exit_code == 1, output(finished)
    assert ("registry ci, repository team/web: list tags: the list page is larger than the 16777216 bytes "
            "allowed (limits.listPageBytes)") in output(finished)
    assert finished.peak_rss_mb < RSS_MB, finished.peak_rss_mb
    assert_clean(finished)


def test_an_endless_token_response_fails_at_the_token_limit(server: HostileServer, tmp_path: Path) -> None:
    challenge = {"WWW-Authenticate": f'Bearer realm="{server.url}/token",service="ci"', **JSON}

    def guarded(h: Handler, r: Request, m: object) -> None:
        reply(h, 401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', challenge)

    server.answer = routes([("GET", r"/token(\?.*)?", lambda h, r, m: endless(h, headers=JSON)),
                            ("*", r"/v2/.*", guarded)])
    spec = "  credentials: {username: ci, password: {env: CI_PASSWORD}}"
    finished = plan(tmp_path, repo_of_record(tmp_path, server.url, spec=spec))
    assert finished.exit_code == 1, output(finished)
    assert (f"registry ci: get a token from {server.url}/token: the token response is larger than the 1048576 "
            "bytes allowed (limits.tokenBytes)") in output(finished)
    assert finished.peak_rss_mb < RSS_MB, finished.peak_rss_mb
    assert_clean(finished)


def test_an_endless_error_body_is_read_to_its_small_limit_only(server: HostileServer, tmp_path: Path) -> None:
    server.answer = routes(registry_rows(tags=lambda h, r, m: endless(h, 500, JSON, chunk=b'{"errors":[' * 6000)))
    finished = plan(tmp_path, repo_of_record(tmp_path, server.url))
    assert finished.exit_code == 1, output(finished)
    assert "registry ci, repository team/web: list tags: unexpected HTTP 500" in output(finished)
    assert finished.peak_rss_mb < RSS_MB, finished.peak_rss_mb
    assert_clean(finished)


def test_an_endless_manifest_fails_at_the_manifest_limit(server: HostileServer, tmp_path: Path) -> None:
    server.answer = routes(registry_rows(manifest=lambda h, r, m: endless(h, headers={"Content-Type": OCI_MANIFEST})))
    finished = plan(tmp_path, repo_of_record(tmp_path, server.url))
    assert finished.exit_code == 1, output(finished)
    assert ("get manifest v1: the manifest is larger than the 4194304 bytes allowed "
            "(limits.manifestBytes)") in output(finished)
    assert finished.peak_rss_mb < RSS_MB, finished.peak_rss_mb
    assert_clean(finished)


# -- trickles: the deadline is of the whole request ----------------------------------------------------
DEADLINE = "  limits: {requestDeadline: 5s}\n  retry: {attempts: 2}"


@pytest.mark.parametrize("trickling", ["chunked", "content-length", "headers"])
def test_a_trickling_manifest_fails_by_the_request_deadline(server: HostileServer, tmp_path: Path,
                                                            trickling: str) -> None:
    def slow(h: Handler, r: Request, m: object) -> None:
        if trickling == "chunked":
            endless(h, headers={"Content-Type": OCI_MANIFEST}, chunk=b" ", pause=2)
        elif trickling == "content-length":
            trickle(h, MANIFEST, headers=MANIFEST_HEADERS)
        else:
            trickle_headers(h)

    server.answer = routes(registry_rows(manifest=slow))
    started = time.monotonic()
    finished = plan(tmp_path, repo_of_record(tmp_path, server.url, spec=DEADLINE), timeout=60)
    elapsed = time.monotonic() - started
    assert finished.exit_code == 1, output(finished)
    assert ("registry ci, repository team/web: get manifest v1: no complete answer within 5s "
            "(the deadline limits.requestDeadline)") in output(finished)
    assert elapsed < 20, elapsed  # 5s, and the process starting; never the server's pace (2s a byte)
    assert_clean(finished)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, its own CA."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


@pytest.mark.parametrize("trickling", ["body", "headers"])
def test_a_trickle_over_tls_is_cut_at_the_deadline_too(certificate: tuple[Path, Path], tmp_path: Path,
                                                        trickling: str) -> None:
    slow: Route = (lambda h, r, m: endless(h, headers={"Content-Type": OCI_MANIFEST}, chunk=b" ", pause=2)) \
        if trickling == "body" else (lambda h, r, m: trickle_headers(h))
    with hostile(routes(registry_rows(manifest=slow)), tls=certificate) as server:
        registry = Registry(name="ci", url=server.url, credentials=None, allowed_hosts=(server.host,),
                            ca_file=str(certificate[0]), limits=Limits(request_deadline=Limits.request_deadline / 75))
        opened = open_registry(registry, None, cache_dir=tmp_path / "cache", retry=RetryPolicy(attempts=2))
        try:
            assert opened.tags("team/web") == ["v1"]
            started = time.monotonic()
            with pytest.raises(RegistryError) as caught:
                opened.manifest("team/web", "v1")
            assert 4 <= time.monotonic() - started < 6
            assert str(caught.value) == ("registry ci, repository team/web: get manifest v1: no complete answer within "
                                         "4s (the deadline limits.requestDeadline)")
            assert opened.tags("team/web") == ["v1"]  # the client is still fine
        finally:
            opened.close()


def test_the_deadline_covers_the_retries_too(server: HostileServer, tmp_path: Path) -> None:
    def busy(h: Handler, r: Request, m: object) -> None:
        time.sleep(1)
        reply(h, 503, b"", {"Retry-After": "2"})  # at 1s, and again at 4s: too late for a third

    server.answer = routes(registry_rows(tags=busy))
    registry = client(server.url, limits=Limits(request_deadline=Limits.request_deadline / 60), tmp_path=tmp_path)
    registry._transport.retry = RetryPolicy(attempts=20, base=0.01, budget=600)
    started = time.monotonic()
    with pytest.raises(RegistryError) as caught:
        registry.tags("team/web")
    assert time.monotonic() - started < 7
    assert str(caught.value).startswith("registry ci, repository team/web: list tags: HTTP 503; a retry in 2s would "
                                        "pass the 5s deadline (limits.requestDeadline)")
    assert not caught.value.retryable


# -- pagination ---------------------------------------------------------------------------------------
def test_pagination_stops_at_the_page_cap(server: HostileServer, tmp_path: Path) -> None:
    def paged(h: Handler, r: Request, m: object) -> None:
        page = int(r.path.rpartition("last=p")[2] or 0) if "last=p" in r.path else 0
        reply(h, 200, json.dumps({"tags": [f"v{page}"]}).encode(),
              {**JSON, "Link": f'</v2/team/web/tags/list?last=p{page + 1}>; rel="next"'})

    server.answer = routes(registry_rows(tags=paged))
    finished = plan(tmp_path, repo_of_record(tmp_path, server.url, spec="  limits: {maxPages: 25}"))
    assert finished.exit_code == 1, output(finished)
    assert ("registry ci, repository team/web: list tags: more than 25 pages (the limit limits.maxPages); the "
            "pagination links may loop") in output(finished)
    assert len([r for r in server.requests if "/tags/list" in r.path]) == 25
    assert_clean(finished)


def test_the_default_page_cap_is_ten_thousand() -> None:
    assert Limits().max_pages == 10_000


def test_a_link_back_to_a_page_already_read_is_a_loop(server: HostileServer, tmp_path: Path) -> None:
    server.answer = routes(registry_rows(tags=lambda h, r, m: reply(
        h, 200, b'{"tags":["v1"]}', {**JSON, "Link": '</v2/team/web/tags/list?n=1000>; rel="next"'})))
    with pytest.raises(RegistryError, match=r"^registry ci, repository team/web: list tags: pagination links loop$"):
        client(server.url, tmp_path=tmp_path).tags("team/web")


# -- names from the server ----------------------------------------------------------------------------
INVALID_NAMES: list[object] = ["../x", "team/../../etc", "web\n", "a\nb", "x" * 300, "Team/Web", 7, None]


def test_invalid_tags_from_the_server_are_skipped_with_a_warning(server: HostileServer, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    server.answer = routes(registry_rows(tags=_tags(["v1", "../x", "v1\n", "x" * 300, "a/b", 7])))
    with caplog.at_level(logging.WARNING):
        assert client(server.url, tmp_path=tmp_path).tags("team/web") == ["v1"]
    assert caplog.messages == [
        "registry ci, repository team/web: list tags: skipped 5 tags that are not valid OCI names: '../x', "
        "'v1\\n', 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...', ..."]


def test_invalid_repository_names_from_the_catalog_are_skipped(server: HostileServer, tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    host = server.host
    longest = "a" * (255 - len(host) - 1)  # 255 characters with the host: the most the spec allows
    names = ["team/web", longest, longest + "a", *INVALID_NAMES]
    server.answer = routes(registry_rows(catalog=lambda h, r, m: reply(
        h, 200, json.dumps({"repositories": names}).encode(), JSON)))
    with caplog.at_level(logging.WARNING):
        assert client(server.url, tmp_path=tmp_path).repositories(["**"]) == sorted(["team/web", longest])
    assert len(caplog.messages) == 1
    assert caplog.messages[0].startswith("registry ci: list repositories: skipped 9 repositories that are not "
                                         "valid OCI names: ")


def test_a_plan_over_invalid_names_warns_and_plans_the_rest(server: HostileServer, tmp_path: Path) -> None:
    server.answer = routes(registry_rows(tags=_tags(["v1", "build-1", "../x", "a\nb", "x" * 300]),
                                         catalog=lambda h, r, m: reply(h, 200, json.dumps(
                                             {"repositories": ["team/web", "../x", "team/a\nb"]}).encode(), JSON)))
    finished = plan(tmp_path, repo_of_record(tmp_path, server.url, repositories='["team/**"]'))
    assert finished.exit_code == 0, output(finished)
    text = output(finished)
    assert "skipped 2 repositories that are not valid OCI names: '../x', 'team/a\\nb'" in text
    assert "skipped 3 tags that are not valid OCI names: '../x', 'a\\nb', 'xxxx" in text
    assert '"build-1"' in finished.stdout or "build-1" in finished.stdout
    assert all(".." not in r.path and "\n" not in r.path for r in server.requests)
    assert_clean(finished)


# -- unparsable URLs from the server ------------------------------------------------------------------
def test_an_unparsable_link_is_a_clear_error(server: HostileServer, tmp_path: Path) -> None:
    server.answer = routes(registry_rows(tags=lambda h, r, m: reply(
        h, 200, b'{"tags":["v1"]}', {**JSON, "Link": '<http://[::1/v2/team/web/tags/list?last=v1>; rel="next"'})))
    finished = plan(tmp_path, repo_of_record(tmp_path, server.url))
    assert finished.exit_code == 1, output(finished)
    assert ("registry ci, repository team/web: list tags: the registry sent an invalid pagination Link: an "
            "unparsable URL") in output(finished)
    assert_clean(finished)


@pytest.mark.parametrize(("realm", "reason"), [
    ("http://[::1", "an unparsable URL"),
    ("http://127.0.0.1:1\\@127.0.0.1:2/token", "a URL with a backslash, whitespace or control character"),
    ("https://user:pw@auth.example/token", "a URL with user information"),
    ("file:///etc/passwd", "not an http:// or https:// URL"),
])
def test_an_unusable_token_realm_is_a_clear_error(server: HostileServer, tmp_path: Path, realm: str,
                                                  reason: str) -> None:
    quoted = realm.replace("\\", "\\\\")  # a quoted-string: a backslash is sent escaped
    server.answer = routes([("*", r"/v2/.*", lambda h, r, m: reply(
        h, 401, b"", {"WWW-Authenticate": f'Bearer realm="{quoted}",service="ci"'}))])
    finished = plan(tmp_path, repo_of_record(tmp_path, server.url,
                                             spec="  credentials: {username: ci, password: {env: CI_PASSWORD}}"))
    assert finished.exit_code == 1, output(finished)
    assert f"registry ci: get a token: the WWW-Authenticate realm is not a valid URL: {reason}" in output(finished)
    assert_clean(finished)


def test_an_unusable_redirect_is_a_clear_error(server: HostileServer, tmp_path: Path) -> None:
    other = f"http://127.0.0.1:1\\@{server.host}/v2/team/web/manifests/v1"
    server.answer = routes(registry_rows(manifest=lambda h, r, m: reply(h, 307, b"", {"Location": other})))
    with pytest.raises(RegistryError) as caught:
        client(server.url, tmp_path=tmp_path).manifest("team/web", "v1")
    assert str(caught.value) == ("registry ci, repository team/web: get manifest v1: the registry sent an invalid "
                                 "redirect Location: a URL with a backslash, whitespace or control character")


# -- registry URLs refused ----------------------------------------------------------------------------
@pytest.mark.parametrize(("url", "reason"), [
    ("http://127.0.0.1:{other}\\@{host}", "a URL with a backslash, whitespace or control character"),
    ("http://ci:" + PASSWORD + "@{host}", "a URL with user information (user:password@): credentials go in "
                                          "spec.credentials, as secret references"),
])
def test_a_registry_url_with_a_backslash_or_userinfo_is_refused(server: HostileServer, tmp_path: Path, url: str,
                                                                reason: str) -> None:
    with hostile(routes(registry_rows())) as other:
        url = url.format(host=server.host, other=other.url.rsplit(":", 1)[1])
        with pytest.raises(RegistryError) as caught:
            open_registry(Registry(name="ci", url=url, credentials=None, allowed_hosts=(server.host,)), None)
        assert str(caught.value) == f"registry ci: open: the registry url is refused: {reason}"
        finished = plan(tmp_path, repo_of_record(tmp_path, url))
        assert finished.exit_code != 0, output(finished)
        assert reason in output(finished)
        assert_clean(finished)
        assert server.requests == [] and other.requests == []  # refused before any connection


# -- credentials go to the exact host:port only -------------------------------------------------------
def test_a_token_realm_on_another_host_gets_no_credentials(server: HostileServer, tmp_path: Path) -> None:
    with hostile(routes([("GET", r"/token(\?.*)?", lambda h, r, m: reply(h, 200, b'{"token":"t0k"}', JSON))])) \
            as realm:
        def guarded(h: Handler, r: Request, m: object) -> None:
            if r.headers.get("Authorization") == "Bearer t0k":
                reply(h, 200, b'{"tags":["v1"]}', JSON)
            else:
                reply(h, 401, b"", {"WWW-Authenticate": f'Bearer realm="{realm.url}/token",service="ci"'})

        server.answer = routes([("*", r"/v2/.*", guarded)])
        registry = client(server.url, password=True, tmp_path=tmp_path)
        assert registry.tags("team/web") == ["v1"]
        assert realm.requests and realm.authorizations == []  # another port is another host
        assert server.authorizations == ["Bearer t0k"]


def test_a_redirect_to_another_host_gets_no_credentials(server: HostileServer, tmp_path: Path) -> None:
    with hostile(routes(registry_rows())) as elsewhere:
        def guarded(h: Handler, r: Request, m: object) -> None:
            if not r.headers.get("Authorization", "").startswith("Basic "):
                reply(h, 401, b"", {"WWW-Authenticate": 'Basic realm="ci"'})
            else:
                reply(h, 307, b"", {"Location": f"{elsewhere.url}{r.path}"})

        server.answer = routes([("*", r"/v2/.*", guarded)])
        manifest = client(server.url, password=True, tmp_path=tmp_path).manifest("team/web", "v1")
        assert manifest.digest == digest(MANIFEST)
        assert elsewhere.requests and elsewhere.authorizations == []
        assert len(server.authorizations) == 1


def test_a_backslash_url_cannot_route_credentials_to_another_port(server: HostileServer, tmp_path: Path) -> None:
    """``http://127.0.0.1:A\\@127.0.0.1:B``: B is the host one parser sees, A the one connected to."""
    with hostile(routes(registry_rows())) as a:
        sneaky = f"http://{a.host}\\@{server.host}/v2/team/web/tags/list"
        server.answer = routes([("*", r"/v2/.*", lambda h, r, m: reply(
            h, 200, b'{"tags":["v1"]}', {**JSON, "Link": f'<{sneaky}>; rel="next"'}))])
        with pytest.raises(RegistryError, match="invalid pagination Link: a URL with a backslash"):
            client(server.url, password=True, tmp_path=tmp_path).tags("team/web")
        assert a.requests == []


def test_error_bodies_echoing_credentials_never_reach_the_output(server: HostileServer, tmp_path: Path) -> None:
    def echo(h: Handler, r: Request, m: object) -> None:
        if "Authorization" not in r.headers:
            reply(h, 401, b"", {"WWW-Authenticate": 'Basic realm="ci"'})
        else:
            body = json.dumps({"errors": [{"code": "DENIED", "message": r.headers["Authorization"],
                                           "detail": PASSWORD}]}).encode()
            reply(h, 403, body, {**JSON, "X-Echo": r.headers["Authorization"]})

    server.answer = routes([("*", r"/v2/.*", echo)])
    finished = plan(tmp_path, repo_of_record(tmp_path, server.url,
                                             spec="  credentials: {username: ci, password: {env: CI_PASSWORD}}"))
    assert finished.exit_code == 1, output(finished)
    assert ("registry ci, repository team/web: list tags: forbidden: the credentials for registry ci do not allow "
            "this (DENIED)") in output(finished)
    assert "Basic " not in output(finished)
    assert_clean(finished)


def test_a_manifest_that_does_not_match_its_digest_is_detected(server: HostileServer, tmp_path: Path) -> None:
    server.answer = routes(registry_rows(manifest=lambda h, r, m: reply(h, 200, MANIFEST + b" ", MANIFEST_HEADERS)))
    with pytest.raises(RegistryError, match=rf"content does not match its digest: expected {digest(MANIFEST)}"):
        client(server.url, tmp_path=tmp_path).manifest("team/web", digest(MANIFEST))


# -- Retry-After ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["²", "-1", "1e400", "0x10", "1.5", "Wed, 99 Foo 2026 99:99:99 GMT",
                                   "99999999999999999999", " ", "Fri, 31 Dec 99999 23:59:59 GMT", "\u0661\u0662",
                                   "x" * 5000])
def test_garbage_retry_after_values_are_ignored(value: str) -> None:
    assert retry_after(value) is None


@pytest.mark.parametrize(("value", "message"), [
    ("²", "rate limited (HTTP 429); gave up after 2 attempts ("),
    ("9999999999", "rate limited (HTTP 429); the registry asked to wait 9999999999s, beyond the retry budget of 60s"),
])
def test_garbage_retry_after_gives_a_clean_error(server: HostileServer, tmp_path: Path, value: str,
                                                 message: str) -> None:
    server.answer = routes(registry_rows(tags=lambda h, r, m: reply(h, 429, b"", {"Retry-After": value})))
    finished = plan(tmp_path, repo_of_record(tmp_path, server.url, spec="  retry: {attempts: 2}"))
    assert finished.exit_code == 1, output(finished)
    assert f"registry ci, repository team/web: list tags: {message}" in output(finished)
    assert_clean(finished)


def test_limits_are_read_from_the_policy(server: HostileServer, tmp_path: Path) -> None:
    big = json.dumps({"tags": [f"v{i}" for i in range(2000)]}).encode()  # 16 KiB or so
    server.answer = routes(registry_rows(tags=lambda h, r, m: reply(h, 200, big, JSON)))
    limited = client(server.url, limits=dataclasses.replace(Limits(), list_page_bytes=4096), tmp_path=tmp_path)
    with pytest.raises(RegistryError, match=r"the list page is larger than the 4096 bytes allowed "
                                            r"\(limits.listPageBytes\)$"):
        limited.tags("team/web")
    assert len(client(server.url, tmp_path=tmp_path).tags("team/web")) == 2000


def test_the_phase_deadline_bounds_every_request_after_it(server: HostileServer, tmp_path: Path) -> None:
    registry = client(server.url, limits=Limits(phase_deadline=Limits.request_deadline / 150), tmp_path=tmp_path)
    assert registry.tags("team/web") == ["v1"]
    time.sleep(2.1)
    with pytest.raises(RegistryError) as caught:
        registry.tags("team/web")
    assert str(caught.value) == ("registry ci, repository team/web: list tags: past the 2s deadline of this run phase "
                                 "(limits.phaseDeadline)")
    registry.begin_phase()
    assert registry.tags("team/web") == ["v1"]


def test_a_trickle_after_a_token_request_is_cut_at_the_deadline(server: HostileServer, tmp_path: Path) -> None:
    """The token is read mid-request: the request's deadline still watches what follows."""
    def guarded(h: Handler, r: Request, m: object) -> None:
        if r.headers.get("Authorization") != "Bearer t0k":
            reply(h, 401, b"", {"WWW-Authenticate": f'Bearer realm="{server.url}/token",service="ci"'})
        else:
            trickle(h, MANIFEST, headers=MANIFEST_HEADERS)  # a read that blocks: only the watchdog ends it

    server.answer = routes([("GET", r"/token(\?.*)?", lambda h, r, m: reply(h, 200, b'{"token":"t0k"}', JSON)),
                            ("*", r"/v2/.*", guarded)])
    registry = client(server.url, password=True, limits=Limits(request_deadline=Limits.request_deadline / 75),
                      tmp_path=tmp_path)
    started = time.monotonic()
    with pytest.raises(RegistryError, match=r"get manifest v1: no complete answer within 4s \(the deadline "
                                            r"limits.requestDeadline\)$"):
        registry.manifest("team/web", "v1")
    assert time.monotonic() - started < 6


def _raw(data: bytes) -> Route:
    """Bytes as the whole answer, then the connection closed."""
    def answer(h: Handler, r: Request, m: object) -> None:
        h.wfile.write(data)
        h.close_connection = True

    return answer


@pytest.mark.parametrize(("answer", "message"), [
    (_raw(b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: a\r\n" % i for i in range(200)) + b"Content-Length: 2\r\n\r\n{}"),
     "the answer is not valid HTTP (HTTPException)"),
    (_raw(b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 100_000 + b"\r\nContent-Length: 2\r\n\r\n{}"),
     "the answer is not valid HTTP (LineTooLong)"),
    (_raw(b"HTTP/1.1 2000 OK\r\n\r\n"), "the answer is not valid HTTP (BadStatusLine)"),
    (_raw(b"\x00\xff garbage\r\n\r\n"), "the answer is not valid HTTP (BadStatusLine)"),
    (_raw(b""), "the connection was closed without a response"),
    (_raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
     "connection broken while reading the response"),
])
def test_malformed_http_is_a_clear_error(server: HostileServer, tmp_path: Path, answer: Route, message: str) -> None:
    server.answer = routes(registry_rows(tags=answer))
    with pytest.raises(RegistryError) as caught:
        client(server.url, tmp_path=tmp_path).tags("team/web")
    assert str(caught.value).startswith(f"registry ci, repository team/web: list tags: {message}")
