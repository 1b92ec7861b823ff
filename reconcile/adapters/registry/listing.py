"""Bulk tag listing: a registry's own API that answers a page of tags with their digests, so that
observing a repository costs a request per page (100 tags) instead of a request per tag; and what
the Distribution API cannot say: the manifests on no tag (ECR, Harbor) and when each digest was
pushed (ECR, Harbor; Docker Hub and GitLab per tag), as :class:`~reconcile.adapters.registry.client.Listed`.

Offered for the APIs that give a digest per tag in pages (Registry ``spec.listing.api``):

- ``harbor``: ``GET /api/v2.0/projects/{project}/repositories/{name}/artifacts`` (the name URL-
  encoded twice, ``a/b`` -> ``a%252Fb``), ``page``/``page_size`` (100 at most), ``with_tag=true``
  and no ``q``: Harbor's default base, every tagged artifact and every untagged one that no index
  references (never its accessories: cosign signatures, SBOMs...; ``q=tags=*`` would leave the
  untagged out, ``q=tags=nil`` the tagged). So a request per page of artifacts as before, the
  untagged among them. The answer is a JSON array of artifacts, each with its ``digest``, its
  ``tags`` (``[{"name": ...}]``, every tag of the artifact; empty or null: untagged) and its
  ``push_time`` (RFC 3339: when the artifact was pushed to the repository); the next page is in
  the ``Link: <...>; rel="next"`` header, the total in ``X-Total-Count``. HTTP basic credentials
  (a user, or a robot account).
- ``gitlab``: the GitLab container registry's own API (``/gitlab/v1/``, on the registry's host; the
  registry with its metadata database, as on gitlab.com): ``GET /gitlab/v1/repositories/{path}/
  tags/list/?n=100``, a JSON array of tags, each with its ``name``, the manifest's ``digest``,
  ``media_type``, ``config_digest``, ``size_bytes`` and ``published_at`` (RFC 3339: when the tag
  last came to its manifest, the later of ``created_at`` and ``updated_at``, which stand in for
  it); the next page (``last=``) in the ``Link`` header. The same credentials as ``/v2/`` (a
  token for ``repository:{path}:pull``). Tags only: no untagged manifests.
- ``dockerhub``: ``GET /v2/namespaces/{namespace}/repositories/{name}/tags?page_size=100`` on
  ``https://hub.docker.com``; a JSON object ``{"count", "next", "previous", "results"}``, each result
  with its ``name``, the manifest's ``digest`` and ``tag_last_pushed`` (RFC 3339); ``next`` is the
  next page's URL (``null`` at the end). Tags only: no untagged manifests. Anonymous for public
  repositories; else a bearer token from ``POST /v2/auth/token``
  (``{"identifier": username, "secret": access token}`` -> ``{"access_token": ...}``).

- ``ecr``: Amazon ECR's ``DescribeImages``: ``POST /`` on ``https://api.ecr.{region}.amazonaws.com``,
  ``Content-Type: application/x-amz-json-1.1``, ``X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.
  DescribeImages``, a JSON body ``{"repositoryName", "registryId" (the 12-digit account of an
  ``ACCOUNT.dkr.ecr.REGION.amazonaws.com`` registry), "maxResults": 1000, "nextToken"}`` (no
  ``filter``: every image, tagged or not, as ``tagStatus: ANY``); the answer ``{"imageDetails":
  [{"imageDigest", "imageTags": [...] (absent when untagged), "imagePushedAt" (epoch seconds, a
  JSON number, maybe fractional), "imageManifestMediaType", ...}], "nextToken"}``, the next page
  asked for with that token. ECR lists an index's platform manifests as untagged images of their
  own: observation reports as untagged only what no observed index lists and what is no referrer.
  Signed with AWS Signature Version 4 (:mod:`sigv4`, service ``ecr``) with the IAM
  access key of ``spec.listing.credentials`` (secret references), sent to the listing url alone:
  ECR's API host, or an endpoint allowedHosts names. Errors are ``{"__type", "message"}`` (HTTP
  400 mostly): ``RepositoryNotFoundException`` is a 404 here (the Distribution API is asked);
  ``ThrottlingException`` backs off as a 429 does (the registry's requests in flight halved,
  retried within ``spec.retry``); a refused signature or key (``InvalidSignatureException``,
  ``UnrecognizedClientException``...) says which secret references to check, never their values;
  ECR's free-text messages are not quoted (an ``InvalidSignatureException``'s quotes the signed
  headers, the session token among them).

Not offered: GitLab's REST API (``/api/v4/.../registry/repositories/:id/tags`` lists names only; a
digest costs a request per tag). Without a listing (the plain Distribution API) a repository has no
untagged manifests and no push times: ``/v2/<name>/tags/list`` names tags alone, and nothing in
the Distribution API says when a manifest was pushed.

What a listing says is checked like anything a registry sends: tags with the tag grammar, digests
with :func:`is_digest`, every page read to ``limits.listPageBytes``, at most ``limits.maxPages``
pages, every URL through the transport (credentials only to ``allowedHosts``). An entry with an
invalid tag name is skipped (as :meth:`DistributionClient.tags` skips one); a valid tag without a
usable digest is resolved on the Distribution API instead; an untagged entry without one is
skipped; a digest a tag is listed on is not untagged. A push time is believed only as the API's
own form (ECR: a finite JSON number; the others: an RFC 3339 date-time with an offset) between
2000 and 2100; anything else is no push time for that digest (a warning counts them), never a
failure; a digest listed several times (Docker Hub's and GitLab's tags) gets the latest, which
keeps the most under an age rule. The digests themselves are checked by the caller: a manifest
not yet cached is fetched *by that digest* and verified against it, so a listing naming a digest
the registry does not have, on a tag or untagged, fails the observation; and apply re-verifies
every delete on the Distribution API, tag by tag, whatever the listing said (a prune of an
untagged manifest is skipped if any tag now points at it).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import quote

import requests

from reconcile.adapters.registry import sigv4
from reconcile.adapters.registry.auth import Authenticator
from reconcile.adapters.registry.client import Listed
from reconcile.adapters.registry.content import TAG, is_digest
from reconcile.adapters.registry.errors import RegistryError, safe_url, status_error, withheld_message
from reconcile.adapters.registry.transport import Authorizer, Transport
from reconcile.policy.model import ECR_API_HOST, ECR_REGISTRY_HOST, Listing, Registry, ecr_region
from reconcile.policy.secrets import Secret, SecretRef, SecretResolver
from reconcile.policy.urls import URLError, parse_url

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # the most Harbor and Docker Hub answer in a page
ECR_PAGE_SIZE = 1000  # DescribeImages' largest maxResults
TOKEN_LIFETIME = 300.0  # seconds a Docker Hub access token is reused for (they last longer)


class _Untagged:
    """The tag of an entry that names an untagged manifest (a listed image without tags)."""

    def __repr__(self) -> str:
        return "UNTAGGED"


UNTAGGED: Any = _Untagged()


class Entry(NamedTuple):
    """One (tag, digest) of a page as sent, with the push time as sent (``None``: not said);
    validated by :class:`ListingClient`. ``tag`` is :data:`UNTAGGED` for an untagged manifest."""

    tag: object
    digest: object
    pushed: object = None


# Push times outside these are not believed (Harbor's "never" is 0001-01-01): no push time, as if unsaid.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


def epoch_time(value: object) -> datetime | None:
    """ECR's time (epoch seconds, a JSON number, maybe fractional), or ``None`` for anything else:
    a string, a boolean, NaN or an infinity, a negative or absurd number (outside 2000 to 2100)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not EARLIEST.timestamp() <= value < LATEST.timestamp():  # (False for NaN; ints of any size compare)
        return None
    return datetime.fromtimestamp(value, UTC)


def rfc3339_time(value: object) -> datetime | None:
    """An RFC 3339 date-time with an offset (Harbor's, GitLab's, Docker Hub's), in UTC, or ``None``
    for anything else (no offset, another format, outside 2000 to 2100)."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    match = _RFC3339.fullmatch(value)  # (not match: its $ admits a trailing newline)
    if match is None:
        return None
    zone = "+00:00" if match[4] in ("Z", "z") else match[4]
    try:  # RFC 3339 allows any number of fraction digits; Python keeps microseconds.
        moment = datetime.fromisoformat(f"{match[1]}T{match[2]}{(match[3] or '')[:7]}{zone}").astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return moment if EARLIEST <= moment < LATEST else None


@dataclass(frozen=True)
class Page:
    """One page of a listing, as sent (validated by :class:`ListingClient`)."""

    entries: list[Entry]
    following: str | None  # the next page's URL (maybe relative), None at the end


class HarborAPI:
    """Harbor's artifacts API (v2.0)."""

    name = "harbor"
    time = staticmethod(rfc3339_time)

    def path(self, repository: str) -> str:
        project, _, rest = repository.partition("/")
        if not rest:
            raise ValueError("a Harbor repository is PROJECT/NAME")
        # The name goes in one path segment, URL-encoded twice (Harbor's documented form).
        return (f"/api/v2.0/projects/{quote(project, safe='')}/repositories/"
                f"{quote(quote(rest, safe=''), safe='')}/artifacts")

    def params(self) -> dict[str, str]:
        # No q=tags=*: untagged artifacts too (Harbor's default base: tagged ones and the untagged
        # that no index references; accessories, signatures and SBOMs among them, never).
        return {"page": "1", "page_size": str(PAGE_SIZE), "with_tag": "true",
                "with_label": "false", "with_scan_overview": "false", "with_signature": "false",
                "with_immutable_status": "false", "with_accessory": "false"}

    def page(self, body: Any, response: requests.Response, number: int) -> Page:
        if not isinstance(body, list):
            raise ValueError("the artifacts answer is not a JSON array")
        entries: list[Entry] = []
        for artifact in body:
            if not isinstance(artifact, dict):
                entries.append(Entry(None, None))
                continue
            digest, pushed = artifact.get("digest"), artifact.get("push_time")
            tags = artifact.get("tags")
            if tags is None or tags == []:
                entries.append(Entry(UNTAGGED, digest, pushed))
            for tag in tags if isinstance(tags, list) else ():
                entries.append(Entry(tag.get("name") if isinstance(tag, dict) else None, digest, pushed))
        following = response.links.get("next", {}).get("url")
        if following is None and body:
            # No Link header (a proxy may drop it): the total says whether a page follows.
            total = response.headers.get("X-Total-Count", "")
            if total.isdigit() and number * PAGE_SIZE < int(total):
                following = _page_url(response.url, number + 1)
        return Page(entries, following)


class DockerHubAPI:
    """Docker Hub's tags API (hub.docker.com, v2)."""

    name = "dockerhub"
    time = staticmethod(rfc3339_time)

    def path(self, repository: str) -> str:
        parts = repository.split("/")
        if len(parts) == 1:
            parts = ["library", *parts]  # an official image
        if len(parts) != 2:
            raise ValueError("a Docker Hub repository is NAMESPACE/NAME")
        return f"/v2/namespaces/{quote(parts[0], safe='')}/repositories/{quote(parts[1], safe='')}/tags"

    def params(self) -> dict[str, str]:
        return {"page_size": str(PAGE_SIZE)}

    def page(self, body: Any, response: requests.Response, number: int) -> Page:
        if not isinstance(body, dict):
            raise ValueError("the tags answer is not a JSON object")
        results = body.get("results")
        entries: list[Entry] = []
        for result in results if isinstance(results, list) else ():
            if isinstance(result, dict):
                entries.append(Entry(result.get("name"), result.get("digest"), result.get("tag_last_pushed")))
            else:
                entries.append(Entry(None, None))
        following = body.get("next")
        return Page(entries, following if isinstance(following, str) and following else None)


class GitLabAPI:
    """The GitLab container registry's API (``/gitlab/v1/``), beside its ``/v2/``."""

    name = "gitlab"
    time = staticmethod(rfc3339_time)

    def path(self, repository: str) -> str:
        return f"/gitlab/v1/repositories/{repository}/tags/list/"  # the name's own slashes, as in /v2/

    def params(self) -> dict[str, str]:
        return {"n": str(PAGE_SIZE)}

    def page(self, body: Any, response: requests.Response, number: int) -> Page:
        if not isinstance(body, list):
            raise ValueError("the tags answer is not a JSON array")
        # published_at: when the tag last came to its manifest (created_at or updated_at, the later).
        entries = [Entry(tag.get("name"), tag.get("digest"),
                         tag.get("published_at") or tag.get("updated_at") or tag.get("created_at"))
                   if isinstance(tag, dict) else Entry(None, None) for tag in body]
        return Page(entries, response.links.get("next", {}).get("url"))


class ECRAPI:
    """Amazon ECR's ``DescribeImages`` (API version 2015-09-21, AWS JSON 1.1)."""

    name = "ecr"
    target = "AmazonEC2ContainerRegistry_V20150921.DescribeImages"
    content_type = "application/x-amz-json-1.1"
    time = staticmethod(epoch_time)

    def path(self, repository: str) -> str:
        if not repository:
            raise ValueError("an ECR repository has a name")
        return "/"  # one endpoint; the repository is in the body

    def body(self, repository: str, registry_id: str | None, token: str | None) -> bytes:
        document: dict[str, Any] = {"repositoryName": repository}
        if registry_id is not None:
            document["registryId"] = registry_id
        document["maxResults"] = ECR_PAGE_SIZE  # no filter: every image, tagged or not (tagStatus ANY)
        if token is not None:
            document["nextToken"] = token
        return json.dumps(document, separators=(",", ":")).encode()

    def page(self, body: Any) -> tuple[list[Entry], str | None]:
        """The entries, every tag of every image (an untagged one: one :data:`UNTAGGED` entry),
        each with the image's ``imagePushedAt``, and the next page's token."""
        if not isinstance(body, dict):
            raise ValueError("the DescribeImages answer is not a JSON object")
        details = body.get("imageDetails")
        if not isinstance(details, list):
            raise ValueError("the DescribeImages answer has no imageDetails array")
        entries: list[Entry] = []
        for image in details:
            if not isinstance(image, dict):
                entries.append(Entry(None, None))
                continue
            digest, pushed = image.get("imageDigest"), image.get("imagePushedAt")
            tags = image.get("imageTags")  # absent for an untagged image
            if tags is None or tags == []:
                entries.append(Entry(UNTAGGED, digest, pushed))
            for tag in tags if isinstance(tags, list) else ():
                entries.append(Entry(tag, digest, pushed))
        token = body.get("nextToken")
        return entries, token if isinstance(token, str) and token else None


APIS: Mapping[str, HarborAPI | DockerHubAPI | GitLabAPI | ECRAPI] = {
    "harbor": HarborAPI(), "dockerhub": DockerHubAPI(), "gitlab": GitLabAPI(), "ecr": ECRAPI()}

# ECR's errors (``__type``, maybe ``prefix#Name`` or ``Name:uri``) by what they mean here.
ECR_NOT_FOUND = frozenset({"RepositoryNotFoundException"})
ECR_THROTTLED = frozenset({"ThrottlingException", "Throttling", "ThrottledException", "TooManyRequestsException",
                           "RequestLimitExceeded", "LimitExceededException"})
ECR_AUTHENTICATION = frozenset({"InvalidSignatureException", "UnrecognizedClientException",
                                "IncompleteSignatureException", "MissingAuthenticationTokenException",
                                "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredTokenException",
                                "ExpiredToken", "RequestExpired", "AuthFailure"})
ECR_DENIED = frozenset({"AccessDeniedException", "AccessDenied"})
_ERROR_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")


def ecr_error_type(response: requests.Response) -> str | None:
    """The error's type name from the ``__type`` of an ECR error body (or the
    ``X-Amzn-ErrorType`` header), if it is one: never ECR's free text."""
    found: object = None
    try:
        document = json.loads(response.content[:65536] or b"{}")
    except (ValueError, RecursionError):
        document = None
    if isinstance(document, dict):
        found = document.get("__type") or document.get("code")
    if not isinstance(found, str):
        found = response.headers.get("X-Amzn-ErrorType")
    if not isinstance(found, str):
        return None
    name = found.rsplit("#", 1)[-1].split(":", 1)[0].strip()
    return name if _ERROR_TYPE.match(name) else None


class _NoRepository(Exception):
    """ECR answered RepositoryNotFoundException (a 404 of the other listings)."""


class _Signed:
    """The authorizer of ECR's requests: they carry their own SigV4 headers, so nothing else is
    added (the registry's credentials never go to ECR's API) and a refusal stands."""

    has_credentials = True
    hint: str | None = None

    def authorization(self, scopes: Sequence[str]) -> str | None:
        return None

    def challenge(self, response: requests.Response, scopes: Sequence[str], sent: str | None) -> str | None:
        return None


def _page_url(url: str, number: int) -> str:
    base, _, query = url.partition("?")
    kept = [p for p in query.split("&") if p and not p.startswith("page=")]
    return f"{base}?{'&'.join([*kept, f'page={number}'])}"


class BasicAuthorizer:
    """HTTP basic with the Registry's user name and password, sent with the first request (Harbor's
    API answers a missing header with a 401 that names no challenge); the transport asks only for
    hosts in allowedHosts."""

    def __init__(self, credentials: Authenticator, hint: str | None) -> None:
        self.has_credentials = credentials.has_credentials
        self.hint = hint
        self._credentials = credentials

    def authorization(self, scopes: Sequence[str]) -> str | None:
        pair = self._credentials.basic_credentials()
        if pair is None:
            return None
        encoded = base64.b64encode(f"{pair[0]}:{pair[1].reveal()}".encode()).decode()
        Secret(encoded)  # known to the redactor too
        return "Basic " + encoded

    def challenge(self, response: requests.Response, scopes: Sequence[str], sent: str | None) -> str | None:
        return None  # the credentials were sent already: the 401 stands


class DockerHubAuthorizer:
    """A Docker Hub access token (``POST {url}/v2/auth/token``) for the user name and access token of
    the Registry's credentials, fetched at first use and again when refused; anonymous without them."""

    def __init__(self, credentials: Authenticator, hint: str | None, transport: Transport, url: str,
                 registry: str) -> None:
        self.has_credentials = credentials.has_credentials
        self.hint = hint
        self._credentials = credentials
        self._transport = transport
        self._url = f"{url}/v2/auth/token"
        self._registry = registry
        self._lock = threading.Lock()
        self._token: tuple[Secret, float] | None = None

    def authorization(self, scopes: Sequence[str]) -> str | None:
        with self._lock:
            if self._token is not None and time.monotonic() < self._token[1]:
                return f"Bearer {self._token[0].reveal()}"
            pair = self._credentials.basic_credentials()
            if pair is None or not self._transport.may_receive_credentials(self._url):
                return None
            token = self._fetch(pair)
            self._token = (token, time.monotonic() + TOKEN_LIFETIME)
            return f"Bearer {token.reveal()}"

    def challenge(self, response: requests.Response, scopes: Sequence[str], sent: str | None) -> str | None:
        with self._lock:
            self._token = None  # refused: expired or revoked; one more try with a new one
        header = self.authorization(scopes)
        return header if header is not None and header != sent else None

    def _fetch(self, pair: tuple[str, Secret]) -> Secret:
        operation = f"get a token from {safe_url(self._url)}"
        form = json.dumps({"identifier": pair[0], "secret": pair[1].reveal()}).encode()
        response = self._transport.exchange("POST", self._url, data=form, headers={
            "Content-Type": "application/json", "Accept": "application/json"})
        try:
            if response.status_code != 200:
                self._transport.read(response, "error", operation, None, truncate=True)
                raise status_error(self._registry, None, operation, response, has_credentials=True,
                                   references=self._credentials.references)
            body = self._transport.read(response, "token", operation, None)
        finally:
            response.close()
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            document = None
        token = document.get("access_token") or document.get("token") if isinstance(document, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(self._registry, None, operation, "the token response has no access_token")
        return Secret(token)


class ListingClient:
    """One Registry's listing API, over the Registry's transport (its limits, retries, rate and
    concurrency, and its credential rules)."""

    def __init__(self, registry: Registry, listing: Listing, transport: Transport, credentials: Authenticator,
                 resolver: SecretResolver | None = None) -> None:
        self.registry = registry
        self.api = APIS[listing.api]
        self.listing = listing
        self._transport = transport
        self._resolver = resolver
        self._aws: sigv4.AWSCredentials | None = None
        self._aws_lock = threading.Lock()
        try:
            parsed = parse_url(listing.url)
        except URLError as exc:
            raise RegistryError(registry.name, None, "open", f"the listing url is refused: {exc}") from None
        if parsed.path not in ("", "/") or parsed.query:
            raise RegistryError(registry.name, None, "open", "the listing url is refused: it is http(s)://HOST[:PORT] "
                                "alone, without a path or query")
        self.url = str(parsed).rstrip("/")
        self.hint: str | None = None
        if listing.api == "ecr":
            self._open_ecr(parsed.host, parsed.authority)
        elif credentials.has_credentials and not transport.may_receive_credentials(self.url):
            self.hint = withheld_message(parsed.authority, registry.allowed_hosts, parsed.scheme,
                                         what="the listing url ")
        # GitLab's API takes the registry's own tokens (None: the transport's authorizer).
        self._authorizer: Authorizer | None = _Signed() if listing.api == "ecr" else (
            DockerHubAuthorizer(credentials, self.hint, transport, self.url, registry.name)
            if listing.api == "dockerhub" else None if listing.api == "gitlab"
            else BasicAuthorizer(credentials, self.hint))

    def tags(self, repository: str) -> Listed | None:
        """What the listing says: tag -> digest (``None`` where it gave no usable digest: the
        caller resolves that tag itself), the untagged manifests (a digest that a tag is listed on
        is not untagged) and push times (a digest's latest, where its entries give several).
        ``None`` for all of it when the listing answers 404 (no such repository there, or no such
        API on this registry): the Distribution API is asked instead."""
        operation = f"list tags with digests ({self.api.name} API)"
        try:
            path = self.api.path(repository)
        except ValueError as exc:
            raise RegistryError(self.registry.name, repository, operation, f"{exc}; spec.listing.api "
                                f"{self.api.name} cannot list {repository!r}") from None
        found: dict[str, str | None] = {}
        untagged: set[str] = set()
        pushed: dict[str, datetime] = {}
        invalid_tags: list[object] = []
        invalid_digests: list[str] = []
        invalid_untagged = invalid_times = 0
        entries = self._ecr_entries(operation, repository) if isinstance(self.api, ECRAPI) \
            else self._entries(self.url + path, operation, repository)
        try:
            for tag, sent, when in entries:
                digest = sent if isinstance(sent, str) and is_digest(sent) else None  # usable, else None
                if tag is UNTAGGED:
                    if digest is not None:
                        untagged.add(digest)
                    else:
                        invalid_untagged += 1
                elif not (isinstance(tag, str) and TAG.match(tag)):
                    invalid_tags.append(tag)
                elif digest is not None:
                    if tag not in found:
                        found[tag] = digest
                    elif found[tag] != digest:  # twice, on different digests: the registry is asked
                        invalid_digests.append(tag)
                        found[tag] = None
                else:
                    invalid_digests.append(tag)
                    found[tag] = None
                if digest is not None and when is not None:
                    moment = self.api.time(when)
                    if moment is None:
                        invalid_times += 1
                    elif digest not in pushed or pushed[digest] < moment:  # the latest: keeps the most
                        pushed[digest] = moment
        except _NoRepository:
            log.debug("registry %s, repository %s: %s: RepositoryNotFoundException; resolving tag by tag",
                      self.registry.name, repository, operation)
            return None  # as a 404: the Distribution API tells a missing repository
        except RegistryError as exc:
            if exc.status == 404 and self.hint is None:
                log.debug("registry %s, repository %s: %s answered 404; resolving tag by tag", self.registry.name,
                          repository, operation)
                return None  # the Distribution API tells a missing repository from a missing API
            if self.hint is not None and exc.status in (401, 403, 404) and self.hint not in exc.message:
                raise RegistryError(exc.registry, exc.repository, exc.operation, f"{exc.message}; {self.hint}",
                                    exc.status) from None
            raise
        if invalid_tags:
            shown = ", ".join(_shown(t) for t in invalid_tags[:3]) + (", ..." if len(invalid_tags) > 3 else "")
            log.warning("registry %s, repository %s: %s: skipped %d entries that are not valid OCI tags: %s",
                        self.registry.name, repository, operation, len(invalid_tags), shown)
        if invalid_digests:
            log.warning("registry %s, repository %s: %s: %d tags without a valid digest (%s%s); resolved one "
                        "by one instead", self.registry.name, repository, operation, len(invalid_digests),
                        ", ".join(invalid_digests[:3]), ", ..." if len(invalid_digests) > 3 else "")
        if invalid_untagged:
            log.warning("registry %s, repository %s: %s: skipped %d untagged entries without a valid digest",
                        self.registry.name, repository, operation, invalid_untagged)
        if invalid_times:
            log.warning("registry %s, repository %s: %s: ignored %d push times that are not valid times (those "
                        "digests have no push time)", self.registry.name, repository, operation, invalid_times)
        untagged -= {digest for digest in found.values() if digest is not None}  # a tag is listed on it
        return Listed(found, frozenset(untagged), MappingProxyType(dict(sorted(pushed.items()))))

    # -- ECR ---------------------------------------------------------------------------------------
    def _open_ecr(self, host: str, authority: str) -> None:
        """The endpoint AWS credentials may be signed for: ECR's API (https), or one allowedHosts
        names; the region to sign for; the account (registryId) of an ECR registry's host."""
        name = self.registry.name
        if self.listing.credentials is None:
            raise RegistryError(name, None, "open", "an ecr listing needs spec.listing.credentials (an IAM access "
                                "key by secret reference) to sign DescribeImages")
        if ECR_API_HOST.match(host.lower()) is not None:
            if not self.url.startswith("https://"):
                raise RegistryError(name, None, "open", "the listing url is refused: ECR's API is https")
        elif not self._transport.may_receive_credentials(self.url):
            raise RegistryError(name, None, "open", f"the listing url is refused: {authority} is not ECR's API "
                                "(https://api.ecr.REGION.amazonaws.com) nor in allowedHosts, so AWS credentials "
                                "are not signed for it")
        region = ecr_region(self.listing, self.registry.url)
        if region is None:
            raise RegistryError(name, None, "open", f"the AWS region to sign for cannot be told from {authority}: "
                                "give spec.listing.region")
        self.region = region
        base = self._transport.base
        match = ECR_REGISTRY_HOST.match(base.host) if base.scheme == "https" else None
        self.registry_id: str | None = match["account"] if match is not None else None

    def _credential_refs(self) -> str:
        """The secret references of spec.listing.credentials, by what they name: what to check."""
        keys = self.listing.credentials
        if keys is None:
            return "spec.listing.credentials"
        key_id = keys.access_key_id
        named = [f"accessKeyId {key_id.describe() if isinstance(key_id, SecretRef) else '(as written)'}",
                 f"secretAccessKey {keys.secret_access_key.describe()}"]
        if keys.session_token is not None:
            named.append(f"sessionToken {keys.session_token.describe()}")
        return f"spec.listing.credentials ({', '.join(named)})"

    def _aws_credentials(self) -> sigv4.AWSCredentials:
        """The IAM credentials, resolved at first use (a reference that fails fails every time)."""
        with self._aws_lock:
            if self._aws is not None:
                return self._aws
            keys = self.listing.credentials
            if keys is None or self._resolver is None:
                raise RegistryError(self.registry.name, None, "sign a request",
                                    "no AWS credentials to sign DescribeImages with")
            purpose = f"Registry/{self.registry.name} spec.listing.credentials"
            key_id = keys.access_key_id
            plain_id = self._resolver.resolve(key_id, purpose=f"{purpose}.accessKeyId").reveal() \
                if isinstance(key_id, SecretRef) else key_id
            secret = self._resolver.resolve(keys.secret_access_key, purpose=f"{purpose}.secretAccessKey")
            token = self._resolver.resolve(keys.session_token, purpose=f"{purpose}.sessionToken") \
                if keys.session_token is not None else None
            self._aws = sigv4.AWSCredentials(plain_id, secret, token)
            return self._aws

    def _ecr_entries(self, operation: str, repository: str) -> Iterator[Entry]:
        api = self.api
        assert isinstance(api, ECRAPI)
        target = self.url + "/"
        host = parse_url(target).authority
        token: str | None = None
        seen: set[str] = set()
        pages = self._transport.limits.max_pages
        for _ in range(pages):
            data = api.body(repository, self.registry_id, token)
            response = self._ecr_request(target, host, data, operation, repository)
            try:
                body = json.loads(response.content)
            except (ValueError, RecursionError):
                raise RegistryError(self.registry.name, repository, operation, "the response is not JSON") from None
            try:
                entries, token = api.page(body)
            except ValueError as exc:
                raise RegistryError(self.registry.name, repository, operation, str(exc)) from None
            yield from entries
            if token is None:
                return
            if token in seen:
                raise RegistryError(self.registry.name, repository, operation, "pagination links loop (a nextToken "
                                    "came back)")
            seen.add(token)
        raise RegistryError(self.registry.name, repository, operation,
                            f"more than {pages} pages (the limit limits.maxPages); the pagination links may loop")

    def _ecr_request(self, target: str, host: str, data: bytes, operation: str,
                     repository: str) -> requests.Response:
        """One page: signed afresh for every attempt; a ThrottlingException (HTTP 400) retried as
        the transport retries a 429 (the requests in flight halved, backoff within spec.retry)."""
        policy = self._transport.retry
        waited = 0.0
        credentials = self._aws_credentials()
        for attempt in range(policy.attempts):
            headers = sigv4.sign("POST", target, {"Host": host, "Content-Type": ECRAPI.content_type,
                                                  "X-Amz-Target": ECRAPI.target},
                                 data, credentials, self.region, "ecr")
            response = self._transport.request("POST", target, operation=operation, repository=repository,
                                               headers=headers, data=data, expect=(200, 400, 401, 403), body="page",
                                               authorizer=self._authorizer)
            response.close()
            if response.status_code == 200:
                return response
            kind = ecr_error_type(response)
            if kind in ECR_THROTTLED:
                self._transport.concurrency.answered(429)  # as a 429: fewer requests in flight
                failure = f"throttled by ECR ({kind}, HTTP {response.status_code})"
                if attempt + 1 == policy.attempts:
                    failure += f"; gave up after {policy.attempts} attempts ({waited:.1f}s of backoff)"
                    break
                delay = policy.backoff(attempt)
                if waited + delay > policy.budget:
                    failure += f"; gave up after {attempt + 1} attempts, retry budget of {policy.budget:g}s spent"
                    break
                log.debug("registry %s: %s %s: %s; retrying in %.2fs", self.registry.name, operation, repository,
                          failure, delay)
                time.sleep(delay)
                waited += delay
                continue
            raise self._ecr_failure(response.status_code, kind, operation, repository)
        raise RegistryError(self.registry.name, repository, operation, failure, 429, retryable=True)

    def _ecr_failure(self, status: int, kind: str | None, operation: str, repository: str) -> Exception:
        name = self.registry.name
        shown = f"{kind}, HTTP {status}" if kind else f"HTTP {status}"
        if kind in ECR_NOT_FOUND:
            return _NoRepository()
        if kind in ECR_AUTHENTICATION or (kind is None and status in (401, 403)):
            return RegistryError(name, repository, operation, f"authentication failed for ECR's API ({shown}): AWS "
                                 "refused the request's signature or access key; check the secret references "
                                 f"{self._credential_refs()} (and this machine's clock)", 401)
        if kind in ECR_DENIED:
            return RegistryError(name, repository, operation, f"access denied ({shown}): the IAM identity of "
                                 f"{self._credential_refs()} may not ecr:DescribeImages on this repository", 403)
        return RegistryError(name, repository, operation, f"ECR answered {shown}", status)

    # -- paged GETs -----------------------------------------------------------------------------------
    def _entries(self, first: str, operation: str, repository: str) -> Iterator[Entry]:
        api = self.api
        assert not isinstance(api, ECRAPI)
        target = first
        params: dict[str, str] | None = api.params()
        seen = {self._transport.url(first)}
        pages = self._transport.limits.max_pages
        for number in range(1, pages + 1):
            response = self._transport.request("GET", target, operation=operation, repository=repository,
                                               scopes=(f"repository:{repository}:pull",),
                                               headers={"Accept": "application/json"}, params=params,
                                               body="page", authorizer=self._authorizer)
            response.close()
            try:
                body = json.loads(response.content)
            except (ValueError, RecursionError):
                raise RegistryError(self.registry.name, repository, operation, "the response is not JSON") from None
            try:
                page = api.page(body, response, number)
            except ValueError as exc:
                raise RegistryError(self.registry.name, repository, operation, str(exc)) from None
            yield from page.entries
            if page.following is None or not page.entries:
                return
            target = self._transport.url(page.following, response.url, what=(operation, repository),
                                         origin="pagination link")
            params = None
            if target in seen:
                raise RegistryError(self.registry.name, repository, operation, "pagination links loop")
            seen.add(target)
        raise RegistryError(self.registry.name, repository, operation,
                            f"more than {pages} pages (the limit limits.maxPages); the pagination links may loop")


def _shown(value: object) -> str:
    text = repr(value) if isinstance(value, str) else f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "...'"
