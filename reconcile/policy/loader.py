"""Loading the repo-of-record: read files at a ref, parse, validate, check, build typed policies."""

from __future__ import annotations

from dataclasses import dataclass

from reconcile.policy.checks import check_documents
from reconcile.policy.documents import Document, parse_documents
from reconcile.policy.model import PolicySet, build_policy_set
from reconcile.policy.problems import PolicyError, Problem
from reconcile.policy.schema import KINDS, check_document
from reconcile.policy.source import Snapshot, read_snapshot


@dataclass(frozen=True)
class Validation:
    """The outcome of reading a repo-of-record: every problem, and the policies when none."""

    snapshot: Snapshot
    problems: tuple[Problem, ...]
    policies: PolicySet | None
    documents: int  # reconcile documents read
    ignored: int  # YAML documents that are not reconcile's (Kubernetes manifests, CI files...)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.is_error)

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if not p.is_error)


def is_policy_document(document: Document) -> bool:
    """Ours if it says so (reconcile/ apiVersion or one of our kinds) or looks like a policy
    missing both; everything else (manifests, workflow files, approvals) is someone else's."""
    body = document.body
    if not isinstance(body, dict):
        return True  # a stray scalar or list at top level is a mistake worth reporting
    api_version = body.get("apiVersion")
    if isinstance(api_version, str):
        return api_version.startswith("reconcile/") or body.get("kind") in KINDS
    return ("kind" not in body and {"metadata", "spec"} <= body.keys()) or body.get("kind") in KINDS


def validate_snapshot(snapshot: Snapshot) -> Validation:
    problems: list[Problem] = []
    documents: list[Document] = []
    ignored = 0
    for policy_file in snapshot.files:
        if policy_file.content is None:
            problems.append(Problem(policy_file.path, 1, policy_file.problem or "unreadable"))
            continue
        parsed, file_problems = parse_documents(policy_file.path, policy_file.content)
        problems += file_problems
        for document in parsed:
            if is_policy_document(document):
                documents.append(document)
            else:
                ignored += 1
    for document in documents:
        problems += check_document(document)
    problems += check_documents(documents)
    problems.sort(key=lambda p: (p.path, p.line, p.message))
    errors = any(p.is_error for p in problems)  # warnings leave the policies usable
    policies = None if errors else build_policy_set(snapshot.source, snapshot.commit, documents)
    return Validation(snapshot, tuple(problems), policies, len(documents), ignored)


def validate_repo(repo: str, ref: str | None = None) -> Validation:
    """Read ``repo`` at ``ref`` and report everything wrong with it at once."""
    return validate_snapshot(read_snapshot(repo, ref))


def load_policies(repo: str, ref: str | None = None) -> PolicySet:
    """The typed policies of ``repo`` at ``ref``; raises PolicyError listing every problem."""
    validation = validate_repo(repo, ref)
    if validation.policies is None:
        raise PolicyError(list(validation.errors))
    return validation.policies
