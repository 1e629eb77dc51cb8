"""What a `make bench` run reports: a row per measured figure, a table per scenario, and the
summary against the specification's three tables."""

from __future__ import annotations

import math

import msgspec

from benchmarks.perf.targets import RESOURCES, RESPONSE, THROUGHPUT, Band, judge
from benchmarks.wsclient import Machine, Stats, markdown_table

__all__ = ["Report", "Row", "Scenario", "render"]


class Row(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One measured figure, judged against a spec row (`spec`) or the issue's own mark (`goal`).

    `value` is what is judged: the p95 for response times, the rate for throughput, the
    reading for resources; `ok` is set for the issue's marks (None: informational)."""

    name: str
    spec: str = ""  # key into targets.RESPONSE / THROUGHPUT / RESOURCES
    goal: str = ""  # the issue's own mark, in words
    value: float | None = None
    unit: str = ""
    latency: Stats | None = None
    requests: int | None = None
    errors: int | None = None
    rate: float | None = None  # requests (or operations) per second
    cpu_pct: float | None = None  # camsvc, % of one core
    rss_mb: float | None = None  # camsvc
    ok: bool | None = None
    note: str = ""

    def band(self) -> Band | None:
        """The spec row this figure is judged against."""
        return RESPONSE.get(self.spec) or THROUGHPUT.get(self.spec) or RESOURCES.get(self.spec)

    def verdict(self) -> str:
        """The spec column the figure falls in, or pass/MISS for the issue's marks."""
        band = self.band()
        if band is not None:
            v = judge(band, self.value)
            if v != "n/a" and self.errors:
                return f"{v}, {self.errors} errors"
            return v
        if self.ok is None:
            return "—"
        return "pass" if self.ok else "**MISS**"


class Scenario(msgspec.Struct, kw_only=True):
    """One scenario's rows, its series for the plots and its notes."""

    name: str
    title: str
    rows: list[Row]
    wall_s: float
    notes: list[str] = msgspec.field(default_factory=list)
    # name -> points, e.g. "connections" -> [[n, p50, p95, p99, rss], ...]
    series: dict[str, list[list[float]]] = msgspec.field(default_factory=dict)
    artillery: dict[str, str] = msgspec.field(default_factory=dict)  # check -> summary


class Report(msgspec.Struct, kw_only=True):
    """Every scenario measured so far on this day (one `make bench-<name>` replaces its own)."""

    date: str
    commit: str
    machine: Machine
    scenarios: dict[str, Scenario]


def _num(v: float | None, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def _bounds(row: Row) -> list[str]:
    band = row.band()
    if band is None:
        return [row.goal or "—", "—", "—"]
    sign = {"response": "<", "floor": "≥", "ceiling": "<"}[band.kind]
    crit = {"response": ">", "floor": "<", "ceiling": ">"}[band.kind]
    return [
        f"{sign} {_num(band.target, 0)}",
        f"{sign} {_num(band.acceptable, 0)}",
        f"{crit} {_num(band.critical, 0)}",
    ]


def _table(rows: list[Row]) -> str:
    header = [
        "Figure",
        "Target",
        "Acceptable / warning",
        "Critical",
        "Measured",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "Errors",
        "Rate /s",
        "CPU %",
        "RSS MiB",
        "Verdict",
    ]
    out = []
    for r in rows:
        lat = r.latency
        errors = "—" if r.errors is None else str(r.errors)
        if r.errors is not None and r.requests:
            errors += f" ({100 * r.errors / r.requests:.2g} %)" if r.errors else " (0 %)"
        name = r.name + (f" ({r.note})" if r.note else "")
        measured = f"{_num(r.value)} {r.unit}".strip() if r.value is not None else "—"
        out.append(
            [name, *_bounds(r), measured]
            + (
                [_num(lat.p50_ms, 2), _num(lat.p95_ms, 2), _num(lat.p99_ms, 2)]
                if lat
                else ["—"] * 3
            )
            + [errors, _num(r.rate), _num(r.cpu_pct), _num(r.rss_mb), r.verdict()]
        )
    return markdown_table(header, out)


def _summary(report: Report) -> str:
    """The spec's tables with the figure that answers each row (the first scenario's)."""
    found: dict[str, tuple[Row, str]] = {}
    marks: list[tuple[Row, str]] = []
    for sc in report.scenarios.values():
        for r in sc.rows:
            if r.spec and r.spec not in found:
                found[r.spec] = (r, sc.name)
            if r.goal:
                marks.append((r, sc.name))
    lines = []
    for title, table in (
        ("Response times", RESPONSE),
        ("Throughput", THROUGHPUT),
        ("Resources", RESOURCES),
    ):
        rows = []
        for name, band in table.items():
            got = found.get(name)
            measured = "not measured"
            verdict = "—"
            where = "—"
            if got is not None:
                r, where = got
                measured = f"{_num(r.value)} {band.unit}" + (
                    " p95" if band.kind == "response" else ""
                )
                verdict = r.verdict()
            rows.append([name, *_bounds(Row(name=name, spec=name)), measured, where, verdict])
        lines += [
            f"### {title}",
            "",
            markdown_table(
                [
                    "Spec row",
                    "Target",
                    "Acceptable / warning",
                    "Critical",
                    "Measured",
                    "Scenario",
                    "Verdict",
                ],
                rows,
            ),
            "",
        ]
    if marks:
        lines += [
            "### The issue's marks",
            "",
            markdown_table(
                ["Mark", "Measured", "Scenario", "Verdict"],
                [
                    [f"{r.name}: {r.goal}", f"{_num(r.value)} {r.unit}".strip(), where, r.verdict()]
                    for r, where in marks
                ],
            ),
            "",
        ]
    return "\n".join(lines)


def render(report: Report, order: list[str]) -> str:
    """The RESULTS.md section: the summary, then each scenario's table and notes."""
    m = report.machine
    parts = [
        f"Run {report.date} at commit `{report.commit}`; {m.nproc} CPUs ({m.cpu_model}), "
        f"{m.ram_gib} GiB, kernel {m.kernel}, Python {m.python}; load average before "
        f"{m.loadavg_before}. `make bench` runs every scenario below except the soak "
        "(`make bench-soak`); `make bench-<name>` runs one and replaces its rows here. "
        "Response times are judged on the p95; every figure is from the service on "
        "loopback, the load from other processes (`benchmarks/loadgen.py`, "
        "`benchmarks/wsclient.py`, Artillery).",
        "",
        _summary(report),
    ]
    for name in order:
        sc = report.scenarios.get(name)
        if sc is None:
            continue
        parts += [
            f"### {sc.title} (`make bench-{sc.name}`, {sc.wall_s:.0f} s)",
            "",
            _table(sc.rows),
        ]
        if sc.artillery:
            parts += ["", "Artillery (independent check, same service):", ""]
            parts += [f"- {k}: {v}" for k, v in sc.artillery.items()]
        if sc.notes:
            parts += [""] + [f"- {n}" for n in sc.notes]
        parts.append("")
    return "\n".join(parts)
