"""Timestamps as API.md §1 writes them: RFC 3339, UTC, `Z`, milliseconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["parse_timestamp", "utc_timestamp"]

# Every response carries a timestamp; formatting the date part once per second keeps that
# off the hot path (strftime costs more than the rest of a ping).
_cached_second = -1
_cached_prefix = ""


def utc_timestamp(epoch_s: float | None = None) -> str:
    """Format a Unix time (default: now) as `2025-01-15T14:30:00.123Z`."""
    global _cached_second, _cached_prefix
    if epoch_s is None:
        epoch_s = time.time()
    # Round to microseconds first, as datetime does, so 0.123 is not printed as .122.
    second, micros = divmod(round(epoch_s * 1_000_000), 1_000_000)
    if second != _cached_second:
        _cached_prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        _cached_second = second
    return f"{_cached_prefix}{micros // 1000:03d}Z"


def parse_timestamp(ts: str) -> float:
    """Parse an RFC 3339 timestamp (as written by `utc_timestamp`) back to Unix seconds."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
