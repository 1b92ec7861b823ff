"""The heroku deploy target end to end: a real registry holds the stages (CI build -> the
Heroku-registry stage), a local fake of the Heroku Platform API (loopback http.server) releases.

The fake records every request and enforces what Heroku enforces for a docker release: the
docker-releases Accept variant, a Bearer token, a JSON body; it answers Heroku-style JSON errors
(``{"id": …, "message": …}``), keeps one formation per process type and a release list."""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from reconcile.audit import AuditStore
from reconcile.cli import cli
from tests.adapters.registry.oci import Layout, push
from tests.conftest import RunningRegistry

TOKEN = "heroku-api-token-0123456789abcdef"
MEDIA = "application/vnd.heroku+json; version=3.docker-releases"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gitlab-heroku"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@dataclass
class FakeHeroku:
    app: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    formation: dict[str, str] = field(default_factory=dict)  # process type -> image ID
    releases: list[dict[str, Any]] = field(default_factory=list)
    fail_with: tuple[int, str, str] | None = None  # the next PATCH answers this (status, id, message)
    url: str = ""


def _handler(fake: FakeHeroku) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, ident: str, message: str) -> None:
            self._answer(status, {"id": ident, "message": message})

        def _common(self) -> dict[str, Any] | None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            fake.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                  "body": json.loads(body) if body else None})
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._error(401, "unauthorized", "Invalid credentials provided.")
                return None
            if self.headers.get("Accept") != MEDIA:
                self._error(400, "bad_request", "Accept header must be the docker-releases variant.")
                return None
            return {"body": json.loads(body) if body else None}

        def _formation(self, process: str) -> dict[str, Any]:
            return {"type": process, "quantity": 1, "size": "basic", "command": None,
                    "app": {"name": fake.app}, "docker_image": {"id": fake.formation[process]}}

        def do_GET(self) -> None:
            if self._common() is None:
                return
            prefix = f"/apps/{fake.app}/formation/"
            if not self.path.startswith(f"/apps/{fake.app}/"):
                self._error(404, "not_found", "Couldn't find that app.")
            elif self.path.startswith(prefix) and self.path[len(prefix):] in fake.formation:
                self._answer(200, self._formation(self.path[len(prefix):]))
            elif self.path == f"/apps/{fake.app}/releases":
                self._answer(200, fake.releases)
            else:
                self._error(404, "not_found", "Couldn't find that formation.")

        def do_PATCH(self) -> None:
            found = self._common()
            if found is None:
                return
            if self.headers.get("Content-Type") != "application/json":
                self._error(400, "bad_request", "Content-Type must be application/json.")
                return
            if self.path != f"/apps/{fake.app}/formation":
                self._error(404, "not_found", "Couldn't find that app.")
                return
            if fake.fail_with is not None:
                status, ident, message = fake.fail_with
                fake.fail_with = None
                self._error(status, ident, message)
                return
            updates = (found["body"] or {}).get("updates")
            if not isinstance(updates, list) or not updates or not all(
                    isinstance(u, dict) and isinstance(u.get("type"), str) and str(u.get("docker_image", ""))
                    .startswith("sha256:") for u in updates):
                self._error(422, "invalid_params", "updates: each needs a type and a docker_image (sha256:...).")
                return
            for update in updates:
                fake.formation[update["type"]] = update["docker_image"]
                fake.releases.append({"version": len(fake.releases) + 1, "status": "succeeded",
                                      "description": f"Deployed {update['type']} ({update['docker_image'][7:19]})"})
            self._answer(200, [self._formation(u["type"]) for u in updates])

    return Handler


@pytest.fixture
def fake_heroku() -> Iterator[FakeHeroku]:
    fake = FakeHeroku("demo-app")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def write_policies(root: Path, registry: RunningRegistry, repo: str, api: str, token_env: str = "HEROKU_API_KEY"
                   ) -> Path:
    root.mkdir(exist_ok=True)
    (root / "policies.yaml").write_text(f"""\
apiVersion: reconcile/v1
kind: Registry
metadata: {{name: ci}}
spec: {{url: "{registry.url}"}}
---
apiVersion: reconcile/v1
kind: PromotionPolicy
metadata: {{name: web}}
spec:
  stages:
    - {{name: build, registry: ci, repository: "{repo}", track: {{tags: '^build-(?P<version>\\d+)$', order: numeric}}}}
    - {{name: heroku, from: build, registry: ci, repository: "{repo}-demo-app/web", tags: [latest, "{{version}}"]}}
---
apiVersion: reconcile/v1
kind: DeployPolicy
metadata: {{name: demo}}
spec:
  stage: web/heroku
  heroku: {{app: demo-app, token: {{env: {token_env}}}, api: "{api}"}}
""")
    return root


def image_id(layout_built: Any) -> str:
    return str(json.loads(layout_built.data)["config"]["digest"])


def deploy_rows(db: Path) -> list[tuple[Any, ...]]:
    with AuditStore.open(db, read_only=True) as store:
        return [tuple(r) for r in store.conn.execute(
            "SELECT kind, status, digest_before, digest_after, target FROM actions "
            "WHERE policy = 'DeployPolicy/demo' AND status != 'intent' ORDER BY seq")]


def test_release_by_digest_rerun_noop_failures_and_rollback(
        tmp_path: Path, plain_registry: RunningRegistry, repo: str, fake_heroku: FakeHeroku,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HEROKU_API_KEY", TOKEN)
    db = tmp_path / "audit.db"
    layout = Layout(tmp_path / "layout")
    built = {n: layout.image(created=f"2026-11-0{n}T00:00:00Z") for n in (1, 2, 3)}
    d1, d2, d3 = (built[n].digest for n in (1, 2, 3))

    def push_build(n: int) -> None:
        layout.tag(built[n], f"build-{n}")
        push(layout, f"build-{n}", plain_registry.host, repo)

    root = write_policies(tmp_path / "policies", plain_registry, repo, fake_heroku.url)
    common = ["--repo", str(root), "--audit-db", str(db)]
    push_build(1)
    assert invoke("validate", "--repo", str(root)).exit_code == 0

    # 1. promote build-1 to the heroku stage, then release it by its image ID
    first = invoke("apply", *common, "--yes")
    assert first.exit_code == 0, first.output
    planned = invoke("plan", *common, "--format", "markdown", "--detailed-exitcode")
    assert planned.exit_code == 2, planned.output
    assert "heroku:demo-app/web" in planned.stdout and d1[:19] in planned.stdout
    applied = invoke("apply", *common, "--yes")
    assert applied.exit_code == 0, applied.output
    assert fake_heroku.formation == {"web": image_id(built[1])}
    patch = [r for r in fake_heroku.requests if r["method"] == "PATCH"][-1]
    assert patch["path"] == "/apps/demo-app/formation"
    assert patch["body"] == {"updates": [{"type": "web", "docker_image": image_id(built[1])}]}
    assert patch["headers"]["Accept"] == MEDIA and patch["headers"]["Content-Type"] == "application/json"
    assert patch["headers"]["Authorization"] == f"Bearer {TOKEN}"

    # 2. a re-run is a no-op: what runs (image ID) is matched back to the stage's manifest digest
    patches = len([r for r in fake_heroku.requests if r["method"] == "PATCH"])
    again = invoke("plan", *common, "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert invoke("run", *common).exit_code == 0
    assert len([r for r in fake_heroku.requests if r["method"] == "PATCH"]) == patches

    # 3. a 422 is a failed deploy with Heroku's message, exit 1; a 401 too
    push_build(2)
    assert invoke("run", *common).exit_code == 0  # promotes build-2
    fake_heroku.fail_with = (422, "invalid_params", "Image not found in registry.heroku.com.")
    failed = invoke("run", *common)
    assert failed.exit_code == 1, failed.output
    assert "HTTP 422 invalid_params: Image not found in registry.heroku.com." in failed.output
    assert fake_heroku.formation == {"web": image_id(built[1])}
    fake_heroku.fail_with = (401, "unauthorized", "Invalid credentials provided.")  # a read-only token, say
    unauthorized = invoke("run", *common)
    assert unauthorized.exit_code == 1
    assert "HTTP 401 unauthorized: Invalid credentials provided." in unauthorized.output
    monkeypatch.setenv("HEROKU_API_KEY", "wrong-token-value-42")  # not even readable: blocked, nothing sent
    patches = len([r for r in fake_heroku.requests if r["method"] == "PATCH"])
    blocked = invoke("run", *common)
    assert blocked.exit_code == 1
    assert "heroku app demo-app could not be read: heroku app demo-app: read formation web: HTTP 401" in \
        blocked.output, blocked.output
    assert len([r for r in fake_heroku.requests if r["method"] == "PATCH"]) == patches
    monkeypatch.setenv("HEROKU_API_KEY", TOKEN)
    assert invoke("run", *common).exit_code == 0
    assert fake_heroku.formation == {"web": image_id(built[2])}

    # 4. rollback releases the previous release's image, and holds the digest rolled back from
    rolled = invoke("rollback", *common, "demo", "--yes")
    assert rolled.exit_code == 0, rolled.output
    assert fake_heroku.formation == {"web": image_id(built[1])}
    assert "released image" in rolled.stderr
    held = invoke("plan", *common, "--format", "markdown", "--detailed-exitcode")
    assert held.exit_code == 0, held.output
    assert f"held: {d2[:19]} was rolled back by hand" in held.stdout
    push_build(3)
    assert invoke("run", *common).exit_code == 0  # promotes build-3
    assert invoke("run", *common).exit_code == 0  # releases it
    assert fake_heroku.formation == {"web": image_id(built[3])}

    outputs = [first, planned, applied, again, failed, unauthorized, blocked, rolled, held]
    assert not any(TOKEN in r.output for r in outputs)
    rows = deploy_rows(db)
    assert [row[:4] for row in rows if row[0] != "skip"] == [
        ("deploy", "succeeded", None, d1),
        ("deploy", "failed", d1, d2),
        ("deploy", "failed", d1, d2),
        ("deploy", "succeeded", d1, d2),
        ("rollback", "succeeded", d2, d1),
        ("deploy", "succeeded", d1, d3),
    ]
    assert {row[4] for row in rows} == {"heroku:demo-app/web"}
    with AuditStore.open(db, read_only=True) as store:
        dumped = "\n".join(str(tuple(r)) for r in store.conn.execute("SELECT * FROM actions"))
    assert TOKEN not in dumped


def test_a_pull_request_cannot_redirect_the_token(tmp_path: Path, plain_registry: RunningRegistry, repo: str,
                                                  fake_heroku: FakeHeroku, monkeypatch: pytest.MonkeyPatch) -> None:
    """The heroku block is used only as the trusted ref has it: a branch pointing the api elsewhere
    (or naming another token) plans the deploy blocked and sends nothing."""
    import subprocess

    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HEROKU_API_KEY", TOKEN)
    monkeypatch.setenv("OTHER_TOKEN", "another-secret-value-99")
    root = write_policies(tmp_path / "repo", plain_registry, repo, fake_heroku.url)
    layout = Layout(tmp_path / "layout")
    built = layout.image(created="2026-11-01T00:00:00Z")
    layout.tag(built, "build-1")
    push(layout, "build-1", plain_registry.host, repo)
    layout.tag(built, "latest")
    push(layout, "latest", plain_registry.host, f"{repo}-demo-app/web")

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "trusted")
    write_policies(root, plain_registry, repo, fake_heroku.url, token_env="OTHER_TOKEN")
    git("checkout", "-q", "-b", "pr")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-am", "redirect the token")
    planned = invoke("plan", "--repo", str(root), "--ref", "pr", "--trusted-ref", "main",
                     "--audit-db", str(tmp_path / "audit.db"), "--format", "markdown")
    assert "heroku target (app, process, api, token reference) differs from the trusted ref" in planned.output, \
        planned.output
    assert fake_heroku.requests == []


def test_the_gitlab_heroku_example_validates(tmp_path: Path) -> None:
    copy = shutil.copytree(EXAMPLE, tmp_path / "gitlab-heroku")  # as a plain directory, as it is now
    result = invoke("validate", "--repo", str(copy))
    assert result.exit_code == 0, result.output


def _validate(tmp_path: Path, heroku: str, extra: str = "") -> list[str]:
    from reconcile.policy.loader import validate_repo

    (tmp_path / "p.yaml").write_text(f"""\
apiVersion: reconcile/v1
kind: Registry
metadata: {{name: heroku}}
spec: {{url: "https://registry.heroku.com"}}
---
apiVersion: reconcile/v1
kind: PromotionPolicy
metadata: {{name: app}}
spec:
  stages: [{{name: web, registry: heroku, repository: demo-app/web, track: {{tags: '^latest$'}}}}]
---
apiVersion: reconcile/v1
kind: DeployPolicy
metadata: {{name: demo}}
spec:
  stage: app/web
  heroku: {heroku}
{extra}""")
    return [str(p) for p in validate_repo(str(tmp_path)).errors]


@pytest.mark.parametrize(("heroku", "extra", "expected"), [
    ("{app: demo-app, token: {env: T}}", "", None),
    ("{app: demo-app, token: {env: T}, api: 'http://127.0.0.1:9'}", "", None),
    ("{app: demo-app, token: {env: T}, api: 'http://api.example.com'}", "",
     "plain http is allowed only for loopback hosts"),
    ("{app: demo-app, token: {env: T}, api: 'https://u:p@api.example.com'}", "", "the api is a base URL"),
    ("{app: demo-app, token: {dockerConfig: /x}}", "", "a dockerConfig reference holds registry credentials"),
    ("{app: demo-app, token: 'plain-token'}", "", "/spec/heroku/token"),
    ("{app: demo-app, token: {env: T}}", "  cluster: prod\n", "set exactly one target"),
    ("{app: demo-app, token: {env: T}}", "  workloads: [{kind: Deployment, name: w, container: w}]\n",
     "releases a process type"),
])
def test_the_heroku_target_is_checked(tmp_path: Path, heroku: str, extra: str, expected: str | None) -> None:
    errors = _validate(tmp_path, heroku, extra)
    if expected is None:
        assert errors == []
    else:
        assert any(expected in e for e in errors), errors


def test_the_client_sends_the_token_to_the_api_host_only_bounded_and_one_line(
        tmp_path: Path, fake_heroku: FakeHeroku) -> None:
    from reconcile.adapters.heroku import HerokuClient, HerokuError
    from reconcile.policy.secrets import Secret

    client = HerokuClient(fake_heroku.url, Secret(TOKEN), timeout=2)
    assert client.current("demo-app", "web") is None  # never released: no formation yet
    client.release("demo-app", "web", "sha256:" + "a" * 64)
    assert client.current("demo-app", "web") == "sha256:" + "a" * 64
    fake_heroku.fail_with = (422, "invalid_params", f"echoes {TOKEN}\nover two lines")
    with pytest.raises(HerokuError) as failed:
        client.release("demo-app", "web", "sha256:" + "b" * 64)
    message = str(failed.value)
    assert "\n" not in message and TOKEN not in message and message.startswith(
        "heroku app demo-app: release web: HTTP 422 invalid_params: echoes ***")
    client.close()

    class Redirect(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path.startswith("/big"):
                self.send_response(200)
                self.send_header("Content-Length", str(2 << 20))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client stops reading at its bound
                    self.wfile.write(b"[" + b" " * ((2 << 20) - 1))
                return
            self.send_response(307)
            self.send_header("Location", f"{fake_heroku.url}/apps/demo-app/formation/web")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        other = HerokuClient(f"http://127.0.0.1:{server.server_address[1]}", Secret(TOKEN), timeout=2)
        requests_before = len(fake_heroku.requests)
        with pytest.raises(HerokuError, match="HTTP 307"):
            other.current("demo-app", "web")
        assert len(fake_heroku.requests) == requests_before  # the redirect was not followed
        with pytest.raises(HerokuError, match="response larger than"):
            other._request("GET", "/big", "demo-app", "read")
        other.close()
    finally:
        server.shutdown()
        server.server_close()
