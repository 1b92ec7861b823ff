"""Which repositories globs match nothing: globs only, against every repository listed."""

from __future__ import annotations

from reconcile.observe.world import unmatched_globs


def test_globs_that_match_no_repository() -> None:
    names = ["team-a/web", "team-a/api", "team-b/tools/cache"]
    assert unmatched_globs(["team-a/*", "tema-a/*", "team-b/*", "team-b/**", "nobody/here"], names) == (
        "tema-a/*", "team-b/*")  # * stays within a segment; a name without a glob is not reported
    assert unmatched_globs(["team-?/web"], names) == ()
    assert unmatched_globs(["**"], []) == ("**",)  # an empty registry: the glob matches nothing
