"""HTTP to one registry: pooled connections, timeouts, retries, rate and concurrency limits, and
redirects followed by hand so that credentials only ever go where the policy allows.

Every request of the registry adapter goes through :meth:`Transport.request` (a token request
through :meth:`Transport.exchange`), and every body is read through :meth:`Transport.read` or
:meth:`Transport.chunks`: to a limit by kind (Registry ``spec.limits``), and under one deadline for
the whole request (connecting, every retry and its wait, token requests, all of the body). A
watchdog shuts the socket of a request past its deadline, so a server that trickles a byte at a
time, headers or body, cannot hold a read open. Every URL goes through
:func:`reconcile.policy.urls.parse_url`.
"""

from __future__ import annotations

import email.utils
import http.client
import logging
import random
import re
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from http.cookiejar import DefaultCookiePolicy
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import requests
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from reconcile import __version__
from reconcile.adapters.registry.errors import (
    RegistryError,
    credential_references,
    safe_url,
    status_error,
    withheld_message,
)
from reconcile.policy.model import Limits, Registry, Retry
from reconcile.policy.urls import URL, URLError, may_receive_credentials, parse_url

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
READ_CHUNK = 64 * 1024

# What each kind of body is, its limit's field of Limits and its spec.limits name.
BODIES = {
    "manifest": ("manifest", "manifest_bytes", "manifestBytes"),
    "config": ("image config", "config_bytes", "configBytes"),
    "page": ("list page", "list_page_bytes", "listPageBytes"),
    "token": ("token response", "token_bytes", "tokenBytes"),
    "error": ("error response", "error_body_bytes", "errorBodyBytes"),
}


class Deadline:
    """The moment one logical request must be done by: ``setting`` names the limit for messages."""

    def __init__(self, seconds: float, setting: str, at: float | None = None) -> None:
        self.seconds = seconds
        self.setting = setting
        self.at = time.monotonic() + seconds if at is None else at
        self.finished = False

    def remaining(self) -> float:
        return self.at - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def message(self) -> str:
        if self.setting == "phaseDeadline":
            return f"past the {self.seconds:g}s deadline of this run phase (limits.phaseDeadline)"
        return f"no complete answer within {self.seconds:g}s (the deadline limits.{self.setting})"


class _Watchdog:
    """Shuts down the socket of a connection whose request is past its deadline: whatever read
    blocks on it (a header or a body trickling in a byte at a time) then returns at once."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._watched: dict[Any, Deadline] = {}
        self._thread: threading.Thread | None = None
        self._wakes_at = float("inf")  # when the watchdog's current wait ends

    def watch(self, connection: Any, deadline: Deadline | None) -> None:
        with self._condition:
            if deadline is None:
                self._watched.pop(connection, None)
                return
            self._watched[connection] = deadline  # a connection serves one request at a time
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="registry-deadlines", daemon=True)
                self._thread.start()
            # Woken only for a deadline sooner than its wait: a wake-up per request cost a thread
            # switch (and the GIL) per request.
            if deadline.at < self._wakes_at:
                self._wakes_at = deadline.at
                self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                now = time.monotonic()
                for connection, deadline in list(self._watched.items()):
                    if deadline.finished:
                        del self._watched[connection]
                expired = [c for c, d in self._watched.items() if d.at <= now]
                for connection in expired:
                    del self._watched[connection]
                if not expired:
                    soonest = min((d.at for d in self._watched.values()), default=None)
                    self._wakes_at = float("inf") if soonest is None else max(soonest, now + 0.001)
                    self._condition.wait(None if soonest is None else self._wakes_at - now)
                    continue
            for connection in expired:
                sock = getattr(connection, "sock", None)
                if sock is not None:
                    # socket.socket's own shutdown: an SSLSocket's would drop its TLS state under a reader.
                    with suppress(OSError):
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_WATCHDOG = _Watchdog()
_current = threading.local()  # the Deadline of the request this thread is sending


def _current_deadline() -> Deadline | None:
    deadline: Deadline | None = getattr(_current, "deadline", None)
    return deadline


def _set_deadline(response: requests.Response, deadline: Deadline) -> None:
    vars(response)["_reconcile_deadline"] = deadline  # the request's, for reading its body


def _deadline_of(response: requests.Response) -> Deadline | None:
    found = vars(response).get("_reconcile_deadline")
    return found if isinstance(found, Deadline) else None


class _Watched:
    """Mixed into urllib3's connections: the watchdog learns each one's deadline as it connects and sends."""

    def connect(self) -> None:
        _WATCHDOG.watch(self, _current_deadline())
        super().connect()  # type: ignore[misc]

    def request(self, *args: Any, **kwargs: Any) -> None:
        _WATCHDOG.watch(self, _current_deadline())
        super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, urllib3.connection.HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, urllib3.connection.HTTPSConnection):
    pass


class _WatchedHTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _WatchedAdapter(HTTPAdapter):
    """Connection pools whose connections the deadline watchdog can cut."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if type(manager) is urllib3.ProxyManager:  # a SOCKS proxy keeps its own pools (unwatched)
            manager.pool_classes_by_scheme = _POOLS
        return manager


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one request is retried: ``attempts`` in all, exponential backoff with full jitter
    (``base * 2**n`` capped at ``cap`` seconds), and at most ``budget`` seconds of waiting.
    ``attempts`` and ``budget`` default to a Registry policy's ``spec.retry`` defaults."""

    attempts: int = Retry.attempts
    base: float = 0.5
    cap: float = 20.0
    budget: float = Retry.budget.total_seconds()

    @classmethod
    def of(cls, retry: Retry) -> RetryPolicy:
        """The policy a Registry's ``spec.retry`` asks for."""
        return cls(attempts=retry.attempts, budget=retry.budget.total_seconds())

    def backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap, self.base * 2 ** attempt))


class TokenBucket:
    """Requests-per-second limit with bursts: each request takes a token, refilled at ``rate``."""

    def __init__(self, rate: float, burst: int = 1) -> None:
        self._rate = rate
        self._capacity = float(max(burst, 1))
        self._tokens = self._capacity
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            # Take the token now (possibly going negative): waiters queue up in arrival order.
            self._tokens -= 1
            wait = -self._tokens / self._rate if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)


class AdaptiveLimit:
    """Requests in flight, at most ``ceiling`` (the Registry's ``concurrency``): halved when the
    registry answers 429 or 503 (it is overloaded or rate limiting), then grown back by one for
    every ``ceiling`` answers that were not; a ``Retry-After`` holds every new request to this
    registry until then, not only the one that got it."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling = max(ceiling, 1)
        self.limit = self.ceiling
        self._in_flight = 0
        self._calm = 0  # answers since the last back-off
        self._not_before = 0.0
        self._changed = threading.Condition()

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._changed:
            while self._in_flight >= self.limit:
                self._changed.wait()
            self._in_flight += 1
            pause = self._not_before - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        try:
            yield
        finally:
            with self._changed:
                self._in_flight -= 1
                self._changed.notify()

    def answered(self, status: int, retry_after: float | None = None) -> None:
        with self._changed:
            if status in (429, 503):
                self.limit = max(1, self.limit // 2)
                self._calm = 0
                if retry_after:
                    self._not_before = max(self._not_before, time.monotonic() + retry_after)
            elif self.limit < self.ceiling:
                self._calm += 1
                if self._calm >= self.ceiling:
                    self.limit, self._calm = self.limit + 1, 0
                    self._changed.notify()


class Authorizer(Protocol):
    """What the transport needs from :mod:`auth`."""

    has_credentials: bool
    hint: str | None  # more on a 401, for its message

    def authorization(self, scopes: Sequence[str]) -> str | None: ...

    def challenge(self, response: requests.Response, scopes: Sequence[str], sent: str | None) -> str | None: ...


def _kind_of(path: str) -> str:
    """What a request path asks for, as counted in ``Transport.requests``."""
    path = path.split("?", 1)[0]
    if path.rstrip("/") == "/v2":
        return "ping"
    for marker, kind in (("/manifests/", "manifest"), ("/blobs/", "blob"), ("/tags/list", "tags"),
                         ("/_catalog", "catalog"), ("/referrers/", "referrers")):
        if marker in path:
            return kind
    return "other"  # a token realm, a listing API


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]{1,10}", value):
        return float(value)
    if len(value) > 64:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: requests and urllib3 nest the socket error in args or causes."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        cause = pending.pop()
        if id(cause) in seen:
            continue
        seen.add(id(cause))
        yield cause
        pending += [a for a in getattr(cause, "args", ()) if isinstance(a, BaseException)]
        pending += [c for c in (cause.__cause__, cause.__context__) if c is not None]
        reason = getattr(cause, "reason", None)
        if isinstance(reason, BaseException):
            pending.append(reason)


def certificate_failure(exc: BaseException) -> bool:
    return any(isinstance(cause, ssl.SSLCertVerificationError) for cause in _causes(exc))


def describe_failure(exc: BaseException, timeout: float) -> str:
    """A short, safe description of a connection failure (requests' own text quotes the URL)."""
    if isinstance(exc, requests.ConnectTimeout):
        return f"connection timed out after {timeout:g}s"
    if isinstance(exc, requests.ReadTimeout):
        return f"no response within {timeout:g}s"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection broken while reading the response"
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, http.client.RemoteDisconnected):
            return "the connection was closed without a response"
        if isinstance(cause, ConnectionResetError):
            return "connection reset by peer"
        if isinstance(cause, http.client.HTTPException | urllib3.exceptions.HeaderParsingError):
            return f"the answer is not valid HTTP ({type(cause).__name__})"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS handshake failed"
    return f"connection failed ({type(exc).__name__})"


class Transport:
    """One registry's HTTP session and limits; thread-safe."""

    def __init__(self, registry: Registry, retry: RetryPolicy | None = None) -> None:
        self.registry = registry
        try:
            self.base = parse_url(registry.url)
        except URLError as exc:
            raise RegistryError(registry.name, None, "open", f"the registry url is refused: {exc}") from None
        if self.base.path not in ("", "/") or self.base.query:
            raise RegistryError(registry.name, None, "open", "the registry url is refused: a registry url is "
                                "http(s)://HOST[:PORT] alone, without a path or query")
        self.base_url = str(self.base).rstrip("/")
        if registry.ca_file is not None and (problem := _unreadable(registry.ca_file)) is not None:
            raise RegistryError(registry.name, None, "open", f"tls.caFile {registry.ca_file} {problem}; nothing is "
                                "sent to this registry without the CA it names")
        self.retry = retry or RetryPolicy.of(registry.retry)
        self.timeout = registry.timeout.total_seconds()
        self.limits: Limits = registry.limits_or_default
        self.begin_phase()
        self.authorizer: Authorizer | None = None
        self.concurrency = AdaptiveLimit(registry.concurrency)
        self._requests: Counter[tuple[str, str]] = Counter()  # (method, what: manifest, blob, tags...) sent
        self._counting = threading.Lock()
        limit = registry.rate_limit
        self._bucket = TokenBucket(limit.requests_per_second, limit.burst) if limit else None
        session = requests.Session()
        # No ~/.netrc (requests would attach it to any host) and no REQUESTS_CA_BUNDLE surprises;
        # proxies are still taken from the environment, per request, in _exchange.
        session.trust_env = False
        # Registries need no cookies, and a cookie set by one host must not reach another.
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        # Streamed blobs keep a connection after their slot is released: room for twice as many.
        adapter = _WatchedAdapter(pool_connections=4, pool_maxsize=2 * max(registry.concurrency, 1), max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        self._adapter = adapter
        self._verify: bool | str = registry.ca_file or not registry.insecure_skip_verify
        session.verify = self._verify
        session.headers["User-Agent"] = f"reconcile/{__version__}"
        # Content is digested as sent: no compression (and no decompression bomb).
        session.headers["Accept-Encoding"] = "identity"
        self._session = session
        self._proxies_by_origin: dict[str, dict[str, str]] = {}

    def close(self) -> None:
        self._session.close()

    def requests_made(self) -> dict[str, int]:
        """Requests sent so far by method and what they asked for: ``{"GET manifest": n, ...}``."""
        with self._counting:
            return {f"{method} {kind}": n for (method, kind), n in sorted(self._requests.items())}

    def _proxies(self, url: str) -> dict[str, str]:
        """The environment's proxies for ``url``'s scheme and host, read once per host (reading them
        scans the whole environment: a third of a request's CPU)."""
        scheme, authority = urlsplit(url)[:2]
        key = f"{scheme}://{authority}"
        found = self._proxies_by_origin.get(key)
        if found is None:
            found = self._proxies_by_origin[key] = requests.utils.get_environ_proxies(key + "/", no_proxy=None)
        return found

    def may_receive_credentials(self, url: URL | str) -> bool:
        """Whether ``url`` is on the exact normalised host:port of ``allowedHosts``."""
        return may_receive_credentials(url, self.registry.allowed_hosts, self.registry.url)

    def url(self, target: str, base: str | None = None, *, what: tuple[str, str | None] = ("request", None),
            origin: str = "URL") -> str:
        """``target`` (a path on the registry, or a URL it sent) checked and normalised."""
        if target.startswith("/") and base is None:
            target = self.base_url + target
        try:
            return str(parse_url(target, base))
        except URLError as exc:
            raise RegistryError(self.registry.name, what[1], what[0], f"the registry sent an invalid {origin}: {exc}") \
                from None

    def begin_phase(self) -> None:
        """A new run phase begins (observing, applying): ``limits.phaseDeadline`` counts from now."""
        self._phase = Deadline(self.limits.phase_deadline.total_seconds(), "phaseDeadline")

    def deadline(self, blob: bool = False) -> Deadline:
        """A new request's deadline: its own, or what is left of the phase's if that ends first."""
        own = Deadline(self.limits.blob_deadline.total_seconds(), "blobDeadline") if blob \
            else Deadline(self.limits.request_deadline.total_seconds(), "requestDeadline")
        phase = self._phase
        return own if own.at <= phase.at else Deadline(phase.seconds, phase.setting, at=phase.at)

    def request(self, method: str, target: str, *, operation: str, repository: str | None,
                scopes: Sequence[str] = (), headers: Mapping[str, str] | None = None,
                params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
                data: bytes | Iterable[bytes] | None = None, stream: bool = False,
                expect: Collection[int] = (200,), body: str | None = None,
                blob: bool = False, authorizer: Authorizer | None = None) -> requests.Response:
        """Send one logical request (retries, auth challenges, redirects included) and return
        the final response if its status is in ``expect``; otherwise raise a
        :class:`RegistryError` naming ``operation`` and ``repository``.

        Unless ``stream``, the body has been read: to the limit of its kind ``body`` (a key of
        :data:`BODIES`), or, without one, to the error-body limit and cut there (it is not used).
        A ``stream`` is read with :meth:`read` or :meth:`chunks`, under the same deadline (a
        blob's with ``blob``).

        ``data`` that is not ``bytes`` (a stream) is sent once: on a transient failure the error
        is marked ``retryable`` so the caller can restart the whole operation.

        ``authorizer`` answers for credentials instead of the registry's own (an API beside the
        Distribution API that authenticates otherwise); either is asked only for hosts in allowedHosts.
        """
        deadline = self.deadline(blob)
        outer = _current_deadline()
        _current.deadline = deadline
        try:
            response = self._request(method, self.url(target, what=(operation, repository)), operation, repository,
                                     scopes, headers or {}, params, data, stream, expect, deadline,
                                     authorizer or self.authorizer)
        except BaseException:
            deadline.finished = True
            raise
        finally:
            _current.deadline = outer
        if stream:
            _set_deadline(response, deadline)
            return response
        try:
            if body is None:
                self.read(response, "error", operation, repository, truncate=True, deadline=deadline)
            else:
                self.read(response, body, operation, repository, deadline=deadline)
        except BaseException:
            response.close()
            raise
        return response

    def _request(self, method: str, url: str, operation: str, repository: str | None, scopes: Sequence[str],
                 headers: Mapping[str, str], params: Any, data: Any, stream: bool, expect: Collection[int],
                 deadline: Deadline, authorizer: Authorizer | None) -> requests.Response:
        replayable = data is None or isinstance(data, bytes)
        policy = self.retry
        waited = 0.0
        status: int | None = None
        failure = ""
        retryable = True
        for attempt in range(policy.attempts):
            hint: float | None = None
            tls_failed = False
            try:
                response = self._follow(method, url, scopes, headers, params, data, (operation, repository),
                                        authorizer)
            except TRANSIENT as exc:
                # A certificate that fails verification fails the same way on every attempt.
                tls_failed = certificate_failure(exc)
                failure, status = describe_failure(exc, self.timeout), None
            else:
                if deadline.expired:  # headers cut short by the watchdog look complete
                    response.close()
                    failure, status, retryable = deadline.message(), None, False
                    break
                if response.status_code not in RETRY_STATUSES or not replayable:
                    return self._checked(response, operation, repository, expect, deadline, authorizer)
                status = response.status_code
                hint = retry_after(response.headers.get("Retry-After"))
                failure = "rate limited (HTTP 429)" if status == 429 else f"HTTP {status}"
                self.discard(response, deadline)
            if deadline.expired:
                failure, status, retryable = deadline.message(), None, False
                break
            if tls_failed:
                raise RegistryError(self.registry.name, repository, operation,
                                    "TLS certificate verification failed (a private CA goes in tls.caFile)")
            if not replayable:
                break  # a consumed stream cannot be sent again; the caller restarts the operation
            if attempt + 1 == policy.attempts:
                failure += f"; gave up after {policy.attempts} attempts ({waited:.1f}s of backoff)"
                break
            delay = hint if hint is not None else policy.backoff(attempt)
            if waited + delay > policy.budget:
                failure += (f"; the registry asked to wait {delay:.0f}s, beyond the retry budget of "
                            f"{policy.budget:g}s" if hint is not None else
                            f"; gave up after {attempt + 1} attempts, retry budget of {policy.budget:g}s spent")
                break
            if delay >= deadline.remaining():
                failure += (f"; a retry in {delay:.0f}s would pass the {deadline.seconds:g}s deadline "
                            f"(limits.{deadline.setting})")
                retryable = False
                break
            log.debug("registry %s: %s %s: %s; retrying in %.2fs", self.registry.name, operation,
                      repository or "", failure, delay)
            time.sleep(delay)
            waited += delay
        # Raised outside any except block: the requests exception (which holds the prepared
        # request and its Authorization header) is not chained to it.
        raise RegistryError(self.registry.name, repository, operation, failure, status, retryable=retryable)

    def _checked(self, response: requests.Response, operation: str, repository: str | None,
                 expect: Collection[int], deadline: Deadline, authorizer: Authorizer | None) -> requests.Response:
        if response.status_code in expect:
            return response
        try:
            self.read(response, "error", operation, repository, truncate=True, deadline=deadline)
        finally:
            response.close()
        has_credentials = bool(authorizer and authorizer.has_credentials)
        raise status_error(self.registry.name, repository, operation, response, has_credentials=has_credentials,
                           hint=authorizer.hint if authorizer else None,
                           withheld=self.withheld(response.url) if has_credentials else None,
                           references=getattr(authorizer, "references", None) or credential_references(self.registry))

    def withheld(self, url: str) -> str | None:
        """Why the credentials did not go with a request to ``url`` (withheld_message), or None
        when they may go there (then a token realm's own, if the registry's authenticator withheld them)."""
        try:
            target, own = parse_url(url), parse_url(self.registry.url)
        except URLError:
            return None
        if may_receive_credentials(target, self.registry.allowed_hosts, self.registry.url):
            realm: str | None = getattr(self.authorizer, "withheld", None)
            return realm
        if own.scheme == "https" and target.scheme != "https":
            return f"credentials withheld from {target.authority}: plain http, and the registry is https"
        return withheld_message(target.authority, self.registry.allowed_hosts, target.scheme)

    def _follow(self, method: str, url: str, scopes: Sequence[str], headers: Mapping[str, str],
                params: Any, data: Any, what: tuple[str, str | None],
                authorizer: Authorizer | None) -> requests.Response:
        """One attempt: redirects of GET/HEAD followed by hand, credentials decided per hop."""
        for _ in range(MAX_REDIRECTS + 1):
            response = self._authenticated(method, url, scopes, headers, params, data, authorizer)
            location = response.headers.get("Location")
            if response.status_code not in REDIRECT_STATUSES or not location or method not in ("GET", "HEAD"):
                return response
            self.discard(response)
            url = self.url(location, response.url, what=what, origin="redirect Location")
            params = None  # the Location is complete
            log.debug("registry %s: redirected to %s", self.registry.name, safe_url(url))
        raise RegistryError(self.registry.name, what[1], what[0], f"more than {MAX_REDIRECTS} redirects")

    def _authenticated(self, method: str, url: str, scopes: Sequence[str], headers: Mapping[str, str],
                       params: Any, data: Any, authorizer: Authorizer | None) -> requests.Response:
        sent: dict[str, str] = dict(headers)
        trusted = self.may_receive_credentials(url)
        authorization = authorizer.authorization(scopes) if trusted and authorizer else None
        if authorization:
            sent["Authorization"] = authorization
        response = self.exchange(method, url, headers=sent, params=params, data=data)
        if response.status_code != 401 or not trusted or authorizer is None:
            return response
        if not (data is None or isinstance(data, bytes)):
            return response  # a consumed stream cannot be sent again; the caller restarts
        try:
            answer = authorizer.challenge(response, scopes, authorization)
        except BaseException:
            self.discard(response)
            raise
        if answer is None:
            return response
        self.discard(response)
        sent["Authorization"] = answer
        return self.exchange(method, url, headers=sent, params=params, data=data)

    def exchange(self, method: str, url: str, *, headers: Mapping[str, str], params: Any = None,
                 data: Any = None) -> requests.Response:
        """One HTTP exchange under the registry's rate and concurrency limits, no redirects, under
        the deadline of the request this thread is sending (else a fresh one). The body is not
        read: :meth:`read` it, or :meth:`discard` it."""
        deadline = _current_deadline()
        if deadline is None:
            deadline = self.deadline()
            _current.deadline = deadline
            try:
                return self.exchange(method, url, headers=headers, params=params, data=data)
            finally:
                _current.deadline = None
        if self._bucket is not None:
            self._bucket.acquire()
        remaining = deadline.remaining()
        if remaining <= 0:
            raise requests.Timeout("deadline")  # reported as the deadline by the caller
        timeout = min(self.timeout, remaining)
        # The slot covers sending and the response headers; a body is read after it is
        # released, so copying a blob between two repositories of one registry cannot deadlock.
        prepared = self._prepare(method, url, headers, params, data)
        with self.concurrency.slot():
            response = self._adapter.send(prepared, stream=True, timeout=(timeout, timeout), verify=self._verify,
                                          proxies=self._proxies(str(prepared.url)))
        self.concurrency.answered(response.status_code, retry_after(response.headers.get("Retry-After")))
        with self._counting:
            self._requests[(method.upper(), _kind_of(prepared.path_url))] += 1
        _set_deadline(response, deadline)
        return response

    def _prepare(self, method: str, url: str, headers: Mapping[str, str], params: Any,
                 data: Any) -> requests.PreparedRequest:
        """The request as ``Session.request`` would prepare it, minus what a registry exchange never
        uses (cookies, auth hooks, environment settings): that machinery is half of a request's CPU."""
        prepared = requests.PreparedRequest()
        prepared.method = method.upper()
        if params:
            query = urlencode(list(params.items()) if isinstance(params, Mapping) else list(params))
            url = f"{url}{'&' if urlsplit(url).query else '?'}{query}"
        prepared.url = requests.utils.requote_uri(url)
        merged = dict(self._session.headers)
        merged.update(headers)
        prepared.prepare_headers(merged)
        prepared.prepare_body(data, None)
        prepared.hooks = requests.hooks.default_hooks()
        return prepared

    # -- bodies --------------------------------------------------------------------------------
    def read(self, response: requests.Response, kind: str, operation: str, repository: str | None, *,
             truncate: bool = False, deadline: Deadline | None = None) -> bytes:
        """All of a response's body, at most the limit of ``kind`` (a key of :data:`BODIES`) —
        beyond it an error naming the limit, or with ``truncate`` the first bytes (the
        connection is then dropped, the rest never read). Readable again as ``.content``."""
        if getattr(response, "_content", False) is not False:  # read already
            return response.content or b""
        label, attribute, setting = BODIES[kind]
        limit: int = getattr(self.limits, attribute)
        parts: list[bytes] = []
        total = 0
        complete = True
        for chunk in self.chunks(response, operation, repository, deadline=deadline, finish=False):
            if total + len(chunk) > limit:
                if not truncate:
                    response.close()
                    raise RegistryError(self.registry.name, repository, operation,
                                        f"the {label} is larger than the {limit} bytes allowed (limits.{setting})")
                parts.append(chunk[:limit - total])
                complete = False
                break
            total += len(chunk)
            parts.append(chunk)
        data = b"".join(parts)
        response._content = data
        if complete:
            response._content_consumed = True  # type: ignore[attr-defined]  # the connection went back to the pool
        else:
            response.close()
        found = deadline or _deadline_of(response)
        if found is not None and found is not _current_deadline():  # a token read mid-request is not its end
            found.finished = True
        return data

    def discard(self, response: requests.Response, deadline: Deadline | None = None) -> None:
        """Done with a response whose body is not needed: a short one is read so the connection
        can be used again, a long one is not."""
        try:
            self.read(response, "error", "read a response", None, truncate=True, deadline=deadline)
        except RegistryError:
            pass
        finally:
            response.close()

    def chunks(self, response: requests.Response, operation: str, repository: str | None, *,
               deadline: Deadline | None = None, finish: bool = True) -> Iterator[bytes]:
        """A response body in chunks, under its request's deadline; a broken connection becomes a
        retryable RegistryError, a passed deadline one naming the deadline."""
        deadline = deadline or _deadline_of(response)
        failure = None
        try:
            for chunk in response.iter_content(READ_CHUNK):
                if deadline is not None and deadline.expired:
                    failure = deadline.message()
                    break
                yield chunk
            else:
                if deadline is not None and deadline.expired:  # the watchdog cut it: an end that is none
                    failure = deadline.message()
        except (*TRANSIENT, requests.exceptions.ContentDecodingError) as exc:
            failure = deadline.message() if deadline is not None and deadline.expired \
                else describe_failure(exc, self.timeout)
        finally:
            if finish and deadline is not None and deadline is not _current_deadline():
                deadline.finished = True
        if failure is not None:
            response.close()
            raise RegistryError(self.registry.name, repository, operation, failure,
                                retryable=not (deadline is not None and deadline.expired))


def _unreadable(path: str) -> str | None:
    """Why the CA file at ``path`` cannot be used, or None (its content is the TLS library's to judge)."""
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except FileNotFoundError:
        return "does not exist"
    except IsADirectoryError:
        return "is a directory, not a PEM file"
    except OSError as e:
        return f"cannot be read ({e.strerror or type(e).__name__})"
    return None
