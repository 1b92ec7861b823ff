"""Semantic versions (semver 2.0.0) and the npm/Masterminds range syntax Flux and Argo CD use.

Versions: ``Version.parse`` is strict by default (``[v]MAJOR.MINOR.PATCH[-pre][+build]``, the
``v`` allowed); ``strict=False`` also takes ``1`` and ``1.2`` (as Masterminds' ``NewVersion`` and
Kargo's ``strictSemvers: false``), read as ``1.0.0`` and ``1.2.0``.

Ranges take the npm node-semver and the Masterminds/semver grammar alike: ``>=1.2.0 <2``, commas
as AND (``>=1.2, <2``), ``||``, hyphen ranges (``1.2 - 1.4.5``), wildcards and partial versions
(``1.x``, ``1.2.*``, ``~1.2``, ``^1``), the Masterminds operators ``=>``, ``=<`` and ``~>``, and
partial versions with a pre-release (``~1.1-alpha``, ``^1.2.x-alpha``, ``<=1.1-a``: the missing
parts are 0 under the pre-release, 1.1.0-alpha).

Pre-releases: which pre-release versions a range admits is the one place the two grammars
disagree, so it is chosen per range (``SemverRange.parse(text, prereleases=...)``):

- ``npm`` (the default; Flux's and Argo CD Image Updater's ranges are Masterminds', but reconcile
  has always used this rule, so existing policies keep their meaning): a pre-release version
  satisfies a set of comparators only if one of them names a pre-release of the same
  MAJOR.MINOR.PATCH: ``>=1.2.3-rc.1`` admits ``1.2.3-rc.2``, never ``1.3.0-rc.1``;
- ``masterminds`` (Masterminds/semver v3, used by Flux, Argo CD Image Updater and Kargo): a
  pre-release version is considered only if some comparator of its ``||`` alternative names a
  pre-release, and then it is compared by precedence like any version: ``>=1.2.3-rc.1`` admits
  ``1.3.0-rc.1``.

Without a pre-release in the range, both rules admit no pre-release version, with one exception
kept for existing policies: under ``npm``, ``>`` on a partial version (``>1.2``, read as
``>=1.3.0-0``) also admits that next version's pre-releases (``1.3.0-rc.1``; node-semver does not).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_LENGTH = 256

_DIGITS = re.compile(r"[0-9]+")
_IDENTIFIER = re.compile(r"[0-9A-Za-z-]+")
_SHA_LIKE = re.compile(r"[0-9a-f]{7,40}")
_OPERATOR_CHARS = "<>=!~^"
_OPERATORS = frozenset({"", "=", "!=", ">", ">=", "<", "<=", "~", "^", "=>", "=<", "~>"})
_SYNONYMS = {"=>": ">=", "=<": "<=", "~>": "~"}  # Masterminds' spellings (node-semver takes ~> too)
_OPERATOR_HINT = "use =, !=, >, >=, <, <=, ~ or ^"
_SUGGESTIONS = {"==": "="}
PRERELEASE_RULES = ("npm", "masterminds")
_WILDCARDS = frozenset({"x", "X", "*"})
_PART_NAMES = ("major", "minor", "patch")

PrecedenceKey = tuple[int, int, int, tuple[object, ...]]


class _Invalid(Exception):
    """A reason without the subject, so callers can phrase the final message themselves."""


def _operator_prefix(token: str) -> str:
    return token[: len(token) - len(token.lstrip(_OPERATOR_CHARS))]


def _check_number(name: str, part: str, *, allow_wildcard: bool = False) -> int:
    if not part:
        raise _Invalid(f"{name} version is empty")
    if not _DIGITS.fullmatch(part):
        wildcard = " or a wildcard (x, X, *)" if allow_wildcard else ""
        raise _Invalid(f"{name} version {part!r} is not a number{wildcard}")
    if len(part) > 1 and part[0] == "0":
        raise _Invalid(f"{name} version {part!r} has a leading zero")
    return int(part)


def _identifiers(kind: str, text: str, *, numeric_leading_zero_ok: bool) -> tuple[str, ...]:
    idents = tuple(text.split("."))
    for ident in idents:
        if not ident:
            raise _Invalid(f"empty identifier in {kind} {text!r}")
        if not _IDENTIFIER.fullmatch(ident):
            raise _Invalid(f"{kind} identifier {ident!r} may only contain letters, digits and '-'")
        if not numeric_leading_zero_ok and len(ident) > 1 and ident[0] == "0" and ident.isdigit():
            raise _Invalid(f"numeric {kind} identifier {ident!r} has a leading zero")
    return idents


def _parse_version(text: str, *, strict: bool) -> Version:
    if len(text) > MAX_LENGTH:
        raise _Invalid(f"longer than {MAX_LENGTH} characters")
    if _SHA_LIKE.fullmatch(text):
        raise _Invalid("looks like a git commit SHA, not a version")
    body = text[1:] if text[:1] in ("v", "V") else text
    if not body:
        raise _Invalid("nothing after 'v'")
    body, plus, build_text = body.partition("+")
    if plus and not build_text:
        raise _Invalid("empty build metadata after '+'")
    core, dash, pre_text = body.partition("-")
    if dash and not pre_text:
        raise _Invalid("empty pre-release after '-'")
    parts = core.split(".")
    if len(parts) > 3:
        raise _Invalid("more than three numeric parts (expected MAJOR.MINOR.PATCH)")
    numbers = [_check_number(name, part) for name, part in zip(_PART_NAMES, parts, strict=False)]
    if strict and len(parts) < 3:
        padded = ".".join(parts + ["0"] * (3 - len(parts)))
        raise _Invalid(f"expected MAJOR.MINOR.PATCH, e.g. {padded}")
    prerelease = (
        _identifiers("pre-release", pre_text, numeric_leading_zero_ok=False) if dash else ()
    )
    build = _identifiers("build", build_text, numeric_leading_zero_ok=True) if plus else ()
    major, minor, patch = (*numbers, 0, 0)[:3]
    return Version(major, minor, patch, prerelease, build, original=text)


def _identifier_key(ident: str) -> tuple[int, int, str]:
    # Numeric identifiers sort numerically and below alphanumeric ones (semver 11.4.1-3).
    return (0, int(ident), "") if ident.isdigit() else (1, 0, ident)


@dataclass(frozen=True)
class Version:
    """A semantic version; ``original`` keeps the text it was parsed from (e.g. with ``v``)."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()
    original: str = ""

    def __post_init__(self) -> None:
        if not self.original:
            object.__setattr__(self, "original", str(self))

    @classmethod
    def parse(cls, text: str, *, strict: bool = True) -> Version:
        """Parse ``[v]MAJOR.MINOR.PATCH[-pre][+build]``; non-strict also takes ``1`` and ``1.2``."""
        if not isinstance(text, str):
            raise ValueError(f"{text!r} is not a semantic version: expected a string")
        if not text:
            raise ValueError("empty string is not a semantic version")
        try:
            return _parse_version(text, strict=strict)
        except _Invalid as e:
            raise ValueError(f"{text!r} is not a semantic version: {e}") from None

    @classmethod
    def try_parse(cls, text: str, *, strict: bool = True) -> Version | None:
        """Like :meth:`parse`, but return ``None`` instead of raising."""
        try:
            return cls.parse(text, strict=strict)
        except ValueError:
            return None

    @property
    def precedence_key(self) -> PrecedenceKey:
        """Semver precedence only: equal keys mean equal precedence (build metadata ignored)."""
        pre: tuple[object, ...] = (
            (0, tuple(_identifier_key(i) for i in self.prerelease)) if self.prerelease else (1,)
        )
        return (self.major, self.minor, self.patch, pre)

    @property
    def sort_key(self) -> tuple[PrecedenceKey, str, str]:
        """Precedence, then build and original text, so that sorting is total and stable."""
        return (self.precedence_key, ".".join(self.build), self.original)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.sort_key < other.sort_key

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.sort_key <= other.sort_key

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.sort_key > other.sort_key

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.sort_key >= other.sort_key

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text


@dataclass(frozen=True)
class _Comparator:
    op: str  # "<", "<=", ">", ">=", "=", "!=", or "outside" (below version or at/above upper)
    version: Version
    upper: Version | None = None

    def test(self, candidate: Version) -> bool:
        key, bound = candidate.precedence_key, self.version.precedence_key
        if self.op == "<":
            return key < bound
        if self.op == "<=":
            return key <= bound
        if self.op == ">":
            return key > bound
        if self.op == ">=":
            return key >= bound
        if self.op == "=":
            return key == bound
        if self.op == "!=":
            return key != bound
        assert self.op == "outside" and self.upper is not None
        return key < bound or key >= self.upper.precedence_key

    def admits_prerelease_of(self, candidate: Version) -> bool:
        # npm rule; a negation ("!=1.2.3-rc.1") must not opt other pre-releases in.
        v = self.version
        return (
            self.op in ("<", "<=", ">", ">=", "=")
            and bool(v.prerelease)
            and (v.major, v.minor, v.patch) == (candidate.major, candidate.minor, candidate.patch)
        )

    def __str__(self) -> str:
        if self.op == "outside":
            return f"!({self.version} - <{self.upper})"
        return f"{self.op}{self.version}"


_ANY = (_Comparator(">=", Version(0, 0, 0)),)
_NOTHING = (_Comparator("<", Version(0, 0, 0, ("0",))),)


@dataclass(frozen=True)
class _Partial:
    """A version as written in a range; ``None`` parts were wildcards or left out."""

    major: int | None
    minor: int | None
    patch: int | None
    full: Version | None = None  # set when all three parts are numbers
    prerelease: tuple[str, ...] = ()  # of a partial version (Masterminds: ~1.1-alpha is >=1.1.0-alpha)

    def floor(self) -> Version:
        if self.full is not None:
            return self.full
        return Version(self.major or 0, self.minor or 0, self.patch or 0, self.prerelease)

    def ceiling(self) -> Version:
        """Exclusive upper bound of a partial version, e.g. 1.2 -> 1.3.0-0 (as npm)."""
        assert self.major is not None
        if self.minor is None:
            return Version(self.major + 1, 0, 0, ("0",))
        return Version(self.major, self.minor + 1, 0, ("0",))


def _parse_partial(token: str) -> _Partial:
    body = token[1:] if token[:1] in ("v", "V") else token
    if not body:
        raise _Invalid(f"no version after {token!r}")
    prerelease: tuple[str, ...] = ()
    if "-" in body or "+" in body:
        core = re.split(r"[-+]", body, maxsplit=1)[0]
        if len(core.split(".")) == 3 and not any(p in _WILDCARDS for p in core.split(".")):
            try:
                full = _parse_version(token, strict=True)
            except _Invalid as e:
                raise _Invalid(f"in {token!r}, {e}") from None
            return _Partial(full.major, full.minor, full.patch, full)
        # A partial version with a pre-release (Masterminds): ~1.1-alpha, ^1.2.x-alpha, <=1.1-a.
        try:
            suffix = _parse_version("0.0.0" + body[len(core):], strict=True)
        except _Invalid as e:
            raise _Invalid(f"in {token!r}, {e}") from None
        if not core:
            raise _Invalid(f"in {token!r}, a pre-release needs a version before it")
        body, prerelease = core, suffix.prerelease
    parts = body.split(".")
    if len(parts) > 3:
        raise _Invalid(f"in {token!r}, more than three numeric parts")
    numbers: list[int | None] = []
    try:
        for name, part in zip(_PART_NAMES, parts, strict=False):
            if part in _WILDCARDS:
                numbers.append(None)
            elif numbers and numbers[-1] is None:
                raise _Invalid(f"the {name} version comes after a wildcard")
            else:
                numbers.append(_check_number(name, part, allow_wildcard=True))
    except _Invalid as e:
        raise _Invalid(f"in {token!r}, {e}") from None
    major, minor, patch = (*numbers, None, None)[:3]
    if major is not None and minor is not None and patch is not None:
        return _Partial(major, minor, patch, Version(major, minor, patch, prerelease, original=token))
    return _Partial(major, minor, patch, prerelease=prerelease)


def _between(low: Version, high: Version) -> tuple[_Comparator, ...]:
    return (_Comparator(">=", low), _Comparator("<", high))


def _tilde(p: _Partial) -> tuple[_Comparator, ...]:
    if p.major is None:
        return _ANY
    if p.full is None:
        return _between(p.floor(), p.ceiling())
    return _between(p.full, Version(p.major, p.full.minor + 1, 0, ("0",)))


def _caret(p: _Partial) -> tuple[_Comparator, ...]:
    if p.major is None:
        return _ANY
    if p.minor is None:
        return _between(p.floor(), p.ceiling())
    if p.patch is None:
        high = Version(p.major + 1, 0, 0, ("0",)) if p.major else p.ceiling()
        return _between(p.floor(), high)
    if p.major:
        high = Version(p.major + 1, 0, 0, ("0",))
    elif p.minor:
        high = Version(0, p.minor + 1, 0, ("0",))
    else:
        high = Version(0, 0, p.patch + 1, ("0",))
    return _between(p.floor(), high)


def _with_operator(op: str, p: _Partial) -> tuple[_Comparator, ...]:
    if op in ("", "="):
        if p.major is None:
            return _ANY
        return (_Comparator("=", p.full),) if p.full else _between(p.floor(), p.ceiling())
    if op == "!=":
        if p.major is None:
            return _NOTHING
        if p.full:
            return (_Comparator("!=", p.full),)
        return (_Comparator("outside", p.floor(), p.ceiling()),)
    if p.major is None:
        return _NOTHING if op in ("<", ">") else _ANY
    if p.full:
        return (_Comparator(op, p.full),)
    if op == ">":
        return (_Comparator(">=", p.ceiling()),)
    if op == ">=":
        return (_Comparator(">=", p.floor()),)
    if op == "<":  # below the whole partial, its pre-releases included: <1.2 -> <1.2.0-0
        floor = p.floor()
        if p.prerelease:  # Masterminds: <1.1-a is below 1.1.0-a
            return (_Comparator("<", floor),)
        return (_Comparator("<", Version(floor.major, floor.minor, 0, ("0",))),)
    return (_Comparator("<", p.ceiling()),)  # "<=" with a partial: up to the whole partial


def _comparator(token: str) -> tuple[_Comparator, ...]:
    op = _operator_prefix(token)
    rest = token[len(op) :]
    if op not in _OPERATORS:
        hint = f"did you mean {_SUGGESTIONS[op]!r}?" if op in _SUGGESTIONS else _OPERATOR_HINT
        raise _Invalid(f"unknown operator {op!r} in {token!r} ({hint})")
    if not rest:
        raise _Invalid(f"{op!r} has no version after it")
    op = _SYNONYMS.get(op, op)
    partial = _parse_partial(rest)
    if op == "~":
        return _tilde(partial)
    if op == "^":
        return _caret(partial)
    return _with_operator(op, partial)


def _hyphen(low_token: str, high_token: str) -> tuple[_Comparator, ...]:
    for bound in (low_token, high_token):
        if _operator_prefix(bound):
            raise _Invalid(
                f"hyphen range bounds must be plain versions, not {bound!r} "
                f"(write e.g. '1.2.3 - 2.3.4')"
            )
    low, high = _parse_partial(low_token), _parse_partial(high_token)
    comparators: list[_Comparator] = []
    if low.major is not None:
        comparators.append(_Comparator(">=", low.floor()))
    if high.full is not None:
        comparators.append(_Comparator("<=", high.full))
    elif high.major is not None:
        comparators.append(_Comparator("<", high.ceiling()))
    return tuple(comparators) or _ANY


def _merge_operators(words: list[str]) -> list[str]:
    """Join a lone operator with the version after it: ``>= 1.2.3`` -> ``>=1.2.3``."""
    merged: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else None
        is_operator = _operator_prefix(word) == word
        if is_operator and nxt is not None and nxt != "-" and not _operator_prefix(nxt):
            merged.append(word + nxt)
            i += 2
        else:
            merged.append(word)
            i += 1
    return merged


def _names_prerelease(word: str) -> bool:
    """Whether a word of a range names a pre-release: ``>=1.2.3-rc.1``, ``~1.1-alpha`` (not ``1.2.3+b-1``)."""
    return word != "-" and "-" in word[len(_operator_prefix(word)):].partition("+")[0]


def _parse_set(part: str) -> tuple[_Comparator, ...]:
    if "|" in part:
        raise _Invalid("use '||' between alternatives, not '|'")
    comparators: list[_Comparator] = []
    chunks = part.split(",")
    for chunk in chunks:
        words = _merge_operators(chunk.split())
        if not words:
            raise _Invalid("empty comparator next to ','")
        i = 0
        while i < len(words):
            word = words[i]
            if word == "-":
                after = f" {words[i + 1]}" if i + 1 < len(words) else ""
                raise _Invalid(f"hyphen range '-{after}' has no lower bound")
            if i + 1 < len(words) and words[i + 1] == "-":
                if i + 2 >= len(words) or words[i + 2] == "-":
                    raise _Invalid(f"hyphen range '{word} -' has no upper bound")
                comparators.extend(_hyphen(word, words[i + 2]))
                i += 3
                continue
            comparators.extend(_comparator(word))
            i += 1
    return tuple(comparators)


@dataclass(frozen=True)
class SemverRange:
    """A version range in npm node-semver / Masterminds syntax, e.g. ``>=1.2.0 <2 || ^3.1``."""

    text: str
    sets: tuple[tuple[_Comparator, ...], ...] = field(repr=False, compare=False)
    prereleases: str = "npm"  # which pre-release versions the range admits: see the module's doc
    # per alternative: whether one of its comparators names a pre-release (the Masterminds rule)
    names_prerelease: tuple[bool, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def parse(cls, text: str, *, prereleases: str = "npm") -> SemverRange:
        """Parse ``text``; ``prereleases`` is the rule for pre-release versions, npm or masterminds."""
        if prereleases not in PRERELEASE_RULES:
            raise ValueError(f"unknown pre-release rule {prereleases!r}: use npm or masterminds")
        if not isinstance(text, str):
            raise ValueError(f"{text!r} is not a semver range: expected a string")
        if not text.strip():
            raise ValueError("empty string is not a semver range (use '*' to allow any version)")
        if len(text) > MAX_LENGTH * 4:
            raise ValueError(f"semver range is longer than {MAX_LENGTH * 4} characters")
        alternatives = text.split("||")
        sets: list[tuple[_Comparator, ...]] = []
        try:
            for index, alternative in enumerate(alternatives):
                if not alternative.strip():
                    where = "before" if index == 0 else "after"
                    raise _Invalid(f"empty alternative {where} '||'")
                sets.append(_parse_set(alternative))
        except _Invalid as e:
            raise ValueError(f"{text!r} is not a semver range: {e}") from None
        named = tuple(any(_names_prerelease(w) for w in alt.replace(",", " ").split()) for alt in alternatives)
        return cls(text, tuple(sets), prereleases, named)

    def contains(self, version: Version) -> bool:
        """Does ``version`` satisfy the range (pre-releases only if opted in, by ``prereleases``' rule)?"""
        if self.prereleases == "masterminds":
            return any(all(c.test(version) for c in comparators) and (not version.prerelease or named)
                       for comparators, named in zip(self.sets, self.names_prerelease, strict=True))
        return any(_set_contains(comparators, version) for comparators in self.sets)

    def __contains__(self, version: object) -> bool:
        return isinstance(version, Version) and self.contains(version)

    def __str__(self) -> str:
        return self.text


def _set_contains(comparators: tuple[_Comparator, ...], version: Version) -> bool:
    if not all(c.test(version) for c in comparators):
        return False
    # npm: a pre-release only satisfies a set that names a pre-release of the same M.m.p.
    return not version.prerelease or any(c.admits_prerelease_of(version) for c in comparators)
