"""Real registries for the registry adapter tests: ``docker-registry`` (CNCF distribution 2.8)
processes on free loopback ports, started once per session, and a token server issuing real
signed JWTs for the one that uses bearer-token auth. Missing binaries fail loudly."""

from __future__ import annotations

import base64
import json
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from reconcile.adapters.registry import RegistryClient, RetryPolicy, open_registry
from reconcile.policy.model import Credentials, RateLimit, Registry
from reconcile.policy.secrets import SecretRef, SecretResolver
from tests.adapters.registry.faults import FaultProxy

BINARIES = {"docker-registry": "docker-registry", "skopeo": "skopeo", "htpasswd": "apache2-utils",
            "openssl": "openssl"}
USER = "ci-bot"
FAST_RETRY = RetryPolicy(attempts=4, base=0.05, cap=0.3, budget=5.0)


@pytest.fixture(scope="session", autouse=True)
def binaries() -> None:
    missing = [f"{binary} (apt-get install {package})" for binary, package in BINARIES.items()
               if shutil.which(binary) is None]
    if missing:
        pytest.fail(f"registry tests need: {', '.join(missing)}", pytrace=False)


@pytest.fixture(autouse=True)
def known_secrets() -> Iterator[None]:
    """Each test starts with the secret values it resolves itself: the redactor's registry is
    process-wide, and a value one test made a Secret ("user", say) would mask that word in the
    messages every later test checks."""
    from reconcile.policy import secrets as secret_values

    before = set(secret_values._KNOWN_VALUES)
    yield
    secret_values._KNOWN_VALUES.intersection_update(before)
    secret_values._PATTERN = (0, None)


@pytest.fixture(autouse=True)
def state_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The XDG state directory (where the default audit trail lives) of each test is its own,
    never the home directory's."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    return state


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningRegistry:
    name: str
    url: str
    root: Path
    process: subprocess.Popen[bytes]
    username: str | None = None
    password: str | None = None

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    @property
    def creds(self) -> str | None:
        return f"{self.username}:{self.password}" if self.username else None

    @property
    def auth(self) -> tuple[str, str] | None:
        return (self.username, self.password) if self.username and self.password else None


def start_registry(directory: Path, name: str, *, auth: dict[str, Any] | None = None, delete: bool = True,
                   username: str | None = None, password: str | None = None,
                   tls: tuple[Path, Path] | None = None) -> RunningRegistry:
    port = free_port()
    root = directory / name
    (root / "data").mkdir(parents=True)
    http: dict[str, Any] = {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)}
    if tls:
        http["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
    config = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root / "data")}, "delete": {"enabled": delete},
                    "maintenance": {"uploadpurging": {"enabled": False}}},
        "http": http,
        **({"auth": auth} if auth else {}),
    }
    (root / "config.yml").write_text(json.dumps(config))  # JSON is YAML
    log = (root / "registry.log").open("wb")
    process = subprocess.Popen(["docker-registry", "serve", str(root / "config.yml")], stdout=log,
                               stderr=subprocess.STDOUT)
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"docker-registry {name} exited: {(root / 'registry.log').read_text()}", pytrace=False)
        try:
            if requests.get(f"{url}/v2/", timeout=1, verify=str(tls[0]) if tls else True).status_code in (200, 401):
                return RunningRegistry(name, url, root, process, username, password)
        except requests.ConnectionError:
            time.sleep(0.05)
    process.kill()
    pytest.fail(f"docker-registry {name} did not become ready on {url}", pytrace=False)


def stop(registry: RunningRegistry) -> None:
    registry.process.terminate()
    try:
        registry.process.wait(10)
    except subprocess.TimeoutExpired:
        registry.process.kill()
        registry.process.wait()


@pytest.fixture(scope="session")
def registry_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("registries")


@pytest.fixture(scope="session")
def plain_registry(registry_dir: Path) -> Iterator[RunningRegistry]:
    registry = start_registry(registry_dir, "plain")
    yield registry
    stop(registry)


@pytest.fixture(scope="session")
def auth_registry(registry_dir: Path) -> Iterator[RunningRegistry]:
    password = "pw-" + secrets.token_hex(12)
    htpasswd = registry_dir / "htpasswd"
    # bcrypt (-B), the only hash distribution accepts; the password goes through stdin (-i).
    run = subprocess.run(["htpasswd", "-niB", USER], input=password, capture_output=True, text=True, check=True)
    htpasswd.write_text(run.stdout)
    registry = start_registry(registry_dir, "basic", auth={"htpasswd": {"realm": "basic-realm",
                                                                         "path": str(htpasswd)}},
                              username=USER, password=password)
    yield registry
    stop(registry)


@pytest.fixture(scope="session")
def nodelete_registry(registry_dir: Path) -> Iterator[RunningRegistry]:
    registry = start_registry(registry_dir, "nodelete", delete=False)
    yield registry
    stop(registry)


@pytest.fixture(scope="session")
def tls_registry(registry_dir: Path) -> Iterator[RunningRegistry]:
    """HTTPS with a self-signed certificate for 127.0.0.1: the certificate is its own CA."""
    cert, key = registry_dir / "tls.crt", registry_dir / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    registry = start_registry(registry_dir, "tls", tls=(cert, key))
    yield registry
    stop(registry)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    """Docker token auth: checks basic credentials (or an identity token) and issues RS256 JWTs
    with an x5c chain that the registry verifies against its rootcertbundle."""

    directory: Path
    password: str
    service: str = "test-registry"
    issuer: str = "test-issuer"
    refresh_token: str = field(default_factory=lambda: "idt-" + secrets.token_hex(12))
    lifetime: int = 300  # the JWT's real expiry
    expires_in: int = 300  # what the response claims
    expired_next: int = 0  # this many coming tokens are issued already expired (past the registry's leeway)
    issued: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.key = self.directory / "token.key"
        self.cert = self.directory / "token.crt"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key),
                        "-out", str(self.cert), "-days", "2", "-subj", "/CN=token-issuer"],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"], check=True,
                             capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def sign(self, claims: dict[str, Any]) -> str:
        header = _b64url(json.dumps({"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}).encode())
        payload = _b64url(json.dumps(claims).encode())
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                                   input=f"{header}.{payload}".encode(), check=True, capture_output=True).stdout
        return f"{header}.{payload}.{_b64url(signature)}"

    def _grant(self, user: str | None, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if user is not None:
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        lifetime = self.lifetime
        if self.expired_next > 0:
            self.expired_next -= 1
            lifetime = -300
        return self.sign({"iss": self.issuer, "sub": user or "", "aud": self.service, "exp": now + lifetime,
                          "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(self, user: str | None, scopes: list[str], method: str) -> None:
                with server.lock:
                    server.issued.append({"method": method, "user": user, "scopes": scopes,
                                          "authorization": self.headers.get("Authorization")})
                token = server._grant(user, scopes)
                body = json.dumps({"token": token, "access_token": token, "expires_in": server.expires_in}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _deny(self) -> None:
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                header = self.headers.get("Authorization")
                user = None
                if header:
                    decoded = base64.b64decode(header.removeprefix("Basic ")).decode()
                    if decoded != f"{USER}:{server.password}":
                        return self._deny()
                    user = USER
                self._answer(user, [s for value in query.get("scope", []) for s in value.split()], "GET")

            def do_POST(self) -> None:
                form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
                if form.get("grant_type") != ["refresh_token"] or form.get("refresh_token") != [server.refresh_token]:
                    return self._deny()
                self._answer(USER, " ".join(form.get("scope", [""])).split(), "POST")

        return Handler


@pytest.fixture(scope="session")
def token_server(registry_dir: Path) -> Iterator[TokenServer]:
    directory = registry_dir / "token"
    directory.mkdir()
    server = TokenServer(directory, password="tk-" + secrets.token_hex(12))
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture(scope="session")
def token_registry(registry_dir: Path, token_server: TokenServer) -> Iterator[RunningRegistry]:
    registry = start_registry(registry_dir, "token", auth={"token": {
        "realm": f"{token_server.url}/token", "service": token_server.service, "issuer": token_server.issuer,
        "rootcertbundle": str(token_server.cert)}}, username=USER, password=token_server.password)
    yield registry
    stop(registry)


def registry_policy(name: str, url: str, *, password_env: str | None = None, username: str | None = USER,
                    allowed_hosts: tuple[str, ...] | None = None, concurrency: int = 4,
                    rate_limit: RateLimit | None = None, timeout: float = 10,
                    credentials: Credentials | None = None) -> Registry:
    """A Registry policy as the loader would build it."""
    if credentials is None and password_env is not None:
        credentials = Credentials(username=username, password=SecretRef(source="env", env=password_env))
    own = (urlsplit(url).netloc,) if "://" in url else ()
    return Registry(name=name, url=url, credentials=credentials,
                    allowed_hosts=allowed_hosts if allowed_hosts is not None else own, concurrency=concurrency,
                    rate_limit=rate_limit, timeout=timedelta(seconds=timeout))


OpenClient = Callable[..., RegistryClient]


@pytest.fixture
def open_client(tmp_path: Path) -> Iterator[OpenClient]:
    """Open clients (fast retries, a per-test cache) and close them after the test."""
    opened: list[RegistryClient] = []

    def opener(registry: Registry, environ: dict[str, str] | None = None, **options: Any) -> RegistryClient:
        options.setdefault("cache_dir", tmp_path / "cache")
        options.setdefault("retry", FAST_RETRY)
        client = open_registry(registry, SecretResolver(environ=environ or {}, base_dir=tmp_path), **options)
        opened.append(client)
        return client

    yield opener
    for client in opened:
        client.close()


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    """A repository name unique to the test, as the registries live for the whole session."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:60].strip("-")
    return f"t-{secrets.token_hex(3)}/{name}"


@pytest.fixture
def proxy_factory() -> Iterator[Callable[..., FaultProxy]]:
    proxies: list[FaultProxy] = []

    def make(upstream: str, **options: Any) -> FaultProxy:
        proxy = FaultProxy(upstream, **options)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()
