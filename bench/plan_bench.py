"""Benchmark of a whole ``reconcile plan`` at registry scale, against skopeo, through added latency.

    python bench/plan_bench.py [--tags 10000] [--repositories 20] [--rtt-ms 20] [--repeat 3] [--quick]
        [--concurrency N] [--skip-peer] [--keep]

Starts a ``docker-registry`` (CNCF distribution, 127.0.0.1 only, access log on so that every
request is counted from the registry's side) and, in front of it, a userland TCP proxy that holds
every chunk of bytes for half the round trip in each direction (``--rtt-ms``, default 20 ms: a
registry in another region). It seeds ``--repositories`` repositories with ``--tags`` tags in
all, two tags per image (``build-N`` and ``sha-…``), then measures, medians of ``--repeat`` runs:

- **cold plan**: ``reconcile plan --format json`` in a fresh process with an empty cache over a
  RetentionPolicy keeping the last 10 builds of every repository (``plan`` prunes nothing: it only
  reads);
- **warm plan**: the same with the cache the cold run left (the CronJob's next run);
- **the peer**, through the same proxy: ``skopeo list-tags`` per repository, then ``xargs -P8
  skopeo inspect --raw`` per tag (the digest of every tag; a script needs at least that much).

For each it prints wall time, peak RSS, requests (and per tag), the request bound (requests x
RTT / concurrency: what the round trips cost if every slot were always busy) and how close the
run came to it, and the issue's targets (cold and warm plan within 1.2x of the bound).

The bound assumes the registry answers in no time. It does not: a ``docker-registry`` spends
about 2 ms of CPU per manifest GET here, and it shares the machine's CPUs with reconcile and the
proxy. So for every run the bench also prints the CPU seconds of reconcile (the measured child),
of the registry process (``/proc/PID/stat`` utime + stime, before and after) and of the proxy
(this process's ``getrusage(RUSAGE_SELF)``: the proxy's thread and the main thread's waiting), their
sum over wall x CPUs (how much of the machine the run kept busy) and the whole machine's busy
share (``/proc/stat``, other work included). And it measures the **registry floor**: after
seeding, the cold plan's requests (a GET of every tag's manifest with reconcile's Accept header,
and of every image's config blob) and the warm plan's (a HEAD of every tag's manifest) sent
straight to the registry, no proxy and no added latency, by a bare urllib3 client on a thread
pool as wide as the concurrency: the wall time no client can beat against this registry on this
machine (measured before the plans and again after them, the lower kept: other work on the
machine comes and goes). The plan's ratio is printed against the plain bound (the issue's target,
unchanged), against max(bound, floor), and against the run's own CPU over the CPUs (reconcile +
registry + proxy CPU / CPUs: its wall time if it had every CPU and no waits), for context.
``--quick`` is 1,000 tags in 4 repositories (about a minute here). Exit code 0 when every run
planned and reconcile's digests agree with skopeo's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.policies import KEEP, retention_repo
from bench.registry_bench import RunningRegistry, start_registry, stop, upload_blob
from reconcile.adapters.registry.content import ACCEPT_MANIFESTS
from reconcile.policy.model import Registry
from tests.adapters.registry.oci import OCI_LAYER, Layout, push, put_tag

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
# Runs the command given as arguments in a process of its own: wall time, peak RSS and CPU seconds
# (user + system) of that one child.
MEASURE = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
run = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall": wall, "maxrss_kib": usage.ru_maxrss, "cpu": usage.ru_utime + usage.ru_stime,
                  "returncode": run.returncode, "stdout": run.stdout, "stderr": run.stderr[-4000:]}))
"""
TICKS = os.sysconf("SC_CLK_TCK")


# --- the latency proxy --------------------------------------------------------------------------------

class DelayProxy:
    """TCP on 127.0.0.1: every chunk is forwarded ``delay`` seconds after it arrived, in order, in
    both directions, connections independent of each other (an asyncio loop in a thread)."""

    def __init__(self, target_port: int, rtt: float) -> None:
        self.target_port = target_port
        self.delay = rtt / 2
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            server = await asyncio.start_server(self._connection, "127.0.0.1", 0, limit=1 << 20)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        try:
            while chunk := await reader.read(1 << 16):
                if self.delay:
                    loop.call_later(self.delay, _write, writer, chunk)  # same delay: forwarded in order
                else:
                    writer.write(chunk)
            await asyncio.sleep(self.delay)
        except (ConnectionError, OSError):
            pass
        finally:
            loop.call_later(self.delay, writer.close)

    async def _connection(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(self._pipe(client_reader, upstream_writer), self._pipe(upstream_reader, client_writer))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


def _write(writer: asyncio.StreamWriter, chunk: bytes) -> None:
    if not writer.is_closing():
        writer.write(chunk)


# --- seeding ------------------------------------------------------------------------------------------

@dataclass
class Seeded:
    repositories: dict[str, dict[str, str]]  # repository -> tag -> digest
    configs: dict[str, list[str]]  # repository -> the config digest of every image
    seconds: float

    @property
    def tags(self) -> int:
        return sum(len(t) for t in self.repositories.values())


def seed(directory: Path, registry: RunningRegistry, repositories: int, tags: int) -> Seeded:
    """``tags`` tags over ``repositories`` repositories ``bench/svc-NN``, two per image: ``build-N``
    and ``sha-<hex>``; every image its own config, all sharing one layer (mounted, not uploaded)."""
    started = time.perf_counter()
    layout = Layout(directory)
    base = layout.blob(os.urandom(1024), OCI_LAYER)
    first = layout.image(layers=[base], layer_sizes=(), seed=0)
    layout.tag(first, "base")
    push(layout, "base", registry.host, "bench/seed")
    images_each = max(1, tags // repositories // 2)
    plan: dict[str, list[tuple[str, str, Any]]] = {}
    for r in range(repositories):
        name = f"bench/svc-{r:02d}"
        entries = []
        for n in range(images_each):
            created = (CREATED + timedelta(minutes=n, seconds=r)).strftime("%Y-%m-%dT%H:%M:%SZ")
            built = layout.image(created=created, labels={"bench": f"{r}-{n}"}, layers=[base], layer_sizes=())
            entries.append((f"build-{n}", f"sha-{r:02x}{n:06x}", built))
        plan[name] = entries

    def mount(name: str) -> None:
        mounted = requests.post(f"{registry.url}/v2/{name}/blobs/uploads/", timeout=30,
                                params={"mount": base["digest"], "from": "bench/seed"})
        if mounted.status_code != 201:
            raise RuntimeError(f"mounting the layer into {name}: HTTP {mounted.status_code}")

    def one(item: tuple[str, str, str, Any]) -> None:
        name, build, sha, built = item
        upload_blob(registry.url, name, layout, json.loads(built.data)["config"])
        put_tag(registry.url, name, build, built)
        put_tag(registry.url, name, sha, built)

    with ThreadPoolExecutor(max_workers=8) as pool:  # images side by side, one repository or many
        list(pool.map(mount, plan))
        list(pool.map(one, [(name, *entry) for name, entries in plan.items() for entry in entries]))
    seeded = {name: {tag: built.digest for build, sha, built in entries for tag in (build, sha)}
              for name, entries in plan.items()}
    configs = {name: [json.loads(built.data)["config"]["digest"] for _, _, built in entries]
               for name, entries in plan.items()}
    return Seeded(seeded, configs, time.perf_counter() - started)


# --- runs ---------------------------------------------------------------------------------------------

# --- CPU accounting -------------------------------------------------------------------------------

def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime: the 14th and 15th fields


def own_cpu() -> float:
    """This process's CPU seconds: the delay proxy's thread, plus the main thread waiting."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of every CPU since boot, whoever used them (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(values) - values[3] - values[4], sum(values)  # idle and iowait are not busy


@dataclass
class Usage:
    """CPU used while something ran: the registry process, this process (the proxy), the machine."""

    registry: float
    bench: float
    machine_busy: float  # fraction of all CPUs' time busy with anything, other work included

    @classmethod
    def start(cls, registry: RunningRegistry) -> tuple[float, float, tuple[int, int]]:
        return process_cpu(registry.process.pid), own_cpu(), machine_ticks()

    @classmethod
    def since(cls, registry: RunningRegistry, start: tuple[float, float, tuple[int, int]]) -> Usage:
        (busy, total), (busy0, total0) = machine_ticks(), start[2]
        return cls(process_cpu(registry.process.pid) - start[0], own_cpu() - start[1],
                   (busy - busy0) / (total - total0) if total > total0 else 0.0)


# --- runs ---------------------------------------------------------------------------------------------

@dataclass
class Run:
    wall: float
    cpu: float
    maxrss_mib: float
    requests: Counter[str]
    output: str
    usage: Usage
    logged: list[tuple[str, str, int, int]]  # (method, path, status, bytes) as the registry logged them

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    def busy(self) -> float:
        """This run's own share of the machine: (reconcile + registry + proxy CPU) / (wall x CPUs)."""
        return (self.cpu + self.usage.registry + self.usage.bench) / (self.wall * (os.cpu_count() or 1))


def measured(command: list[str], registry: RunningRegistry, env: dict[str, str]) -> Run:
    mark = registry.mark()
    start = Usage.start(registry)
    wrapper = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, env=env,
                             check=True)
    usage = Usage.since(registry, start)
    result = json.loads(wrapper.stdout)
    if result["returncode"] not in (0, 2):
        raise SystemExit(f"{command[0]} failed ({result['returncode']}): {result['stderr']}")
    logged = registry.requests_since(mark)
    methods = Counter(method for method, _, _, _ in logged)
    return Run(result["wall"], result["cpu"], result["maxrss_kib"] / 1024, methods, result["stdout"], usage, logged)


def repo_of_record(directory: Path, url: str, concurrency: int | None) -> Path:
    """``bench/policies.py``'s repo-of-record (as ``memory_bench.py``'s), at ``url``."""
    return retention_repo(directory, url, max_deletions=1_000_000,
                          registry_extra=f", concurrency: {concurrency}" if concurrency else "")


# --- the registry's own floor -------------------------------------------------------------------------

@dataclass
class Floor:
    kind: str
    requests: int
    wall: float
    usage: Usage  # .bench: the urllib3 client's threads (and the idle proxy)

    @property
    def rate(self) -> float:
        return self.requests / self.wall if self.wall else 0.0


def registry_floor(registry: RunningRegistry, seeded: Seeded, concurrency: int, kind: str) -> Floor:
    """The requests a plan sends, straight to the registry (no proxy, no added latency), from a
    minimal urllib3 client on ``concurrency`` threads: what this registry on this machine needs to
    serve them at best. ``cold``: a GET of every tag's manifest (with reconcile's Accept header)
    and of every image's config blob; ``warm``: a HEAD of every tag's manifest."""
    accept = {"Accept": ACCEPT_MANIFESTS}
    sent: list[tuple[str, str, dict[str, str]]] = []
    for name, tags in seeded.repositories.items():
        method = "GET" if kind == "cold" else "HEAD"
        sent += [(method, f"/v2/{name}/manifests/{tag}", accept) for tag in tags]
        if kind == "cold":
            sent += [("GET", f"/v2/{name}/blobs/{digest}", {}) for digest in seeded.configs[name]]
    host, port = registry.host.rsplit(":", 1)
    pool = urllib3.HTTPConnectionPool(host, int(port), maxsize=concurrency, block=True, retries=False)

    def one(request: tuple[str, str, dict[str, str]]) -> int:
        method, path, headers = request
        return pool.request(method, path, headers=headers, preload_content=True).status

    start = Usage.start(registry)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as threads:
        statuses = Counter(threads.map(one, sent))
    wall = time.perf_counter() - started
    usage = Usage.since(registry, start)
    pool.close()
    if set(statuses) != {200}:
        raise SystemExit(f"the registry floor ({kind}) got {dict(statuses)}, not all 200")
    return Floor(kind, len(sent), wall, usage)


def peer_command(host: str, repositories: list[str]) -> list[str]:
    names = " ".join(repositories)
    script = (f"for r in {names}; do skopeo list-tags --tls-verify=false docker://{host}/$r | "
              "python3 -c 'import json,sys; d=json.load(sys.stdin); print(\"\\n\".join(d[\"Repository\"]+\":\"+t "
              "for t in d[\"Tags\"]))'; done | "
              "xargs -P8 -I{} sh -c 'd=$(skopeo inspect --raw --tls-verify=false docker://{} | sha256sum); "
              "echo \"{} $d\"'")
    return ["sh", "-c", script]


def agree(plan: dict[str, Any], peer_output: str, seeded: Seeded, host: str) -> list[str]:
    """Digests skopeo read for each tag against what was seeded, and reconcile's prune count
    against what keep-last-10 leaves."""
    problems = []
    for line in peer_output.splitlines():
        reference, _, digest = line.partition(" ")
        repository, _, tag = reference.removeprefix(host + "/").partition(":")
        if seeded.repositories.get(repository, {}).get(tag) != "sha256:" + digest.split()[0]:
            problems.append(f"skopeo: {reference} is {digest[:12]}")
    expected = sum(max(0, len(t) // 2 - KEEP) for t in seeded.repositories.values())
    prunes = plan.get("summary", {}).get("prune", 0)
    if prunes != expected:
        problems.append(f"reconcile plans {prunes} prunes, keep-last-{KEEP} leaves {expected}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tags", type=int, default=10_000, help="tags in all (two per image)")
    parser.add_argument("--repositories", type=int, default=20)
    parser.add_argument("--rtt-ms", type=float, default=20.0, help="round trip the proxy adds")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each kind (median)")
    parser.add_argument("--concurrency", type=int, help="the Registry's concurrency (default: reconcile's)")
    parser.add_argument("--quick", action="store_true", help="1,000 tags in 4 repositories, one run each")
    parser.add_argument("--skip-peer", action="store_true", help="reconcile only")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--profile", action="store_true", help="also profile one cold plan (cProfile, top 25)")
    args = parser.parse_args(argv)
    if args.quick:
        args.tags, args.repositories, args.repeat = 1_000, 4, 1
    workdir = Path(tempfile.mkdtemp(prefix="plan-bench-"))
    registry = start_registry(workdir, "registry")
    proxy = DelayProxy(int(registry.url.rsplit(":", 1)[1]), args.rtt_ms / 1000)
    proxied = f"http://127.0.0.1:{proxy.port}"
    try:
        seeded = seed(workdir / "layout", registry, args.repositories, args.tags)
        concurrency = args.concurrency or Registry.concurrency
        root = repo_of_record(workdir / "policies", proxied, args.concurrency)
        print(f"plan benchmark: {seeded.tags:,} tags in {len(seeded.repositories)} repositories, two per image, "
              f"{args.rtt_ms:g} ms RTT added, concurrency {concurrency}, {os.cpu_count()} CPUs "
              f"(seeded in {seeded.seconds:.1f} s)")
        # The floor before the plans and again after them: other work on the machine comes and goes,
        # and the lower of the two is the registry's own.
        before = {kind: registry_floor(registry, seeded, concurrency, kind) for kind in ("cold", "warm")}
        env = {**os.environ, "RECONCILE_LOCK": "none"}
        command = [str(Path(sys.executable).with_name("reconcile")), "plan", "--repo", str(root),
                   "--audit-db", str(workdir / "audit.db"), "--format", "json"]
        cold, warm = [], []
        for n in range(args.repeat):
            cache = workdir / f"cache-{n}"
            cold.append(measured(command, registry, {**env, "RECONCILE_CACHE_DIR": str(cache)}))
            warm.append(measured(command, registry, {**env, "RECONCILE_CACHE_DIR": str(cache)}))
        after = {kind: registry_floor(registry, seeded, concurrency, kind) for kind in ("cold", "warm")}
        floors = {kind: min(before[kind], after[kind], key=lambda f: f.wall) for kind in before}
        if args.profile:
            stats = workdir / "cold.prof"
            subprocess.run([sys.executable, "-m", "cProfile", "-o", str(stats), *command], check=False,
                           capture_output=True, env={**env, "RECONCILE_CACHE_DIR": str(workdir / "cache-profiled")})
            import pstats
            pstats.Stats(str(stats)).sort_stats("tottime").print_stats(25)
        peer = None if args.skip_peer else [measured(peer_command(proxy_host(proxied), sorted(seeded.repositories)),
                                                     registry, env) for _ in range(args.repeat)]
        rtt = args.rtt_ms / 1000
        rows = []
        for label, runs in (("cold plan", cold), ("warm plan", warm)):
            wall = statistics.median(r.wall for r in runs)
            run = sorted(runs, key=lambda r: r.wall)[len(runs) // 2]  # the median run itself
            bound = run.total * rtt / concurrency
            rows.append((label, wall, run, bound))
        problems = agree(json.loads(cold[0].output), peer[0].output if peer else "", seeded, proxy_host(proxied)) \
            if peer else []
        print(f"{'':24} {'wall':>8} {'CPU':>7} {'peak RSS':>9} {'requests':>10} {'per tag':>8} {'bound':>8} "
              f"{'/bound':>7}")
        for label, wall, run, bound in rows:
            methods = ", ".join(f"{m} {c:,}" for m, c in run.requests.most_common())
            print(f"{label:24} {wall:7.1f}s {run.cpu:6.1f}s {run.maxrss_mib:7.0f}MiB {run.total:10,} "
                  f"{run.total / seeded.tags:8.2f} {bound:7.1f}s {wall / bound if bound else 0:6.2f}x  ({methods})")
        peer_run = None
        if peer:
            peer_wall = statistics.median(r.wall for r in peer)
            peer_run = sorted(peer, key=lambda r: r.wall)[len(peer) // 2]
            print(f"{'skopeo list-tags+xargs -P8 inspect --raw':24} {peer_wall:6.1f}s {peer_run.cpu:6.1f}s "
                  f"{peer_run.maxrss_mib:7.0f}MiB "
                  f"{peer_run.total:10,} {peer_run.total / seeded.tags:8.2f}")
        cpus = os.cpu_count() or 1
        print(f"CPU during each run (the median one), of {cpus} CPUs x wall:")
        cpu_rows = [(label, run) for label, _, run, _ in rows] + ([("skopeo", peer_run)] if peer_run else [])
        for label, run in cpu_rows:
            name = "skopeo" if label == "skopeo" else "reconcile"
            print(f"  {label:10} {name} {run.cpu:6.1f}s  registry {run.usage.registry:6.1f}s  "
                  f"proxy {run.usage.bench:5.1f}s  = {run.cpu + run.usage.registry + run.usage.bench:6.1f}s "
                  f"in {run.wall:.1f}s: {run.busy():4.0%} of the CPUs "
                  f"(the whole machine, this run included: {run.usage.machine_busy:.0%}); "
                  f"registry {run.usage.registry / max(1, run.total) * 1000:.2f} ms CPU per request")
        sent = {"cold": "GET of every manifest by tag and every config", "warm": "HEAD of every manifest by tag"}
        for kind, floor in floors.items():
            print(f"registry floor, {kind}: {floor.requests:,} requests (the {kind} plan's: {sent[kind]}"
                  f") straight to the registry, urllib3 x {concurrency} threads, no added latency: {floor.wall:.1f}s "
                  f"({floor.rate:,.0f}/s); registry CPU {floor.usage.registry:.1f}s, client {floor.usage.bench:.1f}s, "
                  f"the whole machine {floor.usage.machine_busy:.0%} busy; the lower of "
                  f"{before[kind].wall:.1f}s before the plans and {after[kind].wall:.1f}s after")
        if peer_run:
            print(f"cold plan vs skopeo: {peer_wall / rows[0][1]:.1f}x faster (target >= 10x)")
        print(f"cold requests per tag: {rows[0][2].total / seeded.tags:.2f} (target <= 1 per tag + 1 per new immutable "
              f"object); mutating: {sum(c for m, c in rows[0][2].requests.items() if m not in ('GET', 'HEAD'))}")
        print(f"cold plan / bound: {rows[0][1] / rows[0][3]:.2f}x, warm {rows[1][1] / rows[1][3]:.2f}x "
              "(target <= 1.2x)")
        against = []
        for label, wall, _, bound in rows:
            floor = floors[label.split()[0]].wall
            against.append(f"{label.split()[0]} {wall / max(bound, floor):.2f}x "
                           f"(of the {'floor' if floor > bound else 'bound'}, {max(bound, floor):.1f}s)")
        print(f"plan / max(bound, registry floor): {', '.join(against)} (context, not the target: "
              "no client of this registry on this machine does better than its floor)")
        spent = [(label.split()[0], wall, (run.cpu + run.usage.registry + run.usage.bench) / cpus)
                 for label, wall, run, _ in rows]
        print("plan / its own CPU over the CPUs ((reconcile + registry + proxy CPU) / "
              f"{cpus}, the wall time of that work with every CPU its own): "
              + ", ".join(f"{kind} {wall / need:.2f}x (of {need:.1f}s)" for kind, wall, need in spent))
        for problem in problems[:10]:
            print("DISAGREE", problem)
        return 1 if problems else 0
    finally:
        proxy.close()
        stop(registry)
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def proxy_host(url: str) -> str:
    return url.split("://", 1)[1]


if __name__ == "__main__":
    raise SystemExit(main())
