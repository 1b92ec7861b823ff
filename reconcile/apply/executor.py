"""The executor: carries out a plan's changes through the adapters, each one written to the audit
trail as an intent before and an outcome after. A dry run goes through the same plan; it simply
never gets here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconcile.audit import Run
from reconcile.observe.registry import CannotUntag, RegistryClient, RegistryError, copy_image
from reconcile.plan.actions import Action
from reconcile.plan.plan import Plan
from reconcile.policy.model import PolicySet


@dataclass
class ApplyResult:
    succeeded: list[Action] = field(default_factory=list)
    failed: list[tuple[Action, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def parse_target(target: str) -> tuple[str, str, str | None, str | None]:
    """``registry/repository:tag`` or ``registry/repository@digest`` -> (registry, repository, tag, digest).
    Unambiguous: repository names hold neither ':' nor '@', tags hold no ':'."""
    registry, rest = target.split("/", 1)
    if "@" in rest:
        repository, digest = rest.split("@", 1)
        return registry, repository, None, digest
    repository, tag = rest.rsplit(":", 1)
    return registry, repository, tag, None


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
               sources: Mapping[str, tuple[str, str]] | None = None) -> ApplyResult:
    """Every change, in plan order. A failed action is recorded and the rest still run: each
    deletion was decided on its own, and stopping half-way would not undo the earlier ones."""
    result = ApplyResult()
    for action in plan.changes:
        try:
            _apply(action, clients, run, sources or {})
        except (RegistryError, CannotUntag) as e:
            result.failed.append((action, str(e)))
        else:
            result.succeeded.append(action)
    return result


def _apply(action: Action, clients: Mapping[str, RegistryClient], run: Run,
           sources: Mapping[str, tuple[str, str]]) -> None:
    registry, repository, tag, digest = parse_target(action.target)
    client = clients[registry]
    with run.mutation(action.kind, action.target, policy=action.policy, reason=action.reason,  # type: ignore[arg-type]
                      digest_before=action.digest_before, digest_after=action.digest_after) as outcome:
        if action.kind == "prune" and digest is not None:
            if not client.delete_manifest(repository, digest):
                outcome.status, outcome.reason = "skipped", "already gone"
        elif action.kind == "untag" and tag is not None:
            client.delete_tag(repository, tag)
        elif action.kind == "promote" and digest is not None:
            # The same digest, every platform, blob and referrer; copy_image verifies it on arrival.
            source_registry, source_repository = sources[f"{registry}/{repository}"]
            copy_image(clients[source_registry], source_repository, digest, client, repository, action.tags)
        else:
            raise ValueError(f"the executor cannot carry out {action.kind} on {action.target} yet")
