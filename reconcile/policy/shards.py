"""Sharding: which repositories and pipelines one of N runs acts on (``--shard K/N``, an Indexed
Job's JOB_COMPLETION_INDEX). A repository's shard is a stable hash of ``registry/repository``, so
it stays in its shard from run to run whatever else is added; a promotion pipeline goes where its
first stage's repository goes, so all its stages (and the DeployPolicies that deploy from them)
are decided by one run."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from reconcile.policy.model import DeployPolicy, PolicySet, PromotionPolicy

_FORM = re.compile(r"^(\d{1,4})/(\d{1,4})$")


@dataclass(frozen=True)
class Shard:
    index: int  # 0-based, as JOB_COMPLETION_INDEX is
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``K/N``; ValueError saying what is wrong otherwise."""
        match = _FORM.match(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not K/N (shard K of N, K from 0)")
        index, count = int(match[1]), int(match[2])
        if count < 1 or not 0 <= index < count:
            raise ValueError(f"{text!r}: K must be 0 to N-1 and N at least 1")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def suffix(self) -> str:
        """What names this shard's own files and Lease: ``shard-K-of-N``."""
        return f"shard-{self.index}-of-{self.count}"

    def audit_db(self, base: str) -> str:
        """This shard's own trail next to ``base``: ``audit.db`` -> ``audit.shard-2-of-4.db``."""
        path = Path(base)
        return str(path.with_name(f"{path.stem}.{self.suffix}{path.suffix or '.db'}"))

    def other_audit_dbs(self, base: str) -> list[str]:
        """The trails this shard reads history from besides its own: the other shards' of the same
        N, then ``base`` itself (written before sharding)."""
        return [*(Shard(k, self.count).audit_db(base) for k in range(self.count) if k != self.index), base]

    def owns_repository(self, registry: str, repository: str) -> bool:
        digest = hashlib.sha256(f"{registry}/{repository}".encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index

    def owns_promotion(self, policy: PromotionPolicy) -> bool:
        first = policy.stages[0]
        return self.owns_repository(first.registry, first.repository)

    def owns_deploy(self, policy: DeployPolicy, policies: PolicySet) -> bool:
        return self.owns_promotion(policies.promotion_policies[policy.promotion])
