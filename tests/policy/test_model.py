"""The typed policies later stages consume: built from the example repo-of-record."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from reconcile.policy import PolicyError, load_policies
from reconcile.policy.model import DateRangeFreeze, Registry, Retry, WeeklyFreeze
from reconcile.policy.secrets import SecretRef

EXAMPLE = str(Path(__file__).resolve().parents[2] / "policies")


@pytest.fixture(scope="module")
def policies():
    return load_policies(EXAMPLE)


def test_registries_hold_references_not_values(policies) -> None:
    ci = policies.registries["ci"]
    assert ci.url == "https://registry.ci.example.com"
    assert ci.credentials.username == SecretRef(source="env", env="CI_REGISTRY_USER")
    assert ci.credentials.password == SecretRef(source="file", path="/var/run/secrets/ci/token")
    assert ci.concurrency == 16 and ci.rate_limit.requests_per_second == 50
    assert ci.retry == Retry(attempts=6, budget=timedelta(minutes=2))
    assert policies.registries["prod"].retry == Retry()  # 5 attempts, 60s of waiting
    assert policies.registries["staging"].credentials.docker_config.path == "/etc/reconcile/docker/config.json"
    assert policies.registries["prod"].credentials.username == "reconcile-bot"
    assert [policies.registries[n].deletion_mode for n in ("ci", "staging", "prod")] == ["manifest", "tag", "manifest"]


def test_objects_are_immutable(policies) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        policies.registries["ci"].url = "https://elsewhere"  # type: ignore[misc]
    with pytest.raises(TypeError):
        policies.registries["evil"] = policies.registries["ci"]  # type: ignore[index]


def test_retention_rules_are_typed(policies) -> None:
    policy = policies.retention_policies["ci-cleanup"]
    releases, two_x, builds, git_refs = policy.keep
    assert releases.tags.search("v1.2.3") and releases.last == 10
    assert two_x.semver is not None and str(two_x.semver) == ">=2.0.0 <3.0.0"
    assert builds.newer_than == timedelta(days=7) and builds.operator == "Or" and builds.order == "numeric"
    assert git_refs.git_refs.tag_commit.search("sha-abc1234").group("commit") == "abc1234"
    assert policy.protect.in_use == ("prod-eu", "staging-eu") and policy.protect.deployed_history == 3
    assert policy.max_deletions == 200


def test_pipeline_is_ordered_from_its_source(policies) -> None:
    web = policies.promotion_policies["web"]
    assert [s.name for s in web.stages] == ["build", "staging", "prod"]
    prod = web.stage("prod")
    assert prod.source == "staging" and prod.tags == ("prod", "{version}")
    assert prod.gates.soak == timedelta(hours=24) and prod.gates.healthy_in == ("staging-web",)
    year_end, weekends = prod.gates.freeze
    assert isinstance(year_end, DateRangeFreeze) and year_end.start.year == 2026
    assert isinstance(weekends, WeeklyFreeze) and weekends.time_zone == "Europe/Berlin"


def test_deploy_targets(policies) -> None:
    prod = policies.deploy_policies["prod-web"]
    assert (prod.promotion, prod.stage, prod.cluster, prod.namespace) == ("web", "prod", "prod-eu", "web")
    assert prod.rollout.timeout == timedelta(minutes=10) and prod.rollout.auto_rollback
    gitops = policies.deploy_policies["prod-web-manifests"]
    assert gitops.cluster is None and gitops.manifests.pull_request


def test_origin_says_where_a_policy_is_defined(policies) -> None:
    assert str(policies.deploy_policies["prod-web"].origin) == f"{EXAMPLE}/deploy/web.yaml:15"


def test_load_policies_raises_with_every_problem(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("apiVersion: reconcile/v1\nkind: Cluster\nmetadata: {name: c}\nspec: {}\n"
                                       "---\napiVersion: reconcile/v1\nkind: Nope\n")
    with pytest.raises(PolicyError) as raised:
        load_policies(str(tmp_path))
    assert [p.line for p in raised.value.problems] == [4, 7]


@pytest.mark.parametrize(("allowed", "url", "expected"), [
    ((), "https://r.example.com/v2/", False),
    (("r.example.com",), "https://r.example.com/v2/", True),
    (("r.example.com",), "https://R.EXAMPLE.COM:443/v2/", True),
    (("r.example.com",), "http://r.example.com/v2/", False),  # an https registry's credentials never go in clear
    (("r.example.com",), "https://r.example.com:8443/v2/", False),  # another service on the host
    (("r.example.com",), "https://blobs.example.com/x", False),  # a redirect to storage
    (("r.example.com",), "https://r.example.com.evil.net/v2/", False),
    (("r.example.com",), "https://r.example.com@evil.net/v2/", False),
    (("127.0.0.1:5001",), "https://127.0.0.1:5001/v2/", True),
    (("127.0.0.1:5001",), "https://127.0.0.1:5002/v2/", False),  # the other test registry
    (("[::1]:5000",), "https://[::1]:5000/v2/", True),
    (("r.example.com",), "ftp://r.example.com/", False),
])
def test_credentials_go_only_to_allowed_hosts(allowed: tuple[str, ...], url: str, expected: bool) -> None:
    registry = Registry(name="r", url="https://r.example.com", credentials=None, allowed_hosts=allowed)
    assert registry.may_receive_credentials(url) is expected


def test_allowed_hosts_default_to_the_registry_itself(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("apiVersion: reconcile/v1\nkind: Registry\nmetadata: {name: r}\n"
                                     "spec: {url: 'http://127.0.0.1:5001', credentials: {token: {env: T}}}\n")
    registry = load_policies(str(tmp_path)).registries["r"]
    assert registry.allowed_hosts == ("127.0.0.1:5001",)
    assert registry.may_receive_credentials("http://127.0.0.1:5001/v2/_catalog")
    assert not registry.may_receive_credentials("http://127.0.0.1:5002/v2/_catalog")


def test_how_a_registry_deletes_is_declared_with_a_default_per_kind(tmp_path: Path) -> None:
    documents = [("plain", "https://r.example.com", ""), ("untags", "https://h.example.com", ", deletion: tag"),
                 ("mirror", "https://m.example.com", ", deletion: none"), ("layout", "oci-layout:/srv/oci", ""),
                 ("archive", "oci-layout:/srv/archive", ", deletion: none")]
    (tmp_path / "r.yaml").write_text("---\n".join(
        f"apiVersion: reconcile/v1\nkind: Registry\nmetadata: {{name: {name}}}\nspec: {{url: '{url}'{extra}}}\n"
        for name, url, extra in documents))
    registries = load_policies(str(tmp_path)).registries
    assert {name: (r.deletion, r.deletion_mode) for name, r in registries.items()} == {
        "plain": (None, "manifest"), "untags": ("tag", "tag"), "mirror": ("none", "none"),
        "layout": (None, "tag"), "archive": ("none", "none")}
    assert Registry(name="r", url="https://r.example.com", credentials=None, allowed_hosts=()).deletion_mode == \
        "manifest"


def test_an_unknown_deletion_is_refused(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("apiVersion: reconcile/v1\nkind: Registry\nmetadata: {name: r}\n"
                                     "spec: {url: 'https://r.example.com', deletion: tags}\n")
    with pytest.raises(PolicyError) as raised:
        load_policies(str(tmp_path))
    (problem,) = raised.value.problems
    assert (problem.line, problem.message) == (4, "/spec/deletion: 'tags' is not one of: manifest, tag, none")
