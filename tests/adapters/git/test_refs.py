"""Live commits of a source repository, for gitRefs keep rules: a real repository with branches
and tags, read through for-each-ref and rev-list."""

from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path

import git
import pytest

from reconcile.adapters.git import refs as refs_module
from reconcile.adapters.git.refs import last_commits, live_commits, selected_refs
from reconcile.policy.model import GitRefs
from reconcile.policy.source import SourceError


@pytest.fixture
def source(tmp_path: Path) -> tuple[git.Repo, dict[str, list[str]]]:
    """main: m1..m3; release-1: m1, r1, r2; feature-x: m1, f1; annotated tag v1 on r1."""
    repo = git.Repo.init(tmp_path / "src", initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "t").set_value("user", "email", "t@example.com")
    shas: dict[str, list[str]] = {}

    def commits(branch: str, *names: str) -> None:
        for name in names:
            shas.setdefault(branch, []).append(repo.index.commit(name).hexsha)

    commits("main", "m1")
    repo.create_head("release-1").checkout()
    commits("release-1", "r1")
    repo.create_tag("v1", message="release 1")
    commits("release-1", "r2")
    repo.create_head("feature-x", shas["main"][0]).checkout()
    commits("feature-x", "f1")
    repo.heads.main.checkout()
    commits("main", "m2", "m3")
    return repo, shas


def rule(repo: git.Repo, **kwargs: object) -> GitRefs:
    return GitRefs(repo=str(repo.working_tree_dir or repo.git_dir), **{"branches": None, "tags": None, **kwargs})  # type: ignore[arg-type]


def test_the_latest_commits_of_each_matching_branch(source: tuple[git.Repo, dict[str, list[str]]]) -> None:
    repo, shas = source
    found = live_commits(rule(repo, branches=re.compile(r"^(main|release-.*)$"), commits_per_branch=2))
    assert found == {shas["main"][2], shas["main"][1], shas["release-1"][1], shas["release-1"][0]}


def test_tags_are_peeled_to_their_commit(source: tuple[git.Repo, dict[str, list[str]]]) -> None:
    repo, shas = source
    assert live_commits(rule(repo, tags=re.compile(r"^v\d+$"))) == {shas["release-1"][0]}


def test_a_missing_repository_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is not a git repository"):
        live_commits(GitRefs(repo=str(tmp_path), branches=re.compile("main"), tags=None))


# --- all refs in one pass, as each ref's own rev-list would ------------------------------------


def generated(path: Path, seed: int, commits: int = 400, branches: int = 40, tags: int = 60) -> git.Repo:
    """A repository built with git fast-import: merges (octopus too), many branches and tags on
    shared histories, several roots, equal committer timestamps and clock skew (a child older than
    its parent), annotated, lightweight and nested tags, and a tag of a tree."""
    rng = random.Random(seed)
    repo = git.Repo.init(path, bare=True)
    stream: list[str] = []
    stamps: list[int] = []
    for n in range(1, commits + 1):
        parents = [] if n == 1 or rng.random() < 0.01 else sorted(
            {rng.randrange(max(1, n - 30), n) for _ in range(rng.choice((1, 1, 1, 1, 2, 2, 3)))})
        roll = rng.random()
        base = max((stamps[p - 1] for p in parents), default=1_700_000_000)
        stamp = base if roll < 0.3 else base - rng.randrange(1, 500) if roll < 0.4 else base + rng.randrange(1, 90)
        stamps.append(stamp)
        stream.append("reset refs/heads/scratch\n" if not parents else "")
        stream.append(f"commit refs/heads/scratch\nmark :{n}\ncommitter t <t@example.com> {stamp} +0000\n"
                      f"data {len(str(n))}\n{n}\n")
        stream += [f"from :{parents[0]}\n", *(f"merge :{p}\n" for p in parents[1:])] if parents else []
        stream.append("\n")
    for b in range(branches):
        name = f"{'release' if b % 3 else 'feature'}-{b}"
        stream.append(f"reset refs/heads/{name}\nfrom :{rng.randrange(1, commits + 1)}\n\n")
    for t in range(tags):
        at = rng.randrange(1, commits + 1)
        if t % 2:
            stream.append(f"tag v{t}\nfrom :{at}\ntagger t <t@example.com> {stamps[at - 1]} +0000\ndata 2\nv\n\n")
        else:
            stream.append(f"reset refs/tags/v{t}\nfrom :{at}\n\n")
    stream.append("reset refs/heads/main\nfrom refs/heads/scratch\n\n")
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input="".join(stream).encode(), check=True)
    repo.git.update_ref("refs/heads/scratch", "-d")
    repo.git.tag("-a", "-m", "nested", "v-nested", "refs/tags/v1")
    repo.git.update_ref("refs/tags/v-tree", repo.git.rev_parse("main^{tree}"))
    return repo


def oracle(repo: git.Repo, ref: str, count: int) -> tuple[str, ...]:
    """What the old way asked git, one process per ref."""
    return tuple(repo.git.rev_list(f"--max-count={count}", f"{ref}^{{commit}}", "--").split())


ALL = {"branches": re.compile(".*"), "tags": re.compile(".*")}


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("count", [1, 2, 3, 7, 40, 1000])
def test_each_ref_gets_what_its_own_rev_list_gives(tmp_path: Path, seed: int, count: int) -> None:
    """Whether the shared walk answers alone (no limit), stops part way and targeted reads finish
    (7 commits), or targeted reads do it all (0)."""
    repo = generated(tmp_path / "src", seed)
    tips = selected_refs(repo, rule(repo, **ALL))
    refs = repo.git.for_each_ref("--format=%(refname)").split()
    assert "refs/tags/v-tree" not in tips and "refs/tags/v-nested" in tips  # a tree names no commit
    assert set(tips) == set(refs) - {"refs/tags/v-tree"}
    expected = {ref: oracle(repo, ref, count) for ref in tips}
    for limit in (10**9, 7, 0):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(refs_module, "_shared_walk_limit", lambda tips, count, limit=limit: limit)
            latest = last_commits(repo, set(tips.values()), count)
            for ref, tip in tips.items():
                assert latest[tip] == expected[ref], (ref, limit)  # same commits, same order
            live = live_commits(rule(repo, **ALL, commits_per_branch=count))
            assert live == {c for commits in expected.values() for c in commits}


def test_the_patterns_select_refs_by_short_name(tmp_path: Path) -> None:
    repo = generated(tmp_path / "src", 4)
    selected = rule(repo, branches=re.compile(r"^release-\d*[05]$"), tags=re.compile(r"^v1\d$"), commits_per_branch=4)
    names = [r for r in repo.git.for_each_ref("--format=%(refname)").split()
             if (r.startswith("refs/heads/") and re.search(r"^release-\d*[05]$", r.removeprefix("refs/heads/")))
             or (r.startswith("refs/tags/") and re.search(r"^v1\d$", r.removeprefix("refs/tags/")))]
    assert names and sorted(selected_refs(repo, selected)) == sorted(names)
    assert live_commits(selected) == {c for ref in names for c in oracle(repo, ref, 4)}


def test_one_ref_listing_and_at_most_one_walk_whatever_the_refs(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    repo = generated(tmp_path / "src", 5)
    commands: list[str] = []
    execute = git.cmd.Git.execute

    def counted(self: git.cmd.Git, command: list[str], *args: object, **kwargs: object) -> object:
        commands.append(command[1])
        return execute(self, command, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(git.cmd.Git, "execute", counted)
    live_commits(rule(repo, **ALL, commits_per_branch=5))
    assert sorted(commands) == ["cat-file", "for-each-ref", "rev-list"]  # cat-file: the nested tag only
    commands.clear()
    monkeypatch.setattr(refs_module, "_shared_walk_limit", lambda tips, count: 0)
    live_commits(rule(repo, **ALL, commits_per_branch=5))  # targeted reads only: count at most
    assert commands.count("rev-list") <= 5 and commands.count("for-each-ref") == 1
    commands.clear()
    live_commits(rule(repo, branches=re.compile("main"), commits_per_branch=1))
    assert commands == ["for-each-ref"]  # one commit per ref is the ref's own: no walk


def test_a_walk_past_the_root_ends_with_the_history(source: tuple[git.Repo, dict[str, list[str]]]) -> None:
    repo, shas = source
    found = live_commits(rule(repo, branches=re.compile("^feature-x$"), commits_per_branch=50))
    assert found == {shas["feature-x"][0], shas["main"][0]}


def test_no_matching_ref_keeps_nothing(source: tuple[git.Repo, dict[str, list[str]]]) -> None:
    repo, _ = source
    assert live_commits(rule(repo, branches=re.compile("^nothing$"), tags=re.compile("^nope$"))) == frozenset()
