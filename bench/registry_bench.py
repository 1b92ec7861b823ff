"""Benchmark of the registry adapter against skopeo, on real registries on loopback.

    python bench/registry_bench.py [--tags 300] [--layer-mib 100] [--repeat 3] [--copy-runs 3] [--keep]

Starts its own ``docker-registry`` processes (CNCF distribution, on 127.0.0.1 only, access log
on so that every request of either tool is counted the same way) and measures, in one run:

1. **Observation** of one repository of ``--tags`` tags over ``--tags``/3 distinct images (one in
   ten a two-platform index), pushed by skopeo with the extra tags added by plain manifest PUTs:
   ``observe_repository`` with an empty cache (cold) and again with the same cache (warm), in
   this process and in a fresh one (interpreter start and imports included), against the peer:
   ``skopeo list-tags``, then ``skopeo inspect --raw`` (the digest) and ``skopeo inspect
   --config`` (created, labels: what reconcile reads) per tag, on a thread pool as wide as
   reconcile's default concurrency, and sequentially as a shell loop would. The two must agree
   on every tag's digest, created time and labels.
2. **Copy** of one image with a ``--layer-mib`` MiB layer by digest, between two repositories of
   one registry (both tools mount the layer) and between two registries (the bytes are
   streamed): ``copy_image`` against ``skopeo copy --all --preserve-digests``. Each copy runs in
   a fresh process, timed and measured (peak RSS, ``getrusage(RUSAGE_CHILDREN).ru_maxrss``) by a
   fresh wrapper process, into a fresh destination (a fresh registry for registry to registry,
   so that skopeo's blob-info cache cannot turn the upload into a mount).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconcile.observe.registry import copy_image, observe_repository, open_registry
from reconcile.observe.state import OCI_INDEX, OCI_MANIFEST, RepositoryState
from reconcile.policy.model import Registry
from tests.observe.registry.oci import REVISION, Built, Layout, push, put_tag, sha256

REPOSITORY = "team-a/web"
BIG_SOURCE = "bench/big"
CREATED = datetime(2024, 1, 1, tzinfo=UTC)
ACCESS = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3}) (\d+|-)')
# Runs the command given as arguments, in a process of its own: its wall time, and its peak RSS as
# this wrapper's RUSAGE_CHILDREN (the largest of its waited-for children: here, that one command).
MEASURE = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
run = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - started
print(json.dumps({"wall": wall, "maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  "returncode": run.returncode, "stdout": run.stdout, "stderr": run.stderr[-4000:]}))
"""


# --- registries -----------------------------------------------------------------------------------
# As tests.conftest.start_registry, without pytest, and with the access log on (request counts).

@dataclass
class RunningRegistry:
    name: str
    url: str
    root: Path
    process: subprocess.Popen[bytes]

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    @property
    def log(self) -> Path:
        return self.root / "registry.log"

    def mark(self) -> int:
        """Where the access log ends now; :meth:`requests_since` counts what comes after."""
        return self.log.stat().st_size

    def requests_since(self, mark: int) -> list[tuple[str, str, int, int]]:
        """(method, path, status, bytes) of every request logged after ``mark``."""
        settle(self.log)
        with self.log.open("rb") as handle:
            handle.seek(mark)
            text = handle.read().decode(errors="replace")
        found = []
        for match in ACCESS.finditer(text):
            method, path, status, size = match.groups()
            found.append((method, path, int(status), int(size) if size.isdigit() else 0))
        return found


def settle(path: Path, quiet: float = 0.15, limit: float = 3.0) -> None:
    """Wait until the log stops growing: the registry writes a request's line after answering."""
    deadline = time.monotonic() + limit
    size = path.stat().st_size
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = path.stat().st_size
        if now == size:
            return
        size = now


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_registry(directory: Path, name: str) -> RunningRegistry:
    port = free_port()
    root = directory / name
    (root / "data").mkdir(parents=True)
    config = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": False}},
        "storage": {"filesystem": {"rootdirectory": str(root / "data")}, "delete": {"enabled": True},
                    "maintenance": {"uploadpurging": {"enabled": False}}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
    }
    (root / "config.yml").write_text(json.dumps(config))  # JSON is YAML
    with (root / "registry.log").open("wb") as log:
        process = subprocess.Popen(["docker-registry", "serve", str(root / "config.yml")], stdout=log,
                                   stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"docker-registry {name} exited: {(root / 'registry.log').read_text()}")
        try:
            if requests.get(f"{url}/v2/", timeout=1).status_code == 200:
                return RunningRegistry(name, url, root, process)
        except requests.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit(f"docker-registry {name} did not become ready on {url}")


def stop(registry: RunningRegistry) -> None:
    registry.process.terminate()
    try:
        registry.process.wait(10)
    except subprocess.TimeoutExpired:
        registry.process.kill()
        registry.process.wait()


def policy(name: str, url: str) -> Registry:
    """A Registry policy as the loader builds it, every default kept (concurrency 8)."""
    return Registry(name=name, url=url, credentials=None, allowed_hosts=(url.split("://", 1)[1],))


def breakdown(logged: list[tuple[str, str, int, int]]) -> str:
    methods = Counter(method for method, _, _, _ in logged)
    pings = sum(1 for _, path, _, _ in logged if path == "/v2/")
    text = f"{len(logged):,} requests (" + ", ".join(f"{m} {n:,}" for m, n in methods.most_common())
    return text + (f"; {pings:,} of them GET /v2/)" if pings else ")")


# --- seeding ----------------------------------------------------------------------------------------

@dataclass
class Seeded:
    tags: dict[str, Built]
    distinct: int
    indexes: int
    seconds: float


def seed_repository(directory: Path, registry: RunningRegistry, repository: str, count: int,
                    workers: int) -> Seeded:
    """``count`` tags over ``count // 3`` distinct images (every tenth a two-platform index),
    each image pushed once by skopeo, the other tags added by a manifest PUT."""
    started = time.perf_counter()
    layout = Layout(directory)
    base = layout.blob(os.urandom(2048), "application/vnd.oci.image.layer.v1.tar")  # shared by all
    distinct = max(1, count // 3)
    images: list[tuple[str, Built]] = []
    indexes = 0
    for i in range(distinct):
        created = (CREATED + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        labels = {REVISION: f"{i:040x}", "org.opencontainers.image.source": "https://git.example.com/team-a/web"}
        if i % 10 == 9:
            platforms = [(layout.image(arch=arch, created=created, labels=labels, layers=[base], seed=2 * i + n), arch)
                         for n, arch in enumerate(("amd64", "arm64"))]
            built = layout.index(platforms, created=created)
            indexes += 1
        else:
            built = layout.image(created=created, labels=labels, layers=[base], seed=2 * i)
        images.append((f"build-{i:04d}", built))
    for tag, built in images:
        layout.tag(built, tag)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda item: push(layout, item[0], registry.host, repository), images))
    tags = dict(images)
    extra = [(f"main-{j:04d}" if j % 2 else f"v1.{j // 2}.0", images[j % distinct][1])
             for j in range(count - distinct)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda item: put_tag(registry.url, repository, item[0], item[1]), extra))
    tags.update(extra)
    return Seeded(tags, distinct, indexes, time.perf_counter() - started)


# --- observation --------------------------------------------------------------------------------------

def cpu() -> float:
    """CPU seconds of this process (every thread) and of its waited-for children (skopeo runs)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def observe(url: str, repository: str, cache: Path) -> tuple[float, float, RepositoryState]:
    """(wall seconds, CPU seconds, state) of one ``observe_repository`` with a new client."""
    client = open_registry(policy("bench", url), None, cache_dir=cache)
    try:
        started, cpu_started = time.perf_counter(), cpu()
        state = observe_repository(client, repository)
        return time.perf_counter() - started, cpu() - cpu_started, state
    finally:
        client.close()


def skopeo(*args: str) -> bytes:
    run = subprocess.run(["skopeo", *args], capture_output=True, timeout=300)
    if run.returncode != 0:
        raise RuntimeError(f"skopeo {' '.join(args)}: {run.stderr.decode(errors='replace')}")
    return run.stdout


def peer_tag(host: str, repository: str, tag: str) -> tuple[str, str, dict[str, Any]]:
    """What a script learns of a tag with skopeo: the manifest digest (sha256 of the raw bytes)
    and the image config (for an index: the config of this machine's platform)."""
    reference = f"docker://{host}/{repository}:{tag}"
    raw = skopeo("inspect", "--raw", "--tls-verify=false", reference)
    config = json.loads(skopeo("inspect", "--config", "--tls-verify=false", reference))
    return tag, sha256(raw), config


def peer_observe(host: str, repository: str, workers: int
                 ) -> tuple[float, float, dict[str, tuple[str, dict[str, Any]]]]:
    """(wall seconds, CPU seconds of skopeo and of starting it, what it saw per tag)."""
    started, cpu_started = time.perf_counter(), cpu()
    listed = json.loads(skopeo("list-tags", "--tls-verify=false", f"docker://{host}/{repository}"))["Tags"]
    if workers == 1:
        found = [peer_tag(host, repository, tag) for tag in listed]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            found = list(pool.map(lambda tag: peer_tag(host, repository, tag), listed))
    return time.perf_counter() - started, cpu() - cpu_started, {tag: (digest, config) for tag, digest, config in found}


def disagreements(state: RepositoryState, peer: dict[str, tuple[str, dict[str, Any]]]) -> list[str]:
    """Tags on which reconcile and skopeo do not see the same digest, created time and labels."""
    wrong = sorted(set(state.tags) ^ set(peer))
    for tag, (digest, config) in peer.items():
        seen = state.tags.get(tag)
        if seen is None or seen.digest != digest:
            wrong.append(tag)
            continue
        image = state.images[digest]
        if image.children:  # skopeo read the config of this machine's platform
            child = next(c for c in image.children if c.platform and c.platform.architecture == config["architecture"])
            image = state.images[child.digest]
        created = datetime.fromisoformat(config["created"].replace("Z", "+00:00"))
        if image.created != created or dict(image.labels) != (config.get("config", {}).get("Labels") or {}):
            wrong.append(tag)
    return wrong


# --- fresh processes --------------------------------------------------------------------------------

@dataclass
class Measured:
    wall: float
    maxrss_mib: float
    output: dict[str, Any]


def measure(command: list[str]) -> Measured:
    """``command`` in a fresh process, run by a fresh wrapper process that reports its wall time
    and peak RSS."""
    run = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        raise RuntimeError(f"measuring {command}: {run.stderr}")
    result = json.loads(run.stdout)
    if result["returncode"] != 0:
        raise RuntimeError(f"{' '.join(command[:3])}... failed: {result['stderr']}")
    output = json.loads(result["stdout"]) if result["stdout"].startswith("{") else {}
    return Measured(result["wall"], result["maxrss_kib"] / 1024, output)


def child_command(task: dict[str, Any]) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(task)]


def child(task: dict[str, Any]) -> int:
    """The reconcile side of a fresh-process measurement: prints its in-process time as JSON."""
    if task["kind"] == "observe":
        seconds, _, state = observe(task["url"], task["repository"], Path(task["cache"]))
        print(json.dumps({"seconds": seconds, "tags": len(state.tags), "images": len(state.images)}))
        return 0
    source = open_registry(policy("source", task["source"]), None, cache_dir=task["cache"])
    dest = open_registry(policy("dest", task["dest"]), None, cache_dir=task["cache"])
    try:
        if task["kind"] == "imports":  # the interpreter, the imports and two clients: the floor
            print(json.dumps({"seconds": 0.0}))
            return 0
        started = time.perf_counter()
        result = copy_image(source, task["source_repository"], task["digest"], dest, task["dest_repository"],
                            task["tags"])
        print(json.dumps({"seconds": time.perf_counter() - started, "blobs_copied": result.blobs_copied,
                          "blobs_mounted": result.blobs_mounted, "bytes_copied": result.bytes_copied}))
    finally:
        source.close()
        dest.close()
    return 0


# --- copy ---------------------------------------------------------------------------------------------

@dataclass
class CopyRun:
    tool: str
    wall: float
    inner: float | None  # reconcile: copy_image itself, without interpreter start and imports
    maxrss_mib: float
    requests: int
    mounted: int
    blob_bytes: int  # blob bytes read from the source (the access log has no request body sizes)


def dest_digest(url: str, repository: str, tag: str) -> str:
    response = requests.head(f"{url}/v2/{repository}/manifests/{tag}", timeout=30,
                             headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"})
    return response.headers.get("Docker-Content-Digest", f"HTTP {response.status_code}")


def copy_once(tool: str, source: RunningRegistry, dest: RunningRegistry, dest_repository: str, digest: str,
              cache: Path) -> CopyRun:
    registries = [source] if source is dest else [source, dest]
    marks = [r.mark() for r in registries]
    if tool == "reconcile":
        measured = measure(child_command({
            "kind": "copy", "source": source.url, "dest": dest.url, "source_repository": BIG_SOURCE,
            "digest": digest, "dest_repository": dest_repository, "tags": ["v1"], "cache": str(cache)}))
    else:
        measured = measure(["skopeo", "copy", "-q", "--all", "--preserve-digests", "--src-tls-verify=false",
                            "--dest-tls-verify=false", f"docker://{source.host}/{BIG_SOURCE}@{digest}",
                            f"docker://{dest.host}/{dest_repository}:v1"])
    logged = [entry for r, mark in zip(registries, marks, strict=True) for entry in r.requests_since(mark)]
    copied = dest_digest(dest.url, dest_repository, "v1")
    if copied != digest:
        raise RuntimeError(f"{tool} copy to {dest.name}/{dest_repository}: v1 is {copied}, not {digest}")
    mounted = sum(1 for method, path, status, _ in logged if method == "POST" and "mount=" in path and status == 201)
    pulled = sum(size for method, path, status, size in logged
                 if method == "GET" and "/blobs/" in path and status == 200)
    return CopyRun(tool, measured.wall, measured.output.get("seconds"), measured.maxrss_mib, len(logged), mounted,
                   pulled)


# --- main -------------------------------------------------------------------------------------------

def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


@dataclass
class Table:
    rows: list[tuple[str, str | None, str]]

    def add(self, name: str, value: str = "", note: str = "") -> None:
        self.rows.append((name, value, note))

    def heading(self, text: str) -> None:
        self.rows.append((text, None, ""))

    def lines(self) -> Iterator[str]:
        width = max(len(name) for name, value, _ in self.rows if value is not None)
        for name, value, note in self.rows:
            yield name if value is None else f"  {name:<{width}}  {value:>9}  {note}".rstrip()


def seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tags", type=int, default=300, help="tags in the observed repository")
    parser.add_argument("--layer-mib", type=int, default=100, help="size of the copied image's layer")
    parser.add_argument("--repeat", type=int, default=3, help="in-process observations of each kind (median)")
    parser.add_argument("--copy-runs", type=int, default=3, help="copies of each kind per tool (median)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(json.loads(args.child))
    # Everything here is on 127.0.0.1: never through a proxy from the environment (children inherit it).
    for variable in ("NO_PROXY", "no_proxy"):
        os.environ[variable] = ",".join(filter(None, (os.environ.get(variable), "127.0.0.1")))
    for binary in ("docker-registry", "skopeo"):
        if shutil.which(binary) is None:
            parser.error(f"{binary} is needed (apt-get install {binary})")

    workdir = Path(tempfile.mkdtemp(prefix="registry-bench-"))
    started_all = time.perf_counter()
    registries: list[RunningRegistry] = []
    lock = threading.Lock()

    def start(name: str) -> RunningRegistry:
        registry = start_registry(workdir / "registries", name)
        with lock:
            registries.append(registry)
        return registry

    def retire(registry: RunningRegistry) -> None:
        stop(registry)
        registries.remove(registry)
        shutil.rmtree(registry.root, ignore_errors=True)

    concurrency = policy("x", "http://127.0.0.1").concurrency
    table = Table([])
    try:
        source = start("source")

        # 1. observation ---------------------------------------------------------------------------
        print(f"seeding {args.tags:,} tags into {source.host}/{REPOSITORY} ...", flush=True)
        seeded = seed_repository(workdir / "layout", source, REPOSITORY, args.tags, workers=4)
        print(f"  {seeded.distinct} images ({seeded.indexes} indexes) and {len(seeded.tags)} tags in "
              f"{seeded.seconds:.1f} s", flush=True)

        print("observing with reconcile ...", flush=True)
        runs: dict[str, list[float]] = {"cold": [], "warm": []}
        cpus: dict[str, list[float]] = {"cold": [], "warm": []}
        logged: dict[str, list[tuple[str, str, int, int]]] = {}
        state = None
        for kind in ("cold", "warm"):
            for attempt in range(args.repeat):
                cache = workdir / "cache" / (f"cold-{attempt}" if kind == "cold" else "cold-0")
                mark = source.mark()
                elapsed, used, state = observe(source.url, REPOSITORY, cache)
                runs[kind].append(elapsed)
                cpus[kind].append(used)
                logged[kind] = source.requests_since(mark)
        assert state is not None
        fresh: dict[str, Measured] = {}
        for kind in ("cold", "warm"):
            cache = workdir / "cache" / "fresh"  # empty for the cold run, filled by it for the warm one
            fresh[kind] = measure(child_command({"kind": "observe", "url": source.url, "repository": REPOSITORY,
                                                 "cache": str(cache)}))

        print(f"observing with skopeo, {concurrency} threads ...", flush=True)
        mark = source.mark()
        peer_threads_s, peer_threads_cpu, peer = peer_observe(source.host, REPOSITORY, concurrency)
        logged["peer"] = source.requests_since(mark)
        print("observing with skopeo, sequentially ...", flush=True)
        peer_seq_s, peer_seq_cpu, peer_seq = peer_observe(source.host, REPOSITORY, 1)
        wrong = disagreements(state, peer) + disagreements(state, peer_seq)

        table.heading(f"observation: {REPOSITORY}, {len(seeded.tags):,} tags, {seeded.distinct} images "
                      f"({seeded.indexes} of them two-platform indexes), concurrency {concurrency}")
        cold, warm = statistics.median(runs["cold"]), statistics.median(runs["warm"])
        cold_cpu, warm_cpu = statistics.median(cpus["cold"]), statistics.median(cpus["warm"])
        for kind, wall, used in (("cold", cold, cold_cpu), ("warm", warm, warm_cpu)):
            table.add(f"reconcile observe_repository, {kind}", seconds(wall),
                      f"median of {args.repeat} ({', '.join(f'{s:.2f}' for s in runs[kind])}), CPU {used:.2f} s; "
                      f"{breakdown(logged[kind])}")
        for kind in ("cold", "warm"):
            table.add(f"  {kind}, in a fresh process", seconds(fresh[kind].wall),
                      f"interpreter + imports + {fresh[kind].output['seconds']:.2f} s observing; "
                      f"peak RSS {fresh[kind].maxrss_mib:.0f} MiB")
        table.add(f"peer: skopeo, {concurrency} threads", seconds(peer_threads_s),
                  f"CPU {peer_threads_cpu:.1f} s; {2 * len(peer) + 1:,} skopeo runs; {breakdown(logged['peer'])}")
        table.add("peer: skopeo, sequential", seconds(peer_seq_s),
                  f"CPU {peer_seq_cpu:.1f} s; the same, one at a time")
        for kind, wall, used in (("cold", cold, cold_cpu), ("warm", warm, warm_cpu)):
            table.add(f"reconcile/peer, {kind}", f"{wall / peer_threads_s:.3f}x",
                      f"vs {concurrency} threads; {wall / peer_seq_s:.3f}x vs sequential; "
                      f"fresh process {fresh[kind].wall / peer_threads_s:.3f}x; CPU {used / peer_threads_cpu:.3f}x")
        table.add("agreement", f"{len(peer) - len(set(wrong))}/{len(peer)}",
                  "tags with the same digest, created and labels from both"
                  + (f"; DIFFER: {sorted(set(wrong))[:5]}" if wrong else ""))

        # 2. copy ------------------------------------------------------------------------------------
        size = args.layer_mib * 1024 * 1024
        print(f"building and pushing an image with a {args.layer_mib} MiB layer ...", flush=True)
        big = Layout(workdir / "big")
        image = big.image(layers=[big.big_blob(size, seed=7)], layer_sizes=(), labels={REVISION: "f" * 40})
        big.tag(image, "v1")
        push_s, _ = timed(lambda: push(big, "v1", source.host, BIG_SOURCE))
        shutil.rmtree(workdir / "big")
        table.heading(f"copy: one image, a {args.layer_mib} MiB layer, by digest, each copy in a fresh process")
        table.add("push (skopeo, from a layout)", seconds(push_s), "setup, for scale")
        floor = measure(child_command({"kind": "imports", "source": source.url, "dest": source.url,
                                       "cache": str(workdir / "cache" / "copy")}))
        results: dict[tuple[str, str], list[CopyRun]] = {}
        for run in range(args.copy_runs):
            order = ("reconcile", "skopeo") if run % 2 == 0 else ("skopeo", "reconcile")
            for tool in order:
                print(f"copying, run {run + 1}/{args.copy_runs}, {tool} ...", flush=True)
                cache = workdir / "cache" / f"copy-{tool}-{run}"
                results.setdefault(("same registry", tool), []).append(
                    copy_once(tool, source, source, f"bench/copy-{tool}-{run}", image.digest, cache))
                dest = start(f"dest-{tool}-{run}")
                results.setdefault(("registry to registry", tool), []).append(
                    copy_once(tool, source, dest, "bench/copied", image.digest, cache))
                retire(dest)
        table.add("reconcile floor", seconds(floor.wall),
                  f"a fresh process that only imports and opens two clients; peak RSS {floor.maxrss_mib:.0f} MiB")
        for mode in ("same registry", "registry to registry"):
            table.add(f"{mode}:", "")
            wall = {tool: statistics.median(r.wall for r in results[(mode, tool)]) for tool in ("reconcile", "skopeo")}
            rss = {tool: statistics.median(r.maxrss_mib for r in results[(mode, tool)])
                   for tool in ("reconcile", "skopeo")}
            inner = statistics.median(r.inner or 0.0 for r in results[(mode, "reconcile")])
            for tool, label in (("reconcile", "reconcile copy_image"), ("skopeo", "skopeo copy")):
                done = results[(mode, tool)]
                last = done[-1]
                table.add(f"  {label}", seconds(wall[tool]),
                          f"median of {len(done)} ({', '.join(f'{r.wall:.2f}' for r in done)}); "
                          f"peak RSS {rss[tool]:.0f} MiB; "
                          + (f"{inner:.2f} s in copy_image; " if tool == "reconcile" else "")
                          + f"{last.requests} requests, {last.mounted} blob mounts, "
                          f"{last.blob_bytes / 2**20:.0f} MiB of blobs read")
            table.add("  reconcile/skopeo", f"{wall['reconcile'] / wall['skopeo']:.2f}x",
                      f"time; peak RSS {rss['reconcile'] / rss['skopeo']:.2f}x; "
                      f"copy_image alone/skopeo process {inner / wall['skopeo']:.2f}x")
    finally:
        for registry in list(registries):
            stop(registry)
        if args.keep:
            print(f"\nkept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(f"registry benchmark: {os.cpu_count()} CPUs, {socket.gethostname()}, "
          f"{subprocess.run(['skopeo', '--version'], capture_output=True, text=True).stdout.strip()}, "
          f"docker-registry {registry_version()}, Python {sys.version.split()[0]}")
    table.add("total", seconds(time.perf_counter() - started_all), "this whole run, setup included")
    print("\n".join(table.lines()))
    return 1 if wrong else 0


def registry_version() -> str:
    run = subprocess.run(["docker-registry", "--version"], capture_output=True, text=True)
    return run.stdout.split()[2] if len(run.stdout.split()) > 2 else run.stdout.strip()


if __name__ == "__main__":
    raise SystemExit(main())
