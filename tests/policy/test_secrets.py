"""Tests for reconcile.policy.secrets: masking, references, resolution, and no leaks."""

from __future__ import annotations

import base64
import copy
import dataclasses
import io
import json
import logging
import pickle
import re
import secrets
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from reconcile.adapters.cluster.secrets import read_kubernetes_secret
from reconcile.policy.secrets import (
    MAX_SECRET_BYTES,
    BasicCredentials,
    Secret,
    SecretError,
    SecretRef,
    SecretResolver,
    normalize_registry_host,
)

PURPOSE = "Registry/ci spec.credentials.password"


@pytest.fixture
def canary() -> str:
    return "canary-" + secrets.token_hex(8)


def b64(value: str | bytes) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode()


def leak_forms(canary: str) -> list[str]:
    """The canary as text and as base64 (the form it has inside docker/kubernetes data)."""
    return [canary, b64(canary), b64(canary + "\n")]


def assert_no_leak(text: str, canary: str) -> None:
    for form in leak_forms(canary):
        assert form not in text


def catch(call: Callable[[], object]) -> SecretError:
    # A frame of our own, so capture_locals below does not see the test's canary variable.
    try:
        call()
    except SecretError as err:
        return err
    raise AssertionError("expected a SecretError")


def assert_clean_error(err: SecretError, canary: str) -> None:
    """The error carries no trace of the canary anywhere a tool could print or ship it."""
    assert err.__cause__ is None
    assert err.__context__ is None
    assert_no_leak(str(err), canary)
    assert_no_leak(repr(err), canary)
    assert_no_leak("".join(traceback.format_exception(err)), canary)
    with_locals = traceback.TracebackException.from_exception(err, capture_locals=True)
    assert_no_leak("".join(with_locals.format()), canary)
    pickled = pickle.dumps(err)
    for form in leak_forms(canary):
        assert form.encode() not in pickled


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- Secret


def test_secret_masks_every_string_path(canary: str) -> None:
    s = Secret(canary)
    renderings = [
        str(s),
        repr(s),
        format(s),
        format(s, ">20"),
        f"{s}",
        f"{s!s}",
        f"{s!r}",
        f"{s:^11}",
        # The %-operator and str.format are separate code paths from f-strings.
        "%s" % s,  # noqa: UP031
        "%r" % s,  # noqa: UP031
        "%s %r" % (s, s),  # noqa: UP031
        "{} {!r}".format(s, s),  # noqa: UP032
        json.dumps(s),
        json.dumps({"token": s, s: [s]}),
        s + "-suffix",
        "prefix-" + s,
        "".join([s, s]),
        s.upper(),
        s[:],
        str([s]),
        str({"k": s}),
    ]
    for rendered in renderings:
        assert canary not in rendered
    assert str(s) == "***"
    assert repr(s) == "Secret('***')"
    assert json.dumps(s) == '"***"'
    assert s.reveal() == canary


def test_secret_len_is_the_mask_and_bool_is_the_real_value(canary: str) -> None:
    assert len(Secret(canary)) == len("***")  # documented: len() sees the mask
    assert Secret(canary)
    assert not Secret("")


def test_secret_has_no_instance_dict(canary: str) -> None:
    with pytest.raises(TypeError):
        vars(Secret(canary))


def test_secret_rejects_non_strings() -> None:
    with pytest.raises(TypeError, match="int"):
        Secret(12345)  # type: ignore[arg-type]


def test_secret_from_secret_keeps_value(canary: str) -> None:
    assert Secret(Secret(canary)).reveal() == canary


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_secret_cannot_be_pickled(canary: str, protocol: int) -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret(canary), protocol=protocol)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps({"nested": [Secret(canary)]}, protocol=protocol)


def test_secret_cannot_enter_a_multiprocessing_queue(canary: str) -> None:
    # multiprocessing queues and pools serialise with ForkingPickler.
    with pytest.raises(TypeError, match="cannot be pickled"):
        ForkingPickler.dumps(Secret(canary))


def test_secret_getstate_and_reduce_raise(canary: str) -> None:
    s = Secret(canary)
    for call in (s.__getstate__, s.__reduce__, lambda: s.__reduce_ex__(2)):
        with pytest.raises(TypeError, match="cannot be pickled"):
            call()


def test_secret_copies_are_equivalent(canary: str) -> None:
    s = Secret(canary)
    for clone in (copy.copy(s), copy.deepcopy(s), copy.deepcopy({"a": [s]})["a"][0]):
        assert isinstance(clone, Secret)
        assert clone == s
        assert clone.reveal() == canary


def test_secret_equality_and_hash(canary: str) -> None:
    a, b = Secret(canary), Secret(canary)
    other = Secret(canary + "x")
    assert a == b
    assert not a != b  # noqa: SIM202 - exercises __ne__, which str would otherwise supply
    assert hash(a) == hash(b)
    assert a != other
    assert len({a, b, other}) == 2
    # Never equal to plain strings: not the real value, not the mask.
    assert a != canary
    assert canary != a
    assert Secret("x") != "***"
    assert "***" != Secret("x")  # noqa: SIM300 - the reflected comparison is the point
    assert Secret("ünïcødé") == Secret("ünïcødé")


def test_secret_subclass_still_masks(canary: str) -> None:
    class TokenSecret(Secret):
        pass

    token = TokenSecret(canary)
    assert repr(token) == "TokenSecret('***')"
    assert str(token) == "***"
    assert token.reveal() == canary


# --------------------------------------------------------------------------- BasicCredentials


def test_basic_credentials_never_show_values(canary: str) -> None:
    creds = BasicCredentials(Secret("user-" + canary), Secret(canary))
    renderings = [
        str(creds),
        repr(creds),
        f"{creds}",
        f"{creds!r}",
        "%s %r" % (creds, creds),  # noqa: UP031
        json.dumps(dataclasses.asdict(creds)),
        str(dataclasses.astuple(creds)),
    ]
    for rendered in renderings:
        assert canary not in rendered
    assert repr(creds) == "BasicCredentials(username=Secret('***'), password=Secret('***'))"
    with pytest.raises(TypeError) as info:
        json.dumps(creds)
    assert canary not in str(info.value)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(creds)
    assert creds.reveal() == ("user-" + canary, canary)


def test_basic_credentials_require_secrets() -> None:
    with pytest.raises(TypeError):
        BasicCredentials("user", "pass")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- logging


def test_logging_never_shows_values(canary: str, caplog: pytest.LogCaptureFixture) -> None:
    s = Secret(canary)
    creds = BasicCredentials(Secret(canary), Secret(canary))
    log = logging.getLogger("tests.policy.secrets.logging")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    log.addHandler(handler)
    try:
        with caplog.at_level(logging.DEBUG, logger=log.name):
            log.info("%s %r", s, s)
            log.info(f"{s}")
            log.info("credentials %s / %r", creds, creds)
            log.warning("mapping %s", {"password": s})
            try:
                raise ValueError(s)
            except ValueError:
                log.exception("failed with %s", s)
    finally:
        log.removeHandler(handler)

    streamed = stream.getvalue()
    assert "*** Secret('***')" in streamed
    assert canary not in streamed
    assert canary not in caplog.text
    for record in caplog.records:
        assert canary not in record.getMessage()
        assert canary not in handler.format(record)


# --------------------------------------------------------------------------- SecretRef


@pytest.mark.parametrize(
    ("data", "expected", "description"),
    [
        (
            {"env": "CI_REGISTRY_USER"},
            SecretRef(source="env", env="CI_REGISTRY_USER"),
            "env:CI_REGISTRY_USER",
        ),
        (
            {"file": "/var/run/secrets/ci/token"},
            SecretRef(source="file", path="/var/run/secrets/ci/token"),
            "file:/var/run/secrets/ci/token",
        ),
        (
            {"kubernetes": {"namespace": "ns", "name": "regcred", "key": "password"}},
            SecretRef(source="kubernetes", namespace="ns", name="regcred", key="password"),
            "kubernetes:ns/regcred#password",
        ),
        (
            {"dockerConfig": "/root/.docker/config.json"},
            SecretRef(source="dockerConfig", path="/root/.docker/config.json"),
            "dockerConfig:/root/.docker/config.json",
        ),
    ],
)
def test_secret_ref_from_mapping(
    data: dict[str, Any], expected: SecretRef, description: str
) -> None:
    ref = SecretRef.from_mapping(data)
    assert ref == expected
    assert hash(ref) == hash(expected)
    assert ref.describe() == description
    assert str(ref) == description


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"env": "A", "file": "b"},
        {"password": "CANARY"},
        {"env": ""},
        {"env": 3},
        {"file": None},
        {"env": {"value": "CANARY"}},
        {"kubernetes": {"namespace": "ns", "name": "n"}},
        {"kubernetes": {"namespace": "ns", "name": "n", "key": "k", "extra": "CANARY"}},
        {"kubernetes": {"namespace": "", "name": "n", "key": "k"}},
        {"kubernetes": "ns/n#k"},
        "env:CANARY",
    ],
)
def test_secret_ref_from_mapping_rejects(data: Any, canary: str) -> None:
    # Substitute the canary so a mistakenly inlined secret is provably not echoed.
    data = json.loads(json.dumps(data).replace("CANARY", canary))
    with pytest.raises(ValueError) as info:
        SecretRef.from_mapping(data)
    assert canary not in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"source": "env"},
        {"source": "env", "env": "A", "path": "x"},
        {"source": "file", "env": "A"},
        {"source": "kubernetes", "namespace": "ns", "name": "n"},
        {"source": "bogus", "env": "A"},
    ],
)
def test_secret_ref_validates_direct_construction(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SecretRef(**kwargs)


def test_secret_ref_is_frozen() -> None:
    ref = SecretRef(source="env", env="A")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.env = "B"  # type: ignore[misc]


# --------------------------------------------------------------------------- env


def test_env_resolves(canary: str) -> None:
    resolver = SecretResolver(environ={"CI_TOKEN": canary})
    value = resolver.resolve(SecretRef(source="env", env="CI_TOKEN"), purpose=PURPOSE)
    assert isinstance(value, Secret)
    assert value.reveal() == canary


def test_env_defaults_to_process_environment(canary: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILE_TEST_TOKEN", canary)
    value = SecretResolver().resolve(
        SecretRef(source="env", env="RECONCILE_TEST_TOKEN"), purpose=PURPOSE
    )
    assert value.reveal() == canary


@pytest.mark.parametrize(("environ", "problem"), [({}, "is not set"), ({"CI_TOKEN": ""}, "empty")])
def test_env_missing_or_empty(environ: dict[str, str], problem: str) -> None:
    resolver = SecretResolver(environ=environ)
    err = catch(lambda: resolver.resolve(SecretRef(source="env", env="CI_TOKEN"), purpose=PURPOSE))
    assert "CI_TOKEN" in str(err)
    assert PURPOSE in str(err)
    assert problem in str(err)
    assert err.ref == SecretRef(source="env", env="CI_TOKEN")
    assert err.purpose == PURPOSE


# --------------------------------------------------------------------------- file


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("VALUE", "VALUE"),
        ("VALUE\n", "VALUE"),
        ("VALUE\r\n", "VALUE"),
        ("VALUE\n\n", "VALUE\n"),
        ("VALUE\r\n\r\n", "VALUE\r\n"),
        ("  VALUE  \n", "  VALUE  "),
        ("line1\nline2\n", "line1\nline2"),
    ],
)
def test_file_strips_exactly_one_trailing_newline(
    tmp_path: Path, canary: str, content: str, expected: str
) -> None:
    write(tmp_path / "ci" / "token", content.replace("VALUE", canary))
    resolver = SecretResolver(base_dir=tmp_path)
    value = resolver.resolve(SecretRef(source="file", path="ci/token"), purpose=PURPOSE)
    assert value.reveal() == expected.replace("VALUE", canary)


def test_file_absolute_path(tmp_path: Path, canary: str) -> None:
    path = write(tmp_path / "token", canary + "\n")
    resolver = SecretResolver(base_dir=tmp_path / "elsewhere")
    assert resolver.resolve(SecretRef(source="file", path=str(path)), purpose=PURPOSE) == Secret(
        canary
    )


def test_file_relative_to_cwd_by_default(
    tmp_path: Path, canary: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "token", canary)
    monkeypatch.chdir(tmp_path)
    value = SecretResolver().resolve(SecretRef(source="file", path="token"), purpose=PURPOSE)
    assert value.reveal() == canary


def test_file_is_read_once_per_resolver(tmp_path: Path, canary: str) -> None:
    path = write(tmp_path / "token", canary + "\n")
    ref = SecretRef(source="file", path="token")
    resolver = SecretResolver(base_dir=tmp_path)
    first = resolver.resolve(ref, purpose=PURPOSE)
    write(path, "rotated\n")
    assert resolver.resolve(ref, purpose=PURPOSE).reveal() == canary
    assert resolver.resolve(ref, purpose="another purpose") is first
    # The cache lives as long as the resolver (one run); a new run sees the new value.
    assert SecretResolver(base_dir=tmp_path).resolve(ref, purpose=PURPOSE).reveal() == "rotated"


def test_file_deleted_after_first_resolve_still_resolves(tmp_path: Path, canary: str) -> None:
    path = write(tmp_path / "token", canary)
    resolver = SecretResolver(base_dir=tmp_path)
    ref = SecretRef(source="file", path="token")
    resolver.resolve(ref, purpose=PURPOSE)
    path.unlink()
    assert resolver.resolve(ref, purpose=PURPOSE).reveal() == canary


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "is empty"),
        (b"\n", "is empty"),
        (b"\r\n", "is empty"),
        (b"x" * (MAX_SECRET_BYTES + 1), "larger than 1 MiB"),
    ],
)
def test_file_rejects_bad_content(tmp_path: Path, content: bytes, problem: str) -> None:
    write(tmp_path / "token", content)
    resolver = SecretResolver(base_dir=tmp_path)
    err = catch(lambda: resolver.resolve(SecretRef(source="file", path="token"), purpose=PURPOSE))
    assert problem in str(err)
    assert "file:token" in str(err)
    assert PURPOSE in str(err)


def test_file_of_exactly_the_limit_is_accepted(tmp_path: Path) -> None:
    write(tmp_path / "token", b"x" * MAX_SECRET_BYTES)
    value = SecretResolver(base_dir=tmp_path).resolve(
        SecretRef(source="file", path="token"), purpose=PURPOSE
    )
    assert len(value.reveal()) == MAX_SECRET_BYTES


def test_file_missing_or_directory(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    resolver = SecretResolver(base_dir=tmp_path)
    missing = catch(
        lambda: resolver.resolve(SecretRef(source="file", path="nope"), purpose=PURPOSE)
    )
    assert "does not exist" in str(missing)
    assert "nope" in str(missing)
    directory = catch(
        lambda: resolver.resolve(SecretRef(source="file", path="adir"), purpose=PURPOSE)
    )
    assert "directory" in str(directory)


def test_file_not_utf8_does_not_leak(tmp_path: Path, canary: str) -> None:
    write(tmp_path / "token", b"\xff\xfe" + canary.encode() + b"\xc3\x28" + canary.encode())
    resolver = SecretResolver(base_dir=tmp_path)
    err = catch(lambda: resolver.resolve(SecretRef(source="file", path="token"), purpose=PURPOSE))
    assert "not valid UTF-8" in str(err)
    assert PURPOSE in str(err)
    assert_clean_error(err, canary)


# --------------------------------------------------------------------------- dockerConfig


DOCKER_AUTHS = {
    "registry.example.com": {"auth": b64("alice:pa:ss")},
    "https://ghcr.io": {"username": "bob", "password": "gh-pass"},
    "https://quay.io/v1/": {"auth": b64("carol:quay-pass"), "email": "carol@example.com"},
    "registry.example.com:5000": {"auth": b64("dave:port-pass")},
    "https://index.docker.io/v1/": {"auth": b64("erin:hub-pass")},
    "http://insecure.local:8080/": {"auth": b64("frank:insecure-pass")},
    "myregistry.azurecr.io": {
        "auth": b64("00000000-0000-0000-0000-000000000000:"),
        "identitytoken": "acr-refresh-token",
    },
}


@pytest.fixture
def docker_config(tmp_path: Path) -> Path:
    return write(tmp_path / "docker" / "config.json", json.dumps({"auths": DOCKER_AUTHS}))


@pytest.mark.parametrize(
    ("host", "username", "password"),
    [
        ("registry.example.com", "alice", "pa:ss"),
        ("Registry.Example.COM", "alice", "pa:ss"),
        ("https://registry.example.com/v2/", "alice", "pa:ss"),
        ("registry.example.com:5000", "dave", "port-pass"),
        ("ghcr.io", "bob", "gh-pass"),
        ("quay.io", "carol", "quay-pass"),
        ("docker.io", "erin", "hub-pass"),
        ("index.docker.io", "erin", "hub-pass"),
        ("registry-1.docker.io", "erin", "hub-pass"),
        ("insecure.local:8080", "frank", "insecure-pass"),
        ("myregistry.azurecr.io", "<token>", "acr-refresh-token"),
    ],
)
def test_docker_config_lookups(
    docker_config: Path, host: str, username: str, password: str
) -> None:
    resolver = SecretResolver(base_dir=docker_config.parent.parent)
    ref = SecretRef(source="dockerConfig", path="docker/config.json")
    creds = resolver.resolve_docker_config(ref, host=host, purpose=PURPOSE)
    assert isinstance(creds, BasicCredentials)
    assert creds.reveal() == (username, password)
    assert username not in repr(creds)
    assert password not in repr(creds)


@pytest.mark.parametrize("key", ["docker.io", "index.docker.io", "registry-1.docker.io"])
@pytest.mark.parametrize(
    "host", ["docker.io", "https://index.docker.io/v1/", "registry-1.docker.io"]
)
def test_docker_hub_aliases(tmp_path: Path, key: str, host: str) -> None:
    path = write(tmp_path / "config.json", json.dumps({"auths": {key: {"auth": b64("u:p")}}}))
    ref = SecretRef(source="dockerConfig", path=str(path))
    creds = SecretResolver().resolve_docker_config(ref, host=host, purpose=PURPOSE)
    assert creds.reveal() == ("u", "p")


def test_docker_config_host_match_is_exact(docker_config: Path) -> None:
    resolver = SecretResolver()
    ref = SecretRef(source="dockerConfig", path=str(docker_config))
    for host in ("example.com", "registry.example.com:443", "ghcr.io.evil.com", "docker.io:443"):
        err = catch(lambda h=host: resolver.resolve_docker_config(ref, host=h, purpose=PURPOSE))
        assert "has no credentials for" in str(err)
        assert normalize_registry_host(host) in str(err)


def test_docker_config_skips_empty_entries_for_the_same_host(tmp_path: Path) -> None:
    config = {"auths": {"https://index.docker.io/v1/": {}, "docker.io": {"auth": b64("u:p")}}}
    path = write(tmp_path / "config.json", json.dumps(config))
    creds = SecretResolver().resolve_docker_config(
        SecretRef(source="dockerConfig", path=str(path)), host="docker.io", purpose=PURPOSE
    )
    assert creds.reveal() == ("u", "p")


def test_docker_config_auth_without_padding(tmp_path: Path) -> None:
    encoded = b64("user:pw").rstrip("=")
    path = write(tmp_path / "c.json", json.dumps({"auths": {"r.io": {"auth": encoded}}}))
    creds = SecretResolver().resolve_docker_config(
        SecretRef(source="dockerConfig", path=str(path)), host="r.io", purpose=PURPOSE
    )
    assert creds.reveal() == ("user", "pw")


@pytest.mark.parametrize(
    ("config", "which"),
    [
        ({"auths": {"ghcr.io": {}}, "credsStore": "desktop"}, "credsStore"),
        ({"credsStore": "osxkeychain"}, "credsStore"),
        ({"auths": {}, "credHelpers": {"gcr.io": "gcloud"}}, "credHelpers"),
        ({"credHelpers": {"https://gcr.io": "gcloud"}}, "credHelpers"),
    ],
)
def test_docker_credential_helpers_are_rejected(
    tmp_path: Path, config: dict[str, Any], which: str
) -> None:
    path = write(tmp_path / "config.json", json.dumps(config))
    host = "gcr.io" if which == "credHelpers" else "ghcr.io"
    err = catch(
        lambda: SecretResolver().resolve_docker_config(
            SecretRef(source="dockerConfig", path=str(path)), host=host, purpose=PURPOSE
        )
    )
    assert "credential helper" in str(err)
    assert "not supported" in str(err)
    assert "`auth`" in str(err)
    assert which in str(err)
    assert host in str(err)


def test_docker_inline_auth_wins_over_helpers(tmp_path: Path) -> None:
    config = {"auths": {"gcr.io": {"auth": b64("u:p")}}, "credHelpers": {"gcr.io": "gcloud"}}
    path = write(tmp_path / "config.json", json.dumps(config))
    creds = SecretResolver().resolve_docker_config(
        SecretRef(source="dockerConfig", path=str(path)), host="gcr.io", purpose=PURPOSE
    )
    assert creds.reveal() == ("u", "p")


@pytest.mark.parametrize(
    ("build", "problem"),
    [
        # Malformed base64 whose text includes the canary.
        (lambda c: json.dumps({"auths": {"r.io": {"auth": c + "!!" + c}}}), "not valid base64"),
        # Non-ASCII in the auth string (binascii refuses it outright).
        (lambda c: json.dumps({"auths": {"r.io": {"auth": "é" + c}}}), "not valid base64"),
        # Invalid JSON with the canary in it (JSONDecodeError.doc is the whole file).
        (lambda c: '{"auths": {"r.io": {"auth": "' + c + '", }', "not valid JSON"),
        (lambda c: c, "not valid JSON"),
        # Auth that decodes but lacks the colon.
        (lambda c: json.dumps({"auths": {"r.io": {"auth": b64(c)}}}), "username:password"),
        # Auth that decodes to bytes that are not UTF-8.
        (
            lambda c: json.dumps({"auths": {"r.io": {"auth": b64(b"\xff" + c.encode() + b":x")}}}),
            "not valid UTF-8",
        ),
        # Empty password.
        (lambda c: json.dumps({"auths": {"r.io": {"auth": b64(c + ":")}}}), "empty"),
        # Half a username/password pair.
        (lambda c: json.dumps({"auths": {"r.io": {"password": c}}}), "both a username"),
        (lambda c: json.dumps({"auths": {"r.io": {"auth": 12}}}), "not a string"),
        (lambda c: json.dumps({"auths": {"r.io": c}}), "not an object"),
        (lambda c: json.dumps({"auths": [c]}), "not an object"),
        (lambda c: json.dumps([c]), "not a JSON object"),
        (lambda c: b"\xff" + c.encode(), "not valid UTF-8"),
        (lambda c: json.dumps({"auths": {c: {"auth": b64("u:p")}}}), "has no credentials"),
    ],
)
def test_docker_config_errors_do_not_leak(
    tmp_path: Path, canary: str, build: Callable[[str], str | bytes], problem: str
) -> None:
    path = write(tmp_path / "config.json", build(canary))
    resolver = SecretResolver()
    ref = SecretRef(source="dockerConfig", path=str(path))
    err = catch(lambda: resolver.resolve_docker_config(ref, host="r.io", purpose=PURPOSE))
    assert problem in str(err)
    assert PURPOSE in str(err)
    assert f"dockerConfig:{path}" in str(err)
    assert_clean_error(err, canary)


def test_docker_config_missing_file(tmp_path: Path) -> None:
    resolver = SecretResolver(base_dir=tmp_path)
    ref = SecretRef(source="dockerConfig", path="missing/config.json")
    err = catch(lambda: resolver.resolve_docker_config(ref, host="r.io", purpose=PURPOSE))
    assert "does not exist" in str(err)


def test_docker_config_read_once(tmp_path: Path, docker_config: Path) -> None:
    resolver = SecretResolver()
    ref = SecretRef(source="dockerConfig", path=str(docker_config))
    first = resolver.resolve_docker_config(ref, host="ghcr.io", purpose=PURPOSE)
    write(docker_config, json.dumps({"auths": {"ghcr.io": {"auth": b64("new:new")}}}))
    assert resolver.resolve_docker_config(ref, host="ghcr.io", purpose=PURPOSE) is first
    # Other hosts come from the same (cached) read of the file, not the rewritten one.
    other = resolver.resolve_docker_config(ref, host="quay.io", purpose=PURPOSE)
    assert other.reveal() == ("carol", "quay-pass")
    assert SecretResolver().resolve_docker_config(
        ref, host="ghcr.io", purpose=PURPOSE
    ).reveal() == ("new", "new")


def test_docker_config_and_single_value_refs_are_not_interchangeable(docker_config: Path) -> None:
    resolver = SecretResolver(environ={"A": "x"})
    docker_ref = SecretRef(source="dockerConfig", path=str(docker_config))
    err = catch(lambda: resolver.resolve(docker_ref, purpose=PURPOSE))
    assert "username/password" in str(err)
    env_ref = SecretRef(source="env", env="A")
    err = catch(lambda: resolver.resolve_docker_config(env_ref, host="r.io", purpose=PURPOSE))
    assert "dockerConfig" in str(err)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("registry.example.com", "registry.example.com"),
        ("https://registry.example.com/v1/", "registry.example.com"),
        ("http://Registry.Example.com:5000/v2/", "registry.example.com:5000"),
        ("registry.example.com:5000/path", "registry.example.com:5000"),
        ("index.docker.io", "docker.io"),
        ("https://index.docker.io/v1/", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("docker.io", "docker.io"),
    ],
)
def test_normalize_registry_host(value: str, expected: str) -> None:
    assert normalize_registry_host(value) == expected


# --------------------------------------------------------------------------- kubernetes (injected)


K8S_REF = SecretRef(source="kubernetes", namespace="ci", name="registry", key="password")


def test_kubernetes_injected_reader_is_called_once(canary: str) -> None:
    calls: list[tuple[str, str, str]] = []

    def reader(namespace: str, name: str, key: str) -> bytes:
        calls.append((namespace, name, key))
        return canary.encode() + b"\n"

    resolver = SecretResolver(kubernetes_reader=reader)
    assert resolver.resolve(K8S_REF, purpose=PURPOSE).reveal() == canary
    assert resolver.resolve(K8S_REF, purpose=PURPOSE).reveal() == canary
    assert calls == [("ci", "registry", "password")]


def test_kubernetes_reader_failure_does_not_leak(canary: str) -> None:
    def reader(namespace: str, name: str, key: str) -> bytes:
        raise RuntimeError(f"response was {canary}")

    err = catch(lambda: SecretResolver(kubernetes_reader=reader).resolve(K8S_REF, purpose=PURPOSE))
    assert "RuntimeError" in str(err)
    assert_clean_error(err, canary)


def test_kubernetes_non_utf8_value_does_not_leak(canary: str) -> None:
    def reader(namespace: str, name: str, key: str) -> bytes:
        return b"\xff" + canary.encode()

    err = catch(lambda: SecretResolver(kubernetes_reader=reader).resolve(K8S_REF, purpose=PURPOSE))
    assert "not valid UTF-8" in str(err)
    assert "kubernetes:ci/registry#password" in str(err)
    assert_clean_error(err, canary)


def test_kubernetes_empty_value() -> None:
    err = catch(
        lambda: SecretResolver(kubernetes_reader=lambda *_: b"\n").resolve(K8S_REF, purpose=PURPOSE)
    )
    assert "empty" in str(err)


# --------------------------------------------------------------------------- kubernetes (real)


class FakeKubeAPI:
    """Just enough of kube-apiserver for `GET /api/v1/namespaces/<ns>/secrets/<name>`."""

    def __init__(self, token: str, note: str) -> None:
        self.token = token
        self.note = note  # put into every error body, to prove bodies are never echoed
        self.secrets: dict[tuple[str, str], dict[str, bytes]] = {}
        self.forbidden: set[str] = set()
        self.authorizations: list[str | None] = []
        self.url = ""

    def status(self, code: int, reason: str, message: str) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f"{message} ({self.note})",
            "reason": reason,
            "code": code,
        }

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        self.authorizations.append(authorization)
        if authorization != f"Bearer {self.token}":
            return 401, self.status(401, "Unauthorized", "Unauthorized")
        match = re.fullmatch(r"/api/v1/namespaces/([^/]+)/secrets/([^/]+)", path)
        if match is None:
            return 404, self.status(404, "NotFound", "the server could not find the resource")
        namespace, name = match.groups()
        if namespace in self.forbidden:
            return 403, self.status(
                403,
                "Forbidden",
                f'secrets "{name}" is forbidden: User "system:serviceaccount:ci:reconcile" '
                f'cannot get resource "secrets" in API group "" in the namespace "{namespace}"',
            )
        data = self.secrets.get((namespace, name))
        if data is None:
            return 404, self.status(404, "NotFound", f'secrets "{name}" not found')
        return 200, {
            "kind": "Secret",
            "apiVersion": "v1",
            "metadata": {"name": name, "namespace": namespace, "uid": "0000", "labels": {}},
            "data": {key: b64(value) for key, value in data.items()},
            "type": "Opaque",
        }


def write_kubeconfig(path: Path, server: str, token: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "fake", "user": {"token": token}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        "current-context": "fake",
    }
    return write(path, yaml.safe_dump(config))


@pytest.fixture
def fake_kube(
    tmp_path: Path, canary: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeKubeAPI]:
    api = FakeKubeAPI(token="kube-token-" + secrets.token_hex(4), note=canary)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code, body = api.answer(urlsplit(self.path).path, self.headers.get("Authorization"))
            payload = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep pytest output quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    kubeconfig = write_kubeconfig(tmp_path / "kube" / "config", api.url, api.token)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_default_reader_resolves_through_kubernetes_client(
    fake_kube: FakeKubeAPI, canary: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake_kube.secrets[("ci", "registry")] = {"password": canary.encode() + b"\n", "user": b"u"}
    caplog.set_level(logging.DEBUG)
    resolver = SecretResolver(kubernetes_reader=read_kubernetes_secret)
    value = resolver.resolve(K8S_REF, purpose=PURPOSE)
    assert value.reveal() == canary
    assert resolver.resolve(K8S_REF, purpose=PURPOSE) is value
    assert fake_kube.authorizations == [f"Bearer {fake_kube.token}"]
    assert_no_leak(caplog.text, canary)
    assert read_kubernetes_secret("ci", "registry", "user") == b"u"


def test_default_reader_not_found(fake_kube: FakeKubeAPI, canary: str) -> None:
    err = catch(lambda: SecretResolver(kubernetes_reader=read_kubernetes_secret).resolve(K8S_REF, purpose=PURPOSE))
    assert "secret ci/registry not found" in str(err)
    assert PURPOSE in str(err)
    assert "kubernetes:ci/registry#password" in str(err)
    assert_clean_error(err, canary)


def test_default_reader_forbidden(fake_kube: FakeKubeAPI, canary: str) -> None:
    fake_kube.secrets[("ci", "registry")] = {"password": canary.encode()}
    fake_kube.forbidden.add("ci")
    err = catch(lambda: SecretResolver(kubernetes_reader=read_kubernetes_secret).resolve(K8S_REF, purpose=PURPOSE))
    assert "forbidden: the service account needs `get` on `secrets` in namespace ci" in str(err)
    assert_clean_error(err, canary)


def test_default_reader_missing_key(fake_kube: FakeKubeAPI, canary: str) -> None:
    fake_kube.secrets[("ci", "registry")] = {"token": canary.encode(), "user": canary.encode()}
    err = catch(lambda: SecretResolver(kubernetes_reader=read_kubernetes_secret).resolve(K8S_REF, purpose=PURPOSE))
    assert "secret ci/registry has no key 'password'" in str(err)
    assert_clean_error(err, canary)


def test_default_reader_direct_call_errors(fake_kube: FakeKubeAPI, canary: str) -> None:
    fake_kube.secrets[("ci", "registry")] = {"token": canary.encode()}
    err = catch(lambda: read_kubernetes_secret("ci", "registry", "password"))
    assert str(err) == "secret ci/registry has no key 'password'"
    assert_clean_error(err, canary)


def test_default_reader_unauthorized(
    fake_kube: FakeKubeAPI, canary: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = write_kubeconfig(tmp_path / "wrong", fake_kube.url, "not-the-token")
    monkeypatch.setenv("KUBECONFIG", str(wrong))
    err = catch(lambda: SecretResolver(kubernetes_reader=read_kubernetes_secret).resolve(K8S_REF, purpose=PURPOSE))
    assert "unauthorized" in str(err)
    assert_clean_error(err, canary)


def test_default_reader_unreachable_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}", "t")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    err = catch(lambda: SecretResolver(kubernetes_reader=read_kubernetes_secret).resolve(K8S_REF, purpose=PURPOSE))
    assert "cannot reach the Kubernetes API" in str(err)


def test_default_reader_bad_kubeconfig(
    tmp_path: Path, canary: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = write(tmp_path / "kubeconfig", f"users: [{{token: {canary}\n")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    err = catch(lambda: SecretResolver(kubernetes_reader=read_kubernetes_secret).resolve(K8S_REF, purpose=PURPOSE))
    assert "kubeconfig" in str(err)
    assert_clean_error(err, canary)


def test_default_reader_uses_in_cluster_config_when_in_a_pod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    monkeypatch.setenv("RECONCILE_SERVICE_ACCOUNT_DIR", str(tmp_path / "serviceaccount"))  # no token in it
    err = catch(lambda: SecretResolver(kubernetes_reader=read_kubernetes_secret).resolve(K8S_REF, purpose=PURPOSE))
    assert "in-cluster" in str(err)
    assert "token file does not exist" in str(err)


# --------------------------------------------------------------------------- SecretError


def test_secret_error_pickles_and_keeps_fields() -> None:
    err = SecretError("is empty", ref=SecretRef(source="env", env="A"), purpose=PURPOSE)
    assert str(err) == f"{PURPOSE}: env:A: is empty"
    clone = pickle.loads(pickle.dumps(err))
    assert str(clone) == str(err)
    assert clone.ref == err.ref
    assert clone.problem == "is empty"


def test_without_a_reader_a_kubernetes_reference_is_a_clear_error(canary: str) -> None:
    # The policy layer imports no adapter: the CLI's resolver is given the Kubernetes reader.
    err = catch(lambda: SecretResolver().resolve(K8S_REF, purpose=PURPOSE))
    assert "no Kubernetes secret reader is configured" in str(err)
    assert_clean_error(err, canary)
