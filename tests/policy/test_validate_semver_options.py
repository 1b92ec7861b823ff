"""`validate` and the loader on the peer-semantics fields of issue 18: a track's semver range,
strictSemver, prereleases and descending, each refused with the fix where it would change nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconcile.policy import validate_repo
from reconcile.policy.semver import Version
from tests.policy.test_validate_rules import BASE, expect, retention

TRACKED = """\
apiVersion: reconcile/v1
kind: PromotionPolicy
metadata: {{name: web}}
spec:
  stages:
    - {{name: build, registry: ci, repository: ci/web, track: {track}}}
    - {{name: prod, from: build, registry: ci, repository: web, tags: [prod]}}
"""


@pytest.mark.parametrize("keep", [
    # the Masterminds forms, refused before (Masterminds constraints_test.go TestConstraintsCheck)
    "- {semver: '~1.1-alpha'}",
    "- {semver: '^1.2.x-alpha', prereleases: masterminds}",
    "- {semver: '<=1.1-a', prereleases: npm}",
    "- {semver: '=> 1.2, =< 2 || ~>3.1'}",
    "- {semver: '1.x', strictSemver: false}",
    "- {tags: '^v', last: 3, strictSemver: false}",
    "- {tags: '^v', last: 3, order: semver, strictSemver: false, descending: true}",
    "- {tags: '^b-(\\d+)$', last: 3, order: numeric, descending: true}",
])
def test_valid_keep_rules(tmp_path: Path, keep: str) -> None:
    expect(tmp_path, retention(keep))


@pytest.mark.parametrize(("keep", "line"), [
    ("- {semver: '>=1', descending: true}",
     "@:8: RetentionPolicy/r: /spec/keep/0/descending: descending reverses the order of last; set last or drop it"),
    ("- {tags: '^v', prereleases: masterminds}",
     "@:8: RetentionPolicy/r: /spec/keep/0/prereleases: prereleases says which pre-releases a semver range admits; "
     "set semver (e.g. '>=1.0.0-0') or drop it"),
    ("- {tags: '^b-(\\d+)$', last: 2, order: numeric, strictSemver: false}",
     "@:8: RetentionPolicy/r: /spec/keep/0/strictSemver: strictSemver applies where tags are read as versions: "
     "with semver, or order semver; drop it"),
])
def test_fields_that_change_nothing_are_refused(tmp_path: Path, keep: str, line: str) -> None:
    expect(tmp_path, retention(keep), line)


def test_an_unknown_prerelease_rule_is_a_schema_error(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "case.yaml").write_text(retention("- {semver: '1.x', prereleases: go}"))
    result = validate_repo(str(tmp_path))
    assert not result.ok
    assert any("/spec/keep/0/prereleases" in p.message and "npm" in p.message and "masterminds" in p.message
               for p in result.problems), [p.message for p in result.problems]


@pytest.mark.parametrize(("track", "line"), [
    ("{tags: '^v?(?P<version>.+)$', semver: '^1.2', prereleases: masterminds, strictSemver: false}", None),
    ("{tags: '^v?(?P<version>.+)$', order: semver, semver: '~1.1-alpha', descending: true}", None),
    ("{tags: '^b-(\\d+)$', order: numeric, descending: true}", None),
    ("{tags: '^b-(\\d+)$', order: numeric, semver: '^1'}",
     "@:6: PromotionPolicy/web: /spec/stages/0/track/semver: a semver range selects versions, but this track "
     "orders by numeric: drop order (semver is the default) or the range"),
    ("{tags: '^b-(\\d+)$', prereleases: npm}",
     "@:6: PromotionPolicy/web: /spec/stages/0/track/prereleases: prereleases says which pre-releases a semver "
     "range admits; set semver (e.g. '>=1.0.0-0') or drop it"),
    ("{tags: '^b-(\\d+)$', order: alphabetical, strictSemver: false}",
     "@:6: PromotionPolicy/web: /spec/stages/0/track/strictSemver: strictSemver applies where tags are read as "
     "versions: with semver, or order semver; drop it"),
])
def test_track_fields(tmp_path: Path, track: str, line: str | None) -> None:
    expect(tmp_path, TRACKED.format(track=track), *([line] if line else []))


def test_the_loader_builds_what_the_fields_say(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "case.yaml").write_text(
        TRACKED.format(track="{tags: '^(?P<version>.+)$', semver: '>=1.2.3-rc.1', prereleases: masterminds, "
                             "strictSemver: false, descending: true}")
        + "---\n" + retention("- {semver: '^1.2.x-alpha', prereleases: masterminds, strictSemver: false}\n"
                              "- {tags: '^b-(\\d+)$', last: 2, descending: true}"))
    result = validate_repo(str(tmp_path))
    assert result.ok and result.policies is not None, [p.message for p in result.problems]
    track = result.policies.promotion_policies["web"].stages[0].track
    assert track is not None and track.semver is not None and track.descending and not track.strict_semver
    assert track.semver.contains(Version.parse("1.3.0-rc.1"))  # the Masterminds rule
    first, second = result.policies.retention_policies["r"].keep
    assert first.semver is not None and first.semver.prereleases == "masterminds" and not first.strict_semver
    assert second.descending and second.strict_semver and second.semver is None
