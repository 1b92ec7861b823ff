"""``reconcile plan``, ``apply`` and ``run``: observe, plan (pure), and carry out the plan.

``plan`` changes nothing, not even the audit trail (it only reads its deploy history), so CI can
run it on pull requests with no write access anywhere.
"""

from __future__ import annotations

import fcntl
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from reconcile.apply.executor import DeployContext, RolloutFailed, apply_plan, promotion_sources
from reconcile.apply.rollback import roll_back
from reconcile.audit import AuditError, AuditStore, Run
from reconcile.audit.query import HOLD_RELEASED, deploy_history, deploy_holds, promotion_arrivals
from reconcile.audit.store import utc_now
from reconcile.cli import Settings, cli, common_options
from reconcile.cli.auditing import audited_run
from reconcile.observe.cluster import ClusterClient, ClusterError, connect, parse_image
from reconcile.observe.manifests import read_manifests_state
from reconcile.observe.registry import RegistryClient, RegistryError, observe_repository, open_registry
from reconcile.observe.state import ClusterState, DeployHealth, RepositoryState
from reconcile.observe.world import ClusterReader, HealthReader, WrittenReader, observe
from reconcile.observe.writeback import WriteBackError
from reconcile.plan import Action, Plan, build_plan
from reconcile.plan.deploy import Hold, deploy_target, version_tag
from reconcile.plan.rollback import RollbackRefused, choose_rollback
from reconcile.policy import PolicyError, PolicySet, SourceError, load_policies
from reconcile.policy.approvals import read_approvals
from reconcile.policy.model import Cluster, DeployPolicy, ManifestsSource
from reconcile.policy.secrets import SecretError, SecretResolver
from reconcile.policy.source import default_cache_dir
from reconcile.render.plan import from_json, summary_line, to_json, to_markdown, to_rich


def _health_reader(connections: _Connections) -> HealthReader:
    def read(deploy: DeployPolicy) -> DeployHealth:
        if deploy.cluster is None or deploy.namespace is None:
            raise ValueError("deploys by manifests write-back; its rollout health is not observable here")
        client = connections.cluster(deploy.cluster)
        images, healthy, why = [], True, []
        for workload in deploy.workloads:
            image, done, reason = client.workload_health(deploy.namespace, workload)
            images.append(parse_image(image).digest if image else None)
            healthy = healthy and done
            why.append(reason)
        digest = images[0] if len(set(images)) == 1 else None  # workloads on different digests: not one rollout
        return DeployHealth(digest, healthy, "; ".join(why) if not healthy else "")

    return read


def _written_reader(policies: PolicySet) -> WrittenReader:
    """The image a manifests-target DeployPolicy's manifests name now, at its branch: a kustomization
    ``images:`` entry for the stage's repository wins over the workloads' own ``image:`` lines."""
    def read(deploy: DeployPolicy) -> DeployHealth:
        target = deploy.manifests
        assert target is not None
        stage = policies.promotion_policies[deploy.promotion].stage(deploy.stage)
        source = Cluster(f"DeployPolicy/{deploy.name}", False, None,
                         manifests=ManifestsSource(target.repo, target.path, target.branch))
        state = read_manifests_state(source)
        wanted = {(w.kind, w.name, w.container) for w in deploy.workloads}
        entries = {ref.digest for ref, usages in state.images.items() for u in usages
                   if u.kind == "Kustomization" and ref.repository == stage.repository}
        own = {ref.digest for ref, usages in state.images.items() for u in usages
               if (u.kind, u.name, u.container) in wanted and (deploy.namespace in (None, u.namespace)
                                                              or u.namespace == "default")}
        digests = entries or own
        if len(digests) != 1:
            raise ValueError(f"the manifests name {len(digests)} different images for the workloads")
        return DeployHealth(next(iter(digests)), True, "")

    return read


def _cluster_reader(connections: _Connections) -> ClusterReader:
    def read(cluster: Cluster) -> ClusterState:
        return read_manifests_state(cluster) if cluster.manifests else connections.cluster(cluster.name).images()

    return read


def _helm_reader(connections: _Connections) -> ClusterReader:
    """protect.helmReleases: the release Secrets of a cluster reconcile connects to."""
    def read(cluster: Cluster) -> ClusterState:
        if cluster.manifests:
            raise ClusterError(cluster.name, f"cluster {cluster.name} is known by its manifests; it has no Helm "
                                             "release history (name it in protect.inUse instead)")
        return connections.cluster(cluster.name).helm_release_images()

    return read


def _load(settings: Settings, only: str | None) -> PolicySet:
    try:
        policies = load_policies(settings.repo, settings.ref)
    except PolicyError as e:
        for problem in e.problems:
            click.echo(str(problem), err=True)
        raise click.ClickException(f"the repo-of-record is invalid ({len(e.problems)} problems); "
                                   "run `reconcile validate`") from None
    except SourceError as e:
        raise click.ClickException(str(e)) from None
    known = [f"RetentionPolicy/{n}" for n in policies.retention_policies] + [
        f"PromotionPolicy/{n}" for n in policies.promotion_policies] + [
        f"DeployPolicy/{n}" for n in policies.deploy_policies]
    if only is not None and only not in known:
        raise click.ClickException(f"--only {only}: no such policy that plans actions (known: {', '.join(known)})")
    return policies


def _history(settings: Settings) -> tuple[dict[str, list[str]] | None, dict[tuple[str, str], datetime],
                                         dict[str, Hold]]:
    """Deploy history, promotion arrivals and deploy holds; empty when there is no trail yet, and a
    deploy history of None (retention then fails closed) when it exists but cannot be read."""
    if not Path(settings.audit_db).exists():
        return {}, {}, {}
    try:
        with AuditStore.open(settings.audit_db, read_only=True) as store:
            holds = {name: Hold(*held) for name, held in deploy_holds(store).items()}
            return deploy_history(store), promotion_arrivals(store), holds
    except AuditError:
        return None, {}, {}


def _plan(settings: Settings, policies: PolicySet, only: str | None, connections: _Connections) -> Plan:
    now = datetime.now(UTC)
    observation = observe(policies, resolver=connections.resolver, read_cluster=_cluster_reader(connections),
                          read_helm=_helm_reader(connections), read_health=_health_reader(connections),
                          read_written=_written_reader(policies), observed_at=utc_now(),
                          clients=connections.registries)
    deployed, arrivals, holds = _history(settings)
    gates = {s.gates.approval for p in policies.promotion_policies.values() for s in p.stages if s.gates.approval}
    approvals = read_approvals(settings.repo, policies.commit, gates)
    return build_plan(policies, observation, deployed, now=now, only=only, arrivals=arrivals, approvals=approvals,
                      holds=holds)


@dataclass
class _Connections:
    """One resolver, one client per registry and one per cluster for the whole run: pooled HTTP
    connections, one token per scope, and a cluster config reloaded at most once on a 401."""

    policies: PolicySet
    resolver: SecretResolver = field(default_factory=SecretResolver)
    registries: dict[str, RegistryClient] = field(default_factory=dict)
    clusters: dict[str, ClusterClient] = field(default_factory=dict)

    def cluster(self, name: str) -> ClusterClient:
        if name not in self.clusters:
            self.clusters[name] = connect(self.policies.clusters[name], self.resolver)
        return self.clusters[name]

    def registry(self, name: str) -> RegistryClient:
        if name not in self.registries:
            self.registries[name] = open_registry(self.policies.registries[name], self.resolver)
        return self.registries[name]

    def close(self) -> None:
        for client in [*self.registries.values(), *self.clusters.values()]:
            client.close()


@contextmanager
def _connections(policies: PolicySet) -> Iterator[_Connections]:
    connections = _Connections(policies)
    try:
        yield connections
    finally:
        connections.close()


def _only_option(command: Any) -> Any:
    return click.option("--only", metavar="KIND/NAME", envvar="RECONCILE_ONLY",
                        help="Plan and apply one policy only, e.g. RetentionPolicy/ci-cleanup. [env: RECONCILE_ONLY]"
                        )(command)


@cli.command("plan")
@common_options
@_only_option
@click.option("--format", "output", type=click.Choice(["rich", "markdown", "json"]), default="rich",
              show_default=True, help="rich for terminals, markdown for pull-request comments, json for machines.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True),
              help="Also save the plan (JSON) for `apply --plan`.")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 0 when there is nothing to change, 2 when changes are pending, 1 on error (as Terraform).")
def plan_command(settings: Settings, only: str | None, output: str, out: str | None, detailed_exitcode: bool) -> None:
    """Compare the policies with registries and clusters; change nothing.

    Exit status 1 when a source could not be read (the policies depending on it prune nothing).
    """
    policies = _load(settings, only)
    with _connections(policies) as connections:
        plan = _plan(settings, policies, only, connections)
    if out:
        Path(out).write_text(to_json(plan))
    if output == "json":
        click.echo(to_json(plan), nl=False)
    elif output == "markdown":
        click.echo(to_markdown(plan), nl=False)
    else:
        Console(highlight=False).print(to_rich(plan))
    if plan.errors:
        sys.exit(1)
    if detailed_exitcode and plan.has_changes:
        sys.exit(2)


def _saved_plan(saved_path: str, fresh: Plan) -> Plan:
    """The saved plan, if the world is still the one it was made for (Terraform's stale-plan
    check): same policy commit, and observing again gives the same fingerprint. Then exactly
    what was reviewed is applied."""
    try:
        saved = from_json(Path(saved_path).read_text())
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise click.ClickException(f"cannot read the saved plan {saved_path}: {e}") from None
    if saved.commit != fresh.commit:
        raise click.ClickException(f"the saved plan was made at commit {saved.commit}, the policies are now "
                                   f"at {fresh.commit}; plan again")
    if saved.fingerprint != fresh.fingerprint:
        raise click.ClickException("registries or clusters changed since the plan was saved; nothing was applied "
                                   "(plan again and review)")
    return saved


def _execute(settings: Settings, mode: str, only: str | None, saved: str | None, *, confirm: bool = False) -> None:
    policies = _load(settings, only)
    err = Console(stderr=True, highlight=False)
    with _connections(policies) as connections, audited_run(settings, mode, repo_url=policies.source,  # type: ignore[arg-type]
                                                            repo_commit=policies.commit) as run:
        plan = _plan(settings, policies, only, connections)
        if saved:
            plan = _saved_plan(saved, plan)
        if confirm and plan.has_changes:
            err.print(to_rich(plan))
            if not click.confirm(f"Apply these {len(plan.changes)} changes?", err=True):
                raise click.ClickException("not applied: not confirmed")
        err.print(summary_line(plan))
        for error in plan.errors:
            err.print(f"blocked: {error}", style="yellow")
        _record_blocked(run, plan)
        result = apply_plan(plan, connections.registries, run, promotion_sources(policies),
                            DeployContext(policies, connections.cluster, default_cache_dir(), policies.commit))
        for action, error in result.failed:
            err.print(f"failed: {action.kind} {action.target}: {error}", style="red")
        err.print(f"applied {len(result.succeeded)} of {len(plan.changes)} changes")
    if plan.errors or not result.ok:
        sys.exit(1)


def _record_blocked(run: Run, plan: Plan) -> None:
    """What was not done, and why, belongs in the trail as much as what was."""
    for action in plan.actions:
        if action.kind == "blocked":
            run.append("skip", action.target, status="skipped", policy=action.policy, reason=action.reason,
                       digest_before=action.digest_before, digest_after=action.digest_after)


@cli.command("apply")
@common_options
@_only_option
@click.option("--plan", "saved", type=click.Path(exists=True, dir_okay=False),
              help="Apply a plan saved by `plan --out`, after checking the world has not changed since.")
@click.option("--yes", "-y", is_flag=True, envvar="RECONCILE_YES",
              help="Do not ask for confirmation on a terminal (a saved plan, or no terminal, never asks).")
def apply_command(settings: Settings, only: str | None, saved: str | None, yes: bool) -> None:
    """Plan and carry out the changes, recording each in the audit trail (exit 1 if any failed).

    On a terminal, the plan is shown and confirmation asked first unless --yes.
    """
    with command_lock(settings, wait=True):
        _execute(settings, "apply", only, saved, confirm=not yes and not saved and _interactive())


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()



@cli.command("run")
@common_options
@_only_option
def run_command(settings: Settings, only: str | None) -> None:
    """The CronJob entry point: take the lock, plan, apply. A second run while one holds the lock
    exits 1 at once rather than racing it."""
    with command_lock(settings, wait=False):
        _execute(settings, "run", only, None)


@contextmanager
def command_lock(settings: Settings, *, wait: bool) -> Iterator[None]:
    """One command that changes things at a time per audit trail (``AUDIT_DB.lock``), so a rollback
    cannot land between a run's plan and its apply. ``run`` gives up at once when another holds it
    (the next schedule comes soon); apply, rollback and release-hold wait, saying so."""
    lock_path = Path(f"{settings.audit_db}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise click.ClickException(f"another reconcile run holds {lock_path}") from None
            click.echo(f"waiting for the reconcile command holding {lock_path} to finish", err=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


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
    """
    policies = _load(settings, None)
    kind, _, name = reference.partition("/")
    only = reference if kind in POLICY_KINDS else None  # one policy: plan only it
    if only is not None:
        known = {"RetentionPolicy": policies.retention_policies, "PromotionPolicy": policies.promotion_policies,
                 "DeployPolicy": policies.deploy_policies}[kind]
        if name not in known:
            click.echo(f"there is no {kind} named {name} (known: {', '.join(sorted(known)) or 'none'})")
            return
    images = deploy_images(policies)
    with _connections(policies) as connections:
        plan = _plan(settings, policies, only, connections)
    found = [a for a in plan.actions if explains(a, reference, images.get(a.policy))]
    if not found:
        click.echo(f"no policy decides anything about {reference} (no retention policy covers it, no promotion "
                   "sets or holds it in a stage, no deploy runs or wants it; or it does not exist)")
    for action in found:
        tags = f" (tags: {', '.join(action.tags)})" if action.tags else ""
        click.echo(f"{action.target}{tags}: {action.kind} — {action.policy}: {action.reason}")
    for error in plan.errors:
        click.echo(f"note: {error}", err=True)


def _deploy_policy(settings: Settings, name: str) -> tuple[PolicySet, DeployPolicy]:
    policies = _load(settings, None)
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
    with command_lock(settings, wait=True), _connections(policies) as connections:
        try:
            _rollback(settings, policies, policy, connections, to_digest, revision, yes)
        except (ClusterError, RolloutFailed, WriteBackError, RegistryError, RollbackRefused) as e:
            raise click.ClickException(f"not rolled back: {e}") from None


def _rollback(settings: Settings, policies: PolicySet, policy: DeployPolicy, connections: _Connections,
              to_digest: str | None, revision: int | None, yes: bool) -> None:
    read = _health_reader(connections) if policy.cluster is not None else _written_reader(policies)
    try:
        current = read(policy).digest
    except (ValueError, SourceError) as e:
        raise click.ClickException(f"not rolled back: cannot tell what {policy.name} runs now: {e}") from None
    history, _, _ = _history(settings)
    if history is None and to_digest is None and revision is None:
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

    choice = choose_rollback(policy.name, current, (history or {}).get(policy.name, []), revisions, in_stage,
                             to_digest=to_digest, to_revision=revision)
    for note in choice.notes:
        click.echo(f"note: {note}", err=True)
    goal = f"revision {choice.revision} ({choice.digest})" if choice.revision is not None else choice.digest
    if not yes and _interactive() and not click.confirm(f"Roll {policy.name} back from {current} to {goal}?",
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
    _, _, holds = _history(settings)
    hold = holds.get(policy.name)
    if hold is None:
        click.echo(f"DeployPolicy {policy.name} holds nothing back", err=True)
        return
    with audited_run(settings, "release-hold", repo_url=policies.source, repo_commit=policies.commit) as run:
        run.append("skip", deploy_target(policy), status="skipped", policy=f"DeployPolicy/{policy.name}",
                   digest_before=hold.digest, reason=f"{HOLD_RELEASED}: {hold.digest} may be deployed again")
    click.echo(f"released the hold on {hold.digest} for {policy.name}", err=True)
