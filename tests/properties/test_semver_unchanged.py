"""Nothing an existing policy says changes meaning with issue 18's peer semantics: every range the
old grammar accepted admits the same versions under the default (npm) rule, and the default
(ascending) order ranks tags as before. Either would otherwise keep or prune other tags."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.policy import semver
from reconcile.policy.ordering import by_rank, rank_key
from tests.properties import semver_before_18 as before
from tests.properties.conftest import PROFILE

BASE = settings.get_profile(PROFILE)

numbers = st.sampled_from(["0", "1", "2", "3", "10"])
parts = st.one_of(numbers, st.sampled_from(["x", "*"]))
pre = st.sampled_from(["", "-0", "-rc.1", "-alpha", "-beta.2", "-rc.1+b.1", "+build"])
versions = st.builds(lambda a, b, c, p: f"{a}.{b}.{c}{p}", numbers, numbers, numbers, pre)


@st.composite
def comparators(draw: st.DrawFn) -> str:
    count = draw(st.integers(1, 3))
    version = ".".join(draw(st.lists(parts, min_size=count, max_size=count)))
    full = draw(versions) if draw(st.booleans()) else version
    op = draw(st.sampled_from(["", "=", "!=", ">", ">=", "<", "<=", "~", "^", "v", "=>", "~>"]))
    return f"{op}{full}"


@st.composite
def ranges(draw: st.DrawFn) -> str:
    def one_set() -> str:
        if draw(st.booleans()) and draw(st.booleans()):
            return f"{draw(versions)} - {draw(versions)}"
        return draw(st.sampled_from([" ", ", "])).join(draw(st.lists(comparators(), min_size=1, max_size=3)))
    return " || ".join(one_set() for _ in range(draw(st.integers(1, 2))))


@settings(BASE, max_examples=3000, deadline=None)
@given(ranges(), st.lists(versions, min_size=1, max_size=8))
def test_ranges_the_old_grammar_took_mean_the_same(text: str, tags: list[str]) -> None:
    try:
        old = before.SemverRange.parse(text)
    except ValueError:
        return  # refused before: no existing policy holds it (now perhaps accepted)
    new = semver.SemverRange.parse(text)
    assert new == semver.SemverRange.parse(text, prereleases="npm")
    for tag in tags:
        assert new.contains(semver.Version.parse(tag)) == old.contains(before.Version.parse(tag)), (text, tag)


@settings(BASE, max_examples=500, deadline=None)
@given(st.lists(st.one_of(versions, numbers, st.sampled_from(["1.5", "1.10", "latest", "v1.2", "-3"])),
                max_size=12, unique=True), st.sampled_from(["semver", "numeric", "alphabetical"]))
def test_the_default_order_ranks_as_before(tags: list[str], order: str) -> None:
    def key(tag: str) -> object | None:
        return rank_key(order, tag, None)
    old = sorted(((k, t) for t in tags if (k := key(t)) is not None), key=lambda kt: (kt[0], kt[1]))
    assert by_rank(order, key, tags) == ([t for _, t in old], sorted(t for t in tags if key(t) is None))
    ranked, _ = by_rank(order, key, tags, descending=True)
    assert [key(t) for t in ranked] == sorted((key(t) for t in ranked), reverse=True)  # type: ignore[type-var]
