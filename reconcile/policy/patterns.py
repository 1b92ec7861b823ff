r"""Tag and branch patterns: RE2, the syntax of Go's regexp, which matches in linear time.

Every policy regex is compiled here. RE2 (through the ``google-re2`` package) never backtracks, so
no pattern can hang an unattended run, however it nests: ``(a+)+$`` and ``^\d*\d*\d*x$`` take time
linear in the tag's length, as ``^v\d+$`` does. The syntax is the one Flux's ImagePolicy, Argo CD
Image Updater and Kargo accept (https://github.com/google/re2/wiki/Syntax), including
``(?P<name>...)`` and ``(?<name>...)`` for named groups.

What RE2 cannot express is refused with a message naming the construct: backreferences (``\1``,
``(?P=name)``), lookahead and lookbehind, possessive quantifiers, atomic groups, conditionals,
recursion, ``\Z`` (RE2 spells it ``\z``). Also refused, though the RE2 library would take them:
``\C`` (one byte, which Go does not have and which can split a UTF-8 character) and a group name
used twice (only the first group of that name would ever be reported, so ``match.group('commit')``
could be None after a match).

Differences from Python's ``re`` that a pattern written for it may notice:

* ``$`` matches only at the very end of the text, not also before a final newline (tags and ref
  names never contain newlines, so this changes nothing for them);
* ``\d``, ``\w``, ``\s`` and ``\b`` are ASCII-only, as in Go (``\pN``, ``\pL`` for Unicode);
* ``[[:alpha:]]`` is a POSIX class, not a set of the characters '[', ':', 'a', ...
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, cast

import re2

MAX_PATTERN_LENGTH = 1000

RE2_ONLY = "policy patterns are RE2 (Go regexp syntax), which matches in linear time"
_NO_BACKTRACKING = "RE2 never backtracks, so it is not needed"

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the error comes back as an exception; RE2 would also print it to stderr

# Group openers RE2 refuses, longest first, with what they are called.
_GROUPS = (
    ("(?<=", "lookbehind (?<=...)"),
    ("(?<!", "negative lookbehind (?<!...)"),
    ("(?=", "lookahead (?=...)"),
    ("(?!", "negative lookahead (?!...)"),
    ("(?>", "atomic group (?>...)"),
    ("(?(", "conditional (?(...)...)"),
    ("(?P=", "named backreference (?P=name)"),
    ("(?P>", "subroutine call (?P>name)"),
    ("(?&", "subroutine call (?&name)"),
    ("(?R)", "recursion (?R)"),
    ("(?#", "comment (?#...)"),
    ("(?|", "branch reset group (?|...)"),
)
_ESCAPES = {
    "k": "named backreference \\k<name>",
    "g": "backreference \\g",
    "G": "\\G (end of the previous match)",
    "K": "\\K (reset the match start)",
}
_RECURSION = re.compile(r"\(\?[-+]?\d")
_FLAGS = re.compile(r"\(\?([A-Za-z-]*)[:)]")
_COUNTED_REPEAT = re.compile(r"\{\d+(?:,\d*)?\}$")
_NAMED_GROUP = re.compile(r"\(\?P?<([^>]*)>")


class Pattern:
    """A compiled policy pattern: an RE2 regex with the part of ``re.Pattern``'s interface the
    planner uses (``search``, ``match``, ``fullmatch``, ``pattern``, ``groups``, ``groupindex``).

    Unlike RE2's own objects it compares, hashes and prints by its text, so the frozen policy
    objects that hold one compare by value; it pickles as its text. The match objects are RE2's,
    with ``group()``, ``groups()``, ``groupdict()``, ``span()`` and ``re`` as in ``re``.
    """

    __slots__ = ("_regexp",)

    def __init__(self, regexp: Any) -> None:
        self._regexp = regexp

    @property
    def pattern(self) -> str:
        return cast(str, self._regexp.pattern)  # re2 ships no types

    @property
    def groups(self) -> int:
        return cast(int, self._regexp.groups)

    @property
    def groupindex(self) -> dict[str, int]:
        return cast(dict[str, int], self._regexp.groupindex)

    def search(self, text: str) -> Any:
        return self._regexp.search(text)

    def match(self, text: str) -> Any:
        return self._regexp.match(text)

    def fullmatch(self, text: str) -> Any:
        return self._regexp.fullmatch(text)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pattern) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash((Pattern, self.pattern))

    def __repr__(self) -> str:
        return f"Pattern({self.pattern!r})"

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return compile_pattern, (self.pattern,)


def compile_pattern(text: str) -> Pattern:
    """Compile a tag/branch regex with RE2; ValueError, naming the construct, if it cannot be."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a pattern: expected a string")
    if not text:
        raise ValueError("empty pattern matches everything; write '.*' if that is what you mean")
    if len(text) > MAX_PATTERN_LENGTH:
        raise ValueError(
            f"pattern is {len(text)} characters long; the maximum is {MAX_PATTERN_LENGTH}"
        )
    try:
        regexp = re2.compile(text, _OPTIONS)
    except re2.error as e:
        raise ValueError(_refusal(text, _reason(e))) from None
    if any(token == "\\C" for _, token, _ in _tokens(text)):  # RE2 has it, Go does not
        raise ValueError(_unsupported(text, ("\\C (any single byte)", "write . for any character")))
    twice = _name_used_twice(text)
    if twice is not None:
        raise ValueError(f"group name {twice!r} is used twice in '{text}'; give each group a name of its own "
                         "(only the first group of a name would ever be reported)")
    return Pattern(regexp)


def _reason(error: re2.error) -> str:
    reason = error.args[0] if error.args else "invalid pattern"
    return reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)


def _refusal(text: str, reason: str) -> str:
    construct = _construct(text)
    if construct is not None:
        return _unsupported(text, construct)
    if reason.startswith("invalid repetition size"):
        reason += "; counts go up to 1000 (nested counts multiply) and the minimum comes first"
    return f"'{text}' is not a valid RE2 (Go regexp syntax) pattern: {reason}"


def _unsupported(text: str, construct: tuple[str, str | None]) -> str:
    name, hint = construct
    return f"{name} in '{text}' is not supported: {RE2_ONLY}" + (f"; {hint}" if hint else "")


def _tokens(text: str) -> Iterator[tuple[int, str, bool]]:
    """(offset, token, inside a character class) for the escapes of ``text`` (as '\\x') and, outside
    character classes, its other characters one by one; \\Q...\\E is skipped."""
    i, end, in_class = 0, len(text), False
    while i < end:
        ch = text[i]
        if ch == "\\":
            if text.startswith("Q", i + 1) and not in_class:
                stop = text.find("\\E", i + 2)
                i = end if stop < 0 else stop + 2
                continue
            yield i, text[i : i + 2], in_class
            i += 2
        elif in_class:
            if text.startswith("[:", i) and (stop := text.find(":]", i + 2)) >= 0:
                i = stop + 2
                continue
            in_class = ch != "]"
            i += 1
        elif ch == "[":
            in_class = True
            i += 1 + text.startswith("^", i + 1)
            i += text.startswith("]", i)  # a ']' first in a class is a literal
        else:
            yield i, ch, False
            i += 1


def _construct(text: str) -> tuple[str, str | None] | None:
    """(name, hint) of the first construct of ``text`` that RE2 refuses and that has a name."""
    previous = ""
    for i, token, in_class in _tokens(text):
        if in_class:
            continue  # RE2's own message says which escape a class cannot hold
        found = None
        if token.startswith("\\"):
            found = _escape(token, text[i + 2 : i + 3])
        elif token == "(" and text.startswith("(?", i):
            found = _group(text, i)
        elif token == "+" and previous in ("*", "+", "?", "}"):
            counted = _COUNTED_REPEAT.search(text, 0, i) if previous == "}" else None
            if previous != "}" or counted:
                start = counted.start() if counted else i - 1
                found = (f"possessive quantifier '{text[start : i + 1]}'", f"drop the last '+': {_NO_BACKTRACKING}")
        if found is not None:
            return found
        previous = token
    return None


def _escape(token: str, after: str) -> tuple[str, str | None] | None:
    letter = token[1:]
    # \1 to \7 followed by an octal digit is an octal escape, in RE2 as in Go
    if letter in ("8", "9") or (letter in tuple("1234567") and after not in tuple("01234567")):
        return f"backreference {token}", None
    if letter == "Z":
        return "\\Z", "write \\z (or $) for the end of the text"
    return (_ESCAPES[letter], None) if letter in _ESCAPES else None


def _group(text: str, i: int) -> tuple[str, str | None] | None:
    for opener, name in _GROUPS:
        if text.startswith(opener, i):
            return name, (f"write (?:...) instead: {_NO_BACKTRACKING}" if opener == "(?>" else None)
    if _RECURSION.match(text, i):
        return "recursion or subroutine call (?N)", None
    flags = _FLAGS.match(text, i)
    if flags is not None:
        unknown = sorted(set(flags.group(1)) - set("imsU-"))
        if unknown:
            return f"flag '{unknown[0]}' of '{flags.group(0)}'", "RE2's flags are i, m, s and U"
    return None


def _name_used_twice(text: str) -> str | None:
    seen: set[str] = set()
    for i, token, _ in _tokens(text):
        if token == "(" and (named := _NAMED_GROUP.match(text, i)):
            if named.group(1) in seen:
                return named.group(1)
            seen.add(named.group(1))
    return None
