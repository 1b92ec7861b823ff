"""Carrying out ``reconcile rollback``: one audited ``rollback`` action, whatever the target.

- cluster: each workload's container set to the digest (or its retained revision restored, for
  ``--revision``), then the rollout watched like a deploy's; a rollout that does not complete fails
  the action (it is not rolled back again: a person is at the keyboard).
- heroku: the digest's image ID (config digest, read from the registry) released through the
  Platform API (``PATCH /apps/{app}/formation``); nothing to watch.
- manifests: the digest written back to the manifests repository, committed and pushed (or a
  review branch), as a deploy is.

Either way the digest rolled back *from* is held (``reconcile.audit.query.deploy_holds``) — also when
the rollback failed half-way, since the person asked not to run it.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconcile.adapters.cluster import parse_image
from reconcile.adapters.git.writeback import write_back
from reconcile.apply.executor import DeployContext, heroku_release, watch_rollouts, write_back_message
from reconcile.audit import Run
from reconcile.plan.actions import Cause
from reconcile.plan.deploy import deploy_target, image_ref
from reconcile.plan.rollback import RollbackChoice
from reconcile.policy.model import DeployPolicy, registry_host


def roll_back(policy: DeployPolicy, choice: RollbackChoice, current: str | None, context: DeployContext, run: Run,
              *, tag: str | None = None, resume: Sequence[str] = ()) -> str:
    """Roll ``policy`` back from ``current`` to ``choice``; returns what was done, in a line.
    ``resume``: the paused workloads (``Kind/name``) the rollback's patch resumes, as asked."""
    stage = context.policies.promotion_policies[policy.promotion].stage(policy.stage)
    host = registry_host(context.policies.registries[stage.registry])
    subject = f"DeployPolicy/{policy.name}"
    goal = f"revision {choice.revision}" if choice.revision is not None else choice.digest
    reason = f"manual rollback to {goal}"
    if choice.hand_edit is not None:
        reason += f"; {choice.hand_edit}"
    if resume:
        reason += f"; resuming {', '.join(resume)} (--resume)"
    with run.mutation("rollback", deploy_target(policy), policy=subject, reason=reason, digest_before=current,
                      digest_after=choice.digest, cause=Cause.REQUESTED) as outcome:
        if policy.heroku is not None:
            released = heroku_release(context, policy, choice.digest)
            done = f"released image {released[:19]} to heroku {policy.heroku.app}/{policy.heroku.process}"
            outcome.reason = f"{reason}; {done}"
            return done
        if policy.manifests is not None:
            image = image_ref(host, stage.repository, choice.digest, tag)
            written = write_back(policy.manifests, policy.workloads, image, cache_dir=context.writeback_cache,
                                 message=write_back_message("rollback", subject, current, choice.digest, image,
                                                            context.commit), namespace=policy.namespace,
                                 policy=policy.name)
            done = (f"committed {written.commit} to {written.branch}" if written.changed
                    else f"{written.branch} already names it")
            outcome.reason = f"{reason}; {done}"
            return done
        assert policy.cluster is not None and policy.namespace is not None
        client = context.connect(policy.cluster)
        cause = f"reconcile rollback of {subject} at {(context.commit or 'a working tree')[:12]}"
        reference = image_ref(host, stage.repository, choice.digest)
        results = []
        for workload in policy.workloads:
            unpause = f"{workload.kind}/{workload.name}" in resume
            if choice.revision is not None:
                result = client.rollback(policy.namespace, workload.kind, workload.name, to_revision=choice.revision,
                                         cause=cause, resume=unpause)
            else:
                result = client.rollback(policy.namespace, workload.kind, workload.name, to_digest=reference,
                                         container=workload.container, cause=cause, resume=unpause)
            results.append(result)
            after = result.after.get(workload.container)
            outcome.digest_after = parse_image(after).digest if after else None
        if not any(r.changed for r in results):  # kubectl's "skipped rollback": the templates already match
            outcome.status = "skipped"
            outcome.reason = f"{reason}; " + "; ".join(f"{r.kind}/{r.name}: {r.reason}" for r in results)
            return "nothing patched: " + "; ".join(f"{r.kind}/{r.name}: {r.reason}" for r in results)
        watch_rollouts(client, policy.namespace, [(w.kind, w.name) for w in policy.workloads],
                       policy.rollout.timeout, what="the rollback's rollout")
        return f"{len(policy.workloads)} workload(s) rolled out {choice.digest}"
