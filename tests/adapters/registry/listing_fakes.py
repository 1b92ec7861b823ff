"""Fakes of two bulk tag-listing APIs in front of a real registry, on 127.0.0.1.

One server: requests for the registry (``/v2/...`` on the registry's host) are forwarded to the
real ``docker-registry``; requests for the listing API answer what that registry holds now (its
``/v2/<name>/tags/list``, then a HEAD per tag for the digest), in the documented shapes:

- Harbor v2.0 ``GET /api/v2.0/projects/{project}/repositories/{name, URL-encoded twice}/artifacts``
  with ``page``/``page_size`` (at most 100), ``with_tag``, ``q=tags=*`` (tagged artifacts only; without
  it the ``untagged`` ones too): a JSON array of artifacts (``digest``, ``manifest_media_type``,
  ``size`` of the whole artifact, ``push_time``, ``tags: [{"name": ...}]``, ``[]`` when untagged),
  ``X-Total-Count`` and ``Link: </api/v2.0/...?page=N&page_size=S>; rel="next"``; HTTP basic.
- GitLab's container registry ``GET /gitlab/v1/repositories/{path}/tags/list/?n=N&last=TAG`` (``n``
  at most 100, else 400), on the registry's host: a JSON array of ``{"name", "digest", "config_digest",
  "media_type", "size_bytes", "created_at", ...}`` sorted by name, ``Link: </gitlab/v1/...?last=T&n=N>;
  rel="next"``; the registry's own authentication (HTTP basic here, as the upstream's htpasswd).
- Docker Hub ``GET /v2/namespaces/{namespace}/repositories/{name}/tags?page=N&page_size=S`` (at most
  100): ``{"count", "next" (an absolute URL or null), "previous", "results": [{"name", "digest",
  "media_type", "content_type", "tag_status", "images", ...}]}``; tokens from ``POST /v2/auth/token``.
  Served on the host name ``localhost`` (the registry is ``127.0.0.1``): another host, as
  hub.docker.com is beside registry-1.docker.io.

- Amazon ECR ``POST /`` with ``X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.DescribeImages``
  and ``Content-Type: application/x-amz-json-1.1`` (AWS JSON 1.1), on the host ``localhost`` (ECR's
  API is beside the registry's host): ``{"repositoryName", "registryId", "maxResults" (1 to 1000),
  "filter": {"tagStatus"} (TAGGED, UNTAGGED, or ANY as without it), "nextToken"}`` ->
  ``{"imageDetails": [{"registryId", "repositoryName", "imageDigest", "imageTags" (absent when
  untagged), "imageSizeInBytes", "imagePushedAt" (epoch seconds, a float),
  "imageManifestMediaType", "artifactMediaType"}], "nextToken"}`` (an image per digest, its tags
  together; at most ``ecr_page`` a page). Every request's AWS Signature Version 4 is verified
  (the algorithm written here again from AWS's specification, not :mod:`sigv4`'s): an unknown
  access key or session token is ``UnrecognizedClientException``, a wrong signature, scope or an
  expired date ``InvalidSignatureException`` (its message quoting the canonical request, as AWS's
  does), all HTTP 400 with ``{"__type", "message"}``, as are ``RepositoryNotFoundException``,
  ``AccessDeniedException`` (``denied`` repositories) and ``ThrottlingException`` (the next
  ``throttle`` requests; ``throttle_status`` 429 for a throttling proxy).

Every request the server receives is recorded; faults: digests that lie (``lie``), extra entries
(``extra``), a Link header dropped (``drop_link``), a page linking to itself (``loop``). Untagged
manifests (``untagged``: the registry holds them by digest, or, to lie, does not) are listed by
Harbor and ECR; push times are the fakes' defaults unless ``pushed`` (by digest: Harbor, ECR) or
``tag_pushed`` (by tag: Docker Hub, GitLab) says what to send instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

ACCEPT = ", ".join(["application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json",
                    "application/vnd.docker.distribution.manifest.v2+json"])
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host"}
MAX_PAGE = 100  # both APIs' largest page


@dataclass(frozen=True)
class Seen:
    method: str
    host: str
    path: str
    authorization: str | None

    @property
    def listing(self) -> bool:
        return self.path.startswith(("/api/", "/v2/namespaces/", "/v2/auth/", "/gitlab/v1/")) or \
            (self.method, self.path) == ("POST", "/")  # ECR's DescribeImages


ECR_TARGET = "AmazonEC2ContainerRegistry_V20150921.DescribeImages"
ECR_ACCOUNT = "123456789012"
_CREDENTIAL = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                         r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$")


class ListingFake:
    def __init__(self, upstream: str, api: str, *, user: str | None = None, password: str | None = None,
                 upstream_auth: tuple[str, str] | None = None, aws: tuple[str, str, str | None] | None = None,
                 region: str = "eu-west-1") -> None:
        self.upstream = urlsplit(upstream)
        self.aws = aws  # ECR: (access key id, secret access key, session token or None) it accepts
        self.region = region
        self.throttle = 0  # ECR: the next N DescribeImages answer ThrottlingException
        self.throttle_status = 400
        self.denied: set[str] = set()  # ECR: repositories the key may not DescribeImages
        self.ecr_page = 1000  # ECR: images a page at most (it may answer fewer than maxResults)
        self.ecr_bodies: list[dict[str, Any]] = []  # ECR: the request bodies received
        self._ecr_tokens: dict[str, int] = {}
        self.upstream_auth = upstream_auth  # the real registry's credentials, for reading what it holds
        self.api = api
        self.user, self.password = user, password
        self.tokens: set[str] = set()
        self.lie: dict[str, str] = {}  # tag -> the digest the listing says instead
        self.hide: set[str] = set()  # tags the listing leaves out
        self.extra: list[Any] = []  # raw entries added to the first page
        self.untagged: list[tuple[str, str, int]] = []  # (digest, media type, size) listed without a tag
        self.pushed: dict[str, Any] = {}  # digest -> the push time Harbor or ECR sends for it instead
        self.tag_pushed: dict[str, Any] = {}  # tag -> the push time Docker Hub or GitLab sends for it instead
        self.drop_link = False
        self.loop = False
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"  # the registry (and Harbor's API)
        self.other_url = f"http://localhost:{self.port}"  # another host: Docker Hub's API
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @contextmanager
    def recording(self) -> Iterator[list[Seen]]:
        with self._lock:
            start = len(self.seen)
        found: list[Seen] = []
        yield found
        with self._lock:
            found.extend(self.seen[start:])

    # -- what the real registry holds ------------------------------------------------------------
    def _upstream(self, method: str, path: str, headers: dict[str, str] | None = None,
                  body: bytes | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(self.upstream.hostname or "", self.upstream.port, timeout=30)
        sent = dict(headers or {})
        if self.upstream_auth is not None and "Authorization" not in sent:
            sent["Authorization"] = "Basic " + base64.b64encode(":".join(self.upstream_auth).encode()).decode()
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def held(self, repository: str) -> list[tuple[str, str, str, int]]:
        """(tag, digest, media type, manifest size) of every tag, as the registry answers now."""
        status, _, body = self._upstream("GET", f"/v2/{repository}/tags/list")
        if status != 200:
            return []
        found = []
        for tag in sorted(json.loads(body).get("tags") or []):
            status, headers, _ = self._upstream("HEAD", f"/v2/{repository}/manifests/{tag}", {"Accept": ACCEPT})
            named = {k.lower(): v for k, v in headers}
            if status == 200:
                found.append((tag, self.lie.get(tag, named["docker-content-digest"]),
                              named["content-type"], int(named["content-length"])))
        return [entry for entry in found if entry[0] not in self.hide]

    # -- the server ------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _record(self) -> None:
                with fake._lock:
                    fake.seen.append(Seen(self.command, self.headers.get("Host", ""), self.path,
                                          self.headers.get("Authorization")))

            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _json(self, status: int, document: Any, headers: dict[str, str] | None = None) -> None:
                self._send(status, json.dumps(document).encode(),
                           {"Content-Type": "application/json", **(headers or {})})

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _dispatch(self) -> None:
                self._record()
                host = self.headers.get("Host", "")
                path = urlsplit(self.path).path
                if fake.api == "dockerhub" and host.startswith("localhost"):
                    if self.command == "POST" and path == "/v2/auth/token":
                        return self._hub_token()
                    if self.command == "GET" and path.startswith("/v2/namespaces/"):
                        return self._hub_tags()
                    return self._json(404, {"message": "page not found", "errinfo": {}})
                if fake.api == "ecr" and host.startswith("localhost"):
                    return self._ecr()
                if fake.api == "harbor" and path.startswith("/api/v2.0/"):
                    return self._harbor()
                if fake.api == "gitlab" and path.startswith("/gitlab/v1/"):
                    return self._gitlab()
                self._forward()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _dispatch

            def _forward(self) -> None:
                body = self._body()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                status, answer_headers, answer = fake._upstream(self.command, self.path, headers, body or None)
                self.send_response(status)
                for key, value in answer_headers:
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                        if key.lower() == "location" and value.startswith(f"http://{fake.upstream.netloc}"):
                            value = fake.url + value[len(f"http://{fake.upstream.netloc}"):]
                        self.send_header(key, value)
                length = dict((k.lower(), v) for k, v in answer_headers).get("content-length", str(len(answer)))
                self.send_header("Content-Length", length)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer)

            def _page(self, query: dict[str, list[str]]) -> tuple[int, int]:
                page = int(query.get("page", ["1"])[0])
                size = min(int(query.get("page_size", ["10"])[0]), MAX_PAGE)
                return page, size

            # -- Harbor ----------------------------------------------------------------------
            def _harbor(self) -> None:
                if fake.user is not None:
                    expected = "Basic " + base64.b64encode(f"{fake.user}:{fake.password}".encode()).decode()
                    if self.headers.get("Authorization") != expected:
                        return self._json(401, {"errors": [{"code": "UNAUTHORIZED", "message": "unauthorized"}]})
                parts = urlsplit(self.path)
                segments = parts.path.split("/")  # '', api, v2.0, projects, P, repositories, R, artifacts
                if len(segments) != 8 or segments[3] != "projects" or segments[7] != "artifacts":
                    return self._json(404, {"errors": [{"code": "NOT_FOUND", "message": "not found"}]})
                repository = f"{unquote(segments[4])}/{unquote(unquote(segments[6]))}"
                query = parse_qs(parts.query)
                page, size = self._page(query)
                held = fake.held(repository)
                if not held:
                    return self._json(404, {"errors": [{"code": "NOT_FOUND",
                                                        "message": f"repository {repository} not found"}]})
                artifacts: dict[str, dict[str, Any]] = {}
                for number, (tag, digest, media_type, _) in enumerate(held, 1):
                    artifact = artifacts.setdefault(digest, self._artifact(len(artifacts) + 1, repository, digest,
                                                                           media_type))
                    artifact["tags"].append({"id": number, "repository_id": 1, "artifact_id": artifact["id"],
                                             "name": tag, "push_time": "2026-11-01T00:00:00.000Z",
                                             "pull_time": "0001-01-01T00:00:00.000Z", "immutable": False})
                tagged_only = query.get("q") == ["tags=*"]
                for digest, media_type, _ in [] if tagged_only else fake.untagged:
                    artifacts.setdefault(digest, self._artifact(len(artifacts) + 1, repository, digest, media_type))
                everything = list(artifacts.values())
                chosen: list[Any] = everything[(page - 1) * size:page * size]
                if page == 1:
                    chosen = chosen + fake.extra
                headers = {"X-Total-Count": str(len(everything))}
                links = []
                if page > 1:
                    links.append(f'<{parts.path}?page={page - 1}&page_size={size}>; rel="prev"')
                if fake.loop:
                    links.append(f'<{parts.path}?{parts.query}>; rel="next"')
                elif page * size < len(everything):
                    links.append(f'<{parts.path}?page={page + 1}&page_size={size}&with_tag=true'
                                 f'{"&q=tags%3D%2A" if tagged_only else ""}>; rel="next"')
                if links and not fake.drop_link:
                    headers["Link"] = ", ".join(links)
                self._json(200, chosen, headers)

            def _artifact(self, number: int, repository: str, digest: str, media_type: str) -> dict[str, Any]:
                return {"id": number, "type": "IMAGE", "media_type": "application/vnd.oci.image.config.v1+json",
                        "manifest_media_type": media_type, "project_id": 1, "repository_id": 1,
                        "repository_name": repository, "digest": digest, "size": 123456789,  # the artifact's total
                        "push_time": fake.pushed.get(digest, "2026-11-01T00:00:00.000Z"),
                        "pull_time": "0001-01-01T00:00:00.000Z", "extra_attrs": {}, "annotations": None,
                        "references": None, "labels": None, "tags": [], "addition_links": {}}

            # -- GitLab ----------------------------------------------------------------------
            def _gitlab(self) -> None:
                if fake.upstream_auth is not None:
                    expected = "Basic " + base64.b64encode(":".join(fake.upstream_auth).encode()).decode()
                    if self.headers.get("Authorization") != expected:
                        return self._json(401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication "
                                                            "required"}]}, {"WWW-Authenticate": 'Basic realm="gitlab"'})
                parts = urlsplit(self.path)
                if not (parts.path.startswith("/gitlab/v1/repositories/") and parts.path.endswith("/tags/list/")):
                    return self._json(404, {"errors": [{"code": "NOT_FOUND", "message": "not found"}]})
                repository = parts.path.removeprefix("/gitlab/v1/repositories/").removesuffix("/tags/list/")
                query = parse_qs(parts.query)
                size = int(query.get("n", ["100"])[0])
                if not 1 <= size <= MAX_PAGE:
                    return self._json(400, {"errors": [{"code": "INVALID_QUERY_PARAMETER_VALUE",
                                                        "message": "invalid query parameter value"}]})
                held = fake.held(repository)
                if not held:
                    return self._json(404, {"errors": [{"code": "NAME_UNKNOWN",
                                                        "message": "repository name not known to registry"}]})
                last = query.get("last", [""])[0]
                rest = [entry for entry in held if entry[0] > last]
                chosen: list[Any] = [{"name": tag, "digest": digest, "config_digest": "sha256:" + "c" * 64,
                                      "media_type": media_type, "size_bytes": size_bytes,
                                      "created_at": "2026-11-01T00:00:00.000Z",
                                      "published_at": fake.tag_pushed.get(tag, "2026-11-01T00:00:00.000Z")}
                                     for tag, digest, media_type, size_bytes in rest[:size]]
                if not last:
                    chosen = chosen + fake.extra
                headers = {}
                if fake.loop:
                    headers["Link"] = f'<{parts.path}?{parts.query}>; rel="next"'
                elif len(rest) > size:
                    headers["Link"] = f'<{quote(parts.path)}?last={quote(rest[size - 1][0])}&n={size}>; rel="next"'
                if fake.drop_link:
                    headers.pop("Link", None)
                self._json(200, chosen, headers)

            # -- Docker Hub ------------------------------------------------------------------
            def _hub_token(self) -> None:
                form = json.loads(self._body() or b"{}")
                if fake.user is None or (form.get("identifier"), form.get("secret")) != (fake.user, fake.password):
                    return self._json(401, {"detail": "Incorrect authentication credentials", "errinfo": {}})
                token = "hub-" + secrets.token_hex(8)
                fake.tokens.add(token)
                self._json(200, {"access_token": token})

            def _hub_tags(self) -> None:
                if fake.user is not None and self.headers.get("Authorization", "").removeprefix("Bearer ") \
                        not in fake.tokens:
                    # Docker Hub answers a private repository it will not show with a 404.
                    return self._json(404, {"message": "object not found", "errinfo": {}})
                parts = urlsplit(self.path)
                segments = parts.path.split("/")  # '', v2, namespaces, N, repositories, R, tags
                if len(segments) != 7 or segments[4] != "repositories" or segments[6] != "tags":
                    return self._json(404, {"message": "page not found", "errinfo": {}})
                repository = f"{unquote(segments[3])}/{unquote(segments[5])}"
                page, size = self._page(parse_qs(parts.query))
                held = fake.held(repository)
                if not held:
                    return self._json(404, {"message": "object not found", "errinfo": {}})
                results: list[Any] = [{
                    "creator": 7, "id": number, "images": [{"architecture": "amd64", "features": "", "variant": None,
                                                            "digest": digest, "os": "linux", "os_features": "",
                                                            "os_version": None, "size": 1234, "status": "active",
                                                            "last_pulled": None,
                                                            "last_pushed": "2026-11-01T00:00:00Z"}],
                    "last_updated": "2026-11-01T00:00:00Z", "last_updater": 7, "last_updater_username": "ci",
                    "name": tag, "repository": 42, "full_size": 1234, "v2": True, "tag_status": "active",
                    "tag_last_pulled": None, "tag_last_pushed": fake.tag_pushed.get(tag, "2026-11-01T00:00:00Z"),
                    "media_type": media_type, "content_type": "image", "digest": digest}
                    for number, (tag, digest, media_type, _) in enumerate(held, 1)]
                chosen = results[(page - 1) * size:page * size]
                if page == 1:
                    chosen = chosen + fake.extra
                base = f"{fake.other_url}{quote(parts.path)}"
                following = f"{base}?page={page + 1}&page_size={size}" if page * size < len(results) else None
                if fake.loop:
                    following = f"{base}?{parts.query}"
                self._json(200, {"count": len(results), "next": following,
                                 "previous": f"{base}?page={page - 1}&page_size={size}" if page > 1 else None,
                                 "results": chosen})

            # -- ECR ----------------------------------------------------------------------------
            def _ecr_error(self, kind: str, message: str, status: int = 400) -> None:
                self._send(status, json.dumps({"__type": kind, "message": message}).encode(),
                           {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": secrets.token_hex(8)})

            def _signature_problem(self, body: bytes) -> tuple[str, str] | None:
                """SigV4 as AWS checks it: (error type, message), or None for a good signature."""
                header = self.headers.get("Authorization")
                stamp = self.headers.get("X-Amz-Date", "")
                if not header:
                    return "MissingAuthenticationTokenException", "Missing Authentication Token"
                match = _CREDENTIAL.match(header)
                if match is None:
                    return "IncompleteSignatureException", "Authorization header requires 'Credential', " \
                        "'Signature' and 'SignedHeaders' parameters"
                key_id, day, region, service, signed, signature = match.groups()
                assert fake.aws is not None
                expected_id, secret, token = fake.aws
                if key_id != expected_id or (token is not None and self.headers.get("X-Amz-Security-Token") != token):
                    return "UnrecognizedClientException", "The security token included in the request is invalid."
                if region != fake.region:
                    return "InvalidSignatureException", f"Credential should be scoped to a valid region, not " \
                        f"'{region}'."
                if service != "ecr":
                    return "InvalidSignatureException", "Credential should be scoped to correct service: 'ecr'."
                try:
                    when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
                except ValueError:
                    return "IncompleteSignatureException", "Date must be in ISO-8601 'basic format'."
                if abs(time.time() - when.timestamp()) > 15 * 60 or day != stamp[:8]:
                    return "InvalidSignatureException", f"Signature expired: {stamp} is now earlier than the " \
                        "request time window."
                names = signed.split(";")
                if "host" not in names or "x-amz-date" not in names or (token is not None and
                                                                        "x-amz-security-token" not in names):
                    return "InvalidSignatureException", "'Host' and 'X-Amz-Date' must be signed."
                raw_path, _, raw_query = self.path.partition("?")
                query = "&".join(sorted(
                    f"{quote(unquote(k), safe='-_.~')}={quote(unquote(v), safe='-_.~')}"
                    for k, _, v in (p.partition("=") for p in raw_query.split("&") if p)))
                lines = [self.command, quote(raw_path, safe="/-_.~"), query]
                for name in names:
                    values = self.headers.get_all(name) or []
                    lines.append(f"{name}:{','.join(' '.join(v.split()) for v in values)}")
                canonical = "\n".join([*lines, "", signed, hashlib.sha256(body).hexdigest()])
                scope = f"{day}/{region}/{service}/aws4_request"
                to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
                key = f"AWS4{secret}".encode()
                for part in (day, region, service, "aws4_request"):
                    key = hmac.new(key, part.encode(), "sha256").digest()
                if not hmac.compare_digest(hmac.new(key, to_sign.encode(), "sha256").hexdigest(), signature):
                    return "InvalidSignatureException", (
                        "The request signature we calculated does not match the signature you provided. Check "
                        "your AWS Secret Access Key and signing method. Consult the service documentation for "
                        f"details.\n\nThe Canonical String for this request should have been\n'{canonical}'\n\n"
                        f"The String-to-Sign should have been\n'{to_sign}'\n")
                return None

            def _ecr(self) -> None:
                body = self._body()
                if self.command != "POST" or self.path != "/":
                    return self._send(404, b"<UnknownOperationException/>", {"Content-Type": "text/xml"})
                problem = self._signature_problem(body)
                if problem is not None:
                    return self._ecr_error(*problem)
                if self.headers.get("X-Amz-Target") != ECR_TARGET:
                    return self._ecr_error("UnknownOperationException", "")
                if self.headers.get("Content-Type") != "application/x-amz-json-1.1":
                    return self._ecr_error("SerializationException", "")
                with fake._lock:
                    if fake.throttle > 0:
                        fake.throttle -= 1
                        throttled = True
                    else:
                        throttled = False
                if throttled:
                    return self._ecr_error("ThrottlingException", "Rate exceeded", fake.throttle_status)
                try:
                    asked = json.loads(body)
                except ValueError:
                    return self._ecr_error("SerializationException", "")
                with fake._lock:
                    fake.ecr_bodies.append(asked)
                repository = asked.get("repositoryName")
                account = asked.get("registryId", ECR_ACCOUNT)
                size = asked.get("maxResults", 100)
                if not isinstance(size, int) or not 1 <= size <= 1000:
                    return self._ecr_error("InvalidParameterException", "Invalid parameter at 'maxResults' failed to "
                                           "satisfy constraint: 'Member must have value less than or equal to 1000'")
                if repository in fake.denied:
                    return self._ecr_error("AccessDeniedException", f"User: arn:aws:iam::{ECR_ACCOUNT}:user/ci is not "
                                           "authorized to perform: ecr:DescribeImages on resource: "
                                           f"arn:aws:ecr:{fake.region}:{ECR_ACCOUNT}:repository/{repository} because "
                                           "no identity-based policy allows the ecr:DescribeImages action")
                held = fake.held(repository) if isinstance(repository, str) and account == ECR_ACCOUNT else []
                if not held:
                    return self._ecr_error("RepositoryNotFoundException", f"The repository with name '{repository}' "
                                           f"does not exist in the registry with id '{account}'")
                images: dict[str, dict[str, Any]] = {}
                status = (asked.get("filter") or {}).get("tagStatus", "ANY")
                if status not in ("TAGGED", "UNTAGGED", "ANY"):
                    return self._ecr_error("InvalidParameterException", "Invalid parameter at 'filter.tagStatus'")

                def image(digest: str, media_type: str, size_bytes: int) -> dict[str, Any]:
                    return {"registryId": account, "repositoryName": repository, "imageDigest": digest,
                            "imageSizeInBytes": 1000 + size_bytes,
                            "imagePushedAt": fake.pushed.get(digest, 1793491200.123),
                            "imageManifestMediaType": media_type,
                            "artifactMediaType": "application/vnd.oci.image.config.v1+json",
                            "lastRecordedPullTime": 1793577600.5}

                for tag, digest, media_type, size_bytes in held:
                    listed = images.setdefault(digest, image(digest, media_type, size_bytes))
                    listed.setdefault("imageTags", []).append(tag)
                if status == "UNTAGGED":
                    images.clear()
                for digest, media_type, size_bytes in [] if status == "TAGGED" else fake.untagged:
                    images.setdefault(digest, image(digest, media_type, size_bytes))
                token = asked.get("nextToken")
                if token is None:
                    start = 0
                elif token in fake._ecr_tokens:
                    start = fake._ecr_tokens[token]
                else:
                    return self._ecr_error("InvalidParameterException", "Invalid NextToken")
                everything = list(images.values())
                end = start + min(size, fake.ecr_page)
                chosen: list[Any] = everything[start:end]
                if start == 0:
                    chosen = chosen + fake.extra
                answer: dict[str, Any] = {"imageDetails": chosen}
                if fake.loop and token is not None:
                    answer["nextToken"] = token
                elif end < len(everything) or (fake.loop and token is None):
                    following = base64.b64encode(secrets.token_bytes(96)).decode()
                    fake._ecr_tokens[following] = end
                    answer["nextToken"] = following
                self._send(200, json.dumps(answer).encode(), {"Content-Type": "application/x-amz-json-1.1",
                                                              "x-amzn-RequestId": secrets.token_hex(8)})

        return Handler
