"""Sending notifications: apprise URLs, and a signed CloudEvents webhook.

Nothing here raises on a failed delivery: each send returns a :class:`Sent` saying what happened,
in words that hold no URL, token or key (a failed notification must never fail the run, and its
reason goes to the audit trail).

The webhook is a CloudEvents 1.0 event in structured JSON mode (``Content-Type:
application/cloudevents+json``), POSTed with the header ``X-Reconcile-Signature: sha256=HEX``, HEX
the lowercase hex HMAC-SHA256 of the exact body bytes keyed with the webhook's secret. A receiver
verifies it over the raw body before parsing, with a constant-time comparison. Redirects are not
followed (a 3xx is a failure); connection errors, timeouts, 408, 429 and 5xx are retried with
exponential backoff, up to the configured attempts, each with its own timeout.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import requests
from cloudevents.core.bindings.http import to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from reconcile.policy.secrets import Secret, redact

__all__ = ["EVENT_TYPE", "SIGNATURE_HEADER", "Sent", "cloud_event", "send_apprise", "send_webhook", "sign"]

EVENT_TYPE = "dev.reconcile.run.finished"
SIGNATURE_HEADER = "X-Reconcile-Signature"
_RETRIED_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_MAX_DETAIL = 500
BACKOFF_SECONDS = 1.0  # before the second attempt; doubled before each one after


@dataclass(frozen=True)
class Sent:
    """The fate of one delivery: ``ok``, and what to record (never a URL's secret part)."""

    ok: bool
    detail: str
    attempts: int = 1


# --- apprise ----------------------------------------------------------------------------------


class _Capture(logging.Handler):
    """Keeps apprise's warnings and errors (why a send failed), for the caller to scrub."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(record.getMessage())
        except Exception:  # a record whose arguments do not format: say nothing of them
            self.messages.append(str(record.msg))


@contextmanager
def _apprise_logging() -> Iterator[_Capture]:
    """apprise's logger for one send: only warnings and errors, to our capture only (never to the
    process's handlers: apprise logs the URLs it loads and the hosts and paths it posts to)."""
    logger = logging.getLogger("apprise")
    saved = (logger.level, logger.propagate, list(logger.handlers))
    capture = _Capture()
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    for handler in saved[2]:
        logger.removeHandler(handler)
    logger.addHandler(capture)
    try:
        yield capture
    finally:
        logger.removeHandler(capture)
        for handler in saved[2]:
            logger.addHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _url_parts(url: str) -> set[str]:
    """Every part of ``url`` that may be (or hold) a token: user, password, host (slack:// puts a
    token there), each path segment and each query value; percent-decoded and as written."""
    parts = urlsplit(url)
    found = {parts.netloc, parts.path, parts.query, parts.fragment}
    found |= {parts.username or "", parts.password or "", parts.hostname or ""}
    found |= set(parts.path.split("/")) | set(parts.netloc.replace("@", ":").split(":"))
    found |= {value for _, value in parse_qsl(parts.query, keep_blank_values=True)}
    found |= {unquote(p) for p in found}
    return {p for p in found if len(p) >= 3}


def scrub(text: str, url: str) -> str:
    """``text`` with ``url`` and every part of it masked (and every secret the process knows)."""
    for part in sorted(_url_parts(url) | {url}, key=len, reverse=True):
        text = text.replace(part, "***")
    return redact(text)


def _detail(messages: list[str], url: str, fallback: str) -> str:
    shown = "; ".join(dict.fromkeys(m.strip() for m in messages if m.strip())) or fallback
    shown = scrub(shown, url)
    return shown if len(shown) <= _MAX_DETAIL else shown[:_MAX_DETAIL - 1] + "…"


def send_apprise(url: Secret, title: str, body: str) -> Sent:
    """Notify the apprise target ``url`` (a Secret: it holds tokens). Failures are returned."""
    import apprise  # loaded on use: it registers its ~200 plugins on import

    revealed = url.reveal()
    scheme = revealed.partition("://")[0] if "://" in revealed else ""
    shown_scheme = scheme if re.fullmatch(r"[a-z][a-z0-9+.-]{0,20}", scheme) else "?"
    with _apprise_logging() as capture:
        try:
            target = apprise.Apprise()
            if not target.add(revealed):
                return Sent(False, _detail(capture.messages, revealed,
                                           f"not an apprise URL apprise can use ({shown_scheme}://…)"))
            if target.notify(title=title, body=body):
                return Sent(True, f"sent ({shown_scheme}://…)")
            return Sent(False, _detail(capture.messages, revealed, f"apprise could not send ({shown_scheme}://…)"))
        except Exception as e:  # apprise is not to raise; if it does, the type alone (its message may hold the URL)
            return Sent(False, _detail(capture.messages, revealed, f"apprise failed ({type(e).__name__})"))


# --- the webhook ------------------------------------------------------------------------------


def cloud_event(data: Mapping[str, Any], *, event_id: str, source: str, at: datetime) -> bytes:
    """The CloudEvents 1.0 structured JSON body for ``data`` (a run summary)."""
    event = CloudEvent(attributes={"type": EVENT_TYPE, "source": source, "id": event_id, "time": at,
                                   "specversion": "1.0", "datacontenttype": "application/json"},
                       data=dict(data))
    return to_structured(event, JSONFormat()).body


def sign(key: Secret, body: bytes) -> str:
    """The ``X-Reconcile-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(key.reveal().encode(), body, hashlib.sha256).hexdigest()


def _shown(url: str | Secret) -> str:
    """A webhook URL as it may be recorded: by scheme and host only when plain; not at all by reference."""
    if isinstance(url, Secret):
        return "the webhook URL"
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}/…"


def send_webhook(url: str | Secret, key: Secret, body: bytes, *, attempts: int = 3, timeout: float = 10.0,
                 backoff: float | None = None, sleep: Callable[[float], None] = time.sleep) -> Sent:
    """POST ``body`` (a CloudEvent from :func:`cloud_event`) to ``url``, signed with ``key``;
    retried with backoff (``backoff``, default BACKOFF_SECONDS, then twice that...). Failures are returned."""
    backoff = BACKOFF_SECONDS if backoff is None else backoff
    target = url.reveal() if isinstance(url, Secret) else url
    shown = _shown(url)
    headers = {"Content-Type": JSONFormat.CONTENT_TYPE, SIGNATURE_HEADER: sign(key, body),
               "User-Agent": "reconcile-notify"}
    why = ""
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            sleep(backoff * 2 ** (attempt - 2))
        try:
            with requests.Session() as session:
                session.trust_env = False  # no proxy or netrc credentials from the environment
                response = session.post(target, data=body, headers=headers, timeout=timeout, allow_redirects=False,
                                        stream=True)  # the answer's body is never read
                status = response.status_code
                response.close()
        except requests.RequestException as e:  # the type only: requests' messages quote the URL
            why = f"{type(e).__name__}"
            continue
        if 200 <= status < 300:
            return Sent(True, f"delivered to {shown} (HTTP {status})", attempt)
        why = f"HTTP {status}" + (" (a redirect, not followed)" if 300 <= status < 400 else "")
        if status not in _RETRIED_STATUSES:
            return Sent(False, f"{shown} answered {why}; not retried", attempt)
    return Sent(False, f"{shown}: {why} after {attempts} attempt{'s' if attempts != 1 else ''}", attempts)
