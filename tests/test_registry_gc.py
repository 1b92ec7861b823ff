"""docs/registry-gc.md's central claim, against a real distribution registry: a prune deletes the
manifest (and its tags), the layers stay on the registry's disk, and the registry's own
``garbage-collect``, run as the page says (the registry stopped), frees them and nothing kept."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import requests
from click.testing import CliRunner

from reconcile.cli import cli
from tests.adapters.registry.oci import Layout, push
from tests.conftest import start_registry, stop
from tests.repos import policy_repo

POLICIES = """\
apiVersion: reconcile/v1
kind: Registry
metadata: {{name: gc}}
spec: {{url: "{url}"}}
---
apiVersion: reconcile/v1
kind: RetentionPolicy
metadata: {{name: gc-cleanup}}
spec:
  registry: gc
  repositories: [team/web]
  keep: [{{tags: '^build-2$'}}]
"""


def blob_file(root: Path, digest: str) -> Path:
    hex_digest = digest.removeprefix("sha256:")
    return root / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256" / hex_digest[:2] / hex_digest / "data"


def test_a_prune_leaves_the_layers_until_the_registrys_garbage_collect(tmp_path: Path) -> None:
    registry = start_registry(tmp_path, "gc")
    try:
        layout = Layout(tmp_path / "layout")
        pruned, kept = layout.image(seed=1), layout.image(seed=2)
        layout.tag(pruned, "build-1")
        layout.tag(kept, "build-2")
        push(layout, "build-1", registry.host, "team/web")
        push(layout, "build-2", registry.host, "team/web")
        repo = policy_repo(tmp_path / "policies", {"policies.yaml": POLICIES.format(url=registry.url)})
        result = CliRunner().invoke(cli, ["apply", "--yes", "--repo", str(repo), "--audit-db",
                                          str(tmp_path / "audit.db")], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        manifest = f"{registry.url}/v2/team/web/manifests/{pruned.digest}"
        assert requests.head(manifest, timeout=5).status_code == 404  # the manifest went, and build-1 with it
        assert requests.get(f"{registry.url}/v2/team/web/tags/list", timeout=5).json()["tags"] == ["build-2"]
    finally:
        stop(registry)
    layers = {name: [layer["digest"] for layer in json.loads(built.data)["layers"]]
              for name, built in (("pruned", pruned), ("kept", kept))}
    assert all(blob_file(registry.root, d).is_file() for d in layers["pruned"])  # still on disk
    subprocess.run(["docker-registry", "garbage-collect", str(registry.root / "config.yml")], check=True,
                   capture_output=True, timeout=120)
    assert not any(blob_file(registry.root, d).exists() for d in layers["pruned"])
    assert all(blob_file(registry.root, d).is_file() for d in layers["kept"])
