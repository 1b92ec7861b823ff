"""Commits that keep their images: the latest N commits of every live branch and tag of a source
repository matching a RetentionPolicy's ``gitRefs`` rule. Refs come from ``git for-each-ref`` and
commits from ``git rev-list --max-count``, so a repository with 100k commits costs one ref
listing and a few short walks, not a history traversal."""

from __future__ import annotations

from pathlib import Path

import git

from reconcile.policy.model import GitRefs
from reconcile.policy.source import SourceError, default_cache_dir, is_remote, mirror, redact_url


def live_commits(rule: GitRefs, *, cache_dir: Path | None = None) -> frozenset[str]:
    """Full SHAs of the newest ``commits_per_branch`` commits of each matching branch and tag."""
    try:
        if is_remote(rule.repo):
            repository = mirror(rule.repo, cache_dir or default_cache_dir() / "repos", "the source repository")
        else:
            repository = git.Repo(rule.repo)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise SourceError(f"{redact_url(rule.repo)} is not a git repository") from None
    with repository:
        wanted = []
        for kind, pattern in (("heads", rule.branches), ("tags", rule.tags)):
            if pattern is None:
                continue
            listing = repository.git.for_each_ref("--format=%(refname)", f"refs/{kind}")
            for ref in listing.splitlines():
                short = ref.removeprefix(f"refs/{kind}/")
                if pattern.search(short):
                    wanted.append(ref)
        commits: set[str] = set()
        for ref in wanted:
            # ^{commit} peels annotated tags; --max-count keeps the walk short whatever the history.
            found = repository.git.rev_list(f"--max-count={rule.commits_per_branch}", f"{ref}^{{commit}}", "--")
            commits.update(found.split())
        return frozenset(commits)
