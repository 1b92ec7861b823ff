"""Reading the repo-of-record: the YAML files of a directory, or of a git commit through
GitPython (the blobs at that commit, never the working tree, so CI can validate a pull request's
base and head without checking either out)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import git

from reconcile.policy.documents import MAX_FILE_BYTES

SUFFIXES = (".yaml", ".yml")
MAX_FILES = 10_000
MAX_SYMLINK_HOPS = 8
_SYMLINK_MODE = 0o120000
_TREE_MODE = 0o040000


class SourceError(Exception):
    """The repo-of-record itself cannot be read (no such path, unknown ref...)."""


@dataclass(frozen=True)
class PolicyFile:
    path: str  # as shown to people: the --repo argument joined with the path below it
    content: bytes | None
    problem: str | None = None  # refused before parsing, e.g. a symlink leaving the repo


@dataclass(frozen=True)
class Snapshot:
    """The policy files as of one commit (or one directory listing)."""

    source: str
    commit: str | None
    files: tuple[PolicyFile, ...]
    uncommitted_changes: bool = False  # a git work tree that differs from the commit read


def read_snapshot(repo: str, ref: str | None = None, *, cache_dir: Path | None = None,
                  fetch: bool = True) -> Snapshot:
    """Read every ``*.yaml``/``*.yml`` below ``repo`` at ``ref`` (default ``HEAD``).

    ``repo`` may be a git work tree or a directory inside one (only that directory is read, at the
    commit), a plain directory (read from disk; ``ref`` is then an error), or a git URL (mirrored
    into ``cache_dir`` and fetched on every read, unless ``fetch`` is False: a second ref of a
    remote this run already fetched, read at the same state of the remote).
    """
    ref = ref or None  # an empty --ref means the default, as an unset one does
    if is_remote(repo):
        return _read_remote(repo, ref, cache_dir or default_cache_dir() / "repos", fetch=fetch)
    root = Path(repo)
    if not root.exists():
        raise SourceError(f"repo-of-record {repo!r} does not exist")
    if not root.is_dir():
        raise SourceError(f"repo-of-record {repo!r} is not a directory")
    try:
        repository = git.Repo(root, search_parent_directories=True)
    except git.InvalidGitRepositoryError:
        if ref is not None:
            raise SourceError(f"--ref {ref!r} given, but {repo!r} is not a git repository") from None
        return Snapshot(repo, None, tuple(_read_directory(repo, root)))
    with repository:
        return _read_commit(repo, repo, root, repository, ref)


_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:(?!//)")  # git@host:org/repo.git
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def is_remote(repo: str) -> bool:
    return "://" in repo or bool(_SCP_LIKE.match(repo))


def redact_url(text: str) -> str:
    """Drop ``user:token@`` from URLs: a token in a remote URL must not reach logs or messages."""
    return _USERINFO.sub("***@", text)


def default_cache_dir() -> Path:
    """``$RECONCILE_CACHE_DIR``, else ``$XDG_CACHE_HOME/reconcile``, else ``~/.cache/reconcile``."""
    if os.environ.get("RECONCILE_CACHE_DIR"):
        return Path(os.environ["RECONCILE_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reconcile"


def _read_remote(url: str, ref: str | None, cache: Path, *, fetch: bool = True) -> Snapshot:
    """Mirror the remote into the cache (clone once, then fetch every time) and read the commit.

    A failed fetch is an error, not a reason to act on the cached copy: stale policies may
    protect less than the current ones do.
    """
    shown = redact_url(url)
    repository = mirror(url, cache, fetch=fetch)
    with repository:
        return _read_commit(shown, "", Path(repository.git_dir), repository, ref)


def _local_repository(repo: str, cache_dir: Path | None) -> git.Repo | None:
    """The repo-of-record as a local git repository (a URL's mirror, as :func:`read_snapshot` left
    it, not fetched again); None for a plain directory."""
    if is_remote(repo):
        return mirror(repo, cache_dir or default_cache_dir() / "repos", fetch=False)
    try:
        return git.Repo(repo, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None


def default_branch(repo: str, *, cache_dir: Path | None = None) -> str | None:
    """The ref that stands for the repo-of-record's default branch, as a full ref name: what
    ``refs/remotes/origin/HEAD`` points at; for a bare repository or a git URL (mirrored, as
    :func:`read_snapshot` left it), the branch its ``HEAD`` names; else ``refs/heads/main``;
    else, in a repository with no remote at all (nobody's pull request can be in it), the branch
    checked out. None when none of these exists (a detached HEAD, or a remote without
    ``origin/HEAD`` and no ``main``, as a CI checkout of one commit): the caller must then be
    told which ref to trust, it never guesses. A plain directory also gives None."""
    repository = _local_repository(repo, cache_dir)
    if repository is None:
        return None
    with repository:
        if repository.bare:
            return _symbolic(repository, "HEAD")
        remote_head = _symbolic(repository, "refs/remotes/origin/HEAD")
        if remote_head is not None:
            return remote_head
        if _exists(repository, "refs/heads/main"):
            return "refs/heads/main"
        if not repository.remotes:
            return _symbolic(repository, "HEAD")
        return None


def unambiguous(repo: str, ref: str, *, cache_dir: Path | None = None) -> None:
    """Raise SourceError when ``ref`` names more than one ref (``origin/main`` as a tag and as a
    remote-tracking branch: git would take the tag). For a ref that must be the one meant, as the
    trusted ref; full names (``refs/...``) and commit ids are taken as they are."""
    if ref.startswith("refs/"):
        return
    repository = _local_repository(repo, cache_dir)
    if repository is None:
        return
    with repository:
        # git's own order of lookup (git help revisions)
        found = [full for full in (f"refs/{ref}", f"refs/tags/{ref}", f"refs/heads/{ref}", f"refs/remotes/{ref}",
                                   f"refs/remotes/{ref}/HEAD") if _exists(repository, full)]
    if len(found) > 1:
        raise SourceError(f"ref {ref!r} is ambiguous in {redact_url(repo)!r} ({', '.join(found)}); name the one "
                          "meant in full")


def _symbolic(repository: git.Repo, name: str) -> str | None:
    try:
        target = repository.git.symbolic_ref("--quiet", name).strip()
    except git.GitCommandError:
        return None
    return target if target and _exists(repository, target) else None


def _exists(repository: git.Repo, full_ref: str) -> bool:
    try:
        repository.git.show_ref("--verify", "--quiet", full_ref)
    except git.GitCommandError:
        return False
    return True


def mirror(url: str, cache: Path, what: str = "the repo-of-record", *, fetch: bool = True) -> git.Repo:
    """A bare mirror of ``url`` under ``cache``, cloned once and fetched on every call (unless
    ``fetch`` is False: reading more of a commit this run already fetched)."""
    shown = redact_url(url)
    path = cache / hashlib.sha256(url.encode()).hexdigest()[:24]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One clone or fetch of a mirror at a time, across threads and processes (a CronJob and a
        # person planning by hand may share the cache): git would refuse the second's ref locks.
        with open(path.with_name(path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if (path / "HEAD").is_file():
                repository = git.Repo(path)
                if fetch:
                    repository.git.remote("update", "--prune")
            else:
                repository = git.Repo.clone_from(url, path, mirror=True)
    except (git.GitCommandError, git.InvalidGitRepositoryError, OSError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        reason = redact_url(detail.replace(url, shown)).strip().splitlines()
        raise SourceError(f"cannot fetch {what} {shown}: {reason[-1] if reason else 'git failed'}"
                          ) from None
    return repository


def _display(repo: str, relative: str) -> str:
    return posixpath.normpath(posixpath.join(repo.replace(os.sep, "/"), relative))


def _read_commit(repo: str, prefix: str, root: Path, repository: git.Repo, ref: str | None) -> Snapshot:
    """``repo`` names the source in messages; ``prefix`` starts every file path shown."""
    top = Path(repository.working_tree_dir or repository.git_dir).resolve()
    base = root.resolve().relative_to(top).as_posix()
    base = "" if base == "." else base
    try:
        # git itself resolves the ref: GitPython's rev_parse raises assorted errors on reflog syntax.
        sha = repository.git.rev_parse("--verify", "--quiet", "--end-of-options", f"{ref or 'HEAD'}^{{commit}}")
    except git.GitCommandError:
        if ref is None:
            raise SourceError(f"{repo!r} is a git repository with no commits yet") from None
        raise SourceError(f"unknown git ref {ref!r} in {repo!r}") from None
    commit = repository.commit(sha)
    try:
        tree = commit.tree / base if base else commit.tree
    except KeyError:
        raise SourceError(f"{repo!r} does not exist at commit {commit.hexsha[:12]}") from None
    if not isinstance(tree, git.Tree):
        raise SourceError(f"{repo!r} is not a directory at commit {commit.hexsha[:12]}")
    files = []
    # (traverse yields (parent, item) pairs only with as_edge=True; GitPython's types allow both)
    for item in tree.traverse(prune=lambda i, _d: not isinstance(i, tuple) and _hidden(os.fspath(i.path), base)):
        if not isinstance(item, git.Blob) or not os.fspath(item.path).endswith(SUFFIXES) \
                or _hidden(os.fspath(item.path), base):
            continue
        files.append(_blob_file(prefix, commit, base, item))
        if len(files) > MAX_FILES:
            raise SourceError(f"{repo!r} holds more than {MAX_FILES} YAML files")
    dirty = ref is None and repository.working_tree_dir is not None and repository.is_dirty(
        untracked_files=True, path=base or None)
    files.sort(key=lambda f: f.path)
    return Snapshot(repo, commit.hexsha, tuple(files), dirty)


def _hidden(path: str, base: str) -> bool:
    """Dot-directories (.git, .github...) and dot-files hold no policies."""
    below = path[len(base):].lstrip("/") if base else path
    return any(part.startswith(".") for part in below.split("/"))


def _blob_file(prefix: str, commit: git.Commit, base: str, blob: git.Blob) -> PolicyFile:
    shown = _display(prefix, os.fspath(blob.path)[len(base):].lstrip("/"))
    seen = 0
    while blob.mode == _SYMLINK_MODE:
        seen += 1
        target = blob.data_stream.read().decode("utf-8", "replace")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(blob.path), target))
        inside = not target.startswith("/") and (
            not base or resolved == base or resolved.startswith(base + "/"))
        if not inside or resolved.startswith(".."):
            return PolicyFile(shown, None, f"symlink to {target!r} points outside the "
                                           "repo-of-record; refusing to follow it")
        if seen > MAX_SYMLINK_HOPS:
            return PolicyFile(shown, None, "too many levels of symlinks")
        try:
            blob = commit.tree / resolved
        except KeyError:
            return PolicyFile(shown, None, f"symlink target {target!r} does not exist")
        if blob.type != "blob":
            return PolicyFile(shown, None, f"symlink target {target!r} is not a file")
    if blob.size > MAX_FILE_BYTES:
        return PolicyFile(shown, None, f"file is {blob.size} bytes, over the limit of "
                                       f"{MAX_FILE_BYTES} bytes for a policy file")
    return PolicyFile(shown, blob.data_stream.read())


def _read_directory(repo: str, root: Path) -> Iterator[PolicyFile]:
    real_root = root.resolve()
    found = []
    for directory, subdirs, names in os.walk(root):  # symlinked directories are not entered
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or not name.endswith(SUFFIXES):
                continue
            found.append(Path(directory, name))
            if len(found) > MAX_FILES:
                raise SourceError(f"{repo!r} holds more than {MAX_FILES} YAML files")
    found.sort(key=lambda p: p.relative_to(root).as_posix())  # the same order as from a commit
    for path in found:
        relative = path.relative_to(root).as_posix()
        shown = _display(repo, relative)
        real = path.resolve()
        if path.is_symlink() and not real.is_relative_to(real_root):
            yield PolicyFile(shown, None, f"symlink to {os.readlink(path)!r} points outside the "
                                          "repo-of-record; refusing to follow it")
            continue
        if not real.is_file():
            yield PolicyFile(shown, None, "not a regular file")
            continue
        size = real.stat().st_size
        if size > MAX_FILE_BYTES:
            yield PolicyFile(shown, None, f"file is {size} bytes, over the limit of "
                                          f"{MAX_FILE_BYTES} bytes for a policy file")
            continue
        yield PolicyFile(shown, real.read_bytes())


def read_file(repo: str, commit: str | None, path: str) -> bytes | None:
    """One file of the repo-of-record at ``commit`` (None: a plain directory, read from disk), or
    None when it does not exist. Paths are relative to ``repo`` and may not leave it."""
    normal = posixpath.normpath(path)
    if normal.startswith(("../", "/")) or normal == "..":
        return None
    if commit is None:
        target = Path(repo, normal)
        return target.read_bytes() if target.is_file() and target.stat().st_size <= MAX_FILE_BYTES else None
    if is_remote(repo):
        repository = mirror(repo, default_cache_dir() / "repos", fetch=False)  # the snapshot read fetched it
        base = ""
    else:
        repository = git.Repo(repo, search_parent_directories=True)
        top = Path(repository.working_tree_dir or repository.git_dir).resolve()
        base = Path(repo).resolve().relative_to(top).as_posix()
    with repository:
        try:
            blob = repository.commit(commit).tree / posixpath.join("" if base == "." else base, normal).lstrip("/")
        except KeyError:
            return None
        return blob.data_stream.read() if blob.type == "blob" and blob.size <= MAX_FILE_BYTES else None
