"""Retention never deletes what is kept: one key per rule, fail-closed ordering, referrers and
platform manifests deleted only as dependants. Tables of hand-written observations; no I/O."""

from __future__ import annotations

import re
from types import MappingProxyType

import pytest

from reconcile.observe.state import OCI_INDEX, OCI_MANIFEST, Descriptor, Image, Platform, RepositoryState
from reconcile.policy.model import KeepRule, Protection
from reconcile.policy.semver import SemverRange
from tests.plan.test_retention import digest, policy, repo, rule, run

SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"


def builds(n: int) -> RepositoryState:
    return repo({f"build-{i}": i for i in range(1, n + 1)})


def kept_tags(actions: list) -> list[str]:
    return sorted(a.target.split(":", 1)[1] for a in actions if a.kind == "keep")


def deleted(actions: list) -> set[str]:
    return {a.digest_before for a in actions if a.kind == "prune"}


# --- one key per rule ---------------------------------------------------------------------------

KEY_CASES = [
    pytest.param(rule(r"^build-(\d+)$", last=5, order="numeric"), builds(22),
                 [f"build-{i}" for i in range(18, 23)], id="numeric by the capture group"),
    pytest.param(rule(r"^build-(?P<version>\d+)$", last=2), builds(12), ["build-11", "build-12"],
                 id="named group version, order inferred as numeric"),
    pytest.param(rule(r"^build-\d+$", last=5, order="numeric"), builds(22),
                 sorted(f"build-{i}" for i in range(1, 23)), id="no group: nothing ranks, everything is kept"),
    pytest.param(rule(r"^(x)?build-(\d+)$", last=1, order="numeric"), builds(3),
                 ["build-1", "build-2", "build-3"], id="group 1 took no part: kept"),
    pytest.param(rule(r"^rel-(.+)$", last=1, order="numeric"), repo({"rel-1.5": 1, "rel-1.10": 2, "rel-2": 3}),
                 ["rel-2"], id="decimals rank by value"),
    pytest.param(rule(r"^rel-(.+)$", last=2, order="numeric"), repo({"rel-1.5": 1, "rel-1.10": 2, "rel-0.9": 3}),
                 ["rel-1.10", "rel-1.5"], id="1.10 is below 1.5 as a decimal (as Flux's numerical)"),
    pytest.param(rule(r"^rel-(.+)$", last=1, order="numeric"), repo({"rel-1": 1, "rel-2": 2, "rel-next": 3}),
                 ["rel-2", "rel-next"], id="a part that is no number is kept beside the newest"),
    pytest.param(rule(r"^(.+)$", last=1, order="semver"), repo({"1.0.0": 1, "2.0.0": 2, "nightly": 3}),
                 ["2.0.0", "nightly"], id="semver order keeps what it cannot parse"),
    pytest.param(KeepRule(tags=re.compile(r"^test-(.*)$"), semver=SemverRange.parse(">=0.x"), last=1),
                 repo({"test-0.1.0": 1, "test-0.1.1": 2, "test-0.0.9": 3, "other-9.9.9": 4}),
                 ["test-0.1.1"], id="semver range tested on the group, as the order is"),
    pytest.param(KeepRule(tags=re.compile(r"^app-v(?P<version>.+)-linux$"), semver=SemverRange.parse("^1"), last=1),
                 repo({"app-v1.2.0-linux": 1, "app-v1.3.0-linux": 2, "app-v2.0.0-linux": 3}),
                 ["app-v1.3.0-linux"], id="semver range on the named group"),
    pytest.param(rule(r"^v", last=1, order="alphabetical"), repo({"va": 1, "vb": 2}), ["vb"],
                 id="alphabetical ranks every tag"),
]


@pytest.mark.parametrize(("keep", "repository", "expected"), KEY_CASES)
def test_filter_range_and_order_look_at_one_key(keep: KeepRule, repository: RepositoryState,
                                                 expected: list[str]) -> None:
    assert kept_tags(run(policy(keep), repository)) == expected


def test_an_unrankable_tag_names_the_fix() -> None:
    actions = run(policy(rule(r"^build-\d+$", last=5, order="numeric")), builds(6))
    reasons = {a.target.rsplit(":", 1)[1]: a.reason for a in actions}
    assert reasons["build-6"] == (
        r"keep[0]: matches '^build-\d+$', kept because numeric order cannot rank it: 'build-6' is not a number "
        r"(without a capture group the whole tag is compared): add a capture group: '^build-(\d+)$'")


def test_unknown_creation_time_is_kept_by_newest_order() -> None:
    actions = run(policy(rule("^b-", last=1, order="newest")), repo({"b-x": 1, "b-y": 2, "b-z": 3},
                                                                    age_days={2: 3, 3: 1}))
    assert kept_tags(actions) == ["b-x", "b-z"]
    assert "kept because creation time order cannot rank it: its creation time is unknown" in next(
        a.reason.split(", ", 1)[1] for a in actions if a.target.endswith(":b-x"))


# --- referrers and platform manifests -----------------------------------------------------------

def with_images(base: RepositoryState, *extra: Image, referrers: dict[str, tuple[Descriptor, ...]] | None = None,
                can_delete_tags: bool = False) -> RepositoryState:
    images = dict(base.images)
    images.update({image.digest: image for image in extra})
    return RepositoryState(base.registry, base.repository, base.tags, MappingProxyType(images),
                           MappingProxyType(referrers or {}), can_delete_tags)


def sig_tag(n: int) -> str:
    return f"sha256-{digest(n)[7:]}.sig"


def test_a_cosign_tag_naming_a_pruned_image_but_pointing_at_a_kept_one_deletes_nothing_kept() -> None:
    # sha256-<old>.sig resolves to v1's digest: deleting it as old's "referrer" would delete v1.
    actions = run(policy(rule("^v")), repo({"v1": 1, "old": 2, sig_tag(2): 1}))
    assert deleted(actions) == {digest(2)}
    assert digest(1) not in deleted(actions)
    sig = next(a for a in actions if a.target.endswith(sig_tag(2)))
    assert sig.kind == "keep" and "tagged v1, which is kept" in sig.reason


def test_a_referrer_that_is_also_a_kept_images_referrer_stays() -> None:
    shared = Descriptor(OCI_MANIFEST, digest(20), 10, artifact_type=SIGNATURE)
    base = repo({"v1": 1, "old": 2})
    state = with_images(base, Image(digest(20), OCI_MANIFEST, None), referrers={digest(1): (shared,),
                                                                                 digest(2): (shared,)})
    actions = run(policy(rule("^v")), state)
    assert deleted(actions) == {digest(2)}


def test_a_referrer_of_a_kept_image_is_kept_even_when_a_stray_tag_points_at_it() -> None:
    signature = Descriptor(OCI_MANIFEST, digest(20), 10, artifact_type=SIGNATURE)
    base = repo({"v1": 1, "stray": 20})
    state = with_images(base, Image(digest(20), OCI_MANIFEST, None, subject=digest(1)),
                        referrers={digest(1): (signature,)})
    actions = run(policy(rule("^v")), state)
    assert deleted(actions) == set()
    stray = next(a for a in actions if a.target.endswith(":stray"))
    assert stray.kind == "keep" and f"referrer of kept {digest(1)[:19]}" in stray.reason


def test_an_oci_subject_referrer_of_a_pruned_image_goes_with_it_after_it() -> None:
    signature = Descriptor(OCI_MANIFEST, digest(20), 10, artifact_type=SIGNATURE)
    base = repo({"v1": 1, "old": 2})
    state = with_images(base, Image(digest(20), OCI_MANIFEST, None, subject=digest(2)),
                        referrers={digest(2): (signature,)})
    actions = [a for a in run(policy(rule("^v")), state) if a.kind == "prune"]
    assert [a.digest_before for a in actions] == [digest(2), digest(20)]
    assert actions[1].depends_on == actions[0].target
    assert f"referrer ({SIGNATURE}) of pruned {digest(2)[:19]}" in actions[1].reason


def test_an_orphaned_signature_is_kept() -> None:
    actions = run(policy(rule("^v")), repo({"v1": 1, sig_tag(99): 5}))
    assert deleted(actions) == set()
    assert "is not in this repository" in actions[-1].reason


def index_repo(tags: dict[str, int], children: dict[int, list[int]]) -> RepositoryState:
    base = repo(tags, children=children)
    images = dict(base.images)
    for parent, kids in children.items():
        image = images[digest(parent)]
        images[digest(parent)] = Image(image.digest, OCI_INDEX, None, children=tuple(
            Descriptor(OCI_MANIFEST, digest(k), 100, platform=Platform("linux", arch))
            for k, arch in zip(kids, ("amd64", "arm64", "s390x"), strict=False)))
    return RepositoryState(base.registry, base.repository, base.tags, MappingProxyType(images))


def test_a_pruned_index_takes_its_platform_manifests_and_their_referrers() -> None:
    state = index_repo({"v1": 1, "old": 2, sig_tag(21): 30}, {1: [11, 12], 2: [21, 22]})
    actions = [a for a in run(policy(rule("^v")), state) if a.kind == "prune"]
    assert [a.digest_before for a in actions] == [digest(2), digest(21), digest(30), digest(22)]
    assert [a.depends_on for a in actions] == [None, actions[0].target, actions[1].target, actions[0].target]
    assert "platform manifest (linux/amd64) of pruned" in actions[1].reason


def test_a_platform_manifest_shared_with_a_kept_index_stays_and_the_plan_says_so() -> None:
    state = index_repo({"v1": 1, "old": 2}, {1: [11, 12], 2: [12, 22]})
    actions = [a for a in run(policy(rule("^v")), state) if a.kind == "prune"]
    assert [a.digest_before for a in actions] == [digest(2), digest(22)]
    assert (f"its platform manifests {digest(12)[:19]} (linux/amd64) stay: platform manifest of kept "
            f"{digest(1)[:19]}") in actions[0].reason


def test_a_platform_manifest_in_use_stays() -> None:
    from reconcile.observe.state import ClusterState, ImageReference, Usage
    state = index_repo({"v1": 1, "old": 2}, {2: [21, 22]})
    ref = ImageReference("registry.ci.example.com", "team-a/web", digest=digest(22))
    cluster = ClusterState("prod", {ref: (Usage("prod", "web", "Pod", "web-1", "web", "running"),)})
    actions = run(policy(rule("^v"), protect=Protection(in_use=("prod",))), state, clusters={"prod": cluster})
    assert digest(22) not in deleted(actions)
    assert digest(2) not in deleted(actions)  # the index of what runs stays too


def test_a_rule_that_ranks_no_observed_tag_is_a_plan_warning() -> None:
    from reconcile.plan.retention import rank_warnings
    assert rank_warnings(policy(rule(r"^build-\d+$", last=5, order="numeric")), [builds(3)]) == [
        "RetentionPolicy/ci-cleanup keep[0]: order numeric can rank none of the 3 tags it selects in team-a/web, so "
        "all are kept: 'build-1' is not a number (without a capture group the whole tag is compared): add a capture "
        r"group: '^build-(\d+)$'"]
    assert rank_warnings(policy(rule(r"^build-(\d+)$", last=5, order="numeric")), [builds(3)]) == []
    assert rank_warnings(policy(rule(r"^rel-(.+)$", last=1, order="numeric")),
                         [repo({"rel-x": 1, "rel-y": 2})])[0].endswith("'x' is not a number")


def test_the_canonical_order_puts_each_dependant_right_after_what_it_goes_with() -> None:
    from reconcile.plan.plan import make_plan
    # digest 90's index sorts after its platform manifests' digests: the plan order must not follow the digests
    state = index_repo({"v1": 1, "old": 90, sig_tag(3): 95}, {90: [3, 4]})
    plan = make_plan("repo", None, "now", run(policy(rule("^v")), state))
    assert [a.digest_before for a in plan.changes] == [digest(90), digest(3), digest(95), digest(4)]
    seen: set[str] = set()
    for action in plan.changes:
        assert action.depends_on is None or action.depends_on in seen
        seen.add(action.target)


def test_a_registry_that_declares_it_cannot_delete_blocks_the_policy() -> None:
    base = repo({"v1": 1, "old": 2})
    state = RepositoryState(base.registry, base.repository, base.tags, base.images, can_delete=False)
    actions = run(policy(rule("^v")), state)
    assert [a.kind for a in actions] == ["blocked", "keep"]
    assert actions[0].reason.startswith("Registry ci declares deletion: none, so the 1 deletions")
    assert run(policy(rule(".")), state)[0].kind == "keep"  # nothing to delete: nothing to block


# --- found by the generated cases (tests/properties) --------------------------------------------

def test_without_an_order_each_kind_ranks_among_its_own_and_a_second_plan_agrees() -> None:
    # Mixed tags: the last 1 version, the last 1 number and the newest other tag are kept. An
    # order inferred from all the tags together would flip once the others were pruned.
    state = repo({"1.0.0": 1, "2.0.0": 2, "7": 3, "9": 4, "nightly-a": 5, "nightly-b": 6},
                 age_days={5: 2, 6: 1})
    actions = run(policy(rule(".", last=1)), state)
    assert kept_tags(actions) == ["2.0.0", "9", "nightly-b"]
    reason = next(a.reason for a in actions if a.target.endswith(":2.0.0"))
    assert "among the 1 newest of the versions by semver" in reason
    after = repo({"2.0.0": 2, "9": 4, "nightly-b": 6}, age_days={6: 1})
    assert deleted(run(policy(rule(".", last=1)), after)) == set()


def test_an_orphaned_signatures_own_referrers_stay() -> None:
    # sha256-<99>.sig names an image not in the repository; its digest 30 is also a referrer of the
    # pruned build: 30 is kept (the orphan's signature), and so is what refers to 30.
    signature = Descriptor(OCI_MANIFEST, digest(30), 10, artifact_type=SIGNATURE)
    base = repo({"v1": 1, "old": 2, sig_tag(99): 30, sig_tag(30): 31})
    state = with_images(base, referrers={digest(2): (signature,)})
    actions = run(policy(rule("^v")), state)
    assert deleted(actions) == {digest(2)}


def test_a_referrer_tag_a_cluster_runs_by_name_is_kept() -> None:
    from reconcile.observe.state import ClusterState, ImageReference, Usage
    state = repo({"v1": 1, "old": 2, sig_tag(2): 12})
    ref = ImageReference("registry.ci.example.com", "team-a/web", tag=sig_tag(2))
    cluster = ClusterState("prod", {ref: (Usage("prod", "web", "Pod", "p", "c", "running"),)})
    actions = run(policy(rule("^v"), protect=Protection(in_use=("prod",))), state, clusters={"prod": cluster})
    assert deleted(actions) == {digest(2)}  # the image goes; the signature a cluster pulls by name stays


def test_an_untagged_running_image_keeps_its_tagged_sbom() -> None:
    from reconcile.observe.state import ClusterState, ImageReference, Usage
    sbom = Image(digest(40), OCI_MANIFEST, None, subject=digest(7), artifact_type="application/spdx+json")
    state = with_images(repo({"v1": 1, "sbom-7": 40}), sbom)
    ref = ImageReference("registry.ci.example.com", "team-a/web", digest=digest(7))
    cluster = ClusterState("prod", {ref: (Usage("prod", "web", "Pod", "p", "c", "running"),)})
    actions = run(policy(rule("^v"), protect=Protection(in_use=("prod",))), state, clusters={"prod": cluster})
    assert deleted(actions) == set()


def test_a_protected_referrer_whose_manifest_was_not_read_is_not_deleted() -> None:
    from reconcile.observe.state import ClusterState, ImageReference, Usage
    listed = Descriptor(OCI_MANIFEST, digest(50), 10, artifact_type=SIGNATURE)  # manifest answered 404
    state = with_images(repo({"v1": 1, "old": 2}), referrers={digest(2): (listed,)})
    ref = ImageReference("registry.ci.example.com", "team-a/web", digest=digest(50))
    cluster = ClusterState("prod", {ref: (Usage("prod", "web", "Pod", "p", "c", "running"),)})
    actions = run(policy(rule("^v"), protect=Protection(in_use=("prod",))), state, clusters={"prod": cluster})
    assert deleted(actions) == {digest(2)}


def test_the_oci_referrers_tag_schema_follows_its_subject() -> None:
    # sha256-<hex> (no suffix): an index of the subject's referrers, for registries without the API.
    fallback = f"sha256-{digest(1)[7:]}"
    pruned_fallback = f"sha256-{digest(2)[7:]}"
    state = index_repo({"v1": 1, "old": 2, fallback: 60, pruned_fallback: 70}, {60: [61], 70: [71]})
    actions = run(policy(rule("^v")), state)
    assert deleted(actions) == {digest(2), digest(70), digest(71)}
    assert next(a for a in actions if a.target.endswith(fallback)).kind == "keep"
