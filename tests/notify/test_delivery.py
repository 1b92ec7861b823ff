"""Notifications end to end through the library ``Reconciler`` and the quickstart sandbox: e-mail
over a real SMTP server (aiosmtpd), the signed CloudEvents webhook to a local receiver (HMAC over
the exact body, the CloudEvents attributes), apprise's generic json:// to a local receiver, a Slack
payload checked by shape, retries, failures that leave the run as it was, and canary secrets
absent from every output and the audit trail."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sqlite3
from datetime import datetime
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import requests
from cloudevents.core.bindings.http import HTTPMessage, from_structured
from cloudevents.core.formats.json import JSONFormat

from reconcile import Reconciler
from reconcile.audit.store import RunOutcome
from reconcile.quickstart.sandbox import Sandbox
from tests.notify.conftest import (
    CANARIES,
    HMAC_KEY,
    SLACK_TOKEN,
    SMTP_PASSWORD,
    Mailbox,
    Receiver,
    commit_notification,
    notification,
)


def library(sandbox: Sandbox, notices: list[str], **options: Any) -> Reconciler:
    return Reconciler(str(sandbox.policies), audit_db=str(sandbox.audit_db), notice=notices.append, **options)


def trail_text(sandbox: Sandbox) -> str:
    """Every row of the audit trail as SQL text, and the raw bytes of its files."""
    with sqlite3.connect(sandbox.audit_db) as conn:
        dumped = "\n".join(conn.iterdump())
    raw = b"".join(p.read_bytes() for p in Path(sandbox.audit_db).parent.glob(Path(sandbox.audit_db).name + "*")
                   if p.is_file())
    return dumped + raw.decode("latin-1")


def notify_rows(sandbox: Sandbox) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with sqlite3.connect(sandbox.audit_db) as conn:
        conn.row_factory = sqlite3.Row
        runs = [dict(r) for r in conn.execute("SELECT * FROM runs WHERE mode = 'notify' ORDER BY started_at")]
        actions = [dict(r) for r in conn.execute("SELECT * FROM actions WHERE kind = 'notify' ORDER BY seq")]
    return runs, actions


def assert_no_canary(*texts: str) -> None:
    for text in texts:
        for canary in CANARIES:
            assert canary not in text


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("NOTIFY_HMAC_KEY", HMAC_KEY)
    return monkeypatch


def body_text(message: Message) -> str:
    part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


def test_email_over_smtp_and_the_signed_webhook_after_a_run(sandbox: Sandbox, smtp: Mailbox,
                                                            receiver_factory: Any, secrets_env: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    hook: Receiver = receiver_factory(200)
    secrets_env.setenv("NOTIFY_SMTP_URL", smtp.url())
    commit = commit_notification(sandbox, notification("[change]", apprise=["NOTIFY_SMTP_URL"],
                                                       webhook_url=hook.url))
    notices: list[str] = []

    applied = library(sandbox, notices).run()

    assert applied.succeeded and applied.outcome in (RunOutcome.SUCCEEDED, RunOutcome.BLOCKED)
    # the e-mail: authenticated with the password from the secret, subject and body say how the run went
    assert smtp.logins == [(b"ops-mailer", SMTP_PASSWORD.encode())]
    (envelope,) = smtp.messages
    mail = message_from_bytes(envelope.content)
    assert mail["Subject"] == f"reconcile run {applied.outcome}: policies at {commit[:12]}"
    assert envelope.rcpt_tos == ["oncall@example.com"]
    text = body_text(mail)
    assert f"Run {applied.run_id} (run) {applied.outcome}" in text and "Notification/ops: when change." in text
    assert f"prune {len([a for a in applied.succeeded if a.kind == 'prune'])} succeeded" in text
    assert "BLOCKED" in text or "HELD" in text  # the sandbox has blocked policies; they are listed

    # the webhook: one POST, the HMAC over the exact body, a CloudEvents 1.0 structured event
    ((path, headers, body),) = hook.requests
    assert path == "/hook" and headers["content-type"] == "application/cloudevents+json"
    expected = "sha256=" + hmac.new(HMAC_KEY.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-reconcile-signature"], expected)
    event = json.loads(body)
    assert {k: event[k] for k in ("specversion", "type", "source", "id", "datacontenttype")} == {
        "specversion": "1.0", "type": "dev.reconcile.run.finished", "source": "reconcile/policies",
        "id": applied.run_id, "datacontenttype": "application/json"}
    assert datetime.fromisoformat(event["time"].replace("Z", "+00:00")).tzinfo is not None
    data = event["data"]
    assert data["run"]["id"] == applied.run_id and data["run"]["outcome"] == str(applied.outcome)
    assert data["run"]["commit"] == commit and data["when"] == ["change"]
    assert data["counts"]["prune"]["succeeded"] >= 1 and data["blocked"] and data["failures"] == []
    parsed = from_structured(HTTPMessage(headers, body), JSONFormat())  # the SDK reads it back
    assert (parsed.get_id(), parsed.get_type()) == (applied.run_id, "dev.reconcile.run.finished")

    # both deliveries recorded as notify actions of a notify run of their own; the run itself untouched
    runs, actions = notify_rows(sandbox)
    assert [r["outcome"] for r in runs] == ["succeeded"]
    assert [(a["target"], a["status"]) for a in actions] == [
        ("Notification/ops apprise env:NOTIFY_SMTP_URL", "succeeded"), ("Notification/ops webhook", "succeeded")]
    assert all(a["reason"].startswith(f"about run {applied.run_id} ") for a in actions)
    with library(sandbox, []).audit() as trail:
        assert trail.run(applied.run_id).outcome == str(applied.outcome)
        assert trail.verify().ok
    out = capsys.readouterr()
    assert_no_canary("\n".join(notices), caplog.text, out.out, out.err, trail_text(sandbox), json.dumps(data))


def test_a_webhook_answering_500_then_200_is_retried(sandbox: Sandbox, receiver_factory: Any,
                                                     secrets_env: pytest.MonkeyPatch) -> None:
    hook: Receiver = receiver_factory(500, 200)
    commit_notification(sandbox, notification(webhook_url=hook.url))

    applied = library(sandbox, []).run()

    assert len(hook.requests) == 2
    assert hook.requests[0][2] == hook.requests[1][2]  # the same event, the same signature
    assert hook.requests[0][1]["x-reconcile-signature"] == hook.requests[1][1]["x-reconcile-signature"]
    runs, (action,) = notify_rows(sandbox)
    assert (runs[0]["outcome"], action["status"]) == ("succeeded", "succeeded")
    assert "(HTTP 200)" in action["reason"] and "(attempt 2)" in action["reason"]
    assert json.loads(hook.requests[1][2])["id"] == applied.run_id


@pytest.mark.parametrize("statuses", [(500,), (302,), (404,)], ids=["always-500", "redirect", "not-found"])
def test_a_failing_webhook_leaves_the_run_as_it_was_and_is_audited(sandbox: Sandbox, receiver_factory: Any,
                                                                    secrets_env: pytest.MonkeyPatch,
                                                                    statuses: tuple[int, ...]) -> None:
    hook: Receiver = receiver_factory(*statuses)
    commit_notification(sandbox, notification(webhook_url=hook.url))
    notices: list[str] = []

    applied = library(sandbox, notices).run()

    assert applied.outcome in (RunOutcome.SUCCEEDED, RunOutcome.BLOCKED) and not applied.failed
    assert len(hook.requests) == (3 if statuses == (500,) else 1)  # a redirect is not followed, a 404 not retried
    runs, (action,) = notify_rows(sandbox)
    assert (runs[0]["outcome"], action["status"]) == ("failed", "failed")
    assert f"HTTP {statuses[0]}" in action["error"]
    assert any("not delivered" in n and f"the run {applied.run_id} stands as recorded" in n for n in notices)
    with library(sandbox, []).audit() as trail:
        assert trail.run(applied.run_id).outcome == str(applied.outcome)  # the run's own outcome is unchanged
    assert_no_canary("\n".join(notices), trail_text(sandbox))


def test_an_unreachable_webhook_and_a_missing_secret_are_failures_not_errors(
        sandbox: Sandbox, secrets_env: pytest.MonkeyPatch) -> None:
    from tests.notify.conftest import free_port

    commit_notification(sandbox, notification(apprise=["NOTIFY_UNSET_URL"],
                                              webhook_url=f"http://127.0.0.1:{free_port()}/hook"))
    notices: list[str] = []

    applied = library(sandbox, notices).run()

    assert applied.run_id and not applied.failed
    _, actions = notify_rows(sandbox)
    assert [a["status"] for a in actions] == ["failed", "failed"]
    assert "environment variable NOTIFY_UNSET_URL is not set" in actions[0]["error"]
    assert "ConnectionError after 3 attempts" in actions[1]["error"]


def test_apprise_json_target_on_loopback_gets_the_summary(sandbox: Sandbox, receiver_factory: Any,
                                                          secrets_env: pytest.MonkeyPatch) -> None:
    hook: Receiver = receiver_factory(200)
    secrets_env.setenv("NOTIFY_JSON_URL", f"json://127.0.0.1:{hook.port}/apprise")
    commit_notification(sandbox, notification("[always]", apprise=["NOTIFY_JSON_URL"]))

    applied = library(sandbox, []).run()

    ((path, headers, body),) = hook.requests
    payload = json.loads(body)
    assert path == "/apprise" and headers["content-type"].startswith("application/json")
    assert payload["title"].startswith(f"reconcile run {applied.outcome}: policies at ")
    assert f"Run {applied.run_id} (run)" in payload["message"] and payload["type"] == "info"


def test_a_slack_target_gets_a_slack_shaped_payload(sandbox: Sandbox, secrets_env: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """apprise's slack:// always posts to hooks.slack.com, which these tests cannot reach: its HTTP
    call is intercepted (nothing leaves the machine) and the payload it hands over checked by shape."""
    caplog.set_level(logging.DEBUG)
    posted: list[tuple[str, str, dict[str, Any]]] = []

    class Answer:
        status_code, text, content, headers = 200, "ok", b"ok", {}

    def intercept(method: str, url: str, **options: Any) -> Answer:
        posted.append((method, url, options))
        return Answer()

    secrets_env.setattr(requests, "request", intercept)
    secrets_env.setenv("NOTIFY_SLACK_URL", f"slack://T0CANARY1/B0CANARY2/{SLACK_TOKEN}/#ops")
    commit_notification(sandbox, notification("[blocked]", apprise=["NOTIFY_SLACK_URL"]))
    notices: list[str] = []

    applied = library(sandbox, notices).run()

    ((method, url, options),) = posted
    assert (method.lower(), url) == ("post", f"https://hooks.slack.com/services/T0CANARY1/B0CANARY2/{SLACK_TOKEN}")
    payload = json.loads(options["data"])
    assert payload["channel"] == "#ops"
    (attachment,) = payload["attachments"]
    assert attachment["title"].startswith(f"reconcile run {applied.outcome}: policies")
    assert f"Run {applied.run_id}" in attachment["text"] and "BLOCKED" in attachment["text"]
    _, (action,) = notify_rows(sandbox)
    assert action["status"] == "succeeded" and action["target"] == "Notification/ops apprise env:NOTIFY_SLACK_URL"
    assert_no_canary("\n".join(notices), caplog.text, trail_text(sandbox))


def test_a_failing_apprise_target_says_why_without_the_url(sandbox: Sandbox, smtp: Mailbox,
                                                           secrets_env: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "canary-wrong-Pw-0d9e1"
    secrets_env.setenv("NOTIFY_SMTP_URL", smtp.url(password=wrong) + "&cto=2")  # aiosmtpd stalls after a refusal
    commit_notification(sandbox, notification(apprise=["NOTIFY_SMTP_URL"]))
    notices: list[str] = []

    applied = library(sandbox, notices).run()

    assert not smtp.messages and smtp.logins  # it tried, and was refused
    assert not applied.failed
    runs, (action,) = notify_rows(sandbox)
    assert (runs[0]["outcome"], action["status"]) == ("failed", "failed") and action["error"]
    for text in ("\n".join(notices), caplog.text, trail_text(sandbox)):
        assert wrong not in text and "ops-mailer" not in text


def test_no_notification_matching_records_nothing(sandbox: Sandbox, receiver_factory: Any,
                                                  secrets_env: pytest.MonkeyPatch) -> None:
    hook: Receiver = receiver_factory(200)
    commit_notification(sandbox, notification("[failure]", webhook_url=hook.url))

    applied = library(sandbox, []).run()

    assert not applied.failed and applied.outcome != RunOutcome.PARTIAL
    assert hook.requests == [] and notify_rows(sandbox) == ([], [])


def test_a_pull_request_changing_a_notification_does_not_get_to_send(sandbox: Sandbox, receiver_factory: Any,
                                                                      secrets_env: pytest.MonkeyPatch) -> None:
    trusted: Receiver = receiver_factory(200)
    proposed: Receiver = receiver_factory(200)
    commit_notification(sandbox, notification(webhook_url=trusted.url))
    commit_notification(sandbox, notification(webhook_url=proposed.url)
                        + "---\n" + notification(webhook_url=proposed.url, name="added"), branch="pr")

    reconciler = library(sandbox, [], ref="pr", trusted_ref="main")
    policies = reconciler.load()
    changes = {(c.kind, c.name, c.change) for c in policies.connection_changes}
    assert changes == {("Notification", "ops", "changed"), ("Notification", "added", "added")}
    assert set(policies.notifications) == {"ops"}
    reconciler.run()

    assert proposed.requests == [] and len(trusted.requests) == 1


def test_a_run_that_stops_on_an_error_is_notified_and_the_error_still_reaches_the_caller(
        sandbox: Sandbox, receiver_factory: Any, secrets_env: pytest.MonkeyPatch) -> None:
    hook: Receiver = receiver_factory(200)
    commit_notification(sandbox, notification("[failure]", webhook_url=hook.url))

    def broken(plan: Any) -> bool:
        raise RuntimeError("the reviewer crashed")

    with pytest.raises(RuntimeError, match="the reviewer crashed"):
        library(sandbox, []).apply(review=broken)
    with pytest.raises(Exception, match="not confirmed"):
        library(sandbox, []).apply(review=lambda plan: False)  # a person said no: nothing to tell

    ((_, _, body),) = hook.requests
    data = json.loads(body)["data"]
    assert data["run"]["outcome"] == "failed" and data["run"]["mode"] == "apply" and data["when"] == ["failure"]
    assert data["failures"] == [{"kind": "error", "target": str(sandbox.policies), "policy": None,
                                 "reason": "RuntimeError: the reviewer crashed"}]
    _, (action,) = notify_rows(sandbox)
    assert action["status"] == "succeeded" and f"about run {data['run']['id']} (failed)" in action["reason"]
