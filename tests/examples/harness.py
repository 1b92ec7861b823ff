"""Run an ``examples/`` repo-of-record against local servers, changing nothing but where it connects.

An example names real endpoints (registry.gitlab.com, *.azurecr.io, a cluster's kubeconfig, a git
host). ``localize`` copies it and rewrites exactly those connection fields — each Registry's url
and credentials, each Cluster's kubeconfig, git repository URLs, a Heroku API base, a webhook's
URL — to the test's loopback servers; every keep rule, stage, gate and protection stays as the example writes it. An
endpoint the test did not map fails the test, so an example can never reach outside the machine."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from reconcile.cli import cli
from tests.conftest import RunningRegistry

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def seed_examples() -> list[str]:
    """Every example repo-of-record (a directory holding reconcile documents; ci/ holds CI recipes)."""
    return sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir() and p.name != "ci")


@dataclass
class Endpoints:
    """Where the example's names point in this test: Registry name -> registry, Cluster name ->
    kubeconfig file, git URL -> local repository path, and the Heroku API base URL."""

    registries: Mapping[str, RunningRegistry]
    clusters: Mapping[str, Path] = field(default_factory=dict)
    git: Mapping[str, Path] = field(default_factory=dict)
    heroku_api: str | None = None
    webhooks: Mapping[str, str] = field(default_factory=dict)  # Notification name -> receiver URL
    env: dict[str, str] = field(default_factory=dict)  # credentials of the mapped registries, by variable


def _registry(name: str, spec: dict[str, Any], endpoints: Endpoints) -> dict[str, Any]:
    if name not in endpoints.registries:
        pytest.fail(f"the example's Registry {name!r} ({spec.get('url')}) is not mapped to a local registry")
    running = endpoints.registries[name]
    local = {k: v for k, v in spec.items() if k not in ("url", "credentials", "allowedHosts", "tls")}
    local["url"] = running.url
    if running.username and running.password:
        variable = f"EXAMPLE_{name.upper().replace('-', '_')}"
        endpoints.env[f"{variable}_USER"], endpoints.env[f"{variable}_PASSWORD"] = running.username, running.password
        local["credentials"] = {"username": {"env": f"{variable}_USER"}, "password": {"env": f"{variable}_PASSWORD"}}
    return local


def _cluster(name: str, spec: dict[str, Any], endpoints: Endpoints) -> dict[str, Any]:
    if name not in endpoints.clusters:
        pytest.fail(f"the example's Cluster {name!r} is not mapped to the API-server fixture")
    kept = {k: v for k, v in spec.items() if k in ("namespaces",)}
    return {**kept, "kubeconfig": {"file": str(endpoints.clusters[name])}, "timeout": "5s"}


def _git(url: str, endpoints: Endpoints) -> str:
    if url not in endpoints.git:
        pytest.fail(f"the example's git repository {url} is not mapped to a local repository")
    return str(endpoints.git[url])


def _localize_document(document: Any, endpoints: Endpoints) -> Any:
    if not isinstance(document, dict) or not str(document.get("apiVersion", "")).startswith("reconcile/"):
        return document
    kind, name, spec = document.get("kind"), document["metadata"]["name"], document.get("spec", {})
    if kind == "Registry":
        document["spec"] = _registry(name, spec, endpoints)
    elif kind == "Cluster":
        document["spec"] = _cluster(name, spec, endpoints)
    elif kind == "RetentionPolicy":
        for rule in spec.get("keep", []):
            if "gitRefs" in rule:
                rule["gitRefs"]["repo"] = _git(rule["gitRefs"]["repo"], endpoints)
    elif kind == "DeployPolicy":
        if "manifests" in spec:
            spec["manifests"]["repo"] = _git(spec["manifests"]["repo"], endpoints)
        if "heroku" in spec:
            if endpoints.heroku_api is None:
                pytest.fail("the example releases to Heroku: map heroku_api to a local fake")
            spec["heroku"]["api"] = endpoints.heroku_api
    elif kind == "Notification" and "webhook" in spec:  # apprise URLs are secret references: set by env
        if name not in endpoints.webhooks:
            pytest.fail(f"the example's Notification {name!r} posts to a webhook: map it to a local receiver")
        spec["webhook"]["url"] = endpoints.webhooks[name]
    return document


def git(root: Path, *args: str) -> str:
    run = subprocess.run(["git", "-C", str(root), "-c", "user.email=ci@example.test", "-c", "user.name=CI", *args],
                         check=True, capture_output=True, text=True)
    return run.stdout


def localize(example: str, destination: Path, endpoints: Endpoints, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repo-of-record at ``destination``: ``examples/<example>`` committed on main, with its
    connection fields pointing at ``endpoints`` (and their credentials in the environment)."""
    shutil.copytree(EXAMPLES / example, destination)
    for path in sorted(destination.rglob("*.y*ml")):
        documents = list(yaml.safe_load_all(path.read_text()))
        before = json.dumps(documents, default=str)
        documents = [_localize_document(d, endpoints) for d in documents]
        if json.dumps(documents, default=str) != before:
            path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    for variable, value in endpoints.env.items():
        monkeypatch.setenv(variable, value)
    git(destination, "init", "-q", "-b", "main")
    git(destination, "add", ".")
    git(destination, "commit", "-q", "-m", f"the {example} example")
    return destination


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def plan_json(root: Path, audit_db: Path, *extra: str) -> dict[str, Any]:
    """``reconcile plan --format json`` of the repo-of-record; fails the test on an error exit."""
    result = invoke("plan", "--repo", str(root), "--audit-db", str(audit_db), "--format", "json", *extra)
    assert result.exit_code in (0, 2), result.output
    return dict(json.loads(result.stdout))


def actions(plan: Mapping[str, Any], kind: str, policy: str | None = None) -> list[dict[str, Any]]:
    return [a for a in plan["actions"] if a["kind"] == kind and (policy is None or a["policy"] == policy)]
