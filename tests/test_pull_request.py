"""Pull-request mode, end to end: a git repo-of-record cloned from an "origin" whose default branch
is main, a pull-request branch in the clone (checked out, as CI has it), the real htpasswd
``docker-registry`` the trusted Registry points at, and a recording HTTP server on loopback that
answers every request with a Basic challenge (what a server fishing for credentials does) and
records every request's headers. The pull request may change policies, never where credentials
go."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import git
import pytest
from click.testing import CliRunner, Result
from jsonschema import Draft202012Validator

from reconcile.adapters.cluster import ClusterError
from reconcile.adapters.registry import RegistryError
from reconcile.cli import cli
from reconcile.policy.secrets import SecretResolver
from reconcile.policy.trust import load_with_trusted_connections
from reconcile.reconciler.connections import connections_for
from reconcile.render.plan import content_hash
from tests.adapters.registry.oci import Layout, push
from tests.conftest import USER, RunningRegistry


class Recorder:
    """Every request it gets: method, path, headers. It never serves anything but a 401."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _challenge(self) -> None:
                recorder.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers)})
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="give me your password"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _challenge

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"http://{self.host}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def authorizations(self) -> list[str]:
        return [r["headers"]["Authorization"] for r in self.requests if "Authorization" in r["headers"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


def registry_doc(name: str, url: str, *, password: str = "{env: CI_REGISTRY_PASSWORD}",
                 allowed: str | None = None) -> str:
    hosts = f"\n  allowedHosts: [\"{allowed}\"]" if allowed else ""
    return f"""\
apiVersion: reconcile/v1
kind: Registry
metadata: {{name: {name}}}
spec:
  url: "{url}"{hosts}
  credentials:
    username: {USER}
    password: {password}
"""


def retention_doc(name: str, registry: str, repository: str, keep: str = "^v\\d+$") -> str:
    return f"""\
apiVersion: reconcile/v1
kind: RetentionPolicy
metadata: {{name: {name}}}
spec:
  registry: {registry}
  repositories: ["{repository}"]
  keep:
    - tags: '{keep}'
"""


@pytest.fixture
def world(tmp_path: Path, auth_registry: RunningRegistry, repo: str, monkeypatch: pytest.MonkeyPatch
          ) -> dict[str, Any]:
    """v1, build-1 and build-2 in the authenticated registry; a clone of origin (default branch main:
    Registry ci on that registry with its password from the environment, RetentionPolicy ci-cleanup
    keeping v*), with a branch ``pr`` checked out that main does not have yet."""
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CI_REGISTRY_PASSWORD", auth_registry.password or "")
    for name in ("RECONCILE_REPO", "RECONCILE_REF", "RECONCILE_TRUSTED_REF", "RECONCILE_TRUST_REF_CONNECTIONS"):
        monkeypatch.delenv(name, raising=False)
    layout = Layout(tmp_path / "layout")
    for i, tag in enumerate(("v1", "build-1", "build-2"), 1):
        layout.tag(layout.image(created=f"2026-11-0{i}T00:00:00Z"), tag)
        push(layout, tag, auth_registry.host, repo, creds=auth_registry.creds)

    origin = git.Repo.init(tmp_path / "origin.git", bare=True)
    origin.git.symbolic_ref("HEAD", "refs/heads/main")
    seed = git.Repo.init(tmp_path / "seed")
    seed.git.symbolic_ref("HEAD", "refs/heads/main")
    with seed.config_writer() as config:
        config.set_value("user", "name", "Policy Author").set_value("user", "email", "author@example.com")
    (tmp_path / "seed" / "policies.yaml").write_text(
        registry_doc("ci", auth_registry.url) + "---\n" + retention_doc("ci-cleanup", "ci", repo))
    seed.index.add(["policies.yaml"])
    seed.index.commit("trusted policies")
    seed.git.push(str(tmp_path / "origin.git"), "main")
    clone = git.Repo.clone_from(str(tmp_path / "origin.git"), tmp_path / "clone")
    with clone.config_writer() as config:
        config.set_value("user", "name", "PR Author").set_value("user", "email", "pr@example.com")
    clone.git.checkout("-b", "pr")
    return {"clone": clone, "root": tmp_path / "clone", "repository": repo, "registry": auth_registry,
            "tmp": tmp_path}


def pr_commit(world: dict[str, Any], files: dict[str, str]) -> str:
    clone: git.Repo = world["clone"]
    for name, text in files.items():
        (world["root"] / name).write_text(text)
    clone.index.add(list(files))
    return clone.index.commit("pull request").hexsha


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def pruned_tags(plan: dict[str, Any]) -> list[str]:
    return sorted(tag for a in plan["actions"] if a["kind"] == "prune" for tag in a["tags"])


def test_a_pull_request_rewriting_url_and_allowed_hosts_gets_no_credentials(
        world: dict[str, Any], recorder: Recorder) -> None:
    """The PR points Registry ci at the recording server (url and allowedHosts, one file) and also
    changes the retention policy: the plan uses the PR's retention policy, the trusted Registry (the
    real registry, with its password), sends nothing to the recorder, and shows the connection
    change for review; exit 2."""
    repository = world["repository"]
    pr_commit(world, {"policies.yaml": registry_doc("ci", recorder.url, allowed=recorder.host) + "---\n"
                      + retention_doc("ci-cleanup", "ci", repository, keep="^(v\\d+|build-2)$")})
    root = str(world["root"])
    planned = invoke("plan", "--repo", root, "--ref", "pr", "--format", "json", "--detailed-exitcode",
                     "--audit-db", str(world["tmp"] / "audit.db"))
    assert recorder.requests == [], recorder.requests  # not one request, so no credentials either
    assert recorder.authorizations == []
    assert planned.exit_code == 2, planned.output
    plan = json.loads(planned.stdout)
    assert plan["errors"] == []
    schema = json.loads((Path(__file__).resolve().parents[1] / "schemas" / "plan.schema.json").read_text())
    assert list(Draft202012Validator(schema).iter_errors(plan)) == []
    assert plan["contentHash"] == content_hash(plan)  # the review is covered by the hash too
    # The real registry was read (with the trusted credentials), under the PR's retention policy.
    assert pruned_tags(plan) == ["build-1"]
    (change,) = plan["connectionChanges"]
    assert (change["kind"], change["name"], change["change"]) == ("Registry", "ci", "changed")
    assert change["details"] == [f"url {world['registry'].url} → {recorder.url}",
                                 f"allowedHosts {world['registry'].host} → {recorder.host}"]
    assert "not used by this plan" in change["used"] and "origin/main" in change["used"]
    assert world["registry"].password not in planned.output

    markdown = invoke("plan", "--repo", root, "--ref", "pr", "--format", "markdown", "--detailed-exitcode",
                      "--audit-db", str(world["tmp"] / "audit.db"))
    assert markdown.exit_code == 2, markdown.output
    assert "Connection changes (not used by this plan): 1" in markdown.stdout
    assert f"`url {world['registry'].url} → {recorder.url}`" in markdown.stdout
    assert "origin/main" in markdown.stdout
    rich = invoke("plan", "--repo", root, "--ref", "pr", "--audit-db", str(world["tmp"] / "audit.db"))
    assert rich.exit_code == 0, rich.output
    assert "connection changes (not used by this plan" in rich.stdout
    assert recorder.requests == []


def test_apply_at_a_pull_request_ref_uses_trusted_connections_and_shows_the_review(
        world: dict[str, Any], recorder: Recorder) -> None:
    """Applying at the PR's ref (as a pipeline that applies on merge might, too early) connects with
    the trusted Registry only, and says on stderr which connection changes it did not use."""
    repository = world["repository"]
    pr_commit(world, {"policies.yaml": registry_doc("ci", recorder.url, allowed=recorder.host) + "---\n"
                      + retention_doc("ci-cleanup", "ci", repository, keep="^(v\\d+|build-2)$")})
    applied = CliRunner().invoke(cli, ["apply", "--yes", "--repo", str(world["root"]), "--ref", "pr",
                                       "--audit-db", str(world["tmp"] / "audit.db")])
    assert applied.exit_code == 0, applied.output
    assert recorder.requests == []
    assert "connection changes (not used by this plan; connections come from the trusted ref origin/main" in \
        applied.stderr
    assert f"Registry/ci changed: url {world['registry'].url} → {recorder.url}" in applied.stderr
    assert "applied 1 of 1 changes" in applied.stderr and world["registry"].password not in applied.output


def test_a_registry_the_pull_request_adds_is_not_connected_to_and_its_secret_not_read(
        world: dict[str, Any], recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    shadow = world["tmp"] / "shadow"
    shadow.write_text("root:$6$not-for-you")
    resolved: list[str] = []
    original = SecretResolver.resolve

    def spy(self: SecretResolver, ref: Any, *, purpose: str) -> Any:
        resolved.append(ref.describe())
        return original(self, ref, purpose=purpose)

    monkeypatch.setattr(SecretResolver, "resolve", spy)
    repository = world["repository"]
    pr_commit(world, {"evil.yaml": registry_doc("evil", recorder.url, password=f"{{file: {shadow}}}")
                      + "---\n" + retention_doc("evil-cleanup", "evil", "team-a/web")})
    planned = invoke("plan", "--repo", str(world["root"]), "--ref", "pr", "--format", "json",
                     "--detailed-exitcode", "--audit-db", str(world["tmp"] / "audit.db"))
    assert recorder.requests == []
    assert f"file:{shadow}" not in resolved
    assert resolved == ["env:CI_REGISTRY_PASSWORD"]  # the trusted Registry's, for ci-cleanup
    plan = json.loads(planned.stdout)
    assert planned.exit_code == 1, planned.output  # evil-cleanup is blocked: its registry is not read
    assert pruned_tags(plan) == ["build-1", "build-2"]  # ci-cleanup planned as ever
    (error,) = plan["errors"]
    assert error.startswith("registry evil could not be read")
    assert "Registry/evil is defined only at the ref read" in error
    (change,) = plan["connectionChanges"]
    assert (change["kind"], change["name"], change["change"]) == ("Registry", "evil", "added")
    assert f"credentials.password {{file: {shadow}}}" in change["details"]
    assert change["used"].startswith("not connected to (not even anonymously)")
    assert "not-for-you" not in planned.output
    assert any(repository in a["target"] for a in plan["actions"])  # the trusted registry was observed


def test_trust_ref_connections_uses_the_pull_requests_registry_and_says_so(
        world: dict[str, Any], recorder: Recorder) -> None:
    pr_commit(world, {"policies.yaml": registry_doc("ci", recorder.url, allowed=recorder.host) + "---\n"
                      + retention_doc("ci-cleanup", "ci", world["repository"])})
    planned = invoke("plan", "--repo", str(world["root"]), "--ref", "pr", "--trust-ref-connections",
                     "--format", "json", "--audit-db", str(world["tmp"] / "audit.db"))
    assert "warning: --trust-ref-connections" in planned.stderr
    assert recorder.requests, "the pull request's Registry was not used"
    assert recorder.authorizations  # its author chose where the password went: that is the opt-in
    assert "connectionChanges" not in json.loads(planned.stdout)


def test_the_same_commit_is_nothing_special_and_validate_takes_the_whole_pull_request(
        world: dict[str, Any], recorder: Recorder) -> None:
    root = str(world["root"])
    same = invoke("plan", "--repo", root, "--ref", "origin/main", "--format", "json", "--detailed-exitcode",
                  "--audit-db", str(world["tmp"] / "audit.db"))
    assert same.exit_code == 2 and "connectionChanges" not in json.loads(same.stdout)
    pr_commit(world, {"policies.yaml": registry_doc("ci", recorder.url, allowed=recorder.host) + "---\n"
                      + retention_doc("ci-cleanup", "ci", world["repository"], keep=".*")})
    valid = invoke("validate", "--repo", root, "--ref", "pr")
    assert valid.exit_code == 0 and "1 Registry, 1 RetentionPolicy" in valid.stderr
    # Nothing else changes, only where it connects: still a change to review.
    changed = invoke("plan", "--repo", root, "--ref", "pr", "--format", "json", "--detailed-exitcode",
                     "--audit-db", str(world["tmp"] / "audit.db"))
    assert json.loads(changed.stdout)["actions"] == [] or not json.loads(changed.stdout)["hasChanges"]
    assert changed.exit_code == 2, changed.output
    assert recorder.requests == []


def test_the_trusted_ref_is_never_guessed(world: dict[str, Any], tmp_path: Path) -> None:
    """A checkout with a remote but no origin/HEAD and no main (as CI's single-commit checkout) must
    be told which ref to trust; --trusted-ref (or its environment variable) tells it."""
    clone: git.Repo = world["clone"]
    clone.git.remote("set-head", "origin", "--delete")
    clone.git.branch("-D", "main")
    root = str(world["root"])
    refused = invoke("plan", "--repo", root, "--ref", "pr", "--audit-db", str(tmp_path / "a.db"))
    assert refused.exit_code == 1
    assert "cannot tell which ref" in refused.stderr and "--trusted-ref" in refused.stderr
    told = CliRunner().invoke(cli, ["plan", "--repo", root, "--format", "json", "--audit-db", str(tmp_path / "a.db")],
                              env={"RECONCILE_TRUSTED_REF": "origin/main"}, catch_exceptions=False)
    assert told.exit_code == 0, told.output  # HEAD (pr, same commit as main here) read, nothing to review
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "policies.yaml").write_text((world["root"] / "policies.yaml").read_text())
    directory = invoke("plan", "--repo", str(plain), "--trusted-ref", "main", "--audit-db", str(tmp_path / "a.db"))
    assert directory.exit_code == 1 and "is not a git repository" in directory.stderr


def test_connections_refuse_what_only_the_pull_request_defines(world: dict[str, Any], recorder: Recorder) -> None:
    """Every path to a client (observe's, apply's, a deploy's, a health gate's) goes through these."""
    pr_commit(world, {"more.yaml": registry_doc("new", recorder.url) + """\
---
apiVersion: reconcile/v1
kind: Cluster
metadata: {name: new}
spec:
  kubeconfig: {file: /root/.kube/config}
"""})
    policies = load_with_trusted_connections(str(world["root"]), "pr", None)
    with connections_for(policies) as connections:
        with pytest.raises(RegistryError, match="Registry/new is defined only at the ref read"):
            connections.registry("new")
        with pytest.raises(RegistryError, match="Registry/new is defined only at the ref read"):
            connections.registries["new"].tags("team-a/web")  # what observe() finds there
        with pytest.raises(ClusterError, match="Cluster/new is defined only at the ref read"):
            connections.cluster("new")
        assert connections.registry("ci").registry.url == world["registry"].url  # type: ignore[attr-defined]
    assert recorder.requests == []
