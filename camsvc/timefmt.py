"""Timestamps as API.md §1 writes them: RFC 3339, UTC, `Z`, milliseconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["parse_timestamp", "utc_timestamp"]


def utc_timestamp(epoch_s: float | None = None) -> str:
    """Format a Unix time (default: now) as `2025-01-15T14:30:00.123Z`."""
    if epoch_s is None:
        epoch_s = time.time()
    dt = datetime.fromtimestamp(epoch_s, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_timestamp(ts: str) -> float:
    """Parse an RFC 3339 timestamp (as written by `utc_timestamp`) back to Unix seconds."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
