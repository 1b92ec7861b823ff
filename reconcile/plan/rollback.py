"""Rollback: which digest ``reconcile rollback`` goes back to, and what it checks first.

Pure: the audit trail's deploy history, the workloads' retained revisions, what runs now and
whether the stage's registry still holds the digest all come in as data.

- ``--to DIGEST``: that digest. ``--revision N``: the image revision ``N`` of the workloads ran
  (its whole pod template is restored, as ``kubectl rollout undo --to-revision``).
- Neither: the newest digest the audit trail says this policy deployed (or rolled back to)
  successfully before the current one, cross-checked with the cluster's revision history: the
  result says whether a retained revision ran it, and when the revision before the current one ran
  something the trail does not know (a hand-made change), says that too. Never the held digest:
  a rollback undid it, so rolling back again does not redeploy it (``reconcile release-hold`` does).
- A digest the stage's registry no longer holds is refused: nodes could not pull it.
- Already there (``--revision`` the current revision, ``--to`` the digest that runs): not a
  refusal but ``already`` ("already at revision N", kubectl's "skipped rollback"), nothing to do.
- A revision that is not retained: kubectl's "unable to find specified revision N in history";
  a workload with ``revisionHistoryLimit: 0`` keeps none, and the audit trail's digests are offered.
- What runs now is not what the trail says reconcile deployed last: ``hand_edit`` names it, so
  the person rolling back sees what is about to be overwritten.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

Revisions = Mapping[str, Sequence[tuple[int, str | None]]]  # workload -> (revision, digest it ran), oldest first

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class RollbackRefused(ValueError):
    """Nothing was rolled back, and why."""


@dataclass(frozen=True)
class RollbackChoice:
    digest: str  # what the workloads will run
    revision: int | None  # restore this retained revision's pod template; None: set the image by digest
    notes: tuple[str, ...] = ()  # what the cross-checks found, for the person rolling back
    already: str | None = None  # already there: why nothing is to be done ("already at revision N")
    hand_edit: str | None = None  # what runs was changed since reconcile's last deploy, said before it is overwritten


def choose_rollback(policy: str, current: str | None, history: Sequence[str], revisions: Revisions | None,
                    in_stage: Callable[[str], bool | str], *, to_digest: str | None = None,
                    to_revision: int | None = None, held_digest: str | None = None,
                    history_limits: Mapping[str, int | None] | None = None,
                    unrecorded: Sequence[str] = ()) -> RollbackChoice:
    """The rollback ``policy`` should make from ``current``.

    ``history``: digests deployed successfully, newest first (the audit trail). ``revisions``: each
    workload's retained revisions, or None for a manifests target (its history is its git log).
    ``in_stage(digest)``: whether the stage's repository holds it, or why that is unknown (asked
    once, for the chosen digest). ``held_digest``: what the policy's hold keeps back, if any.
    ``history_limits``: each workload's ``revisionHistoryLimit`` where known. ``unrecorded``: what
    is known of an earlier image no digest was recorded for (a revision set by tag), said when the
    trail offers nothing.
    """
    if to_digest is not None and to_revision is not None:
        raise RollbackRefused("--to and --revision exclude each other")
    limits = history_limits or {}
    notes: list[str] = []
    revision: int | None = None
    hand_edit = _hand_edit(current, history, revisions)
    if to_revision is not None:
        ran = {d for kept in (revisions or {}).values() for n, d in kept if n == to_revision}
        if revisions and all(kept and max(n for n, _ in kept) == to_revision for kept in revisions.values()) \
                and (ran == {current} or current is None or None in ran):
            # kubectl compares templates before it looks at images: pinned or not, there is nothing to do
            return RollbackChoice(str(ran.pop() if len(ran) == 1 and None not in ran else current or ""),
                                  to_revision, (), f"already at revision {to_revision}: skipped rollback "
                                  f"(current template already matches revision {to_revision})")
        digest = _at_revision(revisions, to_revision, limits, [d for d in history if d != current])
        revision = to_revision
    elif to_digest is not None:
        if not DIGEST.fullmatch(to_digest):
            raise RollbackRefused(f"--to {to_digest}: expected a digest, sha256: and 64 hex digits")
        digest = to_digest
        if digest == current:
            return RollbackChoice(digest, None, (), f"already at {digest}: {policy} runs it; skipped rollback")
        notes += _cross_check(digest, revisions, limits)
    else:
        earlier = [d for d in history if d != current]
        undone = held_digest if held_digest in earlier else None  # a rollback undid it: not good
        earlier = [d for d in earlier if d != undone]  # every time it was deployed
        if not earlier:
            why = f" ({_short(undone)} is held: a rollback undid it; `reconcile release-hold {policy}` lets the " \
                  "next run deploy it again)" if undone else ""
            raise RollbackRefused(f"the audit trail has no earlier good digest of {policy} than "
                                  f"{current or 'what runs'}{why}; name one with --to DIGEST"
                                  f"{_revision_hint(revisions)}{_no_history(limits)}"
                                  + "".join(f"; {hint}" for hint in unrecorded))
        digest = earlier[0]
        if undone is not None and history.index(undone) < history.index(digest):
            notes.append(f"skipped {_short(undone)}: held, a rollback undid it")
        notes += _cross_check(digest, revisions, limits)
        if hand_edit is None:
            notes += _hand_made(current, history, revisions)
    if digest == current:
        return RollbackChoice(digest, revision, (), f"already at {digest}: {policy} runs it; skipped rollback")
    held = in_stage(digest)
    if held is False:
        raise RollbackRefused(f"{digest} is no longer in the stage's repository (pruned?): nodes could not pull it")
    if isinstance(held, str):
        notes.append(f"could not confirm the stage's repository still holds {_short(digest)}: {held}")
    return RollbackChoice(digest, revision, tuple(notes), hand_edit=hand_edit)


def _hand_edit(current: str | None, history: Sequence[str], revisions: Revisions | None) -> str | None:
    """What runs is not what reconcile deployed (or rolled back to) last: changed since by someone else."""
    if not history or current == history[0]:
        return None
    workloads = ", ".join(revisions) if revisions else "the manifests"
    now = current or "an image not pinned by digest"
    return (f"hand edit: {workloads} run {now}, but reconcile last deployed {history[0]}: changed since "
            "(kubectl set image, kubectl edit, a commit?); this rollback overwrites it")


def _no_history(limits: Mapping[str, int | None]) -> str:
    none = [workload for workload, limit in limits.items() if limit == 0]
    return (f"; {', '.join(none)} keeps no revision history (revisionHistoryLimit: 0), so there is no earlier "
            "revision to go back to either") if none else ""


def _at_revision(revisions: Revisions | None, number: int, limits: Mapping[str, int | None],
                 trail: Sequence[str]) -> str:
    if revisions is None:
        raise RollbackRefused("--revision applies to cluster targets; a manifests target's history is its git log: "
                              "use --to DIGEST")
    digests = set()
    for workload, kept in revisions.items():
        found = dict(kept)
        if number not in found:
            offer = (f"; the audit trail's deploy history offers --to {trail[0]} (or no --revision: its last good "
                     "digest)") if trail else ""
            if limits.get(workload) == 0:
                raise RollbackRefused(f"unable to find specified revision {number} in history: {workload} keeps no "
                                      "revision history (revisionHistoryLimit: 0), the cluster has only the current "
                                      f"one{offer}")
            raise RollbackRefused(f"unable to find specified revision {number} in history of {workload} (revisions: "
                                  f"{', '.join(str(n) for n, _ in kept) or 'none'}){offer}")
        digests.add(found[number])
    if None in digests:
        raise RollbackRefused(f"revision {number} runs an image not pinned by digest: use --to DIGEST")
    if len(digests) != 1:
        raise RollbackRefused(f"revision {number} runs different digests in different workloads: use --to DIGEST")
    return str(digests.pop())


def _cross_check(digest: str, revisions: Revisions | None, limits: Mapping[str, int | None]) -> list[str]:
    if revisions is None:
        return []
    notes = []
    for workload, kept in revisions.items():
        ran = [n for n, d in kept if d == digest]
        if limits.get(workload) == 0 and not ran:
            notes.append(f"{workload} keeps no revision history (revisionHistoryLimit: 0): `kubectl rollout undo` "
                         f"has nothing to go back to; set by digest to {_short(digest)} from the audit trail's "
                         "deploy history")
        elif ran:
            notes.append(f"{workload}: revision {ran[-1]} ran {_short(digest)}")
        else:
            notes.append(f"{workload}: no retained revision ran {_short(digest)} "
                         f"(revisions {', '.join(str(n) for n, _ in kept) or 'none'}); set by digest")
    return notes


def _hand_made(current: str | None, history: Sequence[str], revisions: Revisions | None) -> list[str]:
    """The revision before the current one ran a digest reconcile never deployed: someone changed it by hand."""
    notes = []
    for workload, kept in (revisions or {}).items():
        previous = [d for _, d in kept if d != current]
        if previous and previous[-1] is not None and previous[-1] not in history:
            notes.append(f"{workload}: the revision before the current one ran {_short(previous[-1])}, which the "
                         "audit trail never deployed (changed by hand?); rolling back to the trail's last good digest")
    return notes


def _revision_hint(revisions: Revisions | None) -> str:
    if not revisions:
        return ""
    workload, kept = next(iter(revisions.items()))
    listed = ", ".join(f"{n}: {_short(d) if d else 'not pinned'}" for n, d in reversed(kept))
    return f" or --revision N ({workload} keeps {listed})" if kept else ""


def _short(digest: str | None) -> str:
    return (digest or "?")[:19]
