"""Promotion end to end on two real registries (one with basic auth): a signed multi-arch image
goes build -> staging -> prod by digest, one stage per run, and a version-tag conflict is reported,
never overwritten."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconcile.audit import AuditStore
from reconcile.cli import cli
from tests.adapters.registry.oci import Layout, push, put_tag, raw_digest
from tests.conftest import RunningRegistry


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def write_policies(root: Path, ci: RunningRegistry, secure: RunningRegistry, repo: str) -> Path:
    root.mkdir()
    (root / "pipeline.yaml").write_text(f"""\
apiVersion: reconcile/v1
kind: Registry
metadata: {{name: ci}}
spec: {{url: "{ci.url}"}}
---
apiVersion: reconcile/v1
kind: Registry
metadata: {{name: secure}}
spec:
  url: "{secure.url}"
  credentials: {{username: "{secure.username}", password: {{env: SECURE_PASSWORD}}}}
---
apiVersion: reconcile/v1
kind: PromotionPolicy
metadata: {{name: web}}
spec:
  stages:
    - name: build
      registry: ci
      repository: "{repo}/build"
      track: {{tags: '^build-(?P<version>\\d+)$', order: numeric}}
    - {{name: staging, from: build, registry: secure, repository: "{repo}/staging", tags: [staging, "{{version}}"]}}
    - {{name: prod, from: staging, registry: ci, repository: "{repo}/prod", tags: [prod, "{{version}}"]}}
""")
    return root


def test_a_signed_multi_arch_image_keeps_its_digest_from_build_to_prod(
        tmp_path: Path, plain_registry: RunningRegistry, auth_registry: RunningRegistry, repo: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SECURE_PASSWORD", auth_registry.password or "")
    layout = Layout(tmp_path / "release")
    amd64, arm64 = layout.image(arch="amd64"), layout.image(arch="arm64")
    index = layout.index([(amd64, "amd64"), (arm64, "arm64")])
    signature = layout.signature(index.digest)
    sig_tag = index.digest.replace(":", "-") + ".sig"
    old = layout.image(created="2020-01-01T00:00:00Z")
    for built, tag in ((index, "build-7"), (signature, sig_tag), (old, "build-6")):
        layout.tag(built, tag)
        push(layout, tag, plain_registry.host, f"{repo}/build")
    common = ["--repo", str(write_policies(tmp_path / "policies", plain_registry, auth_registry, repo)),
              "--audit-db", str(tmp_path / "audit.db")]

    first = invoke("apply", *common, "--yes")  # build-7 into staging; prod waits for staging
    assert first.exit_code == 0, first.output
    staged = f"secure/{repo}/staging@{index.digest} (tags: staging, 7): keep — PromotionPolicy/web: staging holds 7 " \
             f"({index.digest[:19]}) under staging, 7\n"
    to_prod = f"ci/{repo}/prod@{index.digest} (tags: prod, 7): promote — PromotionPolicy/web: 7 from staging to " \
              "prod: no gates\n"
    assert invoke("explain", *common, "PromotionPolicy/web").stdout == to_prod + staged
    assert invoke("explain", *common, "7").stdout == to_prod + staged
    assert invoke("explain", *common, index.digest).stdout == to_prod + staged
    assert invoke("explain", *common, f"{repo}/prod:7").stdout == to_prod
    assert invoke("explain", *common, f"secure/{repo}/staging:staging").stdout == staged
    unknown = invoke("explain", *common, "PromotionPolicy/api")
    assert (unknown.exit_code, unknown.stdout) == (0, "there is no PromotionPolicy named api (known: web)\n")
    second = invoke("apply", *common, "--yes")  # staging's digest into prod
    assert second.exit_code == 0, second.output

    creds = auth_registry.creds
    for tag in ("staging", "7"):
        assert raw_digest(f"docker://{auth_registry.host}/{repo}/staging:{tag}", creds) == index.digest
    for tag in ("prod", "7"):
        assert raw_digest(f"docker://{plain_registry.host}/{repo}/prod:{tag}", None) == index.digest
    for platform in (amd64, arm64):
        assert raw_digest(f"docker://{plain_registry.host}/{repo}/prod@{platform.digest}", None) == platform.digest
    assert raw_digest(f"docker://{plain_registry.host}/{repo}/prod:{sig_tag}", None) == signature.digest
    assert invoke("plan", *common, "--detailed-exitcode").exit_code == 0  # converged
    with AuditStore.open(tmp_path / "audit.db", read_only=True) as store:
        promoted = store.conn.execute("SELECT target, digest_after FROM actions WHERE kind = 'promote' "
                                      "AND status = 'succeeded' ORDER BY seq").fetchall()
    assert [(t.split("/", 1)[0], d) for t, d in promoted] == [("secure", index.digest), ("ci", index.digest)]


def test_a_version_tag_on_another_digest_is_reported_not_overwritten(
        tmp_path: Path, plain_registry: RunningRegistry, auth_registry: RunningRegistry, repo: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SECURE_PASSWORD", auth_registry.password or "")
    layout = Layout(tmp_path / "images")
    wanted, squatter = layout.image(), layout.image(arch="arm64")
    layout.tag(wanted, "build-8")
    layout.tag(squatter, "other")
    push(layout, "build-8", plain_registry.host, f"{repo}/build")
    push(layout, "other", auth_registry.host, f"{repo}/staging", creds=auth_registry.creds)
    put_tag(auth_registry.url, f"{repo}/staging", "8", squatter, auth=auth_registry.auth)  # "8" is taken
    common = ["--repo", str(write_policies(tmp_path / "policies", plain_registry, auth_registry, repo)),
              "--audit-db", str(tmp_path / "audit.db")]

    planned = invoke("plan", *common, "--format", "markdown")
    assert f"version tag conflict in staging: 8 -> {squatter.digest[:19]}; an immutable tag is never overwritten" \
        in planned.stdout
    assert invoke("explain", *common, f"{repo}/staging:8").stdout.startswith(
        f"secure/{repo}/staging@{wanted.digest} (tags: staging, 8): blocked — PromotionPolicy/web: version tag "
        "conflict in staging")
    assert invoke("apply", *common, "--yes").exit_code == 0
    assert raw_digest(f"docker://{auth_registry.host}/{repo}/staging:8", auth_registry.creds) == squatter.digest
