"""Defaults of the settings the command line and the library share, defined once (and cheap to
import: the command line reads them before it loads anything else)."""

from __future__ import annotations

from datetime import timedelta

AUDIT_DB = "reconcile-audit.db"  # relative to the working directory
MAX_PLAN_AGE = timedelta(hours=1)  # a reviewed plan is applied soon after, or planned again
MARKDOWN_LIMIT = 65_536  # GitHub refuses a pull-request comment (or issue body) over 65,536 characters
