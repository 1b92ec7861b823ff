import re
import subprocess
import sys

import pytest

from reconcile.policy.patterns import MAX_PATTERN_LENGTH, compile_pattern

SAFE = [
    (r"^v\d+\.\d+\.\d+$", "v1.22.3", True),
    (r"^build-(\d+)$", "build-42", True),
    (r"^sha-(?P<commit>[0-9a-f]{7,40})$", "sha-5114f85", True),
    (r"^(main|release-.*)$", "release-2024.1", True),
    (r".*", "anything", True),
    (r"^v?(?P<version>\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?)$", "v1.2.3-rc.1", True),
    (r"^(staging|prod)-\d+$", "prod-7", True),
    (r"(foo|bar)+", "xxfoobarxx", True),
    (r"[a-z]+-[0-9]+", "web-12", True),
    (r"(ab){2,5}", "abab", True),
    (r"^(\d{1,3}\.){3}\d{1,3}$", "10.0.0.1", True),
    (r"^v\d+$", "latest", False),
    (r"[\d\w]+", "a1", True),  # a character class is one choice per character
    (r"(?i)^(dev|stage)-[a-f0-9]+$", "DEV-ab12", True),
    (r"(x|[|])+", "x|x", True),  # '|' inside a class is not an alternation
    (r"(?#a|a)(a|b)+", "ab", True),  # nor inside a comment
    # possessive repeats and atomic groups do not backtrack once matched (their insides are
    # still checked: see the hang test for '(?>(a+)+b)')
    (r"^(a++)+$", "aaa", True),
    (r"^(?>a+)+$", "aaa", True),
    (r"^(\w++\s?)+$", "hello world", True),
    (r"^(a|a)*+$", "aa", True),
    # a repeat inside a repeat is fine when a mandatory one-character separator that nothing else
    # in the repetition can match begins or ends each repetition: the repetitions are then told apart
    (r"^\d+(\.\d+)*$", "1.22.333", True),
    (r"^v?\d+(\.\d+)*(-[0-9a-z]+(\.[0-9a-z]+)*)?$", "v1.2.3-rc.1", True),
    (r"(\w+[-.])*", "web-1.", True),
    (r"((ab)*c)+", "ababcc", True),
    (r"^([a-z0-9]+-)*[a-z0-9]+$", "my-app-2", True),
    (r"^(release|hotfix)/([0-9]+\.)*[0-9]+$", "hotfix/1.2.3", True),
    (r"^(release|hotfix)/([0-9]+\.)*[0-9]+$", "hotfix/1..3", False),
    (r"^[0-9]+(\.[0-9]+){2}(-rc\.[0-9]+)?$", "1.2.3-rc.4", True),
    (r"^(\d+\.){3}\d+$", "10.0.0.1", True),
    (r"^(?:x+y)*$", "xxyxy", True),
    (r"^v\d+([.-]\d+)*$", "v1-2.3", True),  # the separator may be a class
    (r"^v\d+((?:-|\.)\d+)*$", "v1-2.3", True),  # or an alternation of single characters
    (r"^(?:/[^/]+)+$", "/a/b c/d", True),  # '[^/]' cannot match the '/'
    (r"^(\.\d+\.\d+)*$", ".1.2.3.4", True),  # a second, mandatory '.' keeps the count fixed
    (r"^(\.\d\d?)+$", ".1.22", True),
    (r"^((\.\d+)*x)+$", ".1.2x.3x", True),
    (r"^(X[a-z]+)*$", "XabXcd", True),  # without (?i), '[a-z]' cannot match 'X'
    (r"(?i)^v\d+(\.\d+)*$", "V1.2", True),
    (r"^(ab?)+$", "abaab", True),  # an optional part that cannot start a repetition
    (r"^(-?\d)+$", "-1-2", True),  # an optional part at the start, a separator at the end
    (r"^([a-z]-?)+$", "a-b-c", True),
]


@pytest.mark.parametrize(("pattern", "subject", "matches"), SAFE)
def test_safe_patterns_compile(pattern: str, subject: str, matches: bool) -> None:
    compiled = compile_pattern(pattern)
    assert isinstance(compiled, re.Pattern)
    assert compiled.pattern == pattern
    assert (compiled.search(subject) is not None) is matches


DANGEROUS = [
    # nested quantifiers (star height > 1)
    (
        r"(a+)+$",
        "'(a+)+$' can backtrack catastrophically: quantifier '+' applied to '(a+)', which "
        "contains the repeat 'a+' (nested quantifier); rewrite without nesting, e.g. 'a+'",
    ),
    (r"(a*)*", "quantifier '*' applied to '(a*)', which contains the repeat 'a*'"),
    (r"(a|b+)*", "quantifier '*' applied to '(a|b+)', which contains the repeat 'b+'"),
    (r"(\w+\s?)+", "contains the repeat '\\w+' (nested quantifier)"),
    (r"(\w+\s?)+", "make the inner repeat possessive, e.g. '\\w++'"),
    (r"(?:a+)+", "quantifier '+' applied to '(?:a+)'"),
    (r"([a-z]+)*", "rewrite without nesting, e.g. '[a-z]*'"),
    (r"((\.\d+)*)+", "rewrite without nesting, e.g. '(\\.\\d+)*'"),
    (r"(a{1,2})+", "contains the repeat 'a{1,2}' (nested quantifier)"),
    (r"(a{1,50}){2}", "contains the repeat 'a{1,50}'"),
    (r"(a+){2}", "quantifier '{2}' applied to '(a+)'"),
    (r"(a+?)+", "contains the repeat 'a+?'"),
    (r"(?=(a+)+)b", "quantifier '+' applied to '(a+)'"),
    # overlapping alternatives under an unbounded repeat
    (r"(a|a)*", "alternatives 'a' and 'a' can both start with 'a' (overlapping alternatives)"),
    (r"(a|ab)+", "whose alternatives 'a' and 'ab' can both start with 'a'"),
    (r"(\d|\w)+", "alternatives '\\d' and '\\w' can both start with '0'"),
    (r"(\d|\w)+", "use one character class instead, e.g. '[\\d\\w]'"),
    (r"(.|x)*", "alternatives '.' and 'x' can both start with 'x'"),
    (r"(?i)(a|A)+", "alternatives 'a' and 'A' can both start with 'a'"),
    (r"((?i:b|B))+", "alternatives 'b' and 'B' can both start with 'b'"),
    (r"(?P<name>foo|fa)+", "applied to '(?P<name>foo|fa)', whose alternatives 'foo' and 'fa'"),
    (r"(x|[a-z]y)*$", "alternatives 'x' and '[a-z]y' can both start with 'x'"),
    (r"([^a]|[^b])+", "alternatives '[^a]' and '[^b]' can both start with"),
    (r"(|a|)*", "alternatives '' and '' can both match the empty string"),
    (r"(a|a){1,50}", "quantifier '{1,50}' applied to '(a|a)'"),
    (r"(x)(?(1)(a|a)*|b)", "quantifier '*' applied to '(a|a)'"),
]


# Nested repeats that no separator tells apart, or whose repetitions can each be split in
# several ways: all still refused.
UNSEPARATED = [
    # an optional separator does not count
    (r"(\w+\s?)+$", "no mandatory separator telling repetitions apart"),
    (r"(\d+\.?)+", "applied to '(\\d+\\.?)', which contains the repeat '\\d+' (nested quantifier) and no "
     "mandatory separator"),
    (r"([a-z]+-?)*", "make the inner repeat possessive, e.g. '[a-z]++'"),
    # a separator in the middle does not count: the a+ of one repetition meets the a+ of the next
    (r"(a+ba+)*", "contains the repeat 'a+' (nested quantifier) and no mandatory separator"),
    # the separator must be something the inner repeat cannot match
    (r"(-[a-z0-9-]+)*", "each repetition begins with '-', but '[a-z0-9\\-]+' can also match '-', so "
     "repetitions cannot be told apart"),
    (r"(\.[0-9a-z.-]+)*$", "each repetition begins with '\\.', but '[0-9a-z.\\-]+' can also match '.'"),
    (r"(.+/)*", "each repetition ends with '/', but '.+' can also match '/'"),
    (r"(\S+\.)*", "each repetition ends with '\\.', but '\\S+' can also match '.'"),
    (r"(?i)(X[a-z]+)*", "each repetition begins with 'X', but '[a-z]+' can also match 'X'"),
    (r"((?i:x)[a-z]+)*", "but '[a-z]+' can also match 'x'"),
    # ... nor anything else in the repetition: '.1.1' is one repetition or two
    (r"(\.\d+\.?\d*)*$", "each repetition begins with '\\.', but '\\.?' can also match '.'"),
    (r"(x)(\.\d+\1)*$", "each repetition begins with '\\.', but '\\1' can also match"),  # unknown: anything
    # even separated, a repetition that can be split in several ways multiplies
    (r"(\.\d+\d+)*", "in which the neighbouring variable-length parts '\\d+' and '\\d+' can both match '0', "
     "so each repetition can be split between them in several ways (ambiguous repeats)"),
    (r"(\.\d+x?\d+)*", "the neighbouring variable-length parts '\\d+' and '\\d+'"),
    (r"(\.\d+0\d+)*", "parts '\\d+' and '\\d+' can both match '0'"),
    (r"(\.(\d+)?\d+)*", "parts '(\\d+)?' and '\\d+' can both match '0'"),
    (r"(ab?b?)+", "parts 'b?' and 'b?' can both match 'b'"),
    (r"([.-]([0-9a-z]{0,12})?)+$", "'([0-9a-z]{0,12})?' can match the empty string in two ways"),
    (r"((a?)?x)*", "'(a?)?' can match the empty string in two ways"),
    (r"(\.(\d{1,2}){1,3})*$", "the repeat '(\\d{1,2}){1,3}' can divide what it matches into repetitions in "
     "several ways (ambiguous repeats)"),
    (r"(\.(a?){2})*$", "the repeat '(a?){2}' can divide what it matches"),
    # an optional part that can start the next repetition makes (a{1,2})+ in disguise
    (r"(\d\d?)+$", "contains the repeat '\\d?' (nested quantifier); each repetition begins with '\\d'"),
    (r"(\d?\d?)+$", "contains the repeat '\\d?' (nested quantifier)"),
    (r"(a?a)+", "each repetition ends with 'a', but 'a?' can also match 'a'"),
    # overlapping alternatives are unaffected by the separator rule
    (r"(x|x)*", "alternatives 'x' and 'x' can both start with 'x'"),
    (r"(\.(1|1)\d+)*", "alternatives '1' and '1' can both start with '1'"),
]


@pytest.mark.parametrize(("pattern", "fragment"), DANGEROUS + UNSEPARATED)
def test_dangerous_patterns_are_refused(pattern: str, fragment: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        compile_pattern(pattern)
    message = str(excinfo.value)
    assert message.startswith(f"'{pattern}' can backtrack catastrophically: ")
    assert fragment in message


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("a)", "'a)' does not compile: unbalanced parenthesis at position 1"),
        ("(a", "'(a' does not compile: missing ), unterminated subpattern at position 0"),
        ("[a-", "'[a-' does not compile: unterminated character set at position 0"),
        ("*", "'*' does not compile: nothing to repeat at position 0"),
        ("a{2,1}", "'a{2,1}' does not compile: min repeat greater than max repeat at position 2"),
        ("(?P<1>a)", "'(?P<1>a)' does not compile: bad character in group name '1' at position 4"),
        (r"\1(a)", "'\\1(a)' does not compile: invalid group reference 1 at position 1"),
        ("(?<=a+)b", "'(?<=a+)b' does not compile: look-behind requires fixed-width pattern"),
    ],
)
def test_compile_errors(pattern: str, message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        compile_pattern(pattern)
    assert str(excinfo.value) == message


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("", "empty pattern matches everything"),
        ("a" * (MAX_PATTERN_LENGTH + 1), "pattern is 1001 characters long; the maximum is 1000"),
        ("(" * 499 + "a" + ")" * 499, "nests groups too deeply"),
        (None, "is not a pattern: expected a string"),
    ],
)
def test_other_refusals(pattern: str, fragment: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        compile_pattern(pattern)
    assert fragment in str(excinfo.value)


def test_longest_allowed_pattern_compiles() -> None:
    assert compile_pattern("a" * MAX_PATTERN_LENGTH).search("a" * MAX_PATTERN_LENGTH)


@pytest.mark.parametrize(
    ("pattern", "subject"),
    [
        (r"(a+)+$", "a" * 30 + "!"),
        (r"(a|a)*$", "a" * 30 + "!"),
        (r"(\d+\.?)+$", "1" * 30 + "!"),  # an optional separator does not separate
        (r"([a-z]+-?)*$", "a" * 30 + "!"),
        (r"^(?>(a+)+b)", "a" * 30),  # atomic, but it backtracks before its first match
        (r"^((a+)+b)++", "a" * 30),
    ],
)
def test_refused_patterns_really_hang_plain_re(pattern: str, subject: str) -> None:
    """The guard matters: these patterns take far longer than 2s in plain re on ~30 chars."""
    with pytest.raises(ValueError, match="can backtrack catastrophically"):
        compile_pattern(pattern)
    code = f"import re; re.search({pattern!r}, {subject!r})"
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([sys.executable, "-c", code], timeout=2, check=False)


def test_safe_rewrite_finishes_quickly_on_the_same_input() -> None:
    """Control for the test above: the timeout comes from backtracking, not process start-up."""
    pattern = r"a++$"
    compile_pattern(pattern)
    code = f"import re; re.search({pattern!r}, {'a' * 30 + '!'!r})"
    subprocess.run([sys.executable, "-c", code], timeout=2, check=True)


@pytest.mark.parametrize(
    ("pattern", "subject"),
    [
        (r"^\d+(\.\d+)*$", "1" + ".1" * 5000 + "x"),
        (r"^\d+(\.\d+)*$", "1" + ".11" * 3000 + "x"),
        (r"^v?\d+(\.\d+)*(-[0-9a-z]+(\.[0-9a-z]+)*)?$", "1.2.3-" + "a." * 3000 + "!"),
        (r"^([a-z0-9]+-)*[a-z0-9]+$", "a-" * 5000 + "!"),
        (r"^(release|hotfix)/([0-9]+\.)*[0-9]+$", "release/" + "1." * 5000 + "x"),
        (r"^(\w+[-.])*$", "a-" * 3000 + "!"),
        (r"^((ab)*c)+$", "abc" * 3000 + "!"),
    ],
)
def test_separated_nesting_finishes_quickly_on_adversarial_input(pattern: str, subject: str) -> None:
    """Accepted nested repeats stay linear on the inputs that make their unseparated twins hang.

    Thousands of repetitions would take astronomically long if backtracking were exponential;
    they take milliseconds, so the 2s limit only guards against a machine that is very busy.
    """
    compile_pattern(pattern)
    code = f"import re; assert re.search({pattern!r}, {subject!r}) is None"
    subprocess.run([sys.executable, "-c", code], timeout=2, check=True)
