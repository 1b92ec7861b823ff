"""observe(): every source a plan needs, read side by side (a run waits for its slowest source, not
for the sum of them), each failure turned into a reason."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

from reconcile.observe.world import observe
from reconcile.policy import load_policies
from reconcile.policy.secrets import SecretResolver
from tests.adapters.registry.faults import FaultProxy
from tests.adapters.registry.oci import Layout, push
from tests.conftest import RunningRegistry


def test_independent_sources_are_read_side_by_side(tmp_path: Path, plain_registry: RunningRegistry,
                                                   proxy_factory: Callable[..., FaultProxy]) -> None:
    """Two registries (here one server behind one proxy, named twice), one repository of one tag each:
    alone, each policy's reads are one after another; only reading both policies at once puts two
    of the catalog requests the proxy holds back in flight together."""
    layout = Layout(tmp_path / "layout")
    names = [f"world-{secrets.token_hex(3)}/{app}" for app in ("web", "api")]
    for n, name in enumerate(names):
        layout.tag(layout.image(created=f"2026-11-0{n + 1}T00:00:00Z"), f"v{n}")
        push(layout, f"v{n}", plain_registry.host, name)
    proxy = proxy_factory(plain_registry.url)
    proxy.inject(r"/_catalog", "delay", delay=0.5, times=-1)
    root = tmp_path / "policies"
    root.mkdir()
    (root / "policies.yaml").write_text("\n---\n".join(f"""\
apiVersion: reconcile/v1
kind: Registry
metadata: {{name: r{n}}}
spec: {{url: "{proxy.url}", concurrency: 1}}
---
apiVersion: reconcile/v1
kind: RetentionPolicy
metadata: {{name: keep-{n}}}
spec:
  registry: r{n}
  repositories: ["{name}"]
  keep: [{{tags: '^v'}}]""" for n, name in enumerate(names)))
    policies = load_policies(str(root))
    clients: dict = {}
    try:
        seen = observe(policies, resolver=SecretResolver(environ={}), read_cluster=None,
                       observed_at="2026-11-22T00:00:00Z", cache_dir=tmp_path / "cache", clients=clients)
    finally:
        for client in clients.values():
            client.close()
    assert {name: [r.repository for r in o.repositories] for name, o in seen.retention.items()} == {
        "keep-0": [names[0]], "keep-1": [names[1]]}
    assert proxy.max_in_flight == 2
