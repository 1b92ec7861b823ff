"""The one parser for every URL reconcile sends a request to: a Registry's ``url``, and what a
registry answers with (``Link`` pagination, ``Location`` redirects and upload sessions,
``WWW-Authenticate`` token realms).

Strict on purpose, so that what is checked is what is connected to: only ``http`` and
``https``; no user information (``user:password@`` would be an inline secret, and
``http://a:1\\@b:2`` is read as one host by one parser and another by the next); no backslash,
whitespace or control character anywhere; a host that is a DNS name, a dotted-quad IPv4 address
or a bracketed IPv6 address, compared after normalisation (lower case, no trailing dot, IPv6
compressed, the scheme's default port made explicit). Reasons never quote the URL: it could hold
a presigned signature, or a newline meant to forge a line of output.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

DEFAULT_PORTS = {"https": 443, "http": 80}
MAX_URL_LENGTH = 8192
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\\]")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_NUMERIC = re.compile(r"(?:[0-9]+|0x[0-9a-f]*)")


class URLError(ValueError):
    """Not a URL reconcile connects to; ``str()`` is the reason, without the URL."""


@dataclass(frozen=True)
class URL:
    """A parsed, validated, absolute http(s) URL; ``host`` normalised, ``port`` always set."""

    scheme: str
    host: str  # lower case, no trailing dot; an IPv6 address without brackets, compressed
    port: int
    path: str
    query: str

    @property
    def authority(self) -> str:
        """``host[:port]`` as written in a URL (the port only when not the scheme's default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port

    def __str__(self) -> str:
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{self.authority}{self.path or '/'}{query}"


def parse_url(text: object, base: URL | str | None = None) -> URL:
    """``text`` as an absolute URL (resolved against ``base`` when relative); :class:`URLError`
    says why it is refused."""
    if not isinstance(text, str) or not text:
        raise URLError("an empty URL")
    if len(text) > MAX_URL_LENGTH:
        raise URLError(f"a URL longer than {MAX_URL_LENGTH} characters")
    if _FORBIDDEN.search(text):
        raise URLError("a URL with a backslash, whitespace or control character")
    if not text.isascii():
        raise URLError("a URL with non-ASCII characters (percent-encode them, or use the punycode host)")
    if base is not None and not re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", text):
        text = urljoin(str(base), text)
    try:
        parts = urlsplit(text)
    except ValueError:
        raise URLError("an unparsable URL") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise URLError("not an http:// or https:// URL")
    host, port = _authority(parts.netloc, scheme)
    return URL(scheme, host, port, parts.path, parts.query)


def _authority(netloc: str, scheme: str) -> tuple[str, int]:
    if "@" in netloc:
        raise URLError("a URL with user information (user:password@): credentials go in spec.credentials, "
                       "as secret references")
    if netloc.startswith("["):
        literal, bracket, rest = netloc[1:].partition("]")
        if not bracket:
            raise URLError("an invalid IPv6 address (no closing bracket)")
        try:
            address = ipaddress.IPv6Address(literal)
        except ValueError:
            raise URLError("an invalid IPv6 address") from None
        if address.scope_id:
            raise URLError("an IPv6 address with a zone")  # it names an interface, not a host
        if rest and not rest.startswith(":"):
            raise URLError("an invalid host")
        host, port_text = address.compressed, rest[1:] if rest else None
    else:
        name, colon, after = netloc.partition(":")
        if "[" in name or "]" in name:
            raise URLError("an invalid host")
        host, port_text = _host(name), after if colon else None
    if port_text is None:
        return host, DEFAULT_PORTS[scheme]
    if not re.fullmatch(r"[0-9]{1,5}", port_text) or not 0 < int(port_text) < 65536:
        raise URLError("an invalid port")
    return host, int(port_text)


def _host(raw: str) -> str:
    host = raw.lower().removesuffix(".")
    if not host:
        raise URLError("a URL without a host")
    if len(host) > 253:
        raise URLError("a host name longer than 253 characters")
    labels = host.split(".")
    if _NUMERIC.fullmatch(labels[-1]):
        # A resolver reads 127.1, 0x7f.0.0.1 or 010.0.0.1 as addresses; only the plain form is
        # accepted, so that the host compared is the host connected to.
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise URLError("an invalid IPv4 address (only the dotted-quad form is accepted)") from None
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise URLError("an invalid host name")
    return host


def parse_host(entry: str, scheme: str) -> tuple[str, int]:
    """An ``allowedHosts`` entry (``HOST`` or ``HOST:PORT``) as a normalised (host, port); a
    ``HOST`` alone means the default port of ``scheme``."""
    if _FORBIDDEN.search(entry) or "/" in entry or not entry.isascii():
        raise URLError("an invalid host")
    return _authority(entry, scheme)


def may_receive_credentials(url: URL | str, allowed_hosts: Iterable[str], registry_url: str) -> bool:
    """Whether a request to ``url`` may carry the credentials of the registry at
    ``registry_url``: its exact normalised host and port is one of ``allowed_hosts``, and it is
    not plain http when the registry is https. Anything unparsable gets none."""
    try:
        target = url if isinstance(url, URL) else parse_url(url)
        own = parse_url(registry_url)
    except URLError:
        return False
    if own.scheme == "https" and target.scheme != "https":
        return False
    for entry in allowed_hosts:
        try:
            if parse_host(entry, target.scheme) == (target.host, target.port):
                return True
        except URLError:
            continue
    return False


def registry_url_problem(url: str) -> str | None:
    """Why a Registry's ``spec.url`` is refused, or ``None``; ``oci-layout:`` paths are not URLs."""
    if url.startswith("oci-layout:"):
        return None
    try:
        parsed = parse_url(url)
    except URLError as exc:
        return f"not a valid registry url: {exc}"
    if parsed.path not in ("", "/") or parsed.query or "#" in url or url.endswith("?"):
        return "a registry url is https://HOST[:PORT] alone, without a path, query or fragment"
    return None
