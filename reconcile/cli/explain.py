"""``reconcile explain``: which policy decides what about an image (or a policy), and why; for a
tag or digest that is gone, when and why the audit trail says it was removed."""

from __future__ import annotations

import click

from reconcile.cli import Settings, cli, common_options
from reconcile.cli.reconcile import only_option
from reconcile.cli.session import library_errors, reconciler_for


@cli.command("explain")
@common_options
@click.argument("reference", metavar="IMAGE_REF")
@only_option
def explain_command(settings: Settings, reference: str, only: str | None) -> None:
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

    --only KIND/NAME plans that policy alone, as plan's does: only what it decides is explained.
    """
    with library_errors():
        explanation = reconciler_for(settings).explain(reference, only=only)
    if explanation.unknown:
        click.echo(explanation.unknown)
        return
    for line in explanation.removals:
        click.echo(line)
    if not explanation.actions and not explanation.removals:
        click.echo(f"no policy decides anything about {reference} (no retention policy covers it, no promotion "
                   "sets or holds it in a stage, no deploy runs or wants it; or it does not exist) and the audit "
                   "trail records no prune or untag of it")
    for action in explanation.actions:
        tags = f" (tags: {', '.join(action.tags)})" if action.tags else ""
        click.echo(f"{action.target}{tags}: {action.kind} — {action.policy}: {action.reason}")
    for error in explanation.errors:
        click.echo(f"note: {error}", err=True)
