"""What decides about an image: the plan's actions that concern a reference, and for a tag or digest
that is gone, the audit trail's record of how it went."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from reconcile.audit import AuditError, AuditStore
from reconcile.audit.query import removals
from reconcile.audit.store import decode_tags
from reconcile.plan import Action
from reconcile.plan.actions import parse_target
from reconcile.policy.model import PolicySet
from reconcile.render.audit import absolute_time

POLICY_KINDS = ("RetentionPolicy", "PromotionPolicy", "DeployPolicy")


def explains(action: Action, reference: str, image: str | None = None) -> bool:
    """Does ``action`` concern ``reference``?

    ``reference`` is a digest (alone or as ``…@digest``): the action's digest before or after, or the
    digest its target names; a tag, ``repository:tag`` or ``registry/repository:tag``: a retention
    action on that tag (or on a digest carrying it), a promotion setting or holding it, a deploy whose
    desired digest it tags; or ``Kind/name`` of a policy: every action of that policy. ``image`` is the
    ``registry/repository`` a deploy action's tags belong to (its target names workloads, not an image).
    """
    if reference.partition("/")[0] in POLICY_KINDS:  # repository names are lower case: no clash
        return action.policy == reference
    if "sha256:" in reference:
        digest = reference[reference.index("sha256:"):]
        return digest in (action.digest_before, action.digest_after) or action.target.endswith("@" + digest)
    name, _, tag = reference.rpartition(":")
    repository, tags = _image_of(action, image)
    if tag not in tags:
        return False
    return not name or (repository is not None and (repository == name or repository.endswith("/" + name)))


def _image_of(action: Action, image: str | None) -> tuple[str | None, frozenset[str]]:
    """``registry/repository`` an action is about, and the tags it concerns there."""
    if action.policy.startswith("DeployPolicy/"):
        return image, frozenset(action.tags)
    if "@" in action.target:  # a prune names the digest and carries the tags it removes; a promotion, those it sets
        return action.target.split("@")[0], frozenset(action.tags)
    if ":" in action.target:  # a retention keep or untag of one tag
        repository, _, tag = action.target.rpartition(":")
        return repository, frozenset({tag})
    return None, frozenset()  # a blocked policy: a registry or stage, no image


REMOVED = {"prune": "pruned", "untag": "untagged"}


def recorded_action(row: Mapping[str, Any]) -> Action:
    """An audit trail row as the plan action it carried out (its tags from the ``tags`` column, its
    cause from ``cause``, which rows before audit migration 3 do not have)."""
    return Action(row.get("policy") or "", row["kind"], row["target"], row.get("digest_before"),
                  row.get("digest_after"), row.get("reason") or "", decode_tags(row.get("tags")),
                  cause=row.get("cause"))


def removed(history: Iterable[Mapping[str, Any]], reference: str) -> list[str]:
    """How ``reference`` (a tag, ``[registry/]repository:tag`` or digest, as ``explains`` reads it)
    went, one line per prune or untag in ``history`` (audit trail rows, oldest first, with their
    run's ``run_mode``, ``run_actor`` and ``run_commit``) that succeeded outside a dry run and
    removed it: when, in which run, by which policy and why, and the digest a tag pointed at."""
    if reference.partition("/")[0] in POLICY_KINDS:
        return []
    lines = []
    for row in history:
        if row["kind"] not in REMOVED or row["status"] != "succeeded" or row.get("dry_run"):
            continue
        action = recorded_action(row)
        if explains(action, reference):
            lines.append(_removal_line(row, action, reference))
    return lines


def _removal_line(row: Mapping[str, Any], action: Action, reference: str) -> str:
    run = " ".join(filter(None, [row.get("run_mode"), f"by {row['run_actor']}" if row.get("run_actor") else None,
                                 f"at policy commit {row['run_commit'][:12]}" if row.get("run_commit") else None]))
    when = f"{REMOVED[action.kind]} at {absolute_time(row['timestamp'])} in run {row['run_id']}"
    when += f" ({run})" if run else ""
    line = f"{when} — {action.policy or 'no policy'}: {action.reason or 'no reason recorded'}"
    if "sha256:" in reference:  # the digest went (a prune), or one of its tags (an untag)
        tags = f" (tags: {', '.join(action.tags)})" if action.tags and action.kind == "prune" else ""
        return f"{action.target}{tags}: {line}"
    tag = reference.rpartition(":")[2]
    registry, repository, _, _ = parse_target(action.target)
    pointed = f"; it pointed at {action.digest_before}" if action.digest_before else ""
    return f"{registry}/{repository}:{tag}: {line}{pointed}"


def deploy_images(policies: PolicySet) -> dict[str, str]:
    """``DeployPolicy/NAME`` -> ``registry/repository`` of the stage it deploys from."""
    images = {}
    for name, deploy in policies.deploy_policies.items():
        promotion = policies.promotion_policies.get(deploy.promotion)
        stage = next((s for s in promotion.stages if s.name == deploy.stage), None) if promotion else None
        if stage is not None:
            images[f"DeployPolicy/{name}"] = f"{stage.registry}/{stage.repository}"
    return images


def removed_from_the_trail(audit_db: str, reference: str, notice: Callable[[str], None]) -> list[str]:
    """``removed`` over the trail's prunes and untags of ``reference``; none when there is no trail yet
    (a note when it cannot be read: explain still answers from the plan)."""
    if not Path(audit_db).exists():
        return []
    digest = reference[reference.index("sha256:"):] if "sha256:" in reference else None
    tag = None if digest else reference.rpartition(":")[2]
    try:
        with AuditStore.open(audit_db, read_only=True) as store:
            history = removals(store, tag=tag, digest=digest)
    except (AuditError, sqlite3.Error) as e:
        notice(f"note: the audit trail could not be read: {e}")
        return []
    return removed(history, reference)
