"""``reconcile rollback`` and ``reconcile release-hold``: a DeployPolicy rolled back by hand, and
the hold that keeps scheduled runs from rolling it forward again, released."""

from __future__ import annotations

import click

from reconcile.cli import Settings, cli, common_options
from reconcile.cli.session import interactive, library_errors, reconciler_for


@cli.command("rollback")
@common_options
@click.argument("policy_name", metavar="DEPLOYPOLICY")
@click.option("--to", "to_digest", metavar="DIGEST", envvar="RECONCILE_ROLLBACK_TO",
              help="Roll back to this digest (sha256:…).")
@click.option("--revision", "--to-revision", "revision", type=int, metavar="N", envvar="RECONCILE_ROLLBACK_REVISION",
              help="Restore this retained revision's pod template, as `kubectl rollout undo --to-revision N` "
                   "(cluster targets; see `kubectl rollout history`).")
@click.option("--resume", is_flag=True, envvar="RECONCILE_ROLLBACK_RESUME",
              help="Roll a paused Deployment back and resume it in the same patch (refused without it).")
@click.option("--yes", "-y", is_flag=True, envvar="RECONCILE_YES", help="Do not ask for confirmation on a terminal.")
def rollback_command(settings: Settings, policy_name: str, to_digest: str | None, revision: int | None,
                     resume: bool, yes: bool) -> None:
    """Roll a DeployPolicy back and hold the digest rolled back from: scheduled runs do not roll
    forward to it again until a newer candidate arrives or `reconcile release-hold`.

    Default target: the last good digest before the current one in the audit trail's deploy
    history (never the one held: rolling back twice does not redeploy what the first undid),
    cross-checked with the workloads' retained revisions. A cluster target's rollout is
    watched (exit 1 if it does not complete); a manifests target gets a write-back commit. A digest
    the stage's registry no longer holds is refused.

    As `kubectl rollout undo`: already at the revision (or digest) asked for exits 0 with "already
    at revision N", nothing patched; a revision not retained is "unable to find specified revision N
    in history" (with revisionHistoryLimit: 0 the cluster keeps none: the audit trail's digests are
    offered, --to); a paused Deployment is refused before anything is patched unless --resume; the
    revision's kubernetes.io/change-cause comes back with it. Unlike it: a workload changed by hand
    since reconcile's last deploy is named (in the question and the audit trail) before it is
    overwritten, and one set by tag is known by the digest its pods report. Every refusal is
    recorded in the audit trail as a skip with its reason.
    """
    def confirm(question: str) -> bool:
        return yes or not interactive() or click.confirm(question, err=True)

    with library_errors():
        rolled = reconciler_for(settings, writes=True).rollback(policy_name, to_digest=to_digest,
                                                                revision=revision, confirm=confirm, resume=resume)
    click.echo(str(rolled), err=True)


@cli.command("release-hold")
@common_options
@click.argument("policy_name", metavar="DEPLOYPOLICY")
def release_hold_command(settings: Settings, policy_name: str) -> None:
    """Let a DeployPolicy deploy a digest a rollback held back again (recorded in the audit trail)."""
    with library_errors():
        hold = reconciler_for(settings, writes=True).release_hold(policy_name)
    if hold is None:
        click.echo(f"DeployPolicy {policy_name.removeprefix('DeployPolicy/')} holds nothing back", err=True)
    else:
        click.echo(f"released the hold on {hold.digest} for {policy_name.removeprefix('DeployPolicy/')}", err=True)
