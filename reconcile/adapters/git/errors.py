"""The error of a write-back: raised by the git transport and (as ``EditError``) by the manifest editor."""

from __future__ import annotations


class WriteBackError(Exception):
    """The write-back could not be done; nothing was pushed."""
