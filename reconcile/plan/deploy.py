"""Deploy: which digest each DeployPolicy's workloads should run, and whether a hold stops it.

The desired digest is what the policy's stage holds now (its moving tag; for a pipeline's first
stage, the track's newest candidate), pinned by digest: ``registry-host/repository@sha256:…``
(``…:version@sha256:…`` for a manifests write-back, so people still see the version). A digest
whose rollout failed and was rolled back, or that a person rolled back by hand, is **held**: it is
not deployed again until the stage holds another digest (a newer candidate) or the hold is released
(``reconcile release-hold``). Pure: the stage, what runs now and the holds come in as data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reconcile.observe.state import DeployHealth, RepositoryState
from reconcile.plan.actions import Action, ActionKind, Block, Cause
from reconcile.plan.promotion import AmbiguousCandidate, select_candidate, stage_digest
from reconcile.policy.model import DeployPolicy, Stage

KEEP, DEPLOY, BLOCKED = ActionKind.KEEP, ActionKind.DEPLOY, ActionKind.BLOCKED


@dataclass(frozen=True)
class Hold:
    """A digest a DeployPolicy must not roll forward to, and why (from the audit trail)."""

    digest: str
    reason: str


@dataclass(frozen=True)
class DeployInputs:
    registry_host: str  # host[:port] of the stage's registry ('' for an image-layout directory)
    stage: RepositoryState | str  # the stage's repository as observed, or why it could not be read
    current: DeployHealth | str  # what the workloads run (or the manifests say) now, or why unknown
    hold: Hold | str | None = None  # or why the holds are unknown (the audit trail cannot be read)


def version_tag(stage: Stage, repository: RepositoryState, digest: str) -> str | None:
    """The stage's ``{version}`` tag on ``digest``, if it has one (a tracked stage: the candidate's tag)."""
    if stage.track is not None:
        try:
            candidate = select_candidate(stage.track, repository)
        except AmbiguousCandidate:  # only naming a tag here: any the track matches will do
            candidate = None
        if candidate and candidate.digest == digest:
            return candidate.tag
        # An older candidate (a rollback's): any tag of it the track matches, the highest sorted.
        return max((tag for tag in repository.tags_of(digest) if stage.track.tags.search(tag)), default=None)
    patterns = [re.compile("".join(re.escape(part) if i % 2 == 0 else ".+"
                                   for i, part in enumerate(re.split(r"\{(\w+)\}", template))))
                for template in stage.tags if "{version}" in template]
    moving = {template for template in stage.tags if "{" not in template}
    for tag in repository.tags_of(digest):
        if tag not in moving and any(pattern.fullmatch(tag) for pattern in patterns):
            return tag
    return None


def image_ref(host: str, repository: str, digest: str, tag: str | None = None) -> str:
    name = f"{host}/{repository}" if host else repository
    return f"{name}{':' + tag if tag else ''}@{digest}"


def deploy_target(policy: DeployPolicy) -> str:
    """What a deploy action names: ``cluster/namespace/Kind/name[,…]``, the manifests location or
    ``heroku:app/process``."""
    if policy.heroku is not None:
        return f"heroku:{policy.heroku.app}/{policy.heroku.process}"
    workloads = ",".join(f"{w.kind}/{w.name}" for w in policy.workloads)
    if policy.manifests is not None:
        m = policy.manifests
        return f"git:{m.repo}#{m.branch}:{m.path.strip('/') or '.'} {workloads}"
    return f"{policy.cluster}/{policy.namespace or 'default'}/{workloads}"


def plan_deploy(policy: DeployPolicy, stage: Stage, inputs: DeployInputs) -> Action:
    subject = f"DeployPolicy/{policy.name}"
    target = deploy_target(policy)
    where = f"{policy.promotion}/{policy.stage}"
    current = inputs.current
    before = current.digest if isinstance(current, DeployHealth) else None
    if not isinstance(inputs.stage, RepositoryState):
        return Action(subject, BLOCKED, target, before, before,
                      f"stage {where} could not be read: {inputs.stage}; nothing is deployed", block=Block.UNREADABLE,
                      cause=Cause.REGISTRY_UNREADABLE)
    try:
        desired = stage_digest(stage, inputs.stage)
    except AmbiguousCandidate as e:
        return Action(subject, BLOCKED, target, before, before, f"stage {where}: {e}; nothing is deployed",
                      block=Block.CONFLICT, cause=Cause.AMBIGUOUS_CANDIDATE)
    if desired is None:
        return Action(subject, BLOCKED, target, before, before, f"stage {where} holds no digest to deploy yet",
                      block=Block.WAITING, cause=Cause.STAGE_EMPTY)
    tag = version_tag(stage, inputs.stage, desired)
    shown = f"{tag} ({_short(desired)})" if tag else _short(desired)
    tags = (tag,) if tag else ()
    if isinstance(current, str):
        if policy.cluster is not None:  # a cluster that cannot be read is not deployed to blindly
            return Action(subject, BLOCKED, target, None, desired,
                          f"cluster {policy.cluster} could not be read: {current}; {shown} is not deployed", tags,
                          block=Block.UNREADABLE, cause=Cause.CLUSTER_UNREADABLE)
        if policy.heroku is not None:  # nor a Heroku app (or one whose token is not the trusted ref's)
            return Action(subject, BLOCKED, target, None, desired,
                          f"heroku app {policy.heroku.app} could not be read: {current}; {shown} is not deployed",
                          tags, block=Block.UNREADABLE, cause=Cause.CLUSTER_UNREADABLE)
        before = None
    if before == desired:
        note = f" (rollout not complete: {current.detail})" if isinstance(current, DeployHealth) and not (
            current.healthy) else ""
        return Action(subject, KEEP, target, desired, desired, f"runs {shown} held by {where}{note}", tags,
                      cause=Cause.UP_TO_DATE)
    hold = inputs.hold
    if isinstance(hold, str):  # a rollback may hold this very digest: do not deploy blind
        return Action(subject, BLOCKED, target, before, desired,
                      f"holds unknown: {hold}; {shown} is not deployed", tags, block=Block.UNREADABLE,
                      cause=Cause.AUDIT_UNREADABLE)
    if hold is not None and hold.digest == desired:
        return Action(subject, BLOCKED, target, before, desired, (
            f"held: {_short(desired)} {hold.reason}; not deployed again until {where} holds a newer candidate "
            f"or `reconcile release-hold {policy.name}`"), tags, block=Block.HELD, cause=Cause.HELD)
    released = f"; hold on {_short(hold.digest)} released by this newer candidate" if hold is not None else ""
    was = _short(before) if before else ("unknown" if isinstance(current, str) else "nothing")
    unknown = f" (the current image could not be read: {current})" if isinstance(current, str) else ""
    ref = image_ref(inputs.registry_host, stage.repository, desired, tag if policy.manifests is not None else None)
    return Action(subject, DEPLOY, target, before, desired,
                  f"{shown} from {where}: {was} -> {ref}{unknown}{released}", tags, cause=Cause.OUT_OF_DATE)


def _short(digest: str | None) -> str:
    return (digest or "?")[:19]
