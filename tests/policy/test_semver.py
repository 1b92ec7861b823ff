import itertools
import random

import pytest

from reconcile.policy.semver import SemverRange, Version

# -- Version.parse ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fields", "canonical"),
    [
        ("1.2.3", (1, 2, 3, (), ()), "1.2.3"),
        ("v1.2.3", (1, 2, 3, (), ()), "1.2.3"),
        ("V1.2.3", (1, 2, 3, (), ()), "1.2.3"),
        ("0.0.0", (0, 0, 0, (), ()), "0.0.0"),
        ("10.20.30", (10, 20, 30, (), ()), "10.20.30"),
        ("1.2.3-rc.1+build.5", (1, 2, 3, ("rc", "1"), ("build", "5")), "1.2.3-rc.1+build.5"),
        ("v1.0.0-alpha", (1, 0, 0, ("alpha",), ()), "1.0.0-alpha"),
        ("1.0.0-0.3.7", (1, 0, 0, ("0", "3", "7"), ()), "1.0.0-0.3.7"),
        ("1.0.0-x.7.z.92", (1, 0, 0, ("x", "7", "z", "92"), ()), "1.0.0-x.7.z.92"),
        ("1.0.0-x-y-z.--", (1, 0, 0, ("x-y-z", "--"), ()), "1.0.0-x-y-z.--"),
        ("1.0.0-alpha0.valid", (1, 0, 0, ("alpha0", "valid"), ()), "1.0.0-alpha0.valid"),
        ("1.0.0+20130313144700", (1, 0, 0, (), ("20130313144700",)), "1.0.0+20130313144700"),
        ("1.0.0+0001.exp-sha", (1, 0, 0, (), ("0001", "exp-sha")), "1.0.0+0001.exp-sha"),
        ("1.0.0-beta+exp.sha.5114f85", (1, 0, 0, ("beta",), ("exp", "sha", "5114f85")), None),
        ("99999999999.0.0", (99999999999, 0, 0, (), ()), "99999999999.0.0"),
    ],
)
def test_parse_valid(text: str, fields: tuple, canonical: str | None) -> None:
    v = Version.parse(text)
    assert (v.major, v.minor, v.patch, v.prerelease, v.build) == fields
    assert v.original == text
    assert str(v) == (canonical or text)
    assert Version.try_parse(text) == v


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty string is not a semantic version"),
        ("01.2.3", "'01.2.3' is not a semantic version: major version '01' has a leading zero"),
        ("1.02.3", "minor version '02' has a leading zero"),
        ("1.2.03", "patch version '03' has a leading zero"),
        ("1.2", "expected MAJOR.MINOR.PATCH, e.g. 1.2.0"),
        ("1", "expected MAJOR.MINOR.PATCH, e.g. 1.0.0"),
        ("v1", "expected MAJOR.MINOR.PATCH"),
        ("abc1234", "looks like a git commit SHA"),
        ("1234567", "looks like a git commit SHA"),
        ("5114f85e2bd0a4b3e6c7c0b6e1a9a4ad8b7f3c21", "looks like a git commit SHA"),
        ("0123", "major version '0123' has a leading zero"),
        ("latest", "major version 'latest' is not a number"),
        ("1.2.3.4", "more than three numeric parts"),
        ("1.2.x", "patch version 'x' is not a number"),
        ("1..3", "minor version is empty"),
        ("1.2.3-", "empty pre-release after '-'"),
        ("1.2.3+", "empty build metadata after '+'"),
        ("1.2.3-rc..1", "empty identifier in pre-release 'rc..1'"),
        ("1.2.3-01", "numeric pre-release identifier '01' has a leading zero"),
        ("1.2.3-rc_1", "pre-release identifier 'rc_1' may only contain letters, digits and '-'"),
        ("1.2.3+b@d", "build identifier 'b@d' may only contain"),
        ("v", "nothing after 'v'"),
        (" 1.2.3", "major version ' 1' is not a number"),
        ("-1.2.3", "major version is empty"),
        ("1.2.3" + "-a" * 200, "longer than 256 characters"),
    ],
)
def test_parse_invalid(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        Version.parse(text)
    assert fragment in str(excinfo.value)
    assert Version.try_parse(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", "1.0.0"),
        ("v1", "1.0.0"),
        ("1.2", "1.2.0"),
        ("1.2.3", "1.2.3"),
        ("1.2-rc.1", "1.2.0-rc.1"),
        ("123456", "123456.0.0"),
        ("1234567", None),  # SHA-like: never a version
        ("abc1234", None),
        ("01", None),
        ("1.02", None),
        ("1.2.3.4", None),
        ("", None),
    ],
)
def test_parse_non_strict(text: str, expected: str | None) -> None:
    v = Version.try_parse(text, strict=False)
    assert (str(v) if v else None) == expected
    if v is not None:
        assert v.original == text


def test_version_constructed_directly_has_canonical_original() -> None:
    assert Version(1, 2, 3, ("rc", "1")).original == "1.2.3-rc.1"
    assert Version(1, 2, 3) == Version.parse("1.2.3")


# -- precedence ---------------------------------------------------------------------------------

SEMVER_ORG_ORDER = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
]


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        *itertools.pairwise(SEMVER_ORG_ORDER),
        ("1.0.0", "2.0.0"),
        ("2.0.0", "2.1.0"),
        ("2.1.0", "2.1.1"),
        ("1.9.0", "1.10.0"),
        ("1.0.0-2", "1.0.0-10"),
        ("1.0.0-10", "1.0.0-a"),
        ("1.0.0-Z", "1.0.0-a"),  # alphanumeric identifiers compare in ASCII order
        ("1.0.0-rc.1", "1.0.0-rc.1.0"),
        ("0.9.9", "1.0.0-alpha"),
        ("1.0.0", "1.0.0+build"),  # same precedence: build breaks the tie
        ("1.0.0+a", "1.0.0+b"),
        ("1.0.0", "v1.0.0"),  # same precedence and build: original text breaks the tie
    ],
)
def test_precedence(lower: str, higher: str) -> None:
    a, b = Version.parse(lower), Version.parse(higher)
    assert a < b
    assert a <= b
    assert b > a
    assert b >= a
    assert not b < a
    assert a != b


def test_sorting_follows_semver_org_section_11() -> None:
    shuffled = SEMVER_ORG_ORDER[:]
    random.Random(11).shuffle(shuffled)
    assert [str(v) for v in sorted(Version.parse(t) for t in shuffled)] == SEMVER_ORG_ORDER


@pytest.mark.parametrize(
    ("a", "b"),
    [("1.0.0+a", "1.0.0+b"), ("v1.0.0", "1.0.0"), ("1.0.0-rc.1+x", "1.0.0-rc.1")],
)
def test_build_and_prefix_do_not_affect_precedence(a: str, b: str) -> None:
    va, vb = Version.parse(a), Version.parse(b)
    assert va.precedence_key == vb.precedence_key
    assert va != vb
    assert sorted([va, vb]) == sorted([vb, va])  # total and deterministic


# -- ranges -------------------------------------------------------------------------------------

CONTAINS = [
    # exact and bare versions
    ("1.2.3", "1.2.3", True),
    ("1.2.3", "1.2.4", False),
    ("=1.2.3", "1.2.3", True),
    ("v1.2.3", "1.2.3", True),
    ("=v1.2.3", "v1.2.3", True),
    ("=1.2.3", "1.2.3+build.7", True),
    ("1.2.3-rc.1", "1.2.3-rc.1", True),
    ("1.2.3-rc.1", "1.2.3", False),
    # comparison operators
    (">1.2.3", "1.2.4", True),
    (">1.2.3", "1.2.3", False),
    (">=1.2.3", "1.2.3", True),
    (">=1.2.3", "1.2.2", False),
    ("<1.2.3", "1.2.2", True),
    ("<1.2.3", "1.2.3", False),
    ("<=1.2.3", "1.2.3", True),
    ("<=1.2.3", "1.2.4", False),
    ("!=1.2.3", "1.2.4", True),
    ("!=1.2.3", "1.2.3", False),
    ("> 1.2.3", "1.3.0", True),
    (">=1.2.3 <2.0.0", "1.9.9", True),
    (">=1.2.3 <2.0.0", "2.0.0", False),
    (">=1.2.3, <2.0.0", "1.5.0", True),
    (">=1.2.3,<2.0.0", "2.1.0", False),
    (">=1.0.0 !=1.5.0", "1.5.0", False),
    (">=1.0.0 !=1.5.0", "1.5.1", True),
    # operators with partial versions
    (">1.2", "1.2.9", False),
    (">1.2", "1.3.0", True),
    (">1", "1.9.9", False),
    (">1", "2.0.0", True),
    (">=1.2", "1.2.0", True),
    ("<1.2", "1.1.9", True),
    ("<1.2", "1.2.0", False),
    ("<=1.2", "1.2.9", True),
    ("<=1.2", "1.3.0", False),
    ("!=1.2", "1.2.5", False),
    ("!=1.2", "1.3.0", True),
    ("!=1.2", "1.1.9", True),
    (">=v1.2", "1.2.0", True),
    # X-ranges and partial versions
    ("*", "0.0.1", True),
    ("*", "99.1.0", True),
    ("x", "3.0.0", True),
    ("1.x", "1.0.0", True),
    ("1.x", "1.99.99", True),
    ("1.x", "2.0.0", False),
    ("1.x", "0.9.9", False),
    ("1.X", "1.4.0", True),
    ("1.2.*", "1.2.7", True),
    ("1.2.*", "1.3.0", False),
    ("1.2", "1.2.0", True),
    ("1.2", "1.2.99", True),
    ("1.2", "1.3.0", False),
    ("1", "1.5.0", True),
    ("1", "2.0.0", False),
    # tilde
    ("~1.2.3", "1.2.3", True),
    ("~1.2.3", "1.2.9", True),
    ("~1.2.3", "1.3.0", False),
    ("~1.2.3", "1.2.2", False),
    ("~1.2", "1.2.0", True),
    ("~1.2", "1.3.0", False),
    ("~1", "1.9.0", True),
    ("~1", "2.0.0", False),
    ("~0.2.3", "0.2.5", True),
    ("~0.2.3", "0.3.0", False),
    # caret
    ("^1.2.3", "1.9.9", True),
    ("^1.2.3", "2.0.0", False),
    ("^1.2.3", "1.2.2", False),
    ("^0.2.3", "0.2.9", True),
    ("^0.2.3", "0.3.0", False),
    ("^0.0.3", "0.0.3", True),
    ("^0.0.3", "0.0.4", False),
    ("^1.x", "1.0.0", True),
    ("^1.x", "2.0.0", False),
    ("^0.x", "0.9.0", True),
    ("^0.x", "1.0.0", False),
    ("^0.0", "0.0.9", True),
    ("^0.0", "0.1.0", False),
    ("^1.2", "1.9.0", True),
    ("^ 1.2.3", "1.3.0", True),
    # hyphen ranges
    ("1.2.3 - 2.3.4", "1.2.3", True),
    ("1.2.3 - 2.3.4", "2.3.4", True),
    ("1.2.3 - 2.3.4", "2.3.5", False),
    ("1.2.3 - 2.3.4", "1.2.2", False),
    ("1.2.3 - 2.3", "2.3.9", True),
    ("1.2.3 - 2.3", "2.4.0", False),
    ("1.2.3 - 2", "2.9.9", True),
    ("1.2.3 - 2", "3.0.0", False),
    ("1.2 - 2.3.4", "1.2.0", True),
    ("1.2 - 2.3.4", "1.1.9", False),
    # alternatives
    ("1.2.3 || >=2.0.0", "1.2.3", True),
    ("1.2.3 || >=2.0.0", "1.5.0", False),
    ("1.2.3 || >=2.0.0", "3.0.0", True),
    ("^1.0 || ^2.0", "2.5.0", True),
    ("^1.0 || ^2.0", "3.0.0", False),
    # pre-releases: only on the same [major, minor, patch] as a comparator that names one
    (">=1.2.3-alpha.1 <2", "1.2.3-alpha.7", True),
    (">=1.2.3-alpha.1 <2", "1.4.0-beta", False),
    (">=1.2.3-alpha.1 <2", "1.4.0", True),
    (">=1.2.3-alpha.1 <2", "1.2.3-alpha.0", False),
    (">=1.2.3-alpha.1 <2", "2.0.0-rc.1", False),
    ("^1.2.3", "1.3.0-rc.1", False),
    ("*", "1.0.0-rc.1", False),
    ("1.x", "1.5.0-beta", False),
    ("<2.0.0", "2.0.0-rc.1", False),
    ("~1.2.3-beta.2", "1.2.3-beta.4", True),
    ("~1.2.3-beta.2", "1.2.4-beta.2", False),
    ("~1.2.3-beta.2", "1.2.4", True),
    ("^1.2.3-beta.2", "1.2.3-beta.4", True),
    ("^1.2.3-beta.2", "1.3.0-beta", False),
    (">1.2.3-rc.1", "1.2.3-rc.2", True),
    (">1.2.3-rc.1", "1.2.3", True),
    (">=1.0.0 <=2.0.0-rc.5", "2.0.0-rc.3", True),
    (">=1.0.0 <=2.0.0-rc.5", "2.0.0-rc.6", False),
    (">=1.2.0-alpha <1.2", "1.2.0-beta", False),  # <1.2 excludes 1.2.0's pre-releases too
    (">=1.0.0 !=1.2.3-rc.1", "1.2.3-rc.2", False),  # a negation does not opt pre-releases in
    ("1.2.3-rc.1 || ^2.0.0", "1.2.3-rc.1", True),
    ("1.2.3-rc.1 - 2.0.0", "1.2.3-rc.2", True),
    ("1.2.3 - 2.3.4", "2.3.4-rc.1", False),
]


@pytest.mark.parametrize(("text", "version", "expected"), CONTAINS)
def test_range_contains(text: str, version: str, expected: bool) -> None:
    semver_range = SemverRange.parse(text)
    v = Version.parse(version)
    assert semver_range.contains(v) is expected
    assert (v in semver_range) is expected


def test_contains_table_is_large_enough() -> None:
    assert len(CONTAINS) >= 40


@pytest.mark.parametrize("text", ["^1.2.3", ">=1.0, <2 || 3.x", "1.2.3 - 2"])
def test_range_str_is_original_text(text: str) -> None:
    assert str(SemverRange.parse(text)) == text


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty string is not a semver range"),
        ("   ", "empty string is not a semver range"),
        (">=", "'>=' is not a semver range: '>=' has no version after it"),
        ("^", "'^' has no version after it"),
        ("1.2.3 -", "hyphen range '1.2.3 -' has no upper bound"),
        ("- 1.2.3", "hyphen range '- 1.2.3' has no lower bound"),
        (">=a.b", "in 'a.b', major version 'a' is not a number"),
        (">=1.b", "in '1.b', minor version 'b' is not a number"),
        ("1.2.3 || ", "empty alternative after '||'"),
        ("|| 1.2.3", "empty alternative before '||'"),
        ("1 || || 2", "empty alternative after '||'"),
        ("~=1.2", "unknown operator '~=' in '~=1.2'"),
        ("==1.2", "did you mean '='?"),
        (">=1.0.0 <>2", "unknown operator '<>'"),
        ("1 | 2", "use '||' between alternatives, not '|'"),
        (">=1.0,", "empty comparator next to ','"),
        (">=1 - 2", "hyphen range bounds must be plain versions, not '>=1'"),
        ("1.x.3", "in '1.x.3', the patch version comes after a wildcard"),
        ("1.2-rc..1", "in '1.2-rc..1', empty identifier in pre-release"),
        (">=01.2.3", "in '01.2.3', major version '01' has a leading zero"),
        ("1.2.3.4", "in '1.2.3.4', more than three numeric parts"),
        ("latest", "in 'latest', major version 'latest' is not a number"),
        (">=1.2.3 <", "'<' has no version after it"),
        ("1.2.3-rc..1", "in '1.2.3-rc..1', empty identifier in pre-release"),
    ],
)
def test_range_invalid(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        SemverRange.parse(text)
    assert fragment in str(excinfo.value)
