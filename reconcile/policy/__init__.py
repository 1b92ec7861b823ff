"""The repo-of-record: policies read at a git ref, validated, checked and typed.

``load_policies(repo, ref)`` is the entry point for everything that needs desired state;
``validate_repo`` reports every problem at once for ``reconcile validate``.
"""

from reconcile.policy.loader import Validation, load_policies, validate_repo
from reconcile.policy.model import PolicySet
from reconcile.policy.problems import PolicyError, Problem
from reconcile.policy.source import SourceError

__all__ = ["PolicyError", "PolicySet", "Problem", "SourceError", "Validation", "load_policies",
           "validate_repo"]
