"""``reconcile explain``: which policy decides what about an image (or a policy), and why."""

from __future__ import annotations

import click

from reconcile.cli import Settings, cli, common_options
from reconcile.cli.session import connections_for, load_checked, observe_and_plan
from reconcile.plan import Action
from reconcile.policy import PolicySet

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
    policies = load_checked(settings, None)
    kind, _, name = reference.partition("/")
    only = reference if kind in POLICY_KINDS else None  # one policy: plan only it
    if only is not None:
        known = {"RetentionPolicy": policies.retention_policies, "PromotionPolicy": policies.promotion_policies,
                 "DeployPolicy": policies.deploy_policies}[kind]
        if name not in known:
            click.echo(f"there is no {kind} named {name} (known: {', '.join(sorted(known)) or 'none'})")
            return
    images = deploy_images(policies)
    with connections_for(policies) as connections:
        plan = observe_and_plan(settings, policies, only, connections)
    found = [a for a in plan.actions if explains(a, reference, images.get(a.policy))]
    if not found:
        click.echo(f"no policy decides anything about {reference} (no retention policy covers it, no promotion "
                   "sets or holds it in a stage, no deploy runs or wants it; or it does not exist)")
    for action in found:
        tags = f" (tags: {', '.join(action.tags)})" if action.tags else ""
        click.echo(f"{action.target}{tags}: {action.kind} — {action.policy}: {action.reason}")
    for error in plan.errors:
        click.echo(f"note: {error}", err=True)
