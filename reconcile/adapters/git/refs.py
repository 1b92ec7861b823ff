"""Commits that keep their images: the latest N commits of every live branch and tag of a source
repository matching a RetentionPolicy's ``gitRefs`` rule.

All refs in one pass: one ``git for-each-ref`` lists the branches and tags with their commits
(annotated tags peeled), then one ``git rev-list --parents --timestamp`` walks from every selected
commit at once, and each ref's own walk is replayed on what it lists: the same commits, in the
same order, that ``git rev-list --max-count=N REF^{commit}`` gives for that ref alone (git's walk
pops the newest queued commit by committer timestamp, first queued first among equal ones, and
queues the parents of each commit it pops that it has not queued yet, every parent, not only the
first). The walk stops as soon as every ref has its N commits, so refs near the tips cost a short
walk whatever the history. Should it run far deeper than the answer needs (tags on old commits),
``git rev-list --no-walk`` reads just the commits the unfinished refs wait on instead: at most N
such reads, however many refs. With ``commitsPerBranch: 1`` no walk runs at all.

A rule with ``imagesPerReference`` (werf's: it counts images, which only the registry knows) or a
``limit`` on its refs gets :func:`ref_histories` instead: each matching ref with its head's date and
its commits in walk order, with their committer timestamps, for the planner to count on. A
branch's walk reads at most :data:`HISTORY_DEPTH` commits (a git tag only its own commit, as werf
scans tags); a walk that stops there says so (``RefHistory.truncated``), and the planner keeps
every image it cannot place (fail closed).

A ref that names no commit (a tag of a tree or a blob) has no commits to keep and is skipped; a git
failure while reading is a :class:`SourceError` (the policy is blocked, nothing is pruned)."""

from __future__ import annotations

import heapq
import subprocess
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import git

from reconcile.observe.state import GitHistories, RefHistory
from reconcile.policy.model import GitRefs
from reconcile.policy.source import SourceError, default_cache_dir, is_remote, mirror, redact_url

_FORMAT = "%(objectname) %(objecttype) %(*objectname) %(*objecttype) %(creatordate:unix) %(refname)"

HISTORY_DEPTH = 1_000  # commits a branch's walk reads for imagesPerReference; past it, the planner fails closed


def live_commits(rule: GitRefs, *, cache_dir: Path | None = None) -> frozenset[str]:
    """Full SHAs of the newest ``commits_per_branch`` commits of each matching branch and tag."""
    with _open(rule, cache_dir) as repository:
        tips = selected_refs(repository, rule)
        latest = last_commits(repository, tips.values(), rule.commits_per_branch, shown=redact_url(rule.repo))
        return frozenset(commit for tip in set(tips.values()) for commit in latest[tip])


def ref_histories(rule: GitRefs, *, cache_dir: Path | None = None, depth: int = HISTORY_DEPTH) -> GitHistories:
    """Each matching branch and tag with its head's date and its newest commits, newest first as
    ``git rev-list`` walks them, each with its committer timestamp. With ``imagesPerReference``, a
    branch's walk reads up to ``depth`` commits and a tag only its own commit (werf's scan depth
    of a tag is 1); without, each ref reads its ``commits_per_branch`` commits, as
    :func:`live_commits`. A walk that stopped with older commits unread is ``truncated``."""
    counting = rule.images_per_reference is not None
    with _open(rule, cache_dir) as repository:
        listed = _listed_refs(repository, rule)
        shown = redact_url(rule.repo)
        wanted: dict[str, int] = {}  # ref -> commits it keeps
        reads: dict[str, int] = {}  # ref -> commits its walk lists: one more, to tell whether older ones exist
        for ref in listed:
            branch = ref.startswith("refs/heads/")
            wanted[ref] = (depth if branch else 1) if counting else rule.commits_per_branch
            reads[ref] = wanted[ref] + (1 if branch or not counting else 0)  # a counted tag: its commit only
        found: dict[tuple[int, str], tuple[str, ...]] = {}  # (commits read, tip) -> its walk
        known: dict[str, int] = {}
        for count in sorted(set(reads.values())):
            walked, stamps = _walk_all(repository, {listed[ref][0] for ref in listed if reads[ref] == count},
                                       count, shown)
            known.update(stamps)
            found.update(((count, tip), commits) for tip, commits in walked.items())
        missing = sorted({sha for commits in found.values() for sha in commits if sha not in known})
        if missing:
            known.update(_timestamps(rule, repository, missing))
        histories = []
        for ref, (tip, created) in sorted(listed.items()):
            commits = found[reads[ref], tip]
            histories.append(RefHistory(ref, created, tuple((sha, known[sha]) for sha in commits[:wanted[ref]]),
                                        truncated=len(commits) > wanted[ref]))
        return GitHistories(tuple(histories), depth if counting else rule.commits_per_branch)


def _timestamps(rule: GitRefs, repository: git.Repo, commits: list[str]) -> dict[str, int]:
    """Committer timestamps of ``commits``: one ``git log --no-walk``."""
    def read() -> str:
        process = repository.git.log("--no-walk=unsorted", "--stdin", "--format=%H %ct", as_process=True,
                                     istream=subprocess.PIPE)
        out, err = process.proc.communicate("".join(f"{commit}\n" for commit in commits).encode())
        if process.proc.returncode:
            raise git.GitCommandError(["git", "log"], process.proc.returncode, err)
        text: str = out.decode()
        return text
    listed = _git(rule, read)
    return {sha: int(stamp) for sha, stamp in (line.split() for line in listed.splitlines() if line)}


def _open(rule: GitRefs, cache_dir: Path | None) -> git.Repo:
    try:
        if is_remote(rule.repo):
            return mirror(rule.repo, cache_dir or default_cache_dir() / "repos", "the source repository")
        return git.Repo(rule.repo)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise SourceError(f"{redact_url(rule.repo)} is not a git repository") from None


def selected_refs(repository: git.Repo, rule: GitRefs) -> dict[str, str]:
    """Full ref name -> the commit it names, for every branch and tag whose short name the rule's
    patterns match: one ``git for-each-ref``."""
    return {ref: tip for ref, (tip, _) in _listed_refs(repository, rule).items()}


def _listed_refs(repository: git.Repo, rule: GitRefs) -> dict[str, tuple[str, int]]:
    """:func:`selected_refs`, each commit with its ref's date: ``creatordate``, an annotated tag's
    tagger date, else the commit's committer date (the date werf's references.limit reads)."""
    kinds = {kind: pattern for kind, pattern in (("heads", rule.branches), ("tags", rule.tags)) if pattern is not None}
    if not kinds:
        return {}
    listing = _git(rule, lambda: repository.git.for_each_ref(f"--format={_FORMAT}",
                                                              *[f"refs/{kind}" for kind in kinds]))
    tips: dict[str, tuple[str, int]] = {}
    nested: list[tuple[str, str, int]] = []  # tags of tags: peeled below
    for line in listing.splitlines():
        name, kind, peeled, peeled_kind, created, ref = line.split(" ", 5)
        space = ref.split("/", 2)[1]
        if not kinds[space].search(ref.removeprefix(f"refs/{space}/")):
            continue
        date = int(created) if created.lstrip("-").isdigit() else 0
        if kind == "commit":
            tips[ref] = (name, date)
        elif peeled_kind == "commit":
            tips[ref] = (peeled, date)
        elif peeled_kind == "tag":
            nested.append((ref, peeled, date))
    if nested:  # rare: peel all the way, as REF^{commit} would, in one cat-file
        query = "".join(f"{peeled}^{{}}\n" for _, peeled, _ in nested)
        found = _git(rule, lambda: _batch_check(repository, query))
        for (ref, _, date), answer in zip(nested, found.splitlines(), strict=True):
            name, _, kind = answer.partition(" ")
            if kind == "commit":
                tips[ref] = (name, date)
    return tips


def _batch_check(repository: git.Repo, query: str) -> str:
    process = repository.git.cat_file("--batch-check=%(objectname) %(objecttype)", as_process=True,
                                      istream=subprocess.PIPE)
    out, err = process.proc.communicate(query.encode())
    if process.proc.returncode:
        raise git.GitCommandError(["git", "cat-file"], process.proc.returncode, err)
    text: str = out.decode()
    return text


def _git(rule: GitRefs, run: Callable[[], str]) -> str:
    try:
        return run()
    except git.GitCommandError as e:
        detail = (e.stderr or str(e)).strip().splitlines()
        raise SourceError(f"cannot read the refs of {redact_url(rule.repo)}: "
                          f"{detail[-1] if detail else 'git failed'}") from None


class _Walk:
    """One ref's ``rev-list --max-count=N`` walk, replayed: a queue ordered by (newest committer
    timestamp, first queued), fed as the shared walk learns commits' timestamps and parents."""

    __slots__ = ("done", "expanding", "found", "heap", "queued", "seen", "unknown")

    def __init__(self, tip: str) -> None:
        self.found: list[str] = []
        self.seen = {tip}  # git's SEEN flag: queued once, ever
        self.heap: list[tuple[int, int, str]] = []  # (-timestamp, queued as nth, sha), timestamp known
        self.unknown: dict[str, int] = {tip: 0}  # queued, timestamp not yet known -> queued as nth
        self.expanding: str | None = None  # found, its parents not yet known
        self.queued = 1
        self.done = False

    def advance(self, known: Mapping[str, tuple[int, tuple[str, ...]]], count: int,
                waiting: dict[str, list[_Walk]]) -> bool:
        """Walk as far as what is known allows; True once this ref's walk is complete."""
        self.done = self._advance(known, count, waiting)
        return self.done

    def _advance(self, known: Mapping[str, tuple[int, tuple[str, ...]]], count: int,
                 waiting: dict[str, list[_Walk]]) -> bool:
        while True:
            if self.expanding is not None:
                info = known.get(self.expanding)
                if info is None:
                    return False
                self.expanding = None
                for parent in info[1]:
                    if parent not in self.seen:
                        self.seen.add(parent)
                        if (parent_info := known.get(parent)) is not None:
                            heapq.heappush(self.heap, (-parent_info[0], self.queued, parent))
                        else:
                            self.unknown[parent] = self.queued
                            waiting.setdefault(parent, []).append(self)
                        self.queued += 1
            if len(self.found) >= count or not (self.heap or self.unknown):
                return True
            if self.unknown:
                if self.heap or len(self.unknown) > 1:
                    return False  # which is newest needs every queued commit's timestamp
                commit = self.unknown.popitem()[0]  # alone in the queue: next whatever its timestamp
            else:
                commit = heapq.heappop(self.heap)[2]
            self.found.append(commit)
            if len(self.found) >= count:
                return True
            self.expanding = commit
            if commit not in known:
                waiting.setdefault(commit, []).append(self)

    def learn(self, commit: str, timestamp: int) -> None:
        if (queued := self.unknown.pop(commit, None)) is not None:
            heapq.heappush(self.heap, (-timestamp, queued, commit))


def last_commits(repository: git.Repo, tips: Iterable[str], count: int, *,
                 shown: str = "the source repository") -> dict[str, tuple[str, ...]]:
    """Commit SHA -> its newest ``count`` commits, as ``git rev-list --max-count=count SHA`` lists
    them, for every SHA of ``tips``. None of git's walking is redone here, only replayed: git gives
    each commit's timestamp and parents (as its own walk sees them: grafts, replacements and a
    shallow clone's cut included), first from one ``git rev-list`` walking from every tip at once,
    stopped as soon as each ref has its commits; when that walk would go much deeper than the
    answer (a tag far down an old history: the shared walk reaches it only after every newer
    commit), then from ``git rev-list --no-walk`` of just the commits the unfinished refs wait on,
    at most ``count`` more processes however many refs. Nothing runs for ``count`` 1."""
    return _walk_all(repository, tips, count, shown)[0]


def _walk_all(repository: git.Repo, tips: Iterable[str], count: int,
              shown: str) -> tuple[dict[str, tuple[str, ...]], dict[str, int]]:
    """:func:`last_commits`, and the committer timestamps of the commits it read on the way (not
    necessarily of every commit it lists: a walk's last commit may go unread)."""
    walks = {tip: _Walk(tip) for tip in tips}
    known: dict[str, tuple[int, tuple[str, ...]]] = {}
    waiting: dict[str, list[_Walk]] = {}
    left = sum(not walk.advance(known, count, waiting) for walk in walks.values())
    if left and (limit := _shared_walk_limit(len(walks), count)):  # --stdin: 10,000 tips fit no command line
        left = _read(repository, ["--parents", "--timestamp", "--stdin"], list(walks), known, waiting, count,
                     left, shown, limit=limit)
    while left:
        needed = [commit for commit, walks_ in waiting.items() if any(not walk.done for walk in walks_)]
        if not needed:
            raise SourceError(f"cannot read the history of {shown}: git did not list every commit a ref's walk needs")
        left = _read(repository, ["--no-walk=unsorted", "--parents", "--timestamp", "--stdin"], needed, known,
                     waiting, count, left, shown)
    return {tip: tuple(walk.found) for tip, walk in walks.items()}, {sha: info[0] for sha, info in known.items()}


def _shared_walk_limit(tips: int, count: int) -> int:
    """How many commits the shared walk may list before targeted reads take over: about one per
    ref, at least 2,000 (a few hundredths of a second of git and Python here). Refs near the top
    are done well within it; one far down would otherwise make it list all the newer history."""
    return max(2_000, tips)


def _read(repository: git.Repo, options: list[str], commits: list[str],
          known: dict[str, tuple[int, tuple[str, ...]]], waiting: dict[str, list[_Walk]], count: int, left: int,
          shown: str, limit: int | None = None) -> int:
    """Feed what one ``git rev-list OPTIONS`` of ``commits`` lists to the walks waiting on it;
    stopped once no walk is left (or after ``limit`` commits). Returns the walks left."""
    # rev-list reads all of stdin before it lists anything, so writing it first cannot deadlock;
    # without --topo-order the walk is listed as it goes.
    process = repository.git.rev_list(*options, as_process=True, istream=subprocess.PIPE)
    proc = process.proc
    listed = 0
    try:
        try:
            proc.stdin.write("".join(f"{commit}\n" for commit in commits).encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass  # git stopped early: its exit status says why
        for line in proc.stdout:
            timestamp, commit, *parents = line.decode().split()
            stamp = int(timestamp)
            known[commit] = (stamp, tuple(parents))
            for walk in waiting.pop(commit, ()):
                if not walk.done:
                    walk.learn(commit, stamp)
                    left -= walk.advance(known, count, waiting)
            listed += 1
            if not left or (limit is not None and listed >= limit):
                break
    finally:
        if proc.poll() is None:  # what is left of the walk is not needed
            proc.kill()
        err = proc.stderr.read() if proc.stderr else b""
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
    if left and proc.returncode and (limit is None or listed < limit):
        detail = redact_url(err.decode(errors="replace")).strip().splitlines()
        raise SourceError(f"cannot read the history of {shown}: {detail[-1] if detail else 'git rev-list failed'}")
    return left
