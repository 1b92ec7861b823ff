"""A plan: the ordered actions for one commit of the repo-of-record and one observation of the
world, plus what could not be decided. Everything in it is data, so it renders three ways and
can be saved and checked before it is applied."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from reconcile.plan.actions import Action, ActionKind

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Plan:
    repo: str
    commit: str | None
    observed_at: str  # RFC 3339 UTC: when the world was observed (an input, so plans are reproducible)
    actions: tuple[Action, ...] = ()
    errors: tuple[str, ...] = field(default=())  # sources that could not be read, and what that blocked
    fingerprint: str = ""  # of everything observed: a saved plan applies only to the same world
    warnings: tuple[str, ...] = ()  # decided, but a reader should know (a keep rule that ranks nothing)

    @property
    def changes(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.mutates)

    @property
    def has_changes(self) -> bool:
        return any(a.mutates for a in self.actions)

    def counts(self) -> dict[str, int]:
        return count_kinds(self.actions)

    def by_policy(self) -> dict[str, list[Action]]:
        grouped: dict[str, list[Action]] = {}
        for action in self.actions:
            grouped.setdefault(action.policy, []).append(action)
        return grouped


def count_kinds(actions: tuple[Action, ...] | list[Action]) -> dict[str, int]:
    """Actions by kind, in a fixed order: what a summary line shows."""
    counted = Counter(a.kind for a in actions)
    order = (ActionKind.PRUNE, ActionKind.UNTAG, ActionKind.PROMOTE, ActionKind.DEPLOY, ActionKind.ROLLBACK,
             ActionKind.BLOCKED, ActionKind.KEEP)
    return {kind.value: counted[kind] for kind in order if counted[kind]}


def _target(action: Action) -> str:
    return action.target


def make_plan(repo: str, commit: str | None, observed_at: str, actions: list[Action],
              errors: list[str] | None = None, fingerprint: str = "", warnings: list[str] | None = None) -> Plan:
    """Actions in their canonical order: by policy, then mutating before explanatory, then target;
    a prune that depends on another comes right after it (and after its siblings)."""
    parents = {a.target: a.depends_on for a in actions if a.depends_on}

    def lineage(target: str) -> tuple[str, ...]:
        chain = [target]
        while (parent := parents.get(chain[-1])) is not None and parent not in chain:
            chain.append(parent)
        return tuple(reversed(chain))

    if parents:
        ordered = sorted(actions, key=lambda a: (a.policy, not a.mutates, a.kind, lineage(a.target)))
    else:  # every lineage is (target,): the same order, in two stable sorts that make no key per action
        groups = sorted({(a.policy, not a.mutates, a.kind) for a in actions})
        rank = {group: n for n, group in enumerate(groups)}
        ordered = sorted(actions, key=_target)
        ordered.sort(key=lambda a: rank[a.policy, not a.mutates, a.kind])
    return Plan(repo, commit, observed_at, tuple(ordered), tuple(sorted(errors or ())), fingerprint,
                tuple(sorted(set(warnings or ()))))
