"""Tests for reconcile.policy.source, through validate_repo: the repo-of-record is read at a git
commit (never the working tree), or from disk when it is a plain directory; a symlink is never
followed, inside the repo-of-record or out (refused with the reason); dot-directories are
skipped, foreign documents ignored, oversized files refused.

Every git repository here is real (``git.Repo.init`` in ``tmp_path``, files committed through the
index); nothing about git is mocked.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import git
import pytest

from reconcile.policy import SourceError, Validation, validate_repo
from reconcile.policy.documents import MAX_FILE_BYTES
from reconcile.policy.source import mirror, read_snapshot

REGISTRY = """\
apiVersion: reconcile/v1
kind: Registry
metadata:
  name: ci
spec:
  url: https://registry.ci.example.com
"""

RETENTION = """\
apiVersion: reconcile/v1
kind: RetentionPolicy
metadata:
  name: ci-cleanup
spec:
  registry: ci
  repositories: ["team-a/*"]
  keep:
    - tags: '^v\\d+$'
      last: 10
"""

# The same policy naming a registry that does not exist: one problem, on line 6.
BROKEN_RETENTION = RETENTION.replace("registry: ci", "registry: nope")
UNKNOWN_REGISTRY = "6: RetentionPolicy/ci-cleanup: /spec/registry: unknown Registry 'nope' (known: ci)"

VALID = {"registries.yaml": REGISTRY, "retention.yaml": RETENTION}

# Content of files outside the repo-of-record: must never show up in anything read.
OUTSIDE_MARKER = "outside-content-5f0c1e"
OUTSIDE = f"""\
# {OUTSIDE_MARKER}
apiVersion: reconcile/v1
kind: Registry
metadata:
  name: {OUTSIDE_MARKER}
spec:
  url: https://{OUTSIDE_MARKER}.example.com
"""

# --- helpers ---------------------------------------------------------------------------------


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def link(root: Path, links: dict[str, str]) -> None:
    for name, target in links.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)


def init_repo(path: Path) -> git.Repo:
    path.mkdir(parents=True, exist_ok=True)
    repo = git.Repo.init(path)
    with repo.config_writer() as config:
        config.set_value("user", "name", "Policy Author")
        config.set_value("user", "email", "author@example.com")
    return repo


def commit(repo: git.Repo, files: dict[str, str | bytes] | None = None, *,
           links: dict[str, str] | None = None, message: str = "change") -> str:
    """Write ``files`` (and create symlinks ``links``) in the work tree, commit them; the sha."""
    root = Path(repo.working_tree_dir)
    files, links = files or {}, links or {}
    write(root, files)
    link(root, links)
    repo.index.add([*files, *links])
    return repo.index.commit(message).hexsha


def shown(validation: Validation) -> list[str]:
    return [str(problem) for problem in validation.problems]


def file_paths(validation: Validation) -> list[str]:
    return [policy_file.path for policy_file in validation.snapshot.files]


def content_of(validation: Validation, path: str) -> bytes | None:
    (found,) = [f for f in validation.snapshot.files if f.path == path]
    return found.content


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[git.Repo]:
    with init_repo(tmp_path / "repo") as repository:
        yield repository


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    """A directory that is not inside any git work tree (else it would be read at a commit)."""
    root = tmp_path / "plain"
    root.mkdir()
    with pytest.raises(git.InvalidGitRepositoryError):
        git.Repo(root, search_parent_directories=True)
    return root


def make_source(mode: str, root: Path, files: dict[str, str | bytes],
                links: dict[str, str] | None = None) -> None:
    """The same tree as a plain directory, or committed to a fresh git repository at ``root``."""
    if mode == "plain":
        root.mkdir(parents=True)
        with pytest.raises(git.InvalidGitRepositoryError):
            git.Repo(root, search_parent_directories=True)
        write(root, files)
        link(root, links or {})
    else:
        with init_repo(root) as repository:
            commit(repository, files, links=links)


# --- reading at a commit ---------------------------------------------------------------------


def test_reads_the_commit_a_ref_names_not_the_latest(repo: git.Repo) -> None:
    root = Path(repo.working_tree_dir)
    good = commit(repo, VALID, message="valid policies")
    repo.create_tag("v1", ref=good)
    repo.create_head("known-good", good)
    bad = commit(repo, {"retention.yaml": BROKEN_RETENTION}, message="break retention")
    assert good != bad

    head = validate_repo(str(root))
    assert head.snapshot.commit == bad
    assert shown(head) == [f"{root}/retention.yaml:{UNKNOWN_REGISTRY}"]
    assert head.problems[0].line == 6
    assert head.policies is None
    assert not head.ok

    for ref in (good, good[:12], "HEAD~1", "HEAD^", "v1", "known-good", "refs/tags/v1"):
        at_good = validate_repo(str(root), ref=ref)
        assert at_good.ok, (ref, shown(at_good))
        assert at_good.snapshot.commit == good, ref
        assert at_good.policies is not None
        assert at_good.policies.commit == good
        assert list(at_good.policies.retention_policies) == ["ci-cleanup"]
        assert at_good.policies.retention_policies["ci-cleanup"].registry == "ci"
        assert content_of(at_good, f"{root}/retention.yaml") == RETENTION.encode()

    for ref in (bad, "HEAD", repo.active_branch.name):
        at_bad = validate_repo(str(root), ref=ref)
        assert at_bad.snapshot.commit == bad, ref
        assert shown(at_bad) == [f"{root}/retention.yaml:{UNKNOWN_REGISTRY}"], ref


def test_a_file_deleted_in_a_later_commit_is_still_read_at_the_earlier_one(repo: git.Repo) -> None:
    root = Path(repo.working_tree_dir)
    first = commit(repo, {**VALID, "extra.yaml": BROKEN_RETENTION.replace("ci-cleanup", "extra")})
    repo.index.remove(["extra.yaml"], working_tree=True)
    second = repo.index.commit("drop extra").hexsha

    assert validate_repo(str(root)).ok
    assert file_paths(validate_repo(str(root), ref=second)) == [f"{root}/registries.yaml",
                                                                f"{root}/retention.yaml"]
    at_first = validate_repo(str(root), ref=first)
    assert shown(at_first) == [
        f"{root}/extra.yaml:6: RetentionPolicy/extra: /spec/registry: unknown Registry 'nope' (known: ci)"]
    assert not (root / "extra.yaml").exists()  # read from the commit: the file is gone from disk


def _modify(root: Path, repo: git.Repo) -> None:
    (root / "retention.yaml").write_text(BROKEN_RETENTION)


def _stage(root: Path, repo: git.Repo) -> None:
    (root / "retention.yaml").write_text(BROKEN_RETENTION)
    repo.index.add(["retention.yaml"])


def _delete(root: Path, repo: git.Repo) -> None:
    (root / "retention.yaml").unlink()


def _untracked(root: Path, repo: git.Repo) -> None:
    write(root, {"new/broken.yaml": BROKEN_RETENTION.replace("ci-cleanup", "new")})


@pytest.mark.parametrize("change", [_modify, _stage, _delete, _untracked],
                         ids=["modified", "staged", "deleted", "untracked"])
def test_the_working_tree_is_not_what_is_read(repo: git.Repo, change: Callable[[Path, git.Repo], None]) -> None:
    root = Path(repo.working_tree_dir)
    committed = commit(repo, VALID)
    clean = validate_repo(str(root))
    assert clean.ok
    assert clean.snapshot.uncommitted_changes is False

    change(root, repo)

    at_head = validate_repo(str(root))
    assert at_head.ok, shown(at_head)
    assert at_head.snapshot.commit == committed
    assert file_paths(at_head) == [f"{root}/registries.yaml", f"{root}/retention.yaml"]
    assert content_of(at_head, f"{root}/retention.yaml") == RETENTION.encode()
    assert at_head.snapshot.uncommitted_changes is True

    for ref in ("HEAD", committed):  # an explicit ref: the work tree is beside the point
        explicit = validate_repo(str(root), ref=ref)
        assert explicit.ok
        assert explicit.snapshot.uncommitted_changes is False


def test_a_commit_makes_the_tree_clean_again(repo: git.Repo) -> None:
    root = Path(repo.working_tree_dir)
    commit(repo, VALID)
    (root / "retention.yaml").write_text(BROKEN_RETENTION)
    assert validate_repo(str(root)).snapshot.uncommitted_changes is True
    repo.index.add(["retention.yaml"])
    fixed = repo.index.commit("commit the change").hexsha

    after = validate_repo(str(root))
    assert after.snapshot.commit == fixed
    assert after.snapshot.uncommitted_changes is False
    assert shown(after) == [f"{root}/retention.yaml:{UNKNOWN_REGISTRY}"]


# --- --repo a directory inside a git work tree -----------------------------------------------


def test_a_subdirectory_is_read_alone_at_the_commit(repo: git.Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    top = Path(repo.working_tree_dir)
    good = commit(repo, {
        "policies/registries.yaml": REGISTRY,
        "policies/retention/ci.yaml": RETENTION,
        # Outside the directory --repo names: never read, however broken.
        "broken-at-top.yaml": "key: [unclosed\n",
        "other/retention.yaml": BROKEN_RETENTION.replace("ci-cleanup", "other"),
    })
    bad = commit(repo, {"policies/retention/ci.yaml": BROKEN_RETENTION})
    policies = top / "policies"

    at_head = validate_repo(str(policies))
    assert at_head.snapshot.commit == bad
    assert file_paths(at_head) == [f"{policies}/registries.yaml", f"{policies}/retention/ci.yaml"]
    assert shown(at_head) == [f"{policies}/retention/ci.yaml:{UNKNOWN_REGISTRY}"]

    at_good = validate_repo(str(policies), ref=good)
    assert at_good.ok
    assert at_good.snapshot.commit == good

    # Paths shown are the --repo argument as given, joined with the path below it.
    monkeypatch.chdir(top)
    for argument, prefix in (("policies", "policies"), ("policies/", "policies"), ("./policies", "policies")):
        relative = validate_repo(argument)
        assert shown(relative) == [f"{prefix}/retention/ci.yaml:{UNKNOWN_REGISTRY}"], argument
        assert relative.snapshot.source == argument
    monkeypatch.chdir(policies)
    assert shown(validate_repo(".")) == [f"retention/ci.yaml:{UNKNOWN_REGISTRY}"]
    # the whole work tree from inside it: everything, including what is outside policies/
    assert sorted({p.path for p in validate_repo("..").problems}) == [
        "../broken-at-top.yaml", "../other/retention.yaml", "../policies/retention/ci.yaml"]


def test_uncommitted_changes_count_only_below_the_subdirectory(repo: git.Repo) -> None:
    top = Path(repo.working_tree_dir)
    commit(repo, {"policies/registries.yaml": REGISTRY, "policies/retention.yaml": RETENTION,
                  "docs/notes.yaml": "a: 1\n"})
    (top / "docs/notes.yaml").write_text("a: 2\n")
    write(top, {"elsewhere.yaml": "b: 1\n"})
    assert validate_repo(str(top / "policies")).snapshot.uncommitted_changes is False
    assert validate_repo(str(top)).snapshot.uncommitted_changes is True

    (top / "policies/retention.yaml").write_text(BROKEN_RETENTION)
    below = validate_repo(str(top / "policies"))
    assert below.snapshot.uncommitted_changes is True
    assert below.ok  # still the committed content


def test_a_subdirectory_missing_at_the_commit_is_a_source_error(repo: git.Repo) -> None:
    top = Path(repo.working_tree_dir)
    commit(repo, VALID)
    write(top, {"drafts/retention.yaml": RETENTION})  # on disk, never committed
    with pytest.raises(SourceError, match="does not exist at commit"):
        validate_repo(str(top / "drafts"))


# --- plain directories and source errors -----------------------------------------------------


def test_a_plain_directory_is_read_from_disk(plain: Path) -> None:
    write(plain, VALID)
    valid = validate_repo(str(plain))
    assert valid.ok
    assert valid.snapshot.commit is None
    assert valid.snapshot.uncommitted_changes is False
    assert valid.policies is not None and valid.policies.commit is None
    assert file_paths(valid) == [f"{plain}/registries.yaml", f"{plain}/retention.yaml"]

    (plain / "retention.yaml").write_text(BROKEN_RETENTION)  # read as it is on disk, at once
    assert shown(validate_repo(str(plain))) == [f"{plain}/retention.yaml:{UNKNOWN_REGISTRY}"]


def _nonexistent(tmp_path: Path) -> tuple[Path, str | None]:
    return tmp_path / "no-such-dir", None


def _a_file(tmp_path: Path) -> tuple[Path, str | None]:
    write(tmp_path, {"registries.yaml": REGISTRY})
    return tmp_path / "registries.yaml", None


def _plain_with_ref(tmp_path: Path) -> tuple[Path, str | None]:
    write(tmp_path / "plain", VALID)
    return tmp_path / "plain", "main"


def _empty_git_repo(tmp_path: Path) -> tuple[Path, str | None]:
    init_repo(tmp_path / "repo").close()
    write(tmp_path / "repo", VALID)  # on disk but never committed
    return tmp_path / "repo", None


def _empty_git_repo_with_ref(tmp_path: Path) -> tuple[Path, str | None]:
    init_repo(tmp_path / "repo").close()
    return tmp_path / "repo", "main"


def _unknown_ref(ref: str) -> Callable[[Path], tuple[Path, str | None]]:
    def setup(tmp_path: Path) -> tuple[Path, str | None]:
        with init_repo(tmp_path / "repo") as repository:
            commit(repository, VALID)
        return tmp_path / "repo", ref
    return setup


SOURCE_ERRORS = [
    ("nonexistent", _nonexistent, r"repo-of-record '.*/no-such-dir' does not exist"),
    ("a-file", _a_file, r"repo-of-record '.*/registries\.yaml' is not a directory"),
    ("plain-with-ref", _plain_with_ref, r"--ref 'main' given, but '.*/plain' is not a git repository"),
    ("empty-git-repo", _empty_git_repo, r"'.*/repo' is a git repository with no commits yet"),
    ("empty-git-repo-with-ref", _empty_git_repo_with_ref, r"unknown git ref 'main' in '.*/repo'"),
    ("unknown-branch", _unknown_ref("no-such-branch"), r"unknown git ref 'no-such-branch' in '.*/repo'"),
    ("unknown-sha", _unknown_ref("0123456789abcdef" * 2 + "01234567"),
     r"unknown git ref '0123456789abcdef0123456789abcdef01234567'"),
    ("beyond-history", _unknown_ref("HEAD~3"), r"unknown git ref 'HEAD~3'"),
    ("not-a-commit", _unknown_ref("HEAD:retention.yaml"), r"unknown git ref 'HEAD:retention\.yaml'"),
    # reflog syntax goes through another path in GitPython's rev_parse
    ("unknown-branch-reflog", _unknown_ref("no-such-branch@{1}"), r"unknown git ref 'no-such-branch@\{1\}'"),
    ("reflog-beyond-history", _unknown_ref("HEAD@{5}"), r"unknown git ref 'HEAD@\{5\}'"),
]


@pytest.mark.parametrize(("setup", "message"), [case[1:] for case in SOURCE_ERRORS],
                         ids=[case[0] for case in SOURCE_ERRORS])
def test_source_errors(tmp_path: Path, setup: Callable[[Path], tuple[Path, str | None]], message: str) -> None:
    path, ref = setup(tmp_path)
    with pytest.raises(SourceError, match=message):
        validate_repo(str(path), ref=ref)


# --- symlinks --------------------------------------------------------------------------------


def never_followed(target: str) -> str:
    return f"is a symlink (to {target!r}); only regular files are read, symlinks are never followed"


def directory_not_entered(target: str) -> str:
    return f"is a symlink to a directory (to {target!r}); symlinks are never followed, so nothing below it is read"


@pytest.mark.parametrize("mode", ["git", "plain"])
def test_every_symlinked_policy_file_is_refused_inside_or_out(tmp_path: Path, mode: str) -> None:
    write(tmp_path, {"outside.yaml": OUTSIDE})
    root = tmp_path / "repo"
    make_source(mode, root, {"registries.yaml": REGISTRY, "sub/real.yaml": RETENTION,
                             "shared/retention.yaml.txt": RETENTION}, links={
        "a.yaml": "sub/real.yaml",                          # inside
        "other.yml": "../repo/shared/retention.yaml.txt",   # inside, another extension
        "evil.yaml": "../outside.yaml",                     # relative, leaves the repo
        "abs.yaml": str(tmp_path / "outside.yaml"),         # absolute
        "passwd.yaml": "/etc/passwd",                       # absolute, a system file
        "sub/up.yaml": "../../outside.yaml",                # from a subdirectory
        "chain.yaml": "evil.yaml",                          # inside, to a link that leaves
        "notes.txt": "../outside.yaml",                     # no policy file's name: not read, not reported
    })
    names = ("a.yaml", "abs.yaml", "chain.yaml", "evil.yaml", "other.yml", "passwd.yaml", "sub/up.yaml")
    if mode == "git":
        with git.Repo(root) as repository:
            tree = repository.head.commit.tree
            for name in names:
                assert (tree / name).mode == 0o120000, name  # committed as a symlink, not a copy
            assert (tree / "sub/real.yaml").mode == 0o100644

    validation = validate_repo(str(root))

    refused = {p.path: p for p in validation.problems}
    assert sorted(refused) == [f"{root}/{name}" for name in names]
    for problem in refused.values():
        assert problem.line == 1
        assert problem.subject is None
        assert content_of(validation, problem.path) is None
    assert str(refused[f"{root}/a.yaml"]) == f"{root}/a.yaml:1: {never_followed('sub/real.yaml')}"
    assert str(refused[f"{root}/evil.yaml"]) == f"{root}/evil.yaml:1: {never_followed('../outside.yaml')}"
    assert str(refused[f"{root}/passwd.yaml"]) == f"{root}/passwd.yaml:1: {never_followed('/etc/passwd')}"
    assert validation.documents == 2  # registries.yaml and sub/real.yaml, each read once, as itself

    # Nothing of what is outside was read, anywhere in the result.
    everything = repr(validation)
    assert OUTSIDE_MARKER not in everything
    passwd = Path("/etc/passwd")
    if passwd.is_file():
        assert all(line not in everything for line in passwd.read_text().splitlines() if line.strip())


@pytest.mark.parametrize("mode", ["git", "plain"])
def test_a_symlinked_directory_is_refused_not_entered(tmp_path: Path, mode: str) -> None:
    write(tmp_path, {"elsewhere/evil.yaml": OUTSIDE})
    root = tmp_path / "repo"
    make_source(mode, root, {"registries.yaml": REGISTRY, "shared/retention.yaml": RETENTION},
                links={"team-a": "shared", "nested/team-b": "../shared"})
    if mode == "plain":  # on disk the target's type shows: a directory outside is refused too
        link(root, {"outside": str(tmp_path / "elsewhere")})
    validation = validate_repo(str(root))
    expected = [f"{root}/nested/team-b:1: {directory_not_entered('../shared')}",
                f"{root}/team-a:1: {directory_not_entered('shared')}"]
    if mode == "plain":
        expected.insert(1, f"{root}/outside:1: {directory_not_entered(str(tmp_path / 'elsewhere'))}")
    assert shown(validation) == expected
    assert file_paths(validation) == [f"{root}/{p}" for p in
                                      ("nested/team-b", *(["outside"] if mode == "plain" else []),
                                       "registries.yaml", "shared/retention.yaml", "team-a")]
    assert validation.documents == 2
    assert OUTSIDE_MARKER not in repr(validation)


@pytest.mark.parametrize("mode", ["git", "plain"])
def test_a_symlink_out_of_the_subdirectory_given_as_repo_is_refused(tmp_path: Path, mode: str) -> None:
    top = tmp_path / "top"
    make_source(mode, top, {"policies/registries.yaml": REGISTRY,
                            "policies/shared/retention.txt": RETENTION,
                            "elsewhere/real.yaml": OUTSIDE},
                links={"policies/link.yaml": "../elsewhere/real.yaml",
                       "policies/deep/inside.yaml": "../shared/retention.txt"})
    policies = top / "policies"

    validation = validate_repo(str(policies))
    assert shown(validation) == [f"{policies}/deep/inside.yaml:1: {never_followed('../shared/retention.txt')}",
                                 f"{policies}/link.yaml:1: {never_followed('../elsewhere/real.yaml')}"]
    assert OUTSIDE_MARKER not in repr(validation)

    # From the top the same link stays inside, and is still refused.
    whole = validate_repo(str(top))
    assert content_of(whole, f"{top}/policies/link.yaml") is None
    assert OUTSIDE_MARKER in repr(content_of(whole, f"{top}/elsewhere/real.yaml"))  # read as itself


def test_a_subdirectory_given_as_repo_through_a_symlink_is_a_source_error(repo: git.Repo) -> None:
    root = Path(repo.working_tree_dir)
    commit(repo, {"real/registries.yaml": REGISTRY}, links={"policies": "real"})
    with pytest.raises(SourceError, match=r"is reached through a symlink \(policies\) in its git repository; "
                                          "symlinks are never followed"):
        validate_repo(str(root / "policies"))
    assert validate_repo(str(root / "real")).ok


def test_a_symlink_loop_is_refused(repo: git.Repo) -> None:
    root = Path(repo.working_tree_dir)
    commit(repo, VALID, links={"loop-a.yaml": "loop-b.yaml", "loop-b.yaml": "loop-a.yaml"})
    validation = validate_repo(str(root))
    assert {p.path for p in validation.problems} == {f"{root}/loop-a.yaml", f"{root}/loop-b.yaml"}
    assert all(p.line == 1 and "symlink" in p.message for p in validation.problems)


# --- what is skipped, ignored, refused -------------------------------------------------------

WORKFLOW = """\
name: ci
on: [push, pull_request]
jobs:
  validate:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: reconcile validate --format github
"""

MANIFESTS = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  template:
    spec:
      containers:
        - {name: web, image: registry.example.com/web@sha256:0123}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports: [{port: 80}]
"""

BROKEN_POLICY = "apiVersion: reconcile/v1\nkind: Registry\nmetadata: {name: Not A Name}\nspec: {}\n"


@pytest.mark.parametrize("mode", ["git", "plain"])
def test_dot_directories_are_skipped_and_foreign_documents_ignored(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "repo"
    make_source(mode, root, {
        **VALID,
        "k8s/web.yaml": MANIFESTS,
        # Never read: each would be a problem (or an ignored document) if it were.
        ".github/workflows/ci.yml": WORKFLOW,
        ".github/broken.yaml": BROKEN_POLICY,
        ".hidden.yaml": BROKEN_POLICY,
        "retention/.drafts/next.yaml": BROKEN_POLICY,
        "k8s/.old/web.yml": "key: [unclosed\n",
        # Not YAML by name: not read either.
        "notes.txt": BROKEN_POLICY,
        "README.md": BROKEN_POLICY,
    })
    validation = validate_repo(str(root))
    assert validation.ok, shown(validation)
    assert sorted(file_paths(validation)) == [
        f"{root}/k8s/web.yaml", f"{root}/registries.yaml", f"{root}/retention.yaml"]
    assert validation.documents == 2
    assert validation.ignored == 2  # the Deployment and the Service, not the workflow
    assert validation.policies.counts() == {"Registry": 1, "Cluster": 0, "RetentionPolicy": 1,
                                             "PromotionPolicy": 0, "DeployPolicy": 0}


@pytest.mark.parametrize("mode", ["git", "plain"])
def test_one_of_our_kinds_with_a_foreign_api_version_is_not_ignored(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "repo"
    core = REGISTRY.replace("reconcile/v1", "v1").replace("name: ci", "name: core")
    make_source(mode, root, {**VALID, "core.yaml": core, "k8s/web.yaml": MANIFESTS})
    validation = validate_repo(str(root))
    assert shown(validation) == [
        f"{root}/core.yaml:1: Registry/core: /apiVersion: unsupported apiVersion 'v1'; "
        "this version reads reconcile/v1"]
    assert validation.ignored == 2
    assert validation.documents == 3


OVERSIZED = b"# " + b"x" * MAX_FILE_BYTES + b"\n"
AT_THE_LIMIT = b"#" + b"x" * (MAX_FILE_BYTES - 2) + b"\n"


@pytest.mark.parametrize("mode", ["git", "plain"])
def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path, mode: str) -> None:
    assert MAX_FILE_BYTES == 1024 * 1024
    assert len(AT_THE_LIMIT) == MAX_FILE_BYTES
    root = tmp_path / "repo"
    make_source(mode, root, {**VALID, "big.yaml": OVERSIZED, "limit.yaml": AT_THE_LIMIT},
                links={"big-link.yaml": "big.yaml"})
    if mode == "git":
        with git.Repo(root) as repository:
            assert (repository.head.commit.tree / "big.yaml").size == len(OVERSIZED)

    validation = validate_repo(str(root))
    too_big = (f"1: file is {len(OVERSIZED)} bytes, over the limit of {MAX_FILE_BYTES} bytes "
               "for a policy file")
    assert shown(validation) == [f"{root}/big-link.yaml:1: {never_followed('big.yaml')}", f"{root}/big.yaml:{too_big}"]
    assert content_of(validation, f"{root}/big.yaml") is None
    assert content_of(validation, f"{root}/big-link.yaml") is None
    assert content_of(validation, f"{root}/limit.yaml") == AT_THE_LIMIT  # exactly the limit: read


@pytest.mark.parametrize("mode", ["git", "plain"])
def test_files_are_read_in_path_order_whatever_the_source(tmp_path: Path, mode: str) -> None:
    """The order decides which of two same-named documents is 'first': the same tree must give the
    same report whether it is a plain directory or a git commit."""
    root = tmp_path / "repo"
    make_source(mode, root, {"z.yaml": "a: 1\n", "a/b.yml": "a: 1\n", "m.yaml": "a: 1\n", "x.json": "{}",
                             "registries/ci.yaml": REGISTRY, "registry.yaml": REGISTRY})
    snapshot = read_snapshot(str(root))
    assert snapshot.source == str(root)
    assert [f.path for f in snapshot.files] == [
        f"{root}/{name}" for name in ("a/b.yml", "m.yaml", "registries/ci.yaml", "registry.yaml", "z.yaml")]
    assert shown(validate_repo(str(root))) == [
        f"{root}/registry.yaml:4: Registry/ci: /metadata/name: duplicate Registry name 'ci' "
        f"(first defined at {root}/registries/ci.yaml:4)"]


def test_one_mirror_cloned_and_fetched_from_many_threads_at_once(repo: git.Repo, tmp_path: Path) -> None:
    """observe() reads sources side by side, and several can name one git repository (a Cluster's
    manifests and the DeployPolicies writing them): each clone or fetch of the mirror waits its turn."""
    commit(repo, {"a.yaml": "x: 1\n"})
    url = Path(repo.working_dir).as_uri()
    cache = tmp_path / "mirrors"

    def fetch(_: int) -> str:
        return mirror(url, cache, "the manifests").head.commit.hexsha

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert set(pool.map(fetch, range(12))) == {repo.head.commit.hexsha}
