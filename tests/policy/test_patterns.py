"""Policy patterns are RE2 (Go regexp syntax): what compiles, what is refused and why, and that
matching stays linear in the tag's length whatever the pattern."""

from __future__ import annotations

import json
import pickle
import re
import string
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.cli import cli
from reconcile.policy.patterns import MAX_PATTERN_LENGTH, RE2_ONLY, Pattern, compile_pattern

ACCEPTED = [
    # this repository's own examples
    (r"^v\d+\.\d+\.\d+$", "v1.22.3", True),
    (r"^v\d+\.\d+\.\d+$", "v1.22", False),
    (r"^build-(\d+)$", "build-42", True),
    (r"^build-(?P<version>\d+)$", "build-42", True),
    (r"^sha-(?P<commit>[0-9a-f]{7,40})$", "sha-5114f85", True),
    (r"^(main|release-.*)$", "release-2024.1", True),
    (r".*", "anything", True),
    (r"^v?(?P<version>\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?)$", "v1.2.3-rc.1", True),
    (r"(?i)^(dev|stage)-[a-f0-9]+$", "DEV-ab12", True),
    (r"latest", "not-the-latest-one", True),  # unanchored: matched anywhere, as with re.search
    # Flux ImagePolicy filterTags.pattern and its examples
    (r"^main-[a-f0-9]+-(?P<ts>[0-9]+)", "main-5114f85-1700000000", True),
    (r"^main-[a-fA-F0-9]+-(?P<ts>.*)", "main-5114F85-1700000000", True),
    (r"^[0-9]+\.[0-9]+\.[0-9]+$", "1.22.3", True),
    (r"^[0-9]+\.[0-9]+\.[0-9]+$", "1.22.3-rc.1", False),
    (r"^v(?P<version>.*)", "v1.2.3", True),
    # Argo CD Image Updater allow-tags: regexp:<body>
    (r"^[0-9a-f]{7}$", "5114f85", True),
    (r"^[0-9a-f]{7}$", "5114f85a", False),
    (r"^1\.10\.[0-9]+$", "1.10.4", True),
    # Kargo allowTags / ignoreTags
    (r"^v1\.\d+\.\d+$", "v1.4.0", True),
    (r"^nightly-\d{8}$", "nightly-20240101", True),
    (r"^(?:v)?\d+\.\d+\.\d+(?:-rc\.\d+)?$", "2.0.0-rc.3", True),
    # Go syntax that Python's re spells differently or lacks
    (r"^(?<version>\d+)$", "42", True),
    (r"^v\d+\z", "v1", True),
    (r"^[[:digit:]]+$", "2024", True),
    (r"^\pL+-\d+$", "web-12", True),
    (r"^\Q1.2\E$", "1.2", True),
    (r"^\Q1.2\E$", "102", False),
    (r"(?U)^a+", "aaa", True),
    (r"\x{41}", "A", True),
    (r"(a)\12", "a\n", True),  # octal, as in Go: a backreference needs a lone digit
    # nested and ambiguous repeats, which backtracking engines are slow on: RE2 is not
    (r"(a+)+$", "aaa", True),
    (r"^(\w+\s?)*$", "hello world", True),
    (r"(a|ab)*c", "ababc", True),
    (r"^\d*\d*\d*\d*\d*\d*\d*x$", "123x", True),
    ("(" * 499 + "a" + ")" * 499, "a", True),  # deep, but within the length limit
]


@pytest.mark.parametrize(("pattern", "subject", "matches"), ACCEPTED)
def test_accepted_patterns(pattern: str, subject: str, matches: bool) -> None:
    compiled = compile_pattern(pattern)
    assert isinstance(compiled, Pattern)
    assert compiled.pattern == pattern
    assert (compiled.search(subject) is not None) is matches


NOT_SUPPORTED = f"is not supported: {RE2_ONLY}"
REFUSED = [
    (r"^(\d+)-\1$", rf"backreference \1 in '^(\d+)-\1$' {NOT_SUPPORTED}"),
    (r"\9", rf"backreference \9 in '\9' {NOT_SUPPORTED}"),
    (r"(?P<n>a)(?P=n)", f"named backreference (?P=name) in '(?P<n>a)(?P=n)' {NOT_SUPPORTED}"),
    (r"(?<n>a)\k<n>", rf"named backreference \k<name> in '(?<n>a)\k<n>' {NOT_SUPPORTED}"),
    (r"^v(?=\d)", rf"lookahead (?=...) in '^v(?=\d)' {NOT_SUPPORTED}"),
    (r"^(?!.*-rc).*$", f"negative lookahead (?!...) in '^(?!.*-rc).*$' {NOT_SUPPORTED}"),
    (r"(?<=v)\d+", rf"lookbehind (?<=...) in '(?<=v)\d+' {NOT_SUPPORTED}"),
    (r"(?<!rc)\d+$", rf"negative lookbehind (?<!...) in '(?<!rc)\d+$' {NOT_SUPPORTED}"),
    (r"^a++$", f"possessive quantifier '++' in '^a++$' {NOT_SUPPORTED}; drop the last '+': RE2 never "
     "backtracks, so it is not needed"),
    (r"\d*+x", rf"possessive quantifier '*+' in '\d*+x' {NOT_SUPPORTED}; drop the last '+'"),
    (r"\d{2,}+", rf"possessive quantifier '{{2,}}+' in '\d{{2,}}+' {NOT_SUPPORTED}; drop the last '+'"),
    (r"(?>a+)b", f"atomic group (?>...) in '(?>a+)b' {NOT_SUPPORTED}; write (?:...) instead: RE2 never "
     "backtracks, so it is not needed"),
    (r"(a)?(?(1)b|c)", f"conditional (?(...)...) in '(a)?(?(1)b|c)' {NOT_SUPPORTED}"),
    (r"(a(?R)?b)", f"recursion (?R) in '(a(?R)?b)' {NOT_SUPPORTED}"),
    (r"(a(?1)?b)", f"recursion or subroutine call (?N) in '(a(?1)?b)' {NOT_SUPPORTED}"),
    (r"^v\d+\Z", rf"\Z in '^v\d+\Z' {NOT_SUPPORTED}; write \z (or $) for the end of the text"),
    (r"(?#build)\d+", rf"comment (?#...) in '(?#build)\d+' {NOT_SUPPORTED}"),
    (r"(?x) \d+", rf"flag 'x' of '(?x)' in '(?x) \d+' {NOT_SUPPORTED}; RE2's flags are i, m, s and U"),
    (r"(?a)\w+", rf"flag 'a' of '(?a)' in '(?a)\w+' {NOT_SUPPORTED}; RE2's flags are i, m, s and U"),
    (r"\Gx", rf"\G (end of the previous match) in '\Gx' {NOT_SUPPORTED}"),
    (r"a\Cb", rf"\C (any single byte) in 'a\Cb' {NOT_SUPPORTED}; write . for any character"),
    (r"^sha-(?P<commit>[0-9a-f]+)$|^git-(?P<commit>[0-9a-f]+)$",
     "group name 'commit' is used twice in '^sha-(?P<commit>[0-9a-f]+)$|^git-(?P<commit>[0-9a-f]+)$'; give "
     "each group a name of its own (only the first group of a name would ever be reported)"),
    # the first construct named, even where RE2 stops earlier or later
    (r"\Q(?=\E(?!x)", rf"negative lookahead (?!...) in '\Q(?=\E(?!x)' {NOT_SUPPORTED}"),
    # what is not a named construct gets RE2's own reason
    ("a)", "'a)' is not a valid RE2 (Go regexp syntax) pattern: unexpected ): a)"),
    ("(a", "'(a' is not a valid RE2 (Go regexp syntax) pattern: missing ): (a"),
    ("[a-", "'[a-' is not a valid RE2 (Go regexp syntax) pattern: missing ]: [a-"),
    ("*", "'*' is not a valid RE2 (Go regexp syntax) pattern: no argument for repetition operator: *"),
    (r"[\1]", r"'[\1]' is not a valid RE2 (Go regexp syntax) pattern: invalid escape sequence: \1"),
    (r"\e", r"'\e' is not a valid RE2 (Go regexp syntax) pattern: invalid escape sequence: \e"),
    ("(?P<a-b>x)", "'(?P<a-b>x)' is not a valid RE2 (Go regexp syntax) pattern: invalid named capture group: "
     "(?P<a-b>"),
    ("a{2,1}", "'a{2,1}' is not a valid RE2 (Go regexp syntax) pattern: invalid repetition size: {2,1}; counts go "
     "up to 1000 (nested counts multiply) and the minimum comes first"),
    ("a{1001}", "'a{1001}' is not a valid RE2 (Go regexp syntax) pattern: invalid repetition size: {1001}; "
     "counts go up to 1000 (nested counts multiply) and the minimum comes first"),
    ("(a{100}){100}", "'(a{100}){100}' is not a valid RE2 (Go regexp syntax) pattern: invalid repetition size: "
     "{100}; counts go up to 1000 (nested counts multiply) and the minimum comes first"),
    ("", "empty pattern matches everything; write '.*' if that is what you mean"),
    ("a" * (MAX_PATTERN_LENGTH + 1), "pattern is 1001 characters long; the maximum is 1000"),
    (None, "None is not a pattern: expected a string"),
]


@pytest.mark.parametrize(("pattern", "message"), REFUSED)
def test_refused_patterns(pattern: str, message: str, capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError) as excinfo:
        compile_pattern(pattern)
    assert str(excinfo.value).startswith(message)
    assert capfd.readouterr() == ("", "")  # RE2 logs nothing of its own


def test_longest_allowed_pattern_compiles() -> None:
    assert compile_pattern("a" * MAX_PATTERN_LENGTH).search("a" * MAX_PATTERN_LENGTH)


# --- what the planner calls ----------------------------------------------------------------------


def test_the_interface_the_planner_uses() -> None:
    commit = compile_pattern(r"^sha-(?P<commit>[0-9a-f]{7,40})$")
    assert commit.groups == 1 and commit.groupindex == {"commit": 1}
    match = commit.search("sha-5114F85".lower())
    assert match.group("commit") == "5114f85" and match.group(1) == "5114f85" and match.group() == "sha-5114f85"
    assert match.groupdict() == {"commit": "5114f85"} and match.re.groups == 1
    assert commit.search("sha-xyz") is None
    version = compile_pattern(r"^build-(?P<version>\d+)(-(?P<suffix>\w+))?$").search("build-7")
    assert version.groupdict() == {"version": "7", "suffix": None} and version.groups() == ("7", None, None)
    plain = compile_pattern(r"^v\d+$")
    assert plain.groups == 0 and plain.groupindex == {} and not plain.search("v1").re.groups
    assert compile_pattern("b+").match("abb") is None and compile_pattern("b+").search("abb").span() == (1, 3)
    assert compile_pattern("ab").fullmatch("ab") and compile_pattern("a").fullmatch("ab") is None


def test_dollar_is_the_very_end_unlike_python() -> None:
    """Go's and RE2's '$' does not match before a final newline, Python's does; tags have none."""
    assert re.search(r"^v1$", "v1\n") is not None
    assert compile_pattern(r"^v1$").search("v1\n") is None
    assert compile_pattern(r"^v1$").search("v1") is not None


def test_perl_classes_are_ascii_as_in_go() -> None:
    assert compile_pattern(r"^\d+$").search("\u0663") is None  # ARABIC-INDIC DIGIT THREE
    assert compile_pattern(r"^\pN+$").search("\u0663") is not None
    assert compile_pattern("(?i)^café$").search("CAFÉ") is not None


def test_patterns_compare_hash_print_and_pickle_by_their_text() -> None:
    a, b = compile_pattern(r"^v\d+$"), compile_pattern(r"^v\d+$")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != compile_pattern(r"^v\d*$") and a != r"^v\d+$" and a != re.compile(r"^v\d+$")
    assert repr(a) == "Pattern('^v\\\\d+$')"
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        clone = pickle.loads(pickle.dumps(a, protocol=protocol))
        assert clone == a and clone.search("v12")


# --- the same answers as Python's re where the two agree on syntax -------------------------------

TAG_ALPHABET = string.ascii_letters + string.digits + "_.-"
COMMON = [r"^v\d+\.\d+\.\d+$", r"^build-(?P<version>\d+)$", r"^sha-(?P<commit>[0-9a-f]{7,40})$",
          r"^(main|release-.*)$", r"(?i)^(dev|stage)-[a-f0-9]+$", r"^[0-9]+\.[0-9]+\.[0-9]+(-rc\.[0-9]+)?$",
          r"^main-[a-f0-9]+-(?P<ts>[0-9]+)", r"rc", r"^(\w+[-.])*\w+$", r"^(a|ab)*c$"]


@st.composite
def pattern_and_tag(draw: st.DrawFn) -> tuple[str, str]:
    pattern = draw(st.sampled_from(COMMON))
    matching = st.from_regex(re.compile(pattern, re.ASCII), fullmatch=True, alphabet=TAG_ALPHABET)
    matching = matching.filter(lambda t: len(t) <= 128 and "\n" not in t)  # tags have no newline
    return pattern, draw(st.one_of(st.text(TAG_ALPHABET, max_size=128), matching))


@settings(max_examples=300, deadline=None)
@given(pattern_and_tag())
def test_same_answers_as_python_re_on_tags(case: tuple[str, str]) -> None:
    pattern, tag = case
    ours, theirs = compile_pattern(pattern).search(tag), re.search(pattern, tag, re.ASCII)
    assert (ours is None) == (theirs is None)
    if ours is not None:
        assert ours.span() == theirs.span() and ours.groups() == theirs.groups()
        assert ours.groupdict() == theirs.groupdict()


# --- linear time -------------------------------------------------------------------------------

LINEAR = [
    # (pattern, a non-matching subject of each length, a matching one)
    (r"^\d*\d*\d*\d*\d*\d*\d*x$", lambda n: "1" * n, lambda n: "1" * (n - 1) + "x"),  # polynomial for re
    (r"^(a+)+$", lambda n: "a" * (n - 1) + "!", lambda n: "a" * n),  # exponential for re
    (r"(x+x+)+y", lambda n: "x" * n, lambda n: "x" * (n - 1) + "y"),  # exponential for re
    (r"^(\w+\s?)*$", lambda n: "ab " * (n // 3) + "!", lambda n: "ab " * (n // 3)),
    (r"(.*a){12}", lambda n: "a" * 11 + "b" * (n - 11), lambda n: "a" * n),
]


def test_backtracking_patterns_are_accepted_and_linear_on_long_tags() -> None:
    """Patterns that hang a backtracking engine on tags of a few dozen characters answer correctly on
    128 and 10,000 characters. The subprocess and its 30s timeout only keep a regression from hanging
    the suite; nothing is timed."""
    cases = [(pattern, n, bad(n), good(n)) for pattern, bad, good in LINEAR for n in (128, 10_000)]
    code = textwrap.dedent("""\
        import json, sys
        from reconcile.policy.patterns import compile_pattern
        results = []
        for pattern, n, bad, good in json.load(sys.stdin):
            compiled = compile_pattern(pattern)
            results.append([compiled.search(bad) is None, compiled.search(good) is not None])
        print(json.dumps(results))
        """)
    done = subprocess.run([sys.executable, "-c", code], input=json.dumps(cases), capture_output=True, text=True,
                          timeout=30, check=True)
    assert json.loads(done.stdout) == [[True, True]] * len(cases)


# --- through validate ------------------------------------------------------------------------------

REGISTRY = "apiVersion: reconcile/v1\nkind: Registry\nmetadata: {name: ci}\nspec: {url: 'https://ci.example.com'}\n"
RETENTION = """\
apiVersion: reconcile/v1
kind: RetentionPolicy
metadata: {name: r}
spec:
  registry: ci
  repositories: ["a/*"]
  keep:
    - tags: '^(\\d+)-\\1$'
    - tags: '^v(?=\\d)'
    - tags: '^(a+)+$'
"""


def test_validate_names_the_construct_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "registry.yaml").write_text(REGISTRY)
    (tmp_path / "retention.yaml").write_text(RETENTION)
    result = CliRunner().invoke(cli, ["validate", "--repo", str(tmp_path)])
    assert result.exit_code == 1, result.output
    where = f"{tmp_path}/retention.yaml"
    assert result.stdout.splitlines() == [
        f"{where}:8: RetentionPolicy/r: /spec/keep/0/tags: backreference \\1 in '^(\\d+)-\\1$' {NOT_SUPPORTED}",
        f"{where}:9: RetentionPolicy/r: /spec/keep/1/tags: lookahead (?=...) in '^v(?=\\d)' {NOT_SUPPORTED}",
    ]
