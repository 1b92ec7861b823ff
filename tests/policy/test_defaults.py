"""Each default is defined once, on the model's dataclass, and the JSON Schemas document the same
value: a schema ``default`` that drifted from what the loader uses would mislead every reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconcile.policy.model import (
    DEFAULT_PRERELEASES,
    GitRefs,
    KeepRule,
    ManifestsTarget,
    Protection,
    RateLimit,
    Registry,
    RetentionPolicy,
    Retry,
    Rollout,
    Track,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"

# (schema, property path below the spec, the model's default)
DOCUMENTED = [
    ("registry", "tls.insecureSkipVerify", Registry.insecure_skip_verify),
    ("registry", "concurrency", Registry.concurrency),
    ("registry", "rateLimit.burst", RateLimit.burst),
    ("registry", "retry.attempts", Retry.attempts),
    ("deploypolicy", "manifests.branch", ManifestsTarget.branch),
    ("deploypolicy", "manifests.pullRequest", ManifestsTarget.pull_request),
    ("deploypolicy", "rollout.autoRollback", Rollout.auto_rollback),
    ("retentionpolicy", "protect.deployedHistory", Protection.deployed_history),
    ("retentionpolicy", "maxDeletions", RetentionPolicy.max_deletions),
    ("retentionpolicy", "keep.gitRefs.commitsPerBranch", GitRefs.commits_per_branch),
    ("retentionpolicy", "keep.gitRefs.revisionLabel", GitRefs.revision_label),
    ("retentionpolicy", "keep.strictSemver", KeepRule.strict_semver),
    ("retentionpolicy", "keep.descending", KeepRule.descending),
    ("retentionpolicy", "keep.prereleases", DEFAULT_PRERELEASES),
    ("promotionpolicy", "stages.track.strictSemver", Track.strict_semver),
    ("promotionpolicy", "stages.track.descending", Track.descending),
    ("promotionpolicy", "stages.track.prereleases", DEFAULT_PRERELEASES),
]


def _property(schema: dict[str, Any], node: dict[str, Any], name: str) -> dict[str, Any]:
    """``name`` among the properties of ``node`` (following $ref, array items and one level of oneOf/anyOf)."""
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    if node.get("type") == "array":
        return _property(schema, node["items"], name)
    if name in node.get("properties", {}):
        return node["properties"][name]
    for branch in node.get("oneOf", []) + node.get("anyOf", []) + node.get("allOf", []):
        try:
            return _property(schema, branch, name)
        except KeyError:
            continue
    raise KeyError(name)


@pytest.mark.parametrize(("kind", "path", "default"), DOCUMENTED, ids=[f"{k}:{p}" for k, p, _ in DOCUMENTED])
def test_the_schema_documents_the_models_default(kind: str, path: str, default: object) -> None:
    schema = json.loads((SCHEMAS / f"{kind}.schema.json").read_text())
    node = _property(schema, schema, "spec")
    for name in path.split("."):
        node = _property(schema, node, name)
    assert node["default"] == default
