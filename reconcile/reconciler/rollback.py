"""A DeployPolicy rolled back by hand: choose the target (the audit trail's last good digest,
cross-checked with the workloads' retained revisions, or the one asked for), roll back, and hold
the digest rolled back from.

Before anything is patched, what the workloads are is read (paused, ``revisionHistoryLimit``, and
for a container set by tag the digest its pods report running); a refusal (a paused Deployment
without ``resume``, a revision not retained, a pruned digest…) and an "already at revision N" are
each recorded as a ``skip`` with the reason, in a run of mode ``rollback``, and nothing is patched."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reconcile.adapters.cluster import RollbackFacts, parse_image
from reconcile.adapters.cluster.rollback import paused_message
from reconcile.adapters.heroku import HerokuError
from reconcile.adapters.registry import RegistryClient, RegistryError
from reconcile.apply.executor import DeployContext
from reconcile.apply.rollback import roll_back
from reconcile.observe.repositories import observe_repository
from reconcile.observe.state import RepositoryState
from reconcile.plan.actions import Cause
from reconcile.plan.deploy import deploy_target, version_tag
from reconcile.plan.rollback import RollbackRefused, choose_rollback
from reconcile.policy.model import DeployPolicy, PolicySet, registry_host
from reconcile.policy.secrets import SecretError
from reconcile.policy.source import SourceError, default_cache_dir
from reconcile.reconciler.connections import Connections, health_reader, written_reader
from reconcile.reconciler.errors import NotConfirmed, RollbackFailed
from reconcile.reconciler.runs import Notice, audited_run, history


@dataclass(frozen=True)
class RolledBack:
    """A completed rollback: from what to what (each shown as ``tag (digest)`` where a tag is known),
    what was done, and the digest now held back."""

    policy: str
    rolled_from: str
    rolled_to: str
    done: str
    held: str | None
    skipped: str | None = None  # already there ("already at revision N"): nothing patched, nothing held

    def __str__(self) -> str:
        if self.skipped is not None:
            return f"{self.policy}: {self.skipped}; nothing patched, nothing held"
        return (f"rolled {self.policy} back from {self.rolled_from} to {self.rolled_to}: {self.done}; "
                f"{self.held or 'what ran'} is held until a newer candidate or `reconcile release-hold {self.policy}`")


def _record_skip(audit_db: str, notice: Notice, policies: PolicySet, policy: DeployPolicy, reason: str,
                 current: str | None, digest: str | None, cause: Cause, *, refused: bool) -> None:
    """A rollback not made, and why, as a ``skip`` of its own run (``blocked`` when refused)."""
    with audited_run(audit_db, "rollback", notice, repo_url=policies.source, repo_commit=policies.commit) as run:
        run.append("skip", deploy_target(policy), status="skipped", policy=f"DeployPolicy/{policy.name}",
                   reason=reason, digest_before=current, digest_after=digest, cause=cause)
        run.blocked = refused


def _running_digest(facts: dict[str, RollbackFacts], notice: Notice) -> str | None:
    """What workloads set by tag run, by the digest their pods report (``containerStatuses[].imageID``)."""
    by_tag = {w: f for w, f in facts.items() if f.image and "@" not in f.image}
    if not by_tag or len(by_tag) != len(facts):
        return None
    seen = {d for f in by_tag.values() for d in f.running}
    if len(seen) == 1 and all(f.running for f in by_tag.values()):
        digest = seen.pop()
        for workload, f in by_tag.items():
            notice(f"note: {workload} is set by tag ({f.image}); its pods run it as {digest} "
                   "(status.containerStatuses[].imageID): rolling back from that digest")
        return digest
    for workload, f in by_tag.items():
        why = (f"its pods run {len(f.running)} different digests ({', '.join(d[:19] for d in f.running)})"
               if f.running else f"its pods could not be read ({f.unread})" if f.unread
               else "no running pod reports an imageID for it")
        notice(f"note: {workload} is set by tag ({f.image}) and {why}: what it runs is not known by digest, "
               "so nothing can be held for it")
    return None


def roll_back_policy(audit_db: str, notice: Notice, policies: PolicySet, policy: DeployPolicy,
                     connections: Connections, to_digest: str | None, revision: int | None,
                     confirm: Callable[[str], bool] | None, resume: bool = False) -> RolledBack:
    read = health_reader(connections) if policy.cluster is not None or policy.heroku is not None \
        else written_reader(connections)
    try:
        current = read(policy).digest
    except (ValueError, SourceError, HerokuError, RegistryError, SecretError) as e:
        raise RollbackFailed(f"not rolled back: cannot tell what {policy.name} runs now: {e}") from None
    facts: dict[str, RollbackFacts] = {}
    if policy.cluster is not None and policy.namespace is not None:
        cluster = connections.cluster(policy.cluster)
        facts = {f"{w.kind}/{w.name}": cluster.rollback_facts(policy.namespace, w.kind, w.name, w.container)
                 for w in policy.workloads}
        if current is None:
            current = _running_digest(facts, notice)
    paused = [w for w in policy.workloads if facts.get(f"{w.kind}/{w.name}") is not None
              and facts[f"{w.kind}/{w.name}"].paused]
    if paused and not resume:
        assert policy.namespace is not None
        refusal = "; ".join(paused_message(policy.namespace, w.name) for w in paused)
        _record_skip(audit_db, notice, policies, policy, f"refused: {refusal}", current, None, Cause.REQUESTED,
                     refused=True)
        raise RollbackFailed(f"not rolled back: {refusal}")
    deployed, _, holds = history(audit_db)
    hold = holds.get(policy.name) if isinstance(holds, dict) else None
    if deployed is None and to_digest is None and revision is None:
        raise RollbackFailed("not rolled back: the audit trail cannot be read, so there is no last good digest; "
                             "name one with --to or --revision")
    stage = policies.promotion_policies[policy.promotion].stage(policy.stage)
    client = connections.registry(stage.registry)
    stage_state = _stage_state(client, stage.repository)
    revisions = None
    unrecorded: list[str] = []
    if policy.cluster is not None and policy.namespace is not None:
        cluster = connections.cluster(policy.cluster)
        kept = {w: cluster.revisions(policy.namespace, w.kind, w.name) for w in policy.workloads}
        revisions = {f"{w.kind}/{w.name}": [(r.number, _pinned_digest(r.images.get(w.container))) for r in rs]
                     for w, rs in kept.items()}
        host = registry_host(policies.registries[stage.registry])
        for w, rs in kept.items():
            if len(rs) >= 2 and (hint := _set_by_tag(f"{w.kind}/{w.name}", rs[-2].number,
                                                     rs[-2].images.get(w.container), host, stage.repository,
                                                     client)):
                unrecorded.append(hint)

    def in_stage(digest: str) -> bool | str:
        if isinstance(stage_state, RepositoryState) and digest in stage_state.images:
            return True
        try:
            return client.resolve(stage.repository, digest) is not None
        except (RegistryError, SecretError) as e:
            return f"registry {stage.registry}: {e}"

    try:
        choice = choose_rollback(policy.name, current, (deployed or {}).get(policy.name, []), revisions, in_stage,
                                 to_digest=to_digest, to_revision=revision, held_digest=hold.digest if hold else None,
                                 history_limits={w: f.history_limit for w, f in facts.items()},
                                 unrecorded=unrecorded)
    except RollbackRefused as e:
        _record_skip(audit_db, notice, policies, policy, f"refused: {e}", current, to_digest, Cause.REQUESTED,
                     refused=True)
        raise
    if choice.already is not None:
        _record_skip(audit_db, notice, policies, policy, choice.already, current, choice.digest, Cause.UP_TO_DATE,
                     refused=False)
        return RolledBack(policy.name, current or "unknown", choice.digest, "nothing patched", None,
                          skipped=choice.already)
    for note in choice.notes:
        notice(f"note: {note}")
    if choice.hand_edit is not None:
        notice(f"warning: {choice.hand_edit}")
    if paused:
        notice(f"note: --resume: {', '.join(f'{w.kind}/{w.name}' for w in paused)} paused; the rollback's patch "
               "resumes it (spec.paused: false)")
    goal = f"revision {choice.revision} ({choice.digest})" if choice.revision is not None else choice.digest
    question = f"Roll {policy.name} back from {current} to {goal}?"
    if choice.hand_edit is not None:
        question = f"{choice.hand_edit}. {question}"
    if confirm is not None and not confirm(question):
        _record_skip(audit_db, notice, policies, policy, f"not confirmed: {question}", current, choice.digest,
                     Cause.REQUESTED, refused=False)
        raise NotConfirmed("not rolled back: not confirmed")

    def shown(digest: str | None) -> str:
        tag = version_tag(stage, stage_state, digest) if digest and isinstance(stage_state, RepositoryState) else None
        return f"{tag} ({digest})" if tag else digest or "unknown"

    tag = version_tag(stage, stage_state, choice.digest) if isinstance(stage_state, RepositoryState) else None
    context = DeployContext(policies, connections.cluster, default_cache_dir(), policies.commit,
                            registry=connections.registry, resolver=connections.resolver)
    try:
        with audited_run(audit_db, "rollback", notice, repo_url=policies.source, repo_commit=policies.commit) as run:
            done = roll_back(policy, choice, current, context, run, tag=tag,
                             resume=[f"{w.kind}/{w.name}" for w in paused])
    except (HerokuError, SecretError) as e:  # a heroku target's release (the others' errors: the caller's)
        raise RollbackFailed(f"not rolled back: {e}") from None
    to = f"revision {choice.revision}, {shown(choice.digest)}" if choice.revision is not None else shown(choice.digest)
    return RolledBack(policy.name, shown(current), to, done, current)


def _set_by_tag(workload: str, number: int, image: str | None, host: str, repository: str,
                client: RegistryClient) -> str | None:
    """The revision before the current one ran a tag (``kubectl set image web=…:v1``): no digest was
    recorded for it when a deploy replaced it, and its pods are gone. Say so, and what the stage's
    registry resolves the tag to now (it may have moved since: a hint, never the default)."""
    try:
        reference = parse_image(image) if image else None
    except ValueError:
        return None
    if reference is None or reference.digest is not None or reference.tag is None:
        return None
    said = (f"{workload}: revision {number} ran {image}, set by tag: no digest was recorded for it when it was "
            "replaced, and its pods are gone")
    if (reference.registry, reference.repository) != (host, repository):
        return f"{said} (not the stage's repository {host}/{repository})"
    try:
        found = client.resolve(repository, reference.tag)
    except (RegistryError, SecretError) as e:
        return f"{said}; the stage's registry could not resolve {reference.tag}: {e}"
    if found is None:
        return f"{said}; the stage's repository no longer has {reference.tag}"
    return (f"{said}; the stage's repository has {reference.tag} at {found.digest} now (tags move: check it is "
            f"what ran): --to {found.digest}")


def _stage_state(client: RegistryClient, repository: str) -> RepositoryState | str:
    try:
        return observe_repository(client, repository)
    except (RegistryError, SecretError) as e:
        return str(e)


def _pinned_digest(image: str | None) -> str | None:
    try:
        return parse_image(image).digest if image else None
    except ValueError:
        return None
