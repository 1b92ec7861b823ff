"""Git repositories of record made by tests: a working tree with a committer, files written and
committed in one call."""

from __future__ import annotations

from pathlib import Path

import git


def write(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def init_repo(path: Path) -> git.Repo:
    path.mkdir(parents=True, exist_ok=True)
    repo = git.Repo.init(path)
    with repo.config_writer() as config:
        config.set_value("user", "name", "Policy Author")
        config.set_value("user", "email", "author@example.com")
    return repo


def commit(repo: git.Repo, files: dict[str, str], message: str = "change") -> str:
    write(Path(repo.working_tree_dir), files)
    repo.index.add(list(files))
    return repo.index.commit(message).hexsha


def policy_repo(root: Path, files: dict[str, str], message: str = "policies") -> Path:
    """A new repo-of-record at ``root`` holding ``files`` in one commit."""
    with init_repo(root) as repo:
        commit(repo, files, message)
    return root
