"""reconcile as a library: everything the command line does, without click.

    from reconcile import Reconciler

    reconciler = Reconciler("path/to/repo-of-record", audit_db="audit.db")
    plan = reconciler.plan()
    applied = reconciler.apply(plan)  # exactly this plan (planned again and compared) or nothing
    print(applied.outcome, applied.run_id)

Each method reads the repo-of-record afresh (at ``ref``; Registries and Clusters from the trusted
ref unless ``trust_ref_connections``), opens its own connections and closes them. Methods that
change something take the audit trail's lock and record a run. Failures are ReconcileError
subclasses with a message for a person; ``notice`` receives what a person should also see on the
way (warnings, notes, the chain head of each recorded run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconcile import defaults
from reconcile.adapters.cluster import ClusterError
from reconcile.adapters.git.writeback import WriteBackError
from reconcile.adapters.registry import RegistryError
from reconcile.apply.executor import DeployContext, RolloutFailed, apply_plan, promotion_sources
from reconcile.audit import AuditError, AuditStore, Run
from reconcile.audit.query import HOLD_RELEASED
from reconcile.audit.store import RunMode, RunOutcome, outcome_of, utc_now
from reconcile.observe.world import observe
from reconcile.plan import Action, Plan, build_plan
from reconcile.plan.deploy import Hold, deploy_target
from reconcile.plan.rollback import RollbackRefused
from reconcile.plan.stream import RetentionStream
from reconcile.policy import PolicyError, SourceError
from reconcile.policy.approvals import read_approvals
from reconcile.policy.loader import load_policies
from reconcile.policy.model import DeployPolicy, PolicySet
from reconcile.policy.secrets import redact
from reconcile.policy.shards import Shard
from reconcile.policy.source import default_cache_dir
from reconcile.policy.trust import load_with_trusted_connections
from reconcile.reconciler.connections import (
    Connections,
    cluster_reader,
    connections_for,
    health_reader,
    helm_reader,
    in_use_reader,
    requests_made,
    written_reader,
)
from reconcile.reconciler.errors import (
    AuditUnavailable,
    Busy,
    InvalidPolicies,
    LockLost,
    NotConfirmed,
    PlanRefused,
    ReconcileError,
    RollbackFailed,
)
from reconcile.reconciler.explain import POLICY_KINDS, deploy_images, explains, removed_from_the_trail
from reconcile.reconciler.notifications import notify_after
from reconcile.reconciler.rollback import RolledBack, roll_back_policy
from reconcile.reconciler.runs import (
    Notice,
    RunLock,
    audited_failures,
    audited_run,
    command_lock,
    history,
    leased,
)
from reconcile.reconciler.saved import check_saved, in_memory, read_saved_file
from reconcile.render.plan import SavedPlan

__all__ = ["Applied", "AuditUnavailable", "Busy", "Explanation", "InvalidPolicies", "LockLost", "NotConfirmed",
           "PlanRefused", "ReconcileError", "Reconciler", "RollbackFailed", "RolledBack"]

TRUST_WARNING = ("warning: --trust-ref-connections: the Registries and Clusters of --ref {ref} are used as they "
                 "are written there: whoever wrote that ref chooses where reconcile sends its credentials and "
                 "which secrets it reads. Never use it for pull requests.")

log = logging.getLogger("reconcile")


@dataclass(frozen=True)
class Applied:
    """What an apply or run did: the plan it carried out (the one made now, equal to the one
    given), the recorded run, and each change's fate."""

    plan: Plan
    policies: PolicySet
    run_id: str
    outcome: RunOutcome
    succeeded: tuple[Action, ...]
    failed: tuple[tuple[Action, str], ...]  # with the error
    skipped: tuple[tuple[Action, str], ...]  # deletions whose world moved since the plan: re-planned next run

    @property
    def ok(self) -> bool:
        """Everything the policies asked for was done: no source error, no failure, nothing skipped."""
        return not self.plan.errors and not self.failed and not self.skipped


@dataclass(frozen=True)
class Explanation:
    """What decides about a reference: the plan's actions on it, and how the audit trail says it
    went when it is gone."""

    reference: str
    actions: tuple[Action, ...]
    removals: tuple[str, ...]  # one line per prune or untag that removed it
    errors: tuple[str, ...]  # sources that could not be read (the answer may be incomplete)
    unknown: str | None = None  # the reference names a policy that does not exist


class Reconciler:
    """The repo-of-record at ``repo`` (a work tree, a directory or a git URL), read at ``ref``
    (default HEAD), with its audit trail at ``audit_db`` (default: ``reconcile.defaults.audit_db()``,
    ``$XDG_STATE_HOME/reconcile/audit.db``).

    ``trusted_ref`` is where Registries and Clusters (where credentials go) come from when ``ref``
    is another commit (default: the repository's default branch); ``trust_ref_connections`` takes
    them from ``ref`` itself (never for pull requests). With ``strict``, a RetentionPolicy's
    repositories glob that matches no repository is an error that blocks the policy, not a warning.
    """

    def __init__(self, repo: str = ".", *, ref: str | None = None, audit_db: str | None = None,
                 trusted_ref: str | None = None, trust_ref_connections: bool = False,
                 notice: Notice | None = None, lock: RunLock | None = None, shard: Shard | None = None,
                 strict: bool = False) -> None:
        # A shard writes its own trail, and reads the others' (and the one from before sharding) for history.
        self.repo, self.ref, self.shard = repo, ref, shard
        audit_db = audit_db or defaults.audit_db()  # the XDG state directory, never the working directory
        self.audit_db = audit_db if shard is None else shard.audit_db(audit_db)
        self._also = () if shard is None else tuple(shard.other_audit_dbs(audit_db))
        self.trusted_ref, self.trust_ref_connections = trusted_ref, trust_ref_connections
        self.lock = lock  # beyond the audit trail's file lock: a Lease other pods see
        self.strict = strict  # a repositories glob that matches nothing blocks its policy (else a warning)
        # What the last observation sent each registry, by method and what it asked for (GET manifest...)
        self.requests: dict[str, dict[str, int]] = {}
        tell = notice or log.warning
        self.notice: Notice = lambda message: tell(redact(message))

    # desired state

    def load(self, only: str | None = None) -> PolicySet:
        """The policies at ``ref`` (connections from the trusted ref). ``only`` must name a policy
        that plans actions (``RetentionPolicy/NAME``, ``PromotionPolicy/NAME``, ``DeployPolicy/NAME``)."""
        try:
            if self.trust_ref_connections:
                self.notice(TRUST_WARNING.format(ref=self.ref or "HEAD"))
                policies = load_policies(self.repo, self.ref)
            else:
                policies = load_with_trusted_connections(self.repo, self.ref, self.trusted_ref)
        except PolicyError as e:
            raise InvalidPolicies(f"the repo-of-record is invalid ({len(e.problems)} problems); run "
                                  "`reconcile validate`", tuple(e.problems)) from None
        except SourceError as e:
            raise ReconcileError(str(e)) from None
        known = [f"{kind}/{name}" for kind, names in (
            ("RetentionPolicy", policies.retention_policies), ("PromotionPolicy", policies.promotion_policies),
            ("DeployPolicy", policies.deploy_policies)) for name in names]
        if only is not None and only not in known:
            raise ReconcileError(f"--only {only}: no such policy that plans actions (known: {', '.join(known)})")
        return policies

    # plan and apply

    def plan(self, only: str | None = None, *, record: bool = False, policies: PolicySet | None = None) -> Plan:
        """Observe and plan; change nothing (``record``: also write the plan to the audit trail as a
        dry-run ``plan`` run, the only write a plan ever makes)."""
        with audited_failures(self.audit_db, "plan", self.notice, self.repo) if record else nullcontext():
            policies = policies or self.load(only)
        with connections_for(policies) as connections:
            plan = self._observe_and_plan(policies, only, connections)
        if record:
            self._record_plan(policies, plan)
        return plan

    def apply(self, plan: Plan | str | Path | None = None, *, only: str | None = None,
              max_plan_age: timedelta | None = defaults.MAX_PLAN_AGE,
              review: Callable[[Plan], bool] | None = None, report: Callable[[Applied], None] | None = None,
              mode: RunMode = "apply", wait: bool = True) -> Applied:
        """Carry out ``plan`` (a Plan, or the path of one saved by ``plan --out``) exactly, or nothing:
        the policies are read and the world observed again, and the plan made now must equal it
        (PlanRefused otherwise, recorded as a ``refused`` run). Without ``plan``: plan and apply.

        ``review`` sees the plan about to be carried out; False stops there (NotConfirmed).
        ``report`` sees what was done before the run's end is recorded (its chain head the last word).
        ``wait``: wait for another command holding the lock (else Busy)."""
        with self._exclusive(mode, wait=wait) as guard:  # then the Notifications hear of the run (never failing it)
            return notify_after(self.audit_db, mode, self.notice, self.load,
                                lambda: self._apply(plan, only, max_plan_age, review, report, mode, guard))

    def run(self, only: str | None = None, *, review: Callable[[Plan], bool] | None = None,
            report: Callable[[Applied], None] | None = None) -> Applied:
        """The CronJob's step: plan and apply, giving up at once (Busy) when another run holds the lock."""
        return self.apply(None, only=only, review=review, report=report, mode="run", wait=False)

    # rollback

    def rollback(self, deploy_policy: str, *, to_digest: str | None = None, revision: int | None = None,
                 confirm: Callable[[str], bool] | None = None, resume: bool = False) -> RolledBack:
        """Roll ``deploy_policy`` back (to the last good digest of its deploy history unless
        ``to_digest`` or ``revision``) and hold the digest rolled back from. ``confirm`` is asked
        the question first; RollbackFailed when refused or when it did not complete. A paused
        Deployment is refused unless ``resume`` (the rollback's patch then unpauses it). Already
        there: a RolledBack with ``skipped`` set, nothing patched."""
        policies, policy = self._deploy_policy(deploy_policy)
        with self._exclusive("rollback", wait=True), connections_for(policies) as connections:
            try:
                return roll_back_policy(self.audit_db, self.notice, policies, policy, connections, to_digest,
                                        revision, confirm, resume)
            except (ClusterError, RolloutFailed, WriteBackError, RegistryError, RollbackRefused) as e:
                raise RollbackFailed(f"not rolled back: {e}") from None

    def release_hold(self, deploy_policy: str) -> Hold | None:
        """Let ``deploy_policy`` deploy the digest a rollback held back again (recorded); the hold
        released, or None when there was none."""
        policies, policy = self._deploy_policy(deploy_policy)
        with self._exclusive("release-hold", wait=True):
            _, _, holds = history(self.audit_db)
            if isinstance(holds, str):
                raise ReconcileError(f"nothing released: {holds}")
            hold = holds.get(policy.name)
            if hold is None:
                return None
            with audited_run(self.audit_db, "release-hold", self.notice, repo_url=policies.source,
                             repo_commit=policies.commit) as run:
                run.append("skip", deploy_target(policy), status="skipped", policy=f"DeployPolicy/{policy.name}",
                           digest_before=hold.digest, reason=f"{HOLD_RELEASED}: {hold.digest} may be deployed again")
            return hold

    # questions

    def explain(self, reference: str, *, only: str | None = None) -> Explanation:
        """Which policy decides what about ``reference`` (a tag, ``repository:tag``,
        ``registry/repository:tag``, a digest, or ``Kind/name`` of a policy), and why; for a tag or
        digest that is gone, the audit trail's prunes and untags of it. ``only``: plan that one
        policy alone (as ``plan``'s), so only what it decides is explained."""
        kind, _, name = reference.partition("/")
        named = reference if kind in POLICY_KINDS else None  # one policy: plan only it
        if named is not None and only is not None and only != named:
            raise ReconcileError(f"--only {only}: explaining {named} plans {named} alone; drop --only or name "
                                 "the same policy")
        policies = self.load(only)
        only = named or only
        if named is not None:
            known = {"RetentionPolicy": policies.retention_policies, "PromotionPolicy": policies.promotion_policies,
                     "DeployPolicy": policies.deploy_policies}[kind]
            if name not in known:
                return Explanation(reference, (), (), (), unknown=f"there is no {kind} named {name} (known: "
                                                                  f"{', '.join(sorted(known)) or 'none'})")
        images = deploy_images(policies)
        with connections_for(policies) as connections:
            plan = self._observe_and_plan(policies, only, connections)
        found = tuple(a for a in plan.actions if explains(a, reference, images.get(a.policy)))
        gone = removed_from_the_trail(self.audit_db, reference, self.notice) if not found and named is None else []
        return Explanation(reference, found, tuple(gone), plan.errors)

    @contextmanager
    def audit(self) -> Iterator[AuditStore]:
        """The audit trail, read-only: ``runs()``, ``actions(filter)``, ``action(id)``, ``verify()``."""
        try:
            store = AuditStore.open(self.audit_db, read_only=True)
        except AuditError as e:
            raise AuditUnavailable(str(e)) from None
        with store:
            yield store

    # the steps

    def _observe_and_plan(self, policies: PolicySet, only: str | None, connections: Connections) -> Plan:
        now = datetime.now(UTC)
        # The deploy history first: retention plans each repository as soon as it is observed (and
        # drops its state), which needs what protects images complete (the rest observe() waits for).
        deployed, arrivals, holds = history(self.audit_db, *self._also)
        retained = RetentionStream(policies, deployed, now=now, only=only)
        observation = observe(policies, resolver=connections.resolver, read_cluster=cluster_reader(connections),
                              read_helm=helm_reader(connections), read_health=health_reader(connections),
                              read_written=written_reader(connections), observed_at=utc_now(),
                              clients=connections.registries, shard=self.shard, retained=retained)
        self.requests = requests_made(connections.registries)
        gates = {s.gates.approval for p in policies.promotion_policies.values() for s in p.stages if s.gates.approval}
        approvals = read_approvals(self.repo, policies.commit, gates)
        return build_plan(policies, observation, deployed, now=now, only=only, arrivals=arrivals,
                          approvals=approvals, holds=holds, shard=self.shard, strict=self.strict)

    def _apply(self, given: Plan | str | Path | None, only: str | None, max_plan_age: timedelta | None,
               review: Callable[[Plan], bool] | None, report: Callable[[Applied], None] | None,
               mode: RunMode, guard: Callable[[], None] | None = None) -> Applied:
        with audited_failures(self.audit_db, mode, self.notice, self.repo):
            policies = self.load(only)
        label = f"saved plan {given}" if isinstance(given, str | Path) else "the plan"
        with connections_for(policies) as connections, audited_run(
                self.audit_db, mode, self.notice, repo_url=policies.source, repo_commit=policies.commit) as run:
            try:
                reviewed = _reviewed(given)
                plan = self._observe_and_plan(policies, only, connections)
                if reviewed is not None:
                    plan = check_saved(label, reviewed, plan, max_plan_age)
            except PlanRefused as refused:  # in the trail too: what was not done, and why
                run.append("skip", str(given) if isinstance(given, str | Path) else "", status="skipped",
                           reason=refused.message)
                raise
            if review is not None and not review(plan):
                raise NotConfirmed("not applied: not confirmed")
            run.counts["changes.planned"] = len(plan.changes)  # a run that had nothing to do says so
            for registry, made in self.requests.items():  # what observing cost each registry (pull limits)
                run.counts.update({f"requests.{registry}.{what}": n for what, n in made.items()})
            _record_blocked(run, plan)
            for client in connections.registries.values():  # applying is a phase of its own (limits.phaseDeadline)
                if (begin_phase := getattr(client, "begin_phase", None)) is not None:
                    begin_phase()
            result = apply_plan(plan, connections.registries, run, promotion_sources(policies),
                                DeployContext(policies, connections.cluster, default_cache_dir(), policies.commit),
                                in_use_reader(policies, connections), guard)
            run.partial = run.partial or bool(result.skipped)
            applied = Applied(plan, policies, run.id, outcome_of(run.counts, partial=run.partial,
                                                                 blocked=run.blocked),
                              tuple(result.succeeded), tuple(result.failed), tuple(result.skipped))
            if report is not None:
                report(applied)
        return applied

    @contextmanager
    def _exclusive(self, mode: RunMode, *, wait: bool) -> Iterator[Callable[[], None] | None]:
        """The file lock and the Lease for a command that changes things; yields the Lease's check.
        Held elsewhere: Busy, and a ``locked`` run in the trail."""
        try:
            with command_lock(self.audit_db, self.notice, wait=wait), leased(self.lock) as guard:
                yield guard
        except Busy as busy:
            self._record_locked(mode, busy)
            raise

    def _record_locked(self, mode: RunMode, busy: Busy) -> None:
        """A run that did nothing because another held the lock is in the trail too (outcome
        ``locked``), unless the trail itself cannot be written."""
        with suppress(ReconcileError), audited_run(self.audit_db, mode, self.notice, repo_url=self.repo) as run:
            run.locked = True
            run.append("skip", self.lock.where if self.lock is not None else f"{self.audit_db}.lock",
                       status="skipped", reason=busy.message)

    def _record_plan(self, policies: PolicySet, plan: Plan) -> None:
        """Each planned change as a skipped dry-run row and each block as a skip, so CI plans leave a
        trail (the plan itself still changes nothing)."""
        with audited_run(self.audit_db, "plan", self.notice, repo_url=policies.source, repo_commit=policies.commit,
                         dry_run=True) as run:
            run.counts["changes.planned"] = len(plan.changes)
            for action in plan.changes:
                run.append(action.mutation_kind, action.target, status="skipped", policy=action.policy,
                           reason=f"planned, not applied: {action.reason}", digest_before=action.digest_before,
                           digest_after=action.digest_after, tags=action.tags, cause=action.cause)
            _record_blocked(run, plan)

    def _deploy_policy(self, name: str) -> tuple[PolicySet, DeployPolicy]:
        policies = self.load()
        policy = policies.deploy_policies.get(name.removeprefix("DeployPolicy/"))
        if policy is None:
            raise ReconcileError(f"no DeployPolicy {name} (known: {', '.join(policies.deploy_policies) or 'none'})")
        if self.shard is not None and not self.shard.owns_deploy(policy, policies):
            owner = next(k for k in range(self.shard.count) if Shard(k, self.shard.count).owns_deploy(policy, policies))
            raise ReconcileError(f"DeployPolicy {policy.name} belongs to shard {owner}/{self.shard.count}, whose trail "
                                 f"holds its history: run with --shard {owner}/{self.shard.count}")
        return policies, policy


def _reviewed(given: Plan | str | Path | None) -> SavedPlan | None:
    if given is None:
        return None
    if isinstance(given, Plan):
        return in_memory(given)
    return read_saved_file(str(given))


def _record_blocked(run: Run, plan: Plan) -> None:
    """What was not done, and why, belongs in the trail as much as what was; and what a reader of
    the plan was warned of (a keep rule that ranks nothing, a glob that matches nothing)."""
    for warning in plan.warnings:
        run.append("skip", "", status="skipped", reason=f"warning: {warning}")
    for action in plan.actions:
        if action.kind == "blocked":
            run.blocked = True
            run.append("skip", action.target, status="skipped", policy=action.policy, reason=action.reason,
                       digest_before=action.digest_before, digest_after=action.digest_after, tags=action.tags,
                       cause=action.cause)
