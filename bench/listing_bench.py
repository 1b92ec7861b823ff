"""Benchmark of bulk tag listing (Registry ``spec.listing``): what a plan of one repository of
10,000 tags costs in requests through Harbor's, GitLab's and Docker Hub's listing APIs, against
the same plan through the plain Distribution API.

    python bench/listing_bench.py [--tags 10000] [--apis harbor,gitlab,dockerhub] [--quick] [--keep]

A ``docker-registry`` (CNCF distribution, 127.0.0.1 only, access log on) holds one repository
``bench/svc-00`` of ``--tags`` tags, two per image (``build-N`` and ``sha-…``, seeded as
``bench/plan_bench.py`` seeds, each image its own config). In front of it, one fake listing API
per ``--apis`` (``tests/adapters/registry/listing_fakes.py``, the fakes the listing tests use,
which answer in those APIs' documented shapes what the registry holds, and forward ``/v2/`` to
it); what the registry holds is read once, before the measured runs (the fake would otherwise
ask the registry for every tag's digest at every page). For each API, ``reconcile plan --format
json`` in a fresh process over a RetentionPolicy keeping the last 10 builds (``bench/policies.py``),
with ``spec.listing: {api, url}``:

- **cold**: an empty cache: the listing's pages, then each distinct manifest by the digest the
  listing gave (verified against it) and each image's config;
- **warm**: the cache the cold run left (the CronJob's next run): the pages alone, if the
  listing does what it is for.

**The peer**, in the same run: the same plan, cold and warm, with no ``spec.listing``, through
the same front (so the same forwarding costs): the Distribution API, a tag list and then a
request per tag.

Every request is counted by kind on each server: the front (every request reconcile sent:
listing pages, tokens, and what it forwarded) and the registry (its access log: what reached
it). Printed: per run, wall, CPU, requests, requests per 100 tags and the kinds; then warm
requests per 100 tags against issue 17's target (<= 1 per 100 tags), the peer's and the ratio,
and cold the same. ``--quick``: 2,000 tags (under two minutes here). Exit code 0 when every
plan is the peer's and prunes what keep-last-10 leaves.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.plan_bench import Run, agree, measured, seed
from bench.policies import KEEP, retention_repo
from bench.registry_bench import RunningRegistry, start_registry, stop
from tests.adapters.registry.listing_fakes import ListingFake, Seen

APIS = ("harbor", "gitlab", "dockerhub")
REPOSITORY = "bench/svc-00"
TARGET = 1.0  # issue 17: a warm plan through a bulk-listing registry, requests per 100 tags


class HeldOnce(ListingFake):
    """A :class:`ListingFake` that reads what the registry holds once per repository (``held``:
    the tag list and a HEAD per tag) and answers every page from that: the plan only reads, and
    at 10,000 tags the plain fake would send the registry 10,000 HEADs for every page."""

    def __init__(self, upstream: str, api: str, held: dict[str, list[tuple[str, str, str, int]]]) -> None:
        super().__init__(upstream, api)
        self._held = held  # shared by every fake of one registry

    def held(self, repository: str) -> list[tuple[str, str, str, int]]:
        if repository not in self._held:
            self._held[repository] = super().held(repository)
        return self._held[repository]


def kind(method: str, path: str) -> str:
    """What a request is, from its method and path (as the front or the registry saw it)."""
    path = path.split("?", 1)[0]
    if path.startswith(("/api/v2.0/", "/gitlab/v1/", "/v2/namespaces/")):
        return "listing page"
    if path == "/v2/auth/token":
        return "token"
    if path in ("/v2", "/v2/"):
        return "ping"
    if path.startswith("/v2/_catalog"):
        return "catalog"
    if path.endswith("/tags/list"):
        return "tags/list"
    if "/referrers/" in path:
        return f"{method} referrers"
    if "/manifests/" in path:
        return f"{method} manifest by {'digest' if '/manifests/sha256:' in path else 'tag'}"
    if "/blobs/" in path:
        return f"{method} blob"
    return f"{method} other"


def kinds(counted: Counter[str]) -> str:
    return ", ".join(f"{name} {n:,}" for name, n in counted.most_common())


class Planned:
    """One measured plan: the run (wall, CPU, the registry's log) and what the front received."""

    def __init__(self, run: Run, front: list[Seen]) -> None:
        self.run = run
        self.front = Counter(kind(s.method, s.path) for s in front)
        self.registry = Counter(kind(method, path) for method, path, _, _ in run.logged)
        self.plan: dict[str, Any] = json.loads(run.output)

    @property
    def sent(self) -> int:
        return sum(self.front.values())

    def per_100(self, tags: int) -> float:
        return self.sent / tags * 100


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tags", type=int, default=10_000, help="tags in the repository (two per image)")
    parser.add_argument("--apis", default=",".join(APIS), help=f"comma-separated, of {', '.join(APIS)}")
    parser.add_argument("--quick", action="store_true", help="2,000 tags")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    apis = [a.strip() for a in args.apis.split(",") if a.strip()]
    if not apis or set(apis) - set(APIS):
        parser.error(f"--apis: choose among {', '.join(APIS)} (got {args.apis!r})")
    if args.quick:
        args.tags = 2_000
    # Everything is on loopback (the Docker Hub fake is "localhost"): never through a proxy from the environment.
    for variable in ("NO_PROXY", "no_proxy"):
        os.environ[variable] = ",".join(filter(None, (os.environ.get(variable), "127.0.0.1", "localhost")))
    workdir = Path(tempfile.mkdtemp(prefix="listing-bench-"))
    registry: RunningRegistry = start_registry(workdir, "registry")
    held: dict[str, list[tuple[str, str, str, int]]] = {}
    fakes: dict[str, HeldOnce] = {}
    try:
        seeded = seed(workdir / "layout", registry, 1, args.tags)
        tags = seeded.tags
        for api in apis:
            fakes[api] = HeldOnce(registry.url, api, held)
        front = fakes[apis[0]]
        front.held(REPOSITORY)  # read once, here, before anything is measured
        print(f"listing benchmark: {REPOSITORY}, {tags:,} tags on {tags // 2:,} images (two per image), "
              f"keep-last-{KEEP}; {os.cpu_count()} CPUs (seeded in {seeded.seconds:.1f} s)")
        env = {**os.environ, "RECONCILE_LOCK": "none"}

        def plan(name: str, fake: HeldOnce, listing: str, cache: str) -> Planned:
            root = workdir / f"policies-{name}"
            if not root.exists():
                retention_repo(root, fake.url, max_deletions=1_000_000, registry_extra=listing)
            command = [str(Path(sys.executable).with_name("reconcile")), "plan", "--repo", str(root),
                       "--audit-db", str(workdir / "audit.db"), "--format", "json"]
            with fake.recording() as seen:
                run = measured(command, registry, {**env, "RECONCILE_CACHE_DIR": str(workdir / cache)})
            return Planned(run, seen)

        results: dict[tuple[str, str], Planned] = {}
        for api in apis:
            fake = fakes[api]
            url = fake.other_url if api == "dockerhub" else fake.url  # Docker Hub's API is on another host
            for temperature in ("cold", "warm"):
                print(f"  {api} {temperature} ...", flush=True)
                results[api, temperature] = plan(api, fake, f", listing: {{api: {api}, url: \"{url}\"}}",
                                                 f"cache-{api}")
        for temperature in ("cold", "warm"):
            print(f"  peer (Distribution API) {temperature} ...", flush=True)
            results["distribution", temperature] = plan("distribution", front, "", "cache-distribution")

        print(f"{'':28} {'wall':>7} {'CPU':>6} {'sent':>7} {'/100 tags':>9} {'registry':>8}  requests by kind "
              "(the front: every request sent; the registry: what reached it)")
        for (name, temperature), done in results.items():
            label = f"{'peer: distribution' if name == 'distribution' else name} {temperature}"
            print(f"{label:28} {done.run.wall:6.1f}s {done.run.cpu:5.1f}s {done.sent:7,} {done.per_100(tags):9.2f} "
                  f"{done.run.total:8,}  front: {kinds(done.front)}")
            print(f"{'':72}registry: {kinds(done.registry) or 'nothing'}")
        peer = {t: results["distribution", t] for t in ("cold", "warm")}
        for temperature in ("warm", "cold"):
            theirs = peer[temperature].per_100(tags)
            print(f"{temperature} requests per 100 tags (measured / peer = ratio):")
            for api in apis:
                ours = results[api, temperature]
                pages = ours.front["listing page"]
                target = f"; target <= {TARGET:g}: {'meets it' if ours.per_100(tags) <= TARGET else 'MISSES it'}" \
                    if temperature == "warm" else ""
                print(f"  {api:10} {ours.per_100(tags):7.2f} / {theirs:7.2f} = {ours.per_100(tags) / theirs:.4f}x "
                      f"({ours.sent:,} requests: {pages:,} listing pages = {pages / tags * 100:.2f} per 100 tags, "
                      f"{ours.sent - pages:,} others){target}")
        problems: list[str] = []
        expected = peer["cold"].plan.get("actions")
        for (name, temperature), done in results.items():
            problems += [f"{name} {temperature}: {p}" for p in agree(done.plan, "", seeded, "")]
            if done.plan.get("actions") != expected:
                problems.append(f"{name} {temperature}: the plan's actions differ from the peer's cold plan")
        prunes = sum(max(0, len(t) // 2 - KEEP) for t in seeded.repositories.values())
        print(f"agreement: {len(results) - len({p.split(':')[0] for p in problems})}/{len(results)} plans with the "
              f"peer's cold plan's actions and the {prunes:,} prunes keep-last-{KEEP} leaves")
        for problem in problems[:10]:
            print("DISAGREE", problem)
        return 1 if problems else 0
    finally:
        for fake in fakes.values():
            fake.close()
        stop(registry)
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
