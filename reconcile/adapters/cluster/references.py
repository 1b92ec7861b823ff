"""Image references normalised the way container runtimes do, from pod specs and pod statuses.

Pure functions, no I/O: the grammar is distribution/reference's (what Docker, containerd and
CRI-O use, https://github.com/distribution/reference/blob/main/reference.go), the defaults are
``docker.io`` for a name without a registry, ``library/`` for a one-component Docker Hub name and
the tag ``latest`` when neither a tag nor a digest is given.
"""

from __future__ import annotations

import re

from reconcile.observe.state import ImageReference

DEFAULT_REGISTRY = "docker.io"
_LEGACY_DEFAULT_REGISTRY = "index.docker.io"  # what old Docker clients wrote; runtimes fold it
DEFAULT_TAG = "latest"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_HOST_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REGISTRY = re.compile(rf"(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[[0-9a-fA-F:.%]+\])(?::[0-9]+)?")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}

# Prefixes a runtime puts on status.containerStatuses[].imageID (dockershim, cri-dockerd).
_IMAGE_ID_PREFIXES = ("docker-pullable://", "docker://")


def parse_image(text: str) -> ImageReference:
    """``text`` (a container's ``image``) as a normalised reference; ``ValueError`` if invalid.

    ``nginx`` -> ``docker.io/library/nginx:latest``; ``host:5000/a/b:t@sha256:...`` keeps the
    port, the tag and the digest; ``repo@sha256:...`` stays digest-only (no ``latest`` added).
    """
    if not text or text != text.strip():
        raise ValueError(f"invalid image reference {text!r}: empty or surrounded by whitespace")
    name, at, digest = text.partition("@")
    if at:
        _check_digest(text, digest)
    # The tag is after the last ':' that comes after the last '/' (a registry port has a '/' after it).
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag: str | None = None
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise ValueError(f"invalid image reference {text!r}: bad tag {tag!r}")
    registry, repository = _split_registry(name)
    if not _REGISTRY.fullmatch(registry):
        raise ValueError(f"invalid image reference {text!r}: bad registry {registry!r}")
    if not _REPOSITORY.fullmatch(repository):
        raise ValueError(f"invalid image reference {text!r}: bad repository {repository!r} (lowercase required)")
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        repository = f"library/{repository}"
    if tag is None and not at:
        tag = DEFAULT_TAG
    return ImageReference(registry=registry, repository=repository, tag=tag, digest=digest or None)


def parse_image_id(text: str | None) -> ImageReference | None:
    """The repository digest a runtime reports in ``containerStatuses[].imageID``, or ``None``.

    ``docker-pullable://nginx@sha256:...`` and ``docker.io/library/nginx@sha256:...`` name a
    pullable manifest; ``docker://sha256:...`` and a bare ``sha256:...`` are local image (config)
    IDs that no registry serves, so they resolve nothing.
    """
    if not text:
        return None
    for prefix in _IMAGE_ID_PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    if "@" not in text:
        return None
    try:
        reference = parse_image(text)
    except ValueError:
        return None
    # Runtimes never combine the two here; a tag would only be the 'latest' we did not add anyway.
    return ImageReference(reference.registry, reference.repository, None, reference.digest)


def running_references(image: str, image_id: str | None) -> tuple[ImageReference, ...]:
    """What a container started from ``image`` really runs, given its status ``imageID``.

    A tag resolves to ``registry/repo:tag@digest`` when the runtime pulled that same repository.
    An ``imageID`` naming another repository (a runtime reports any one repo digest of an image
    pulled under several names) or another digest is returned as a second reference, since the
    tag's manifest digest in *this* repository cannot be inferred from it.
    """
    spec = parse_image(image)
    ran = parse_image_id(image_id)
    if ran is None:
        return (spec,)
    same_repository = (ran.registry, ran.repository) == (spec.registry, spec.repository)
    if same_repository and spec.digest is None:
        return (ImageReference(spec.registry, spec.repository, spec.tag, ran.digest),)
    if same_repository and spec.digest == ran.digest:
        return (spec,)
    return (spec, ran)


def pinned(reference: ImageReference) -> str:
    """``registry/repo@sha256:...``: the form deploys write, without a tag that could move."""
    if reference.digest is None:
        raise ValueError(f"{reference} has no digest; deploys pin images by digest")
    return f"{reference.registry}/{reference.repository}@{reference.digest}"


def _split_registry(name: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    # As distribution/reference: the first component is a registry if it has a '.' or a ':',
    # is 'localhost', or has an uppercase letter (repositories are lowercase).
    if slash and (any(c in first for c in ".:") or first == "localhost" or first.lower() != first):
        registry = first.lower()  # host names are case-insensitive; one spelling keeps keys unique
        return (DEFAULT_REGISTRY if registry == _LEGACY_DEFAULT_REGISTRY else registry), rest
    return DEFAULT_REGISTRY, name


def _check_digest(text: str, digest: str) -> None:
    if not _DIGEST.fullmatch(digest):
        raise ValueError(f"invalid image reference {text!r}: bad digest {digest!r}")
    algorithm, _, encoded = digest.partition(":")
    length = _HEX_LENGTHS.get(algorithm)
    if length is not None and not re.fullmatch(rf"[a-f0-9]{{{length}}}", encoded):
        raise ValueError(f"invalid image reference {text!r}: a {algorithm} digest is {length} lowercase hex digits")
