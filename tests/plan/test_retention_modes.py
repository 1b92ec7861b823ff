"""Retention's peer semantics (issue 18), as plain tables: keepMode firstMatch with priorities
(ECR's rulePriority), count images (ECR's imageCountMoreThan, werf's images), age pushed (ECR's
sinceImagePushed), image-level retention and untagOthers, untagged manifests (ECR's tagStatus)."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from types import MappingProxyType

import pytest

from reconcile.observe.state import OCI_MANIFEST, Image, ImageReference, RepositoryState
from reconcile.plan.actions import Cause
from tests.plan.test_retention import HOST, NOW, PROTECT_PROD, cluster, digest, outcome, policy, repo, rule, run

DAY = timedelta(days=1)


def listed(state: RepositoryState, *, untagged: dict[int, float] | None = None,
           pushed: dict[int, float] | None = None) -> RepositoryState:
    """``state`` as a listing API reports it: untagged manifests (number -> days since created) and
    push times (number -> days ago)."""
    images = dict(state.images)
    for n, age in (untagged or {}).items():
        images[digest(n)] = Image(digest(n), OCI_MANIFEST, NOW - age * DAY)
    return dataclasses.replace(state, images=MappingProxyType(images),
                               untagged=frozenset(digest(n) for n in untagged or {}),
                               pushed=MappingProxyType({digest(n): NOW - age * DAY
                                                        for n, age in (pushed or {}).items()}))


def newest(tags: str, last: int, **kwargs: object) -> object:
    return rule(tags, last=last, order="newest", **kwargs)


# ECR's "Filtering on multiple rules", example A: images A [beta-1, prod-1] pushed 10 days ago,
# B [beta-2, prod-2] 9 days, C [beta-3] 8 days; rule 1 prod count > 1, rule 2 beta count > 1:
# ECR expires A only (B is rule 1's, which rule 2 cannot expire).
ECR_A = listed(repo({"beta-1": 1, "prod-1": 1, "beta-2": 2, "prod-2": 2, "beta-3": 3}),
               pushed={1: 10, 2: 9, 3: 8})
ECR_RULES = (newest("^prod", 1, count="images", age="pushed", priority=1),
             newest("^beta", 1, count="images", age="pushed", priority=2), rule(".*", priority=3))

CASES = [
    pytest.param(policy(*ECR_RULES, keep_mode="firstMatch"), ECR_A,
                 {"keep": [":beta-2", ":beta-3", ":prod-2"], "prune": [f"@{digest(1)}"]},
                 id="ECR example A: the first rule that selects an image decides it"),
    pytest.param(policy(*reversed(ECR_RULES), keep_mode="firstMatch"), ECR_A,
                 {"keep": [":beta-2", ":beta-3", ":prod-2"], "prune": [f"@{digest(1)}"]},
                 id="priority, not list order, decides first"),
    pytest.param(policy(*ECR_RULES[:2]), ECR_A,
                 {"keep": [":beta-2", ":beta-3", ":prod-2"], "prune": [f"@{digest(1)}"]},
                 id="union without the catch-all agrees here"),
    # X [prod-1, beta-9]: prod's rule expires it first; under union beta's rule keeps it
    pytest.param(policy(*ECR_RULES, keep_mode="firstMatch"),
                 listed(repo({"prod-1": 1, "beta-9": 1, "prod-2": 2}), pushed={1: 5, 2: 4}),
                 {"keep": [":prod-2"], "prune": [f"@{digest(1)}"]},
                 id="firstMatch: a later rule cannot keep what an earlier one expired"),
    pytest.param(policy(*(dataclasses.replace(r, priority=None) for r in ECR_RULES[:2])),
                 listed(repo({"prod-1": 1, "beta-9": 1, "prod-2": 2}), pushed={1: 5, 2: 4}),
                 {"keep": [":beta-9", ":prod-1", ":prod-2"]},
                 id="union: any rule keeps it"),
    pytest.param(policy(rule("^v", last=2, count="images")),
                 repo({"v1.0.0": 1, "v1.0": 1, "v1": 1, "v0.9.0": 2, "v0.8.0": 3}),
                 {"keep": [":v0.9.0", ":v1", ":v1.0", ":v1.0.0"], "prune": [f"@{digest(3)}"]},
                 id="count images: the newest 2 images, each with all its selected tags"),
    pytest.param(policy(rule("^v", last=2)),
                 repo({"v1.0.0": 1, "v1.0.1": 1, "v0.9.0": 2, "v0.8.0": 3}),
                 {"keep": [":v1.0.0", ":v1.0.1"], "prune": [f"@{digest(2)}", f"@{digest(3)}"]},
                 id="count tags (the default): the 2 newest tags, here both on one image"),
    pytest.param(policy(rule("^b-", newer_than=7 * DAY, age="pushed")),
                 listed(repo({"b-old-pushed-new": 1, "b-new-pushed-old": 2, "b-unknown": 3},
                             age_days={1: 30, 2: 1, 3: 40}), pushed={1: 2, 2: 30}),
                 {"keep": [":b-old-pushed-new", ":b-unknown"], "prune": [f"@{digest(2)}"]},
                 id="age pushed: the push time counts, not creation; an unknown push time keeps"),
    pytest.param(policy(rule("^v"), rule(tag_status="untagged", last=1), untagged="prune"),
                 listed(repo({"v1": 1}), untagged={2: 3, 3: 1, 4: 9}),
                 {"keep": [f"@{digest(3)}", ":v1"], "prune": [f"@{digest(2)}", f"@{digest(4)}"]},
                 id="untagged: prune: the newest untagged manifest is kept, the others pruned"),
    pytest.param(policy(rule("^v"), rule(tag_status="untagged", last=1)),
                 listed(repo({"v1": 1}), untagged={2: 3, 3: 1, 4: 9}),
                 {"keep": [":v1"]},
                 id="untagged: keep (the default): untagged manifests are not touched"),
    pytest.param(policy(rule(tag_status="any", last=2, order="newest", count="images"), untagged="prune"),
                 listed(repo({"a": 1, "b": 1, "c": 5}, age_days={1: 2, 5: 20}), untagged={2: 3, 3: 1}),
                 {"keep": [f"@{digest(3)}", ":a", ":b"], "prune": [f"@{digest(2)}", f"@{digest(5)}"]},
                 id="tagStatus any counts tagged and untagged images together"),
    # ECR's "Filtering on multiple tags in a single rule", example A: tagPrefixList [alpha, beta],
    # sinceImagePushed 5 days: only C (alpha-2, beta-2; 10 days) expires: A and B carry one prefix each.
    pytest.param(policy(rule(with_tags=(re.compile("^alpha"), re.compile("^beta")), newer_than=5 * DAY,
                             age="pushed", priority=1), rule(".*", priority=2), keep_mode="firstMatch"),
                 listed(repo({"alpha-1": 1, "beta-1": 2, "alpha-2": 3, "beta-2": 3, "alpha-3": 4, "beta-3": 5,
                              "alpha-4": 6, "beta-4": 6}), pushed={1: 12, 2: 11, 3: 10, 4: 4, 5: 3, 6: 2}),
                 {"keep": [":alpha-1", ":alpha-3", ":alpha-4", ":beta-1", ":beta-3", ":beta-4"],
                  "prune": [f"@{digest(3)}"]},
                 id="withTags: only an image with a tag for every pattern is selected (ECR's tagPrefixList)"),
    # Example B: imageCountMoreThan 1 over images with both alpha and beta tags: C, the newest, stays.
    pytest.param(policy(rule(with_tags=(re.compile("^alpha"), re.compile("^beta")), last=1, order="newest",
                             count="images", age="pushed")),
                 listed(repo({"alpha-1": 1, "beta-1": 1, "gamma-1": 1, "alpha-2": 2, "beta-2": 2, "alpha-3": 3,
                              "beta-3": 3, "gamma-2": 3, "alpha-9": 4}), pushed={1: 10, 2: 9, 3: 8, 4: 20}),
                 {"keep": [":alpha-3", ":beta-3", ":gamma-2"],
                  "prune": [f"@{digest(1)}", f"@{digest(2)}", f"@{digest(4)}"]},
                 id="withTags with last counts only the images it selects (alpha-9 alone: no rule keeps it)"),
]


@pytest.mark.parametrize(("retention", "repository", "expected"), CASES)
def test_modes(retention: object, repository: RepositoryState, expected: dict) -> None:
    assert outcome(run(retention, repository)) == expected  # type: ignore[arg-type]


def test_first_match_says_which_rule_decided() -> None:
    actions = run(policy(*ECR_RULES, keep_mode="firstMatch"), ECR_A)
    kept = {a.target.split(":")[-1]: a for a in actions if a.kind == "keep"}
    assert kept["prod-2"].reason == ("keep[0]: matches '^prod', among the 1 newest images by push time (keepMode "
                                     "firstMatch: the first rule that selects this image)")
    assert kept["beta-2"].cause is Cause.IMAGE_KEPT  # beta's rule would not keep it: prod-2's image does


def test_under_first_match_untag_others_keeps_only_what_the_deciding_rule_keeps() -> None:
    state = dataclasses.replace(ECR_A, can_delete_tags=True)
    actions = run(policy(*ECR_RULES, keep_mode="firstMatch", untag_others=True), state)
    assert outcome(actions) == {"keep": [":beta-3", ":prod-2"], "untag": [":beta-2"], "prune": [f"@{digest(1)}"]}


def test_an_untagged_manifest_nothing_keeps_is_pruned_with_its_reason_and_counts_against_max_deletions() -> None:
    state = listed(repo({"v1": 1}), untagged={2: 3})
    actions = run(policy(rule("^v"), untagged="prune"), state)
    prune = next(a for a in actions if a.kind == "prune")
    assert (prune.tags, prune.depends_on, prune.cause) == ((), None, Cause.NO_RULE_MATCHES)
    assert prune.reason == (f"delete untagged manifest {digest(2)[:19]}: no keep rule keeps untagged manifests like "
                            "it, and no protection applies")
    blocked = run(policy(rule("^v"), untagged="prune", max_deletions=0), state)
    assert [a.kind for a in blocked] == ["blocked", "keep"]


def test_an_untagged_manifest_in_use_or_held_by_a_kept_index_stays() -> None:
    state = listed(repo({"v1": 1}, children={1: [2]}), untagged={3: 40})
    state = dataclasses.replace(state, untagged=state.untagged | {digest(2)})  # a listing names children too
    running = cluster(ImageReference(HOST, "team-a/web", digest=digest(3)))
    actions = run(policy(rule("^v"), untagged="prune", protect=PROTECT_PROD), state, clusters={"prod-eu": running})
    assert outcome(actions) == {"keep": [f"@{digest(3)}", ":v1"]}
    assert actions[0].cause is Cause.IN_USE and actions[0].reason.startswith("untagged manifest: protected")


def test_a_with_tags_rule_names_its_patterns_in_the_reason() -> None:
    state = listed(repo({"alpha-1": 1, "beta-1": 1, "alpha-2": 2}), pushed={1: 1, 2: 1})
    actions = run(policy(rule(with_tags=(re.compile("^alpha"), re.compile("^beta")))), state)
    kept = {a.target.split(":")[-1]: a.reason for a in actions if a.kind == "keep"}
    reason = "keep[0]: on an image with tags matching '^alpha' and '^beta'"
    assert kept == {"alpha-1": reason, "beta-1": reason}
    assert outcome(actions)["prune"] == [f"@{digest(2)}"]  # alpha-2 alone: not selected, and no other rule
