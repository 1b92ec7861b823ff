"""Go-style durations (``90s``, ``10m``, ``1h30m``, ``7d``, ``2w``), as Kubernetes and werf use."""

from __future__ import annotations

import re
from datetime import timedelta

_UNIT_SECONDS: dict[str, int] = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
# Rank of each unit: larger units first, so a valid duration has strictly increasing ranks.
_UNIT_RANK: dict[str, int] = {unit: rank for rank, unit in enumerate(_UNIT_SECONDS)}

MAX_DURATION = timedelta(days=36_500)
_MAX_SECONDS = int(MAX_DURATION.total_seconds())

_HINT = "use s, m, h, d or w, e.g. 90s, 10m, 168h, 7d"
_TOKEN = re.compile(r"([0-9]*)([^0-9]*)")


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as ``90s``, ``1h30m`` or ``7d``; raise ``ValueError`` if invalid."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a duration: expected a string with a unit ({_HINT})")
    if not text:
        raise ValueError(f"empty string is not a duration ({_HINT})")

    def fail(reason: str) -> ValueError:
        return ValueError(f"{text!r} is not a duration: {reason}")

    if text[0] in "+-":
        raise fail("a sign is not allowed; durations are always positive")
    if any(ch.isspace() for ch in text):
        raise fail("spaces are not allowed (write e.g. 1h30m)")
    if "." in text or "," in text:
        raise fail("fractions are not allowed; use a smaller unit, e.g. 90m instead of 1.5h")

    total = 0
    last_unit: str | None = None
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        assert match is not None  # the pattern can match the empty string, so never None
        digits, unit = match.groups()
        pos = match.end()
        if not digits:
            raise fail(f"unit {unit!r} has no number before it")
        if not unit:
            raise fail(f"missing unit after {digits!r} ({_HINT})")
        if unit not in _UNIT_SECONDS:
            raise fail(f"unknown unit {unit!r} ({_HINT})")
        if last_unit is not None:
            if unit == last_unit:
                raise fail(f"unit {unit!r} appears more than once")
            if _UNIT_RANK[unit] < _UNIT_RANK[last_unit]:
                raise fail(
                    f"units must go from largest to smallest ({unit!r} comes after {last_unit!r})"
                )
        last_unit = unit
        # Cheap guard before int(): a huge digit string would otherwise cost time or overflow.
        if len(digits.lstrip("0")) > 12:
            raise fail("longer than the maximum of 100 years (36500d)")
        total += int(digits) * _UNIT_SECONDS[unit]

    if total > _MAX_SECONDS:
        raise fail("longer than the maximum of 100 years (36500d)")
    return timedelta(seconds=total)


def format_duration(td: timedelta) -> str:
    """Format ``td`` canonically, largest units first, without weeks (``7d``, ``1h30m``, ``0s``).

    Sub-second parts are dropped (seconds resolution).
    """
    if td < timedelta(0):
        raise ValueError(f"{td} is negative; durations are always positive")
    remaining = td.days * 86_400 + td.seconds
    parts: list[str] = []
    for unit in ("d", "h", "m", "s"):
        amount, remaining = divmod(remaining, _UNIT_SECONDS[unit])
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts) or "0s"
