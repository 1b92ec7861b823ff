"""A saved plan is a contract: applied exactly, or refused with the reason and a diff."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from reconcile.plan import Plan
from reconcile.plan.compare import PlanDiff, compare, first_difference
from reconcile.policy.durations import format_duration
from reconcile.reconciler.errors import PlanRefused
from reconcile.render.plan import (
    MAX_PLAN_BYTES,
    PlanFileError,
    SavedPlan,
    content_hash,
    plan_document,
    read_saved,
)

CLOCK_SKEW = timedelta(minutes=5)  # a plan saved on another machine may seem to come from the near future


def read_saved_file(path: str) -> SavedPlan:
    try:
        if Path(path).stat().st_size > MAX_PLAN_BYTES:
            raise PlanFileError(f"it is over {MAX_PLAN_BYTES // (1024 * 1024)} MiB")
        return read_saved(Path(path).read_text(encoding="utf-8"))
    except PlanFileError as e:
        raise PlanRefused(f"saved plan {path} refused: {e}; nothing was applied") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PlanRefused(f"saved plan {path} refused: cannot read it: {e}; nothing was applied") from None


def check_saved(label: str, saved: SavedPlan, fresh: Plan, max_age: timedelta | None) -> Plan:
    """The plan made now, if it is the saved plan ``label`` names (Terraform's saved plan, stricter):
    intact (content hash), made at the same policy commit, not older than ``max_age``, for a world
    with the same fingerprint, and planning again now gives the same actions, blocks and errors.
    Otherwise PlanRefused, saying why."""
    def refuse(why: str, diff: PlanDiff | None = None) -> PlanRefused:
        lines = diff.lines() if diff else []
        legend = ["the saved plan (-) and the plan made now (+) differ:"] if lines else []
        return PlanRefused("\n".join([f"{label} refused: {why}; nothing was applied (plan again and review)",
                                   *legend, *lines]))

    plan, diff = saved.plan, compare(saved.plan, fresh)
    if not saved.intact:
        field = first_difference(saved.document, plan_document(fresh), skip=frozenset({"observedAt"}))
        where = f"; it differs from planning again now first at {field}" if field else ""
        raise refuse(f"the plan file was edited after it was saved (content hash mismatch){where}", diff)
    if plan.commit != fresh.commit:
        raise refuse(f"it was made at commit {plan.commit}, the policies are now at {fresh.commit}")
    if max_age is not None:
        try:
            age = _time(fresh.observed_at) - _time(plan.observed_at)
        except ValueError:
            raise refuse(f"its observedAt {plan.observed_at[:40]!r} is not an RFC 3339 time") from None
        if age > max_age:
            raise refuse(f"it is {format_duration(age)} old (observed at {plan.observed_at}), over --max-plan-age "
                         f"{format_duration(max_age)}")
        if -age > CLOCK_SKEW:
            raise refuse(f"it was observed at {plan.observed_at}, {format_duration(-age)} after now; check the "
                         "clocks")
    if plan.fingerprint != fresh.fingerprint:
        raise refuse("registries or clusters changed since the plan was saved", diff)
    if diff:
        raise refuse("planning again now gives other actions than the saved plan", diff)
    return fresh  # equal to the saved plan; its digests were observed just now


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(text)
    return moment


def in_memory(plan: Plan) -> SavedPlan:
    """A plan handed over as an object, checked as a saved one (its content cannot have been edited)."""
    document = plan_document(plan)
    digest = content_hash(document)
    return SavedPlan(plan, document, digest, digest)
