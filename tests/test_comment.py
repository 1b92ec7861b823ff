"""``reconcile comment`` against local fakes of the GitHub and GitLab REST endpoints it uses: one
comment per pull request and key, however many pushes, and nothing else touched or leaked."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner, Result

from reconcile.cli import cli

GITHUB_TOKEN = "ghs_fakeGitHubToken0123456789"
GITLAB_TOKEN = "glpat-fakeGitLabToken0123456789"
OTHER_TOKEN = "ghp_someoneElsesToken987654321"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Fake:
    """The state of one fake forge: notes by id, users by token, what was asked."""

    kind: str  # github | gitlab
    page_size: int = 2  # small, so that three comments already paginate
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # token -> user
    user_endpoint: bool = True  # False: GET /user is 403, as for an Actions GITHUB_TOKEN
    fail: dict[str, int] = field(default_factory=dict)  # "METHOD" -> status to answer with
    requests: list[Recorded] = field(default_factory=list)
    next_id: int = 1000
    base: str = ""
    link_base: str = ""  # where Link headers point: base unless set

    def add(self, body: str, user: dict[str, Any], **extra: Any) -> int:
        self.next_id += 1
        key = "user" if self.kind == "github" else "author"
        self.comments[self.next_id] = {"id": self.next_id, "body": body, key: user, **extra}
        return self.next_id

    def writes(self) -> list[Recorded]:
        return [r for r in self.requests if r.method != "GET"]


BOT = {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"}
ALICE = {"login": "alice", "id": 7, "type": "User"}
GL_BOT = {"username": "project_42_bot_1", "id": 901}
GL_ALICE = {"username": "alice", "id": 7}


def _handler(fake: Fake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(raw)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body: Any = json.loads(self.rfile.read(length)) if length else None
            fake.requests.append(Recorded(self.command, self.path, dict(self.headers.items()), body))
            if fake.kind == "github":
                supplied = self.headers.get("Authorization", "")
                token = supplied.removeprefix("Bearer ") if supplied.startswith("Bearer ") else None
            else:
                token = self.headers.get("PRIVATE-TOKEN")
            if token not in fake.users:
                # A careless server echoes what it was sent: reconcile must never print it.
                return self._answer(401, {"message": "Bad credentials", "sent": supplied_headers(self)})
            if self.command in fake.fail:
                return self._answer(fake.fail[self.command], {"message": f"broken; you sent {token}"})
            url = urlsplit(self.path)
            route = self._route(url.path)
            if route is None:
                return self._answer(404, {"message": "Not Found"})
            if isinstance(route, str):  # GET /user
                if not fake.user_endpoint:
                    return self._answer(403, {"message": "Resource not accessible by integration"})
                return self._answer(200, fake.users[token])
            name, comment_id = route
            author_key = "user" if fake.kind == "github" else "author"
            if name == "list" and self.command == "GET":
                query = parse_qs(url.query)
                per_page = min(int(query.get("per_page", ["30"])[0]), fake.page_size)
                page = int(query.get("page", ["1"])[0])
                items = [fake.comments[k] for k in sorted(fake.comments)]
                chunk = items[(page - 1) * per_page:page * per_page]
                headers = {}
                if page * per_page < len(items):
                    query["page"] = [str(page + 1)]
                    following = "&".join(f"{k}={v[0]}" for k, v in query.items())
                    headers["Link"] = f'<{fake.link_base or fake.base}{url.path}?{following}>; rel="next"'
                return self._answer(200, chunk, headers)
            if name == "list" and self.command == "POST":
                fake.next_id += 1
                made = {"id": fake.next_id, "body": body["body"], author_key: fake.users[token]}
                if fake.kind == "github":
                    made["html_url"] = f"https://github.example/acme/policies/pull/12#issuecomment-{fake.next_id}"
                fake.comments[fake.next_id] = made
                return self._answer(201, made)
            if name == "one" and self.command in ("PATCH", "PUT"):
                if (self.command == "PATCH") != (fake.kind == "github") or comment_id not in fake.comments:
                    return self._answer(404, {"message": "Not Found"})
                fake.comments[comment_id]["body"] = body["body"]
                return self._answer(200, fake.comments[comment_id])
            return self._answer(405, {"message": "Method Not Allowed"})

        def _route(self, path: str) -> str | tuple[str, int | None] | None:
            if fake.kind == "github":
                if path == "/user":
                    return "user"
                if path == "/repos/acme/policies/issues/12/comments":
                    return "list", None
                match = re.fullmatch(r"/repos/acme/policies/issues/comments/(\d+)", path)
            else:
                if path == "/api/v4/user":
                    return "user"
                mr = r"/api/v4/projects/(?:42|acme%2Fpolicies)/merge_requests/7/notes"
                if re.fullmatch(mr, path):
                    return "list", None
                match = re.fullmatch(mr + r"/(\d+)", path)
            return ("one", int(match[1])) if match else None

        do_GET = do_POST = do_PATCH = do_PUT = _handle

    return Handler


def supplied_headers(handler: BaseHTTPRequestHandler) -> dict[str, str]:
    return dict(handler.headers.items())


@pytest.fixture()
def serve() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start(fake: Fake) -> Fake:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        fake.base = f"http://127.0.0.1:{server.server_address[1]}"
        return fake

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GITHUB_TOKEN", "GH_TOKEN", "GITHUB_API_URL", "GITHUB_REPOSITORY", "GITHUB_EVENT_PATH",
                 "GITHUB_ACTIONS", "GITLAB_CI", "GITLAB_TOKEN", "CI_API_V4_URL", "CI_PROJECT_ID",
                 "CI_MERGE_REQUEST_IID", "CI_JOB_TOKEN", "RECONCILE_COMMENT_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def comment(*args: str, text: str = "", env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["comment", *args], input=text, env=env, catch_exceptions=False)


def github(fake: Fake, token: str = GITHUB_TOKEN, **more: str) -> dict[str, str]:
    return {"GITHUB_TOKEN": token, "GITHUB_API_URL": fake.base, **more}


def gitlab(fake: Fake, token: str = GITLAB_TOKEN, **more: str) -> dict[str, str]:
    return {"GITLAB_TOKEN": token, "CI_API_V4_URL": fake.base + "/api/v4", **more}


def marked(fake: Fake, key: str = "plan") -> list[dict[str, Any]]:
    return [c for c in fake.comments.values() if c["body"].startswith(f"<!-- reconcile-plan:{key} -->\n")]


# GitHub


def test_three_pushes_leave_one_github_comment_with_the_last_plan(serve: Any, tmp_path: Path) -> None:
    fake = serve(Fake("github", users={GITHUB_TOKEN: BOT}, user_endpoint=False))
    untouched = fake.add("LGTM, but see the plan", ALICE)
    for i in (1, 2):  # enough comments by others that the list has pages
        fake.add(f"comment {i}", ALICE)
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"action": "synchronize", "number": 12, "pull_request": {"number": 12}}))
    env = github(fake, GITHUB_ACTIONS="true", GITHUB_REPOSITORY="acme/policies", GITHUB_EVENT_PATH=str(event))
    outputs = []
    for push in (1, 2, 3):
        plan = tmp_path / "plan.md"
        plan.write_text(f"### Plan after push {push}\n\n- delete `ci/app:old-{push}`\n")
        result = comment(str(plan), env=env)
        assert result.exit_code == 0, result.output
        outputs.append(result.output)

    ours = marked(fake)
    assert len(ours) == 1
    assert ours[0]["body"] == "<!-- reconcile-plan:plan -->\n### Plan after push 3\n\n- delete `ci/app:old-3`\n"
    assert fake.comments[untouched]["body"] == "LGTM, but see the plan"
    assert len(fake.comments) == 4
    made = ours[0]["id"]
    assert outputs[0] == f"created comment {made} on acme/policies#12 " \
                         f"https://github.example/acme/policies/pull/12#issuecomment-{made}\n"
    assert outputs[1].startswith(f"updated comment {made} on acme/policies#12")
    assert [(r.method, r.path) for r in fake.writes()] == [
        ("POST", "/repos/acme/policies/issues/12/comments"),
        ("PATCH", f"/repos/acme/policies/issues/comments/{made}"),
        ("PATCH", f"/repos/acme/policies/issues/comments/{made}"),
    ]
    lists = [r for r in fake.requests if r.method == "GET" and "/comments" in r.path]
    assert any("page=2" in r.path for r in lists)  # the Link rel=next was followed
    assert all("per_page=100" in r.path for r in lists)
    for request in fake.requests:
        assert request.headers["Authorization"] == f"Bearer {GITHUB_TOKEN}"
        assert request.headers["Accept"] == "application/vnd.github+json"
        assert request.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert GITHUB_TOKEN not in "".join(outputs)


def test_the_same_plan_again_is_not_an_edit(serve: Any) -> None:
    fake = serve(Fake("github", users={GITHUB_TOKEN: ALICE}))
    for _ in range(2):
        result = comment("--github", "acme/policies#12", "-", text="no changes\n", env=github(fake))
        assert result.exit_code == 0, result.output
    assert result.output.startswith("unchanged comment ")
    assert [r.method for r in fake.writes()] == ["POST"]


def test_a_second_key_gets_its_own_comment(serve: Any) -> None:
    fake = serve(Fake("github", users={GITHUB_TOKEN: ALICE}))
    for push in (1, 2):
        for key in ("prod", "staging"):
            result = comment("--github", "acme/policies#12", "--key", key, text=f"{key} plan {push}\n",
                             env=github(fake))
            assert result.exit_code == 0, result.output
    assert [c["body"] for c in marked(fake, "prod")] == ["<!-- reconcile-plan:prod -->\nprod plan 2\n"]
    assert [c["body"] for c in marked(fake, "staging")] == ["<!-- reconcile-plan:staging -->\nstaging plan 2\n"]
    assert marked(fake) == []
    assert [r.method for r in fake.writes()] == ["POST", "POST", "PATCH", "PATCH"]


def test_never_edits_a_comment_without_the_marker_or_by_someone_else(serve: Any) -> None:
    fake = serve(Fake("github", users={GITHUB_TOKEN: BOT, OTHER_TOKEN: ALICE}, user_endpoint=False))
    quoted = fake.add("> <!-- reconcile-plan:plan -->\n> the old plan\n\nwhy this?", BOT)
    planted = fake.add("<!-- reconcile-plan:plan -->\nno changes (trust me)", ALICE)  # edited back later
    mentioned = fake.add("the <!-- reconcile-plan:plan --> marker is hidden", BOT)
    before = {k: dict(v) for k, v in fake.comments.items()}
    result = comment("--github", "acme/policies#12", text="the real plan\n",
                     env=github(fake, GITHUB_ACTIONS="true"))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("created comment ")
    for kept in (quoted, planted, mentioned):
        assert fake.comments[kept] == before[kept]
    assert [c["user"]["login"] for c in marked(fake)] == ["alice", "github-actions[bot]"]


def test_the_token_user_from_get_user_decides_whose_comment_it_is(serve: Any) -> None:
    fake = serve(Fake("github", users={GITHUB_TOKEN: ALICE, OTHER_TOKEN: BOT}))
    bots = fake.add("<!-- reconcile-plan:plan -->\nby the bot", BOT)
    result = comment("--github", "acme/policies#12", text="by alice\n", env=github(fake))
    assert result.exit_code == 0, result.output
    assert fake.comments[bots]["body"] == "<!-- reconcile-plan:plan -->\nby the bot"
    assert len(marked(fake)) == 2
    assert any(r.path == "/user" for r in fake.requests)


def test_an_app_token_in_actions_is_told_to_name_its_author(serve: Any) -> None:
    app = {"login": "reconcile-app[bot]", "id": 555, "type": "Bot"}
    fake = serve(Fake("github", users={GITHUB_TOKEN: app}, user_endpoint=False))
    result = CliRunner().invoke(cli, ["comment", "--github", "acme/policies#12"], input="plan\n",
                                 env=github(fake, GITHUB_ACTIONS="true"))
    assert result.exit_code == 0, result.output
    assert result.stderr == ("warning: the token posts as reconcile-app[bot], not github-actions[bot]: pass "
                             "--author reconcile-app[bot] so that later runs update this comment\n")
    again = comment("--github", "acme/policies#12", "--author", "reconcile-app[bot]", text="plan 2\n",
                    env=github(fake, GITHUB_ACTIONS="true"))
    assert again.output.startswith("updated comment ")
    assert len(marked(fake)) == 1


def test_without_get_user_or_actions_the_author_must_be_named(serve: Any) -> None:
    fake = serve(Fake("github", users={GITHUB_TOKEN: BOT}, user_endpoint=False))
    result = comment("--github", "acme/policies#12", text="plan\n", env=github(fake))
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: acme/policies#12: cannot tell which user the token belongs to (GET /user is not allowed for "
        "it): pass --author LOGIN, the user or bot its comments are posted as"]
    assert fake.writes() == []
    again = comment("--github", "acme/policies#12", "--author", "github-actions[bot]", text="plan\n",
                    env=github(fake))
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize(("status", "message"), [
    (500, "Error: GitHub: create a comment on acme/policies#12: HTTP 500 Internal Server Error"),
    (502, "Error: GitHub: create a comment on acme/policies#12: HTTP 502 Bad Gateway"),
    (403, "Error: GitHub: create a comment on acme/policies#12: HTTP 403 Forbidden (the token may not do this: "
          "the job needs permissions: pull-requests: write)"),
])
def test_a_failing_write_is_one_line_and_exit_1(serve: Any, status: int, message: str) -> None:
    fake = serve(Fake("github", users={GITHUB_TOKEN: ALICE}, fail={"POST": status}))
    result = comment("--github", "acme/policies#12", text="plan\n", env=github(fake))
    assert result.exit_code == 1
    assert result.output.splitlines() == [message]
    assert GITHUB_TOKEN not in result.output and "broken" not in result.output


def test_a_refused_token_is_one_line_and_never_printed(serve: Any) -> None:
    fake = serve(Fake("github", users={GITHUB_TOKEN: ALICE}))
    result = comment("--github", "acme/policies#12", text="plan\n", env=github(fake, token="ghp_wrongToken42"))
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "Error: GitHub: who am I (GET /user): HTTP 401 Unauthorized (the token was refused: check GITHUB_TOKEN)"]
    assert "wrongToken42" not in result.output


def test_an_unknown_pull_request_is_a_404_line(serve: Any) -> None:
    fake = serve(Fake("github", users={GITHUB_TOKEN: ALICE}))
    result = comment("--github", "acme/policies#13", text="plan\n", env=github(fake))
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "Error: GitHub: list comments on acme/policies#13: HTTP 404 Not Found (no pull request acme/policies#13, "
        "or the token cannot see it)"]


def test_gh_token_works_too_and_a_missing_token_is_named(serve: Any) -> None:
    fake = serve(Fake("github", users={GITHUB_TOKEN: ALICE}))
    result = comment("--github", "acme/policies#12", text="plan\n",
                     env={"GH_TOKEN": GITHUB_TOKEN, "GITHUB_API_URL": fake.base})
    assert result.exit_code == 0, result.output
    missing = comment("--github", "acme/policies#12", text="plan\n", env={"GITHUB_API_URL": fake.base})
    assert missing.exit_code == 1
    assert missing.output.splitlines() == ["Error: no token: set GITHUB_TOKEN or GH_TOKEN"]


def test_a_next_link_to_another_host_is_not_sent_the_token(serve: Any) -> None:
    fake = serve(Fake("github", users={GITHUB_TOKEN: ALICE}))
    elsewhere = serve(Fake("github", users={GITHUB_TOKEN: ALICE}))
    for i in range(3):
        fake.add(f"comment {i}", BOT)
    fake.link_base = elsewhere.base  # the next page is said to be on another server
    result = comment("--github", "acme/policies#12", text="plan\n", env=github(fake))
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "Error: GitHub: list comments on acme/policies#12: the API pointed to another host; refused"]
    assert elsewhere.requests == []


def test_plain_http_to_a_remote_host_is_refused() -> None:
    result = comment("--github", "acme/policies#12", text="plan\n",
                     env={"GITHUB_TOKEN": GITHUB_TOKEN, "GITHUB_API_URL": "http://github.example.com/api/v3"})
    assert result.exit_code == 1
    assert "plain http:// to a host that is not loopback" in result.output


def test_the_input_is_checked_before_anything_is_sent(serve: Any, tmp_path: Path) -> None:
    fake = serve(Fake("github", users={GITHUB_TOKEN: ALICE}))
    empty = comment("--github", "acme/policies#12", text="  \n", env=github(fake))
    assert empty.exit_code == 1 and "nothing to post" in empty.output
    bad_key = comment("--github", "acme/policies#12", "--key", "a -->", text="plan\n", env=github(fake))
    assert bad_key.exit_code == 1 and "invalid comment key" in bad_key.output
    assert fake.writes() == []


def test_a_plan_at_the_markdown_limit_is_cut_to_fit_with_the_marker(serve: Any, tmp_path: Path) -> None:
    """plan's default --markdown-limit is GitHub's whole limit: the marker line needs room too."""
    fake = serve(Fake("github", users={GITHUB_TOKEN: ALICE}))
    rows = "".join(f"| `ci/app:build-{i}` | delete |\n" for i in range(3000))
    plan = tmp_path / "plan.md"
    plan.write_text(f"### Plan\n\n<details><summary>RetentionPolicy/ci</summary>\n\n{rows}</details>\n"[:65_536])
    result = comment("--github", "acme/policies#12", str(plan), env=github(fake))
    assert result.exit_code == 0, result.output
    (body,) = [c["body"] for c in marked(fake)]
    assert len(body) <= 65_536
    assert body.endswith("</details>\n\n… cut to fit the forge's limit of 65536 characters per comment: the whole "
                         "plan is in its JSON (`plan --out`)\n")
    kept = body.split("\n")[:-4]
    assert all(line.startswith("| `ci/app:build-") for line in kept[5:])  # whole rows only


def test_where_to_comment_must_be_known() -> None:
    result = comment(text="plan\n", env={"GITHUB_TOKEN": GITHUB_TOKEN})
    assert result.exit_code == 1
    assert "pass --github OWNER/REPO#NUMBER or --gitlab PROJECT!IID" in result.output
    bad = comment("--github", "acme#12", text="plan\n", env={"GITHUB_TOKEN": GITHUB_TOKEN})
    assert bad.exit_code == 1 and "expected OWNER/REPO#NUMBER" in bad.output


# GitLab


def test_three_pushes_leave_one_gitlab_note_with_the_last_plan(serve: Any) -> None:
    fake = serve(Fake("gitlab", users={GITLAB_TOKEN: GL_BOT}))
    untouched = fake.add("please look at the prod plan", GL_ALICE)
    fake.add("added 1 commit", GL_ALICE, system=True)
    fake.add("<!-- reconcile-plan:plan -->\nplanted", GL_ALICE)
    env = gitlab(fake, GITLAB_CI="true", CI_PROJECT_ID="42", CI_MERGE_REQUEST_IID="7", CI_JOB_TOKEN="job-token-x")
    for push in (1, 2, 3):
        result = comment(text=f"### Plan {push}\n", env=env)
        assert result.exit_code == 0, result.output
    ours = [c for c in marked(fake) if c["author"] == GL_BOT]
    assert [c["body"] for c in ours] == ["<!-- reconcile-plan:plan -->\n### Plan 3\n"]
    assert fake.comments[untouched]["body"] == "please look at the prod plan"
    assert len(fake.comments) == 4
    note = ours[0]["id"]
    assert result.output == f"updated comment {note} on 42!7\n"
    assert [(r.method, r.path) for r in fake.writes()] == [
        ("POST", "/api/v4/projects/42/merge_requests/7/notes"),
        ("PUT", f"/api/v4/projects/42/merge_requests/7/notes/{note}"),
        ("PUT", f"/api/v4/projects/42/merge_requests/7/notes/{note}"),
    ]
    assert any("page=2" in r.path for r in fake.requests)
    for request in fake.requests:
        assert request.headers["PRIVATE-TOKEN"] == GITLAB_TOKEN
        assert "Authorization" not in request.headers and "JOB-TOKEN" not in request.headers


def test_gitlab_project_paths_and_keys(serve: Any) -> None:
    fake = serve(Fake("gitlab", users={GITLAB_TOKEN: GL_BOT}))
    for key in ("prod", "staging", "prod"):
        result = comment("--gitlab", "acme/policies!7", "--key", key, text=f"{key}\n", env=gitlab(fake))
        assert result.exit_code == 0, result.output
    assert len(marked(fake, "prod")) == len(marked(fake, "staging")) == 1
    assert all(r.path.startswith("/api/v4/user") or "/projects/acme%2Fpolicies/" in r.path for r in fake.requests)


def test_gitlab_without_a_project_token_says_what_to_create(serve: Any) -> None:
    fake = serve(Fake("gitlab", users={GITLAB_TOKEN: GL_BOT}))
    result = comment(text="plan\n", env={"GITLAB_CI": "true", "CI_PROJECT_ID": "42", "CI_MERGE_REQUEST_IID": "7",
                                         "CI_JOB_TOKEN": "job-token-x", "CI_API_V4_URL": fake.base + "/api/v4"})
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "Error: no token: set GITLAB_TOKEN to a project access token (scope api, role Reporter or above) in a "
        "masked CI/CD variable; CI_JOB_TOKEN cannot post merge request notes"]
    assert fake.requests == []
    branch = comment(text="plan\n", env={"GITLAB_CI": "true", "CI_PROJECT_ID": "42", "GITLAB_TOKEN": GITLAB_TOKEN})
    assert branch.exit_code == 1 and "not a merge request pipeline" in branch.output


@pytest.mark.parametrize(("token", "fail", "message"), [
    ("glpat-wrongToken42", {}, "Error: GitLab: who am I (GET /user): HTTP 401 Unauthorized (the token was refused: "
                               "check GITLAB_TOKEN, a project access token with scope api)"),
    (GITLAB_TOKEN, {"PUT": 503}, "Error: GitLab: update note 1001 on 42!7: HTTP 503 Service Unavailable"),
    (GITLAB_TOKEN, {"GET": 500}, "Error: GitLab: who am I (GET /user): HTTP 500 Internal Server Error"),
])
def test_gitlab_errors_are_one_line(serve: Any, token: str, fail: dict[str, int], message: str) -> None:
    fake = serve(Fake("gitlab", users={GITLAB_TOKEN: GL_BOT}, fail=fail))
    fake.add("<!-- reconcile-plan:plan -->\nold", GL_BOT)
    result = comment("--gitlab", "42!7", text="new\n", env=gitlab(fake, token=token))
    assert result.exit_code == 1
    assert result.output.splitlines() == [message]
    assert token not in result.output and GITLAB_TOKEN not in result.output


def test_an_unreachable_api_is_one_line() -> None:
    result = comment("--gitlab", "42!7", text="plan\n",
                     env={"GITLAB_TOKEN": GITLAB_TOKEN, "CI_API_V4_URL": "http://127.0.0.1:9/api/v4"})
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "Error: GitLab: who am I (GET /user): cannot reach 127.0.0.1:9 (ConnectionError)"]


def test_no_netrc_credentials_ride_along(serve: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = serve(Fake("gitlab", users={GITLAB_TOKEN: GL_BOT}))
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password netrc-password-123\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    result = comment("--gitlab", "42!7", text="plan\n", env=gitlab(fake))
    assert result.exit_code == 0, result.output
    assert fake.requests and all("Authorization" not in r.headers for r in fake.requests)
