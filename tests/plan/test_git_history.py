"""gitRefs rules that count images per reference and limit the references (werf's keepPolicies
``imagesPerReference`` and ``references.limit``), as a table: refs' histories and images in,
kept and pruned tags out. Pure: no git, no registry."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest

from reconcile.observe.state import OCI_MANIFEST, Descriptor, GitHistories, Image, RefHistory, RepositoryState
from reconcile.plan.actions import Cause
from reconcile.plan.retention import RetentionInputs, plan_retention
from reconcile.policy.model import GitRefs, GitRefsLimit, KeepRule, RetentionPolicy

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
HOUR = 3600


def sha(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()


def ago(hours: float) -> int:
    return int(NOW.timestamp() - hours * HOUR)


def ref(name: str, *commits: tuple[str, float], head: float | None = None, truncated: bool = False) -> RefHistory:
    """A ref and its commits, newest first, each (name, hours ago); its head date is its first
    commit's unless ``head`` (hours ago) says otherwise."""
    return RefHistory(name, ago(head if head is not None else commits[0][1]),
                      tuple((sha(c), ago(hours)) for c, hours in commits), truncated)


def histories(*refs: RefHistory, depth: int = 1000) -> GitHistories:
    return GitHistories(tuple(sorted(refs, key=lambda r: r.ref)), depth)


def registry(images: dict[str, tuple[int, float | None]], labels: dict[int, str] | None = None) -> RepositoryState:
    """Tag -> (image number, created hours ago or None: unknown). ``sha-<commit>`` tags name the
    commit of that name (``sha-c2`` names c2, 12 hex digits); ``labels``: image -> commit name of
    its revision label."""
    labels = labels or {}
    tags, found = {}, {}
    for tag, (n, created) in images.items():
        digest = f"sha256:{n:064x}"
        name = tag.removeprefix("sha-")
        tags[f"sha-{sha(name)[:12]}" if tag.startswith("sha-") else tag] = Descriptor(OCI_MANIFEST, digest, 100)
        found[digest] = Image(digest, OCI_MANIFEST, None if created is None else NOW - timedelta(hours=created),
                              {"org.opencontainers.image.revision": sha(labels[n])} if n in labels else {})
    return RepositoryState("ci", "team/app", tags, found)


def rule(last: int | None = 1, within: float | None = None, operator: str = "And", limit: GitRefsLimit | None = None,
         per_reference: bool = True, commits_per_branch: int = 1) -> KeepRule:
    return KeepRule(git_refs=GitRefs(
        repo="./src", branches=re.compile(".*"), tags=re.compile(".*"), commits_per_branch=commits_per_branch,
        tag_commit=re.compile(r"^sha-(?P<commit>[0-9a-f]{7,40})$"), revision_label=True,
        images_per_reference=GitRefsLimit(last, None if within is None else timedelta(hours=within),
                                          operator) if per_reference else None,  # type: ignore[arg-type]
        limit=limit))


def limit(last: int | None = None, within: float | None = None, operator: str = "And") -> GitRefsLimit:
    return GitRefsLimit(last, None if within is None else timedelta(hours=within), operator)  # type: ignore[arg-type]


def plan(keep: KeepRule, refs: GitHistories, repository: RepositoryState) -> tuple[list[str], list[str], dict]:
    actions = plan_retention(RetentionPolicy("p", "ci", ("team/*",), (keep,)),
                             RetentionInputs("registry.example.com", (repository,), git_commits={0: refs}), NOW)
    kept = sorted(a.target.rsplit(":", 1)[-1] for a in actions if a.kind == "keep")
    pruned = sorted(tag for a in actions if a.kind == "prune" for tag in a.tags)
    reasons = {a.target.rsplit(":", 1)[-1]: a for a in actions if a.kind == "keep"}
    return kept, pruned, reasons


def t(name: str) -> str:
    """The registry tag ``sha-<name>`` becomes."""
    return f"sha-{sha(name)[:12]}"


MAIN = ref("refs/heads/main", ("c5", 1), ("c4", 2), ("c3", 3), ("c2", 4), ("c1", 5))

CASES = [
    pytest.param(  # commitsPerBranch: 2 would keep c5 and c4's image only
        rule(last=2), histories(MAIN),
        registry({"sha-c5": (1, 1), "sha-c4": (1, 2), "sha-c2": (2, 4), "sha-c1": (3, 5)}),
        [t("c2"), t("c4"), t("c5")], [t("c1")],
        id="it counts images, not commits: c5 and c4 are one image, c3 has none, c2 is the second"),
    pytest.param(  # werf test/legacy_e2e/suites/cleanup/cleanup_test.go: "should keep several images that
        # are related to one commit regardless of the keep policies (imagesPerReference.last=1)"
        rule(last=1), histories(MAIN),
        registry({"sha-c5": (1, 1), "nightly": (2, 1), "sha-c4": (3, 2)}, labels={2: "c5"}),
        ["nightly", t("c5")], [t("c4")],
        id="images first found at one commit count as one"),
    pytest.param(  # werf's cleanup_test.go "imagesPerReference.*", policy set 7 of its git_history_based_policy
        # fixture (in: 12h, last: 1, operator: Or): commits 13h, 11h and 0h old, one image each
        rule(last=1, within=12, operator="Or"), histories(ref("refs/heads/test", ("s3", 0), ("s2", 11), ("s1", 13))),
        registry({"sha-s3": (3, 0), "sha-s2": (2, 11), "sha-s1": (1, 13)}),
        [t("s2"), t("s3")], [t("s1")], id="werf: imagesPerReference in OR last"),
    pytest.param(  # the same, policy set 8 (operator: And)
        rule(last=1, within=12, operator="And"), histories(ref("refs/heads/test", ("s3", 0), ("s2", 11), ("s1", 13))),
        registry({"sha-s3": (3, 0), "sha-s2": (2, 11), "sha-s1": (1, 13)}),
        [t("s3")], [t("s1"), t("s2")], id="werf: imagesPerReference in AND last"),
    pytest.param(
        rule(last=1, within=12, operator="And"),
        histories(ref("refs/heads/main", ("c3", 100), ("c2", 101), ("c1", 102))),
        registry({"sha-c3": (3, 30), "sha-c2": (2, 1), "sha-c1": (1, 2)}),
        [t("c2")], [t("c1"), t("c3")], id="And: an image older than in does not count, the next young one does"),
    pytest.param(
        rule(last=1, within=12, operator="And"), histories(ref("refs/heads/main", ("c3", 100), ("c2", 101))),
        registry({"sha-c3": (3, None), "sha-c2": (2, 1)}),
        [t("c3")], [t("c2")], id="an unknown creation time is within in (fail closed)"),
    pytest.param(
        rule(last=3), histories(ref("refs/tags/v1", ("c3", 5))),
        registry({"sha-c3": (3, 5), "sha-c2": (2, 6)}),
        [t("c3")], [t("c2")], id="a git tag counts its own commit only"),
    pytest.param(  # werf's cleanup_test.go "references.limit.*", policy set 5 (in: 12h, last: 1, Or), and
        # imagesPerReference's default last: 1
        rule(last=None, limit=limit(last=1, within=12, operator="Or")),
        histories(ref("refs/heads/test1", ("r1", 13)), ref("refs/heads/test2", ("r2", 11)),
                  ref("refs/heads/test3", ("r3", 0))),
        registry({"sha-r1": (1, 13), "sha-r2": (2, 11), "sha-r3": (3, 0)}),
        [t("r2"), t("r3")], [t("r1")], id="werf: references.limit in OR last"),
    pytest.param(  # the same, policy set 6 (operator: And)
        rule(limit=limit(last=1, within=12, operator="And")),
        histories(ref("refs/heads/test1", ("r1", 13)), ref("refs/heads/test2", ("r2", 11)),
                  ref("refs/heads/test3", ("r3", 0))),
        registry({"sha-r1": (1, 13), "sha-r2": (2, 11), "sha-r3": (3, 0)}),
        [t("r3")], [t("r1"), t("r2")], id="werf: references.limit in AND last"),
    pytest.param(
        rule(limit=limit(last=1)),
        histories(ref("refs/heads/a", ("a1", 1)), ref("refs/heads/b", ("b1", 5)), ref("refs/tags/v1", ("v1", 50)),
                  ref("refs/tags/v0", ("v0", 90))),
        registry({"sha-a1": (1, 1), "sha-b1": (2, 5), "sha-v1": (3, 50), "sha-v0": (4, 90)}),
        [t("a1"), t("v1")], [t("b1"), t("v0")],
        id="limit: branches and tags each keep their last N by head date"),
    pytest.param(
        rule(per_reference=False, commits_per_branch=2, limit=limit(within=24)),
        histories(ref("refs/heads/a", ("a2", 1), ("a1", 30)), ref("refs/heads/old", ("o2", 48), ("o1", 49))),
        registry({"sha-a2": (1, 1), "sha-a1": (2, 30), "sha-o2": (3, 48)}),
        [t("a1"), t("a2")], [t("o2")], id="limit with commitsPerBranch: the commits of the refs that count"),
    pytest.param(
        rule(last=3), histories(ref("refs/heads/main", ("c3", 1), ("c2", 2), truncated=True), depth=2),
        registry({"sha-c3": (3, 1), "sha-c1": (1, 3), "latest": (4, 0)}),
        [t("c1"), t("c3")], ["latest"], id="a walk cut at its depth short of its count keeps every image unread"),
    pytest.param(
        rule(last=1), histories(ref("refs/heads/main", ("c3", 1), ("c2", 2), truncated=True), depth=2),
        registry({"sha-c3": (3, 1), "sha-c1": (1, 3)}),
        [t("c3")], [t("c1")], id="a walk cut at its depth after its count keeps nothing more"),
    pytest.param(
        rule(last=1, within=12, operator="Or"),
        histories(ref("refs/heads/main", ("c3", 1), ("c2", 2), truncated=True), depth=2),
        registry({"sha-c3": (3, 1), "sha-c1": (1, 30), "sha-c0": (5, 3)}),
        [t("c0"), t("c3")], [t("c1")], id="Or and in, cut at its depth: unread images within in are kept"),
]


@pytest.mark.parametrize(("keep", "refs", "repository", "kept", "pruned"), CASES)
def test_images_per_reference(keep: KeepRule, refs: GitHistories, repository: RepositoryState,
                              kept: list[str], pruned: list[str]) -> None:
    found_kept, found_pruned, _ = plan(keep, refs, repository)
    assert (found_kept, found_pruned) == (sorted(kept), sorted(pruned))


def test_the_reason_names_the_reference_and_the_count() -> None:
    _, _, reasons = plan(rule(last=3), histories(MAIN),
                         registry({"sha-c5": (1, 1), "sha-c2": (2, 4), "sha-c1": (3, 5)}))
    assert reasons[t("c2")].reason == (
        f"keep[0]: image 2 of the last 3 of branch main (built from commit {sha('c2')[:12]})")
    assert reasons[t("c2")].cause is Cause.GIT_REF
    cut = histories(ref("refs/heads/main", ("c3", 1), truncated=True), depth=1)
    _, _, reasons = plan(rule(last=2), cut, registry({"sha-c3": (3, 1), "sha-c1": (1, 3)}))
    assert reasons[t("c1")].reason == (
        "keep[0]: branch main's history was read to its first 1 commits with 1 of its last 2 images found; older "
        "commits were not read and this image's commit is not among those read, so it is kept (fail closed)")
    _, _, reasons = plan(rule(last=1, within=12, operator="Or"),
                         histories(ref("refs/heads/test", ("s3", 0), ("s2", 11))),
                         registry({"sha-s3": (3, 0), "sha-s2": (2, 11)}))
    assert reasons[t("s2")].reason == (
        f"keep[0]: within 12h of branch test: built from commit {sha('s2')[:12]}, committed 11h ago")


def test_an_abbreviated_sha_naming_two_read_commits_counts_at_each() -> None:
    one, two = "abcdef0" + "1" * 33, "abcdef0" + "2" * 33
    refs = GitHistories((RefHistory("refs/heads/a", ago(1), ((one, ago(1)),)),
                         RefHistory("refs/heads/b", ago(1), ((two, ago(1)),))), 1000)
    repository = RepositoryState("ci", "team/app", {"sha-abcdef0": Descriptor(OCI_MANIFEST, "sha256:" + "1" * 64, 1),
                                                    "sha-abcdef09": Descriptor(OCI_MANIFEST, "sha256:" + "2" * 64, 1)},
                                 {})
    kept, pruned, _ = plan(rule(last=1), refs, repository)
    assert (kept, pruned) == (["sha-abcdef0"], ["sha-abcdef09"])


def test_histories_are_part_of_the_fingerprint_and_plain_commits_hash_as_before() -> None:
    from reconcile.observe.state import Observation, RetentionObservation
    from reconcile.plan import _commits_json, fingerprint

    def world(commits: object) -> str:
        seen = RetentionObservation((), {0: commits})  # type: ignore[dict-item]
        return fingerprint(Observation("2026-11-21T12:00:00Z", {}, {"p": seen}), {})

    plain = frozenset({sha("c1"), sha("c2")})
    # what the fingerprint hashed for a commitsPerBranch rule before histories existed: the sorted SHAs
    assert _commits_json(plain) == sorted(plain) and _commits_json("unreachable") == "unreachable"
    one = histories(ref("refs/heads/main", ("c2", 1), ("c1", 2)))
    moved = histories(ref("refs/heads/main", ("c2", 1), ("c1", 2), head=0))
    assert len({world(plain), world(one), world(moved), world(histories(MAIN))}) == 4
