"""The adapter's pure parts: challenges, globs, verified streams, the cache, the rate limiter."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from reconcile.adapters.registry import DigestMismatch
from reconcile.adapters.registry.auth import parse_challenge
from reconcile.adapters.registry.cache import ContentCache
from reconcile.adapters.registry.content import digest_of, glob_pattern, verified_chunks
from reconcile.adapters.registry.transport import Deadline, TokenBucket, _Watchdog
from reconcile.policy.source import default_cache_dir


def test_bearer_challenges_are_parsed() -> None:
    challenge = parse_challenge('Bearer realm="https://auth.example.com/token",service="registry.example.com",'
                                'scope="repository:team-a/web:pull,push"')
    assert challenge is not None and challenge.scheme == "bearer"
    assert challenge.params == {"realm": "https://auth.example.com/token", "service": "registry.example.com",
                                "scope": "repository:team-a/web:pull,push"}
    basic = parse_challenge('Basic realm="basic-realm"')
    assert basic is not None and (basic.scheme, basic.params) == ("basic", {"realm": "basic-realm"})
    assert parse_challenge("") is None


@pytest.mark.parametrize(("pattern", "name", "matches"), [
    ("team-a/*", "team-a/web", True),
    ("team-a/*", "team-a/web/cache", False),
    ("team-a/**", "team-a/web/cache", True),
    ("**/web", "web", True),
    ("**/web", "x/y/web", True),
    ("team-?/web", "team-b/web", True),
    ("team.a/web", "teamXa/web", False),  # literal characters are literal
])
def test_repository_globs(pattern: str, name: str, matches: bool) -> None:
    assert bool(glob_pattern([pattern]).match(name)) is matches


def test_a_verified_stream_withholds_its_last_chunk_until_the_digest_matches() -> None:
    chunks = [b"a" * 10, b"b" * 10, b"c" * 10]
    good = digest_of(b"".join(chunks))
    assert list(verified_chunks(chunks, good, 30, registry="r", repository="x", operation="get")) == chunks
    handed: list[bytes] = []
    with pytest.raises(DigestMismatch):
        for chunk in verified_chunks(chunks, digest_of(b"other"), 30, registry="r", repository="x", operation="get"):
            handed.append(chunk)
    assert handed == chunks[:2]  # a consumer uploading as it reads never completes the upload
    with pytest.raises(DigestMismatch, match="more than the 25 bytes"):
        list(verified_chunks(chunks, good, 25, registry="r", repository="x", operation="get"))


def test_the_cache_verifies_what_it_reads(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path)
    data = b'{"schemaVersion": 2}'
    digest = digest_of(data)
    cache.put(digest, data)
    assert cache.get(digest) == data
    (path,) = (tmp_path / "blobs" / "sha256").rglob(digest.split(":")[1])
    path.write_bytes(b'{"schemaVersion": 3}')  # damaged or tampered with
    assert cache.get(digest) is None and not path.exists()
    cache.put(digest, b"not the content")  # refused: it would poison the cache
    assert cache.get(digest) is None
    assert cache.get("sha256:../../etc/passwd") is None


def test_cache_entries_are_written_in_place_and_a_half_written_one_heals(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path)
    data = b'{"schemaVersion": 2, "layers": []}'
    digest = digest_of(data)
    path = tmp_path / "blobs" / "sha256" / digest[7:9] / digest[7:]
    path.parent.mkdir(parents=True)
    path.write_bytes(data[:10])  # a writer that died half-way (no temporary file, no rename)
    assert cache.has(digest) and cache.get(digest) is None and not path.exists()
    cache.put(digest, data)
    cache.put(digest, data)  # a second writer of the same content: the first one's file stands
    assert cache.get(digest) == data
    assert [p.name for p in path.parent.iterdir()] == [digest[7:]]  # nothing left aside


def test_tag_hints_are_per_registry_and_repository_and_only_digests(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path)
    digest = digest_of(b"x")
    cache.put_tags("https://a.example", "team/web", {"v1": digest})
    assert cache.tags("https://a.example", "team/web") == {"v1": digest}
    assert cache.tags("https://b.example", "team/web") == {} and cache.tags("https://a.example", "team/api") == {}
    (hint,) = [p for p in (tmp_path / "tags").rglob("*") if p.is_file()]
    hint.write_text('{"v1": "sha256:../../etc", "v2": ' + '"' + digest + '"' + ', "v3": 7}')  # tampered: a hint only
    assert cache.tags("https://a.example", "team/web") == {"v2": digest}
    hint.write_text("[not json")
    assert cache.tags("https://a.example", "team/web") == {}


def test_the_default_cache_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("RECONCILE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "reconcile"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "reconcile"


def test_the_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=50, burst=5)
    started = time.monotonic()
    for _ in range(5):
        bucket.acquire()
    assert time.monotonic() - started < 0.05
    for _ in range(10):
        bucket.acquire()
    assert time.monotonic() - started >= 10 / 50 - 0.02


def test_a_cache_that_cannot_be_written_only_costs_requests(tmp_path: Path) -> None:
    """A read-only root filesystem without a cache volume: nothing raises, nothing is kept."""
    (tmp_path / "not-a-directory").write_text("")
    cache = ContentCache(tmp_path / "not-a-directory" / "cache")
    data = b'{"schemaVersion": 2}'
    cache.put(digest_of(data), data)
    cache.put_tags("https://a.example", "team/web", {"v1": digest_of(data)})
    assert cache.get(digest_of(data)) is None and not cache.has(digest_of(data))
    assert cache.tags("https://a.example", "team/web") == {}


class _CountingCondition(threading.Condition):
    notified = 0

    def notify(self, n: int = 1) -> None:
        type(self).notified += 1
        super().notify(n)


class _Connection:
    def __init__(self) -> None:
        self.sock, self.peer = socket.socketpair()


def test_the_deadline_watchdog_is_woken_only_for_a_sooner_deadline() -> None:
    watchdog = _Watchdog()
    watchdog._condition = _CountingCondition()
    connections = [_Connection() for _ in range(50)]
    for n, connection in enumerate(connections):  # every new request's deadline is later than the last
        watchdog.watch(connection, Deadline(60 + n, "requestDeadline"))
    assert _CountingCondition.notified == 1  # the first; before, one wake-up (a thread switch) per request
    soon = _Connection()
    watchdog.watch(soon, Deadline(0.2, "requestDeadline"))
    assert _CountingCondition.notified == 2
    soon.sock.settimeout(5)
    started = time.monotonic()
    assert soon.sock.recv(1) == b""  # cut at its deadline although the watchdog was waiting for a minute
    assert time.monotonic() - started < 4
    connections[0].sock.setblocking(False)
    with pytest.raises(BlockingIOError):  # the others are still open
        connections[0].sock.recv(1)
