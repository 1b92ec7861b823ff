"""Defaults of the settings the command line and the library share, defined once (and cheap to
import: the command line reads them before it loads anything else).

Where reconcile keeps what it writes when it is not told where: the XDG base directories, never
the current directory (which is often the repo-of-record's work tree, where an audit trail would
be an uncommitted change). The image and the CronJob set ``RECONCILE_AUDIT_DB`` and
``RECONCILE_CACHE_DIR`` to their volume, so these defaults matter at a terminal or in CI.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

MAX_PLAN_AGE = timedelta(hours=1)  # a reviewed plan is applied soon after, or planned again
MARKDOWN_LIMIT = 65_536  # GitHub refuses a pull-request comment (or issue body) over 65,536 characters

AUDIT_DB_NAME = "audit.db"  # in the state directory
AUDIT_DB_SHOWN = "$XDG_STATE_HOME/reconcile/audit.db, else ~/.local/state/reconcile/audit.db"
CACHE_DIR_SHOWN = "$XDG_CACHE_HOME/reconcile, else ~/.cache/reconcile"
# What versions before 0.2 used when --audit-db was not given: a file in the current directory. Still
# there, it is named (never silently left behind): see reconcile.cli.session.audit_db_of.
LEGACY_AUDIT_DB = "reconcile-audit.db"
# Where the kubelet mounts a pod's service-account credentials (token, ca.crt, namespace):
# https://kubernetes.io/docs/tasks/run-application/access-api-from-pod/#directly-accessing-the-rest-api
SERVICE_ACCOUNT_DIR_VARIABLE = "RECONCILE_SERVICE_ACCOUNT_DIR"
DEFAULT_SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def _xdg(variable: str, fallback: str) -> tuple[Path, str]:
    """``$VARIABLE`` when it is an absolute path (the XDG spec: a relative one is invalid and
    ignored), else ``~/FALLBACK``; and where it came from (the variable's name, or ``default``)."""
    value = os.environ.get(variable, "")
    if value and os.path.isabs(value):
        return Path(value), variable
    return Path.home() / fallback, "default"


def state_dir() -> Path:
    """``$XDG_STATE_HOME/reconcile``, else ``~/.local/state/reconcile``: state that outlives a run."""
    return _xdg("XDG_STATE_HOME", ".local/state")[0] / "reconcile"


def audit_db() -> str:
    """The audit trail when neither ``--audit-db`` nor ``RECONCILE_AUDIT_DB`` says: ``audit.db`` in
    :func:`state_dir`."""
    return str(state_dir() / AUDIT_DB_NAME)


def audit_db_source() -> str:
    """Where :func:`audit_db` came from: ``XDG_STATE_HOME`` or ``default``."""
    return _xdg("XDG_STATE_HOME", ".local/state")[1]


def cache_dir() -> Path:
    """``$RECONCILE_CACHE_DIR``, else ``$XDG_CACHE_HOME/reconcile``, else ``~/.cache/reconcile``:
    mirrors of git repositories, manifests and configs by digest, write-back clones."""
    return Path(os.environ["RECONCILE_CACHE_DIR"]) if os.environ.get("RECONCILE_CACHE_DIR") else \
        _xdg("XDG_CACHE_HOME", ".cache")[0] / "reconcile"


def cache_dir_source() -> str:
    """Where :func:`cache_dir` came from: ``RECONCILE_CACHE_DIR``, ``XDG_CACHE_HOME`` or ``default``."""
    if os.environ.get("RECONCILE_CACHE_DIR"):
        return "RECONCILE_CACHE_DIR"
    return _xdg("XDG_CACHE_HOME", ".cache")[1]
