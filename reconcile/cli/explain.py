"""``reconcile explain``: which policy decides what about an image (or a policy), and why; for a
tag or digest that is gone, when and why the audit trail says it was removed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import click

from reconcile.audit import AuditError, AuditStore
from reconcile.audit.query import removals
from reconcile.audit.store import decode_tags
from reconcile.cli import Settings, cli, common_options
from reconcile.cli.session import connections_for, load_checked, observe_and_plan
from reconcile.plan import Action
from reconcile.plan.actions import parse_target
from reconcile.policy import PolicySet
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
    """An audit trail row as the plan action it carried out (its tags from the ``tags`` column)."""
    return Action(row.get("policy") or "", row["kind"], row["target"], row.get("digest_before"),
                  row.get("digest_after"), row.get("reason") or "", decode_tags(row.get("tags")))


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
    when = f"{REMOVED[action.kind]} at {absolute_time(row['timestamp'])} UTC in run {row['run_id']}"
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


@cli.command("explain")
@common_options
@click.argument("reference", metavar="IMAGE_REF")
def explain_command(settings: Settings, reference: str) -> None:
    """Why an image is kept, pruned, promoted or deployed (or not): which rule, protection, gate or
    hold decides, per policy.

    \b
    IMAGE_REF is one of
      TAG                      v1.2.3, build-7 (in any repository)
      REPOSITORY:TAG           team-a/web:v1.2.3
      REGISTRY/REPOSITORY:TAG  ci/team-a/web:v1.2.3 (REGISTRY: the Registry's name)
      DIGEST                   sha256:…, or REPOSITORY@sha256:…
      KIND/NAME                a policy: DeployPolicy/prod-web, PromotionPolicy/web,
                               RetentionPolicy/ci-cleanup

    A tag matches the retention actions on it, the promotions that set or hold it in a stage
    (with the state of each gate) and the deploys whose desired digest it is the version tag of;
    a digest, every action that keeps, prunes, promotes, deploys or replaces it; a policy, every
    action it decides, a deploy's hold included.

    A tag or digest no policy decides anything about because it is gone is looked up in the audit
    trail (--audit-db, read-only): each prune or untag that removed it, with when, the run, the
    policy and its reason (naming the rule), and the digest a tag pointed at.
    """
    policies = load_checked(settings, None)
    kind, _, name = reference.partition("/")
    only = reference if kind in POLICY_KINDS else None  # one policy: plan only it
    if only is not None:
        known = {"RetentionPolicy": policies.retention_policies, "PromotionPolicy": policies.promotion_policies,
                 "DeployPolicy": policies.deploy_policies}[kind]
        if name not in known:
            click.echo(f"there is no {kind} named {name} (known: {', '.join(sorted(known)) or 'none'})")
            return
    images = deploy_images(policies)
    with connections_for(policies) as connections:
        plan = observe_and_plan(settings, policies, only, connections)
    found = [a for a in plan.actions if explains(a, reference, images.get(a.policy))]
    gone = _removed_from_the_trail(settings, reference) if not found and only is None else []
    for line in gone:
        click.echo(line)
    if not found and not gone:
        click.echo(f"no policy decides anything about {reference} (no retention policy covers it, no promotion "
                   "sets or holds it in a stage, no deploy runs or wants it; or it does not exist) and the audit "
                   "trail records no prune or untag of it")
    for action in found:
        tags = f" (tags: {', '.join(action.tags)})" if action.tags else ""
        click.echo(f"{action.target}{tags}: {action.kind} — {action.policy}: {action.reason}")
    for error in plan.errors:
        click.echo(f"note: {error}", err=True)


def _removed_from_the_trail(settings: Settings, reference: str) -> list[str]:
    """``removed`` over the trail's prunes and untags of ``reference``; none when there is no trail yet
    (a note when it cannot be read: explain still answers from the plan)."""
    if not Path(settings.audit_db).exists():
        return []
    digest = reference[reference.index("sha256:"):] if "sha256:" in reference else None
    tag = None if digest else reference.rpartition(":")[2]
    try:
        with AuditStore.open(settings.audit_db, read_only=True) as store:
            history = removals(store, tag=tag, digest=digest)
    except (AuditError, sqlite3.Error) as e:
        click.echo(f"note: the audit trail could not be read: {e}", err=True)
        return []
    return removed(history, reference)
