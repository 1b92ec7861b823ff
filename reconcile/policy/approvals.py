"""Approval files: YAML in the repo-of-record, reviewed like any change, read at the same commit
as the policies. Format::

    approvals:
      - version: "1.4.2"          # or digest: sha256:...
        approvedBy: alice
"""

from __future__ import annotations

from collections.abc import Iterable

from reconcile.policy.documents import parse_documents
from reconcile.policy.model import Approval
from reconcile.policy.source import read_file


def read_approvals(repo: str, commit: str | None, paths: Iterable[str]) -> dict[str, tuple[Approval, ...] | str]:
    """Each path's approvals, or why there are none (missing, a symlink or below one, not a
    regular file, too big, malformed): the reason a closed gate shows after the path."""
    found: dict[str, tuple[Approval, ...] | str] = {}
    for path in sorted(set(paths)):
        data = read_file(repo, commit, path, what="approval files")
        if isinstance(data, str):
            found[path] = data
            continue
        documents, problems = parse_documents(path, data)
        if problems:
            found[path] = f"is not valid: {problems[0]}"
            continue
        entries = documents[0].body.get("approvals") if documents and isinstance(documents[0].body, dict) else None
        if not isinstance(entries, list) or not all(_valid(e) for e in entries):
            found[path] = "is not valid: expected 'approvals:', a list of {version or digest, approvedBy}"
            continue
        found[path] = tuple(Approval(str(e["approvedBy"]), e.get("digest"),
                                     str(e["version"]) if "version" in e else None) for e in entries)
    return found


def _valid(entry: object) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("approvedBy"), str) and (
        isinstance(entry.get("digest"), str) or isinstance(entry.get("version"), str | int | float))
