"""Registry errors: each names the registry, the repository and the operation, never a credential.

Messages are built from status codes and the registry's machine-readable error *codes* only: a
registry's free-text message or body could echo a header, and URLs could carry a presigned
storage signature, so neither is quoted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests

from reconcile.policy.secrets import SecretRef, redact
from reconcile.policy.urls import DEFAULT_PORTS

if TYPE_CHECKING:
    from reconcile.policy.model import Registry

_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


class RegistryError(Exception):
    """A registry operation failed. ``status`` is the HTTP status when there was one."""

    def __init__(self, registry: str, repository: str | None, operation: str, message: str,
                 status: int | None = None, *, retryable: bool = False, refusal: str | None = None,
                 codes: Sequence[str] = ()) -> None:
        message = redact(message)  # whatever a server said that it quotes: never a secret value
        self.registry = registry
        self.repository = repository
        self.operation = operation
        self.message = message
        self.status = status
        self.retryable = retryable  # the whole operation may be tried again (e.g. a blob upload)
        # A 401's cause: "credentials" (sent, and refused), "withheld" (not sent: the host is not in
        # allowedHosts), "anonymous" (none configured), "scope" (a token without the access asked for).
        self.refusal = refusal
        self.codes = tuple(codes)  # the registry's error codes (UNSUPPORTED, DENIED...)
        where = f", repository {repository}" if repository else ""
        super().__init__(f"registry {registry}{where}: {operation}: {message}")


class DigestMismatch(RegistryError):
    """Content did not hash to the digest it was asked for: never copied, never cached."""

    def __init__(self, registry: str, repository: str | None, operation: str, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(registry, repository, operation,
                         f"content does not match its digest: expected {expected}, got {actual}")


class DeletionDisabled(RegistryError):
    """The registry refuses every DELETE (distribution: ``storage.delete.enabled`` is false), or
    its Registry policy declares ``deletion: none``. The message says which setting to change."""


def deletion_disabled_message(registry: str) -> str:
    """What a registry that answered a manifest DELETE with 405 (UNSUPPORTED) needs."""
    return (f"registry {registry} has deletion disabled: enable it (distribution: storage.delete.enabled: "
            f"true), or declare deletion: none on Registry {registry} so that nothing is planned to be deleted")


def declared_no_deletion(registry: str, repository: str | None, operation: str) -> DeletionDisabled:
    return DeletionDisabled(registry, repository, operation,
                            f"Registry {registry} declares deletion: none, so nothing is deleted on it")


class CannotUntag(RegistryError):
    """The registry cannot delete a tag on its own (no OCI 1.1 tag deletion): the only way to
    remove ``tag`` is to delete ``digest``, which removes every tag in ``tags``. Data for the
    planner, which decides. ``hint`` says what the Registry declares and what to change."""

    def __init__(self, registry: str, repository: str, tag: str, digest: str, tags: Sequence[str],
                 hint: str | None = None) -> None:
        self.tag = tag
        self.digest = digest
        self.tags = tuple(sorted(tags))
        self.hint = hint
        super().__init__(registry, repository, f"delete tag {tag}",
                         f"this registry cannot untag; deleting digest {digest} would also remove "
                         f"tags [{', '.join(self.tags)}]" + (f" ({hint})" if hint else ""))


def declared_manifest_hint(registry: str) -> str:
    return (f"Registry {registry} declares deletion: manifest; if it can delete a tag alone (OCI 1.1), "
            f"declare deletion: tag")


def refused_untag_hint(registry: str, status: int, codes: Sequence[str], *, still_tagged: bool = False) -> str:
    """Why a registry declared ``deletion: tag`` is now known not to untag, and what to declare."""
    answer = f"HTTP {status}" + (f" ({', '.join(codes)})" if codes else "")
    if still_tagged:
        answer += ", and the tag is still there,"
    disabled = " (or deletion: none if it deletes nothing at all)" if status == 405 else ""
    return (f"Registry {registry} declares deletion: tag, but the registry answered {answer} to deleting a tag "
            f"alone: declare deletion: manifest on Registry {registry}{disabled}")


def error_codes(response: requests.Response) -> list[str]:
    """The registry's error codes (``MANIFEST_UNKNOWN``...) from an OCI error body, if any."""
    if "json" not in response.headers.get("Content-Type", ""):
        return []
    # Only a body already read (to its limit, by the transport): never a stream read here, whole.
    content = getattr(response, "_content", None)
    if not isinstance(content, bytes):
        return []
    try:
        body = json.loads(content[:65536] or b"{}")
    except (ValueError, RecursionError):
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    codes = [e.get("code") for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
    return [c for c in codes if isinstance(c, str) and _CODE.match(c)]


def credential_references(registry: Registry) -> str | None:
    """The secret references of a Registry's ``spec.credentials``, each with its field: what to
    check when the registry refuses them (never a value)."""
    credentials = registry.credentials
    if credentials is None:
        return None
    named = [(field, ref) for field, ref in (("username", credentials.username), ("password", credentials.password),
                                             ("token", credentials.token), ("dockerConfig", credentials.docker_config))
             if isinstance(ref, SecretRef)]
    return ", ".join(f"{ref.describe()} of spec.credentials.{field}" for field, ref in named) or None


def withheld_message(authority: str, allowed_hosts: Sequence[str], scheme: str, *, what: str = "") -> str:
    """Why no credentials went to ``authority`` (``what`` names it further: "the token realm "):
    it is not one of ``allowed_hosts``, exact host:port entries. An entry naming its host without
    a port is said to mean the default port of ``scheme`` only."""
    default_port = DEFAULT_PORTS.get(scheme)
    listed = ", ".join(allowed_hosts) if allowed_hosts else "none"
    message = f"credentials withheld from {what}{authority} (not in allowedHosts: {listed})"
    host = authority.rsplit(":", 1)[0] if not authority.endswith("]") else authority
    if default_port is not None and host in allowed_hosts and host != authority:
        message += f"; {host!r} matches port {default_port} only (the scheme's default)"
    return f"{message}: add {authority!r} to allowedHosts if the credentials are meant for it"


def insufficient_scope(response: requests.Response) -> bool:
    """A bearer challenge saying the token lacks the access asked for (RFC 6750 ``insufficient_scope``)."""
    return re.search(r'error\s*=\s*"?insufficient_scope', response.headers.get("WWW-Authenticate", "")) is not None


def status_error(registry: str, repository: str | None, operation: str, response: requests.Response,
                 *, has_credentials: bool, hint: str | None = None, withheld: str | None = None,
                 references: str | None = None) -> RegistryError:
    """The error for an unexpected response. A 401 says why: ``withheld`` (what
    :func:`withheld_message` says) when the credentials were not sent, else the credentials were
    refused, ``references`` naming the secret references to check; ``hint`` explains further."""
    status = response.status_code
    codes = error_codes(response)
    detail = f" ({', '.join(codes)})" if codes else ""
    refusal = None
    if status == 401:
        if not has_credentials:
            refusal, message = "anonymous", f"registry {registry} requires authentication and none is configured"
        elif withheld:
            refusal, message = "withheld", f"authentication failed for registry {registry}: {withheld}"
        elif insufficient_scope(response):
            refusal = "scope"
            message = f"the credentials for registry {registry} do not allow this (the token lacks the scope)"
        else:
            refusal = "credentials"
            check = f"check the secret reference{'s' * (references is not None and ', ' in references)} " \
                    f"{references}" if references else "check credentials"
            message = f"authentication failed for registry {registry} ({check}{'; ' + hint if hint else ''})"
    elif status == 403:
        message = f"forbidden: the credentials for registry {registry} do not allow this{detail}"
    elif status == 404:
        message = f"not found{detail}"
    elif status == 405 and operation.startswith("delete") and ("UNSUPPORTED" in codes or not codes):
        return DeletionDisabled(registry, repository, operation, deletion_disabled_message(registry), status)
    elif status == 429:
        message = f"rate limited (HTTP 429){detail}"
    else:
        message = f"unexpected HTTP {status}{detail}"
    return RegistryError(registry, repository, operation, message, status,
                         retryable=status in (429, 502, 503, 504), refusal=refusal, codes=codes)


def safe_url(url: str) -> str:
    """``url`` without query or userinfo: presigned storage URLs carry signatures in the query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "(an invalid URL)"
    return f"{parts.scheme}://{host}{parts.path}"
