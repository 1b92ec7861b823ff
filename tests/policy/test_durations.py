from datetime import timedelta

import pytest

from reconcile.policy.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0s", timedelta(0)),
        ("0d", timedelta(0)),
        ("1s", timedelta(seconds=1)),
        ("90s", timedelta(seconds=90)),
        ("10m", timedelta(minutes=10)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("168h", timedelta(days=7)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(days=14)),
        ("1w2d3h4m5s", timedelta(days=9, hours=3, minutes=4, seconds=5)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("2h5s", timedelta(hours=2, seconds=5)),
        ("010m", timedelta(minutes=10)),
        ("36500d", timedelta(days=36500)),
        ("5214w2d", timedelta(days=36500)),
    ],
)
def test_parse_valid(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty string is not a duration"),
        ("10", "'10' is not a duration: missing unit after '10'"),
        ("1h30", "missing unit after '30'"),
        ("10x", "'10x' is not a duration: unknown unit 'x' (use s, m, h, d or w"),
        ("500ms", "unknown unit 'ms'"),
        ("1H", "unknown unit 'H'"),
        ("1y", "unknown unit 'y'"),
        ("h", "unit 'h' has no number before it"),
        ("1hm", "unknown unit 'hm'"),
        ("-5m", "a sign is not allowed"),
        ("+5m", "a sign is not allowed"),
        ("1h 30m", "spaces are not allowed"),
        (" 5m", "spaces are not allowed"),
        ("1.5h", "fractions are not allowed"),
        ("1,5h", "fractions are not allowed"),
        ("30m1h", "units must go from largest to smallest ('h' comes after 'm')"),
        ("1s1d", "units must go from largest to smallest ('d' comes after 's')"),
        ("1h1h", "unit 'h' appears more than once"),
        ("1h30m1h", "units must go from largest to smallest"),
        ("36501d", "longer than the maximum of 100 years"),
        ("5215w", "longer than the maximum of 100 years"),
        ("99999999999999999999999999s", "longer than the maximum of 100 years"),
    ],
)
def test_parse_invalid(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_duration(text)
    assert fragment in str(excinfo.value)


@pytest.mark.parametrize("value", [10, 1.5, None])
def test_parse_rejects_non_strings(value: object) -> None:
    with pytest.raises(ValueError, match="is not a duration: expected a string"):
        parse_duration(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("td", "expected"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=1), "1s"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(minutes=10), "10m"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(days=7), "7d"),
        (timedelta(days=14, seconds=1), "14d1s"),
        (timedelta(days=1, hours=2, minutes=3, seconds=4), "1d2h3m4s"),
        (timedelta(hours=24), "1d"),
        (timedelta(seconds=59, microseconds=999_999), "59s"),
        (timedelta(microseconds=1), "0s"),
    ],
)
def test_format(td: timedelta, expected: str) -> None:
    assert format_duration(td) == expected


def test_format_rejects_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_duration(timedelta(seconds=-1))


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("0s", "0s"),
        ("90s", "1m30s"),
        ("168h", "7d"),
        ("2w", "14d"),
        ("1h30m", "1h30m"),
        ("1w2d3h4m5s", "9d3h4m5s"),
        ("3600s", "1h"),
        ("36500d", "36500d"),
    ],
)
def test_round_trip(text: str, canonical: str) -> None:
    td = parse_duration(text)
    assert format_duration(td) == canonical
    assert parse_duration(canonical) == td
