"""Memory and time of a whole ``reconcile plan --format json --out FILE`` as the tags grow, against a
fake registry answering from a generator (issue 17 item 5: bounded memory, time linear in tags).

    python bench/memory_bench.py [--sizes 10000,100000,300000,1000000] [--per-repository 5000] [--quick]
        [--profile] [--top 25]

No HTTP and no registry process: in each measured process ``reconcile.observe.world.open_registry``
(where observation opens a Registry's client) is replaced by :class:`GeneratedRegistry`, which
implements what observation uses of ``RegistryClient`` and derives every answer from the
repository's index and the image's number, holding nothing per tag itself. What the process
holds is reconcile's own: the observation, the plan and its JSON.

The repo-of-record is one Registry and one RetentionPolicy keeping the last 10 builds of every
repository (the shape of ``bench/plan_bench.py``): ``--per-repository`` tags in each of
``bench/svc-NNN`` (so 10k tags are 2 repositories, 1M are 200), two tags per image (``build-N``,
``sha-RRNNNNNN``), each image its own manifest and config with a distinct creation time and a
label, as ``docker build`` pushes them. Each size runs ``reconcile plan --repo ... --format json
--out FILE`` through the command line's own entry point, in a fresh process (stdout, the same JSON,
to /dev/null), measured by a wrapper: peak RSS (``getrusage(RUSAGE_CHILDREN).ru_maxrss``), wall
and CPU time, time per tag, and RSS per tag above the smallest run. ``--quick``: sizes up to 100k
only. ``--profile``: also a tracemalloc snapshot by line at the peak of a 100k run (where the
memory is, top ``--top`` lines). Exit code 0 when every run planned what keep-last-10 leaves.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.policies import KEEP, retention_repo
from reconcile.adapters.registry.content import Manifest, fallback_referrers, glob_pattern
from reconcile.adapters.registry.content import image as parse_image
from reconcile.observe.state import OCI_MANIFEST, Descriptor, Image
from reconcile.policy.model import Deletion, Registry

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER = "sha256:" + hashlib.sha256(b"the one shared layer").hexdigest()
_TAG = re.compile(r"^(?:build-(?P<n>\d+)|sha-(?P<r>[0-9a-f]{2,})(?P<m>[0-9a-f]{6}))$")
_REPOSITORY = re.compile(r"^bench/svc-(?P<r>\d{3})$")
SIZES = (10_000, 100_000, 300_000, 1_000_000)

# The measured process's peak RSS, wall and CPU time: the command given as arguments, its output
# to files (stdout to /dev/null), measured from here (RUSAGE_CHILDREN: that one child).
MEASURE = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
with open(sys.argv[1], "w") as err:
    code = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=err).returncode
wall = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall": wall, "maxrss_kib": usage.ru_maxrss, "cpu": usage.ru_utime + usage.ru_stime,
                  "returncode": code}))
"""


# --- the generated registry ---------------------------------------------------------------------------

class GeneratedRegistry:
    """A registry of ``repositories`` repositories ``bench/svc-NNN`` holding ``images`` images each,
    tagged ``build-N`` and ``sha-RRNNNNNN``: every answer computed from (repository, image number),
    nothing stored. A digest carries its image's numbers in its last 20 hex digits (a fake does not
    verify content, so the digest need not be the manifest's hash; it is unique and stable)."""

    def __init__(self, registry: Registry, repositories: int, images: int) -> None:
        self.name = registry.name
        self.endpoint = registry.url
        self.concurrency = registry.concurrency
        self.deletion: Deletion = registry.deletion_mode
        self.limits = registry.limits_or_default
        self.count, self.images = repositories, images

    # what an image is
    @staticmethod
    def digest(r: int, n: int) -> str:
        return "sha256:" + hashlib.sha256(f"{r}/{n}".encode()).hexdigest()[:44] + f"{r:08x}{n:012x}"

    @staticmethod
    def _numbers(digest: str) -> tuple[int, int]:
        return int(digest[-20:-12], 16), int(digest[-12:], 16)

    @staticmethod
    def config(r: int, n: int) -> bytes:
        created = (CREATED + timedelta(minutes=n, seconds=r)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return json.dumps({"architecture": "amd64", "os": "linux", "created": created,
                           "config": {"Labels": {"bench": f"{r}-{n}"}},
                           "rootfs": {"type": "layers", "diff_ids": [LAYER]}}, separators=(",", ":")).encode()

    def _manifest(self, r: int, n: int) -> Manifest:
        config = self.config(r, n)
        data = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": OCI_CONFIG, "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                                      "size": len(config)},
                           "layers": [{"mediaType": OCI_LAYER, "digest": LAYER, "size": 1024}]},
                          separators=(",", ":")).encode()
        return Manifest(self.digest(r, n), OCI_MANIFEST, data)

    def _image_of(self, repository: str, tag: str) -> tuple[int, int] | None:
        found, at = _TAG.match(tag), _REPOSITORY.match(repository)
        if found is None or at is None or int(at["r"]) >= self.count:
            return None
        r = int(at["r"])
        n = int(found["n"]) if found["n"] is not None else int(found["m"], 16)
        if found["r"] is not None and int(found["r"], 16) != r:
            return None
        return (r, n) if n < self.images else None

    # RegistryClient: what observation uses
    def ping(self) -> None:
        pass

    def repositories(self, patterns: Sequence[str] = ("**",)) -> list[str]:
        matcher = glob_pattern(patterns)
        return [name for r in range(self.count) if matcher.match(name := f"bench/svc-{r:03d}")]

    def tags(self, repository: str) -> list[str]:
        at = _REPOSITORY.match(repository)
        if at is None or int(at["r"]) >= self.count:
            return []
        r = int(at["r"])
        return sorted(tag for n in range(self.images) for tag in (f"build-{n}", f"sha-{r:02x}{n:06x}"))

    def list_tags(self, repository: str) -> None:
        return None  # no bulk listing: every tag resolved, as from a plain Distribution registry

    def resolve(self, repository: str, reference: str) -> Descriptor | None:
        found = self._image_of(repository, reference)
        return None if found is None else self._manifest(*found).descriptor

    def resolve_tag(self, repository: str, tag: str, seen: str | None = None) -> Descriptor | None:
        return self.resolve(repository, tag)

    def last_seen(self, repository: str) -> Mapping[str, str]:
        return {}

    def remember(self, repository: str, tags: Mapping[str, Descriptor]) -> None:
        pass

    def manifest(self, repository: str, reference: str) -> Manifest:
        if reference.startswith("sha256:"):
            return self._manifest(*self._numbers(reference))
        found = self._image_of(repository, reference)
        if found is None:
            raise LookupError(f"{repository}:{reference}: no such tag")
        return self._manifest(*found)

    def image(self, repository: str, digest: str) -> Image:
        r, n = self._numbers(digest)
        return parse_image(self._manifest(r, n), self.config(r, n))

    def referrers(self, repository: str, digest: str,
                  tags: Mapping[str, Descriptor] | None = None) -> tuple[Descriptor, ...]:
        return tuple(fallback_referrers(digest, tags or {}))  # the tag conventions: none here

    def can_delete_tags(self, repository: str) -> bool:
        return self.deletion == "tag"

    def begin_phase(self) -> None:
        pass

    def close(self) -> None:
        pass


# --- one measured process ---------------------------------------------------------------------------

def repo_of_record(directory: Path) -> Path:
    """The repo-of-record of every size (``bench/policies.py``, shared with ``plan_bench.py``)."""
    return retention_repo(directory, "https://registry.bench.invalid", max_deletions=100_000_000)


def install(repositories: int, images: int) -> None:
    """Observation opens :class:`GeneratedRegistry` clients from here on (this process only)."""
    import reconcile.observe.world as world

    def open_generated(registry: Registry, resolver: object, **_: Any) -> GeneratedRegistry:
        return GeneratedRegistry(registry, repositories, images)

    world.open_registry = open_generated  # type: ignore[assignment]


def child(args: argparse.Namespace) -> int:
    """The measured process: ``reconcile plan --format json --out FILE`` through the CLI's entry
    point, with the generated registry installed (and tracemalloc, with ``--tracemalloc``)."""
    repositories, images = args.child
    if args.tracemalloc:
        import tracemalloc
        tracemalloc.start(1)
    install(repositories, images)
    from reconcile.cli import cli

    argv = ["--repo", args.repo, "--audit-db", args.audit_db, "plan", "--format", "json", "--out", args.out]
    if args.tracemalloc:
        snapshots = _peak_snapshots()
        try:
            cli.main(argv, standalone_mode=False)
        except SystemExit as exit:
            code = exit.code
        else:
            code = 0
        snapshots.stop()
        _report(snapshots.best, args.top)
        return int(code or 0)
    return int(cli.main(argv, standalone_mode=True) or 0)  # exits


class _PeakSnapshots:
    """Takes a tracemalloc snapshot whenever traced memory reached a new peak (checked every 0.2 s)."""

    def __init__(self) -> None:
        import threading
        import tracemalloc
        self.best: Any = None
        self.peak = 0
        self._done = threading.Event()
        self._tracemalloc = tracemalloc
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.wait(0.2):
            current, _ = self._tracemalloc.get_traced_memory()
            if current > self.peak * 1.05:
                self.peak = current
                self.best = self._tracemalloc.take_snapshot()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def _peak_snapshots() -> _PeakSnapshots:
    return _PeakSnapshots()


def _report(snapshot: Any, top: int) -> None:
    if snapshot is None:
        return
    stats = snapshot.statistics("lineno")
    total = sum(s.size for s in stats)
    print(f"tracemalloc at the peak: {total / 2**20:.1f} MiB traced in {sum(s.count for s in stats):,} blocks; "
          f"top {top} lines:", file=sys.stderr)
    for stat in stats[:top]:
        frame = stat.traceback[0]
        where = frame.filename.split("/main/", 1)[-1]
        print(f"  {stat.size / 2**20:7.1f} MiB {stat.count:10,} blocks  {where}:{frame.lineno}", file=sys.stderr)


# --- the parent -----------------------------------------------------------------------------------------

@dataclass
class Measured:
    tags: int
    repositories: int
    wall: float
    cpu: float
    maxrss_mib: float
    prunes: int
    expected: int
    plan_mib: float

    @property
    def ok(self) -> bool:
        return self.prunes == self.expected


def measure(tags: int, per_repository: int, workdir: Path, *, tracemalloc: bool = False, top: int = 25
            ) -> tuple[Measured, str]:
    repositories = max(1, tags // per_repository)
    images = max(1, tags // repositories // 2)
    root = repo_of_record(workdir / "policies")
    out = workdir / f"plan-{tags}.json"
    err = workdir / f"stderr-{tags}.txt"
    command = [sys.executable, __file__, "--child", str(repositories), str(images), "--repo", str(root),
               "--audit-db", str(workdir / "audit.db"), "--out", str(out), "--top", str(top),
               *(["--tracemalloc"] if tracemalloc else [])]
    env = {**os.environ, "RECONCILE_LOCK": "none", "RECONCILE_CACHE_DIR": str(workdir / "cache")}
    wrapper = subprocess.run([sys.executable, "-c", MEASURE, str(err), *command], capture_output=True, text=True,
                             env=env, check=True)
    result = json.loads(wrapper.stdout)
    stderr = err.read_text()
    if result["returncode"] not in (0, 2):
        raise SystemExit(f"the plan of {tags:,} tags failed ({result['returncode']}): {stderr[-4000:]}")
    summary = json.loads(out.read_bytes()).get("summary", {})
    measured = Measured(repositories * images * 2, repositories, result["wall"], result["cpu"],
                        result["maxrss_kib"] / 1024, summary.get("prune", 0), repositories * max(0, images - KEEP),
                        out.stat().st_size / 2**20)
    out.unlink()
    return measured, stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="tags in all, comma-separated")
    parser.add_argument("--per-repository", type=int, default=5_000, help="tags in each repository")
    parser.add_argument("--quick", action="store_true", help="only the sizes up to 100,000 tags")
    parser.add_argument("--profile", action="store_true", help="also a tracemalloc snapshot of a 100k plan")
    parser.add_argument("--top", type=int, default=25, help="lines of the tracemalloc report")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--child", type=int, nargs=2, metavar=("REPOSITORIES", "IMAGES"), help=argparse.SUPPRESS)
    parser.add_argument("--repo", help=argparse.SUPPRESS)
    parser.add_argument("--audit-db", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--tracemalloc", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        sizes = [s for s in sizes if s <= 100_000]
    workdir = Path(tempfile.mkdtemp(prefix="memory-bench-"))
    try:
        print(f"memory benchmark: reconcile plan --format json --out FILE, a generated registry, "
              f"{args.per_repository:,} tags per repository, two tags per image, keep-last-{KEEP}; "
              f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
        print(f"{'tags':>10} {'repos':>6} {'wall':>8} {'CPU':>8} {'us/tag':>7} {'peak RSS':>9} "
              f"{'KiB/tag':>8} {'above first':>12} {'plan JSON':>10}")
        runs: list[Measured] = []
        for tags in sizes:
            run, _ = measure(tags, args.per_repository, workdir)
            runs.append(run)
            first = runs[0]
            above = "" if run is first else \
                f"{(run.maxrss_mib - first.maxrss_mib) * 1024 / (run.tags - first.tags):9.3f} KiB"
            print(f"{run.tags:10,} {run.repositories:6} {run.wall:7.1f}s {run.cpu:7.1f}s "
                  f"{run.cpu / run.tags * 1e6:7.1f} {run.maxrss_mib:6.0f}MiB {run.maxrss_mib * 1024 / run.tags:8.2f} "
                  f"{above:>12} {run.plan_mib:7.1f}MiB{'' if run.ok else f'  WRONG: {run.prunes} prunes'}",
                  flush=True)
        at_100k = next((r for r in runs if r.tags == 100_000), None)
        if at_100k is not None:
            print(f"peak RSS at 100k tags: {at_100k.maxrss_mib:.0f} MiB = {at_100k.maxrss_mib * 2**20 / 1e6:.0f} MB "
                  f"(target <= 150 MB)")
        if len(runs) > 2:
            low, high = runs[1], runs[-1]
            print(f"growth per tag, {low.tags:,} -> {high.tags:,}: "
                  f"{(high.maxrss_mib - low.maxrss_mib) * 1024 / (high.tags - low.tags):.3f} KiB; "
                  f"CPU per tag {low.cpu / low.tags * 1e6:.1f} -> {high.cpu / high.tags * 1e6:.1f} us (linear: equal)")
        if args.profile:
            run, report = measure(100_000, args.per_repository, workdir, tracemalloc=True, top=args.top)
            print(f"profiled 100k run (tracemalloc slows it; peak RSS {run.maxrss_mib:.0f} MiB with tracing):")
            print(report.rstrip())
        return 0 if all(r.ok for r in runs) else 1
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
