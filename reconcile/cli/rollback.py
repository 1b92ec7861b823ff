"""``reconcile rollback`` and ``reconcile release-hold``: a DeployPolicy rolled back by hand, and
the hold that keeps scheduled runs from rolling it forward again, released."""

from __future__ import annotations

import click

from reconcile.adapters.cluster import ClusterError, parse_image
from reconcile.adapters.git.writeback import WriteBackError
from reconcile.adapters.registry import RegistryClient, RegistryError
from reconcile.apply.executor import DeployContext, RolloutFailed
from reconcile.apply.rollback import roll_back
from reconcile.audit.query import HOLD_RELEASED
from reconcile.cli import Settings, cli, common_options
from reconcile.cli.auditing import audited_run
from reconcile.cli.session import (
    Connections,
    command_lock,
    connections_for,
    health_reader,
    history,
    interactive,
    load_checked,
    written_reader,
)
from reconcile.observe.repositories import observe_repository
from reconcile.observe.state import RepositoryState
from reconcile.plan.deploy import deploy_target, version_tag
from reconcile.plan.rollback import RollbackRefused, choose_rollback
from reconcile.policy import PolicySet, SourceError
from reconcile.policy.model import DeployPolicy
from reconcile.policy.secrets import SecretError
from reconcile.policy.source import default_cache_dir


def _deploy_policy(settings: Settings, name: str) -> tuple[PolicySet, DeployPolicy]:
    policies = load_checked(settings, None)
    policy = policies.deploy_policies.get(name.removeprefix("DeployPolicy/"))
    if policy is None:
        raise click.ClickException(f"no DeployPolicy {name} (known: {', '.join(policies.deploy_policies) or 'none'})")
    return policies, policy


@cli.command("rollback")
@common_options
@click.argument("policy_name", metavar="DEPLOYPOLICY")
@click.option("--to", "to_digest", metavar="DIGEST", help="Roll back to this digest (sha256:…).")
@click.option("--revision", type=int,
              help="Restore this retained revision of the workloads (cluster targets; see `kubectl rollout history`).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation on a terminal.")
def rollback_command(settings: Settings, policy_name: str, to_digest: str | None, revision: int | None,
                     yes: bool) -> None:
    """Roll a DeployPolicy back and hold the digest rolled back from: scheduled runs do not roll
    forward to it again until a newer candidate arrives or `reconcile release-hold`.

    Default target: the last good digest before the current one in the audit trail's deploy
    history, cross-checked with the workloads' retained revisions. A cluster target's rollout is
    watched (exit 1 if it does not complete); a manifests target gets a write-back commit. A digest
    the stage's registry no longer holds is refused.
    """
    policies, policy = _deploy_policy(settings, policy_name)
    with command_lock(settings, wait=True), connections_for(policies) as connections:
        try:
            _rollback(settings, policies, policy, connections, to_digest, revision, yes)
        except (ClusterError, RolloutFailed, WriteBackError, RegistryError, RollbackRefused) as e:
            raise click.ClickException(f"not rolled back: {e}") from None


def _rollback(settings: Settings, policies: PolicySet, policy: DeployPolicy, connections: Connections,
              to_digest: str | None, revision: int | None, yes: bool) -> None:
    read = health_reader(connections) if policy.cluster is not None else written_reader(connections)
    try:
        current = read(policy).digest
    except (ValueError, SourceError) as e:
        raise click.ClickException(f"not rolled back: cannot tell what {policy.name} runs now: {e}") from None
    deployed, _, _ = history(settings)
    if deployed is None and to_digest is None and revision is None:
        raise click.ClickException("not rolled back: the audit trail cannot be read, so there is no last good digest; "
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
                             to_digest=to_digest, to_revision=revision)
    for note in choice.notes:
        click.echo(f"note: {note}", err=True)
    goal = f"revision {choice.revision} ({choice.digest})" if choice.revision is not None else choice.digest
    if not yes and interactive() and not click.confirm(f"Roll {policy.name} back from {current} to {goal}?",
                                                        err=True):
        raise click.ClickException("not rolled back: not confirmed")
    def shown(digest: str | None) -> str:
        tag = version_tag(stage, stage_state, digest) if digest and isinstance(stage_state, RepositoryState) else None
        return f"{tag} ({digest})" if tag else digest or "unknown"

    tag = version_tag(stage, stage_state, choice.digest) if isinstance(stage_state, RepositoryState) else None
    context = DeployContext(policies, connections.cluster, default_cache_dir(), policies.commit)
    with audited_run(settings, "rollback", repo_url=policies.source, repo_commit=policies.commit) as run:
        done = roll_back(policy, choice, current, context, run, tag=tag)
    to = f"revision {choice.revision}, {shown(choice.digest)}" if choice.revision is not None else shown(choice.digest)
    click.echo(f"rolled {policy.name} back from {shown(current)} to {to}: {done}; {current or 'what ran'} is held "
               f"until a newer candidate or `reconcile release-hold {policy.name}`", err=True)


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


@cli.command("release-hold")
@common_options
@click.argument("policy_name", metavar="DEPLOYPOLICY")
def release_hold_command(settings: Settings, policy_name: str) -> None:
    """Let a DeployPolicy deploy a digest a rollback held back again (recorded in the audit trail)."""
    policies, policy = _deploy_policy(settings, policy_name)
    with command_lock(settings, wait=True):
        _release_hold(settings, policies, policy)


def _release_hold(settings: Settings, policies: PolicySet, policy: DeployPolicy) -> None:
    _, _, holds = history(settings)
    if isinstance(holds, str):
        raise click.ClickException(f"nothing released: {holds}")
    hold = holds.get(policy.name)
    if hold is None:
        click.echo(f"DeployPolicy {policy.name} holds nothing back", err=True)
        return
    with audited_run(settings, "release-hold", repo_url=policies.source, repo_commit=policies.commit) as run:
        run.append("skip", deploy_target(policy), status="skipped", policy=f"DeployPolicy/{policy.name}",
                   digest_before=hold.digest, reason=f"{HOLD_RELEASED}: {hold.digest} may be deployed again")
    click.echo(f"released the hold on {hold.digest} for {policy.name}", err=True)
