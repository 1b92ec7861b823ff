"""Redaction at the boundary: every secret value this process resolved or received is written as
``***`` on stdout, stderr and in log records while a command runs, however it got into a message."""

from __future__ import annotations

import logging
import sys

import pytest

from reconcile.cli import redacted_output
from reconcile.policy.secrets import Secret

CANARY = "canary-Pa55word-6f1e"


def test_stdout_stderr_and_log_records_never_show_a_known_secret(capsys: pytest.CaptureFixture[str],
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    Secret(CANARY)  # resolved somewhere in this process
    with redacted_output():
        print(f"the registry answered: invalid password {CANARY}")
        print(f"HTTP 401: {CANARY}!", file=sys.stderr)
        logging.getLogger("reconcile.test").warning("echoed %s by the server", CANARY)
    out, err = capsys.readouterr()
    assert out == "the registry answered: invalid password ***\n" and err == "HTTP 401: ***!\n"
    assert [r.getMessage() for r in caplog.records] == ["echoed *** by the server"]
    print(CANARY)  # outside a command, nothing is rewritten (tests and callers keep their streams)
    assert capsys.readouterr().out == CANARY + "\n"


def test_a_short_value_is_not_redacted_everywhere() -> None:
    Secret("abc")  # three characters would turn every "abc" of every message into ***
    from reconcile.policy.secrets import redact

    assert redact("abcdef") == "abcdef"


def test_errors_from_every_layer_carry_no_known_secret_in_any_form() -> None:
    from reconcile.adapters.cluster.errors import ClusterError
    from reconcile.policy.source import SourceError
    from reconcile.reconciler.errors import ReconcileError

    value = "s3cr3t/with spaces&\"quotes\""
    Secret(value)
    from urllib.parse import quote
    echoes = [value, quote(value, safe=""), value.replace('"', '\\"')]  # as sent, in a URL, in JSON
    for echoed in echoes:
        for error in (ClusterError("prod", f"401: bad token {echoed}"), SourceError(f"git: fatal: {echoed}"),
                      ReconcileError(f"failed: {echoed}")):
            assert echoed not in str(error) and "***" in str(error), (type(error), str(error))


def test_the_librarys_notices_are_redacted() -> None:
    from reconcile import Reconciler

    Secret(CANARY)
    heard: list[str] = []
    Reconciler(".", notice=heard.append).notice(f"warning: the server said {CANARY}")
    assert heard == ["warning: the server said ***"]


def test_a_registry_error_and_the_basic_header_it_was_sent_are_redacted(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import base64

    from reconcile.adapters.registry import open_registry
    from reconcile.adapters.registry.errors import RegistryError
    from reconcile.policy.model import Credentials, Registry
    from reconcile.policy.secrets import SecretRef, SecretResolver, redact

    password = "registry-canary-8c1d"
    registry = Registry("ci", "https://r.example.com", Credentials(username="bot", password=SecretRef(
        source="env", env="P")), ("r.example.com",))
    client = open_registry(registry, SecretResolver(environ={"P": password}, base_dir=tmp_path), cache_dir=tmp_path)
    header = client._transport.authorizer._basic_header()  # type: ignore[attr-defined]  # as sent after a challenge
    encoded = base64.b64encode(f"bot:{password}".encode()).decode()
    assert header == f"Basic {encoded}"
    assert redact(f"echo: Authorization: {header}") == "echo: Authorization: Basic ***"
    error = RegistryError("ci", "team/web", "list tags", f"the server said: {password} / {encoded}")
    assert password not in str(error) and encoded not in str(error) and error.message.count("***") == 2
    client.close()
