"""Benchmark of the registry adapter against skopeo, on real registries on loopback.

    python bench/registry_bench.py [--tags 300] [--layer-mib 100] [--repeat 3] [--copy-runs 3]
        [--repositories 60] [--repository-tags 3] [--phases observe,copy,repositories] [--keep]

Starts its own ``docker-registry`` processes (CNCF distribution, on 127.0.0.1 only, access log
on so that every request of either tool is counted the same way) and measures, in one run (or
only the ``--phases`` named):

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
3. **Observation of many small repositories**: ``--repositories`` repositories ``fleet/svc-NNN``
   of ``--repository-tags`` tags each, every image distinct (every tenth repository's newest a
   two-platform index), seeded by one skopeo push, cross-repository mounts, config uploads and
   manifest PUTs. ``client.repositories(["fleet/**"])`` (the catalog) then
   ``observe_repositories`` (the repositories side by side, within the client's concurrency),
   cold and warm, against the same in a loop of ``observe_repository`` (one repository after
   another, as before it) and against the peer: the catalog, then ``skopeo list-tags`` per
   repository and ``skopeo inspect --raw``/``--config`` per tag, every skopeo run on one thread
   pool as wide as reconcile's default concurrency. The two must agree on every tag.
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
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconcile.adapters.registry import copy_image, open_registry
from reconcile.observe.repositories import observe_repositories, observe_repository
from reconcile.observe.state import OCI_INDEX, OCI_MANIFEST, RepositoryState
from reconcile.policy.model import Registry
from tests.adapters.registry.oci import OCI_LAYER, REVISION, Built, Layout, push, put_tag, sha256

REPOSITORY = "team-a/web"
BIG_SOURCE = "bench/big"
FLEET = "fleet"  # phase 3: the repositories FLEET/svc-NNN, listed by the glob FLEET/**
FLEET_SEED = "bench/seed"  # outside FLEET/**: holds the layer the fleet's images share, mounted from here
PHASES = ("observe", "copy", "repositories")
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
    """A Registry policy as the loader builds it, every default kept."""
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


@dataclass
class SeededFleet:
    tags: dict[str, dict[str, Built]]  # repository -> tag -> what it points at
    images: int  # tagged manifests (images and indexes), all distinct across repositories
    indexes: int
    seconds: float


def upload_blob(url: str, repository: str, layout: Layout, descriptor: dict[str, Any]) -> None:
    """A small blob of the layout, uploaded monolithically (POST, then PUT with the bytes)."""
    data = (layout.path / "blobs" / "sha256" / descriptor["digest"].split(":")[1]).read_bytes()
    started = requests.post(f"{url}/v2/{repository}/blobs/uploads/", timeout=30)
    if started.status_code != 202:
        raise RuntimeError(f"starting an upload to {repository}: HTTP {started.status_code} {started.text}")
    location = requests.compat.urljoin(f"{url}/", started.headers["Location"])
    done = requests.put(location, params={"digest": descriptor["digest"]}, data=data, timeout=30,
                        headers={"Content-Type": "application/octet-stream"})
    if done.status_code != 201:
        raise RuntimeError(f"uploading {descriptor['digest']} to {repository}: HTTP {done.status_code} {done.text}")


def seed_repositories(directory: Path, registry: RunningRegistry, count: int, tags_each: int,
                      workers: int) -> SeededFleet:
    """``count`` repositories ``FLEET/svc-NNN`` of ``tags_each`` tags each: ``1.0.0``, ``1.1.0``, ...
    on distinct images and ``latest`` on the newest (every tenth repository's newest a two-platform
    index). Every image is distinct (its own config) so that no repository's observation is served
    from another's cache entries. One image is pushed by skopeo (to ``FLEET_SEED``, for the layer
    they all share); each repository then gets that layer by a cross-repository mount, its configs
    by monolithic uploads and its manifests by plain PUTs (``put_tag``): no skopeo run per image."""
    started = time.perf_counter()
    layout = Layout(directory)
    base = layout.blob(os.urandom(2048), OCI_LAYER)
    seed = layout.image(layers=[base], layer_sizes=(), seed=0)
    layout.tag(seed, "base")
    push(layout, "base", registry.host, FLEET_SEED)

    distinct = max(1, tags_each - 1)  # the last tag, `latest`, repeats the newest image
    fleet: dict[str, dict[str, Built]] = {}
    uploads: dict[str, tuple[list[dict[str, Any]], list[Built]]] = {}  # configs, children (index members)
    indexes = 0
    for i in range(count):
        repository = f"{FLEET}/svc-{i:03d}"
        manifests: list[Built] = []  # single-platform manifests: their configs to upload
        children: list[Built] = []  # index members: PUT by digest before their index
        tags: dict[str, Built] = {}
        for j in range(distinct):
            created = (CREATED + timedelta(days=j, minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            labels = {REVISION: f"{i:020x}{j:020x}",
                      "org.opencontainers.image.source": f"https://git.example.com/{repository}"}
            if i % 10 == 9 and j == distinct - 1:
                platforms = [(layout.image(arch=arch, created=created, labels=labels, layers=[base], layer_sizes=()),
                              arch) for arch in ("amd64", "arm64")]
                children += [child for child, _ in platforms]
                manifests += [child for child, _ in platforms]
                built = layout.index(platforms, created=created)
                indexes += 1
            else:
                built = layout.image(created=created, labels=labels, layers=[base], layer_sizes=())
                manifests.append(built)
            tags[f"1.{j}.0"] = built
        configs = [json.loads(manifest.data)["config"] for manifest in manifests]
        if tags_each > 1:
            tags["latest"] = built
        fleet[repository] = tags
        uploads[repository] = (configs, children)

    def one(repository: str) -> None:
        mounted = requests.post(f"{registry.url}/v2/{repository}/blobs/uploads/", timeout=30,
                                params={"mount": base["digest"], "from": FLEET_SEED})
        if mounted.status_code != 201:
            raise RuntimeError(f"mounting the base layer into {repository}: HTTP {mounted.status_code}")
        configs, children = uploads[repository]
        for config in configs:
            upload_blob(registry.url, repository, layout, config)
        for child in children:
            put_tag(registry.url, repository, child.digest, child)
        for tag, built in fleet[repository].items():
            put_tag(registry.url, repository, tag, built)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, fleet))
    return SeededFleet(fleet, count * distinct, indexes, time.perf_counter() - started)


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


def observe_fleet(url: str, cache: Path, concurrent: bool) -> tuple[float, float, tuple[RepositoryState, ...]]:
    """(wall seconds, CPU seconds, states) of listing ``FLEET/**`` through the catalog and observing
    every repository found, with ``observe_repositories`` (concurrent) or ``observe_repository``
    in a loop (sequential, as before it), with a new client."""
    client = open_registry(policy("bench", url), None, cache_dir=cache)
    try:
        started, cpu_started = time.perf_counter(), cpu()
        names = client.repositories([f"{FLEET}/**"])
        states = (observe_repositories(client, names) if concurrent
                  else tuple(observe_repository(client, name) for name in names))
        return time.perf_counter() - started, cpu() - cpu_started, states
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


PeerTags = dict[str, tuple[str, dict[str, Any]]]  # tag -> (digest, config), as skopeo saw it


def peer_observe(host: str, repository: str, workers: int) -> tuple[float, float, PeerTags]:
    """(wall seconds, CPU seconds of skopeo and of starting it, what it saw per tag)."""
    wall, used, found = peer_observe_many(host, [repository], workers)
    return wall, used, found[repository]


def peer_observe_many(host: str, repositories: list[str], workers: int
                      ) -> tuple[float, float, dict[str, PeerTags]]:
    """:func:`peer_observe` of several repositories: ``skopeo list-tags`` of each, then
    :func:`peer_tag` of each tag, every skopeo run on one pool of ``workers`` threads (a
    repository's tags are queued as soon as it is listed), or one after another for 1."""
    started, cpu_started = time.perf_counter(), cpu()

    def listed(repository: str) -> list[str]:
        return list(json.loads(skopeo("list-tags", "--tls-verify=false", f"docker://{host}/{repository}"))["Tags"])

    def inspect(repository: str, tag: str) -> tuple[str, str, str, dict[str, Any]]:
        return (repository, *peer_tag(host, repository, tag))

    if workers == 1:
        found = [inspect(repository, tag) for repository in repositories for tag in listed(repository)]
    else:
        pending: list[Future[tuple[str, str, str, dict[str, Any]]]] = []
        with ThreadPoolExecutor(max_workers=workers) as pool:
            def list_then_inspect(repository: str) -> None:
                futures = [pool.submit(inspect, repository, tag) for tag in listed(repository)]
                pending.extend(futures)  # one list.extend: atomic under the GIL

            list(pool.map(list_then_inspect, repositories))
            found = [future.result() for future in pending]
    by_repository: dict[str, PeerTags] = {repository: {} for repository in repositories}
    for repository, tag, digest, config in found:
        by_repository[repository][tag] = (digest, config)
    return time.perf_counter() - started, cpu() - cpu_started, by_repository


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


def phase_repositories(args: argparse.Namespace, source: RunningRegistry, workdir: Path, concurrency: int,
                       table: Table) -> list[str]:
    """3. Observation of a registry of many small repositories; returns the disagreements."""
    print(f"seeding {args.repositories} repositories of {args.repository_tags} tags into {source.host}/{FLEET}/ ...",
          flush=True)
    fleet = seed_repositories(workdir / "fleet-layout", source, args.repositories, args.repository_tags, workers=8)
    shutil.rmtree(workdir / "fleet-layout")
    total_tags = sum(len(tags) for tags in fleet.tags.values())
    print(f"  {fleet.images} images ({fleet.indexes} indexes) and {total_tags} tags in {fleet.seconds:.1f} s",
          flush=True)

    modes = ("concurrent", "sequential")
    runs: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    logged: dict[tuple[str, str], list[tuple[str, str, int, int]]] = {}
    states: tuple[RepositoryState, ...] = ()
    for kind in ("cold", "warm"):
        for attempt in range(args.repeat):
            for mode in modes if attempt % 2 == 0 else modes[::-1]:  # alternate which goes first
                print(f"observing {FLEET}/** with reconcile, {mode}, {kind}, {attempt + 1}/{args.repeat} ...",
                      flush=True)
                cache = workdir / "cache" / f"fleet-{mode}-cold-{attempt if kind == 'cold' else 0}"
                mark = source.mark()
                elapsed, used, states = observe_fleet(source.url, cache, concurrent=mode == "concurrent")
                runs.setdefault((mode, kind), []).append(elapsed)
                cpus.setdefault((mode, kind), []).append(used)
                logged[(mode, kind)] = source.requests_since(mark)
                if len(states) != len(fleet.tags):
                    raise RuntimeError(f"reconcile found {len(states)} repositories under {FLEET}/**, "
                                       f"not {len(fleet.tags)}")

    print(f"observing {FLEET}/** with skopeo, {concurrency} threads ...", flush=True)
    mark = source.mark()
    peer_started = time.perf_counter()
    # What a script would do first: the catalog (one GET; skopeo has no command for it).
    catalog = requests.get(f"{source.url}/v2/_catalog", params={"n": "1000"}, timeout=30).json()["repositories"]
    names = sorted(name for name in catalog if name.startswith(f"{FLEET}/"))
    catalog_s = time.perf_counter() - peer_started
    peer_s, peer_cpu, peer = peer_observe_many(source.host, names, concurrency)
    peer_s += catalog_s
    logged["peer", ""] = source.requests_since(mark)

    by_name = {state.repository: state for state in states}
    wrong = sorted(set(by_name) ^ set(peer))
    for name in sorted(set(by_name) & set(peer)):
        wrong += [f"{name}:{tag}" for tag in disagreements(by_name[name], peer[name])]
    peer_tags = sum(len(tags) for tags in peer.values())

    table.heading(f"observation of many repositories: {len(fleet.tags)} repositories {FLEET}/svc-NNN listed by the "
                  f"glob {FLEET}/**, {args.repository_tags} tags each ({total_tags:,} tags, {fleet.images} images, "
                  f"{fleet.indexes} of them two-platform indexes), concurrency {concurrency}")
    wall = {key: statistics.median(values) for key, values in runs.items()}
    used = {key: statistics.median(values) for key, values in cpus.items()}
    labels = {"concurrent": "reconcile observe_repositories", "sequential": "reconcile observe_repository loop"}
    for mode in modes:
        for kind in ("cold", "warm"):
            table.add(f"{labels[mode]}, {kind}", seconds(wall[mode, kind]),
                      f"median of {args.repeat} ({', '.join(f'{s:.2f}' for s in runs[mode, kind])}), "
                      f"CPU {used[mode, kind]:.2f} s; {breakdown(logged[mode, kind])}")
    table.add(f"peer: skopeo, {concurrency} threads", seconds(peer_s),
              f"CPU {peer_cpu:.1f} s; a catalog GET, then {len(peer) + 2 * peer_tags:,} skopeo runs; "
              f"{breakdown(logged['peer', ''])}")
    for kind in ("cold", "warm"):
        table.add(f"reconcile/peer, {kind}", f"{wall['concurrent', kind] / peer_s:.3f}x",
                  f"observe_repositories vs {concurrency} threads; CPU {used['concurrent', kind] / peer_cpu:.3f}x; "
                  f"sequential loop {wall['sequential', kind] / peer_s:.3f}x")
    for kind in ("cold", "warm"):
        table.add(f"concurrent/sequential, {kind}", f"{wall['concurrent', kind] / wall['sequential', kind]:.3f}x",
                  f"observe_repositories vs observe_repository in a loop; "
                  f"CPU {used['concurrent', kind] / used['sequential', kind]:.3f}x")
    table.add("agreement", f"{peer_tags - len(set(wrong))}/{peer_tags}",
              f"tags with the same digest, created and labels from both, over {len(peer)} repositories"
              + (f"; DIFFER: {sorted(set(wrong))[:5]}" if wrong else ""))
    return wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tags", type=int, default=300, help="tags in the observed repository")
    parser.add_argument("--layer-mib", type=int, default=100, help="size of the copied image's layer")
    parser.add_argument("--repeat", type=int, default=3, help="in-process observations of each kind (median)")
    parser.add_argument("--copy-runs", type=int, default=3, help="copies of each kind per tool (median)")
    parser.add_argument("--repositories", type=int, default=60, help="repositories of phase 3")
    parser.add_argument("--repository-tags", type=int, default=3, help="tags in each repository of phase 3")
    parser.add_argument("--phases", default=",".join(PHASES),
                        help=f"comma-separated phases to run, of {', '.join(PHASES)} (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(json.loads(args.child))
    phases = {phase.strip() for phase in args.phases.split(",") if phase.strip()}
    if not phases or phases - set(PHASES):
        parser.error(f"--phases: choose among {', '.join(PHASES)} (got {args.phases!r})")
    if args.repositories < 1 or args.repository_tags < 1:
        parser.error("--repositories and --repository-tags must be at least 1")
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
    wrong: list[str] = []
    try:
        source = start("source")

        if "observe" in phases:  # 1. observation of one repository ----------------------------------
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
            wrong += disagreements(state, peer) + disagreements(state, peer_seq)

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

        if "copy" in phases:  # 2. copy -------------------------------------------------------------------
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
                wall = {tool: statistics.median(r.wall for r in results[(mode, tool)])
                        for tool in ("reconcile", "skopeo")}
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

        if "repositories" in phases:  # 3. observation of many repositories -----------------------------
            wrong += phase_repositories(args, source, workdir, concurrency, table)

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
