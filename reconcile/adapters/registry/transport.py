"""HTTP to one registry: pooled connections, timeouts, retries, rate and concurrency limits, and
redirects followed by hand so that credentials only ever go where the policy allows.

Every request of the registry adapter goes through :meth:`Transport.request`.
"""

from __future__ import annotations

import email.utils
import logging
import random
import ssl
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.cookiejar import DefaultCookiePolicy
from typing import Any, Protocol
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter

from reconcile import __version__
from reconcile.adapters.registry.errors import RegistryError, safe_url, status_error
from reconcile.policy.model import Registry, Retry

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


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


class Authorizer(Protocol):
    """What the transport needs from :mod:`auth`."""

    has_credentials: bool
    hint: str | None  # why credentials may not have been used, for a 401's message

    def authorization(self, scopes: Sequence[str]) -> str | None: ...

    def challenge(self, response: requests.Response, scopes: Sequence[str], sent: str | None) -> str | None: ...


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
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
        if isinstance(cause, ConnectionResetError):
            return "connection reset by peer"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS handshake failed"
    return f"connection failed ({type(exc).__name__})"


class Transport:
    """One registry's HTTP session and limits; thread-safe."""

    def __init__(self, registry: Registry, retry: RetryPolicy | None = None) -> None:
        self.registry = registry
        self.base_url = registry.url.rstrip("/")
        self.retry = retry or RetryPolicy.of(registry.retry)
        self.timeout = registry.timeout.total_seconds()
        self.authorizer: Authorizer | None = None
        self._slots = threading.BoundedSemaphore(max(registry.concurrency, 1))
        limit = registry.rate_limit
        self._bucket = TokenBucket(limit.requests_per_second, limit.burst) if limit else None
        session = requests.Session()
        # No ~/.netrc (requests would attach it to any host) and no REQUESTS_CA_BUNDLE surprises;
        # proxies are still taken from the environment, per request, in _exchange.
        session.trust_env = False
        # Registries need no cookies, and a cookie set by one host must not reach another.
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        # Streamed blobs keep a connection after their slot is released: room for twice as many.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=2 * max(registry.concurrency, 1), max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.verify = registry.ca_file or not registry.insecure_skip_verify
        session.headers["User-Agent"] = f"reconcile/{__version__}"
        self._session = session

    def close(self) -> None:
        self._session.close()

    def url(self, target: str) -> str:
        return target if "://" in target else self.base_url + target

    def request(self, method: str, target: str, *, operation: str, repository: str | None,
                scopes: Sequence[str] = (), headers: Mapping[str, str] | None = None,
                params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
                data: bytes | Iterable[bytes] | None = None, stream: bool = False,
                expect: Collection[int] = (200,)) -> requests.Response:
        """Send one logical request (retries, auth challenges, redirects included) and return
        the final response if its status is in ``expect``; otherwise raise a
        :class:`RegistryError` naming ``operation`` and ``repository``.

        ``data`` that is not ``bytes`` (a stream) is sent once: on a transient failure the error
        is marked ``retryable`` so the caller can restart the whole operation.
        """
        replayable = data is None or isinstance(data, bytes)
        policy = self.retry
        waited = 0.0
        status: int | None = None
        failure = ""
        for attempt in range(policy.attempts):
            hint: float | None = None
            tls_failed = False
            try:
                response = self._follow(method, self.url(target), scopes, headers or {}, params, data, stream,
                                        (operation, repository))
            except TRANSIENT as exc:
                # A certificate that fails verification fails the same way on every attempt.
                tls_failed = certificate_failure(exc)
                failure, status = describe_failure(exc, self.timeout), None
            else:
                if response.status_code not in RETRY_STATUSES or not replayable:
                    return self._checked(response, operation, repository, expect)
                status = response.status_code
                hint = retry_after(response.headers.get("Retry-After"))
                failure = "rate limited (HTTP 429)" if status == 429 else f"HTTP {status}"
                response.close()
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
            log.debug("registry %s: %s %s: %s; retrying in %.2fs", self.registry.name, operation,
                      repository or "", failure, delay)
            time.sleep(delay)
            waited += delay
        # Raised outside any except block: the requests exception (which holds the prepared
        # request and its Authorization header) is not chained to it.
        raise RegistryError(self.registry.name, repository, operation, failure, status, retryable=True)

    def _checked(self, response: requests.Response, operation: str, repository: str | None,
                 expect: Collection[int]) -> requests.Response:
        if response.status_code in expect:
            return response
        authorizer = self.authorizer
        error = status_error(self.registry.name, repository, operation, response,
                             has_credentials=bool(authorizer and authorizer.has_credentials),
                             hint=authorizer.hint if authorizer else None)
        response.close()
        raise error

    def _follow(self, method: str, url: str, scopes: Sequence[str], headers: Mapping[str, str],
                params: Any, data: Any, stream: bool, what: tuple[str, str | None]) -> requests.Response:
        """One attempt: redirects of GET/HEAD followed by hand, credentials decided per hop."""
        for _ in range(MAX_REDIRECTS + 1):
            response = self._authenticated(method, url, scopes, headers, params, data, stream)
            location = response.headers.get("Location")
            if response.status_code not in REDIRECT_STATUSES or not location or method not in ("GET", "HEAD"):
                return response
            response.close()
            url = urljoin(url, location)
            params = None  # the Location is complete
            log.debug("registry %s: redirected to %s", self.registry.name, safe_url(url))
        raise RegistryError(self.registry.name, what[1], what[0], f"more than {MAX_REDIRECTS} redirects")

    def _authenticated(self, method: str, url: str, scopes: Sequence[str], headers: Mapping[str, str],
                       params: Any, data: Any, stream: bool) -> requests.Response:
        sent: dict[str, str] = dict(headers)
        trusted = self.registry.may_receive_credentials(url)
        authorization = self.authorizer.authorization(scopes) if trusted and self.authorizer else None
        if authorization:
            sent["Authorization"] = authorization
        response = self.exchange(method, url, headers=sent, params=params, data=data, stream=stream)
        if response.status_code != 401 or not trusted or self.authorizer is None:
            return response
        if not (data is None or isinstance(data, bytes)):
            return response  # a consumed stream cannot be sent again; the caller restarts
        answer = self.authorizer.challenge(response, scopes, authorization)
        if answer is None:
            return response
        response.close()
        sent["Authorization"] = answer
        return self.exchange(method, url, headers=sent, params=params, data=data, stream=stream)

    def exchange(self, method: str, url: str, *, headers: Mapping[str, str], params: Any = None,
                 data: Any = None, stream: bool = False) -> requests.Response:
        """One HTTP exchange under the registry's rate and concurrency limits, no redirects."""
        if self._bucket is not None:
            self._bucket.acquire()
        # The slot covers sending and the response headers; a streamed body is read after it is
        # released, so copying a blob between two repositories of one registry cannot deadlock.
        with self._slots:
            return self._session.request(
                method, url, headers=dict(headers), params=params, data=data, stream=stream,
                allow_redirects=False, timeout=(self.timeout, self.timeout),
                proxies=requests.utils.get_environ_proxies(url, no_proxy=None))
