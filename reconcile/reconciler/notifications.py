"""After an apply or run is recorded: tell the Notifications whose ``when`` matches, and record each
delivery in the audit trail (a run of mode ``notify``, one ``notify`` action per target).

Nothing here changes the run it reports on, its outcome or what the caller gets: a delivery that
fails, a secret that cannot be resolved, even a trail that cannot take the record, is a warning
(``notice``) and a failed ``notify`` action, never an exception. The summary is built from what the
trail recorded for the run (counts, failed actions with their errors, blocks and holds with their
reasons), so it says what the trail says, redacted as the trail is.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from reconcile.adapters import notify
from reconcile.adapters.cluster.secrets import read_kubernetes_secret
from reconcile.audit import AuditError, AuditStore
from reconcile.audit.store import CHANGE_KINDS, RunMode, RunOutcome, utc_now
from reconcile.policy.model import Notification, NotifyOn, PolicySet
from reconcile.policy.secrets import Secret, SecretError, SecretResolver, redact
from reconcile.policy.source import redact_url
from reconcile.reconciler.errors import NotConfirmed, ReconcileError
from reconcile.reconciler.runs import Notice, audited_run

if TYPE_CHECKING:
    from reconcile.reconciler import Applied

__all__ = ["RunReport", "matches", "notify_after", "report_of", "summary_text"]

_A = TypeVar("_A", bound="Applied")


@dataclass(frozen=True)
class RunReport:
    """What the trail says of one run, as a notification tells it."""

    run_id: str
    mode: str
    outcome: str
    repo: str
    commit: str | None
    started_at: str
    finished_at: str | None
    counts: Mapping[str, Mapping[str, int]]  # kind -> status -> n
    failures: tuple[Mapping[str, str | None], ...]
    blocked: tuple[Mapping[str, str | None], ...]  # blocked policies and held deploys (cause ``held``)

    @property
    def changed(self) -> bool:
        return any(self.counts.get(str(kind), {}).get("succeeded") for kind in CHANGE_KINDS)

    @property
    def holds(self) -> tuple[Mapping[str, str | None], ...]:
        return tuple(b for b in self.blocked if b.get("cause") == "held")

    def data(self) -> dict[str, Any]:
        """The summary (the CloudEvent's ``data``)."""
        return {"run": {"id": self.run_id, "mode": self.mode, "outcome": self.outcome, "repo": self.repo,
                        "commit": self.commit, "startedAt": self.started_at, "finishedAt": self.finished_at},
                "counts": {kind: dict(statuses) for kind, statuses in self.counts.items()},
                "failures": [dict(f) for f in self.failures], "blocked": [dict(b) for b in self.blocked],
                "holds": [dict(h) for h in self.holds]}


def matches(when: tuple[NotifyOn, ...], report: RunReport) -> tuple[NotifyOn, ...]:
    """The conditions of ``when`` the run meets (none: do not send)."""
    met = {"always": True, "change": report.changed,
           "failure": report.outcome in (RunOutcome.FAILED, RunOutcome.PARTIAL) or bool(report.failures),
           "blocked": report.outcome == RunOutcome.BLOCKED or bool(report.blocked)}
    return tuple(condition for condition in when if met[condition])


def report_of(audit_db: str, run_id: str, repo: str) -> RunReport | None:
    """The recorded run ``run_id``, or None when the trail cannot say."""
    try:
        with AuditStore.open(audit_db, read_only=True) as store:
            record = store.run(run_id)
            rows = [dict(r) for r in store.conn.execute(
                "SELECT kind, target, policy, status, reason, error, cause FROM actions WHERE run_id = ? "
                "AND status != 'intent' ORDER BY seq", (run_id,))]
    except AuditError:
        return None
    if record is None:
        return None
    counts: dict[str, dict[str, int]] = {}
    for key, n in sorted((record.summary or {}).items()):
        kind, _, status = key.partition(".")
        if status:
            counts.setdefault(kind, {})[status] = n
    failures = tuple({"kind": r["kind"], "target": r["target"], "policy": r["policy"],
                      "reason": r["error"] or r["reason"]} for r in rows if r["status"] == "failed")
    blocked = tuple({"policy": r["policy"], "target": r["target"], "cause": r["cause"], "reason": r["reason"]}
                    for r in rows if r["kind"] == "skip" and r["cause"])
    return RunReport(record.id, record.mode, record.outcome, redact_url(record.repo_url or repo), record.repo_commit,
                     record.started_at, record.finished_at, counts, failures, blocked)


def _latest_run(audit_db: str, mode: str, since: str) -> str | None:
    try:
        with AuditStore.open(audit_db, read_only=True) as store:
            row = store.conn.execute("SELECT id FROM runs WHERE mode = ? AND started_at >= ? AND pid = ? "
                                     "ORDER BY started_at DESC, id DESC LIMIT 1", (mode, since, os.getpid())).fetchone()
    except AuditError:
        return None
    return str(row[0]) if row else None


def notify_after(audit_db: str, mode: RunMode, notice: Notice, load: Callable[[], PolicySet],
                 call: Callable[[], _A]) -> _A:
    """``call()`` (an apply or run), then the notifications about the run it recorded, whether it
    returned or raised (then it is re-raised as it was)."""
    since = utc_now()
    try:
        applied = call()
    except NotConfirmed:  # a person said no: nothing to tell anyone
        raise
    except Exception:
        _after_error(audit_db, mode, notice, load, since)
        raise
    try:
        send_notifications(audit_db, notice, applied.policies, applied.run_id)
    except Exception as e:  # must not happen; and if it does, the run's result stands
        notice(f"warning: notifications about run {applied.run_id} stopped ({type(e).__name__})")
    return applied


def _after_error(audit_db: str, mode: str, notice: Notice, load: Callable[[], PolicySet], since: str) -> None:
    try:
        _notify_failed_run(audit_db, mode, notice, load, since)
    except Exception as e:  # the run's own error is what the caller gets
        notice(f"warning: notifications about the failed run stopped ({type(e).__name__})")


def _notify_failed_run(audit_db: str, mode: str, notice: Notice, load: Callable[[], PolicySet], since: str) -> None:
    run_id = _latest_run(audit_db, mode, since)
    if run_id is None:
        return
    try:
        policies = load()
    except ReconcileError:
        notice(f"warning: no notification sent about run {run_id}: the policies could not be read")
        return
    send_notifications(audit_db, notice, policies, run_id)


def summary_text(report: RunReport, notification: str, met: tuple[str, ...]) -> tuple[str, str]:
    """A title and a plain-text body for apprise targets."""
    commit = f" at {report.commit[:12]}" if report.commit else ""
    title = f"reconcile {report.mode} {report.outcome}: {_repo_name(report.repo)}{commit}"
    lines = [f"Run {report.run_id} ({report.mode}) {report.outcome}; repo-of-record {report.repo}{commit}.",
             f"Notification/{notification}: when {', '.join(met)}."]
    counted = [f"{kind} {', '.join(f'{n} {status}' for status, n in statuses.items())}"
               for kind, statuses in report.counts.items()]
    lines.append("Counts: " + ("; ".join(counted) if counted else "nothing recorded") + ".")
    for failure in report.failures:
        lines.append(f"FAILED {failure['kind']} {failure['target']}: {failure['reason']}")
    for block in report.blocked:
        label = "HELD" if block["cause"] == "held" else "BLOCKED"
        lines.append(f"{label} {block['policy'] or ''} {block['target']}: {block['reason']}")
    return title, "\n".join(lines)


def _repo_name(repo: str) -> str:
    name = repo.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
    return name or "repo-of-record"


def send_notifications(audit_db: str, notice: Notice, policies: PolicySet, run_id: str) -> None:
    """Send every Notification whose ``when`` the recorded run ``run_id`` meets, and record the deliveries."""
    if not policies.notifications:
        return
    report = report_of(audit_db, run_id, policies.source)
    if report is None:
        notice(f"warning: no notification sent about run {run_id}: the audit trail cannot say how it went")
        return
    due = [(n, met) for n in policies.notifications.values() if (met := matches(n.when, report))]
    if not due:
        return
    resolver = SecretResolver(kubernetes_reader=read_kubernetes_secret)
    deliveries = [d for notification, met in due for d in _deliver(notification, met, report, resolver)]
    for notification, target, sent in deliveries:
        if not sent.ok:
            notice(redact(f"warning: Notification/{notification} {target}: not delivered: {sent.detail} (the run "
                          f"{run_id} stands as recorded)"))
    try:
        with audited_run(audit_db, "notify", notice, repo_url=policies.source, repo_commit=policies.commit) as run:
            for notification, target, sent in deliveries:
                run.append("notify", f"Notification/{notification} {target}", policy=f"Notification/{notification}",
                           status="succeeded" if sent.ok else "failed",
                           reason=f"about run {run_id} ({report.outcome}): {sent.detail}"
                                  + (f" (attempt {sent.attempts})" if sent.attempts > 1 else ""),
                           error=None if sent.ok else sent.detail)
    except (ReconcileError, AuditError) as e:
        notice(redact(f"warning: the notification deliveries are not recorded: {e}"))


def _deliver(notification: Notification, met: tuple[NotifyOn, ...], report: RunReport,
             resolver: SecretResolver) -> list[tuple[str, str, notify.Sent]]:
    title, body = summary_text(report, notification.name, met)
    done: list[tuple[str, str, notify.Sent]] = []
    for ref in notification.apprise:
        target = f"apprise {ref.describe()}"
        try:
            apprise_url = resolver.resolve(ref, purpose=f"Notification/{notification.name} spec.apprise")
        except SecretError as e:
            done.append((notification.name, target, notify.Sent(False, str(e))))
            continue
        done.append((notification.name, target, notify.send_apprise(apprise_url, title, body)))
    webhook = notification.webhook
    if webhook is not None:
        target = "webhook" + (f" {webhook.url.describe()}" if not isinstance(webhook.url, str) else "")
        purpose = f"Notification/{notification.name} spec.webhook"
        try:
            url: str | Secret = webhook.url if isinstance(webhook.url, str) else resolver.resolve(
                webhook.url, purpose=purpose + ".url")
            key = resolver.resolve(webhook.secret, purpose=purpose + ".secret")
        except SecretError as e:
            done.append((notification.name, target, notify.Sent(False, str(e))))
            return done
        at = _parse_time(report.finished_at)
        data = {**report.data(), "notification": notification.name, "when": list(met)}
        body_bytes = notify.cloud_event(data, event_id=report.run_id, source=f"reconcile/{_repo_name(report.repo)}",
                                        at=at)
        done.append((notification.name, target, notify.send_webhook(
            url, key, body_bytes, attempts=webhook.attempts, timeout=webhook.timeout.total_seconds())))
    return done


def _parse_time(value: str | None) -> datetime:
    if value:
        with suppress(ValueError):
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return datetime.now(UTC)
