"""Registry authentication: anonymous, HTTP basic, and the bearer-token flow of a
``WWW-Authenticate`` challenge (Docker/OCI token auth), with credentials from secret references.

Secrets are resolved at first use and revealed only to build an ``Authorization`` header for a
host the policy allows (the transport decides, per URL, whether a header is asked for at all).
Tokens are kept wrapped in :class:`Secret` and cached per scope set.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from reconcile.adapters.registry.errors import (
    RegistryError,
    credential_references,
    safe_url,
    status_error,
    withheld_message,
)
from reconcile.adapters.registry.transport import Transport
from reconcile.policy.model import Registry
from reconcile.policy.secrets import Secret, SecretResolver
from reconcile.policy.urls import URLError, parse_url

# Docker's convention: a config.json identity token comes back as this user name.
IDENTITY_TOKEN_USER = "<token>"
DEFAULT_TOKEN_LIFETIME = 60  # seconds, per the Docker token spec when expires_in is absent
_REFRESH_MARGIN = 5  # renew this many seconds early: a token must not expire mid-request
_PARAM = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: basic, bearer
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """The first challenge of a ``WWW-Authenticate`` header (registries send one)."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = _PARAM.match(rest, position)
        if not match or match.end() == position:
            break
        value = match.group(2) if match.group(2) is not None else match.group(3)
        params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
        position = match.end()
    return Challenge(scheme.lower(), params)


def _scope_key(scopes: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted(set(scopes)))


class Authenticator:
    """Answers the transport's questions: what ``Authorization`` to send first, and what to send
    after a 401 challenge."""

    def __init__(self, registry: Registry, resolver: SecretResolver | None, transport: Transport) -> None:
        self._registry = registry
        self._resolver = resolver
        self._transport = transport
        self._lock = threading.Lock()
        self._basic: tuple[str | Secret, Secret] | None = None  # a plain user name is not a secret
        self._token: Secret | None = None
        self._resolved = False
        self._scheme: str | None = None  # learnt from the first challenge
        self._bearer: dict[str, str] = {}  # realm, service
        self._tokens: dict[tuple[str, ...], tuple[Secret, float]] = {}
        credentials = registry.credentials
        self.has_credentials = credentials is not None and any(
            (credentials.password, credentials.token, credentials.docker_config))
        self.hint: str | None = None
        self.withheld: str | None = None  # why the token realm got no credentials (withheld_message)
        self.references = credential_references(registry)

    # -- secrets -------------------------------------------------------------------------------
    def _secrets(self) -> None:
        """Resolve the credentials once, when the registry first asks for them."""
        if self._resolved:
            return
        credentials = self._registry.credentials
        if credentials is None or self._resolver is None:
            self._resolved = True
            return
        purpose = f"Registry/{self._registry.name} spec.credentials"
        resolve = self._resolver.resolve
        if credentials.docker_config is not None:
            host = urlsplit(self._registry.url).netloc  # as written: the key of config.json's auths
            pair = self._resolver.resolve_docker_config(credentials.docker_config, host=host,
                                                        purpose=f"{purpose}.dockerConfig")
            self._basic = (pair.username, pair.password)
        elif credentials.token is not None:
            self._token = resolve(credentials.token, purpose=f"{purpose}.token")
        elif credentials.password is not None:
            user = credentials.username
            username = resolve(user, purpose=f"{purpose}.username") if user is not None and not isinstance(
                user, str) else (user or "")
            self._basic = (username, resolve(credentials.password, purpose=f"{purpose}.password"))
        self._resolved = True  # only now: a reference that failed to resolve fails again, never anonymously

    def _basic_header(self) -> str | None:
        self._secrets()
        if self._basic is None or self._identity_token() is not None:
            return None
        user, password = self._basic
        encoded = base64.b64encode(f"{_plain(user)}:{password.reveal()}".encode()).decode()
        Secret(encoded)  # known to the redactor too: a server may echo the header it was sent
        return "Basic " + encoded

    def _identity_token(self) -> Secret | None:
        """An OAuth2 refresh (identity) token: the ``token`` credential, or a Docker config's."""
        if self._token is not None:
            return self._token
        if self._basic is not None and _plain(self._basic[0]) == IDENTITY_TOKEN_USER:
            return self._basic[1]
        return None

    def basic_credentials(self) -> tuple[str, Secret] | None:
        """The user name and password (or access token used as one) of ``spec.credentials``,
        resolved at first use; ``None`` for anonymous or token-only credentials. For APIs beside
        the Distribution API (:mod:`listing`), which take them directly, never through a challenge."""
        with self._lock:
            self._secrets()
            if self._basic is None:
                return None
            return _plain(self._basic[0]), self._basic[1]

    # -- the transport's questions -------------------------------------------------------------
    def authorization(self, scopes: Sequence[str]) -> str | None:
        """The header to send before any challenge: basic once the registry asked for it, a
        cached (or, the realm being known, a freshly fetched) bearer token for ``scopes``."""
        with self._lock:
            if self._scheme == "basic":
                return self._basic_header()
            if self._scheme == "bearer" and self._bearer.get("realm"):
                return self._bearer_header(scopes, stale=None)
        return None

    def challenge(self, response: requests.Response, scopes: Sequence[str], sent: str | None) -> str | None:
        """The header to retry with after a 401, or ``None`` to give up (the 401 stands)."""
        challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if challenge is None:
            return None
        with self._lock:
            if challenge.scheme == "basic":
                self._scheme = "basic"
                header = self._basic_header()
                return header if header and header != sent else None
            if challenge.scheme != "bearer" or not challenge.params.get("realm"):
                return None
            try:
                realm = str(parse_url(challenge.params["realm"], response.url))
            except URLError as exc:
                raise RegistryError(self._registry.name, None, "get a token",
                                    f"the WWW-Authenticate realm is not a valid URL: {exc}") from None
            self._scheme = "bearer"
            self._bearer = {"realm": realm, **({"service": challenge.params["service"]}
                                               if "service" in challenge.params else {})}
            # The scope the registry names is what it needs; ours may add a mount's source.
            wanted = [*scopes, *challenge.params.get("scope", "").split()]
            header = self._bearer_header(wanted, stale=sent)
            return header if header != sent else None

    # -- bearer tokens -------------------------------------------------------------------------
    def _bearer_header(self, scopes: Sequence[str], stale: str | None) -> str:
        key = _scope_key(scopes)
        cached = self._tokens.get(key)
        if cached is not None and time.monotonic() < cached[1]:
            header = f"Bearer {cached[0].reveal()}"
            if header != stale:  # a token the registry just refused is fetched again
                return header
        token, lifetime = self._fetch_token(key)
        self._tokens[key] = (token, time.monotonic() + max(lifetime - _REFRESH_MARGIN, 1))
        return f"Bearer {token.reveal()}"

    def _fetch_token(self, scopes: tuple[str, ...]) -> tuple[Secret, float]:
        realm = self._bearer["realm"]
        service = self._bearer.get("service")
        name = self._registry.name
        self._secrets()
        # A realm on a host outside allowedHosts gets an anonymous request: no credential leaves.
        trusted = self._transport.may_receive_credentials(realm)
        withheld = None
        if not trusted and self.has_credentials:
            parsed = parse_url(realm)
            withheld = self.withheld = withheld_message(parsed.authority, self._registry.allowed_hosts,
                                                        parsed.scheme, what="the token realm ")
        refresh = self._identity_token() if trusted else None
        headers: dict[str, str] = {"Accept": "application/json"}
        if refresh is not None:
            form = {"grant_type": "refresh_token", "client_id": "reconcile", "refresh_token": refresh.reveal(),
                    "scope": " ".join(scopes), **({"service": service} if service else {})}
            response = self._transport.exchange("POST", realm, headers=headers, data=form)
        else:
            basic = self._basic_header() if trusted else None
            if basic:
                headers["Authorization"] = basic
            params = [*([("service", service)] if service else []), *(("scope", s) for s in scopes)]
            response = self._transport.exchange("GET", realm, headers=headers, params=params)
        operation = f"get a token from {safe_url(realm)}"
        try:
            if response.status_code != 200:
                self._transport.read(response, "error", operation, None, truncate=True)
                raise status_error(name, None, operation, response, has_credentials=self.has_credentials,
                                   withheld=withheld, references=self.references)
            body = self._transport.read(response, "token", operation, None)
        finally:
            response.close()
        outcome = _token_from(body)
        if outcome is None:
            raise RegistryError(name, None, operation, "the token response has no token")
        return outcome


def _plain(value: str | Secret) -> str:
    return value.reveal() if isinstance(value, Secret) else value


def _token_from(body: bytes) -> tuple[Secret, float] | None:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    token = document.get("token") or document.get("access_token")
    if not isinstance(token, str) or not token:
        return None
    lifetime = document.get("expires_in")
    if not isinstance(lifetime, int | float) or lifetime <= 0:
        lifetime = DEFAULT_TOKEN_LIFETIME
    return Secret(token), float(lifetime)
