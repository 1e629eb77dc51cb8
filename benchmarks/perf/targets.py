"""The performance specification's tables (MediaMTX Camera Service, "Performance
Specifications" 1.0.0), as data, and how a measured figure is judged against a row.

Response times are judged on the p95 (the spec's own baseline table quotes average, p95 and
p99; its "Target" is a bound a run should stay under): *target*, *acceptable*, *slow* or
*critical*. Throughput rows are floors, resource rows are ceilings. The issue's own marks
(at least 10 times the spec's requests/s, 10,000 connections under 500 MB, < 5 % soak growth) are
separate rows of the report, each named as such.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["RESOURCES", "RESPONSE", "THROUGHPUT", "Band", "judge"]

Verdict = Literal["target", "acceptable", "slow", "warning", "critical", "n/a"]
Kind = Literal["response", "floor", "ceiling"]


class Band(msgspec.Struct, frozen=True):
    """One row of a spec table, its columns in the spec's order.

    response: Target, Acceptable, Slow (up to `critical`), Critical beyond;
    floor (throughput): Target, Acceptable, Critical below `acceptable`;
    ceiling (resources): Target, Warning (from `acceptable`), Critical above `critical`.
    """

    name: str
    unit: str
    target: float
    acceptable: float
    critical: float
    kind: Kind = "response"


#: Response time targets (ms): Target, Acceptable, Slow (up to `critical`), Critical beyond.
RESPONSE: dict[str, Band] = {
    b.name: b
    for b in (
        Band("WebSocket connection", "ms", 100, 500, 1000),
        Band("Authentication", "ms", 50, 200, 500),
        Band("Camera list", "ms", 200, 1000, 2000),
        Band("Camera status", "ms", 100, 500, 1000),
        Band("Take snapshot", "ms", 2000, 5000, 10000),
        Band("Start recording", "ms", 1000, 3000, 5000),
        Band("Stop recording", "ms", 500, 2000, 5000),
        Band("List recordings", "ms", 500, 2000, 5000),
        Band("Stream URL", "ms", 100, 500, 1000),
    )
}

#: Throughput targets: floors (Critical is "below Acceptable").
THROUGHPUT: dict[str, Band] = {
    b.name: b
    for b in (
        Band("Concurrent connections", "connections", 100, 50, 50, "floor"),
        Band("Requests per second", "req/s", 1000, 500, 500, "floor"),
        Band("Snapshots per minute", "/min", 60, 30, 30, "floor"),
        Band("Recordings per hour", "/h", 100, 50, 50, "floor"),
        Band("Data transfer rate", "Mbit/s", 100, 50, 50, "floor"),
    )
}

#: Resource utilisation: ceilings (Target, Warning, Critical).
RESOURCES: dict[str, Band] = {
    b.name: b
    for b in (
        Band("CPU usage", "% of the host", 50, 70, 80, "ceiling"),
        Band("Memory usage", "MiB", 1024, 2048, 3072, "ceiling"),
        Band("Disk I/O", "MB/s", 50, 100, 150, "ceiling"),
        Band("Network I/O", "Mbit/s", 100, 200, 300, "ceiling"),
        Band("File descriptors", "fds", 1000, 2000, 3000, "ceiling"),
    )
}


def judge(band: Band, value: float | None) -> Verdict:
    """Which of `band`'s columns `value` falls in."""
    if value is None or value != value:  # missing or NaN
        return "n/a"
    if band.kind == "floor":
        if value >= band.target:
            return "target"
        return "acceptable" if value >= band.acceptable else "critical"
    if value <= band.target:
        return "target"
    if band.kind == "ceiling":
        return "warning" if value <= band.critical else "critical"
    if value <= band.acceptable:
        return "acceptable"
    return "slow" if value <= band.critical else "critical"
