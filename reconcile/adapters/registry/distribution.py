"""A client of the OCI Distribution API (and Docker Registry HTTP API v2)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from reconcile.adapters.registry.auth import Authenticator
from reconcile.adapters.registry.cache import ContentCache
from reconcile.adapters.registry.client import Listed
from reconcile.adapters.registry.content import (
    ACCEPT_MANIFESTS,
    REPOSITORY,
    TAG,
    Manifest,
    check_digest,
    children,
    declares_media_type,
    descriptor,
    digest_of,
    fallback_referrers,
    glob_pattern,
    is_digest,
    is_glob,
    media_type_of,
    referrers_tag,
    verified_chunks,
    verify,
)
from reconcile.adapters.registry.errors import (
    CannotUntag,
    DeletionDisabled,
    DigestMismatch,
    RegistryError,
    declared_manifest_hint,
    declared_no_deletion,
    deletion_disabled_message,
    error_codes,
    refused_untag_hint,
)
from reconcile.adapters.registry.images import load_image
from reconcile.adapters.registry.listing import ListingClient
from reconcile.adapters.registry.transport import TRANSIENT, RetryPolicy, Transport
from reconcile.observe.state import OCI_INDEX, Descriptor, Image
from reconcile.policy.model import Registry
from reconcile.policy.secrets import SecretResolver

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 1000
MAX_NAME = 255  # a repository name with the registry's host, the distribution spec's guidance


def _pull(repository: str) -> tuple[str, ...]:
    return (f"repository:{repository}:pull",)


def _push(repository: str) -> tuple[str, ...]:
    return (f"repository:{repository}:pull,push",)


def _delete(repository: str) -> tuple[str, ...]:
    return (f"repository:{repository}:delete",)


def check_repository(repository: str) -> str:
    if not REPOSITORY.match(repository) or len(repository) > 255:
        raise ValueError(f"not a valid repository name: {repository!r}")
    return repository


def valid_name(name: object, host: str) -> bool:
    """Whether a repository name a registry sent is a valid OCI name (its grammar, at most
    255 characters with the host)."""
    return isinstance(name, str) and REPOSITORY.match(name) is not None and len(host) + 1 + len(name) <= MAX_NAME


def valid_tag(tag: object) -> bool:
    return isinstance(tag, str) and TAG.match(tag) is not None


def _catalog_refused(error: RegistryError) -> bool:
    """The catalog is not offered: 403, 404, 405, an ``UNSUPPORTED`` code, or a 401 with no
    credentials configured or a token without the catalog's scope."""
    return error.status in (401, 403, 404, 405) or (error.status == 400 and "UNSUPPORTED" in error.codes)


def _skipped(registry: str, repository: str | None, operation: str, what: str, invalid: list[object]) -> None:
    """One warning for the names a registry sent that are not valid: never used, never in a path."""
    if not invalid:
        return
    where = f", repository {repository}" if repository else ""
    shown = ", ".join(_shown(v) for v in invalid[:3]) + (", ..." if len(invalid) > 3 else "")
    many = len(invalid) > 1
    log.warning("registry %s%s: %s: skipped %d %s that %s not valid OCI names: %s", registry, where, operation,
                len(invalid), what if many else what.removesuffix("s").replace("repositorie", "repository"),
                "are" if many else "is", shown)


def _shown(value: object) -> str:
    text = repr(value) if isinstance(value, str) else f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "...'"


def check_reference(reference: str) -> str:
    if not (is_digest(reference) or TAG.match(reference)):
        raise ValueError(f"not a valid tag or digest: {reference!r}")
    return reference


def _with_query(url: str, **extra: str) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *extra.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


class _Sized:
    """An iterable body with a known length: requests then sends a Content-Length and streams
    the chunks, instead of buffering or falling back to chunked transfer encoding."""

    def __init__(self, chunks: Iterable[bytes], size: int) -> None:
        self._chunks = chunks
        self._size = size

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)

    def __len__(self) -> int:
        return self._size


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


class DistributionClient:
    """:class:`~reconcile.adapters.registry.client.RegistryClient` over HTTP(S)."""

    def __init__(self, registry: Registry, resolver: SecretResolver | None, *, cache: ContentCache | None = None,
                 retry: RetryPolicy | None = None, page_size: int = DEFAULT_PAGE_SIZE,
                 upload_chunk_size: int | None = None) -> None:
        self.registry = registry
        self.name = registry.name
        self.endpoint = registry.url.rstrip("/")
        self.concurrency = max(registry.concurrency, 1)
        self.deletion = registry.deletion_mode  # declared on the Registry; never probed
        self.page_size = page_size
        # None: each blob is one streamed PUT; else PATCH chunks of this size (registries or
        # proxies that limit request bodies).
        self.upload_chunk_size = upload_chunk_size
        self._transport = Transport(registry, retry)
        self.limits = self._transport.limits
        self._host = self._transport.base.authority
        authenticator = Authenticator(registry, resolver, self._transport)
        self._transport.authorizer = authenticator
        self._listing = ListingClient(registry, registry.listing, self._transport, authenticator, resolver) \
            if registry.listing is not None else None
        self._cache = cache
        self._lock = threading.Lock()
        self._probe_lock = threading.Lock()
        self._referrers_api: bool | None = None  # learnt from the first answer
        # Learnt at apply time from a DELETE's answer, so later ones fail fast with the same error:
        self._untag_refused: str | None = None  # why a tag cannot be deleted alone after all
        self._deletion_disabled: bool = False  # a manifest DELETE answered 405

    def __repr__(self) -> str:
        return f"DistributionClient({self.name!r}, {self.endpoint!r})"

    def close(self) -> None:
        self._transport.close()

    def requests_made(self) -> dict[str, int]:
        """Requests sent so far, by method and what they asked for (``GET manifest``, ``HEAD
        manifest``, ``GET blob``, …): pull limits such as Docker Hub's count manifest GETs only."""
        return self._transport.requests_made()

    def begin_phase(self) -> None:
        """A new run phase (observe, apply) begins: ``limits.phaseDeadline`` counts from now."""
        self._transport.begin_phase()

    def _request(self, method: str, target: str, operation: str, repository: str | None,
                 scopes: Sequence[str], *, headers: Mapping[str, str] | None = None,
                 params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
                 data: bytes | Iterable[bytes] | None = None, stream: bool = False,
                 expect: Collection[int] = (200,), body: str | None = None,
                 blob: bool = False) -> requests.Response:
        return self._transport.request(method, target, operation=operation, repository=repository,
                                       scopes=scopes, headers=headers, params=params, data=data, stream=stream,
                                       expect=expect, body=body, blob=blob)

    # -- read ----------------------------------------------------------------------------------
    def ping(self) -> None:
        self._request("GET", "/v2/", "ping", None, ()).close()

    def repositories(self, patterns: Sequence[str] = ("**",)) -> list[str]:
        matcher = glob_pattern(patterns)
        try:
            names = list(self._paginate("/v2/_catalog", "repositories", "list repositories", None,
                                        ("registry:catalog:*",)))
        except RegistryError as exc:
            # Credentials refused (by the registry, or a token endpoint) or withheld: that error says
            # what to fix. Anything else the catalog answered is the registry not letting us list it.
            if exc.refusal in ("credentials", "withheld") or not _catalog_refused(exc):
                raise
            refused = exc
        else:
            invalid = [n for n in names if not valid_name(n, self._host)]
            _skipped(self.name, None, "list repositories", "repositories", invalid)
            return sorted({n for n in names if isinstance(n, str) and valid_name(n, self._host) and matcher.match(n)})
        # No catalog (Docker Hub, most cloud registries): names without globs still work.
        if any(is_glob(p) for p in patterns):
            answer = f"HTTP {refused.status}" + (f", {', '.join(refused.codes)}" if refused.codes else "")
            who = {"anonymous": " without credentials", "scope": " to these credentials"}.get(refused.refusal or "", "")
            raise RegistryError(self.name, None, "list repositories",
                                f"the registry does not allow listing the catalog{who} (_catalog answered {answer}): "
                                "list the repositories explicitly, without globs", refused.status)
        return sorted({check_repository(p) for p in patterns})

    def tags(self, repository: str) -> list[str]:
        check_repository(repository)
        try:
            found = list(self._paginate(f"/v2/{repository}/tags/list", "tags", "list tags", repository,
                                        _pull(repository)))
        except RegistryError as exc:
            if exc.status == 404 and exc.message.startswith("not found"):
                return []  # no such repository (yet): nothing tagged
            raise
        _skipped(self.name, repository, "list tags", "tags", [t for t in found if not valid_tag(t)])
        return [t for t in found if isinstance(t, str) and valid_tag(t)]

    def _paginate(self, path: str, key: str, operation: str, repository: str | None,
                  scopes: Sequence[str]) -> Iterator[object]:
        """Items of a paginated list, following ``Link: <...>; rel="next"`` headers, each page read
        to ``limits.listPageBytes``, at most ``limits.maxPages`` pages."""
        target = path
        params: dict[str, str] | None = {"n": str(self.page_size)}
        seen = {self._transport.url(path)}
        pages = self.limits.max_pages
        for _ in range(pages):
            response = self._request("GET", target, operation, repository, scopes, params=params, body="page")
            response.close()
            try:
                body = json.loads(response.content)
            except (ValueError, RecursionError):
                raise RegistryError(self.name, repository, operation, "the response is not JSON") from None
            items = body.get(key) if isinstance(body, dict) else None
            yield from items if isinstance(items, list) else ()  # 2.8 answers "tags": null when all are gone
            following = response.links.get("next", {}).get("url")
            if not following:
                return
            target = self._transport.url(following, response.url, what=(operation, repository),
                                         origin="pagination Link")
            params = None
            if target in seen:
                raise RegistryError(self.name, repository, operation, "pagination links loop")
            seen.add(target)
        raise RegistryError(self.name, repository, operation,
                            f"more than {pages} pages (the limit limits.maxPages); the pagination links may loop")

    def list_tags(self, repository: str) -> Listed | None:
        """Every tag and its digest from the registry's listing API (``spec.listing``), a request
        per page of tags, with the untagged manifests and push times it says (ECR, Harbor; push
        times also from Docker Hub and GitLab); ``None`` without one, or when it answers 404 (then
        each tag is resolved on the Distribution API, which cannot tell untagged manifests or push
        times). A tag mapped to ``None`` had no usable digest there. The digests are unverified:
        the caller fetches (and so verifies) the manifest by digest where it is not cached, and
        deletes are re-verified on the Distribution API."""
        if self._listing is None:
            return None
        return self._listing.tags(check_repository(repository))

    def resolve(self, repository: str, reference: str) -> Descriptor | None:
        check_repository(repository)
        check_reference(reference)
        operation = f"resolve {reference}"
        response = self._request("HEAD", f"/v2/{repository}/manifests/{reference}", operation, repository,
                                 _pull(repository), headers={"Accept": ACCEPT_MANIFESTS}, expect=(200, 404))
        response.close()
        if response.status_code == 404:
            return None
        digest = response.headers.get("Docker-Content-Digest", "")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        size = response.headers.get("Content-Length", "")
        if not is_digest(digest) or not size.isdigit() or not media_type:
            return self.manifest(repository, reference).descriptor  # a registry that says too little
        if is_digest(reference) and digest != reference:
            raise DigestMismatch(self.name, repository, operation, reference, digest)
        return Descriptor(media_type, digest, int(size))

    def resolve_tag(self, repository: str, tag: str, seen: str | None = None) -> Descriptor | None:
        """What ``tag`` points at, in one request: a HEAD when ``seen`` (its digest last time) has
        its manifest cached, else a GET of the manifest, which is verified against the digest the
        registry claims and cached, so reading the image costs no second request. (Docker Hub's
        pull limit counts these GETs, not HEADs.)"""
        if seen is not None and self._cache is not None and self._cache.has(seen):
            return self.resolve(repository, tag)
        try:
            return self.manifest(repository, tag).descriptor
        except RegistryError as exc:
            if exc.status == 404:
                return None
            raise

    def last_seen(self, repository: str) -> dict[str, str]:
        return self._cache.tags(self.endpoint, repository) if self._cache is not None else {}

    def remember(self, repository: str, tags: Mapping[str, Descriptor]) -> None:
        if self._cache is not None:
            self._cache.put_tags(self.endpoint, repository, {tag: d.digest for tag, d in tags.items()})

    def manifest(self, repository: str, reference: str) -> Manifest:
        check_repository(repository)
        check_reference(reference)
        if is_digest(reference) and self._cache is not None:
            cached = self._cache.get(reference)
            if cached is not None:
                return Manifest(reference, media_type_of(cached, None), cached)
        operation = f"get manifest {reference}"
        response = self._request("GET", f"/v2/{repository}/manifests/{reference}", operation, repository,
                                 _pull(repository), headers={"Accept": ACCEPT_MANIFESTS}, body="manifest")
        response.close()
        data = response.content
        claimed = response.headers.get("Docker-Content-Digest", "")
        expected = reference if is_digest(reference) else claimed if is_digest(claimed) else None
        if expected is not None:
            verify(data, expected, self.name, repository, operation)
        if is_digest(reference) and is_digest(claimed) and claimed != reference:
            raise DigestMismatch(self.name, repository, operation, reference, claimed)
        manifest = Manifest(expected or digest_of(data),
                            media_type_of(data, response.headers.get("Content-Type")), data)
        # Only what names its own media type is cached: the Content-Type header is not kept.
        if self._cache is not None and declares_media_type(data):
            self._cache.put(manifest.digest, data)
        return manifest

    def image(self, repository: str, digest: str) -> Image:
        return load_image(self, repository, check_digest(digest), self._cache)

    def referrers(self, repository: str, digest: str,
                  tags: Mapping[str, Descriptor] | None = None) -> tuple[Descriptor, ...]:
        check_repository(repository)
        check_digest(digest)
        if self._referrers_api is None:
            # The first call finds out whether the API exists; concurrent ones wait for it.
            with self._probe_lock:
                found = self._referrers_api_list(repository, digest) if self._referrers_api is not False else None
        elif self._referrers_api:
            found = self._referrers_api_list(repository, digest)
        else:
            found = None
        if found is not None:
            return found
        prefix = referrers_tag(digest)
        if tags is None:
            tags = {}
            for tag in self.tags(repository):
                if tag.startswith(prefix):
                    resolved = self.resolve(repository, tag)
                    if resolved is not None:
                        tags[tag] = resolved
        found_list = fallback_referrers(digest, tags)
        if prefix in tags:  # the OCI 1.1 referrers tag schema: an index of the referrers
            found_list += children(self.manifest(repository, tags[prefix].digest))
        unique = {d.digest: d for d in found_list}
        return tuple(unique.values())

    def _referrers_api_list(self, repository: str, digest: str) -> tuple[Descriptor, ...] | None:
        operation = f"list referrers of {digest}"
        response = self._request("GET", f"/v2/{repository}/referrers/{digest}", operation, repository,
                                 _pull(repository), headers={"Accept": OCI_INDEX}, expect=(200, 400, 404, 405),
                                 stream=True)
        try:
            if response.status_code != 200 or "json" not in response.headers.get("Content-Type", ""):
                self._transport.read(response, "error", operation, repository, truncate=True)
                if not error_codes(response):  # a route the registry does not have, not a missing name
                    self._referrers_api = False
                return None
            body = self._transport.read(response, "manifest", operation, repository)
        finally:
            response.close()
        try:
            document = json.loads(body)
            entries = document.get("manifests") or []
            found = tuple(descriptor(raw) for raw in entries)
        except (ValueError, RecursionError, AttributeError, TypeError):
            raise RegistryError(self.name, repository, operation, "the referrers response is not an index") from None
        self._referrers_api = True
        return found

    # -- blobs ---------------------------------------------------------------------------------
    def has_blob(self, repository: str, digest: str) -> bool:
        check_repository(repository)
        response = self._request("HEAD", f"/v2/{repository}/blobs/{check_digest(digest)}",
                                 f"check blob {digest}", repository, _pull(repository), expect=(200, 404))
        response.close()
        return response.status_code == 200

    @contextmanager
    def open_blob(self, repository: str, digest: str, size: int | None = None) -> Iterator[Iterator[bytes]]:
        check_repository(repository)
        operation = f"get blob {check_digest(digest)}"
        response = self._request("GET", f"/v2/{repository}/blobs/{digest}", operation, repository,
                                 _pull(repository), stream=True, blob=True)
        try:
            yield verified_chunks(self._transport.chunks(response, operation, repository), digest, size,
                                  registry=self.name, repository=repository, operation=operation)
        finally:
            response.close()

    def put_blob(self, repository: str, digest: str, size: int, chunks: Iterable[bytes]) -> None:
        check_repository(repository)
        operation = f"upload blob {check_digest(digest)}"
        checked = verified_chunks(chunks, digest, size, registry=self.name, repository=repository,
                                  operation=operation)
        location = self._start_upload(repository, operation)
        try:
            if self.upload_chunk_size is None:
                self._request("PUT", _with_query(location, digest=digest), operation, repository, _push(repository),
                              headers={"Content-Type": "application/octet-stream"}, data=_Sized(checked, size),
                              expect=(201, 204), blob=True).close()
                return
            offset = 0
            for piece in _rechunk(checked, self.upload_chunk_size):
                response = self._request(
                    "PATCH", location, operation, repository, _push(repository), data=piece,
                    headers={"Content-Type": "application/octet-stream",
                             "Content-Range": f"{offset}-{offset + len(piece) - 1}"}, expect=(202, 204), blob=True)
                response.close()
                location = self._transport.url(response.headers.get("Location", location), response.url,
                                               what=(operation, repository), origin="upload Location")
                offset += len(piece)
            self._request("PUT", _with_query(location, digest=digest), operation, repository, _push(repository),
                          expect=(201, 204), blob=True).close()
        except BaseException:
            self._abandon(location, repository)
            raise

    def _start_upload(self, repository: str, operation: str, *, mount: str | None = None,
                      source: str | None = None) -> str:
        """Open an upload session and return its location; ``""`` when a mount was done."""
        scopes = _push(repository) + (_pull(source) if source else ())
        params = {"mount": mount, "from": source} if mount and source else None
        response = self._request("POST", f"/v2/{repository}/blobs/uploads/", operation, repository, scopes,
                                 params=params, expect=(201, 202))
        response.close()
        location = response.headers.get("Location")
        if response.status_code == 201:
            return ""
        if not location:
            raise RegistryError(self.name, repository, operation, "the registry gave no upload location")
        return self._transport.url(location, response.url, what=(operation, repository), origin="upload Location")

    def _abandon(self, location: str, repository: str) -> None:
        """Cancel an upload session, so no partial blob is left behind (best effort)."""
        try:
            self._request("DELETE", location, "cancel upload", repository, _push(repository),
                          expect=(200, 202, 204, 404)).close()
        except (RegistryError, *TRANSIENT):
            log.debug("registry %s: could not cancel an upload in %s", self.name, repository)

    def mount_blob(self, repository: str, digest: str, source_repository: str) -> bool:
        check_repository(repository)
        check_repository(source_repository)
        location = self._start_upload(repository, f"mount blob {check_digest(digest)} from {source_repository}",
                                      mount=digest, source=source_repository)
        if location:  # 202: the registry opened an upload instead of mounting
            self._abandon(location, repository)
            return False
        return True

    # -- write and delete manifests ------------------------------------------------------------
    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> str:
        check_repository(repository)
        check_reference(reference)
        operation = f"put manifest {reference}"
        response = self._request("PUT", f"/v2/{repository}/manifests/{reference}", operation, repository,
                                 _push(repository), headers={"Content-Type": manifest.media_type},
                                 data=manifest.data, expect=(200, 201, 202))
        response.close()
        if self._cache is not None and declares_media_type(manifest.data):
            self._cache.put(manifest.digest, manifest.data)
        digest = response.headers.get("Docker-Content-Digest", "")
        if is_digest(digest):
            return digest
        stored = self.resolve(repository, reference)
        return stored.digest if stored is not None else ""

    def delete_manifest(self, repository: str, digest: str) -> bool:
        check_repository(repository)
        operation = f"delete manifest {check_digest(digest)}"
        self._may_delete(repository, operation)
        try:
            response = self._request("DELETE", f"/v2/{repository}/manifests/{digest}", operation, repository,
                                     _delete(repository), expect=(200, 202, 204, 404))
        except DeletionDisabled:
            with self._lock:
                self._deletion_disabled = True
            raise
        response.close()
        return response.status_code != 404

    def _may_delete(self, repository: str, operation: str) -> None:
        """Refuse, without a request, what the declaration or an earlier answer already rules out."""
        if self.deletion == "none":
            raise declared_no_deletion(self.name, repository, operation)
        with self._lock:
            disabled = self._deletion_disabled
        if disabled:
            raise DeletionDisabled(self.name, repository, operation, deletion_disabled_message(self.name), 405)

    def can_delete_tags(self, repository: str) -> bool:
        """Whether a tag can be deleted alone, leaving its digest: what the Registry declares
        (``deletion: tag``), unless the registry has refused a tag DELETE since. No request."""
        with self._lock:
            return self.deletion == "tag" and self._untag_refused is None

    def delete_tag(self, repository: str, tag: str) -> None:
        check_repository(repository)
        if not TAG.match(tag):
            raise ValueError(f"not a valid tag: {tag!r}")
        operation = f"delete tag {tag}"
        self._may_delete(repository, operation)
        with self._lock:
            hint = self._untag_refused if self.deletion == "tag" else declared_manifest_hint(self.name)
        if hint is None:
            # OCI 1.1: DELETE of a tag reference removes the tag alone. distribution 2.x answers
            # 400 (DIGEST_INVALID); others 405 or UNSUPPORTED.
            response = self._request("DELETE", f"/v2/{repository}/manifests/{tag}", operation, repository,
                                     _delete(repository), expect=(200, 202, 204, 400, 404, 405))
            response.close()
            status, codes = response.status_code, error_codes(response)
            if status in (200, 202, 204):
                return
            if status == 404:
                if self.resolve(repository, tag) is None:
                    return  # already gone
                hint = refused_untag_hint(self.name, status, codes, still_tagged=True)
            else:
                hint = refused_untag_hint(self.name, status, codes)
            with self._lock:
                self._untag_refused = hint
            log.warning("registry %s: %s; later untags fail without a request", self.name, hint)
        target = self.resolve(repository, tag)
        if target is None:
            return  # already gone
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            names = self.tags(repository)
            resolved = pool.map(lambda t: (t, self.resolve(repository, t)), names)
            same = [t for t, d in resolved if d is not None and d.digest == target.digest]
        raise CannotUntag(self.name, repository, tag, target.digest, same, hint)
