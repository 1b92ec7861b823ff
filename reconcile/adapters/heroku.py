"""The Heroku Platform API, for a DeployPolicy ``heroku`` target: release an image, read what runs.

Releasing a container image is ``PATCH {api}/apps/{app}/formation`` with
``{"updates": [{"type": PROCESS, "docker_image": IMAGE_ID}]}`` and the docker-releases variant
``Accept: application/vnd.heroku+json; version=3.docker-releases`` (as ``heroku container:release``
does). The IMAGE_ID is the image's *config* digest (``docker inspect --format {{.Id}}``), not the
manifest digest the planner pins: :func:`image_id` reads it from the manifest in the registry
(``registry.heroku.com/<app>/<process>``, the stage's repository) at apply time.

What a process runs now is ``GET {api}/apps/{app}/formation/{process}`` (same variant): its
``docker_image`` (a string or ``{"id": …}``), or None when the app never had an image released.
The PATCH body, headers and the image ID are as Heroku's docs and CLI (``heroku container:release``)
show; that the formation GET reports ``docker_image`` is not confirmed by the docs at hand: a
formation without it reads as "nothing known" (the stage's image is then released again).

The token goes only to the configured api host (requests never follow redirects), in the
``Authorization: Bearer`` header; it is never in a message. Every request has a timeout and a
bounded response body; an error is one line: status, Heroku's ``id`` and ``message``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from reconcile.policy.secrets import Secret, redact

MEDIA_TYPE = "application/vnd.heroku+json; version=3.docker-releases"
MAX_BODY = 1 << 20  # a formation is a few hundred bytes
MAX_MESSAGE = 300
DEFAULT_TIMEOUT = 15.0

__all__ = ["HerokuClient", "HerokuError", "image_id"]


class HerokuError(Exception):
    """A Platform API request that failed; ``str()`` is one line, without the token."""

    def __init__(self, app: str, operation: str, problem: str, status: int | None = None) -> None:
        super().__init__(f"heroku app {app}: {operation}: {problem}")
        self.app, self.operation, self.status = app, operation, status
        self.problem = str(self)


@dataclass
class HerokuClient:
    api: str
    token: Secret
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        parts = urlsplit(self.api)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) base URL: {redact(self.api)!r}")
        self._base = self.api.rstrip("/")
        self._session = requests.Session()
        self._session.trust_env = False  # no proxies or .netrc: the token goes to the api host only

    def release(self, app: str, process: str, image: str) -> dict[str, Any]:
        """Release ``image`` (an image ID, ``sha256:…``) as ``process`` of ``app``; returns the formation."""
        body = {"updates": [{"type": process, "docker_image": image}]}
        found = self._request("PATCH", f"/apps/{quote(app, safe='')}/formation", app, f"release {process}", body)
        return found[0] if isinstance(found, list) and found and isinstance(found[0], dict) else {}

    def current(self, app: str, process: str) -> str | None:
        """The image ID ``process`` of ``app`` runs now, or None (no image released yet)."""
        try:
            found = self._request("GET", f"/apps/{quote(app, safe='')}/formation/{quote(process, safe='')}", app,
                                  f"read formation {process}")
        except HerokuError as e:
            if e.status == 404:  # no such process type yet (a missing app then fails the release, clearly)
                return None
            raise
        image = found.get("docker_image") if isinstance(found, dict) else None
        if isinstance(image, dict):
            image = image.get("id")
        return image if isinstance(image, str) and image else None

    def close(self) -> None:
        self._session.close()

    def _request(self, method: str, path: str, app: str, operation: str, body: Any = None) -> Any:
        headers = {"Accept": MEDIA_TYPE, "Authorization": f"Bearer {self.token.reveal()}",
                   "User-Agent": "reconcile"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        try:
            response = self._session.request(method, self._base + path, data=data, headers=headers,
                                             timeout=self.timeout, allow_redirects=False, stream=True)
            try:
                raw = response.raw.read(MAX_BODY + 1, decode_content=True)
            finally:
                response.close()
        except requests.RequestException as e:
            raise HerokuError(app, operation, f"{type(e).__name__} reaching {urlsplit(self.api).netloc}") from None
        if len(raw) > MAX_BODY:
            raise HerokuError(app, operation, f"response larger than {MAX_BODY} bytes", response.status_code)
        try:
            document = json.loads(raw) if raw else None
        except ValueError:
            document = None
        if response.status_code >= 300:
            raise HerokuError(app, operation, _problem(response.status_code, document), response.status_code)
        if document is None:
            raise HerokuError(app, operation, f"HTTP {response.status_code} without a JSON body",
                              response.status_code)
        return document


def _problem(status: int, document: Any) -> str:
    if isinstance(document, dict):
        ident, message = document.get("id"), document.get("message")
        text = " ".join(str(part) for part in (ident and f"{ident}:", message) if part)
    else:
        text = ""
    text = " ".join(redact(text).split())
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE - 1] + "…"
    return f"HTTP {status}" + (f" {text}" if text else "")


def image_id(client: Any, repository: str, digest: str) -> str:
    """The image ID (config digest) Heroku releases, for the manifest ``digest`` in ``repository``;
    for an index, its linux/amd64 image's (Heroku runs linux/amd64)."""
    manifest = client.manifest(repository, digest)
    document = manifest.json()
    if "manifests" in document:
        for entry in document.get("manifests") or ():
            platform = entry.get("platform") or {} if isinstance(entry, dict) else {}
            if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
                return image_id(client, repository, entry["digest"])
        raise ValueError(f"{repository}@{digest} is an index without a linux/amd64 image; Heroku runs linux/amd64")
    config = document.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("digest"), str):
        raise ValueError(f"{repository}@{digest} is not an image (no config); Heroku releases images")
    return str(config["digest"])
