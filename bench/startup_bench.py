"""Benchmark of the command line's start-up, against ``python -c pass`` (issue 17).

    python bench/startup_bench.py [--runs 5]

Runs each command ``--runs`` times as a fresh process (the ``reconcile`` console script next to
this interpreter, else ``python -m reconcile``), output to /dev/null, and prints the median wall
time and its ratio to ``python -c pass``, the fastest wall time, the median CPU time (user +
system, steadier on a shared machine) and its ratio, and the target, on the median wall time:
``--help`` and a command's ``--help`` at most 10x ``python -c pass``; ``audit list`` on a small
trail under 0.3 s.
``python -c "import click"`` is the floor any click command line pays. The small trail (one
apply run, 20 prunes: 42 entries) is written through the library's audit store in a temporary
directory.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def reconcile_command() -> list[str]:
    script = Path(sys.executable).parent / "reconcile"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "reconcile"]


def small_trail(path: Path) -> None:
    from reconcile.audit import AuditStore

    with AuditStore.open(path) as store:
        run = store.start_run("apply", repo_commit="1a2b3c4d5e6f7a8b9c0d")
        for n in range(20):
            with run.mutation("prune", f"ci/team-a/web:build-{n}", policy="RetentionPolicy/ci-cleanup",
                              reason="not kept by any rule", digest_before=f"sha256:{n:064x}", tags=[f"build-{n}"]):
                pass
        run.finish("succeeded")


def measure(command: list[str], runs: int, cwd: Path) -> tuple[float, float, float]:
    """Median wall, fastest wall and median CPU seconds of ``runs`` runs of ``command`` (after one
    untimed warm-up run)."""
    walls, cpus = [], []
    for i in range(runs + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, check=False)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} exited {done.returncode}: {done.stderr.decode(errors='replace')}")
        if i:  # the first run warms the page cache and the .pyc files
            walls.append(wall)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), min(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs per command (the median is printed)")
    args = parser.parse_args()
    reconcile = reconcile_command()
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp:
        work = Path(tmp)
        small_trail(work / "audit.db")
        env_note = f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
        rows: list[tuple[str, list[str], str, float | None, float | None]] = [
            # (name, command, target text, ratio bound, seconds bound)
            ("python -c pass", [sys.executable, "-c", "pass"], "the peer", None, None),
            ('python -c "import click"', [sys.executable, "-c", "import click"], "the floor of a click CLI", None,
             None),
            ("reconcile --help", [*reconcile, "--help"], "<= 10x", 10.0, None),
            ("reconcile validate --help", [*reconcile, "validate", "--help"], "<= 10x", 10.0, None),
            ("reconcile audit list --help", [*reconcile, "audit", "list", "--help"], "<= 10x", 10.0, None),
            ("reconcile audit list", [*reconcile, "audit", "list", "--audit-db", "audit.db"], "< 0.3 s", None, 0.3),
            ("reconcile audit verify", [*reconcile, "audit", "verify", "--audit-db", "audit.db"], "(no target)", None,
             None),
        ]
        print(f"start-up, median of {args.runs} runs each ({env_note}); audit commands on a 42-entry trail, piped")
        print(f"  {'command':30s} {'wall':>8s} {'/ pass':>7s} {'fastest':>8s} {'CPU':>8s} {'/ pass':>7s}  "
              "target (on the median wall time)")
        peer: tuple[float, float] | None = None
        for name, command, target, ratio_bound, seconds_bound in rows:
            wall, fastest, cpu = measure(command, args.runs, work)
            peer = (wall, cpu) if peer is None else peer
            ratio = wall / peer[0]
            verdict = ""
            if ratio_bound is not None:
                verdict = "met" if ratio <= ratio_bound else "NOT met"
            elif seconds_bound is not None:
                verdict = "met" if wall < seconds_bound else "NOT met"
            print(f"  {name:30s} {wall * 1000:5.0f} ms {ratio:6.1f}x {fastest * 1000:5.0f} ms {cpu * 1000:5.0f} ms "
                  f"{cpu / peer[1]:6.1f}x  "
                  f"{target} {verdict}".rstrip())


if __name__ == "__main__":
    main()
