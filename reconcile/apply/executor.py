"""The executor: carries out a plan's changes through the adapters, each one written to the audit
trail as an intent before and an outcome after. A dry run goes through the same plan; it simply
never gets here."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from reconcile.adapters.cluster import ClusterClient, ClusterError, DeployResult, RolloutResult
from reconcile.adapters.cluster.secrets import read_kubernetes_secret
from reconcile.adapters.git.writeback import WriteBackError, write_back
from reconcile.adapters.heroku import HerokuClient, HerokuError, image_id
from reconcile.adapters.registry import CannotUntag, RegistryClient, RegistryError, copy_image
from reconcile.apply.verify import DeleteCheck, InUseReader, StateChanged
from reconcile.audit import Run
from reconcile.plan.actions import Action, Cause, parse_target
from reconcile.plan.deploy import image_ref
from reconcile.plan.plan import Plan
from reconcile.policy.model import DeployPolicy, PolicySet, registry_host
from reconcile.policy.secrets import SecretError, SecretResolver


class RolloutFailed(Exception):
    """A deploy's rollout did not complete (and was rolled back when the policy says so).
    ``rollout`` is the watch that ended it, when one did."""

    def __init__(self, message: str, rollout: RolloutResult | None = None) -> None:
        super().__init__(message)
        self.rollout = rollout


def watch_rollouts(client: ClusterClient, namespace: str, workloads: Iterable[tuple[str, str]],
                   timeout: float | timedelta, *, what: str = "rollout") -> None:
    """Wait for each ``(kind, name)``'s rollout in turn, ``timeout`` each (the one polling loop is
    ``ClusterClient.wait_for_rollout``); the first that does not complete is a :class:`RolloutFailed`
    ``"<kind> <namespace>/<name>: <what> <status>: <reason>"``."""
    for kind, name in workloads:
        rollout = client.wait_for_rollout(namespace, kind, name, timeout)
        if not rollout.ok:
            raise RolloutFailed(f"{kind} {namespace}/{name}: {what} {rollout.status}: {rollout.reason}", rollout)


@dataclass(frozen=True)
class DeployContext:
    """What deploys need besides the plan: the policies, a way to reach a cluster (by Cluster name),
    where write-back keeps its clones, and the repo-of-record commit (named in causes and commits)."""

    policies: PolicySet
    connect: Callable[[str], ClusterClient]  # the run's client for a Cluster name; the caller closes it
    cache_dir: Path
    commit: str | None = None
    registry: Callable[[str], RegistryClient] | None = None  # heroku targets: the run's client for a Registry
    resolver: SecretResolver | None = None  # heroku targets' tokens (None: a resolver of its own)

    @property
    def writeback_cache(self) -> Path:
        """Where write-back keeps its working clones of manifests repositories."""
        return self.cache_dir / "writeback"


@dataclass
class ApplyResult:
    succeeded: list[Action] = field(default_factory=list)
    failed: list[tuple[Action, str]] = field(default_factory=list)
    # deletions not made because the registry or a cluster changed since the plan (or what they
    # depend on was not deleted): the next run re-plans them
    skipped: list[tuple[Action, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def promotion_sources(policies: PolicySet) -> dict[str, tuple[str, str]]:
    """``registry/repository`` of each promoted-to stage -> (registry, repository) it copies from."""
    sources = {}
    for policy in policies.promotion_policies.values():
        for stage in policy.stages:
            if stage.source is not None:
                origin = policy.stage(stage.source)
                sources[f"{stage.registry}/{stage.repository}"] = (origin.registry, origin.repository)
    return sources


def apply_plan(plan: Plan, clients: Mapping[str, RegistryClient], run: Run,
               sources: Mapping[str, tuple[str, str]] | None = None,
               deploys: DeployContext | None = None, in_use: InUseReader | None = None,
               guard: Callable[[], None] | None = None) -> ApplyResult:
    """Every change. A failed action is recorded and the rest still run: each deletion was decided
    on its own, and stopping half-way would not undo the earlier ones.

    Registry changes run side by side in lanes (:func:`lanes`): a pipeline's promotions in order,
    a repository's deletes in order, the lanes at once within each registry's concurrency; then the
    deploys, in plan order (a deploy comes after the promotion it may need). Each action has its own
    intent and outcome in the trail. Each delete is re-verified against the registry (and, with
    ``in_use``, what protecting clusters use now) just before it happens; one whose world moved is
    skipped and audited so. The prune of a platform manifest or referrer runs only once the prune
    it depends on succeeded. ``guard`` is asked before each change; what it raises (a lost Lease),
    or any unexpected error, stops every lane before its next change and is raised."""
    check = DeleteCheck(plan.actions, clients, in_use)
    done: set[str] = set()
    outcomes: dict[int, tuple[str, str | None]] = {}  # index in plan.changes -> (how it went, why)
    stop = threading.Event()
    changes = list(plan.changes)

    def carry_out(index: int) -> None:
        action = changes[index]
        if guard is not None:
            guard()
        try:
            if action.policy.startswith("DeployPolicy/"):
                if deploys is None:
                    raise ValueError(f"no deploy context to carry out {action.kind} on {action.target}")
                _deploy(action, deploys, run, clients)
            else:
                _apply(action, clients, run, sources or {}, check, done)
        except StateChanged as e:
            outcomes[index] = ("skipped", str(e))
        except (RegistryError, CannotUntag, ClusterError, WriteBackError, RolloutFailed, HerokuError,
                SecretError) as e:
            outcomes[index] = ("failed", str(e))
        else:
            outcomes[index] = ("succeeded", None)
            done.add(action.target)

    def lane(indexes: list[int]) -> None:
        for index in indexes:
            if stop.is_set():
                return
            try:
                carry_out(index)
            except BaseException:
                stop.set()
                raise

    registry_lanes, deploy_lane = lanes(changes, sources)
    width = min(len(registry_lanes), max((c.concurrency for c in clients.values()), default=1)) or 1
    pool = ThreadPoolExecutor(max_workers=width, thread_name_prefix="apply")
    running: list[Future[None]] = []
    try:
        for indexes in registry_lanes:
            running.append(pool.submit(lane, indexes))
        for future in running:
            future.result()  # an unexpected error in a lane, or an interrupt here...
    except BaseException:
        stop.set()  # ...stops every lane before its next change,
        wait(running)  # once each has finished (and recorded) the change it is in
        raise
    finally:
        pool.shutdown(wait=True)
    lane(deploy_lane)
    result = ApplyResult()
    for index, action in enumerate(changes):
        if index in outcomes:
            how, why = outcomes[index]
            if how == "succeeded":
                result.succeeded.append(action)
            else:
                getattr(result, how).append((action, why))
    return result


def lanes(changes: Sequence[Action], sources: Mapping[str, tuple[str, str]] | None = None
          ) -> tuple[list[list[int]], list[int]]:
    """Indexes of ``changes`` grouped into lanes that run side by side, each in plan order: the
    promotions of one PromotionPolicy (stage after stage) and the deletes of one repository
    (dependants after what they depend on) share a lane, and so does anything touching a repository
    another lane touches (a promotion into, or from, a repository being pruned); the deploys come
    last, in plan order."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    keys: list[str] = []
    deploy_lane = []
    for index, action in enumerate(changes):
        if action.policy.startswith("DeployPolicy/"):
            deploy_lane.append(index)
            keys.append("")
            continue
        registry, repository, _, _ = parse_target(action.target)
        touched = [f"{registry}/{repository}"]
        if action.kind == "promote":
            touched.append(action.policy)
            source = (sources or {}).get(touched[0])
            if source is not None:
                touched.append("/".join(source))
        for other in touched[1:]:
            parent[root(other)] = root(touched[0])
        keys.append(touched[0])
    by_lane: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        if key:
            by_lane.setdefault(root(key), []).append(index)
    return list(by_lane.values()), deploy_lane


def _apply(action: Action, clients: Mapping[str, RegistryClient], run: Run,
           sources: Mapping[str, tuple[str, str]], check: DeleteCheck, done: set[str]) -> None:
    registry, repository, _, digest = parse_target(action.target)
    client = clients[registry]
    if action.kind in ("prune", "untag"):
        _verified_delete(action, client, run, check, done)
        return
    with run.mutation(action.mutation_kind, action.target, policy=action.policy, reason=action.reason,
                      digest_before=action.digest_before, digest_after=action.digest_after,
                      tags=action.tags, cause=action.cause):
        if action.kind == "promote" and digest is not None:
            # The same digest, every platform, blob and referrer; copy_image verifies it on arrival.
            source_registry, source_repository = sources[f"{registry}/{repository}"]
            copy_image(clients[source_registry], source_repository, digest, client, repository, action.tags)
        else:
            raise ValueError(f"the executor cannot carry out {action.kind} on {action.target} yet")


def _verified_delete(action: Action, client: RegistryClient, run: Run, check: DeleteCheck, done: set[str]) -> None:
    """A prune or untag, re-verified inside its audited mutation (the intent is on disk first)."""
    registry, repository, tag, digest = parse_target(action.target)
    skipped: StateChanged | None = None
    with run.mutation(action.mutation_kind, action.target, policy=action.policy, reason=action.reason,
                      digest_before=action.digest_before, digest_after=action.digest_after,
                      tags=action.tags, cause=action.cause) as outcome:
        try:
            if action.depends_on is not None and action.depends_on not in done:
                raise StateChanged(f"it goes with {action.depends_on}, which was not deleted")
            if action.kind == "prune" and digest is not None:
                check.prune(action, registry, repository, digest)
                if client.delete_manifest(repository, digest):
                    check.deleted(registry, repository, digest)
                else:
                    outcome.status, outcome.reason = "skipped", "already gone"
            elif action.kind == "untag" and tag is not None:
                check.untag(action, registry, repository, tag)
                client.delete_tag(repository, tag)
        except StateChanged as e:
            skipped = e
            outcome.status, outcome.reason = "skipped", f"state changed since plan: {e}; nothing deleted"
    if skipped is not None:
        raise skipped


def _deploy(action: Action, context: DeployContext, run: Run,
            clients: Mapping[str, RegistryClient] | None = None) -> None:
    name = action.policy.removeprefix("DeployPolicy/")
    policy = context.policies.deploy_policies[name]
    stage = context.policies.promotion_policies[policy.promotion].stage(policy.stage)
    host = registry_host(context.policies.registries[stage.registry])
    digest = action.digest_after
    if action.kind != "deploy" or digest is None:
        raise ValueError(f"the executor cannot carry out {action.kind} on {action.target}")
    if policy.heroku is not None:
        with run.mutation("deploy", action.target, policy=action.policy, reason=action.reason,
                          digest_before=action.digest_before, digest_after=digest, cause=action.cause) as outcome:
            released = heroku_release(context, policy, digest, clients)
            outcome.reason = f"{action.reason}; released image {released[:19]}"
        return
    commit = (context.commit or "a working tree")[:12]
    if policy.manifests is not None:
        image = image_ref(host, stage.repository, digest, action.tags[0] if action.tags else None)
        message = write_back_message("deploy", action.policy, action.digest_before, digest, image, context.commit)
        with run.mutation("deploy", action.target, policy=action.policy, reason=action.reason,
                          digest_before=action.digest_before, digest_after=digest, cause=action.cause) as outcome:
            written = write_back(policy.manifests, policy.workloads, image, message=message,
                                 cache_dir=context.writeback_cache, namespace=policy.namespace,
                                 policy=name)
            if written.changed:
                outcome.reason = f"{action.reason}; committed {written.commit} to {written.branch}"
            else:
                outcome.status, outcome.reason = "skipped", f"already written on {written.branch}"
        return
    image = image_ref(host, stage.repository, digest)
    cause = f"{action.policy} at {commit}"
    assert policy.cluster is not None and policy.namespace is not None
    client = context.connect(policy.cluster)
    deployed: list[DeployResult] = []
    try:
        with run.mutation("deploy", action.target, policy=action.policy, reason=action.reason,
                          digest_before=action.digest_before, digest_after=digest, cause=action.cause):
            for workload in policy.workloads:
                deployed.append(client.deploy(policy.namespace, workload, image, cause=cause))
            watch_rollouts(client, policy.namespace, [(w.kind, w.name) for w in policy.workloads],
                           policy.rollout.timeout)
    except RolloutFailed as failure:
        if failure.rollout is not None and policy.rollout.auto_rollback:
            try:
                _auto_rollback(action, policy, client, deployed, failure.rollout, run, cause)
            except (ClusterError, RolloutFailed) as e:
                raise RolloutFailed(f"{failure}; the automatic rollback failed too: {e}") from None
        raise


def open_heroku(policies: PolicySet, policy: DeployPolicy, resolver: SecretResolver | None = None) -> HerokuClient:
    """A Platform API client for ``policy``'s heroku target, its token resolved; refused (HerokuError)
    when, in pull-request mode, the heroku block is not the trusted ref's."""
    target = policy.heroku
    assert target is not None
    refused = policies.unconnectable.get(f"DeployPolicy/{policy.name}")
    if refused is not None:
        raise HerokuError(target.app, "connect", refused)
    resolver = resolver or SecretResolver(kubernetes_reader=read_kubernetes_secret)
    token = resolver.resolve(target.token, purpose=f"DeployPolicy {policy.name} heroku token")
    return HerokuClient(target.api, token)


def heroku_release(context: DeployContext, policy: DeployPolicy, digest: str,
                   clients: Mapping[str, RegistryClient] | None = None) -> str:
    """Release the stage's manifest ``digest`` to the heroku target: its image ID (config digest) is
    read from the registry, then PATCHed into the formation. Returns the image ID released."""
    target = policy.heroku
    assert target is not None
    stage = context.policies.promotion_policies[policy.promotion].stage(policy.stage)
    registry = (clients or {}).get(stage.registry) or (context.registry(stage.registry) if context.registry
                                                        else None)
    if registry is None:
        raise HerokuError(target.app, "release", f"no client for Registry {stage.registry} to read the image ID from")
    try:
        image = image_id(registry, stage.repository, digest)
    except ValueError as e:
        raise HerokuError(target.app, "release", str(e)) from None
    client = open_heroku(context.policies, policy, context.resolver)
    try:
        client.release(target.app, target.process, image)
    finally:
        client.close()
    return image


def write_back_message(verb: str, policy: str, before: str | None, after: str, image: str,
                       commit: str | None) -> str:
    """The commit message of a write-back: policy, from/to digests, image and repo-of-record commit."""
    return (f"reconcile: {verb} {policy} {before or 'unknown'} -> {after}\n\n"
            f"Image: {image}\nRepo-of-record commit: {commit or 'none (a plain directory)'}\n")


def _auto_rollback(action: Action, policy: DeployPolicy, client: ClusterClient, deployed: list[DeployResult],
                   failed: RolloutResult, run: Run, cause: str) -> None:
    """Restore what ran before, as its own audited action, and watch that rollout too: the failed
    digest is then held, also when the rollback itself fails."""
    assert policy.namespace is not None
    reason = f"auto-rollback: {failed.status}: {failed.reason}"
    with run.mutation("rollback", action.target, policy=action.policy, reason=reason,
                      digest_before=action.digest_after, digest_after=action.digest_before, cause=Cause.ROLLOUT_FAILED):
        for result in deployed:
            if not result.changed:
                continue
            if result.kind == "Deployment" and result.revision_before is not None:
                client.rollback(policy.namespace, result.kind, result.name, to_revision=result.revision_before,
                                cause=f"auto-rollback by {cause}")
            else:
                client.rollback(policy.namespace, result.kind, result.name, to_digest=result.before,
                                container=result.container, cause=f"auto-rollback by {cause}")
        watch_rollouts(client, policy.namespace, [(r.kind, r.name) for r in deployed], policy.rollout.timeout,
                       what="the rollback's rollout")
