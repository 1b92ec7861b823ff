"""The Notification kind: validation with file and line (and never the value where a secret
belongs), the typed model, ``when`` table-tested against recorded runs, the review of a pull
request's Notification changes (never a secret), and the adapter's own redaction."""

from __future__ import annotations

import hashlib
import hmac
import logging
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconcile.adapters import notify
from reconcile.policy import validate_repo
from reconcile.policy.model import Notification, PolicySet, Webhook
from reconcile.policy.secrets import Secret, SecretRef
from reconcile.policy.trust import compose
from reconcile.reconciler.notifications import RunReport, matches

HEAD = "apiVersion: reconcile/v1\nkind: Notification\nmetadata: {name: ops}\nspec:\n"


def problems(tmp_path: Path, spec: str) -> list[str]:
    (tmp_path / "n.yaml").write_text(HEAD + textwrap.indent(textwrap.dedent(spec), "  "))
    return [str(p).replace(str(tmp_path) + "/", "") for p in validate_repo(str(tmp_path)).problems]


def test_a_full_notification_is_typed(tmp_path: Path) -> None:
    (tmp_path / "n.yaml").write_text(HEAD + textwrap.indent(textwrap.dedent("""\
        when: [failure, blocked]
        apprise: [{env: SLACK_URL}, {file: /run/secrets/mail-url}]
        webhook:
          url: {kubernetes: {namespace: ops, name: hooks, key: url}}
          secret: {env: HOOK_KEY}
          attempts: 5
          timeout: 3s
        """), "  "))
    validation = validate_repo(str(tmp_path))
    assert validation.problems == ()
    assert validation.policies is not None
    assert validation.policies.counts()["Notification"] == 1
    notification = validation.policies.notifications["ops"]
    assert notification == Notification(
        "ops", ("failure", "blocked"),
        (SecretRef("env", env="SLACK_URL"), SecretRef("file", path="/run/secrets/mail-url")),
        Webhook(SecretRef("kubernetes", namespace="ops", name="hooks", key="url"), SecretRef("env", env="HOOK_KEY"),
                5, timedelta(seconds=3)))
    assert str(notification.origin) == f"{tmp_path}/n.yaml:1"


@pytest.mark.parametrize(("spec", "expected"), [
    ("when: [sometimes]\napprise: [{env: A}]\n",
     ["n.yaml:5: Notification/ops: /spec/when/0: 'sometimes' is not one of: always, change, failure, blocked"]),
    ("when: [always]\n", ["n.yaml:4: Notification/ops: /spec: say where to notify: apprise (secret references to "
                          "apprise URLs), webhook, or both"]),
    ("when: [always]\napprise: ['slack://T/B/hunter2-token']\n",
     ["n.yaml:6: Notification/ops: /spec/apprise/0: a literal value is not allowed in '0'; reference the secret "
      "instead: 0: {env: NAME}, {file: PATH} or {kubernetes: {namespace: NS, name: NAME, key: KEY}}"]),
    ("when: [always]\nwebhook: {url: 'http://hooks.example.com/x', secret: {env: K}}\n",
     ["n.yaml:6: Notification/ops: /spec/webhook/url: plain http is allowed only for loopback hosts (localhost, "
      "127.0.0.0/8, ::1), not 'hooks.example.com'; use https://"]),
    ("when: [always]\nwebhook: {url: 'https://u:hunter2-token@hooks.example.com/x', secret: {env: K}}\n",
     ["n.yaml:6: Notification/ops: /spec/webhook/url: a URL with credentials in it is a secret: give it as a secret "
      "reference"]),
    ("when: [always]\nwebhook: {url: 'https://hooks.example.com/x', secret: hunter2-token}\n",
     ["n.yaml:6: Notification/ops: /spec/webhook/secret: a literal value is not allowed in 'secret'; reference the "
      "secret instead: secret: {env: NAME}, {file: PATH} or {kubernetes: {namespace: NS, name: NAME, key: KEY}}"]),
    ("when: [always]\napprise: [{dockerConfig: /x.json}]\n",
     ["n.yaml:6: Notification/ops: /spec/apprise/0: a dockerConfig reference holds registry credentials, not one "
      "value; use env, file or kubernetes"]),
    ("when: [always, failure]\napprise: [{env: A}]\n",
     ["n.yaml:5: warning: Notification/ops: /spec/when: always already includes every other condition"]),
], ids=["unknown-condition", "no-target", "literal-url", "plain-http", "credentials-in-url", "literal-key",
        "docker-config", "always-and-more"])
def test_problems_point_at_the_line_and_never_quote_a_secret(tmp_path: Path, spec: str, expected: list[str]) -> None:
    found = problems(tmp_path, spec)
    assert found == expected
    assert not any("hunter2" in line for line in found)


def report(outcome: str = "succeeded", *, changed: bool = False, failures: int = 0, blocked: str | None = None,
           error: bool = False) -> RunReport:
    counts = {"prune": {"succeeded": 2}} if changed else {}
    failed = tuple({"kind": "prune", "target": "t", "policy": "p", "reason": "boom"} for _ in range(failures))
    if error:
        failed += ({"kind": "error", "target": "", "policy": None, "reason": "stopped"},)
    blocks = () if blocked is None else ({"policy": "DeployPolicy/web", "target": "t", "cause": blocked,
                                          "reason": "why"},)
    return RunReport("run-1", "run", outcome, "repo", "c0ffee", "t0", "t1", counts, failed, blocks)


CASES = [  # (the run, what each condition says)
    (report(), {"always": True, "change": False, "failure": False, "blocked": False}),
    (report(changed=True), {"always": True, "change": True, "failure": False, "blocked": False}),
    (report("partial", changed=True, failures=1), {"always": True, "change": True, "failure": True,
                                                   "blocked": False}),
    (report("failed", failures=2), {"always": True, "change": False, "failure": True, "blocked": False}),
    (report("failed", error=True), {"always": True, "change": False, "failure": True, "blocked": False}),
    (report("blocked", blocked="gate-closed"), {"always": True, "change": False, "failure": False, "blocked": True}),
    (report("blocked", changed=True, blocked="held"), {"always": True, "change": True, "failure": False,
                                                       "blocked": True}),
    (report("refused"), {"always": True, "change": False, "failure": False, "blocked": False}),
]


@pytest.mark.parametrize(("run", "expected"), CASES, ids=["nothing", "changed", "partial", "failed", "error",
                                                          "blocked", "held-and-changed", "refused"])
def test_when_conditions(run: RunReport, expected: dict[str, bool]) -> None:
    for condition, met in expected.items():
        assert matches((condition,), run) == ((condition,) if met else ()), condition  # type: ignore[arg-type]
    everything = ("always", "change", "failure", "blocked")
    assert matches(everything, run) == tuple(c for c in everything if expected[c])
    assert run.holds == tuple(b for b in run.blocked if b["cause"] == "held")


def test_a_pull_request_s_notifications_are_the_trusted_ref_s_and_its_changes_are_shown_by_reference() -> None:
    hook = Webhook("https://hooks.example.com/a", SecretRef("env", env="KEY"))
    trusted = PolicySet("repo", "a" * 40, notifications={
        "ops": Notification("ops", ("failure",), (SecretRef("env", env="SLACK"),), hook),
        "gone": Notification("gone", ("always",), (SecretRef("env", env="X"),))})
    proposed = PolicySet("repo", "b" * 40, notifications={
        "ops": Notification("ops", ("always",), (SecretRef("file", path="/tmp/mine"),),
                            Webhook(SecretRef("env", env="MINE"), SecretRef("env", env="KEY"))),
        "new": Notification("new", ("always",), (), Webhook("https://attacker.example/x", SecretRef("env", env="K")))})

    composed = compose(trusted, proposed, "main")

    assert composed.notifications == trusted.notifications
    changes = {(c.name, c.change): c for c in composed.connection_changes}
    assert set(changes) == {("ops", "changed"), ("gone", "removed"), ("new", "added")}
    assert changes[("ops", "changed")].details == (
        "when failure → always", "apprise {env: SLACK} → {file: /tmp/mine}",
        "webhook {url https://hooks.example.com/a, secret {env: KEY}, 3 attempts, 10s timeout} → "
        "{url {env: MINE}, secret {env: KEY}, 3 attempts, 10s timeout}")
    assert "nothing is sent to it" in changes[("new", "added")].used
    assert "still notified" in changes[("gone", "removed")].used


def test_apprise_logging_is_contained_and_failures_are_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = Secret("json://canary-user:canary-pass-9a8b@127.0.0.1:9/canary-path-77?token=canary-query-66")
    sent = notify.send_apprise(url, "t", "b")  # port 9 on loopback: nothing listens, the send fails
    assert not sent.ok and sent.detail
    for text in (sent.detail, caplog.text):
        for part in ("canary-user", "canary-pass-9a8b", "canary-path-77", "canary-query-66"):
            assert part not in text
    assert not notify.send_apprise(Secret("nonsense"), "t", "b").ok
    assert logging.getLogger("apprise").propagate  # restored


def test_the_signature_is_hmac_sha256_of_the_exact_body() -> None:
    body = notify.cloud_event({"a": 1}, event_id="run-1", source="reconcile/x", at=datetime(2026, 1, 2, tzinfo=UTC))
    assert notify.sign(Secret("k3y-value"), body) == "sha256=" + hmac.new(b"k3y-value", body,
                                                                         hashlib.sha256).hexdigest()
    assert b'"time": "2026-01-02T00:00:00Z"' in body or b'"time":"2026-01-02T00:00:00Z"' in body
