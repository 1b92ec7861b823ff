"""The repo-of-record: policies read at a git ref, validated, checked and typed.

``load_policies(repo, ref)`` is the entry point for everything that needs desired state;
``validate_repo`` reports every problem at once for ``reconcile validate``.

The names below load on first use: importing ``reconcile.policy.model`` (as the pure planner
does) must not bring in the git reader.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconcile.policy.loader import Validation, load_policies, validate_repo
    from reconcile.policy.model import PolicySet
    from reconcile.policy.problems import PolicyError, Problem
    from reconcile.policy.source import SourceError

__all__ = ["PolicyError", "PolicySet", "Problem", "SourceError", "Validation", "load_policies",
           "validate_repo"]

_HOMES = {"Validation": "loader", "load_policies": "loader", "validate_repo": "loader", "PolicySet": "model",
          "PolicyError": "problems", "Problem": "problems", "SourceError": "source"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'reconcile.policy' has no attribute {name!r}")
    return getattr(import_module(f"reconcile.policy.{_HOMES[name]}"), name)
