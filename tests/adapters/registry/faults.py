"""A loopback HTTP proxy in front of a real registry that injects faults and records requests.

Faults: a status (429 with ``Retry-After``, 503...), a connection reset, a redirect to another
host, a corrupted body (a lying registry), a rewritten ``Link`` header. It can also paginate tag
lists, which distribution 2.8 does not do itself (it ignores ``n``), the way registries that do
(distribution 3, Harbor, GHCR) answer: ``n``/``last`` and a ``Link: <...>; rel="next"`` header.
And it can emulate OCI 1.1 tag deletion (``DELETE /v2/<name>/manifests/<tag>`` removes that tag
alone), which distribution 2.8 refuses with 400, by removing the tag from the registry's storage.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization",
              "proxy-authenticate"}

ERROR_CODES = {401: "UNAUTHORIZED", 403: "DENIED", 404: "NAME_UNKNOWN", 429: "TOOMANYREQUESTS"}
TAG_DELETE = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127})$")


@dataclass
class Fault:
    path: str  # regex searched in the request path (with query)
    action: str  # status | reset | redirect | corrupt | link | delay
    method: str | None = None
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1  # how many matching requests it applies to; -1: all
    target: str | None = None  # redirect/link: base URL of the other host
    delay: float = 0.0  # delay: seconds to wait before forwarding
    body: bytes | None = None  # status: the body to answer with (default: an OCI error)

    def matches(self, method: str, path: str) -> bool:
        return self.times != 0 and (self.method is None or self.method == method) and re.search(self.path, path)


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]


class FaultProxy:
    def __init__(self, upstream: str, *, paginate_tags: bool = False, inject_auth: str | None = None,
                 untag_storage: Path | None = None) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.paginate_tags = paginate_tags
        # The upstream distribution 2.8's storage.filesystem.rootdirectory: tag DELETEs are done there.
        self.untag_storage = untag_storage
        self.inject_auth = inject_auth  # an Authorization this proxy adds itself (presigned storage)
        self.faults: list[Fault] = []
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def inject(self, path: str, action: str, **kwargs: object) -> Fault:
        fault = Fault(path, action, **kwargs)  # type: ignore[arg-type]
        with self.lock:
            self.faults.append(fault)
        return fault

    def reset(self) -> None:
        with self.lock:
            self.faults.clear()
            self.requests.clear()
            self.max_in_flight = 0

    @contextmanager
    def recording(self) -> Iterator[list[Recorded]]:
        with self.lock:
            self.requests.clear()
        seen: list[Recorded] = []
        yield seen
        with self.lock:
            seen.extend(self.requests)

    def _take(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    if fault.times > 0:
                        fault.times -= 1
                    return fault
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                # A HEAD answer keeps the upstream's length: it is the size of what a GET returns.
                length = {k.lower(): v for k, v in headers.items()}.get("content-length", "0") \
                    if self.command == "HEAD" else str(len(body))
                self.send_header("Content-Length", length)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def handle_one(self) -> None:
                method, path = self.command, self.path
                with proxy.lock:
                    proxy.requests.append(Recorded(method, path, dict(self.headers.items())))
                    proxy.in_flight += 1
                    proxy.max_in_flight = max(proxy.max_in_flight, proxy.in_flight)
                try:
                    self._handle(method, path)
                finally:
                    with proxy.lock:
                        proxy.in_flight -= 1

            def _handle(self, method: str, path: str) -> None:
                body = self._body()
                fault = proxy._take(method, path)
                if fault is not None and fault.action == "status":
                    code = ERROR_CODES.get(fault.status, "UNAVAILABLE")
                    body = fault.body if fault.body is not None else json.dumps(
                        {"errors": [{"code": code, "message": "injected"}]}).encode()
                    self._send(fault.status, {"Content-Type": "application/json", **fault.headers}, body)
                    return
                if fault is not None and fault.action == "reset":
                    # SO_LINGER 0: close() sends a TCP RST, what a crashing load balancer does.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                if fault is not None and fault.action == "redirect":
                    self._send(307, {"Location": f"{fault.target}{path}"})
                    return
                if fault is not None and fault.action == "delay":
                    time.sleep(fault.delay)
                untag = TAG_DELETE.match(urlsplit(path).path) if method == "DELETE" else None
                if untag is not None and proxy.untag_storage is not None:
                    self._untag(untag["name"], untag["tag"])
                    return
                status, headers, payload = self._forward(method, path, body)
                if fault is not None and fault.action == "corrupt" and payload:
                    middle = len(payload) // 2
                    payload = payload[:middle] + bytes([payload[middle] ^ 0xFF]) + payload[middle + 1:]
                if fault is not None and fault.action == "link":
                    headers["Link"] = f'<{fault.target}{path}>; rel="next"'
                self._send(status, headers, payload)

            def _untag(self, name: str, tag: str) -> None:
                """OCI 1.1: 202 and the tag is gone, its manifest stays; 404 if there was no such tag."""
                assert proxy.untag_storage is not None
                tags = proxy.untag_storage / "docker/registry/v2/repositories" / name / "_manifests/tags"
                if not (tags / tag).is_dir():
                    body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown tag"}]}).encode()
                    self._send(404, {"Content-Type": "application/json"}, body)
                    return
                shutil.rmtree(tags / tag)
                self._send(202, {})

            def _forward(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
                parts = urlsplit(path)
                page = None
                if proxy.paginate_tags and method == "GET" and parts.path.endswith("/tags/list"):
                    page = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                    path = parts.path  # the registry gets no n: it would ignore it anyway
                connection = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                if proxy.inject_auth:
                    headers["Authorization"] = proxy.inject_auth
                headers["Content-Length"] = str(len(body))
                try:
                    connection.request(method, path, body=body if body or method in ("PUT", "POST", "PATCH")
                                       else None, headers=headers)
                    response = connection.getresponse()
                    payload = response.read()
                    out = {k: v for k, v in response.getheaders()}
                    status = response.status
                finally:
                    connection.close()
                if page is not None and status == 200:
                    payload, link = self._paginate(parts.path, payload, page)
                    out.pop("Link", None)
                    if link:
                        out["Link"] = link
                return status, out, payload

            def _paginate(self, path: str, payload: bytes, page: dict[str, str]) -> tuple[bytes, str | None]:
                document = json.loads(payload)
                tags = sorted(document.get("tags") or [])
                if "last" in page:
                    tags = [t for t in tags if t > page["last"]]
                size = int(page.get("n", len(tags) or 1))
                document["tags"] = tags[:size]
                link = None
                if len(tags) > size:
                    link = f'<{path}?{urlencode({"n": size, "last": tags[size - 1]})}>; rel="next"'
                return json.dumps(document).encode(), link

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_one

        return Handler
