"""Timestamp formatting (API.md §1)."""

from __future__ import annotations

import pytest

from camsvc.timefmt import parse_timestamp, utc_timestamp


@pytest.mark.parametrize(
    ("epoch", "text"),
    [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (1736951400.123, "2025-01-15T14:30:00.123Z"),
        (1736951400.9999, "2025-01-15T14:30:00.999Z"),
        (1736951401.0, "2025-01-15T14:30:01.000Z"),
        (-0.5, "1969-12-31T23:59:59.500Z"),
    ],
)
def test_format(epoch, text):
    """UTC, Z, exactly three fractional digits; the per-second cache never leaks across seconds."""
    assert utc_timestamp(epoch) == text


def test_round_trip():
    """parse_timestamp reads back what utc_timestamp writes (to the millisecond)."""
    assert abs(parse_timestamp(utc_timestamp(1736951400.123)) - 1736951400.123) < 1e-6
