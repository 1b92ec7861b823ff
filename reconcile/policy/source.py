"""Reading the repo-of-record: the YAML files of a directory, or of a git commit through
GitPython (the blobs at that commit, never the working tree, so CI can validate a pull request's
base and head without checking either out).

Safe git: only https, ssh (``ssh://`` or ``user@host:path``), ``file://`` and local paths are
repository locations (:func:`check_repository_url`), and every git process this package starts
runs with git's other transports and remote helpers (``ext::``, ``fd::``...) disabled
(:func:`restrict_git_protocols`, applied on import: every git user imports this module). A file is
read only as a regular blob or file: a symlink, or a symlinked directory on its path, is refused
with the reason, never followed.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import posixpath
import re
import stat
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path

import git

from reconcile import defaults
from reconcile.policy.documents import MAX_FILE_BYTES
from reconcile.policy.secrets import redact

SUFFIXES = (".yaml", ".yml")
MAX_FILES = 10_000
_SYMLINK_MODE = 0o120000
GIT_PROTOCOLS = ("file", "https", "ssh")  # what git may use: local paths and file://, https://, ssh


class SourceError(Exception):
    """The repo-of-record itself cannot be read (no such path, unknown ref...)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(redact_url(message)))  # git's stderr may quote a URL's token, or a secret


def restrict_git_protocols(environ: MutableMapping[str, str] = os.environ) -> None:
    """Let git processes started from this process use only :data:`GIT_PROTOCOLS`: no remote
    helper (``ext::`` runs any command), no ``git://`` or plain ``http://``, whatever a
    repository's or the user's git config allows (``GIT_ALLOW_PROTOCOL`` overrides
    ``protocol.*.allow``). An operator's own ``GIT_ALLOW_PROTOCOL`` is narrowed, never widened: the
    protocols both allow (possibly none)."""
    given = environ.get("GIT_ALLOW_PROTOCOL")
    allowed = GIT_PROTOCOLS if given is None else tuple(p for p in GIT_PROTOCOLS if p in given.split(":"))
    environ["GIT_ALLOW_PROTOCOL"] = ":".join(allowed)
    environ["GIT_PROTOCOL_FROM_USER"] = "0"  # protocols allowed "from the user only" are not, either


restrict_git_protocols()

_HELPER = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)::")  # <transport>::<address>, git's remote helper syntax
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@]*:[^/@]*@")  # scheme://user:password@


def check_repository_url(url: str) -> str | None:
    """Why ``url`` may not name a git repository (the repo-of-record, a manifests or source
    repository), or None: only ``https://``, ``ssh://``, ``user@host:path``, ``file://`` and
    local paths are. The reason never quotes the URL (it may hold a token)."""
    allowed = "use https://, ssh://, user@host:path, file:// or a local path"
    if _CONTROL.search(url):
        return "contains a control character"
    if url.startswith("-"):
        return "starts with '-' (git would read it as an option)"
    helper = _HELPER.match(url)
    if helper:
        return f"uses git's remote helper syntax {helper.group(1)}:: (it can run any command); {allowed}"
    scheme = _SCHEME.match(url)
    if scheme:
        name = scheme.group(1).lower()
        if name == "http":
            return ("is plain http://: anyone on the way could rewrite what is read (or take the credentials "
                    "sent); use https://")
        if name not in GIT_PROTOCOLS:
            return f"uses {name}://, which is not allowed; {allowed}"
        if _PASSWORD.match(url):
            return ("holds a password or token in its userinfo (an inline secret, shown to every process "
                    "listing and kept in git config); give git its credentials by reference instead: a "
                    "credential helper, GIT_ASKPASS, or an SSH key")
        authority = url[scheme.end():].split("/", 1)[0]
        if authority.rpartition("@")[2].startswith("-"):
            return "names a host starting with '-' (ssh would read it as an option)"
        return None
    before, colon, _path = url.partition(":")
    if colon and "/" not in before and before.rpartition("@")[2].startswith("-"):  # git takes it for host:path
        return "names a host starting with '-' (ssh would read it as an option)"
    return None


@dataclass(frozen=True)
class PolicyFile:
    path: str  # as shown to people: the --repo argument joined with the path below it
    content: bytes | None
    problem: str | None = None  # refused before parsing, e.g. a symlink (never followed)


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
    if is_remote(repo):  # mirror checks the URL
        return _read_remote(repo, ref, cache_dir or default_cache_dir() / "repos", fetch=fetch)
    if (reason := check_repository_url(repo)) is not None:
        raise SourceError(f"repo-of-record {redact_url(repo)!r} {reason}")
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
    """``$RECONCILE_CACHE_DIR``, else ``$XDG_CACHE_HOME/reconcile`` (an absolute one), else
    ``~/.cache/reconcile``: ``reconcile.defaults.cache_dir``."""
    return defaults.cache_dir()


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
    if (refused := check_repository_url(url)) is not None:
        raise SourceError(f"cannot fetch {what} {shown}: {refused}")
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
    base = _base_below(repo, root, top)
    try:
        # git itself resolves the ref: GitPython's rev_parse raises assorted errors on reflog syntax.
        sha = repository.git.rev_parse("--verify", "--quiet", "--end-of-options", f"{ref or 'HEAD'}^{{commit}}")
    except git.GitCommandError:
        if ref is None:
            raise SourceError(f"{repo!r} is a git repository with no commits yet") from None
        raise SourceError(f"unknown git ref {ref!r} in {repo!r}") from None
    commit = repository.commit(sha)
    tree = _entry(commit.tree, base)
    if tree is None:
        raise SourceError(f"{repo!r} does not exist at commit {commit.hexsha[:12]}")
    if isinstance(tree, int):
        raise SourceError(f"{repo!r} is reached through a symlink ({'/'.join(base.split('/')[:tree + 1])}) at "
                          f"commit {commit.hexsha[:12]}; symlinks are never followed")
    if not isinstance(tree, git.Tree):
        raise SourceError(f"{repo!r} is not a directory at commit {commit.hexsha[:12]}")
    files = []
    # (traverse yields (parent, item) pairs only with as_edge=True; GitPython's types allow both)
    for item in tree.traverse(prune=lambda i, _d: not isinstance(i, tuple) and _hidden(os.fspath(i.path), base)):
        if not isinstance(item, git.Blob) or _hidden(os.fspath(item.path), base):
            continue
        shown = _display(prefix, os.fspath(item.path)[len(base):].lstrip("/"))
        if item.mode == _SYMLINK_MODE:
            problem = _symlink_problem(commit, item)
            if problem is None:
                continue  # a symlink to something that is no policy file either way
            files.append(PolicyFile(shown, None, problem))
        elif os.fspath(item.path).endswith(SUFFIXES):
            files.append(_blob_file(shown, item))
        else:
            continue
        if len(files) > MAX_FILES:
            raise SourceError(f"{repo!r} holds more than {MAX_FILES} YAML files")
    dirty = ref is None and repository.working_tree_dir is not None and repository.is_dirty(
        untracked_files=True, path=base or None)
    files.sort(key=lambda f: f.path)
    return Snapshot(repo, commit.hexsha, tuple(files), dirty)


def _base_below(repo: str, root: Path, top: Path) -> str:
    """The path of ``root`` below the work tree ``top`` (``""`` for the top itself); SourceError
    when the way there goes through a symlink of the repository (reading there would follow it).
    A symlink outside the repository, as ``repo`` itself linking into it, is the operator's own."""
    here = Path(os.path.abspath(root))
    for step in [*reversed(here.parents), here][1:]:
        if step.is_symlink() and (parent := step.parent.resolve()).is_relative_to(top):
            inside = (parent / step.name).relative_to(top).as_posix()
            raise SourceError(f"{repo!r} is reached through a symlink ({inside}) in its git repository; "
                              "symlinks are never followed")
    real = here.resolve()
    if not real.is_relative_to(top):
        raise SourceError(f"{repo!r} is not inside its git repository {str(top)!r}")
    base = real.relative_to(top).as_posix()
    return "" if base == "." else base


def _entry(tree: git.Tree, path: str) -> git.Tree | git.Blob | int | None:
    """The tree or blob at ``path`` below ``tree``, never through a symlink: None when it does
    not exist, the index of the first component of the path that is a symlink when one is."""
    entry: git.Tree | git.Blob = tree
    for i, part in enumerate(part for part in path.split("/") if part):
        if not isinstance(entry, git.Tree):
            return None
        try:
            found = entry / part
        except KeyError:
            return None
        if not isinstance(found, git.Tree | git.Blob):
            return None  # a submodule: a commit of another repository
        if isinstance(found, git.Blob) and found.mode == _SYMLINK_MODE:
            return i
        entry = found
    return entry


def _hidden(path: str, base: str) -> bool:
    """Dot-directories (.git, .github...) and dot-files hold no policies."""
    below = path[len(base):].lstrip("/") if base else path
    return any(part.startswith(".") for part in below.split("/"))


_NEVER_FOLLOWED = "only regular files are read, symlinks are never followed"


def _symlink_problem(commit: git.Commit, link: git.Blob) -> str | None:
    """Why the symlink ``link`` of a commit is refused: it has a policy file's name, or it links to
    a directory of the commit (whose policies would otherwise go unread, unnoticed); None for
    any other symlink (to a README, to somewhere outside the repository that is not a YAML name)."""
    target = link.data_stream.read(4096).decode("utf-8", "replace")  # a symlink's blob is its target
    name = os.fspath(link.path)
    if name.endswith(SUFFIXES):
        return f"is a symlink (to {target!r}); {_NEVER_FOLLOWED}"
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
        return None
    if isinstance(_entry(commit.tree, resolved), git.Tree):
        return f"is a symlink to a directory (to {target!r}); symlinks are never followed, so nothing below it is read"
    return None


def _blob_file(shown: str, blob: git.Blob) -> PolicyFile:
    if blob.size > MAX_FILE_BYTES:
        return PolicyFile(shown, None, f"file is {blob.size} bytes, over the limit of "
                                       f"{MAX_FILE_BYTES} bytes for a policy file")
    return PolicyFile(shown, blob.data_stream.read())


def _read_directory(repo: str, root: Path) -> Iterator[PolicyFile]:
    found: list[tuple[Path, str | None]] = []  # (path, why it is refused unread)
    for directory, subdirs, names in os.walk(root):  # symlinked directories are listed, never entered
        kept = []
        for name in sorted(d for d in subdirs if not d.startswith(".")):
            path = Path(directory, name)
            if path.is_symlink():
                found.append((path, f"is a symlink to a directory (to {os.readlink(path)!r}); symlinks are never "
                                    "followed, so nothing below it is read"))
            else:
                kept.append(name)
        subdirs[:] = kept
        for name in sorted(names):
            if name.startswith(".") or not name.endswith(SUFFIXES):
                continue
            path = Path(directory, name)
            found.append((path, f"is a symlink (to {os.readlink(path)!r}); {_NEVER_FOLLOWED}"
                          if path.is_symlink() else None))
            if len(found) > MAX_FILES:
                raise SourceError(f"{repo!r} holds more than {MAX_FILES} YAML files")
    found.sort(key=lambda f: f[0].relative_to(root).as_posix())  # the same order as from a commit
    for path, refused in found:
        shown = _display(repo, path.relative_to(root).as_posix())
        data = refused or _read_regular(path)
        if isinstance(data, bytes):
            yield PolicyFile(shown, data)
        else:
            yield PolicyFile(shown, None, f"file {data} for a policy file" if _OVERSIZED in data else data)


_OVERSIZED = "over the limit of"


def _read_regular(path: Path) -> bytes | str:
    """The bytes of the regular file ``path``, opened without following a symlink in its last
    component (the caller checked the others), or why not."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return "does not exist"
    except OSError as e:
        return "is a symlink" if e.errno == errno.ELOOP else f"cannot be read ({e.strerror})"
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            return "is not a regular file"
        if status.st_size > MAX_FILE_BYTES:
            return f"is {status.st_size} bytes, {_OVERSIZED} {MAX_FILE_BYTES} bytes"
        with os.fdopen(os.dup(descriptor), "rb") as stream:
            return stream.read(MAX_FILE_BYTES + 1)
    finally:
        os.close(descriptor)


def read_file(repo: str, commit: str | None, path: str, *, what: str = "files") -> bytes | str:
    """One file of the repo-of-record at ``commit`` (None: a plain directory, read from disk), or
    why it is not read: it does not exist, leaves the repository, or is not a regular file — a
    symlink, or below a symlinked directory, is refused, never followed (``what``, as "approval
    files", names what must be regular files in that reason). Paths are relative to ``repo``."""
    normal = posixpath.normpath(path)
    missing = "does not exist at this commit" if commit is not None else "does not exist"
    if normal.startswith(("../", "/")) or normal in ("..", "."):
        return missing
    parts = normal.split("/")
    if commit is None:
        here = Path(repo)
        for i in range(len(parts)):
            here = here / parts[i]
            if here.is_symlink():
                return _symlink_reason(parts, i, what)
        data = _read_regular(here)
        if isinstance(data, bytes):
            return data
        return missing if data == "does not exist" else f"{data} for {what}" if _OVERSIZED in data else data
    if is_remote(repo):
        repository = mirror(repo, default_cache_dir() / "repos", fetch=False)  # the snapshot read fetched it
        base = ""
    else:
        repository = git.Repo(repo, search_parent_directories=True)
        base = _base_below(repo, Path(repo), Path(repository.working_tree_dir or repository.git_dir).resolve())
    with repository:
        tree = _entry(repository.commit(commit).tree, base)
        blob = _entry(tree, normal) if isinstance(tree, git.Tree) else None
        if isinstance(blob, int):
            return _symlink_reason(parts, blob, what)
        if blob is None:
            return missing
        if not isinstance(blob, git.Blob):
            return "is not a regular file"
        if blob.size > MAX_FILE_BYTES:
            return f"is {blob.size} bytes, {_OVERSIZED} {MAX_FILE_BYTES} bytes for {what}"
        content: bytes = blob.data_stream.read()
        return content


def _symlink_reason(parts: list[str], at: int, what: str) -> str:
    rule = f"{what} must be regular files, and symlinks are never followed"
    if at == len(parts) - 1:
        return f"is a symlink; {rule}"
    return f"is reached through a symlink ({'/'.join(parts[:at + 1])}); {rule}"
