"""Receivers on loopback for the notification tests: a real SMTP server (aiosmtpd, with AUTH so
the canary password really travels), an HTTP receiver that answers from a script of statuses and
keeps every request's headers and exact body, and the quickstart sandbox with a Notification
committed to its repo-of-record."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import git
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from reconcile.adapters import notify
from reconcile.quickstart.sandbox import Sandbox, build, prepare

SMTP_USER = "ops-mailer"
SMTP_PASSWORD = "canary-smtp-Pw-7f3a9e"
HMAC_KEY = "canary-hmac-Key-51c2d8"
SLACK_TOKEN = "canarySlackTokenC0ffee42"
CANARIES = (SMTP_PASSWORD, HMAC_KEY, SLACK_TOKEN)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Mailbox:
    port: int
    messages: list[Any] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)

    def url(self, password: str = SMTP_PASSWORD) -> str:
        return (f"mailto://{SMTP_USER}:{password}@127.0.0.1:{self.port}?mode=insecure"
                "&from=reconcile@example.com&to=oncall@example.com")


@pytest.fixture
def smtp() -> Iterator[Mailbox]:
    box = Mailbox(free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            box.messages.append(envelope)
            return "250 OK"

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        if isinstance(data, LoginPassword):
            box.logins.append((data.login, data.password))
            return AuthResult(success=data.login == SMTP_USER.encode() and data.password == SMTP_PASSWORD.encode())
        return AuthResult(success=False)

    controller = Controller(Handler(), hostname="127.0.0.1", port=box.port, authenticator=authenticate,
                            auth_require_tls=False)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@dataclass
class Receiver:
    """Answers each POST with the next status of ``statuses`` (the last one from then on)."""

    port: int
    statuses: list[int]
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
def receiver_factory() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start(*statuses: int) -> Receiver:
        received = Receiver(0, list(statuses) or [200])

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                n = len(received.requests) - 1
                status = received.statuses[min(n, len(received.statuses) - 1)]
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", f"http://127.0.0.1:{received.port}/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        received.port = server.server_address[1]
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return received

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(notify, "BACKOFF_SECONDS", 0.01)
    now = datetime.now(UTC)
    prepare(tmp_path / "sandbox", force=False, now=now)
    return build(tmp_path / "sandbox", now)


def commit_notification(sandbox: Sandbox, text: str, *, name: str = "notify.yaml",
                        branch: str | None = None) -> str:
    """Write ``text`` to the repo-of-record and commit it (on ``branch``, made from main, when given)."""
    repo = git.Repo(sandbox.policies)
    with repo:
        if branch is not None:
            repo.git.checkout("-B", branch)
        (sandbox.policies / name).write_text(text)
        repo.index.add([name])
        sha = repo.index.commit(f"Notification {name}").hexsha
        if branch is not None:
            repo.git.checkout("main")
        return sha


def notification(when: str = "[always]", *, apprise: Sequence[str] = (), webhook_url: str | None = None,
                 name: str = "ops", extra: str = "") -> str:
    lines = ["apiVersion: reconcile/v1", "kind: Notification", f"metadata: {{name: {name}}}", "spec:",
             f"  when: {when}"]
    if apprise:
        lines += ["  apprise:"] + [f"    - {{env: {variable}}}" for variable in apprise]
    if webhook_url is not None:
        lines += ["  webhook:", f"    url: {webhook_url}", "    secret: {env: NOTIFY_HMAC_KEY}"] + (
            [f"    {extra}"] if extra else [])
    return "\n".join(lines) + "\n"
