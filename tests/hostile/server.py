"""Hostile servers for the fault matrix: a loopback HTTP server whose every answer a test writes by
hand (status, headers, a body that never ends, one that trickles), recording what it was sent, and
a runner that starts ``reconcile`` as its own process and reports its exit, output and peak RSS."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]


Answer = Callable[[BaseHTTPRequestHandler, Request], None]  # writes the whole response itself


@dataclass
class HostileServer:
    """``answer`` is called for every request; ``requests`` records them (with their headers, so a
    test can tell whether credentials were sent)."""

    answer: Answer
    requests: list[Request] = field(default_factory=list)
    tls: tuple[Path, Path] | None = None  # (certificate, key): serve https

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def _any(self) -> None:
                request = Request(self.command, self.path, dict(self.headers.items()))
                server.requests.append(request)
                with suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):  # the client gave up, as it should
                    server.answer(self, request)

            do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self.url = f"{'https' if self.tls else 'http'}://{self.host}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def authorizations(self) -> list[str]:
        return [r.headers["Authorization"] for r in self.requests if "Authorization" in r.headers]


@contextmanager
def hostile(answer: Answer, tls: tuple[Path, Path] | None = None) -> Iterator[HostileServer]:
    server = HostileServer(answer, tls=tls)
    try:
        yield server
    finally:
        server.close()


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
          *, length: int | None = None) -> None:
    """A plain response; ``length`` overrides Content-Length (a body that lies about its size)."""
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body) if length is None else length))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def endless(handler: BaseHTTPRequestHandler, status: int = 200, headers: dict[str, str] | None = None,
            chunk: bytes = b"x" * 65536, pause: float = 0.0, stop: threading.Event | None = None) -> None:
    """A chunked body that does not end (until the client hangs up, or ``stop``), ``pause`` seconds
    between chunks: a multi-gigabyte answer, or a trickle."""
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    while stop is None or not stop.is_set():
        handler.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        handler.wfile.flush()
        if pause:
            time.sleep(pause)


@dataclass(frozen=True)
class Finished:
    exit_code: int
    stdout: str
    stderr: str
    peak_rss_mb: float  # of the reconcile process alone (wait4), whatever else the test runs


def run_reconcile(args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
                  timeout: float = 120) -> Finished:
    """``python -m reconcile ARGS`` as its own process; its peak RSS from the kernel's accounting
    for that child."""
    process = subprocess.Popen([sys.executable, "-m", "reconcile", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env={**os.environ, **(env or {})}, cwd=cwd, text=True)
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    try:
        assert process.stdout is not None and process.stderr is not None
        out: list[str] = []
        reader = threading.Thread(target=lambda: out.append(process.stdout.read()))  # type: ignore[union-attr]
        reader.start()
        err = process.stderr.read()
        reader.join()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    finally:
        timer.cancel()
    return Finished(process.returncode, out[0] if out else "", err, usage.ru_maxrss / 1024)


Route = Callable[[BaseHTTPRequestHandler, Request, "re.Match[str]"], None]


def routes(table: list[tuple[str, str, Route]]) -> Answer:
    """An answer from ``(METHOD, path regex, route)`` rows, the first full match winning (the
    query string is part of the path matched); 404 when none does."""
    compiled = [(method, re.compile(pattern), route) for method, pattern, route in table]

    def answer(handler: BaseHTTPRequestHandler, request: Request) -> None:
        for method, pattern, route in compiled:
            found = pattern.fullmatch(request.path)
            if found and method in (request.method, "*"):
                route(handler, request, found)
                return
        reply(handler, 404, b'{"errors":[{"code":"NAME_UNKNOWN"}]}', {"Content-Type": "application/json"})

    return answer


def trickle(handler: BaseHTTPRequestHandler, body: bytes, *, pause: float = 2.0, status: int = 200,
            headers: dict[str, str] | None = None) -> None:
    """A body with its true Content-Length, sent one byte every ``pause`` seconds."""
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    for byte in body:
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()
        time.sleep(pause)


def trickle_headers(handler: BaseHTTPRequestHandler, *, pause: float = 2.0) -> None:
    """A status line, then a header that never ends: one byte every ``pause`` seconds."""
    handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    handler.wfile.flush()
    while True:
        time.sleep(pause)
        handler.wfile.write(b"a")
        handler.wfile.flush()
