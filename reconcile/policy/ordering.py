r"""The part of a tag a rule orders by, and how each order ranks it. Pure; shared by the planner
and ``validate``.

One key per rule: a pattern's filter, its semver range and its order all look at the same part
of the tag, the named group ``version``, else group 1, else the whole tag. ``^build-(\d+)$``
ranks build-9 below build-10 by the number 9 and 10; ``^build-\d+$`` has no group, so the order
compares the whole tag, and "build-10" is no number: such a tag cannot be ranked and is kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from reconcile.policy.semver import Version

# Integers and decimals, as Flux's numerical policy takes them (no exponents, no NaN or Inf).
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def version_part(pattern: Any, tag: str) -> str | None:
    """The part of ``tag`` that carries its order under ``pattern`` (None: no pattern, the whole tag).

    ``None`` when the pattern does not match; ``""`` when its version group took no part in the
    match (no order can rank that)."""
    if pattern is None:
        return tag
    match = pattern.search(tag)
    if match is None:
        return None
    if "version" in pattern.groupindex:
        return match.group("version") or ""
    if pattern.groups:
        return match.group(1) or ""
    return tag


def number(text: str) -> Decimal | None:
    """An integer or decimal, compared by value (1.10 > 1.9, 010 == 10); None if ``text`` is not one."""
    if not _NUMBER.fullmatch(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only what Decimal parses
        return None


def rank_key(order: str, part: str, created: datetime | None, *, strict_semver: bool = True) -> object | None:
    """How ``order`` ranks a tag whose version part is ``part``; None when it cannot.
    ``strict_semver=False`` also ranks ``1`` and ``1.2`` as versions (1.0.0, 1.2.0)."""
    if order == "newest":
        return created
    if not part:
        return None
    if order == "semver":
        version = Version.try_parse(part, strict=strict_semver)
        return version.sort_key if version else None
    if order == "numeric":
        return number(part)
    return part  # alphabetical


def why_unranked(order: str, part: str, pattern_text: str | None, whole_tag: bool, age: str = "created") -> str:
    """Why ``order`` cannot rank a tag, with the fix when the pattern is what is wrong."""
    if order == "newest":
        return ("its push time is unknown (this registry's API does not say when an image was pushed)"
                if age == "pushed" else "its creation time is unknown")
    what = {"semver": "a semantic version", "numeric": "a number", "alphabetical": "text"}[order]
    text = f"{part!r} is not {what}" if part else "its version group took no part in the match"
    if whole_tag and pattern_text is not None:
        fix = capture_suggestion(pattern_text, order)
        return f"{text} (without a capture group the whole tag is compared): add a capture group: '{fix}'"
    return text


# A run of digits in a pattern: \d+, [0-9]+, \d{N,M} and the like.
_DIGIT_TOKEN = r"(?:\\d|\[0-9\])(?:[+*?]|\{[0-9,]+\})?"
_DIGIT_RUN = re.compile(rf"{_DIGIT_TOKEN}(?:\\?\.?{_DIGIT_TOKEN})*")


def capture_suggestion(pattern_text: str, order: str) -> str:
    r"""``pattern_text`` with a group around the part ``order`` should compare: ``^build-\d+$`` ->
    ``^build-(\d+)$``; for semver the run of numbers and dots, ``^v\d+\.\d+\.\d+$`` stays whole."""
    runs = list(_DIGIT_RUN.finditer(pattern_text))
    if not runs:
        return "(?P<version>...)"  # nothing to point at: name the group to add
    run = max(runs, key=lambda m: len(m.group())) if order == "semver" else runs[-1]
    return f"{pattern_text[:run.start()]}({run.group()}){pattern_text[run.end():]}"


# What a pattern's tags look like when an order can rank them: if none of these match a
# group-less pattern, no tag it selects is a number (or version), so the order ranks none.
_SAMPLES: dict[str, tuple[str, ...]] = {
    "numeric": ("0", "1", "7", "10", "42", "123", "2024", "20240101", "1.5", "0.1", "12.25", "-1"),
    "semver": ("1.0.0", "0.1.0", "1.2.3", "10.20.30", "v1.0.0", "v1.2.3", "1.0.0-rc.1", "v1.0.0-rc.1",
               "1.0.0-alpha", "2.0.0+build.1"),
}


def unrankable_pattern(pattern: Any, order: str | None) -> str | None:
    """Why ``order`` can rank none of the tags ``pattern`` selects, with the fix; None when it may."""
    if order not in _SAMPLES or pattern is None or pattern.groups:
        return None
    if any(pattern.search(sample) for sample in _SAMPLES[order]):
        return None
    what = {"semver": "a semantic version", "numeric": "a number"}[order]
    fix = capture_suggestion(pattern.pattern, order)
    return (f"order {order} compares the whole tag, and no tag matching '{pattern.pattern}' is {what}, so "
            f"every one is kept: add a capture group: '{fix}'")


def by_rank(order: str, key: Callable[[str], object | None], tags: list[str], *,
            descending: bool = False) -> tuple[list[str], list[str]]:
    """``tags`` split into those ``order`` ranks (oldest first, ties by name) and those it cannot.
    ``descending`` reverses the order (the lowest ranks newest); ties stay by name."""
    keyed = sorted((k, tag) for tag in tags if (k := key(tag)) is not None)
    if descending:
        keyed.sort(key=lambda kt: kt[0], reverse=True)  # type: ignore[arg-type,return-value]  # stable: ties by name
    return [tag for _, tag in keyed], sorted(tag for tag in tags if key(tag) is None)
