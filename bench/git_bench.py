"""Benchmark of gitRefs keep rules on a large history, against the old way in the same run.

    python bench/git_bench.py [--commits 100000] [--refs 100,2000,10000] [--counts 1,10]
                              [--images 1000] [--repeat 3] [--quick] [--keep DIR]

1. Builds, with ``git fast-import``, one bare repository of ``--commits`` commits: a main line
   with a merge of a two-commit side line every 25 commits, and short feature lines (two commits
   each, not merged) forked from the newest fifth of main; committer timestamps a minute apart,
   with some equal to their parent's and some an hour older (clock skew). Then, for each
   ``--refs`` size, replaces the refs (one fast-import, then ``git pack-refs --all``, as a mirror
   clone has them): half branches (main and feature tips), half tags spread evenly over the
   whole history, every other tag annotated.
2. For each size and each ``--counts`` (``commitsPerBranch``), times the keep-rule computation:
   ``live_commits`` (one ``for-each-ref``, one ``rev-list`` over all refs; median of ``--repeat``)
   and the lookup of ``--images`` image tags ``sha-<12 hex>`` (half naming live commits, half
   other commits) through the planner's ``_commit_of``.
3. The peer, in the same run: the old way, one ``git for-each-ref`` then one
   ``git rev-list --max-count=N REF^{commit}`` process per ref in a loop, and the old lookup (a scan
   of the live commits per tag). Both must find the same live commits and keep the same tags.

Prints, for each, the measured time (wall, median), the peer's, peer/measured and the target
(< 3 s at 10,000 refs), and the CPU time of both (this process and its git children: what the
wall time would be on an idle machine, the load average says how idle it was).
``--quick``: 20,000 commits, 100 and 2,000 refs, under a minute.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconcile.adapters.git.refs import live_commits
from reconcile.plan import retention
from reconcile.policy.model import GitRefs, KeepRule

BASE = 1_700_000_000
TARGET_S = 3.0  # at 10,000 refs, 100,000 commits
TAG_COMMIT = re.compile(r"^sha-(?P<commit>[0-9a-f]{7,40})$")


def git(repo: Path, *args: str, stdin: bytes | None = None) -> str:
    return subprocess.run(["git", *args], cwd=repo, input=stdin, check=True, capture_output=True).stdout.decode()


# --- the repository -----------------------------------------------------------------------------


def build_history(repo: Path, commits: int, features: int) -> tuple[list[str], list[str], int]:
    """Main line and feature tips (SHAs, oldest first), and how many commits in all."""
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    out: list[str] = []
    mark = 0
    stamps: dict[int, int] = {}

    def commit(parents: list[int], stamp: int, ref: str = "refs/heads/scratch") -> int:
        nonlocal mark
        mark += 1
        stamps[mark] = stamp
        out.append(f"commit {ref}\nmark :{mark}\ncommitter b <b@example.com> {stamp} +0000\ndata 0\n")
        if parents:
            out.append(f"from :{parents[0]}\n")
            out.extend(f"merge :{p}\n" for p in parents[1:])
        out.append("\n")
        return mark

    main_budget = commits - 2 * features
    main: list[int] = []
    n = 0
    while mark < main_budget:
        n += 1
        previous = main[-1] if main else None
        stamp = BASE + n * 60
        if n % 97 == 0 and previous:
            stamp = stamps[previous]  # same second as its parent
        elif n % 211 == 0:
            stamp -= 3600  # a clock an hour behind
        if n % 25 == 0 and len(main) > 8 and mark + 3 <= main_budget:
            fork = main[-8]
            side = commit([fork], stamps[fork] + 30, "refs/heads/side")
            side = commit([side], stamps[side] + 30, "refs/heads/side")
            main.append(commit([main[-1], side], stamp))
        else:
            main.append(commit([previous] if previous else [], stamp))
    recent = main[-max(1, len(main) // 5):]
    rng = random.Random(17)
    tips: list[int] = []
    for _ in range(features):
        fork = rng.choice(recent)
        first = commit([fork], stamps[fork] + 20, "refs/heads/feature")
        tips.append(commit([first], stamps[fork] + 40, "refs/heads/feature"))
    marks = repo / "marks"
    subprocess.run(["git", "fast-import", "--quiet", f"--export-marks={marks}"], cwd=repo,
                   input="".join(out).encode(), check=True)
    sha = dict(line.split() for line in marks.read_text().splitlines())
    return [sha[f":{m}"] for m in main], [sha[f":{m}"] for m in tips], mark


def set_refs(repo: Path, main: list[str], features: list[str], refs: int) -> None:
    """Replace every ref: refs/2 branches (main, feature tips), refs/2 tags spread over main."""
    old = git(repo, "for-each-ref", "--format=delete %(refname)")
    if old:
        git(repo, "update-ref", "--stdin", stdin=old.encode())
    branches, tags = refs // 2, refs - refs // 2
    stream = [f"reset refs/heads/main\nfrom {main[-1]}\n\n"]
    stream += [f"reset refs/heads/feature-{i}\nfrom {tip}\n\n" for i, tip in enumerate(features[:branches - 1])]
    for i in range(tags):
        at = main[i * (len(main) - 1) // max(1, tags - 1)]
        if i % 2:
            stream.append(f"tag v{i}\nfrom {at}\ntagger b <b@example.com> {BASE} +0000\ndata 0\n\n")
        else:
            stream.append(f"reset refs/tags/v{i}\nfrom {at}\n\n")
    subprocess.run(["git", "fast-import", "--quiet", "--force"], cwd=repo, input="".join(stream).encode(), check=True)
    git(repo, "pack-refs", "--all")


# --- the two ways ---------------------------------------------------------------------------------


def peer_live_commits(repo: Path, count: int) -> set[str]:
    """The old way: one for-each-ref, then one rev-list --max-count process per ref."""
    found: set[str] = set()
    for ref in git(repo, "for-each-ref", "--format=%(refname)", "refs/heads", "refs/tags").split():
        found.update(git(repo, "rev-list", f"--max-count={count}", f"{ref}^{{commit}}", "--").split())
    return found


def peer_lookup(tags: list[str], commits: frozenset[str]) -> list[str]:
    """The old lookup: a scan of the live commits per tag."""
    kept = []
    for tag in tags:
        match = TAG_COMMIT.search(tag)
        prefix = match.group("commit") if match else ""
        if len(prefix) >= 7 and any(commit.startswith(prefix) for commit in commits):
            kept.append(tag)
    return kept


def lookup(tags: list[str], rule: KeepRule, commits: frozenset[str]) -> list[str]:
    retention._sorted_commits.cache_clear()  # the sort is part of the cost
    return [tag for tag in tags if retention._commit_of(tag, None, rule, commits)]


def timed(run, repeat: int = 1):  # type: ignore[no-untyped-def]
    """Median wall time, the CPU time (this process and its git children) of that run, the result."""
    runs, result = [], None
    for _ in range(repeat):
        before, start = os.times(), time.perf_counter()
        result = run()
        wall, after = time.perf_counter() - start, os.times()
        cpu = sum(after[:4]) - sum(before[:4])  # user, system, children's user, children's system
        runs.append((wall, cpu))
    return *sorted(runs)[len(runs) // 2], result


# --- main -----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=100_000)
    parser.add_argument("--refs", default="100,2000,10000", help="ref counts, comma-separated")
    parser.add_argument("--counts", default="1,10", help="commitsPerBranch values, comma-separated")
    parser.add_argument("--images", type=int, default=1000, help="image tags looked up per size")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the new way (median)")
    parser.add_argument("--quick", action="store_true", help="20,000 commits, 100 and 2,000 refs")
    parser.add_argument("--keep", type=Path, help="build the repository here and keep it")
    args = parser.parse_args()
    if args.quick:
        args.commits, args.refs = 20_000, "100,2000"
    sizes = [int(n) for n in args.refs.split(",")]
    counts = [int(n) for n in args.counts.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="git-bench-")) if args.keep is None else args.keep
    repo = workdir / "source.git"
    started = time.perf_counter()
    try:
        build_start = time.perf_counter()
        main_line, features, total = build_history(repo, args.commits, max(sizes) // 2)
        print(f"git keep rules benchmark: {total:,} commits ({len(main_line):,} on main), "
              f"{os.cpu_count()} CPUs, {platform.system().lower()}, {git(repo, 'version').strip()}, "
              f"Python {platform.python_version()}; built in {time.perf_counter() - build_start:.1f} s; "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"  {'refs':>6} {'N':>3}  {'measured':>9}  {'peer':>9}  {'ratio':>7}  target / notes")
        rng = random.Random(5)
        ok = True
        for refs in sizes:
            set_refs(repo, main_line, features, refs)
            git(repo, "rev-list", "--all", "--count")  # a warm page cache for both ways
            for count in counts:
                rule = GitRefs(repo=str(repo), branches=re.compile(".*"), tags=re.compile(".*"),
                               commits_per_branch=count, tag_commit=TAG_COMMIT)
                measured, cpu, live = timed(lambda rule=rule: live_commits(rule), args.repeat)
                peer, peer_cpu, old = timed(lambda count=count: peer_live_commits(repo, count))
                same = live == old
                ok &= same
                others = rng.sample(main_line, min(len(main_line), args.images // 2))
                named = rng.sample(sorted(live), min(len(live), args.images - len(others)))
                tags = [f"sha-{sha[:12]}" for sha in named + others]
                keep_rule = KeepRule(git_refs=rule)
                took, _, kept = timed(lambda tags=tags, keep_rule=keep_rule, live=live: lookup(tags, keep_rule, live),
                                   args.repeat)
                peer_took, _, peer_kept = timed(lambda tags=tags, live=live: peer_lookup(tags, live))
                ok &= kept == peer_kept
                target = f"< {TARGET_S:.0f} s" + (" (the issue's figure)" if refs == 10_000 else "")
                met = "" if refs != 10_000 else (" met" if measured + took < TARGET_S else " MISSED")
                print(f"  {refs:>6,} {count:>3}  {measured:>8.3f}s  {peer:>8.3f}s  {peer / measured:>6.1f}x  "
                      f"{target}{met}; CPU {cpu:.2f} s vs {peer_cpu:.2f} s; live commits {len(live):,}, "
                      f"same as the peer: {'yes' if same else 'NO'}")
                print(f"  {'':>6} {'':>3}  {took:>8.4f}s  {peer_took:>8.4f}s  {peer_took / took:>6.1f}x  "
                      f"lookup of {len(tags):,} image tags, {len(kept):,} kept, same as the peer: "
                      f"{'yes' if kept == peer_kept else 'NO'}")
        print(f"  total {time.perf_counter() - started:.1f} s; load average {os.getloadavg()[0]:.1f}")
        return 0 if ok else 1
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
