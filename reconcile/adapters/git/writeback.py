"""GitOps write-back: deploy an image by committing it to the manifests a GitOps controller
(Argo CD, Flux) applies, the way Argo CD Image Updater and Flux image automation do.

``write_back`` works in a clone of the manifests repository under ``cache_dir`` (a local path is
cloned too: a user's working tree is never edited), fetched and hard-reset to the target branch
on every call so nothing a failed run left behind survives. It hands the YAML files under
``target.path`` to the manifest editor (``reconcile.adapters.git.editor``: which line or
kustomization entry changes, and how, is said there), writes the files it changed and commits
them. This module is the git side: the clone, its lock, fetch, commit and push.

Nothing already at the image: no commit, ``changed=False``. Otherwise one commit with the caller's
message, as ``author``, pushed to ``target.branch`` -- or, with ``target.pull_request``, pushed to
a new branch ``reconcile/<policy>-<12 hex of the digest>`` (reported in the result; opening the
pull/merge request on a forge is not done here). A push refused because the remote branch moved
is retried once, on the new tip, redoing the edit from scratch; a second refusal is an error.
Credentials in repository URLs never appear in errors.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import posixpath
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import git

from reconcile.adapters.git.editor import Edit, EditError, NewImage, edit_manifests
from reconcile.adapters.git.errors import WriteBackError
from reconcile.adapters.git.manifests import KUSTOMIZATION_FILES
from reconcile.policy.model import ManifestsTarget, Workload
from reconcile.policy.source import MAX_FILES, SUFFIXES, is_remote, redact_url

__all__ = ["Edit", "EditError", "WriteBackError", "WriteBackResult", "plan_edit", "review_branch",
           "working_clone_dir", "write_back"]

_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0"}  # an unattended job must fail, not wait for a password
_SLUG = re.compile(r"[^a-z0-9._-]+")


@dataclass(frozen=True)
class WriteBackResult:
    changed: bool  # a commit was made and pushed
    commit: str | None  # that commit; None when nothing changed
    branch: str  # where it was pushed (the target branch, or the review branch), or where the image already is
    files: tuple[str, ...]  # repository-relative paths of the files changed
    before: tuple[str, ...]  # the image each edited place named before (kustomize entries as kustomize renders them)


def write_back(target: ManifestsTarget, workloads: Sequence[Workload], image: str, *, message: str,
               cache_dir: Path, author: tuple[str, str] = ("reconcile", "reconcile@localhost"),
               namespace: str | None = None, policy: str | None = None) -> WriteBackResult:
    """Set ``workloads`` to ``image`` in ``target``'s manifests, commit and push (see the module doc).

    ``namespace`` (the DeployPolicy's) narrows the documents matched: a document that names another
    namespace is not the workload; one that names none is. ``policy`` names the review branch in
    ``pull_request`` mode (default: the image repository's last component).
    """
    new = NewImage.parse(image)
    if not workloads:
        raise WriteBackError("no workloads to write back")
    url, local, prefix = _locate(target.repo)
    shown = redact_url(url)
    path = posixpath.normpath(posixpath.join(prefix, target.path.strip("/") or "."))
    if path.startswith("../") or path == "..":
        raise WriteBackError(f"manifests path {target.path!r} leaves the repository {shown}")
    review = review_branch(new.text, policy) if target.pull_request else None
    directory = _clone_dir(url, cache_dir)
    with _locked(directory), _Clone(url, shown, directory) as clone:
        for attempt in (1, 2):
            tips = clone.fetch([target.branch, *([review] if review else [])])
            if target.branch not in tips:
                raise WriteBackError(f"branch {target.branch!r} does not exist in {shown}")
            clone.checkout(tips[target.branch])
            edit = plan_edit(directory, path, workloads, new, namespace)
            destination = target.branch
            if edit.files and review:
                destination = review
                if review in tips:  # proposed before: add to that branch, never force over it
                    clone.checkout(tips[review])
                    edit = plan_edit(directory, path, workloads, new, namespace)
            if not edit.files:
                return WriteBackResult(False, None, destination, (), edit.before)
            if local is not None:
                _refuse_checked_out(local, destination, shown)
            _write(directory, edit)
            commit = clone.commit(edit.files, message, author)
            try:
                clone.push(destination)
            except WriteBackError as refused:
                try:
                    moved = clone.remote_tip(destination) != tips.get(destination)
                except WriteBackError:
                    moved = False
                if not moved:
                    raise refused from None
                if attempt == 2:
                    raise WriteBackError(f"{refused}; the branch moved again after a retry on its new tip, "
                                         "nothing was pushed: run again") from None
                continue  # the remote moved under us: redo the edit on its new tip
            return WriteBackResult(True, commit, destination, edit.files, edit.before)
    raise AssertionError("unreachable")


def review_branch(image: str, policy: str | None = None) -> str:
    """``reconcile/<slug>-<12 hex of the digest>``: the branch a pull-request-mode write-back pushes."""
    new = NewImage.parse(image)
    slug = _SLUG.sub("-", (policy or new.name.rsplit("/", 1)[-1]).lower())
    slug = re.sub(r"\.{2,}", ".", slug).strip("-._")[:48].strip("-._") or "deploy"
    return f"reconcile/{slug}-{new.digest.partition(':')[2][:12]}"


def working_clone_dir(repo: str, cache_dir: Path) -> Path:
    """Where ``write_back`` keeps its working clone of ``repo`` (``ManifestsTarget.repo``)."""
    return _clone_dir(_locate(repo)[0], cache_dir)


def _clone_dir(url: str, cache_dir: Path) -> Path:
    # Not the name read_snapshot's bare mirrors use: the same cache directory may hold both.
    return cache_dir / f"{hashlib.sha256(url.encode()).hexdigest()[:24]}.worktree"


# --- git ---------------------------------------------------------------------------------------


def _locate(repo: str) -> tuple[str, Path | None, str]:
    """(what to clone, the user's repository when it is a local path, the path of ``repo`` in it)."""
    if is_remote(repo):
        local = Path(unquote(urlsplit(repo).path)) if repo.startswith("file://") else None
        return repo, local if local is not None and local.is_dir() else None, ""
    given = Path(repo).expanduser()
    if not given.is_dir():
        raise WriteBackError(f"manifests repository {repo!r} does not exist")
    try:
        repository = git.Repo(given, search_parent_directories=True)
    except git.InvalidGitRepositoryError:
        raise WriteBackError(f"manifests repository {repo!r} is not a git repository; write-back commits "
                             "and pushes, so it needs one") from None
    with repository:
        top = Path(repository.working_tree_dir or repository.git_dir).resolve()
    prefix = given.resolve().relative_to(top).as_posix()
    return str(top), top, "" if prefix == "." else prefix


def _refuse_checked_out(repository: Path, branch: str, shown: str) -> None:
    """Pushing to a branch checked out in a local working tree would change (or, depending on
    ``receive.denyCurrentBranch``, be refused by) that working tree: refuse it ourselves."""
    try:
        with git.Repo(repository) as user:
            listing = user.git.worktree("list", "--porcelain")
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandError):
        return  # not one we can inspect: git's own receive.denyCurrentBranch still applies
    trees = {}
    current = ""
    for line in listing.splitlines():
        if line.startswith("worktree "):
            current = line.removeprefix("worktree ")
        elif line.startswith("branch "):
            trees[line.removeprefix("branch ")] = current
    if f"refs/heads/{branch}" in trees:
        raise WriteBackError(
            f"branch {branch!r} of {shown} is checked out in {trees[f'refs/heads/{branch}']}; reconcile never changes "
            "a working tree: push to a bare repository or a URL, or set pullRequest to get a branch")


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One write-back at a time per clone (two runs sharing a cache would reset each other's work)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class _Clone:
    """The working clone: cloned once, then fetched; every git failure a redacted WriteBackError."""

    def __init__(self, url: str, shown: str, directory: Path):
        self.url, self.shown, self.directory = url, shown, directory
        self.repository: git.Repo | None = None

    def __enter__(self) -> _Clone:
        try:
            self.repository = git.Repo(self.directory)
            if self.repository.git.remote("get-url", "origin") != self.url:
                raise git.InvalidGitRepositoryError(str(self.directory))
        except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandError):
            if self.repository is not None:
                self.repository.close()
            shutil.rmtree(self.directory, ignore_errors=True)  # ours, and unusable: start over
            self.repository = self._run(lambda: git.Repo.clone_from(
                self.url, self.directory, no_checkout=True, env=_GIT_ENV), "clone")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.repository is not None:
            self.repository.close()

    @property
    def git(self) -> git.Git:
        assert self.repository is not None
        return self.repository.git

    def _run(self, call: Any, what: str) -> Any:
        try:
            return call()
        except (git.GitCommandError, OSError) as e:
            raise WriteBackError(f"cannot {what} {self.shown}: {self._reason(e)}") from None

    def _reason(self, error: Exception) -> str:
        text = getattr(error, "stderr", "") or str(error)
        text = text.strip().removeprefix("stderr:").strip().strip("'").replace(self.url, self.shown)
        lines = [line.strip() for line in redact_url(text).splitlines() if line.strip()]
        useful = [line for line in lines if line.startswith(("!", "fatal:", "error:", "remote:"))] or lines
        return "; ".join(useful[-3:]) or "git failed"

    def remote_tips(self, branches: Sequence[str]) -> dict[str, str]:
        listing = self._run(lambda: self.git.ls_remote(
            "--heads", "origin", *[f"refs/heads/{b}" for b in branches], env=_GIT_ENV), "list the branches of")
        tips = {}
        for line in listing.splitlines():
            sha, _, ref = line.partition("\t")
            tips[ref.removeprefix("refs/heads/")] = sha
        return {branch: tips[branch] for branch in branches if branch in tips}

    def remote_tip(self, branch: str) -> str | None:
        return self.remote_tips([branch]).get(branch)

    def fetch(self, branches: Sequence[str]) -> dict[str, str]:
        """Fetch ``branches`` that exist; their commits by name."""
        tips = self.remote_tips(branches)
        if tips:
            specs = [f"+refs/heads/{b}:refs/remotes/origin/{b}" for b in tips]
            self._run(lambda: self.git.fetch("--no-tags", "origin", *specs, env=_GIT_ENV), "fetch")
            tips = {b: self.git.rev_parse("--verify", f"refs/remotes/origin/{b}^{{commit}}") for b in tips}
        return tips

    def checkout(self, commit: str) -> None:
        """A clean tree at ``commit``: whatever an earlier, failed run left is gone."""
        self._run(lambda: (self.git.checkout("--force", "--detach", commit), self.git.clean("-ffdx")),
                  "check out a clean copy of")

    def commit(self, paths: Sequence[str], message: str, author: tuple[str, str]) -> str:
        name, email = author
        env = {**_GIT_ENV, "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
               "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
        self._run(lambda: (self.git.add("--", *paths), self.git.commit("--quiet", "-m", message, env=env)),
                  "commit to the clone of")
        return str(self.git.rev_parse("HEAD"))

    def push(self, branch: str) -> None:
        self._run(lambda: self.git.push("origin", f"HEAD:refs/heads/{branch}", env=_GIT_ENV),
                  f"push branch {branch!r} to")



# --- the checkout: the files the editor is handed, and its edit written -------------------------


def plan_edit(root: Path, path: str, workloads: Sequence[Workload], image: str | NewImage,
              namespace: str | None = None) -> Edit:
    """The edit setting ``workloads`` to ``image`` in the checkout at ``root``, below ``path``
    (relative to ``root``); nothing is written. WriteBackError when a workload or container is
    missing, a file is refused, or the change cannot be made surgically."""
    below = _directory(root, path)
    files = {name: (root / name).read_bytes() for name in _yaml_files(root, below)}

    def elsewhere() -> dict[str, bytes]:
        # Searched only for a workload an overlay under the path patches: a file that cannot be read is skipped.
        found = {}
        for name in _yaml_files(root, ""):
            if not _under(name, below):
                with contextlib.suppress(OSError):
                    found[name] = (root / name).read_bytes()
        return found

    return edit_manifests(files, workloads, image, namespace=namespace, below=below, elsewhere=elsewhere)


def _write(root: Path, edit: Edit) -> None:
    for path, data in edit.contents.items():
        (root / path).write_bytes(data)


def _directory(root: Path, path: str) -> str:
    path = posixpath.normpath(path.strip("/") or ".")
    below = "" if path == "." else path
    real = (root / below).resolve()
    if not real.is_relative_to(root.resolve()) or real != root.resolve() / below:
        raise WriteBackError(f"manifests path {path!r} leaves the repository or goes through a symlink")
    if not real.is_dir():
        raise WriteBackError(f"manifests path {path!r} is not a directory in the repository")
    return below


def _under(path: str, directory: str) -> bool:
    return not directory or path.startswith(directory + "/")


def _yaml_files(root: Path, below: str) -> list[str]:
    """YAML files below ``below`` (and kustomize's ``Kustomization``), by path; no dot-files or
    dot-directories, no symlinks (a symlink may leave the clone; one inside it is a duplicate)."""
    found = []
    for directory, subdirs, names in os.walk(root / below):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in names:
            if name.startswith(".") or not (name.endswith(SUFFIXES) or name in KUSTOMIZATION_FILES):
                continue
            if Path(directory, name).is_symlink():
                continue
            found.append(Path(directory, name).relative_to(root).as_posix())
            if len(found) > MAX_FILES:
                raise WriteBackError(f"{below or 'the repository'} holds more than {MAX_FILES} YAML files")
    return sorted(found)

