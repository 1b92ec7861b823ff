"""Whether a saved plan is still the plan: the plan made now and the saved one, compared action for
action on everything that changes what happens (policy, kind, target, digests, tags, dependsOn)
and why as data (block, cause), and on what is blocked or could not be decided. Reasons (human
text) and ``observedAt`` do not count. Pure."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from reconcile.plan.actions import Action, ActionKind
from reconcile.plan.plan import Plan

Effect = tuple[str, str, str, str | None, str | None, tuple[str, ...], str | None, str | None, str | None]
DIFF_LINES = 20  # lines of a refusal's diff shown; the rest are counted


def effect(action: Action) -> Effect:
    """What an action does, and why as data (its cause), without the words.

    The cause counts: the same prune for another reason (``expired`` saved, ``no-rule-matches`` now)
    means the policies now read differently from what the person who saved the plan reviewed, so it
    is a difference to show, not to apply over. It is decided from the same inputs as the rest, so a
    plan made again from the same world has the same causes; a plan saved before causes existed has
    none and differs once (plan again)."""
    return (action.policy, action.kind, action.target, action.digest_before, action.digest_after, action.tags,
            action.depends_on, action.block, action.cause)


def _counted(plan: Plan) -> tuple[Counter[Effect], dict[Effect, Action]]:
    relevant = [a for a in plan.actions if a.mutates or a.kind is ActionKind.BLOCKED]
    return Counter(effect(a) for a in relevant), {effect(a): a for a in relevant}


@dataclass(frozen=True)
class PlanDiff:
    only_saved: tuple[Action, ...] = ()  # the saved plan would do (or block) this; the plan made now would not
    only_now: tuple[Action, ...] = ()
    errors_only_saved: tuple[str, ...] = ()
    errors_only_now: tuple[str, ...] = ()
    reordered: bool = False  # the same changes, in another order

    def __bool__(self) -> bool:
        return bool(self.only_saved or self.only_now or self.errors_only_saved or self.errors_only_now
                    or self.reordered)

    def lines(self, limit: int = DIFF_LINES) -> list[str]:
        """``- …`` only in the saved plan, ``+ …`` only in the plan made now; at most ``limit`` lines
        and a count of the rest."""
        # An action that differs only by its cause would show as the same line twice: those name it.
        alike = {describe(a) for a in self.only_saved} & {describe(a) for a in self.only_now}
        rows = [(a.policy, a.target, 0, f"- {describe(a, describe(a) in alike)}") for a in self.only_saved]
        rows += [(a.policy, a.target, 1, f"+ {describe(a, describe(a) in alike)}") for a in self.only_now]
        rows.sort()
        lines = [line for *_, line in rows]
        lines += [f"- could not be decided: {e}" for e in self.errors_only_saved]
        lines += [f"+ could not be decided: {e}" for e in self.errors_only_now]
        if self.reordered:
            lines.append("  the same changes, in another order")
        if len(lines) > limit:
            rest = len(lines) - limit
            lines = [*lines[:limit], f"… and {rest} more difference{'s' * (rest != 1)}"]
        return lines


def compare(saved: Plan, now: Plan) -> PlanDiff:
    saved_effects, saved_actions = _counted(saved)
    now_effects, now_actions = _counted(now)
    only_saved = saved_effects - now_effects
    only_now = now_effects - saved_effects
    reordered = False
    if not only_saved and not only_now:
        reordered = [effect(a) for a in saved.changes] != [effect(a) for a in now.changes]
    return PlanDiff(
        tuple(saved_actions[e] for e in sorted(only_saved.elements(), key=repr)),
        tuple(now_actions[e] for e in sorted(only_now.elements(), key=repr)),
        tuple(sorted(set(saved.errors) - set(now.errors))), tuple(sorted(set(now.errors) - set(saved.errors))),
        reordered)


def describe(action: Action, with_cause: bool = False) -> str:
    """``prune ci/team-a/web@sha256:… (tags: build-3)``, with the digests the target does not name
    and, for a block, why (shown, not compared); ``with_cause``: and ``[cause]``."""
    text = f"{action.kind} {action.target}"
    if action.tags:
        text += f" (tags: {', '.join(action.tags)})"
    for label, digest in (("from", action.digest_before), ("to", action.digest_after)):
        if digest and digest not in action.target:
            text += f" {label} {digest[:19]}"
    if action.depends_on:
        text += f" (after {action.depends_on})"
    if with_cause:
        text += f" [{action.cause or 'no cause'}]"
    if action.kind is ActionKind.BLOCKED and action.reason:
        text += f": {action.reason}"
    return text


# What decides most comes first, so the first difference named is the one that matters.
_FIRST = ("actions", "errors", "commit", "repo", "policy", "kind", "target", "digestBefore", "digestAfter", "tags",
          "dependsOn", "block", "cause", "mutates")


def first_difference(saved: Any, now: Any, path: str = "", skip: frozenset[str] = frozenset()) -> str | None:
    """The first field (``actions[3].tags``) where two plan documents differ, or None."""
    if isinstance(saved, dict) and isinstance(now, dict):
        keys = sorted(set(saved) | set(now), key=lambda k: (_FIRST.index(k) if k in _FIRST else len(_FIRST), k))
        for key in keys:
            if key in skip:
                continue
            where = f"{path}.{key}" if path else key
            if key not in saved or key not in now:
                return where
            if (found := first_difference(saved[key], now[key], where, skip)) is not None:
                return found
        return None
    if isinstance(saved, list) and isinstance(now, list):
        for index, (a, b) in enumerate(zip(saved, now, strict=False)):
            if (found := first_difference(a, b, f"{path}[{index}]", skip)) is not None:
                return found
        if len(saved) != len(now):
            return f"{path} ({len(saved)} in the file, {len(now)} planned now)"
        return None
    return None if saved == now and type(saved) is type(now) else (path or "the document")
