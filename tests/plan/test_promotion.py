"""Promotion as tables: candidate selection, every gate, and how a digest flows stage to stage."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta

import pytest

from reconcile.observe.state import OCI_INDEX, OCI_MANIFEST, DeployHealth, Descriptor, Image, RepositoryState
from reconcile.plan.actions import Block, Cause
from reconcile.plan.promotion import (
    AmbiguousCandidate,
    PromotionInputs,
    frozen_until,
    plan_promotion,
    select_candidate,
)
from reconcile.policy.model import Approval, DateRangeFreeze, Gates, PromotionPolicy, Stage, Track, WeeklyFreeze
from reconcile.policy.semver import SemverRange

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # a Friday


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def repo(tags: dict[str, int], created: dict[int, int] | None = None, index: tuple[int, ...] = ()) -> RepositoryState:
    """tag -> image number; created: image number -> days ago."""
    created = created or {}
    images = {digest(n): Image(digest(n), OCI_INDEX if n in index else OCI_MANIFEST,
                               NOW - timedelta(days=created[n]) if n in created else None) for n in set(tags.values())}
    return RepositoryState("r", "x", {t: Descriptor(OCI_INDEX if n in index else OCI_MANIFEST, digest(n), 1)
                                      for t, n in tags.items()}, images)


def track(pattern: str = r"^v?(?P<version>.+)$", order: str = "semver", allow: str | None = None,
          ignore: str | None = None) -> Track:
    return Track(re.compile(pattern), order, re.compile(allow) if allow else None,  # type: ignore[arg-type]
                 re.compile(ignore) if ignore else None)


# --- candidate selection ----------------------------------------------------------------------

SELECTION = [
    pytest.param(track(), {"v1.2.3": 1, "v1.10.0": 2, "v1.9.9": 3}, "v1.10.0", id="semver, not text order"),
    pytest.param(track(), {"1.0.0": 1, "1.0.0-rc.1": 2}, "1.0.0", id="a release beats its pre-release"),
    pytest.param(track(), {"2.0.0-rc.1": 1, "1.9.0": 2}, "2.0.0-rc.1", id="a pre-release of a higher version wins"),
    pytest.param(track(), {"1.0.0-alpha.10": 1, "1.0.0-alpha.9": 2}, "1.0.0-alpha.10", id="numeric pre-release ids"),
    pytest.param(track(), {"1.0.0-beta": 1, "1.0.0-alpha.1": 2}, "1.0.0-beta", id="alphanumeric pre-release ids"),
    pytest.param(track(), {"1.2.3+build.9": 1, "1.2.2": 2}, "1.2.3+build.9", id="build metadata kept, not ordered"),
    pytest.param(track(), {"v2.0.0": 1, "1.5.0": 2}, "v2.0.0", id="v prefix"),
    pytest.param(track(), {"1234567": 1, "1.0.0": 2}, "1.0.0", id="an all-digit short SHA is no version"),
    pytest.param(track(), {"abcdef1": 1, "0.1.0": 2}, "0.1.0", id="a hex SHA is no version"),
    pytest.param(track(), {"1.2": 1, "1.1.0": 2}, "1.1.0", id="strict: 1.2 is no version"),
    pytest.param(track(), {"01.2.3": 1, "1.0.0": 2}, "1.0.0", id="leading zeros are no version"),
    pytest.param(track(r"^build-(\d+)$", "numeric"), {"build-9": 1, "build-10": 2}, "build-10", id="numeric"),
    pytest.param(track(r"^rel-(.+)$", "numeric"), {"rel-1.5": 1, "rel-1.10": 2}, "rel-1.5",
                 id="numeric takes decimals, by value"),
    pytest.param(track(r"^build-(\d+)$", "alphabetical"), {"build-9": 1, "build-10": 2}, "build-9", id="alphabetical"),
    pytest.param(track(r"^main-", "newest"), {"main-a": 1, "main-b": 2}, "main-a", id="newest by creation time"),
    pytest.param(track(allow=r"^v?\d+\.\d+\.\d+$"), {"1.0.0": 1, "2.0.0-rc.1": 2}, "1.0.0",
                 id="allow excludes pre-releases"),
    pytest.param(track(ignore=r"-rc"), {"1.0.0": 1, "2.0.0-rc.1": 2}, "1.0.0", id="ignore"),
    pytest.param(track(r"^release-(?P<version>.*)$"), {"release-1.0.0": 1, "v9.0.0": 2}, "release-1.0.0",
                 id="only tags the pattern matches"),
]


@pytest.mark.parametrize(("tracked", "tags", "winner"), SELECTION)
def test_candidate_selection(tracked: Track, tags: dict[str, int], winner: str) -> None:
    found = select_candidate(tracked, repo(tags, created={1: 1, 2: 5}))
    assert found is not None and found.tag == winner and found.digest == digest(tags[winner])


@pytest.mark.parametrize(("pattern", "order", "tags", "expected"), [
    (r"^latest$", "semver", {"latest": 2, "v1.0.0": 1}, ("latest", 2)),  # no version to rank: the tag itself
    (r"^stable$", "newest", {"stable": 3}, ("stable", 3)),  # no creation time needed either
    (r"^latest$", "semver", {"v1.0.0": 1}, None),  # not pushed yet: nothing to follow
    (r"^lat.st$", "semver", {"latest": 2}, None),  # a pattern, not a name: ranked as the order says
])
def test_a_track_of_one_literal_tag_follows_it(pattern: str, order: str, tags: dict[str, int],
                                                expected: tuple[str, int] | None) -> None:
    found = select_candidate(track(pattern, order), repo(tags))
    assert (found and (found.tag, found.digest)) == (expected and (expected[0], digest(expected[1])))


@pytest.mark.parametrize(("tracked", "tags", "created", "tied"), [
    # reproducible builds: one creation time for every build, so "newest" cannot choose
    (track(r"^main-", "newest"), {"main-3f9c2ab": 1, "main-0a1b2c3": 2}, {1: 3, 2: 3}, "main-0a1b2c3, main-3f9c2ab"),
    (track(r"^build-(\d+)$", "numeric"), {"build-010": 1, "build-10": 2, "build-9": 3}, {}, "build-010, build-10"),
    (track(r"^rel-(.+)$", "numeric"), {"rel-1.5": 1, "rel-1.50": 2}, {}, "rel-1.5, rel-1.50"),  # one number
])
def test_a_tie_at_the_top_on_different_digests_is_refused_not_guessed(tracked: Track, tags: dict[str, int],
                                                                      created: dict[int, int], tied: str) -> None:
    with pytest.raises(AmbiguousCandidate, match=f"ranks {tied} equal, on different digests"):
        select_candidate(tracked, repo(tags, created=created))


@pytest.mark.parametrize(("tracked", "tags", "created", "winner"), [
    (track(r"^main-", "newest"), {"main-a": 1, "main-b": 1}, {1: 3}, "main-b"),  # one digest: no doubt
    (track(r"^main-", "newest"), {"main-a": 1, "main-b": 2, "main-c": 3}, {1: 3, 2: 3, 3: 1}, "main-c"),  # tie below
    (track(), {"v1.2.3": 1, "1.2.3": 1}, {}, "v1.2.3"),  # the same version on the same digest
])
def test_ties_that_change_nothing_are_not_ambiguous(tracked: Track, tags: dict[str, int], created: dict[int, int],
                                                    winner: str) -> None:
    found = select_candidate(tracked, repo(tags, created=created))
    assert found is not None and found.tag == winner


def test_an_ambiguous_track_blocks_the_pipeline_and_says_how_to_fix_it() -> None:
    source = Stage("build", "ci", "team/web", track=track(r"^main-", "newest"))
    policy = PromotionPolicy("web", (source, Stage("prod", "prod", "web", source="build", tags=("prod",))))
    (blocked,) = plan_promotion(policy, PromotionInputs({
        "build": repo({"main-1": 1, "main-2": 2}, created={1: 2, 2: 2}), "prod": repo({})}), NOW)
    assert (blocked.kind, blocked.block, blocked.cause) == ("blocked", Block.CONFLICT, Cause.AMBIGUOUS_CANDIDATE)
    assert "order by a build number instead" in blocked.reason


def test_no_candidate() -> None:
    assert select_candidate(track(), repo({"latest": 1, "nightly": 2})) is None


def test_a_multi_arch_image_is_its_index_digest() -> None:
    found = select_candidate(track(), repo({"1.0.0": 7}, index=(7,)))
    assert found is not None and found.digest == digest(7)


# --- pipelines and gates ----------------------------------------------------------------------

BUILD = Stage("build", "ci", "team/web", track=track(r"^build-(?P<version>\d+)$", "numeric"))


NO_GATES = Gates()


def pipeline(gates: Gates = NO_GATES, prod_tags: tuple[str, ...] = ("prod", "{version}")) -> PromotionPolicy:
    return PromotionPolicy("web", (
        BUILD,
        Stage("staging", "staging", "web", source="build", tags=("staging", "{version}")),
        Stage("prod", "prod", "web", source="staging", tags=prod_tags, gates=gates)))


SOURCE = repo({"build-1": 1, "build-2": 2})  # build-2 (digest 2) is the candidate
STAGED = repo({"staging": 2, "2": 2})
PROD_OLD = repo({"prod": 1, "1": 1})


def plan(gates: Gates = NO_GATES, *, staging: RepositoryState = STAGED, prod: RepositoryState = PROD_OLD,
         **inputs: object) -> list:
    stages = {"build": SOURCE, "staging": staging, "prod": prod}
    return plan_promotion(pipeline(gates), PromotionInputs(stages, **inputs), NOW)  # type: ignore[arg-type]


def prod_action(gates: Gates = NO_GATES, **kwargs: object):
    return plan(gates, **kwargs)[1]


def test_the_candidate_flows_one_stage_at_a_time() -> None:
    staging, prod = plan(staging=repo({"staging": 1, "1": 1}))
    assert (staging.kind, staging.digest_before, staging.digest_after, staging.tags) == (
        "promote", digest(1), digest(2), ("staging", "2"))
    assert staging.reason == "2 from build to staging: no gates"
    assert (prod.kind, prod.digest_after) == ("keep", digest(1))  # prod follows staging's current digest


def test_a_stage_already_holding_the_digest_under_all_its_tags_is_kept() -> None:
    staging, prod = plan(prod=repo({"prod": 2, "2": 2}))
    assert (staging.kind, prod.kind) == ("keep", "keep")
    assert prod.reason == f"prod holds 2 ({digest(2)[:19]}) under prod, 2"


def test_a_missing_tag_is_set_even_when_the_digest_is_there() -> None:
    action = prod_action(prod=repo({"prod": 2}))
    assert (action.kind, action.tags) == ("promote", ("prod", "2"))


def test_an_immutable_version_tag_on_another_digest_is_a_conflict_never_overwritten() -> None:
    action = prod_action(prod=repo({"prod": 1, "2": 9}))
    assert action.kind == "blocked"
    assert action.reason == (f"version tag conflict in prod: 2 -> {digest(9)[:19]}; an immutable tag is never "
                             "overwritten")


def test_a_moving_tag_moves() -> None:
    action = prod_action(prod=repo({"prod": 9}))
    assert action.kind == "promote" and action.digest_before == digest(9)


def test_an_older_digest_held_downstream_keeps_its_version() -> None:
    action = prod_action(staging=repo({"staging": 1, "1": 1}), prod=repo({}))
    assert (action.kind, action.digest_after, action.tags) == ("promote", digest(1), ("prod", "1"))


def test_a_digest_whose_version_is_gone_cannot_be_promoted() -> None:
    action = prod_action(staging=repo({"staging": 5}))
    assert action.kind == "blocked" and "cannot tell the version" in action.reason


def test_an_unreadable_stage_blocks_only_what_depends_on_it() -> None:
    staging, prod = plan(staging="registry staging: 503")  # type: ignore[arg-type]
    assert (staging.kind, staging.reason) == ("blocked", "stage staging could not be read: registry staging: 503")
    assert prod.kind == "blocked" and prod.reason == "stage staging holds no digest to promote yet"


def test_no_candidate_blocks_the_pipeline() -> None:
    (action,) = plan_promotion(pipeline(), PromotionInputs({"build": repo({"latest": 1})}), NOW)
    assert action.kind == "blocked" and "no tag matches the track" in action.reason


SOAK = Gates(soak=timedelta(hours=24))
HEALTHY = Gates(healthy_in=("staging-web",))
APPROVED = Gates(approval="approvals/web-prod.yaml")

GATES = [
    pytest.param(SOAK, {"arrivals": {("staging", digest(2)): NOW - timedelta(hours=30)}}, True,
                 "soak open (1d6h in staging >= 1d)", id="soak open"),
    pytest.param(SOAK, {"arrivals": {("staging", digest(2)): NOW - timedelta(hours=2)}}, False,
                 "soak waiting until 2026-11-21T10:00Z", id="soak waiting"),
    pytest.param(SOAK, {}, False, f"soak blocked: no record of {digest(2)[:19]} reaching staging", id="soak no record"),
    pytest.param(SOAK, {"arrivals": "the audit trail could not be read: file is not a database"}, False,
                 f"soak blocked: when {digest(2)[:19]} reached staging is unknown: the audit trail could not be read: "
                 "file is not a database", id="soak unknown"),
    pytest.param(HEALTHY, {"health": {"staging-web": DeployHealth(digest(2), True)}}, True,
                 "healthyIn staging-web open", id="healthy"),
    pytest.param(HEALTHY, {"health": {"staging-web": DeployHealth(digest(1), True)}}, False,
                 f"healthyIn staging-web blocked: it runs {digest(1)[:19]}, not {digest(2)[:19]}",
                 id="healthy elsewhere"),
    pytest.param(HEALTHY, {"health": {"staging-web": DeployHealth(digest(2), False, "ProgressDeadlineExceeded")}},
                 False, "healthyIn staging-web blocked: not healthy: ProgressDeadlineExceeded", id="unhealthy"),
    pytest.param(HEALTHY, {"health": {"staging-web": "cluster staging-eu: unreachable"}}, False,
                 "healthyIn staging-web blocked: could not be read (cluster staging-eu: unreachable)",
                 id="health unreadable"),
    pytest.param(APPROVED, {"approvals": {"approvals/web-prod.yaml": (Approval("alice", version="2"),)}}, True,
                 "approval open (by alice)", id="approved by version"),
    pytest.param(APPROVED, {"approvals": {"approvals/web-prod.yaml": (Approval("bob", digest=digest(2)),
                                                                     Approval("alice", version="2"))}}, True,
                 "approval open (by alice, bob)", id="approved by digest and version"),
    pytest.param(APPROVED, {"approvals": {"approvals/web-prod.yaml": (Approval("alice", version="1"),)}}, False,
                 f"approval blocked: approvals/web-prod.yaml does not approve 2 ({digest(2)[:19]})",
                 id="another version approved"),
    pytest.param(APPROVED, {}, False, "approval blocked: approvals/web-prod.yaml does not exist",
                 id="no approval file"),
    pytest.param(Gates(freeze=(DateRangeFreeze(NOW - timedelta(days=1), NOW + timedelta(days=3), "year end"),)), {},
                 False, "freeze waiting until 2026-11-23T12:00Z (year end)", id="in a date freeze"),
    pytest.param(Gates(freeze=(DateRangeFreeze(NOW + timedelta(days=1), NOW + timedelta(days=3)),)), {}, True,
                 "no gates", id="before a date freeze"),
    pytest.param(Gates(freeze=(WeeklyFreeze(("Fri",), time(12), time(18), "Europe/Berlin"),)), {}, False,
                 "freeze waiting until 2026-11-20T17:00Z", id="in a weekly freeze, in its time zone"),
    pytest.param(Gates(freeze=(WeeklyFreeze(("Fri",), time(14), time(18), "Europe/Berlin"),)), {}, True,
                 "no gates", id="before a weekly freeze, in its time zone"),
    pytest.param(Gates(freeze=(WeeklyFreeze(("Thu",), time(22), time(14), "UTC"),)), {}, False,
                 "freeze waiting until 2026-11-20T14:00Z", id="an overnight window opened the day before"),
    pytest.param(Gates(soak=timedelta(hours=1), approval="a.yaml"),
                 {"arrivals": {("staging", digest(2)): NOW - timedelta(hours=2)},
                  "approvals": {"a.yaml": (Approval("alice", version="2"),)}}, True,
                 "soak open (2h in staging >= 1h); approval open (by alice)", id="all gates open"),
    pytest.param(Gates(soak=timedelta(hours=1), approval="a.yaml"),
                 {"arrivals": {("staging", digest(2)): NOW - timedelta(hours=2)}}, False,
                 "soak open (2h in staging >= 1h); approval blocked: a.yaml does not exist", id="one gate closed"),
]


@pytest.mark.parametrize(("gates", "inputs", "opens", "states"), GATES)
def test_gates(gates: Gates, inputs: dict, opens: bool, states: str) -> None:
    action = prod_action(gates, **inputs)
    assert action.kind == ("promote" if opens else "blocked")
    assert action.reason.endswith(": " + states)
    assert action.digest_after == digest(2) and action.tags == ("prod", "2")


def test_an_unreadable_audit_trail_blocks_a_soak_gate_as_an_error_not_as_waiting() -> None:
    action = prod_action(SOAK, arrivals="the audit trail could not be read: disk I/O error")
    assert (action.kind, action.block, action.cause) == ("blocked", Block.UNREADABLE, Cause.GATE_UNREADABLE)
    assert action.is_error


def test_freeze_window_edges() -> None:
    window = DateRangeFreeze(NOW, NOW + timedelta(hours=1))
    assert frozen_until(window, NOW) == NOW + timedelta(hours=1)  # the start is inside
    assert frozen_until(window, NOW + timedelta(hours=1)) is None  # the end is not


# --- peers' selection cases (issue 18): semver ranges, non-strict versions, descending orders -----

def peer(pattern: str = r"^(?P<version>.+)$", order: str = "semver", semver: str | None = None,
         prereleases: str = "npm", strict: bool = True, descending: bool = False) -> Track:
    return Track(re.compile(pattern), order,  # type: ignore[arg-type]
                 semver=SemverRange.parse(semver, prereleases=prereleases) if semver else None,
                 strict_semver=strict, descending=descending)


FLUX_UBUNTU = {"16.04": 1, "16.04.1": 2, "16.10": 3, "20.04": 4, "20.10": 5}
FLUX_STAMPS = {"1606234201": 1, "1606364286": 2, "1606334092": 3, "1606334284": 4, "1606334201": 5}
FLUX_INTS = {"5": 1, "-8": 2, "-78": 3, "25": 4, "70": 5, "-4": 6, "80": 7, "92": 8, "-20": 9, "-24": 10}
FLUX_FLOATS = {"-65.27202780220686": 1, "57.82948329142309": 2, "22.40184684363291": 3, "-86.36934305697784": 4,
               "-90.29082099756083": 5, "-12.041712603564264": 6, "77.70488240399305": 7}

PEER_SELECTION = [
    # fluxcd/image-reflector-controller internal/policy/semver_test.go TestSemVer_Latest (Masterminds NewVersion:
    # non-strict; 1.0.0.1 and 1.0.0p are no versions)
    pytest.param(peer(semver="1.0.x", strict=False),
                 {"1.0.0": 1, "1.0.0.1": 2, "1.0.0p": 3, "1.0.1": 4, "1.2.0": 5, "0.1.0": 6}, "1.0.1",
                 id="Flux TestSemVer_Latest valid format"),
    pytest.param(peer(semver="1.0.x", strict=False), {"v1.2.3": 1, "v1.0.0": 2, "v0.1.0": 3}, "v1.0.0",
                 id="Flux TestSemVer_Latest valid format prefix"),
    pytest.param(peer(semver="1.0.x", strict=False), {"b1.2.3": 1, "b1.0.0": 2, "b0.1.0": 3}, None,
                 id="Flux TestSemVer_Latest invalid format prefix"),
    pytest.param(peer(semver="1.0.x"), {"1.2.0": 1}, None, id="Flux TestSemVer_Latest non-matching version list"),
    # non-strict versions, as issue 18 describes Masterminds' NewVersion and Kargo's strictSemvers: false
    pytest.param(peer(strict=False), {"1.2": 1, "1.1.0": 2}, "1.2", id="strictSemver false: 1.2 is 1.2.0"),
    pytest.param(peer(strict=False), {"v2": 1, "1.9.9": 2}, "v2", id="strictSemver false: v2 is 2.0.0"),
    pytest.param(peer(), {"1.2": 1, "1.1.0": 2}, "1.1.0", id="strictSemver true (the default): 1.2 is no version"),
    pytest.param(peer(r"^v(?P<version>.+)$", semver="^1.2", strict=False), {"v1.2": 1, "v1.9": 2, "v2.0": 3}, "v1.9",
                 id="a range with strictSemver false"),
    # Kargo in Action, section 3.2.1/3.6.1 (semverConstraint ">=1.0.0 <2.0.0": latest, main, v1.0.0-rc1 do not match)
    pytest.param(peer(r"^v?(?P<version>.+)$", semver=">=1.0.0 <2.0.0"),
                 {"latest": 1, "main": 2, "v1.0.0-rc1": 3, "1.0.0": 4, "1.1.0": 5, "2.0.0": 6}, "1.1.0",
                 id="Kargo in Action semverConstraint >=1.0.0 <2.0.0"),
    pytest.param(peer(r"^v?(?P<version>.+)$", semver=">=1.0.0 <2.0.0"), {"latest": 1, "main": 2, "v1.0.0-rc1": 3},
                 None, id="Kargo in Action: no tag in range, no Freight"),
    # the two pre-release rules on one range (Masterminds TestConstraintsCheck '>= 1.0.0-0  <= 2.0.0')
    pytest.param(peer(semver=">=1.0.0-0 <=2.0.0", prereleases="masterminds"), {"1.0.1": 1, "1.3.0-rc.1": 2},
                 "1.3.0-rc.1", id="Masterminds rule: any pre-release in range"),
    pytest.param(peer(semver=">=1.0.0-0 <=2.0.0"), {"1.0.1": 1, "1.3.0-rc.1": 2}, "1.0.1",
                 id="npm rule, the same range: only 1.0.0's pre-releases"),
    # fluxcd/image-reflector-controller internal/policy/alphabetical_test.go TestAlphabetical_Latest
    pytest.param(peer(order="alphabetical"), FLUX_UBUNTU, "20.10", id="Flux alphabetical Ubuntu CalVer"),
    pytest.param(peer(order="alphabetical", descending=True), FLUX_UBUNTU, "16.04",
                 id="Flux alphabetical Ubuntu CalVer descending"),
    pytest.param(peer(order="alphabetical", descending=True),
                 {"xenial": 1, "yakkety": 2, "zesty": 3, "artful": 4, "bionic": 5}, "artful",
                 id="Flux alphabetical Ubuntu code names descending"),
    pytest.param(peer(order="alphabetical", descending=True), FLUX_STAMPS, "1606234201",
                 id="Flux alphabetical Unix timestamps desc"),
    pytest.param(peer(order="alphabetical", descending=True),
                 {"2021-01-08T21-18-21Z": 1, "2020-05-08T21-18-21Z": 2, "1990-01-08T00-20-00Z": 3},
                 "1990-01-08T00-20-00Z",
                 id="Flux alphabetical RFC3339 desc"),
    # fluxcd/image-reflector-controller internal/policy/numerical_test.go TestNumerical_Latest
    pytest.param(peer(order="numeric"), FLUX_INTS, "92", id="Flux numerical integers ascending"),
    pytest.param(peer(order="numeric", descending=True), FLUX_INTS, "-78", id="Flux numerical integers descending"),
    pytest.param(peer(order="numeric"), FLUX_FLOATS, "77.70488240399305", id="Flux numerical floats ascending"),
    pytest.param(peer(order="numeric", descending=True), FLUX_FLOATS, "-90.29082099756083",
                 id="Flux numerical floats descending"),
    pytest.param(peer(order="numeric", descending=True), FLUX_STAMPS, "1606234201",
                 id="Flux numerical Unix timestamps descending"),
    pytest.param(peer(order="numeric", descending=True), {"1": 1}, "1", id="Flux numerical single descending"),
    # Flux refuses {"0", "1a", "b"} (an error: a tag that is no number); reconcile passes over tags the order
    # cannot rank, as every order does, and the plan names them when none ranks (a deliberate difference)
    pytest.param(peer(order="numeric"), {"0": 1, "1a": 2, "b": 3}, "0", id="Flux numerical invalid list (differs)"),
    # descending semver and newest (Flux has no descending semver; issue 18: every order kind)
    pytest.param(peer(descending=True), {"1.2.3": 1, "1.10.0": 2, "1.9.0": 3}, "1.2.3", id="semver descending"),
    pytest.param(peer(r"^main-", "newest", descending=True), {"main-a": 1, "main-b": 2}, "main-b",
                 id="newest descending: the oldest"),
]


@pytest.mark.parametrize(("tracked", "tags", "winner"), PEER_SELECTION)
def test_peer_selection(tracked: Track, tags: dict[str, int], winner: str | None) -> None:
    found = select_candidate(tracked, repo(tags, created={1: 1, 2: 5}))
    assert (found and found.tag) == winner


def test_a_descending_tie_on_one_digest_takes_the_first_tag_by_name() -> None:
    found = select_candidate(peer(descending=True), repo({"v1.0.0": 1, "1.0.0": 1, "2.0.0": 2}))
    assert found is not None and found.tag == "1.0.0"


@pytest.mark.parametrize(("tracked", "tags", "reason"), [
    pytest.param(peer(r"^rel-(.+)$", "numeric"), {"rel-1.5a": 1, "rel-x": 2},
                 "2 tags match the track '^rel-(.+)$', but order numeric ranks none of them: e.g. 'rel-1.5a', "
                 "whose version '1.5a' is not a number (integer or decimal)", id="numeric"),
    pytest.param(peer(semver="^2"), {"1.0.0": 1}, "1 tag matches the track '^(?P<version>.+)$', none within "
                 "semver '^2' (e.g. '1.0.0': 1.0.0 is not)", id="semver range"),
    pytest.param(peer(r"^app-"), {"web-1": 1}, "no tag matches the track '^app-'", id="nothing matches"),
])
def test_no_candidate_says_why(tracked: Track, tags: dict[str, int], reason: str) -> None:
    source = Stage("build", "ci", "team/web", track=tracked)
    policy = PromotionPolicy("web", (source, Stage("prod", "prod", "web", source="build", tags=("prod",))))
    (action,) = plan_promotion(policy, PromotionInputs({"build": repo(tags)}), NOW)
    assert (action.kind, action.cause, action.reason) == ("blocked", Cause.NO_CANDIDATE, reason)
