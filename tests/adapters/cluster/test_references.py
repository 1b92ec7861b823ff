"""Image references normalised as container runtimes do: a pure function, table-tested."""

from __future__ import annotations

import pytest

from reconcile.adapters.cluster import parse_image, parse_image_id, pinned, running_references
from reconcile.observe.state import ImageReference

D = "sha256:" + "a" * 64
E = "sha256:" + "e" * 64


@pytest.mark.parametrize(("text", "expected"), [
    ("nginx", ("docker.io", "library/nginx", "latest", None)),
    ("nginx:1.25", ("docker.io", "library/nginx", "1.25", None)),
    ("library/nginx", ("docker.io", "library/nginx", "latest", None)),
    ("docker.io/nginx", ("docker.io", "library/nginx", "latest", None)),
    ("index.docker.io/library/nginx:1", ("docker.io", "library/nginx", "1", None)),  # legacy Hub name
    ("bitnami/redis:7.2", ("docker.io", "bitnami/redis", "7.2", None)),
    (f"nginx@{D}", ("docker.io", "library/nginx", None, D)),  # digest only: no 'latest' added
    (f"nginx:1.25@{D}", ("docker.io", "library/nginx", "1.25", D)),
    ("localhost/app", ("localhost", "app", "latest", None)),
    ("localhost:5000/app", ("localhost:5000", "app", "latest", None)),
    (f"host:5000/a/b:tag@{D}", ("host:5000", "a/b", "tag", D)),  # port, tag and digest all kept
    ("127.0.0.1:5000/team/web:v1.2.3", ("127.0.0.1:5000", "team/web", "v1.2.3", None)),
    ("[::1]:5000/web", ("[::1]:5000", "web", "latest", None)),
    ("Registry.Example.COM/team/web", ("registry.example.com", "team/web", "latest", None)),
    ("ghcr.io/acme/deep/path/web:2024.01.02-rc_1", ("ghcr.io", "acme/deep/path/web", "2024.01.02-rc_1", None)),
    ("gcr.io/distroless/static:nonroot", ("gcr.io", "distroless/static", "nonroot", None)),
    ("my-registry/app", ("docker.io", "my-registry/app", "latest", None)),  # no '.', ':' or localhost: a Hub user
])
def test_parse_image_normalises_like_the_runtime(text: str, expected: tuple[str, str, str | None, str | None]) -> None:
    assert parse_image(text) == ImageReference(*expected)


@pytest.mark.parametrize("text", ["", " nginx", "nginx ", "Nginx", "nginx:", "nginx:-bad", "nginx@sha256:abc",
                                  f"nginx@sha256:{'A' * 64}", "a//b", "host:port:5000/x", "nginx@"])
def test_parse_image_rejects_what_no_runtime_pulls(text: str) -> None:
    with pytest.raises(ValueError, match="invalid image reference"):
        parse_image(text)


@pytest.mark.parametrize(("image_id", "expected"), [
    (f"docker.io/library/nginx@{D}", ("docker.io", "library/nginx", None, D)),  # containerd, CRI-O
    (f"docker-pullable://nginx@{D}", ("docker.io", "library/nginx", None, D)),  # dockershim, cri-dockerd
    (f"docker-pullable://registry.local:5000/team/web@{D}", ("registry.local:5000", "team/web", None, D)),
    (f"docker://{D}", None),  # a local image ID: no registry serves it
    (D, None),
    ("", None),
    (None, None),
    ("docker.io/library/nginx:1.25", None),  # no digest
])
def test_parse_image_id_strips_runtime_prefixes(image_id: str | None,
                                                expected: tuple[str, str, str | None, str] | None) -> None:
    assert parse_image_id(image_id) == (ImageReference(*expected) if expected else None)


@pytest.mark.parametrize(("image", "image_id", "expected"), [
    # A tag resolves to the digest the runtime pulled for it.
    ("nginx:1.25", f"docker.io/library/nginx@{D}", [f"docker.io/library/nginx:1.25@{D}"]),
    ("nginx", f"docker-pullable://nginx@{D}", [f"docker.io/library/nginx:latest@{D}"]),
    # Not started yet, or a local image: the reference as written.
    ("nginx:1.25", "", ["docker.io/library/nginx:1.25"]),
    ("nginx:1.25", f"docker://{D}", ["docker.io/library/nginx:1.25"]),
    # Pinned by digest and running it.
    (f"ghcr.io/a/b@{D}", f"ghcr.io/a/b@{D}", [f"ghcr.io/a/b@{D}"]),
    # The runtime reports another repository's digest for the same image: both are in use.
    ("ghcr.io/a/b:1", f"mirror.local/a/b@{E}", ["ghcr.io/a/b:1", f"mirror.local/a/b@{E}"]),
    # Pinned to an index digest, the runtime reports a different one: both kept.
    (f"ghcr.io/a/b@{D}", f"ghcr.io/a/b@{E}", [f"ghcr.io/a/b@{D}", f"ghcr.io/a/b@{E}"]),
])
def test_running_references_resolve_what_a_tag_ran_as(image: str, image_id: str, expected: list[str]) -> None:
    assert [str(ref) for ref in running_references(image, image_id)] == expected


def test_pinned_drops_the_tag_and_needs_a_digest() -> None:
    assert pinned(parse_image(f"host:5000/a/b:tag@{D}")) == f"host:5000/a/b@{D}"
    with pytest.raises(ValueError, match="has no digest"):
        pinned(parse_image("nginx:1.25"))
