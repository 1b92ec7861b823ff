"""AWS Signature Version 4 for request headers (``Authorization: AWS4-HMAC-SHA256 ...``), with
hashlib and hmac only: what an AWS JSON API (ECR's ``DescribeImages``, :mod:`listing`) needs.

The steps of AWS's "Create a signed AWS API request" guide:

1. the canonical request: method, canonical URI (the path as sent, percent-encoded once more, as
   every service but S3 wants), canonical query (each name and value percent-encoded, RFC 3986
   unreserved characters kept, sorted), canonical headers (lower-case names, values trimmed and
   inner runs of spaces folded, sorted by name), the signed header names, the payload's SHA-256;
2. the string to sign: ``AWS4-HMAC-SHA256``, the ``X-Amz-Date`` time, the credential scope
   ``DATE/REGION/SERVICE/aws4_request`` and the canonical request's SHA-256;
3. the signing key: HMAC-SHA256 chained from ``"AWS4" + secret key`` over the date, the region,
   the service and ``aws4_request``;
4. the signature, the string to sign's HMAC under that key, in the ``Authorization`` header with
   the access key id, the scope and the signed header names.

A session token (temporary credentials) goes in ``X-Amz-Security-Token``, signed. Tested against
AWS's published SigV4 test suite (``tests/adapters/registry/test_sigv4.py``).

The secret access key, the signing key and the session token never leave this module but in the
headers it returns: they are :class:`Secret` values (the ``Authorization`` header and the token
are registered with the redactor, so a server that echoes them is masked wherever its words go),
and nothing here logs or raises with them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

from reconcile.policy.secrets import Secret

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
_SPACES = re.compile(r" +")


@dataclass(frozen=True)
class AWSCredentials:
    """An access key pair (the id is not secret, the key is), and a session token for
    temporary credentials (STS, an assumed role, IRSA)."""

    access_key_id: str
    secret_access_key: Secret
    session_token: Secret | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.secret_access_key, Secret) or not (
                self.session_token is None or isinstance(self.session_token, Secret)):
            raise TypeError("AWSCredentials takes the secret access key and session token as Secrets")

    def __repr__(self) -> str:
        return f"AWSCredentials({self.access_key_id!r}, ***)"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signing_key(secret_access_key: Secret, date: str, region: str, service: str) -> bytes:
    """The key of step 3 for ``date`` (``YYYYMMDD``), ``region`` and ``service``."""
    key = _hmac(("AWS4" + secret_access_key.reveal()).encode(), date)
    for part in (region, service, TERMINATOR):
        key = _hmac(key, part)
    return key


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_query(query: str) -> str:
    """Every ``name=value`` of ``query`` (as sent) decoded, encoded again the SigV4 way, sorted."""
    pairs = []
    for item in query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append((_encode(_unquote(name)), _encode(_unquote(value))))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _unquote(text: str) -> str:
    return unquote(text)


def canonical_uri(path: str) -> str:
    """The path as sent (already percent-encoded) encoded once more, ``/`` kept; ``/`` if empty."""
    return quote(path or "/", safe="/-_.~")


def canonical_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """(the canonical headers block, the signed header names) of ``headers``, all signed."""
    folded: dict[str, list[str]] = {}
    for name, value in headers.items():
        folded.setdefault(name.strip().lower(), []).append(_SPACES.sub(" ", str(value).strip()))
    names = sorted(folded)
    return "".join(f"{name}:{','.join(folded[name])}\n" for name in names), ";".join(names)


def canonical_request(method: str, path: str, query: str, headers: Mapping[str, str],
                      payload_hash: str) -> tuple[str, str]:
    """(the canonical request of step 1, the signed header names)."""
    block, signed = canonical_headers(headers)
    return "\n".join([method.upper(), canonical_uri(path), canonical_query(query), block, signed,
                      payload_hash]), signed


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    return "\n".join([ALGORITHM, amz_date, scope, sha256_hex(canonical.encode())])


def amz_date(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def sign(method: str, url: str, headers: Mapping[str, str], body: bytes, credentials: AWSCredentials,
         region: str, service: str, when: datetime | None = None) -> dict[str, str]:
    """The headers to send: ``headers`` (every one signed), ``Host`` (from ``url``, unless given),
    ``X-Amz-Date``, ``X-Amz-Security-Token`` with a session token, and ``Authorization``.

    Send exactly these, and ``body`` as given: a proxy or library that adds or changes a signed
    header, or re-encodes the body, breaks the signature."""
    parts = urlsplit(url)
    stamp = amz_date(when or datetime.now(UTC))
    sent = {name: value for name, value in headers.items() if name.lower() not in (
        "authorization", "x-amz-date", "x-amz-security-token")}
    if not any(name.lower() == "host" for name in sent):
        sent["Host"] = _host(parts.scheme, parts.hostname or "", parts.port)
    sent["X-Amz-Date"] = stamp
    if credentials.session_token is not None:
        sent["X-Amz-Security-Token"] = credentials.session_token.reveal()
    canonical, signed = canonical_request(method, parts.path, parts.query, sent, sha256_hex(body))
    scope = f"{stamp[:8]}/{region}/{service}/{TERMINATOR}"
    key = signing_key(credentials.secret_access_key, stamp[:8], region, service)
    signature = hmac.new(key, string_to_sign(stamp, scope, canonical).encode(), hashlib.sha256).hexdigest()
    del key  # no frame left holding it
    authorization = (f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, SignedHeaders={signed}, "
                     f"Signature={signature}")
    Secret(authorization)  # known to the redactor: a server may echo the header it was sent
    sent["Authorization"] = authorization
    return sent


def _host(scheme: str, host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    default = {"https": 443, "http": 80}.get(scheme)
    return shown if port is None or port == default else f"{shown}:{port}"
