"""Authentication against real registries (htpasswd basic auth; token auth with real signed JWTs),
and credentials that never reach a host outside allowedHosts."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from reconcile.adapters.registry import RegistryError
from reconcile.observe.repositories import observe_repository
from reconcile.policy.model import Credentials
from reconcile.policy.secrets import SecretError, SecretRef
from tests.adapters.registry.faults import FaultProxy
from tests.adapters.registry.oci import Built, Layout, push
from tests.conftest import USER, OpenClient, RunningRegistry, TokenServer, registry_policy

ENV = "REGISTRY_PASSWORD"


def pushed(tmp_path: Path, registry: RunningRegistry, repository: str, tag: str = "v1") -> Built:
    layout = Layout(tmp_path / "layout")
    image = layout.image(labels={"org.opencontainers.image.revision": "c" * 40})
    layout.tag(image, tag)
    push(layout, tag, registry.host, repository, registry.creds)
    return image


def test_basic_auth_from_a_secret_reference(auth_registry: RunningRegistry, open_client: OpenClient, repo: str,
                                            tmp_path: Path) -> None:
    image = pushed(tmp_path, auth_registry, repo)
    client = open_client(registry_policy("secure", auth_registry.url, password_env=ENV),
                         {ENV: auth_registry.password})
    client.ping()
    assert client.tags(repo) == ["v1"]
    assert client.image(repo, image.digest).revision == "c" * 40


def test_a_wrong_password_is_a_clear_error_without_the_password(
        auth_registry: RunningRegistry, open_client: OpenClient, repo: str, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "wrong-" + auth_registry.password[::-1]
    client = open_client(registry_policy("secure", auth_registry.url, password_env=ENV), {ENV: wrong})
    caplog.set_level(logging.DEBUG)
    with pytest.raises(RegistryError) as error:
        client.tags(repo)
    assert str(error.value) == (f"registry secure, repository {repo}: list tags: authentication failed for "
                                f"registry secure (check the secret reference env:{ENV} of spec.credentials.password)")
    assert error.value.status == 401
    assert error.value.__context__ is None and error.value.__cause__ is None
    encoded = base64.b64encode(f"{USER}:{wrong}".encode()).decode()
    for text in (str(error.value), repr(error.value), repr(client), caplog.text):
        assert wrong not in text and encoded not in text


def test_no_credentials_says_so(auth_registry: RunningRegistry, open_client: OpenClient) -> None:
    client = open_client(registry_policy("secure", auth_registry.url))
    with pytest.raises(RegistryError, match="registry secure: ping: registry secure requires authentication and "
                                            "none is configured"):
        client.ping()


def test_docker_config_credentials(auth_registry: RunningRegistry, open_client: OpenClient, repo: str,
                                   tmp_path: Path) -> None:
    pushed(tmp_path, auth_registry, repo)
    config = tmp_path / "config.json"
    auth = base64.b64encode(f"{USER}:{auth_registry.password}".encode()).decode()
    config.write_text(json.dumps({"auths": {auth_registry.host: {"auth": auth}}}))
    credentials = Credentials(docker_config=SecretRef(source="dockerConfig", path=str(config)))
    client = open_client(registry_policy("secure", auth_registry.url, credentials=credentials))
    assert client.tags(repo) == ["v1"]


def _token_policy(registry: RunningRegistry, server: TokenServer, *, realm_allowed: bool = True,
                  credentials: Credentials | None = None) -> object:
    token_host = server.url.removeprefix("http://")
    return registry_policy("tokens", registry.url, password_env=None if credentials else ENV,
                           credentials=credentials,
                           allowed_hosts=(registry.host, token_host) if realm_allowed else (registry.host,))


def test_bearer_tokens_are_fetched_per_scope_cached_and_refreshed(
        token_registry: RunningRegistry, token_server: TokenServer, open_client: OpenClient, repo: str,
        tmp_path: Path) -> None:
    image = pushed(tmp_path, token_registry, repo)
    client = open_client(_token_policy(token_registry, token_server), {ENV: token_registry.password})
    del token_server.issued[:]
    state = observe_repository(client, repo)  # tag list, HEADs, manifest, config, referrers: one scope
    assert state.tags["v1"].digest == image.digest
    pulls = [i for i in token_server.issued if i["scopes"] == [f"repository:{repo}:pull"]]
    assert len(pulls) == 1 and pulls[0]["user"] == USER
    assert pulls[0]["authorization"].startswith("Basic ")  # the realm is in allowedHosts

    # A token the registry refuses (here: expired) is fetched again, once, and the request succeeds.
    token_server.expired_next = 1
    before = len(token_server.issued)
    assert client.tags(f"{repo}-other") == []  # a new scope
    assert len(token_server.issued) == before + 2


def test_an_identity_token_is_exchanged_with_oauth2(token_registry: RunningRegistry, token_server: TokenServer,
                                                    open_client: OpenClient, repo: str, tmp_path: Path) -> None:
    pushed(tmp_path, token_registry, repo)
    credentials = Credentials(token=SecretRef(source="env", env="IDENTITY_TOKEN"))
    client = open_client(_token_policy(token_registry, token_server, credentials=credentials),
                         {"IDENTITY_TOKEN": token_server.refresh_token})
    del token_server.issued[:]
    assert client.tags(repo) == ["v1"]
    assert [i["method"] for i in token_server.issued] == ["POST"]


def test_a_token_realm_outside_allowed_hosts_gets_no_credentials(
        token_registry: RunningRegistry, token_server: TokenServer, open_client: OpenClient, repo: str,
        tmp_path: Path) -> None:
    pushed(tmp_path, token_registry, repo)
    client = open_client(_token_policy(token_registry, token_server, realm_allowed=False),
                         {ENV: token_registry.password})
    del token_server.issued[:]
    token_host = token_server.url.removeprefix("http://")
    with pytest.raises(RegistryError) as error:
        client.tags(repo)
    assert str(error.value).endswith(f"authentication failed for registry tokens: credentials withheld from the token "
                                     f"realm {token_host} (not in allowedHosts: {token_registry.host}): add "
                                     f"'{token_host}' to allowedHosts if the credentials are meant for it")
    assert token_server.issued and all(i["authorization"] is None for i in token_server.issued)


def test_a_redirect_to_another_host_gets_no_credentials(
        auth_registry: RunningRegistry, open_client: OpenClient, proxy_factory: Callable[..., FaultProxy], repo: str,
        tmp_path: Path) -> None:
    image = pushed(tmp_path, auth_registry, repo)
    basic = "Basic " + base64.b64encode(f"{USER}:{auth_registry.password}".encode()).decode()
    # "Blob storage" on another port: it serves the blob (as a presigned URL would) by itself.
    storage = proxy_factory(auth_registry.url, inject_auth=basic)
    front = proxy_factory(auth_registry.url)
    front.inject(r"/blobs/sha256:", "redirect", method="GET", target=storage.url, times=-1)
    client = open_client(registry_policy("secure", front.url, password_env=ENV), {ENV: auth_registry.password})
    assert client.image(repo, image.digest).revision == "c" * 40  # the config came through storage
    assert storage.requests and all("Authorization" not in r.headers for r in storage.requests)
    assert any(r.headers.get("Authorization") == basic for r in front.requests)


def test_a_hostile_link_header_gets_no_credentials(
        auth_registry: RunningRegistry, open_client: OpenClient, proxy_factory: Callable[..., FaultProxy], repo: str,
        tmp_path: Path) -> None:
    pushed(tmp_path, auth_registry, repo)
    elsewhere = proxy_factory(auth_registry.url, inject_auth="Basic " + base64.b64encode(
        f"{USER}:{auth_registry.password}".encode()).decode())
    front = proxy_factory(auth_registry.url)
    front.inject(r"/tags/list", "link", target=elsewhere.url, times=-1)
    client = open_client(registry_policy("secure", front.url, password_env=ENV), {ENV: auth_registry.password})
    assert client.tags(repo) == ["v1", "v1"]  # the second "page" came from the other host
    (followed,) = elsewhere.requests
    assert "Authorization" not in followed.headers


def test_https_with_a_private_ca(tls_registry: RunningRegistry, open_client: OpenClient) -> None:
    policy = registry_policy("internal", tls_registry.url)
    with pytest.raises(RegistryError) as error:
        open_client(policy).ping()  # the system trust store does not know this CA
    assert str(error.value) == ("registry internal: ping: TLS certificate verification failed (a private CA goes in "
                                "tls.caFile)")
    open_client(dataclasses.replace(policy, ca_file=str(tls_registry.root.parent / "tls.crt"))).ping()


def test_an_unresolvable_secret_is_an_error_not_an_anonymous_request(auth_registry: RunningRegistry,
                                                                     open_client: OpenClient, repo: str) -> None:
    client = open_client(registry_policy("secure", auth_registry.url, password_env="UNSET_PASSWORD"))
    for _ in range(2):
        with pytest.raises(SecretError, match=r"Registry/secure spec.credentials.password: env:UNSET_PASSWORD: "
                                              r"environment variable UNSET_PASSWORD is not set"):
            client.tags(repo)


# --- messages that say what to do (issue 18) -----------------------------------------------------


def test_an_allowed_host_without_its_port_withholds_credentials_and_the_401_says_so(
        auth_registry: RunningRegistry, open_client: OpenClient, repo: str) -> None:
    # http://127.0.0.1:PORT with allowedHosts ["127.0.0.1"]: that entry means port 80 only, so the
    # credentials are never sent (the rule stands), and the registry's 401 names why.
    policy = registry_policy("secure", auth_registry.url, password_env=ENV, allowed_hosts=("127.0.0.1",))
    client = open_client(policy, {ENV: auth_registry.password})
    with pytest.raises(RegistryError) as error:
        client.tags(repo)
    assert error.value.status == 401 and error.value.refusal == "withheld"
    assert str(error.value) == (
        f"registry secure, repository {repo}: list tags: authentication failed for registry secure: credentials "
        f"withheld from {auth_registry.host} (not in allowedHosts: 127.0.0.1); '127.0.0.1' matches port 80 only "
        f"(the scheme's default): add '{auth_registry.host}' to allowedHosts if the credentials are meant for it")

    # An unset variable is not what hides behind it any more: the same message, and once the
    # entry has its port, the variable is named.
    unset = open_client(policy, {})
    with pytest.raises(RegistryError, match=r"credentials withheld from 127\.0\.0\.1:\d+ \(not in allowedHosts"):
        unset.tags(repo)
    fixed = open_client(dataclasses.replace(policy, allowed_hosts=(auth_registry.host,)), {})
    with pytest.raises(SecretError, match=ENV):
        fixed.tags(repo)


def test_a_wrong_password_with_glob_repositories_is_an_authentication_failure(
        auth_registry: RunningRegistry, open_client: OpenClient, repo: str, tmp_path: Path) -> None:
    pushed(tmp_path, auth_registry, repo)
    policy = registry_policy("secure", auth_registry.url, password_env=ENV)
    with pytest.raises(RegistryError) as error:
        open_client(policy, {ENV: f"wrong-{auth_registry.password}"}).repositories([f"{repo.split('/')[0]}/*"])
    assert str(error.value) == ("registry secure: list repositories: authentication failed for registry secure "
                                f"(check the secret reference env:{ENV} of spec.credentials.password)")
    assert "catalog" not in str(error.value)
    assert open_client(policy, {ENV: auth_registry.password}).repositories([f"{repo.split('/')[0]}/*"]) == [repo]


def test_a_catalog_the_credentials_may_not_list_says_to_list_repositories_explicitly(
        auth_registry: RunningRegistry, open_client: OpenClient, proxy_factory: Callable[..., FaultProxy],
        repo: str, tmp_path: Path) -> None:
    pushed(tmp_path, auth_registry, repo)
    proxy = proxy_factory(auth_registry.url)
    proxy.inject(r"^/v2/_catalog", "status", status=403, times=-1)
    client = open_client(registry_policy("secure", proxy.url, password_env=ENV), {ENV: auth_registry.password})
    with pytest.raises(RegistryError) as error:
        client.repositories(["t-*/*"])
    assert str(error.value) == ("registry secure: list repositories: the registry does not allow listing the catalog "
                                "(_catalog answered HTTP 403, DENIED): list the repositories explicitly, without globs")
    assert client.repositories([repo]) == [repo]


def test_a_token_endpoint_refusing_the_credentials_is_an_authentication_failure(
        token_registry: RunningRegistry, token_server: TokenServer, open_client: OpenClient) -> None:
    client = open_client(_token_policy(token_registry, token_server), {ENV: "wrong-" + token_server.password})
    with pytest.raises(RegistryError) as error:
        client.repositories(["team/*"])
    assert error.value.status == 401 and error.value.refusal == "credentials"
    assert str(error.value).endswith(f"authentication failed for registry tokens (check the secret reference "
                                     f"env:{ENV} of spec.credentials.password)")
    assert "catalog" not in str(error.value)
