"""A DeployPolicy rolled back by hand: choose the target (the audit trail's last good digest,
cross-checked with the workloads' retained revisions, or the one asked for), roll back, and hold
the digest rolled back from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reconcile.adapters.cluster import parse_image
from reconcile.adapters.heroku import HerokuError
from reconcile.adapters.registry import RegistryClient, RegistryError
from reconcile.apply.executor import DeployContext
from reconcile.apply.rollback import roll_back
from reconcile.observe.repositories import observe_repository
from reconcile.observe.state import RepositoryState
from reconcile.plan.deploy import version_tag
from reconcile.plan.rollback import choose_rollback
from reconcile.policy.model import DeployPolicy, PolicySet
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

    def __str__(self) -> str:
        return (f"rolled {self.policy} back from {self.rolled_from} to {self.rolled_to}: {self.done}; "
                f"{self.held or 'what ran'} is held until a newer candidate or `reconcile release-hold {self.policy}`")


def roll_back_policy(audit_db: str, notice: Notice, policies: PolicySet, policy: DeployPolicy,
                     connections: Connections, to_digest: str | None, revision: int | None,
                     confirm: Callable[[str], bool] | None) -> RolledBack:
    read = health_reader(connections) if policy.cluster is not None or policy.heroku is not None \
        else written_reader(connections)
    try:
        current = read(policy).digest
    except (ValueError, SourceError, HerokuError, RegistryError, SecretError) as e:
        raise RollbackFailed(f"not rolled back: cannot tell what {policy.name} runs now: {e}") from None
    deployed, _, holds = history(audit_db)
    hold = holds.get(policy.name) if isinstance(holds, dict) else None
    if deployed is None and to_digest is None and revision is None:
        raise RollbackFailed("not rolled back: the audit trail cannot be read, so there is no last good digest; "
                             "name one with --to or --revision")
    stage = policies.promotion_policies[policy.promotion].stage(policy.stage)
    client = connections.registry(stage.registry)
    stage_state = _stage_state(client, stage.repository)
    revisions = None
    if policy.cluster is not None and policy.namespace is not None:
        cluster = connections.cluster(policy.cluster)
        revisions = {f"{w.kind}/{w.name}": [(r.number, _pinned_digest(r.images.get(w.container)))
                                           for r in cluster.revisions(policy.namespace, w.kind, w.name)]
                     for w in policy.workloads}

    def in_stage(digest: str) -> bool | str:
        if isinstance(stage_state, RepositoryState) and digest in stage_state.images:
            return True
        try:
            return client.resolve(stage.repository, digest) is not None
        except (RegistryError, SecretError) as e:
            return f"registry {stage.registry}: {e}"

    choice = choose_rollback(policy.name, current, (deployed or {}).get(policy.name, []), revisions, in_stage,
                             to_digest=to_digest, to_revision=revision, held_digest=hold.digest if hold else None)
    for note in choice.notes:
        notice(f"note: {note}")
    goal = f"revision {choice.revision} ({choice.digest})" if choice.revision is not None else choice.digest
    if confirm is not None and not confirm(f"Roll {policy.name} back from {current} to {goal}?"):
        raise NotConfirmed("not rolled back: not confirmed")

    def shown(digest: str | None) -> str:
        tag = version_tag(stage, stage_state, digest) if digest and isinstance(stage_state, RepositoryState) else None
        return f"{tag} ({digest})" if tag else digest or "unknown"

    tag = version_tag(stage, stage_state, choice.digest) if isinstance(stage_state, RepositoryState) else None
    context = DeployContext(policies, connections.cluster, default_cache_dir(), policies.commit,
                            registry=connections.registry, resolver=connections.resolver)
    try:
        with audited_run(audit_db, "rollback", notice, repo_url=policies.source, repo_commit=policies.commit) as run:
            done = roll_back(policy, choice, current, context, run, tag=tag)
    except (HerokuError, SecretError) as e:  # a heroku target's release (the others' errors: the caller's)
        raise RollbackFailed(f"not rolled back: {e}") from None
    to = f"revision {choice.revision}, {shown(choice.digest)}" if choice.revision is not None else shown(choice.digest)
    return RolledBack(policy.name, shown(current), to, done, current)


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
