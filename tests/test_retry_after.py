"""Retry-After in its three forms."""

import pytest

from fallover._retry_after import parse_retry_after


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": " 1.5 "}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "junk", "retry-after": "9"}, 9.0),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "soon"}, None),
        ({}, None),
        ({"retry-after": "99999999"}, 86400.0),
    ],
)
def test_seconds_and_milliseconds(headers: dict[str, str], expected: float | None) -> None:
    """Seconds, milliseconds, junk, negatives and absurd values."""
    assert parse_retry_after(headers) == expected


def test_http_date() -> None:
    """An HTTP-date is measured against the wall clock."""
    now = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT
    got = parse_retry_after({"retry-after": "Sun, 06 Nov 1994 08:49:47 GMT"}, now=lambda: now)
    assert got == pytest.approx(10.0)


def test_http_date_in_the_past_is_zero() -> None:
    """A date already gone means retry now."""
    got = parse_retry_after({"retry-after": "Sun, 06 Nov 1994 08:49:37 GMT"}, now=lambda: 2e9)
    assert got == 0.0
