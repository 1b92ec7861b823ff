"""GitOps write-back: deploy an image by committing it to the manifests a GitOps controller
(Argo CD, Flux) applies, the way Argo CD Image Updater and Flux image automation do.

``write_back`` works in a clone of the manifests repository under ``cache_dir`` (a local path is
cloned too: a user's working tree is never edited), fetched and hard-reset to the target branch
on every call so nothing a failed run left behind survives. Under ``target.path`` it finds, for
each workload, the YAML document (kind, name, and namespace when given) and the container (in
``containers`` or ``initContainers``; a CronJob's pod spec is in its job template), then changes
exactly one thing per workload:

- a ``kustomization.yaml`` / ``kustomization.yml`` / ``Kustomization`` under the path with an
  ``images:`` entry whose ``name`` is the new image's repository (with or without its registry)
  or the name of the image the container has now: kustomize rewrites the container's image from
  that entry at build time, so the entry is what decides what runs and it **wins** over the
  workload's own ``image:`` line, which is then left alone. The entry gets ``newName`` (when the
  name alone would not give the new repository), ``newTag`` (the new tag, kept for people; removed
  for a digest-only image) and ``digest`` (kustomize's field for pinning), added when missing. The
  workload itself may then live outside the path (an overlay's base); it must still exist somewhere
  in the repository.
- otherwise the workload's ``image:`` line, set to ``image`` as given (``registry/repo:tag@sha256:…``).

Edits are surgical: the exact characters of each scalar, located with the YAML composer's marks,
are replaced in the original text (keeping the scalar's quote style), so comments, key order,
indentation and quoting of everything else stay as they were. Every edited file is parsed again
and must differ from the original in the intended fields only; otherwise nothing is written (an
image behind a YAML anchor, alias or merge key is refused that way, not edited). Files are read
with the repo-of-record's hostile-input limits (``reconcile.policy.documents``): any YAML file
under the path that is refused (alias bomb, deep nesting, duplicate keys, over-size...) stops the
write-back, because a workload could hide in it.

Nothing already at the image: no commit, ``changed=False``. Otherwise one commit with the caller's
message, as ``author``, pushed to ``target.branch`` -- or, with ``target.pull_request``, pushed to
a new branch ``reconcile/<policy>-<12 hex of the digest>`` (reported in the result; opening the
pull/merge request on a forge is not done here). A push refused because the remote branch moved
is retried once, on the new tip, redoing the edit from scratch; a second refusal is an error.
Credentials in repository URLs never appear in errors.
"""

from __future__ import annotations

import codecs
import contextlib
import copy
import fcntl
import hashlib
import itertools
import json
import os
import posixpath
import re
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import git
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconcile.adapters.cluster.references import DEFAULT_REGISTRY, parse_image
from reconcile.adapters.git.manifests import KUSTOMIZATION_FILES, POD_SPECS, kustomize_image
from reconcile.policy.documents import Document, parse_documents
from reconcile.policy.model import ManifestsTarget, Workload
from reconcile.policy.source import MAX_FILES, SUFFIXES, is_remote, redact_url

_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0"}  # an unattended job must fail, not wait for a password
_STR = "tag:yaml.org,2002:str"
_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./@:+-]*(?<!:)")
_SLUG = re.compile(r"[^a-z0-9._-]+")


class WriteBackError(Exception):
    """The write-back could not be done; nothing was pushed."""


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
    new = _NewImage.parse(image)
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
            edit = _plan_edit(directory, path, workloads, new, namespace)
            destination = target.branch
            if edit.files and review:
                destination = review
                if review in tips:  # proposed before: add to that branch, never force over it
                    clone.checkout(tips[review])
                    edit = _plan_edit(directory, path, workloads, new, namespace)
            if not edit.files:
                return WriteBackResult(False, None, destination, (), edit.before)
            if local is not None:
                _refuse_checked_out(local, destination, shown)
            edit.write(directory)
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
    new = _NewImage.parse(image)
    slug = _SLUG.sub("-", (policy or new.name.rsplit("/", 1)[-1]).lower())
    slug = re.sub(r"\.{2,}", ".", slug).strip("-._")[:48].strip("-._") or "deploy"
    return f"reconcile/{slug}-{new.digest.partition(':')[2][:12]}"


def working_clone_dir(repo: str, cache_dir: Path) -> Path:
    """Where ``write_back`` keeps its working clone of ``repo`` (``ManifestsTarget.repo``)."""
    return _clone_dir(_locate(repo)[0], cache_dir)


def _clone_dir(url: str, cache_dir: Path) -> Path:
    # Not the name read_snapshot's bare mirrors use: the same cache directory may hold both.
    return cache_dir / f"{hashlib.sha256(url.encode()).hexdigest()[:24]}.worktree"


# --- the image ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _NewImage:
    text: str  # as given, written to workload image lines
    name: str  # without tag and digest, as given
    tag: str | None
    digest: str
    names: frozenset[str]  # what a kustomize images entry may call it

    @classmethod
    def parse(cls, image: str) -> _NewImage:
        try:
            reference = parse_image(image)
        except ValueError as e:
            raise WriteBackError(str(e)) from None
        if reference.digest is None:
            raise WriteBackError(f"image {image!r} has no digest; write-back pins images by digest "
                                 "(registry/repo:tag@sha256:...)")
        name, tag = _split_tag(image.partition("@")[0])
        return cls(image, name, tag, reference.digest, _names(image))


def _split_tag(name: str) -> tuple[str, str | None]:
    if name.rfind(":") > name.rfind("/"):
        name, tag = name.rsplit(":", 1)
        return name, tag
    return name, None


def _names(image: str) -> frozenset[str]:
    """``image``'s repository as written, with its registry and without (``docker.io`` images also
    by their short name)."""
    names = {_split_tag(image.partition("@")[0])[0]}
    try:
        reference = parse_image(image)
    except ValueError:
        return frozenset(names)
    names |= {f"{reference.registry}/{reference.repository}", reference.repository}
    if reference.registry == DEFAULT_REGISTRY and reference.repository.startswith("library/"):
        names.add(reference.repository.removeprefix("library/"))
    return frozenset(names)


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


# --- finding and editing -----------------------------------------------------------------------


@dataclass
class _File:
    path: str  # relative to the repository root
    text: str
    bom: bool
    documents: list[Document]
    roots: list[Node]  # the composed node of each document, by Document.index

    @classmethod
    def load(cls, root: Path, path: str) -> _File:
        data = (root / path).read_bytes()
        documents, problems = parse_documents(path, data)
        if problems:
            raise WriteBackError(f"{problems[0]}; refusing to write back into {posixpath.dirname(path) or '.'}")
        text = data.decode("utf-8-sig")
        loader = yaml.SafeLoader(text)  # composing makes no alias expansion; parse_documents vetted the rest
        try:
            roots = []
            while loader.check_node():
                node = loader.get_node()
                if node is not None:  # check_node() said there is one
                    roots.append(node)
        finally:
            loader.dispose()
        return cls(path, text, data.startswith(codecs.BOM_UTF8), documents, roots)

    @property
    def kustomization(self) -> bool:
        return posixpath.basename(self.path) in KUSTOMIZATION_FILES


@dataclass(frozen=True)
class _Change:
    """A span of the text to replace, and the data change it makes (to check the result)."""

    start: int
    end: int
    text: str
    document: int
    at: tuple[str | int, ...]  # the mapping changed
    key: str
    value: Any  # _DELETE to remove the key


_DELETE = object()


@dataclass
class Edit:
    """What a write-back changes: the new text of each file, and the images replaced."""

    before: tuple[str, ...]
    contents: dict[str, bytes] = field(default_factory=dict)

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(sorted(self.contents))

    def write(self, root: Path) -> None:
        for path, data in self.contents.items():
            (root / path).write_bytes(data)


def plan_edit(root: Path, path: str, workloads: Sequence[Workload], image: str,
              namespace: str | None = None) -> Edit:
    """The edit setting ``workloads`` to ``image`` in the checkout at ``root``, below ``path``
    (relative to ``root``); nothing is written. WriteBackError when a workload or container is
    missing, a file is refused, or the change cannot be made surgically."""
    return _plan_edit(root, path, workloads, _NewImage.parse(image), namespace)


def _plan_edit(root: Path, path: str, workloads: Sequence[Workload], new: _NewImage,
               namespace: str | None) -> Edit:
    below = _directory(root, path)
    files = [_File.load(root, name) for name in _yaml_files(root, below)]
    entries = [(f, d, i, entry) for f in files if f.kustomization for d in f.documents if isinstance(d.body, dict)
               for i, entry in enumerate(d.body.get("images") or [])
               if isinstance(entry, dict) and isinstance(entry.get("name"), str)]
    elsewhere: list[_File] | None = None
    changes: dict[str, list[_Change]] = {}
    before: list[str] = []
    done: set[tuple[str, int, tuple[str | int, ...]]] = set()
    for workload in workloads:
        found = [(f, d) for f in files for d in f.documents if _is_workload(d, workload, namespace)]
        outside = not found
        if outside:
            if elsewhere is None:
                elsewhere = list(_parsable(root, [n for n in _yaml_files(root, "") if not _under(n, below)]))
            found = [(f, d) for f in elsewhere for d in f.documents if _is_workload(d, workload, namespace)]
        where = f" in namespace {namespace!r}" if namespace else ""
        if not found:
            raise WriteBackError(f"{workload.kind} {workload.name!r}{where} not found in any YAML file under "
                                 f"{below or '.'} ({len(files)} files)")
        if len(found) > 1 and not outside:
            places = ", ".join(f"{f.path}:{d.line}" for f, d in found)
            raise WriteBackError(f"{workload.kind} {workload.name!r} is in more than one document under "
                                 f"{below or '.'}: {places}; narrow the path or set the namespace")
        containers = [(f, d, at) for f, d in found if (at := _container(d, workload.container)) is not None]
        if not containers:
            f, d = found[0]
            raise WriteBackError(f"{f.path}:{d.line}: {workload.kind} {workload.name!r} has no container "
                                 f"{workload.container!r} (it has: {', '.join(_container_names(d)) or 'none'})")
        file, document, at = containers[0]
        current = _dig(document.body, at).get("image")
        if not isinstance(current, str):
            raise WriteBackError(f"{file.path}:{document.line_of(_pointer(at))}: {workload.kind} {workload.name!r} "
                                 f"container {workload.container!r} has no image")
        names = new.names | _names(current)
        covering = [e for e in entries if e[3]["name"] in names]
        if not covering and outside:
            raise WriteBackError(f"{workload.kind} {workload.name!r}{where} is only in {file.path}, outside "
                                 f"{below or '.'}, and no kustomization under {below or '.'} has an images entry "
                                 f"for {current!r}")
        targets = ([(f, d, ("images", i)) for f, d, i, _ in covering] if covering else [(file, document, at)])
        for f, d, location in targets:
            if (f.path, d.index, location) in done:
                continue
            done.add((f.path, d.index, location))
            if covering:
                before.append(kustomize_image(_dig(d.body, location)))
                changes.setdefault(f.path, []).extend(_kustomize_changes(f, d, location, new))
            else:
                before.append(current)
                changes.setdefault(f.path, []).extend(_set(f, d, location, "image", new.text))
    edit = Edit(tuple(before))
    by_path = {f.path: f for f in files}
    for name, file_changes in changes.items():
        if file_changes:
            edit.contents[name] = _apply(by_path[name], file_changes)
    return edit


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


def _parsable(root: Path, paths: Sequence[str]) -> Iterator[_File]:
    """Files outside the path are only searched for a workload an overlay there patches; one that
    cannot be read is not ours to refuse."""
    for path in paths:
        with contextlib.suppress(WriteBackError, OSError):
            yield _File.load(root, path)


def _is_workload(document: Document, workload: Workload, namespace: str | None) -> bool:
    if document.kind != workload.kind or document.name != workload.name:
        return False
    written = _dig(document.body, ("metadata",)).get("namespace")
    return namespace is None or written in (None, namespace)


def _dig(body: Any, at: Sequence[str | int]) -> Any:
    for step in at:
        if isinstance(step, int):
            body = body[step] if isinstance(body, list) and step < len(body) else None
        else:
            body = body.get(step) if isinstance(body, dict) else None
    return body if body is not None else {}


def _pointer(at: Sequence[str | int]) -> str:
    return "".join(f"/{step}" for step in at)


def _pod_spec(document: Document) -> tuple[str, ...]:
    return POD_SPECS.get(document.kind or "", ())


def _container(document: Document, name: str) -> tuple[str | int, ...] | None:
    spec = _pod_spec(document)
    for field_name in ("containers", "initContainers"):
        for i, container in enumerate(_dig(document.body, (*spec, field_name)) or []):
            if isinstance(container, dict) and container.get("name") == name:
                return (*spec, field_name, i)
    return None


def _container_names(document: Document) -> list[str]:
    spec = _pod_spec(document)
    return [str(c.get("name")) for field_name in ("containers", "initContainers")
            for c in _dig(document.body, (*spec, field_name)) or [] if isinstance(c, dict)]


def _kustomize_changes(file: _File, document: Document, at: tuple[str | int, ...], new: _NewImage) -> list[_Change]:
    """kustomize's own fields (``kustomize edit set image name=repo:tag@digest``): the repository
    in ``newName`` unless ``name`` already is it, ``newTag`` for people, ``digest`` for the runtime."""
    entry = _dig(document.body, at)
    changes: list[_Change] = []
    if "newName" in entry or entry["name"] != new.name:
        changes += _set(file, document, at, "newName", new.name, after=("name",))
    if new.tag is not None:
        changes += _set(file, document, at, "newTag", new.tag, after=("name", "newName"))
    elif "newTag" in entry:
        changes += _remove(file, document, at, "newTag")
    kept = ("newTag",) if new.tag is not None else ()  # never next to a key that goes
    changes += _set(file, document, at, "digest", new.digest, after=("name", "newName", *kept))
    return changes


def _mapping_node(file: _File, document: Document, at: Sequence[str | int]) -> MappingNode:
    node: Node | None = file.roots[document.index]
    for step in at:
        if isinstance(step, int):
            node = node.value[step] if isinstance(node, SequenceNode) and step < len(node.value) else None
        else:
            node = _value_node(node, step)
    if not isinstance(node, MappingNode):
        raise _cannot(file, document, at, "it is not written as a plain mapping (an alias or merge key?)")
    return node


def _value_node(node: Node | None, key: str) -> Node | None:
    if not isinstance(node, MappingNode):
        return None
    pairs: list[tuple[Node, Node]] = node.value
    for key_node, value_node in pairs:
        if isinstance(key_node, ScalarNode) and key_node.tag == _STR and key_node.value == key:
            return value_node
    return None


def _cannot(file: _File, document: Document, at: Sequence[str | int], why: str) -> WriteBackError:
    return WriteBackError(f"{file.path}:{document.line_of(_pointer(at))}: cannot edit {_pointer(at)} "
                          f"surgically: {why}; edit it by hand")


def _set(file: _File, document: Document, at: tuple[str | int, ...], key: str, value: str,
         after: Sequence[str] = ()) -> list[_Change]:
    """Set ``key`` of the mapping at ``at`` to ``value``: replace its scalar, or add the key."""
    current = _dig(document.body, at)
    if key in current and current[key] == value:
        return []
    mapping = _mapping_node(file, document, at)
    where = (*at, key)
    if key not in current:
        start, text = _insertion(file.text, mapping, key, value, after)
        return [_Change(start, start, text, document.index, at, key, value)]
    node = _value_node(mapping, key)
    if not isinstance(node, ScalarNode):
        raise _cannot(file, document, where, "its value is not a scalar, or comes from a merge key")
    start, end = node.start_mark.index, node.end_mark.index
    span = file.text[start:end]
    if span[:1] in ("&", "*", "!"):
        raise _cannot(file, document, where, "its value has a YAML anchor, alias or tag")
    if node.start_mark.line != node.end_mark.line or node.style in ("|", ">"):
        raise _cannot(file, document, where, "its value spans several lines")
    text = _render(value, node.style)
    if not span and file.text[start - 1:start] == ":":
        text = " " + text  # 'key:' with an empty value
    return [_Change(start, end, text, document.index, at, key, value)]


def _remove(file: _File, document: Document, at: tuple[str | int, ...], key: str) -> list[_Change]:
    mapping = _mapping_node(file, document, at)
    pairs = mapping.value
    index = next((i for i, (k, _) in enumerate(pairs) if isinstance(k, ScalarNode) and k.value == key), None)
    if index is None or len(pairs) < 2:
        raise _cannot(file, document, (*at, key), "the key is not written in the mapping itself")
    key_node, value_node = pairs[index]
    text = file.text
    following = pairs[index + 1][0].start_mark.index if index + 1 < len(pairs) else None
    if mapping.flow_style:
        if following is not None:  # '{newTag: v1, name: x}': up to the next key
            return [_Change(key_node.start_mark.index, following, "", document.index, at, key, _DELETE)]
        previous = pairs[index - 1][1].end_mark.index  # '{name: x, newTag: v1}': from the previous value
        return [_Change(previous, value_node.end_mark.index, "", document.index, at, key, _DELETE)]
    line_start = text.rfind("\n", 0, key_node.start_mark.index) + 1
    indent = text[line_start:key_node.start_mark.index]
    if not indent.strip():  # the key starts its line: drop its lines
        return [_Change(line_start, _line_end(text, value_node), "", document.index, at, key, _DELETE)]
    if indent.strip() == "-" and following is not None:  # '- newTag: v1': the next key moves up
        return [_Change(key_node.start_mark.index, following, "", document.index, at, key, _DELETE)]
    raise _cannot(file, document, (*at, key), "unusual layout")


def _line_end(text: str, node: Node) -> int:
    """Just past the end of the line ``node`` ends on (with its comment and line break)."""
    end = node.end_mark.index
    if node.end_mark.column == 0 and end > 0:  # a block scalar ends after its line break
        return end
    newline = text.find("\n", end)
    return len(text) if newline < 0 else newline + 1


def _insertion(text: str, mapping: MappingNode, key: str, value: str, after: Sequence[str]) -> tuple[int, str]:
    """Where and what to insert to add ``key: value`` to ``mapping``: after the last of the keys
    ``after`` it has, the one written last (else after its last key), in the mapping's own style and
    indentation."""
    pairs = mapping.value
    anchor = max((p for p in pairs if isinstance(p[0], ScalarNode) and p[0].value in after),
                 key=pairs.index, default=pairs[-1])
    name_node = _value_node(mapping, "name")
    style = name_node.style if isinstance(name_node, ScalarNode) and name_node.style in ("'", '"') else None
    rendered = f"{key}: {_render(value, style)}"
    if mapping.flow_style:
        return anchor[1].end_mark.index, f", {rendered}"
    eol = "\r\n" if "\r\n" in text else "\n"
    indent = " " * pairs[0][0].start_mark.column
    position = _line_end(text, anchor[1])
    if position == len(text) and not text.endswith("\n"):
        return position, f"{eol}{indent}{rendered}"
    return position, f"{indent}{rendered}{eol}"


# The tag a plain scalar resolves to; typed here because types-PyYAML leaves BaseResolver.resolve unannotated.
_RESOLVE: Callable[[type[Node], str, tuple[bool, bool]], str] = yaml.SafeLoader("").resolve


def _render(value: str, style: str | None) -> str:
    """``value`` as a YAML scalar in ``style`` (plain when it reads back as the same string)."""
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if style is None and _PLAIN.fullmatch(value) and _RESOLVE(ScalarNode, value, (True, False)) == _STR:
        return value
    return json.dumps(value)  # a JSON string is a YAML double-quoted scalar


def _apply(file: _File, changes: list[_Change]) -> bytes:
    """The file with ``changes`` made; WriteBackError unless it reads back as exactly the original
    data with those changes (the safety net under every surgical edit)."""
    ordered = sorted(changes, key=lambda c: (c.start, c.end))
    for first, second in itertools.pairwise(ordered):
        if first.end > second.start:
            raise WriteBackError(f"{file.path}: overlapping edits; edit it by hand")
    text = file.text
    for change in reversed(ordered):
        text = text[:change.start] + change.text + text[change.end:]
    data = (codecs.BOM_UTF8 if file.bom else b"") + text.encode()
    expected = {d.index: copy.deepcopy(d.body) for d in file.documents}
    for change in changes:
        mapping = _dig(expected[change.document], change.at)
        if change.value is _DELETE:
            mapping.pop(change.key, None)
        else:
            mapping[change.key] = change.value
    documents, problems = parse_documents(file.path, data)
    if problems or _canonical({d.index: d.body for d in documents}) != _canonical(expected):
        raise WriteBackError(f"{file.path}: the edit would change more than the image fields (a YAML anchor, alias "
                             "or merge key shared with something else?); nothing written, edit it by hand")
    return data


def _canonical(documents: Mapping[int, Any]) -> str:
    return json.dumps(documents, sort_keys=True, default=str)
