"""Copying by digest between real registries, witnessed by skopeo: multi-arch indexes, referrers,
skipped and mounted blobs, streamed big layers, and content that does not match its digest."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from reconcile.adapters.registry import DigestMismatch, copy_image
from tests.adapters.registry.faults import FaultProxy
from tests.adapters.registry.oci import Built, Layout, push, raw_digest
from tests.conftest import OpenClient, RunningRegistry, registry_policy

ENV = "REGISTRY_PASSWORD"


def release(tmp_path: Path, registry: RunningRegistry, repository: str) -> tuple[Built, list[Built], Built]:
    """A two-platform index with a cosign signature, pushed by skopeo."""
    layout = Layout(tmp_path / "release")
    amd64 = layout.image(arch="amd64", layer_sizes=(3000, 70_000))
    arm64 = layout.image(arch="arm64", layer_sizes=(3000, 50_000))
    index = layout.index([(amd64, "amd64"), (arm64, "arm64")])
    signature = layout.signature(index.digest)
    sig_tag = index.digest.replace(":", "-") + ".sig"
    layout.tag(index, "v1")
    layout.tag(signature, sig_tag)
    push(layout, "v1", registry.host, repository)
    push(layout, sig_tag, registry.host, repository)
    return index, [amd64, arm64], signature


def test_a_multi_arch_index_is_copied_with_its_digest_and_signature(
        plain_registry: RunningRegistry, auth_registry: RunningRegistry, open_client: OpenClient, repo: str,
        tmp_path: Path) -> None:
    index, platforms, signature = release(tmp_path, plain_registry, repo)
    source = open_client(registry_policy("ci", plain_registry.url))
    dest = open_client(registry_policy("prod", auth_registry.url, password_env=ENV), {ENV: auth_registry.password})

    result = copy_image(source, repo, index.digest, dest, "web", ["prod", "1.4.2"])

    assert result.digest == index.digest and result.tags == ("prod", "1.4.2")
    assert result.manifests_copied == 4 and result.referrers == (signature.digest,)
    creds = auth_registry.creds
    for tag in ("prod", "1.4.2"):
        assert raw_digest(f"docker://{auth_registry.host}/web:{tag}", creds) == index.digest
    for image in platforms:
        assert raw_digest(f"docker://{auth_registry.host}/web@{image.digest}", creds) == image.digest
    sig_tag = index.digest.replace(":", "-") + ".sig"
    assert raw_digest(f"docker://{auth_registry.host}/web:{sig_tag}", creds) == signature.digest

    # Again: everything is there already; nothing is uploaded, the new tag is set.
    again = copy_image(source, repo, index.digest, dest, "web", ["latest"])
    assert (again.manifests_copied, again.blobs_copied, again.manifests_present) == (0, 0, 2)
    assert raw_digest(f"docker://{auth_registry.host}/web:latest", creds) == index.digest

    # Within one registry, blobs are mounted from the source repository, not uploaded.
    within = copy_image(dest, "web", index.digest, dest, "web-mirror", ["v1"])
    assert within.blobs_copied == 0 and within.blobs_mounted == 8 and within.manifests_copied == 4
    assert raw_digest(f"docker://{auth_registry.host}/web-mirror:v1", creds) == index.digest


def test_content_that_does_not_match_its_digest_is_never_copied(
        plain_registry: RunningRegistry, auth_registry: RunningRegistry, open_client: OpenClient,
        proxy_factory: Callable[..., FaultProxy], repo: str, tmp_path: Path) -> None:
    index, (amd64, _), _ = release(tmp_path, plain_registry, repo)
    liar = proxy_factory(plain_registry.url)
    source = open_client(registry_policy("ci", liar.url))
    dest = open_client(registry_policy("prod", auth_registry.url, password_env=ENV), {ENV: auth_registry.password})
    layer = json.loads(amd64.data)["layers"][1]

    liar.inject(f"/blobs/{layer['digest']}", "corrupt", method="GET", times=-1)
    with pytest.raises(DigestMismatch) as error:
        copy_image(source, repo, index.digest, dest, repo, ["v1"])
    assert error.value.expected == layer["digest"]
    assert str(error.value).startswith(
        f"registry ci, repository {repo}: get blob {layer['digest']}: content does not match")
    found = requests.head(f"{auth_registry.url}/v2/{repo}/blobs/{layer['digest']}", auth=auth_registry.auth,
                          timeout=10)
    assert found.status_code == 404  # the partial upload was abandoned, not completed
    assert requests.head(f"{auth_registry.url}/v2/{repo}/manifests/v1", auth=auth_registry.auth,
                         timeout=10).status_code == 404

    liar.reset()
    liar.inject(f"/manifests/{amd64.digest}", "corrupt", method="GET", times=-1)
    uncached = open_client(registry_policy("ci", liar.url), cache_dir=tmp_path / "empty-cache")
    with pytest.raises(DigestMismatch, match=f"get manifest {amd64.digest}"):
        copy_image(uncached, repo, index.digest, dest, repo, ["v1"])


def test_failed_uploads_are_retried_or_restarted(
        plain_registry: RunningRegistry, auth_registry: RunningRegistry, open_client: OpenClient,
        proxy_factory: Callable[..., FaultProxy], repo: str, tmp_path: Path) -> None:
    index, _, _ = release(tmp_path, plain_registry, repo)
    source = open_client(registry_policy("ci", plain_registry.url))
    front = proxy_factory(auth_registry.url)
    policy = registry_policy("prod", front.url, password_env=ENV)

    # Chunked (PATCH) uploads: a chunk is bytes in hand, so the transport sends it again.
    reset = front.inject(r"/blobs/uploads/", "reset", method="PATCH")
    chunked = open_client(policy, {ENV: auth_registry.password}, upload_chunk_size=16 * 1024)
    assert copy_image(source, repo, index.digest, chunked, f"{repo}-chunked", ["v1"]).blobs_copied == 8
    assert reset.times == 0
    assert len([r for r in front.requests if r.method == "PATCH"]) > 8  # 70 kB, 50 kB layers in 16 KiB pieces
    assert raw_digest(f"docker://{auth_registry.host}/{repo}-chunked:v1", auth_registry.creds) == index.digest

    # A streamed PUT cannot be replayed: the copy restarts that blob from a new upload session.
    front.reset()
    refused = front.inject(r"/blobs/uploads/.*digest=", "status", status=503, method="PUT")
    streamed = open_client(policy, {ENV: auth_registry.password})
    assert copy_image(source, repo, index.digest, streamed, f"{repo}-streamed", ["v1"]).blobs_copied == 8
    assert refused.times == 0
    assert len([r for r in front.requests if r.method == "POST"]) == 9  # 8 blobs, one of them twice
    assert raw_digest(f"docker://{auth_registry.host}/{repo}-streamed:v1", auth_registry.creds) == index.digest


BIG_COPY = """
import json, resource, sys
from datetime import timedelta
from reconcile.adapters.registry import copy_image, open_registry
from reconcile.policy.model import Credentials, Registry
from reconcile.policy.secrets import SecretRef, SecretResolver
source_url, dest_url, repository, digest, cache = sys.argv[1:]
source = open_registry(Registry("ci", source_url, None, (source_url[7:],)), None, cache_dir=cache)
dest = open_registry(Registry("prod", dest_url, Credentials("ci-bot", SecretRef("env", env="REGISTRY_PASSWORD")),
                              (dest_url[7:],)), SecretResolver(), cache_dir=cache)
source.ping(), dest.ping()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = copy_image(source, repository, digest, dest, repository, ["big"])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_kib": before, "after_kib": after, "copied": result.bytes_copied}))
"""


def test_a_200_mib_layer_streams_through_in_bounded_memory(
        plain_registry: RunningRegistry, auth_registry: RunningRegistry, repo: str, tmp_path: Path) -> None:
    size = 200 * 1024 * 1024
    layout = Layout(tmp_path / "big")
    image = layout.image(layers=[layout.big_blob(size, seed=7)], layer_sizes=())
    layout.tag(image, "big")
    push(layout, "big", plain_registry.host, repo)
    # A fresh process: the peak RSS (ru_maxrss) of this one is polluted by earlier tests.
    run = subprocess.run([sys.executable, "-c", BIG_COPY, plain_registry.url, auth_registry.url, repo, image.digest,
                          str(tmp_path / "cache")], capture_output=True, text=True, timeout=300,
                         env={"REGISTRY_PASSWORD": auth_registry.password or "", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    measured = json.loads(run.stdout)
    assert measured["copied"] >= size
    growth_mib = (measured["after_kib"] - measured["before_kib"]) / 1024
    assert growth_mib < 40, f"peak RSS grew by {growth_mib:.0f} MiB copying a 200 MiB layer"
    assert raw_digest(f"docker://{auth_registry.host}/{repo}:big", auth_registry.creds) == image.digest


def test_what_a_tag_is_stored_as_is_checked_from_the_put_answer_itself(
        plain_registry: RunningRegistry, auth_registry: RunningRegistry, open_client: OpenClient,
        proxy_factory: Callable[..., FaultProxy], repo: str, tmp_path: Path) -> None:
    """A tag's PUT answer names the digest stored (Docker-Content-Digest), which must be the
    image's: one request a tag, no HEAD after it. An answer naming another digest, or none while
    the tag points nowhere, fails the copy."""
    index, _, _ = release(tmp_path, plain_registry, repo)
    source = open_client(registry_policy("ci", plain_registry.url))
    front = proxy_factory(auth_registry.url)
    dest = open_client(registry_policy("prod", front.url, password_env=ENV), {ENV: auth_registry.password})

    assert copy_image(source, repo, index.digest, dest, f"{repo}-ok", ["v1", "v2"]).digest == index.digest
    tag_requests = [r for r in front.requests if r.path.split("?")[0].endswith(("/manifests/v1", "/manifests/v2"))]
    assert [r.method for r in tag_requests] == ["PUT", "PUT"]

    other = "sha256:" + "0" * 64
    front.inject(r"/manifests/v1$", "status", status=201, method="PUT", headers={"Docker-Content-Digest": other})
    with pytest.raises(DigestMismatch, match=other):
        copy_image(source, repo, index.digest, dest, f"{repo}-lied", ["v1"])
    front.inject(r"/manifests/v1$", "status", status=201, method="PUT")  # no digest named, nothing stored
    with pytest.raises(DigestMismatch, match="no digest"):
        copy_image(source, repo, index.digest, dest, f"{repo}-silent", ["v1"])
