"""The repo-of-record the plan benchmarks write: one Registry ``bench`` and one RetentionPolicy
``builds`` keeping the last :data:`KEEP` builds (``build-N``, numeric order) of every repository
``bench/svc-*``, so about half of two-tags-per-image repositories is pruned.

Used by ``plan_bench.py``, ``listing_bench.py`` and ``memory_bench.py``; stdlib only, since
``memory_bench.py --child`` (the measured process) imports it.
"""

from __future__ import annotations

from pathlib import Path

KEEP = 10


def retention_repo(directory: Path, url: str, *, max_deletions: int, registry_extra: str = "") -> Path:
    """Write ``policies.yaml`` into ``directory`` (created if need be) and return ``directory``.
    ``registry_extra`` is appended inside the Registry's flow-style ``spec`` (``", concurrency: 32"``)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "policies.yaml").write_text(f"""\
apiVersion: reconcile/v1
kind: Registry
metadata: {{name: bench}}
spec: {{url: "{url}"{registry_extra}}}
---
apiVersion: reconcile/v1
kind: RetentionPolicy
metadata: {{name: builds}}
spec:
  registry: bench
  repositories: ["bench/svc-*"]
  keep:
    - {{tags: '^build-(\\d+)$', last: {KEEP}, order: numeric}}
  maxDeletions: {max_deletions}
""")
    return directory
