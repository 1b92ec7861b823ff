"""The forge adapter: one comment per pull request (GitHub) or merge request (GitLab), created once
and then updated in place, found by a hidden marker ``<!-- reconcile-plan:KEY -->`` on its first
line, so that a plan posted on every push leaves one comment, not one per push.

    client = GitHubClient("https://api.github.com", "owner/repo", 12, Secret(token))
    posted = upsert_comment(client, "plan", markdown)

Only the REST endpoints a comment needs are used — GitHub: ``GET /user``, ``GET``/``POST
/repos/{owner}/{repo}/issues/{n}/comments``, ``PATCH /repos/{owner}/{repo}/issues/comments/{id}``;
GitLab: ``GET /user``, ``GET``/``POST /projects/{id}/merge_requests/{iid}/notes``, ``PUT
/projects/{id}/merge_requests/{iid}/notes/{note_id}``.

Leak-proofing: the token is kept in a :class:`Secret` and revealed only into the ``Authorization``
(GitHub) or ``PRIVATE-TOKEN`` (GitLab) header of a request to the configured API origin (a
pagination link elsewhere is refused, redirects are never followed, plain ``http`` only to
loopback). Errors are one line with the operation and the HTTP status, never a response body (a
server may echo a header) and never the text of a ``requests`` exception.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar, Literal, Protocol
from urllib.parse import quote

import requests

from reconcile import __version__
from reconcile.policy.secrets import Secret, redact
from reconcile.policy.urls import URL, URLError, parse_url

__all__ = [
    "GITHUB_BODY_LIMIT",
    "GITLAB_BODY_LIMIT",
    "Comment",
    "ForgeClient",
    "ForgeError",
    "GitHubClient",
    "GitLabClient",
    "Posted",
    "fit",
    "marker",
    "upsert_comment",
]

TIMEOUT = (10.0, 30.0)  # seconds: to connect, and between bytes of the answer
MAX_RESPONSE_BYTES = 32 * 1024 * 1024  # a page of 100 comments of up to 65,536 characters each
MAX_PAGES = 100  # 10,000 comments: beyond that, something is wrong
GITHUB_BODY_LIMIT = 65_536  # characters GitHub accepts in a comment
GITLAB_BODY_LIMIT = 1_000_000  # characters GitLab accepts in a note
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_LOOPBACK_NAMES = {"localhost"}


class ForgeError(Exception):
    """A forge request failed or was refused; ``str()`` is one line, without token or body."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(redact(" ".join(message.split())))


@dataclass(frozen=True)
class Comment:
    id: int
    body: str
    author: str | None  # GitHub's user.login, GitLab's author.username
    author_id: int | None
    url: str | None = None  # GitHub's html_url


@dataclass(frozen=True)
class Posted:
    action: Literal["created", "updated", "unchanged"]
    comment: Comment
    warning: str | None = None  # the comment was posted as another user than assumed


class ForgeClient(Protocol):
    where: str  # "owner/repo#12", "group/project!7": for messages
    body_limit: int

    def current_user(self) -> tuple[str, int] | None: ...
    def comments(self) -> Iterator[Comment]: ...
    def create(self, body: str) -> Comment: ...
    def update(self, comment_id: int, body: str) -> Comment: ...
    def close(self) -> None: ...


def marker(key: str) -> str:
    """The hidden first line of the comment for ``key`` (letters, digits, ``.``, ``_``, ``-``)."""
    if not _KEY.fullmatch(key):
        raise ForgeError(f"invalid comment key {key[:70]!r}: 1 to 64 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit")
    return f"<!-- reconcile-plan:{key} -->"


def upsert_comment(client: ForgeClient, key: str, markdown: str, *, author: str | None = None,
                   fallback_author: str | None = None) -> Posted:
    """Create the comment for ``key``, or update the one already there (``unchanged`` when it
    already says ``markdown``).

    A comment is ours when its first line is the marker *and* its author is the token's user
    (``author`` when given, else ``GET /user``, else ``fallback_author``): a comment someone else
    wrote with the marker is never edited, as it could be edited back later to show another plan.
    Several of ours (a race between two jobs): the oldest is updated.
    """
    head = marker(key)
    body = f"{head}\n{fit(markdown, client.body_limit - len(head) - 1, client.body_limit)}"
    if author is None:
        me: tuple[str, int | None] | None = client.current_user()
        if me is None and fallback_author:
            me = (fallback_author, None)
        if me is None:
            raise ForgeError(f"{client.where}: cannot tell which user the token belongs to (GET /user is not "
                             "allowed for it): pass --author LOGIN, the user or bot its comments are posted as")
        login, user_id = me
    else:
        login, user_id = author, None
    for comment in client.comments():
        if not _is_marked(comment.body, head):
            continue
        if user_id is not None and comment.author_id is not None:
            ours = comment.author_id == user_id
        else:
            ours = (comment.author or "").lower() == login.lower()
        if not ours:
            continue
        if comment.body.replace("\r\n", "\n") == body:
            return Posted("unchanged", comment)
        return Posted("updated", client.update(comment.id, body))
    made = client.create(body)
    if author is None and user_id is None and made.author and made.author.lower() != login.lower():
        # The assumed author was wrong (a GitHub App's token): every run would add a comment.
        return Posted("created", made, f"the token posts as {made.author}, not {login}: pass --author "
                                       f"{made.author} so that later runs update this comment")
    return Posted("created", made)


_CUT = ("… cut to fit the forge's limit of {limit} characters per comment: the whole plan is in its "
        "JSON (`plan --out`)\n")
_OPEN = re.compile(r"<details\b", re.I)
_CLOSE = re.compile(r"</details\s*>", re.I)
_FENCE = re.compile(r"^\s*```", re.M)


def fit(markdown: str, room: int, limit: int | None = None) -> str:
    """``markdown`` if it fits in ``room`` characters, else cut at a line end with a closing note,
    open ``<details>`` sections and code fences closed (``plan``'s default ``--markdown-limit``
    is GitHub's whole limit, which leaves no room for the marker line)."""
    if len(markdown) <= room:
        return markdown
    reserve = len(_CUT) + 40
    while reserve < room:
        keep = markdown[:room - reserve]
        keep = keep[:keep.rfind("\n") + 1] if "\n" in keep else keep
        tail = "```\n" if len(_FENCE.findall(keep)) % 2 else ""
        tail += "</details>\n" * max(0, len(_OPEN.findall(keep)) - len(_CLOSE.findall(keep)))
        cut = f"{keep}{tail}\n{_CUT.format(limit=limit or room)}"
        if len(cut) <= room:
            return cut
        reserve += len(cut) - room + 1
    raise ForgeError(f"a comment of {room} characters cannot hold even a cut plan")


def _is_marked(body: str, head: str) -> bool:
    first, _, _ = body.partition("\n")
    return first.rstrip("\r").strip() == head


def api_url(text: str, what: str) -> URL:
    """``text`` as an API base URL: https, or http to a loopback address (tests, a local proxy)."""
    try:
        url = parse_url(text)
    except URLError as e:
        raise ForgeError(f"{what} is not a usable URL: {e}") from None
    if url.query:
        raise ForgeError(f"{what} has a query string")
    if url.scheme == "http" and not _is_loopback(url.host):
        raise ForgeError(f"{what} is plain http:// to a host that is not loopback: the token would travel in "
                         "clear; use https://")
    return url


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Http:
    """Requests to one API origin, with the token header on each and nothing followed elsewhere."""

    forge = "forge"

    def __init__(self, base: str, what: str, token: Secret, header: str, scheme: str = "") -> None:
        if not isinstance(token, Secret):
            raise TypeError("the token is a Secret")
        self._base = api_url(base, what)
        self._token = token
        self._header = header
        self._scheme = scheme
        self._session = requests.Session()
        # Proxies and CA bundles from the environment, but never ~/.netrc credentials: the token
        # header is the only credential sent.
        self._session.trust_env = True
        self._session.auth = _no_netrc
        self._session.headers["User-Agent"] = f"reconcile/{__version__}"

    def close(self) -> None:
        self._session.close()

    def _url(self, path: str) -> str:
        return str(self._base).rstrip("/") + path

    def _request(self, method: str, url: str, operation: str, *, payload: Mapping[str, Any] | None = None,
                 ok: tuple[int, ...] = (200,)) -> tuple[int, Any, requests.Response | None]:
        """``(status, parsed JSON or None, response)``; a status outside ``ok`` (or 403/404 when
        asked for by the caller through ``ok``) is a :class:`ForgeError`."""
        target = parse_url(url)
        if target.origin != self._base.origin:  # a Link to another host: never send it the token
            raise ForgeError(f"{self.forge}: {operation}: the API pointed to another host; refused")
        headers = {self._header: self._scheme + self._token.reveal(), "Accept": self._accept}
        headers.update(self._extra_headers)
        try:
            response = self._session.request(method, url, headers=headers, json=payload, timeout=TIMEOUT,
                                             allow_redirects=False, stream=True)
        except requests.Timeout:
            raise ForgeError(f"{self.forge}: {operation}: no answer from {self._base.authority} within "
                             f"{TIMEOUT[1]:.0f} s") from None
        except requests.RequestException as e:
            raise ForgeError(f"{self.forge}: {operation}: cannot reach {self._base.authority} "
                             f"({type(e).__name__})") from None
        with response:
            status = response.status_code
            if status not in ok:
                raise ForgeError(f"{self.forge}: {operation}: HTTP {status} {_reason(status)}{self._hint(status)}",
                                 status)
            data = _read_json(response, self.forge, operation)
        return status, data, response

    _accept = "application/json"
    _extra_headers: ClassVar[Mapping[str, str]] = {}

    def _hint(self, status: int) -> str:
        return ""

    def _pages(self, url: str, operation: str) -> Iterator[Any]:
        """Each item of each page, following ``Link: <…>; rel="next"``."""
        for _ in range(MAX_PAGES):
            _, data, response = self._request("GET", url, operation)
            if not isinstance(data, list):
                raise ForgeError(f"{self.forge}: {operation}: the answer is not a list")
            yield from data
            following = response.links.get("next", {}).get("url") if response is not None else None
            if not following:
                return
            try:
                url = str(parse_url(following, self._base))
            except URLError:
                raise ForgeError(f"{self.forge}: {operation}: an unusable next-page link") from None
        raise ForgeError(f"{self.forge}: {operation}: more than {MAX_PAGES} pages")


def _no_netrc(request: requests.PreparedRequest) -> requests.PreparedRequest:
    return request  # an auth that adds nothing, so requests does not read ~/.netrc


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _read_json(response: requests.Response, forge: str, operation: str) -> Any:
    chunks, size = [], 0
    try:
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise ForgeError(f"{forge}: {operation}: the answer is over {MAX_RESPONSE_BYTES // (1024 * 1024)} MiB")
            chunks.append(chunk)
    except requests.RequestException as e:
        raise ForgeError(f"{forge}: {operation}: the answer broke off ({type(e).__name__})") from None
    raw = b"".join(chunks)
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        problem = ForgeError(f"{forge}: {operation}: the answer is not JSON")
    raise problem  # outside the except block: the decode error quotes the body


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


class GitHubClient(_Http):
    """Issue comments of one pull request (a pull request's conversation is its issue's)."""

    forge = "GitHub"
    body_limit = GITHUB_BODY_LIMIT
    _accept = "application/vnd.github+json"
    _extra_headers: ClassVar[Mapping[str, str]] = {"X-GitHub-Api-Version": "2022-11-28"}

    def __init__(self, api: str, repo: str, number: int, token: Secret) -> None:
        owner, slash, name = repo.partition("/")
        if not slash or not owner or not name or "/" in name:
            raise ForgeError(f"GitHub repository {repo[:100]!r} is not OWNER/NAME")
        super().__init__(api, "the GitHub API URL", token, "Authorization", "Bearer ")
        self.where = f"{repo}#{number}"
        self._repo = f"{quote(owner, safe='')}/{quote(name, safe='')}"
        self._number = number

    def _hint(self, status: int) -> str:
        return {401: " (the token was refused: check GITHUB_TOKEN)",
                403: " (the token may not do this: the job needs permissions: pull-requests: write)",
                404: f" (no pull request {self.where}, or the token cannot see it)"}.get(status, "")

    def current_user(self) -> tuple[str, int] | None:
        # An Actions GITHUB_TOKEN (an installation token) may not read /user: 403.
        status, data, _ = self._request("GET", self._url("/user"), "who am I (GET /user)", ok=(200, 403, 404))
        if status != 200 or not isinstance(data, dict):
            return None
        login, user_id = _str(data.get("login")), _int(data.get("id"))
        return (login, user_id) if login and user_id is not None else None

    def comments(self) -> Iterator[Comment]:
        url = self._url(f"/repos/{self._repo}/issues/{self._number}/comments?per_page=100")
        for item in self._pages(url, f"list comments on {self.where}"):
            if isinstance(item, dict):
                comment = self._comment(item)
                if comment is not None:
                    yield comment

    def create(self, body: str) -> Comment:
        _, data, _ = self._request("POST", self._url(f"/repos/{self._repo}/issues/{self._number}/comments"),
                                   f"create a comment on {self.where}", payload={"body": body}, ok=(201, 200))
        return self._answer(data, "create a comment")

    def update(self, comment_id: int, body: str) -> Comment:
        _, data, _ = self._request("PATCH", self._url(f"/repos/{self._repo}/issues/comments/{comment_id}"),
                                   f"update comment {comment_id} on {self.where}", payload={"body": body})
        return self._answer(data, f"update comment {comment_id}")

    def _answer(self, data: Any, operation: str) -> Comment:
        comment = self._comment(data) if isinstance(data, dict) else None
        if comment is None:
            raise ForgeError(f"GitHub: {operation} on {self.where}: the answer is not a comment")
        return comment

    @staticmethod
    def _comment(item: dict[str, Any]) -> Comment | None:
        comment_id = _int(item.get("id"))
        if comment_id is None:
            return None
        user = item.get("user")
        user = user if isinstance(user, dict) else {}
        return Comment(comment_id, _str(item.get("body")) or "", _str(user.get("login")), _int(user.get("id")),
                       _str(item.get("html_url")))


class GitLabClient(_Http):
    """Notes of one merge request; system notes ("added 1 commit") are not comments."""

    forge = "GitLab"
    body_limit = GITLAB_BODY_LIMIT

    def __init__(self, api: str, project: str, iid: int, token: Secret) -> None:
        if not project or project.startswith("/") or project.endswith("/"):
            raise ForgeError(f"GitLab project {project[:100]!r} is not an id or GROUP/PROJECT")
        super().__init__(api, "the GitLab API URL", token, "PRIVATE-TOKEN")
        self.where = f"{project}!{iid}"
        self._mr = f"/projects/{quote(project, safe='')}/merge_requests/{iid}"

    def _hint(self, status: int) -> str:
        return {401: " (the token was refused: check GITLAB_TOKEN, a project access token with scope api)",
                403: " (the token may not do this: a project access token needs the Reporter role or above, "
                     "scope api; CI_JOB_TOKEN cannot post notes)",
                404: f" (no merge request {self.where}, or the token cannot see it)"}.get(status, "")

    def current_user(self) -> tuple[str, int] | None:
        status, data, _ = self._request("GET", self._url("/user"), "who am I (GET /user)", ok=(200, 403, 404))
        if status != 200 or not isinstance(data, dict):
            return None
        username, user_id = _str(data.get("username")), _int(data.get("id"))
        return (username, user_id) if username and user_id is not None else None

    def comments(self) -> Iterator[Comment]:
        url = self._url(f"{self._mr}/notes?per_page=100&sort=asc&order_by=created_at")
        for item in self._pages(url, f"list notes on {self.where}"):
            if isinstance(item, dict) and not item.get("system"):
                comment = self._comment(item)
                if comment is not None:
                    yield comment

    def create(self, body: str) -> Comment:
        _, data, _ = self._request("POST", self._url(f"{self._mr}/notes"), f"create a note on {self.where}",
                                   payload={"body": body}, ok=(201, 200))
        return self._answer(data, "create a note")

    def update(self, comment_id: int, body: str) -> Comment:
        _, data, _ = self._request("PUT", self._url(f"{self._mr}/notes/{comment_id}"),
                                   f"update note {comment_id} on {self.where}", payload={"body": body})
        return self._answer(data, f"update note {comment_id}")

    def _answer(self, data: Any, operation: str) -> Comment:
        comment = self._comment(data) if isinstance(data, dict) else None
        if comment is None:
            raise ForgeError(f"GitLab: {operation} on {self.where}: the answer is not a note")
        return comment

    @staticmethod
    def _comment(item: dict[str, Any]) -> Comment | None:
        note_id = _int(item.get("id"))
        if note_id is None:
            return None
        author = item.get("author")
        author = author if isinstance(author, dict) else {}
        return Comment(note_id, _str(item.get("body")) or "", _str(author.get("username")), _int(author.get("id")))
