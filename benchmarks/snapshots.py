"""`make bench-snapshots`: snapshots and the media catalogue through the full API (issue 6).

Every figure is WebSocket client → `take_snapshot` → JPEG file on disk (written, renamed and
its directory fsynced by the service) → reply. `camsvc serve` runs as a subprocess on
loopback with the emulated V4L2 device preloaded and 4 emulated cameras; the clients run in
this process (`benchmarks.wsclient`, one epoll loop). Scenarios:

- latency, warm and cold, one client, one request at a time: native 1920x1080 (the mode the
  service opens: MJPEG 1080p60, so a warm snapshot is a copy of the newest frame after the
  request) and "640x480" requested with `max_width=640, max_height=480` (the service scales
  the 1080p frame down; the camera mode cannot be chosen through the API). Warm: the pump
  is running (requests back to back, a random 0-20 ms pause between them so they land at
  every phase of the frame clock). Cold: `snapshots.warm_keepalive_s` is set to 1 s and each
  cold request goes to a camera idle for longer than that, so the pump has stopped and the
  request opens and starts the device;
- sustained rate with 4 cameras at once: one connection per camera, one request at a time
  (and, for the capacity, 4 in flight per camera); snapshots per minute per camera, errors;
- the CPU stress: 100 connections, each taking snapshots in a loop (round-robin over the 4
  cameras): throughput, errors, server CPU and RSS;
- the catalogue with 100,000 snapshots and 100,000 recording files, created before a
  fresh server starts (its start-up reconcile catalogues them): `list_snapshots` and
  `list_recordings` p50/p99, first page, a deep offset and a device filter.

Each scenario runs `--reps` times (medians of the per-repetition figures). A target that is
missed gets a py-spy profile of the server under the same load. Writes the section
"Snapshots (issue 6)" of `benchmarks/RESULTS.md` (others kept) and
`benchmarks/results/snapshots-<date>.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from benchmarks.wsclient import (
    Check,
    Engine,
    LoadRun,
    Machine,
    ProcUsage,
    Profile,
    Sampler,
    Server,
    WsSocket,
    apply_nice,
    git_commit,
    machine,
    markdown_table,
    median,
    open_clients,
    pyspy,
    raise_nofile_limit,
    report_tail,
    request,
    rss_mb,
    stats_ms,
    update_results_md,
    wait_quiet,
)
from camsvc.emulator import EmulatedCamera

__all__ = ["LatencySeries", "Report", "main"]

ROOT = Path(__file__).resolve().parent.parent
SECTION = "Snapshots (issue 6)"
CAMERAS = 4  # cameras under load (sustained, stress)
COLD_CAMERAS = 16  # nodes plugged: cold first-use samples need a fresh camera each
KEEPALIVE_S = 0.3  # snapshots.warm_keepalive_s of the cold-start servers
QUIET_S = 5.0
SIZES: dict[str, dict[str, int]] = {
    "1920x1080 (native)": {},
    "640x480 (max_width/max_height)": {"max_width": 640, "max_height": 480},
}


class LatencySeries(msgspec.Struct, kw_only=True):
    """take_snapshot latency at one size and temperature, over every repetition."""

    size: str
    temperature: str  # warm | cold
    samples_per_rep: int
    reps: int
    p50_ms: float  # medians over repetitions of the per-repetition percentiles
    p99_ms: float
    max_ms: float
    capture_p50_ms: float  # the service's own `capture_ms`, median over all samples
    width: int
    height: int
    file_kib: float
    errors: int
    other_cpu_pct: float


class RateSummary(msgspec.Struct, kw_only=True):
    """A closed-loop snapshot load (sustained rate or the stress), medians over reps."""

    name: str
    connections: int
    window: int
    reps: int
    seconds: float
    total_per_s: float
    per_camera_per_min: float  # median over reps of the slowest camera's rate
    per_camera_runs: list[float]
    p50_ms: float
    p99_ms: float
    errors: int
    error_samples: list[str]
    server_cpu_pct: float
    server_rss_mb: float
    gen_cpu_pct: float
    other_cpu_pct: float


class ListSeries(msgspec.Struct, kw_only=True):
    """One list call against the 100k-file catalogue."""

    name: str
    params: dict[str, Any]
    samples_per_rep: int
    reps: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    total: int
    returned: int


class Report(msgspec.Struct, kw_only=True):
    """Everything one `make bench-snapshots` measured."""

    date: str
    commit: str
    machine: Machine
    settings: dict[str, str | int | float]
    latency: list[LatencySeries]
    rates: list[RateSummary]
    cold_server_ready_s: float
    restart: Restart | None
    catalogue_files: int
    catalogue_ready_s: float
    catalogue_rss_mb: float
    lists: list[ListSeries]
    runs: list[LoadRun]
    checks: list[Check]
    profiles: list[Profile]
    notes: list[str]


# -- latency -------------------------------------------------------------------------------


def timed_snapshot(ws: WsSocket, params: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
    """One take_snapshot: (client-side ns, result or None on an error)."""
    t0 = time.monotonic_ns()
    try:
        result = ws.call("take_snapshot", params, timeout=30)
    except Exception:
        return time.monotonic_ns() - t0, None
    return time.monotonic_ns() - t0, result


def _series(
    size: str,
    temperature: str,
    per_rep: list[list[int]],
    results: list[dict[str, Any]],
    errors: int,
    usage: ProcUsage,
) -> LatencySeries:
    """One row of the latency table."""
    stats = [s for r in per_rep if (s := stats_ms(r)) is not None]
    pooled = stats_ms([x for r in per_rep for x in r])
    last = results[-1] if results else {}
    series = LatencySeries(
        size=size,
        temperature=temperature,
        samples_per_rep=max((len(r) for r in per_rep), default=0),
        reps=len(per_rep),
        p50_ms=round(median([s.p50_ms for s in stats]), 2),
        p99_ms=round(median([s.p99_ms for s in stats]), 2),
        max_ms=pooled.max_ms if pooled else float("nan"),
        capture_p50_ms=round(median([float(r.get("capture_ms", 0.0)) for r in results]), 2),
        width=int(last.get("width", 0)),
        height=int(last.get("height", 0)),
        file_kib=round(median([int(r.get("file_size", 0)) for r in results]) / 1024, 1)
        if results
        else 0.0,
        errors=errors,
        other_cpu_pct=usage.other_cpu_pct,
    )
    print(
        f"  {size:32} {temperature}: p50 {series.p50_ms} p99 {series.p99_ms} ms "
        f"(capture_ms p50 {series.capture_p50_ms}) {series.width}x{series.height} "
        f"errors {errors} other cpu {usage.other_cpu_pct}%",
        flush=True,
    )
    return series


def warm_latency(ws: WsSocket, server: Server, reps: int, n: int) -> list[LatencySeries]:
    """Warm take_snapshot latency on camera0 (pump running) at each size."""
    out = []
    for size, extra in SIZES.items():
        per_rep: list[list[int]] = []
        results: list[dict[str, Any]] = []
        errors = 0
        sampler = Sampler(server.pid)
        wait_quiet(QUIET_S)
        sampler.start()
        for _ in range(reps):
            for _ in range(3):  # start the pump, settle
                timed_snapshot(ws, {"device": "camera0", **extra})
            samples: list[int] = []
            for _ in range(n):
                time.sleep(random.uniform(0, 0.02))
                ns, res = timed_snapshot(ws, {"device": "camera0", **extra})
                if res is None:
                    errors += 1
                    continue
                samples.append(ns)
                results.append(res)
            per_rep.append(samples)
        out.append(_series(size, "warm", per_rep, results, errors, sampler.stop()))
    return out


def cold_latency(
    tmp: Path, emu: Path, reps: int, n: int, env: dict[str, str]
) -> tuple[list[LatencySeries], float]:
    """Cold take_snapshot latency: the first snapshot of a camera never used since the server
    started (its pump was never started). One fresh server per repetition; the sizes take
    turns over the cameras, one camera per request, each after the previous pump stopped.
    Returns the rows and the server start-up time (median)."""
    per: dict[str, list[list[int]]] = {size: [] for size in SIZES}
    results: dict[str, list[dict[str, Any]]] = {size: [] for size in SIZES}
    errors = dict.fromkeys(SIZES, 0)
    usages: list[ProcUsage] = []
    ready: list[float] = []
    for rep in range(reps):
        work = tmp / f"cold-{rep}"
        work.mkdir()
        server = Server(work, emu, env)
        with server.running():
            ready.append(server.ready_s)
            [ws] = open_clients(1, server.port, server.token())
            sampler = Sampler(server.pid)
            wait_quiet(QUIET_S)
            sampler.start()
            cam = 0
            for size in SIZES:
                per[size].append([])
            for _ in range(n):
                for size, extra in SIZES.items():
                    time.sleep(KEEPALIVE_S + 0.25)  # the previous camera's pump has stopped
                    ns, res = timed_snapshot(ws, {"device": f"camera{cam}", **extra})
                    cam += 1
                    if res is None:
                        errors[size] += 1
                        continue
                    per[size][-1].append(ns)
                    results[size].append(res)
            usages.append(sampler.stop())
            ws.close()
    usage = ProcUsage(
        cpu_pct=round(median([u.cpu_pct for u in usages]), 1),
        rss_mb=max(u.rss_mb for u in usages),
        other_cpu_pct=round(median([u.other_cpu_pct for u in usages]), 1),
    )
    rows = [
        _series(size, "cold (first use)", per[size], results[size], errors[size], usage)
        for size in SIZES
    ]
    return rows, round(median(ready), 2)


class Restart(msgspec.Struct, kw_only=True):
    """Snapshots of one camera, each after its pump stopped (warm keep-alive expired)."""

    cycles: int
    latency_ms: list[float | None]  # None: the request failed
    errors: list[str]


def restart_series(tmp: Path, emu: Path, cycles: int, env: dict[str, str]) -> Restart:
    """The same camera, cold again and again: the pump is restarted by every request."""
    work = tmp / "restart"
    work.mkdir()
    server = Server(work, emu, env)
    lat: list[float | None] = []
    errs: list[str] = []
    with server.running():
        [ws] = open_clients(1, server.port, server.token())
        for _ in range(cycles):
            t0 = time.monotonic_ns()
            try:
                ws.call("take_snapshot", {"device": "camera0"}, timeout=30)
                lat.append(round((time.monotonic_ns() - t0) / 1e6, 1))
            except Exception as exc:
                lat.append(None)
                errs.append(str(exc)[:200])
            time.sleep(KEEPALIVE_S + 0.3)
        ws.close()
    print(f"  restart of the same camera: {lat}", flush=True)
    return Restart(cycles=cycles, latency_ms=lat, errors=errs)


# -- rates ---------------------------------------------------------------------------------


def snapshot_load(
    server: Server,
    connections: int,
    window: int,
    seconds: float,
    label: str,
    profile_to: tuple[Path, list[Profile]] | None = None,
) -> LoadRun:
    """Closed-loop take_snapshot on `connections` connections, connection i on camera i % 4."""
    conns = open_clients(connections, server.port, server.token())
    device = {ws.fileno(): f"camera{i % CAMERAS}" for i, ws in enumerate(conns)}
    make: Callable[[WsSocket, int], bytes] = lambda ws, rid: request(  # noqa: E731
        "take_snapshot", {"device": device[ws.fileno()]}, rid
    )
    engine = Engine(conns)
    try:
        wait_quiet(QUIET_S)
        if profile_to is None:
            return engine.closed_loop(make, window, seconds, 2.0, label, server.pid)
        with pyspy(server.pid, profile_to[0], label, profile_to[1]):
            return engine.closed_loop(make, window, seconds, 2.0, label, server.pid)
    finally:
        engine.close()
        for ws in conns:
            ws.close()


def rate_summary(name: str, runs: list[LoadRun]) -> RateSummary:
    """Medians over the repetitions of one load."""

    def per_cam_min(r: LoadRun) -> float:
        per_cam = [0] * CAMERAS
        for i, n in enumerate(r.per_connection):
            per_cam[i % CAMERAS] += n
        return round(min(per_cam) / r.duration_s * 60, 1) if r.duration_s else 0.0

    usage = [r.server for r in runs if r.server]
    return RateSummary(
        name=name,
        connections=runs[0].connections,
        window=runs[0].window,
        reps=len(runs),
        seconds=round(median([r.duration_s for r in runs]), 1),
        total_per_s=round(median([r.rps for r in runs]), 1),
        per_camera_per_min=round(median([per_cam_min(r) for r in runs]), 1),
        per_camera_runs=[per_cam_min(r) for r in runs],
        p50_ms=round(median([r.latency.p50_ms for r in runs if r.latency]), 2),
        p99_ms=round(median([r.latency.p99_ms for r in runs if r.latency]), 2),
        errors=sum(r.errors for r in runs),
        error_samples=[e for r in runs for e in r.error_samples][:5],
        server_cpu_pct=round(median([u.cpu_pct for u in usage]), 1),
        server_rss_mb=max((u.rss_mb for u in usage), default=0.0),
        gen_cpu_pct=round(median([r.gen_cpu_pct for r in runs]), 1),
        other_cpu_pct=round(median([u.other_cpu_pct for u in usage]), 1),
    )


def _print_run(r: LoadRun) -> None:
    lat = r.latency
    u = r.server
    print(
        f"  {r.label:28} c={r.connections:<4} w={r.window:<2} {r.rps:8.1f}/s "
        f"p50 {lat.p50_ms if lat else '-'} p99 {lat.p99_ms if lat else '-'} ms "
        f"errors {r.errors} srv cpu {u.cpu_pct if u else '-'}% "
        f"rss {u.rss_mb if u else '-'} MiB other {u.other_cpu_pct if u else '-'}%",
        flush=True,
    )
    for e in r.error_samples[:2]:
        print(f"    error: {e}", flush=True)


# -- the catalogue -------------------------------------------------------------------------


def populate(root: Path, kind: str, count: int, ext: str) -> None:
    """`count` small files under `root/cameraN/`, mtimes spread over 30 days."""
    now = time.time()
    per = count // CAMERAS
    for c in range(CAMERAS):
        d = root / f"camera{c}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per):
            t = now - 30 * 86400 + (i * CAMERAS + c) * (30 * 86400 / count)
            stamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.gmtime(t))
            path = d / f"camera{c}_{stamp}_{kind[:1]}{i:06d}{ext}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, b"x" * 64)
            os.close(fd)
            os.utime(path, (t, t))


def list_series(
    ws: WsSocket, name: str, method: str, params: dict[str, Any], reps: int, n: int
) -> ListSeries:
    """`n` sequential calls per repetition."""
    per_rep = []
    total = returned = 0
    for _ in range(reps):
        samples = []
        for _ in range(n):
            t0 = time.monotonic_ns()
            res = ws.call(method, params)
            samples.append(time.monotonic_ns() - t0)
            total = res.get("total", 0)
            returned = len(res.get("files", res.get("recordings", [])))
        per_rep.append(samples)
    stats = [s for r in per_rep if (s := stats_ms(r)) is not None]
    pooled = stats_ms([x for r in per_rep for x in r])
    series = ListSeries(
        name=name,
        params=params,
        samples_per_rep=n,
        reps=reps,
        p50_ms=round(median([s.p50_ms for s in stats]), 2),
        p99_ms=round(median([s.p99_ms for s in stats]), 2),
        max_ms=pooled.max_ms if pooled else float("nan"),
        total=total,
        returned=returned,
    )
    print(
        f"  {name:44} p50 {series.p50_ms} p99 {series.p99_ms} ms "
        f"(total {total}, returned {returned})",
        flush=True,
    )
    return series


def wait_catalogued(ws: WsSocket, method: str, want: int, limit_s: float) -> int:
    """Poll until the catalogue holds `want` rows of a kind (or `limit_s`); returns the total."""
    deadline = time.monotonic() + limit_s
    total = 0
    while time.monotonic() < deadline:
        total = ws.call(method, {"limit": 1}).get("total", 0)
        if total >= want:
            break
        time.sleep(0.5)
    return total


# -- report --------------------------------------------------------------------------------


def checks(
    lat: list[LatencySeries],
    rates: list[RateSummary],
    lists: list[ListSeries],
    restart: Restart | None,
) -> list[Check]:
    """The issue's figures against its targets (None: reported, no target)."""
    out = []
    for s in lat:
        out.append(
            Check(
                name=f"take_snapshot {s.temperature}, {s.size} → {s.width}x{s.height} file",
                target="report p50/p99",
                measured=f"p50 {s.p50_ms} ms, p99 {s.p99_ms} ms"
                + (f", {s.errors} errors" if s.errors else ""),
                ok=None if s.errors == 0 else False,
            )
        )
    if restart is not None:
        done = [x for x in restart.latency_ms if x is not None]
        out.append(
            Check(
                name="take_snapshot cold again: one camera, each request after its pump stopped",
                target="0 errors, no growth (each ≤ 1 s)",
                measured=", ".join("error" if x is None else f"{x:g}" for x in restart.latency_ms)
                + " ms",
                ok=len(done) == restart.cycles and max(done, default=0) <= 1000,
            )
        )
    for r in rates:
        if r.name.startswith("sustained"):
            out.append(
                Check(
                    name=f"{r.name}: snapshots/min per camera, 4 cameras, zero errors",
                    target="≥ 1,200/min (spec: 60/min), 0 errors",
                    measured=f"{r.per_camera_per_min:,.0f}/min (slowest camera), {r.errors} errors",
                    ok=r.per_camera_per_min >= 1200 and r.errors == 0,
                )
            )
        else:
            out.append(
                Check(
                    name=f"{r.name}: errors, throughput, server CPU/RSS",
                    target="0 errors",
                    measured=f"{r.errors} errors, {r.total_per_s:,.0f} snapshots/s, "
                    f"CPU {r.server_cpu_pct}%, RSS {r.server_rss_mb} MiB",
                    ok=r.errors == 0,
                )
            )
    for s in lists:
        out.append(
            Check(
                name=f"{s.name}, {s.total:,} catalogued",
                target="≤ 20 ms p99",
                measured=f"p50 {s.p50_ms} ms, p99 {s.p99_ms} ms",
                ok=s.p99_ms <= 20,
            )
        )
    return out


def _verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("PASS" if ok else "**MISS**")


def render(r: Report) -> str:
    """The markdown section."""
    m = r.machine
    parts = [
        f"`make bench-snapshots` — {r.date}, commit `{r.commit}`, {m.nproc} CPUs "
        f"({m.cpu_model}), {m.ram_gib} GiB RAM, kernel {m.kernel}, Python {m.python}; load "
        f"average before {m.loadavg_before} (other sessions share the machine: *other CPU* "
        "is the % of one core every other process used during the run). Server: `camsvc serve` "
        f"subprocess on 127.0.0.1, emulated V4L2 device (LD_PRELOAD), {CAMERAS} emulated "
        "cameras in MJPEG 1920x1080 @ 60 fps (the mode the service picks); clients: a separate "
        "process. Every figure is WebSocket request → JPEG file written on disk → reply. "
        "Medians over repetitions of the per-repetition p50/p99.",
        "",
        markdown_table(
            ["scenario", "target", "measured", "verdict"],
            [[c.name, c.target, c.measured, _verdict(c.ok)] for c in r.checks],
        ),
        "",
        "### take_snapshot latency (one client, one request at a time)",
        "",
        markdown_table(
            [
                "size requested",
                "file",
                "pump",
                "samples x reps",
                "p50 ms",
                "p99 ms",
                "max ms",
                "service capture_ms p50",
                "file KiB",
                "errors",
                "other CPU %",
            ],
            [
                [
                    s.size,
                    f"{s.width}x{s.height}",
                    s.temperature,
                    f"{s.samples_per_rep} x {s.reps}",
                    str(s.p50_ms),
                    str(s.p99_ms),
                    str(s.max_ms),
                    str(s.capture_p50_ms),
                    str(s.file_kib),
                    str(s.errors),
                    str(s.other_cpu_pct),
                ]
                for s in r.latency
            ],
        ),
        "",
        "*warm*: camera0 with its pump running (the default 30 s keep-alive), requests back "
        "to back with a random 0-20 ms pause. *cold (first use)*: the first snapshot of a "
        "camera whose pump never ran since the server started (a fresh server per repetition, "
        f"each request on another camera; start-up took {r.cold_server_ready_s} s).",
        "",
        "### Sustained rate and the CPU stress",
        "",
        markdown_table(
            [
                "load",
                "connections x window",
                "reps x s",
                "snapshots/s",
                "per camera /min (slowest; runs)",
                "p50 ms",
                "p99 ms",
                "errors",
                "server CPU %",
                "server RSS MiB",
                "client CPU %",
                "other CPU %",
            ],
            [
                [
                    x.name,
                    f"{x.connections} x {x.window}",
                    f"{x.reps} x {x.seconds}",
                    f"{x.total_per_s:,.1f}",
                    f"{x.per_camera_per_min:,.0f} ("
                    + ", ".join(f"{v:,.0f}" for v in x.per_camera_runs)
                    + ")",
                    str(x.p50_ms),
                    str(x.p99_ms),
                    str(x.errors),
                    str(x.server_cpu_pct),
                    str(x.server_rss_mb),
                    str(x.gen_cpu_pct),
                    str(x.other_cpu_pct),
                ]
                for x in r.rates
            ],
        ),
        "",
        f"### Catalogue: {r.catalogue_files:,} snapshots + {r.catalogue_files:,} recordings",
        "",
        f"Files created before a fresh server started; it was ready (and the start-up "
        f"reconcile had catalogued every file) {r.catalogue_ready_s:.1f} s after launch; RSS "
        f"then {r.catalogue_rss_mb} MiB. One client, sequential calls.",
        "",
        markdown_table(
            ["call", "params", "calls x reps", "p50 ms", "p99 ms", "max ms", "total", "returned"],
            [
                [
                    s.name,
                    f"`{msgspec.json.encode(s.params).decode()}`",
                    f"{s.samples_per_rep} x {s.reps}",
                    str(s.p50_ms),
                    str(s.p99_ms),
                    str(s.max_ms),
                    f"{s.total:,}",
                    str(s.returned),
                ]
                for s in r.lists
            ],
        ),
    ]
    parts += report_tail(r.profiles, r.settings, r.notes)
    return "\n".join(parts) + "\n"


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.snapshots", description=__doc__)
    ap.add_argument("--reps", type=int, default=3, help="repetitions per scenario (≥ 3)")
    ap.add_argument("--warm", type=int, default=30, help="warm samples per repetition")
    ap.add_argument("--cold", type=int, default=8, help="cold samples per size and repetition")
    ap.add_argument("--restarts", type=int, default=5, help="cold re-starts of one camera")
    ap.add_argument("--sustain-seconds", type=float, default=10.0)
    ap.add_argument("--stress-seconds", type=float, default=12.0)
    ap.add_argument("--stress-clients", type=int, default=100)
    ap.add_argument("--files", type=int, default=100_000, help="catalogued files per kind")
    ap.add_argument("--list-calls", type=int, default=100, help="list calls per repetition")
    ap.add_argument("--only", default="latency,sustained,stress,catalogue")
    ap.add_argument("--profile", choices=["auto", "always", "never"], default="auto")
    ap.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness for this process, the server and this session's autogroup (negative "
        "needs root): weighs the figures against other sessions sharing the machine",
    )
    ap.add_argument("--no-write", action="store_true", help="leave RESULTS.md and JSON alone")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run every scenario, print the table, write RESULTS.md and the JSON."""
    args = parse_args(argv)
    only = set(args.only.split(","))
    raise_nofile_limit()
    niceness = apply_nice(args.nice)
    mach = machine()
    tmp = Path(tempfile.mkdtemp(prefix="camsvc-bench-snapshots-"))
    emu = tmp / "dev"
    emu.mkdir()
    for i in range(COLD_CAMERAS):
        EmulatedCamera(emu, i).plug()
    latency: list[LatencySeries] = []
    rates: list[RateSummary] = []
    runs: list[LoadRun] = []
    lists: list[ListSeries] = []
    profiles: list[Profile] = []
    notes: list[str] = []
    cat_ready = cat_rss = 0.0
    t_begin = time.monotonic()
    keep = {"CAMERA_SERVICE_SNAPSHOTS_WARM_KEEPALIVE_S": str(KEEPALIVE_S)}

    def want_profile(missed: bool) -> bool:
        return args.profile == "always" or (args.profile == "auto" and missed)

    restart: Restart | None = None
    cold_ready = 0.0
    if only & {"latency", "sustained", "stress"}:
        work = tmp / "live"
        work.mkdir()
        server = Server(work, emu)  # the default warm keep-alive (30 s): pumps never stop here
        with server.running():
            print(f"server ready in {server.ready_s:.2f} s (pid {server.pid})", flush=True)
            if "latency" in only:
                print("take_snapshot latency, warm", flush=True)
                [ws] = open_clients(1, server.port, server.token())
                latency += warm_latency(ws, server, args.reps, args.warm)
                ws.close()
            if "sustained" in only:
                print("sustained rate, 4 cameras", flush=True)
                for window, name in ((1, "sustained, 1 in flight per camera"),
                                     (4, "sustained, 4 in flight per camera")):  # fmt: skip
                    reps = args.reps if window == 1 else 1
                    group = []
                    for _ in range(reps):
                        r = snapshot_load(server, CAMERAS, window, args.sustain_seconds, name)
                        _print_run(r)
                        group.append(r)
                    runs += group
                    rates.append(rate_summary(name, group))
                if want_profile(rates[0].per_camera_per_min < 1200):
                    r = snapshot_load(
                        server, CAMERAS, 1, 10.0, "profiled: sustained, 1 in flight per camera",
                        (tmp / "sustained.raw", profiles),
                    )  # fmt: skip
                    _print_run(r)
            if "stress" in only:
                name = f"CPU stress, {args.stress_clients} clients in a loop"
                print(name, flush=True)
                group = []
                for _ in range(args.reps):
                    r = snapshot_load(server, args.stress_clients, 1, args.stress_seconds, name)
                    _print_run(r)
                    group.append(r)
                runs += group
                rates.append(rate_summary(name, group))
                if args.profile != "never":
                    r = snapshot_load(
                        server, args.stress_clients, 1, 10.0, f"profiled: {name}",
                        (tmp / "stress.raw", profiles),
                    )  # fmt: skip
                    _print_run(r)
        print(f"server log: {server.log}", flush=True)
        if "latency" in only:
            print("take_snapshot latency, cold (first use of a camera, fresh servers)", flush=True)
            rows, cold_ready = cold_latency(tmp, emu, args.reps, args.cold, keep)
            latency += rows
            print("cold again: the same camera after its pump stopped", flush=True)
            restart = restart_series(tmp, emu, args.restarts, keep)

    if "catalogue" in only:
        print(
            f"catalogue: creating {args.files:,} snapshots + {args.files:,} recordings", flush=True
        )
        cat = tmp / "catalogue"
        cat.mkdir()
        t0 = time.monotonic()
        populate(cat / "snapshots", "snapshot", args.files, ".jpg")
        populate(cat / "recordings", "recording", args.files, ".mp4")
        print(f"  created in {time.monotonic() - t0:.1f} s", flush=True)
        server = Server(cat, emu)
        with server.running():
            [ws] = open_clients(1, server.port, server.token())
            t_launch = server.ready_s
            t1 = time.monotonic()
            n_s = wait_catalogued(ws, "list_snapshots", args.files, 180)
            n_r = wait_catalogued(ws, "list_recordings", args.files, 180)
            cat_ready = round(t_launch + time.monotonic() - t1, 2)
            cat_rss = rss_mb(server.pid)
            print(f"  catalogued {n_s} + {n_r} in {cat_ready} s, rss {cat_rss} MiB", flush=True)
            deep = max(0, args.files - 50)
            wait_quiet(QUIET_S)
            for name, method, params in (
                ("list_snapshots first page", "list_snapshots", {"limit": 50, "offset": 0}),
                ("list_snapshots deep offset", "list_snapshots", {"limit": 50, "offset": deep}),
                (
                    "list_snapshots one device",
                    "list_snapshots",
                    {"limit": 50, "offset": 0, "device": "camera1"},
                ),
                ("list_recordings first page", "list_recordings", {"limit": 50, "offset": 0}),
                ("list_recordings deep offset", "list_recordings", {"limit": 50, "offset": deep}),
            ):
                lists.append(list_series(ws, name, method, params, args.reps, args.list_calls))
            missed = [s for s in lists if s.p99_ms > 20]
            if want_profile(bool(missed)):
                target = missed[0] if missed else lists[0]
                method = "list_recordings" if "recordings" in target.name else "list_snapshots"
                with pyspy(server.pid, tmp / "list.raw", f"{target.name} (sequential)", profiles):
                    for _ in range(300):
                        ws.call(method, target.params)
            name = (
                f"sustained with {args.files:,}+{args.files:,} catalogued, 1 in flight per camera"
            )
            print(name, flush=True)
            group = []
            for _ in range(args.reps):
                r = snapshot_load(server, CAMERAS, 1, 8.0, name)
                _print_run(r)
                group.append(r)
            runs += group
            rates.append(rate_summary(name, group))
            if want_profile(rates[-1].per_camera_per_min < 1200):
                r = snapshot_load(
                    server, CAMERAS, 1, 8.0, f"profiled: {name}", (tmp / "big.raw", profiles)
                )
                _print_run(r)
            ws.close()
        print(f"server log: {server.log}", flush=True)

    elapsed = time.monotonic() - t_begin
    notes += [
        "The cameras' mode cannot be chosen through the API: the service opens MJPEG "
        "1920x1080 @ 60 fps. The 640x480 rows ask for `max_width=640, max_height=480` and "
        "get the service's downscale of the 1080p frame (the file's real size is in the "
        "table); YUYV/NV12 capture-level figures are in the Capture section "
        "(`make bench-capture`).",
        "Cold is measured as the first use of a camera on a fresh server (its pump never "
        "started; `snapshots.warm_keepalive_s` set to "
        f"{KEEPALIVE_S} s so the previous camera's pump stops before the next request). A "
        "camera made cold again by the keep-alive expiring is measured separately (*cold "
        "again*): there the service waits for the new stream's frame sequence to pass the "
        "last sequence of the previous stream (see the report), so the sustained and stress "
        "loads run on a server with the default 30 s keep-alive, where pumps never stop.",
        "The stress and sustained loads each use fresh authenticated connections; connection "
        "i takes snapshots of camera i % 4. Latency is request sent → reply read.",
        "The list calls run on an idle catalogue (no file changed since start-up). The "
        "sustained load on the 100k catalogue comes after them: each snapshot the service "
        "writes raises inotify events on the media folder, and each burst of events (folded "
        "every 0.2 s) runs a full reconcile of both trees in a worker thread (see its profile).",
        f"The machine has {mach.nproc} CPUs shared by the server, the client process and "
        "other sessions (see *other CPU*).",
        f"Whole benchmark: {elapsed:.0f} s.",
    ]
    report = Report(
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        commit=git_commit(),
        machine=mach,
        settings={
            "niceness": niceness,
            "reps": args.reps,
            "warm": args.warm,
            "cold": args.cold,
            "sustain_s": args.sustain_seconds,
            "stress_s": args.stress_seconds,
            "stress_clients": args.stress_clients,
            "files": args.files,
            "list_calls": args.list_calls,
            "keepalive_s": KEEPALIVE_S,
        },
        latency=latency,
        rates=rates,
        cold_server_ready_s=cold_ready,
        restart=restart,
        catalogue_files=args.files if "catalogue" in only else 0,
        catalogue_ready_s=cat_ready,
        catalogue_rss_mb=cat_rss,
        lists=lists,
        runs=runs,
        checks=checks(latency, rates, lists, restart),
        profiles=profiles,
        notes=notes,
    )
    text = render(report)
    print()
    print(text)
    if not args.no_write:
        out_dir = ROOT / "benchmarks" / "results"
        out_dir.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
        (out_dir / f"snapshots-{stamp}.json").write_bytes(
            msgspec.json.format(msgspec.json.encode(report))
        )
        update_results_md(ROOT / "benchmarks" / "RESULTS.md", text, SECTION)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
