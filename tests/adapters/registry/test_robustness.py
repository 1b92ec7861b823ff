"""Retries, budgets, timeouts and limits, with faults injected in front of a real registry."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from reconcile.adapters.registry import RegistryError, RetryPolicy
from reconcile.adapters.registry.transport import AdaptiveLimit, retry_after
from reconcile.observe.repositories import observe_repository
from reconcile.policy.model import RateLimit, Retry
from tests.adapters.registry.faults import FaultProxy
from tests.adapters.registry.oci import Layout, push, put_tag
from tests.conftest import OpenClient, RunningRegistry, registry_policy

TAGS = [f"v{i}" for i in range(8)]


@pytest.fixture(scope="module")
def tagged(plain_registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> str:
    repository = "robust/app"
    layout = Layout(tmp_path_factory.mktemp("robust"))
    image = layout.image()
    layout.tag(image, "v0")
    push(layout, "v0", plain_registry.host, repository)
    for tag in TAGS[1:]:
        put_tag(plain_registry.url, repository, tag, image)
    return repository


@pytest.fixture
def proxy(plain_registry: RunningRegistry, proxy_factory: Callable[..., FaultProxy]) -> FaultProxy:
    return proxy_factory(plain_registry.url)


def test_429_with_retry_after_is_waited_out(proxy: FaultProxy, tagged: str, open_client: OpenClient) -> None:
    proxy.inject(r"/tags/list", "status", status=429, headers={"Retry-After": "1"})
    client = open_client(registry_policy("ci", proxy.url))
    started = time.monotonic()
    assert sorted(client.tags(tagged)) == TAGS
    assert time.monotonic() - started >= 1.0
    assert len([r for r in proxy.requests if "/tags/list" in r.path]) == 2


def test_503_and_connection_resets_are_retried(proxy: FaultProxy, tagged: str, open_client: OpenClient) -> None:
    proxy.inject(r"/tags/list", "status", status=503, times=2)
    proxy.inject(r"/manifests/v3", "reset", method="GET")
    proxy.inject(r"/manifests/v4", "status", status=502, method="GET")
    client = open_client(registry_policy("ci", proxy.url))
    state = observe_repository(client, tagged)
    assert sorted(state.tags) == TAGS
    assert len([r for r in proxy.requests if "/tags/list" in r.path]) == 3
    assert len([r for r in proxy.requests if r.path.endswith("/manifests/v3")]) == 2


def test_a_spent_budget_is_a_clear_error(proxy: FaultProxy, tagged: str, open_client: OpenClient) -> None:
    proxy.inject(r"/tags/list", "status", status=503, times=-1)
    client = open_client(registry_policy("ci", proxy.url))
    with pytest.raises(RegistryError) as error:
        client.tags(tagged)
    assert str(error.value).startswith(
        f"registry ci, repository {tagged}: list tags: HTTP 503; gave up after 4 attempts (")
    assert error.value.status == 503
    assert len(proxy.requests) == 4


def test_the_registry_policy_sets_the_attempts(proxy: FaultProxy, tagged: str, open_client: OpenClient) -> None:
    proxy.inject(r"/tags/list", "status", status=503, times=-1)
    policy = dataclasses.replace(registry_policy("ci", proxy.url), retry=Retry(attempts=2))
    client = open_client(policy, retry=None)  # what the policy says, not the tests' fast default
    with pytest.raises(RegistryError, match=r"list tags: HTTP 503; gave up after 2 attempts"):
        client.tags(tagged)
    assert len(proxy.requests) == 2
    once = open_client(dataclasses.replace(policy, retry=Retry(attempts=1)), retry=None)
    with pytest.raises(RegistryError, match=r"gave up after 1 attempts"):
        once.tags(tagged)
    assert len(proxy.requests) == 3


def test_resets_until_the_budget_is_spent(proxy: FaultProxy, tagged: str, open_client: OpenClient) -> None:
    proxy.inject(r"/tags/list", "reset", times=-1)
    client = open_client(registry_policy("ci", proxy.url))
    with pytest.raises(RegistryError, match=r"repository robust/app: list tags: connection (reset by peer|failed .*); "
                                            r"gave up after 4 attempts"):
        client.tags(tagged)


def test_a_retry_after_beyond_the_budget_fails_at_once(proxy: FaultProxy, tagged: str,
                                                       open_client: OpenClient) -> None:
    proxy.inject(r"/tags/list", "status", status=429, headers={"Retry-After": "3600"})
    client = open_client(registry_policy("ci", proxy.url))
    started = time.monotonic()
    with pytest.raises(RegistryError, match=r"rate limited \(HTTP 429\); the registry asked to wait 3600s, beyond "
                                            r"the retry budget of 5s"):
        client.tags(tagged)
    assert time.monotonic() - started < 1


def test_retry_after_as_an_http_date() -> None:
    assert retry_after("7") == 7.0
    later = datetime.now(UTC) + timedelta(seconds=30)
    assert 28 <= (retry_after(format_datetime(later, usegmt=True)) or 0) <= 30
    assert retry_after(format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)) == 0.0
    assert retry_after("soon") is None and retry_after(None) is None


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def test_every_request_has_the_policy_timeout(silent_server: str, open_client: OpenClient) -> None:
    client = open_client(registry_policy("slow", silent_server, timeout=0.3), retry=RetryPolicy(attempts=2, base=0.01))
    started = time.monotonic()
    with pytest.raises(RegistryError, match=r"registry slow: ping: no response within 0.3s; gave up after 2 attempts"):
        client.ping()
    assert time.monotonic() - started < 2


def test_requests_per_second_are_limited(proxy: FaultProxy, tagged: str, open_client: OpenClient) -> None:
    client = open_client(registry_policy("ci", proxy.url, rate_limit=RateLimit(requests_per_second=20, burst=2)))
    started = time.monotonic()
    observe_repository(client, tagged)  # 1 tag list + 8 manifests + a few more
    requests_made = len(proxy.requests)
    assert requests_made >= 10
    assert time.monotonic() - started >= (requests_made - 2) / 20 - 0.05


def test_concurrency_is_bounded(proxy: FaultProxy, tagged: str, open_client: OpenClient, tmp_path: Path) -> None:
    proxy.inject(r"/manifests/", "delay", method="GET", delay=0.1, times=-1)
    observe_repository(open_client(registry_policy("ci", proxy.url, concurrency=3)), tagged)
    assert proxy.max_in_flight == 3


def test_the_limit_halves_on_429_and_503_and_grows_back_one_at_a_time() -> None:
    limit = AdaptiveLimit(8)
    limit.answered(200)
    assert limit.limit == 8  # never above the Registry's concurrency
    limit.answered(429)
    limit.answered(503)
    assert limit.limit == 2
    for _ in range(4):
        limit.answered(500)
    limit.answered(429)
    limit.answered(429)
    assert limit.limit == 1  # never below one
    for _ in range(8 * 7):
        limit.answered(200)
    assert limit.limit == 8  # one more slot per `concurrency` calm answers


def test_a_retry_after_holds_every_new_request_not_only_its_own() -> None:
    limit = AdaptiveLimit(4)
    limit.answered(429, retry_after=0.5)
    started = time.monotonic()
    with limit.slot():
        pass
    assert time.monotonic() - started >= 0.45


def test_slots_never_exceed_the_current_limit() -> None:
    limit = AdaptiveLimit(4)
    limit.answered(503)  # now 2
    inside, peak, lock = [0], [0], threading.Lock()

    def hold() -> None:
        with limit.slot():
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.05)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=hold) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == 2


def test_a_rate_limiting_registry_gets_fewer_requests_at_once(proxy: FaultProxy, tagged: str,
                                                              open_client: OpenClient) -> None:
    proxy.inject(r"/manifests/", "status", status=429, headers={"Retry-After": "0"}, method="GET", times=2)
    proxy.inject(r"/manifests/", "delay", method="GET", delay=0.2, times=-1)
    client = open_client(registry_policy("ci", proxy.url, concurrency=8))
    state = observe_repository(client, tagged)
    assert sorted(state.tags) == TAGS
    assert client._transport.concurrency.limit < 8  # backed off after the 429s, growing back  # type: ignore[attr-defined]
    assert client.requests_made()["GET manifest"] == len(TAGS) + 2  # each tag once, and the two refused
