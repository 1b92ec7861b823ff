"""Retention planned a repository at a time, as observation completes each (issue 17): a
RetentionPolicy's repository state is dropped once planned, so a plan holds the repositories in
flight and the plan's actions, not every tag and image of the world.

Pure, like the rest of the planner: :class:`RetentionStream` is given what retention depends on
besides the repositories (the clusters' images, what deploy targets run, the audit trail's deploy
history, each policy's git commits) and then each repository, and answers with a
:class:`~reconcile.observe.state.PlannedRepository`: the repository's actions
(:func:`~reconcile.plan.retention.plan_repository`), its rank warnings and its part of the plan's
fingerprint (:func:`~reconcile.plan.tags_hash`). The observer drives it
(``reconcile.observe.world.observe(retained=...)``, which serialises the calls) and
:func:`~reconcile.plan.build_plan` puts the planned repositories together exactly as it plans whole
states: the same actions in the same order, errors, warnings and fingerprint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from reconcile.observe.state import ClusterState, DeployHealth, GitCommits, PlannedRepository, RepositoryState
from reconcile.plan import deploy_targets, tags_hash
from reconcile.plan.retention import (
    RetentionInputs,
    plan_repository,
    protection,
    repository_rank_warnings,
    unreadable,
)
from reconcile.policy.model import registry_host

if TYPE_CHECKING:
    from reconcile.plan.retention import _Protected
    from reconcile.policy.model import PolicySet

__all__ = ["RetentionStream"]


class RetentionStream:
    """``build_plan``'s retention, a repository at a time. Made with what ``build_plan`` will be
    called with (``deployed``, ``now``, ``only``); :meth:`protecting` once every protecting source
    is read, then :meth:`repository` for each repository of each RetentionPolicy as it is observed.
    Not thread-safe: its caller serialises the calls."""

    def __init__(self, policies: PolicySet, deployed: Mapping[str, Sequence[str]] | None, *, now: datetime,
                 only: str | None = None) -> None:
        self.policies, self.deployed, self.now, self.only = policies, deployed, now, only
        self._protecting: tuple[Mapping[str, ClusterState | str], Mapping[str, DeployHealth | str],
                                Mapping[str, DeployHealth | str]] | None = None
        # policy -> its inputs (without repositories) and what it protects, or None when blocked
        self._policies: dict[str, tuple[RetentionInputs, _Protected | None]] = {}

    def protecting(self, clusters: Mapping[str, ClusterState | str], health: Mapping[str, DeployHealth | str],
                   written: Mapping[str, DeployHealth | str]) -> None:
        """The observation's ``clusters``, ``health`` and ``written``, complete (each read or why not)."""
        self._protecting = (dict(clusters), health, written)
        self._policies.clear()

    def repository(self, policy: str, git_commits: Mapping[int, GitCommits],
                   state: RepositoryState) -> PlannedRepository:
        """``state``, a repository of RetentionPolicy ``policy`` (whose gitRefs rules' commits are
        ``git_commits``), planned: what ``build_plan`` keeps of it in place of the state."""
        tags = tags_hash(state)
        if self.only and self.only != f"RetentionPolicy/{policy}":
            return PlannedRepository(state.registry, state.repository, tags)  # observed, fingerprinted, not planned
        retention = self.policies.retention_policies[policy]
        warnings = tuple(repository_rank_warnings(retention, state))
        inputs, protected = self._policy(policy, git_commits)
        if protected is None:  # a protecting source is unreadable: build_plan blocks the policy as a whole
            return PlannedRepository(state.registry, state.repository, tags, (), warnings)
        actions = tuple(plan_repository(retention, inputs, protected, state, self.now))
        return PlannedRepository(state.registry, state.repository, tags, actions, warnings, planned=True)

    def _policy(self, name: str, git_commits: Mapping[int, GitCommits]
                ) -> tuple[RetentionInputs, _Protected | None]:
        known = self._policies.get(name)
        if known is not None and known[0].git_commits is git_commits:
            return known
        if self._protecting is None:
            raise RuntimeError("RetentionStream.repository before protecting(): the protecting sources come first")
        clusters, health, written = self._protecting
        policy = self.policies.retention_policies[name]
        inputs = RetentionInputs(registry_host(self.policies.registries[policy.registry]), (), clusters,
                                 self.deployed, git_commits,
                                 deploy_targets(self.policies, health, written, policy.registry))
        known = (inputs, None if unreadable(policy, inputs) else protection(policy, inputs))
        self._policies[name] = known
        return known
