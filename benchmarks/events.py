"""`make bench-events`: hot-plug detection, notification fan-out and `get_camera_list` (issue 5).

Starts `camsvc serve` as a subprocess on loopback with the emulated V4L2 device preloaded and
16 emulated cameras (`video0`..`video15`) in a private device directory, then, from this
process (clients in `benchmarks.wsclient`, one epoll loop):

- hot-plug detection: one client subscribed to `camera.connected`/`camera.disconnected`; a
  node (`video40`) is created and later deleted, `--cycles` times per repetition; latency is
  the node's creation (deletion), timed here just before the file system call, to the arrival
  of the topic event and of `camera_status_update`;
- fan-out: the same plug/unplug cycle with 100 and then 1,000 subscribed clients; "event →
  last client" is node creation to the arrival at the last of them (the path includes the
  inotify wake-up and the probe of the device); "first → last" is the spread between the
  first and last client, i.e. the fan-out itself. The unplug edge (`camera.disconnected`)
  involves no probe. Next to each client count, the floor of this machine at that moment:
  plain `write(2)` of a message of the same size to as many loopback sockets
  (`benchmarks.writefloor`);
- `get_camera_list` with 16 cameras over 100 authenticated connections, closed loop with a
  pipelined window per connection: requests/s and latency.

Every scenario is repeated `--reps` times (medians of the per-repetition figures reported).
Server CPU (% of one core) and RSS come from psutil on the server's pid. Where a target is
missed, the server is sampled with py-spy under the same load and the hot spots are listed.
Writes the section "Events (issue 5)" of `benchmarks/RESULTS.md` (other sections are kept) and
`benchmarks/results/events-<date>.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from benchmarks.writefloor import WriteFloor
from benchmarks.writefloor import measure as measure_floor
from benchmarks.wsclient import (
    Check,
    Engine,
    LoadRun,
    Machine,
    ProcUsage,
    Profile,
    Server,
    Stats,
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
    stats_ms,
    update_results_md,
    wait_quiet,
)
from camsvc.emulator import EmulatedCamera

__all__ = ["EdgeSeries", "Report", "main"]

ROOT = Path(__file__).resolve().parent.parent
SECTION = "Events (issue 5)"
TOPICS = ["camera.connected", "camera.disconnected"]
PLUG_INDEX = 40
# Size of a camera.connected event as the service sends it (for the write(2) floor).
EVENT_BYTES = 260
CAMERAS = 16
QUIET_S = 5.0  # at most this long to wait for other work on the machine to calm down

Matcher = Callable[[bytes], bool]


def _matchers(edge: str) -> dict[str, Matcher]:
    """The two notifications of one edge: the topic event and `camera_status_update`."""
    if edge == "plug":
        topic, status = b'"topic":"camera.connected"', b'"status":"CONNECTED"'
    else:
        topic, status = b'"topic":"camera.disconnected"', b'"status":"DISCONNECTED"'
    return {
        "event": lambda raw: topic in raw,
        "status": lambda raw: b'"method":"camera_status_update"' in raw and status in raw,
    }


class EdgeSeries(msgspec.Struct, kw_only=True):
    """One edge (plug or unplug) at one client count, over every repetition."""

    edge: str  # plug | unplug
    clients: int
    cycles: int  # per repetition
    reps: int
    missing: int  # notifications that never arrived (within the timeout)
    # medians over repetitions of the per-repetition p50 / p99
    event_last_p50_ms: float
    event_last_p99_ms: float
    status_last_p50_ms: float
    status_last_p99_ms: float
    spread_p50_ms: float  # first → last client (topic event)
    spread_p99_ms: float
    pooled_event_last: Stats | None  # all samples of all repetitions together
    per_rep_event_last: list[Stats]
    server: ProcUsage | None = None


class ThroughputSummary(msgspec.Struct, kw_only=True):
    """`get_camera_list` closed loop at one window, medians over repetitions."""

    connections: int
    window: int
    reps: int
    rps: float
    rps_runs: list[float]
    p50_ms: float
    p99_ms: float
    server_cpu_pct: float
    server_rss_mb: float
    gen_cpu_pct: float
    other_cpu_pct: float  # every other process on the machine (other sessions)
    per_core_rps: float  # req/s per core of server CPU used: capacity, less moved by contention
    errors: int


class Report(msgspec.Struct, kw_only=True):
    """Everything one `make bench-events` measured."""

    date: str
    commit: str
    machine: Machine
    settings: dict[str, str | int | float]
    server_ready_s: float
    server_idle_rss_mb: float
    edges: list[EdgeSeries]
    floors: list[WriteFloor]
    throughput: list[ThroughputSummary]
    runs: list[LoadRun]
    checks: list[Check]
    profiles: list[Profile]
    notes: list[str]


# -- scenarios -----------------------------------------------------------------------------


def plug_cycles(
    engine: Engine,
    cam: EmulatedCamera,
    conns: list[WsSocket],
    cycles: int,
    gap_s: float,
    timeout_s: float = 5.0,
) -> dict[str, dict[str, list[int]]]:
    """`cycles` plug/unplug cycles; edge -> measure -> samples (ns).

    Measures: `event_last`, `event_first`, `status_last`, `spread` (event first → last),
    `missing` (count of notifications that never came, as one sample per cycle).
    """
    out: dict[str, dict[str, list[int]]] = {}
    for _ in range(cycles):
        for edge in ("plug", "unplug"):
            res = out.setdefault(edge, {})
            t0 = time.monotonic_ns()
            if edge == "plug":
                cam.plug()
            else:
                cam.unplug()
            got = engine.wait_all(_matchers(edge), timeout_s, conns)
            ev, st = got["event"], got["status"]
            res.setdefault("missing", []).append(2 * len(conns) - len(ev) - len(st))
            if ev:
                res.setdefault("event_last", []).append(max(ev.values()) - t0)
                res.setdefault("event_first", []).append(min(ev.values()) - t0)
                res.setdefault("spread", []).append(max(ev.values()) - min(ev.values()))
            if st:
                res.setdefault("status_last", []).append(max(st.values()) - t0)
            engine.drain(gap_s)
    return out


def edge_series(
    runs: list[dict[str, dict[str, list[int]]]], clients: int, cycles: int
) -> list[EdgeSeries]:
    """Summaries per edge over the repetitions."""
    out = []
    for edge in ("plug", "unplug"):
        per = [r[edge] for r in runs]

        def med(measure: str, q: str, per: list[dict[str, list[int]]] = per) -> float:
            vals = [getattr(stats_ms(p.get(measure, [])), q, float("nan")) for p in per]
            return round(median([v for v in vals if v == v]), 3)

        pooled = [x for p in per for x in p.get("event_last", [])]
        out.append(
            EdgeSeries(
                edge=edge,
                clients=clients,
                cycles=cycles,
                reps=len(runs),
                missing=sum(sum(p.get("missing", [])) for p in per),
                event_last_p50_ms=med("event_last", "p50_ms"),
                event_last_p99_ms=med("event_last", "p99_ms"),
                status_last_p50_ms=med("status_last", "p50_ms"),
                status_last_p99_ms=med("status_last", "p99_ms"),
                spread_p50_ms=med("spread", "p50_ms"),
                spread_p99_ms=med("spread", "p99_ms"),
                pooled_event_last=stats_ms(pooled),
                per_rep_event_last=[
                    s for p in per if (s := stats_ms(p.get("event_last", []))) is not None
                ],
            )
        )
    return out


def measure_edges(
    server: Server,
    engine: Engine,
    cam: EmulatedCamera,
    conns: list[WsSocket],
    reps: int,
    cycles: int,
    gap_s: float,
) -> list[EdgeSeries]:
    """`reps` repetitions of `cycles` plug/unplug cycles with the server's CPU sampled."""
    from benchmarks.wsclient import Sampler

    sampler = Sampler(server.pid)
    runs = []
    wait_quiet(QUIET_S)
    sampler.start()
    for rep in range(reps):
        runs.append(plug_cycles(engine, cam, conns, cycles, gap_s))
        s = stats_ms(runs[-1]["plug"].get("event_last", []))
        print(
            f"  clients={len(conns):<5} rep {rep + 1}: plug event→last "
            f"p50 {s.p50_ms if s else '-'} p99 {s.p99_ms if s else '-'} ms",
            flush=True,
        )
    usage = sampler.stop()
    series = edge_series(runs, len(conns), cycles)
    for s in series:
        s.server = usage
    return series


def camera_list_load(
    server: Server, connections: int, window: int, seconds: float, label: str
) -> LoadRun:
    """One closed-loop `get_camera_list` run on fresh authenticated connections."""
    conns = open_clients(connections, server.port, server.token())
    engine = Engine(conns)
    wait_quiet(QUIET_S)
    try:
        return engine.closed_loop(
            lambda ws, rid: request("get_camera_list", None, rid),
            window,
            seconds,
            warmup_s=2.0,
            label=label,
            server_pid=server.pid,
        )
    finally:
        engine.close()
        for ws in conns:
            ws.close()


def summarise_throughput(runs: list[LoadRun]) -> list[ThroughputSummary]:
    """Medians per (connections, window)."""
    groups: dict[tuple[int, int], list[LoadRun]] = {}
    for r in runs:
        groups.setdefault((r.connections, r.window), []).append(r)
    out = []
    for (conns, window), rs in sorted(groups.items()):
        out.append(
            ThroughputSummary(
                connections=conns,
                window=window,
                reps=len(rs),
                rps=round(median([r.rps for r in rs]), 1),
                rps_runs=[r.rps for r in rs],
                p50_ms=round(median([r.latency.p50_ms for r in rs if r.latency]), 3),
                p99_ms=round(median([r.latency.p99_ms for r in rs if r.latency]), 3),
                server_cpu_pct=round(median([r.server.cpu_pct for r in rs if r.server]), 1),
                server_rss_mb=max(r.server.rss_mb for r in rs if r.server),
                gen_cpu_pct=round(median([r.gen_cpu_pct for r in rs]), 1),
                other_cpu_pct=round(median([r.server.other_cpu_pct for r in rs if r.server]), 1),
                per_core_rps=round(
                    median(
                        [
                            100 * r.rps / r.server.cpu_pct
                            for r in rs
                            if r.server and r.server.cpu_pct
                        ]
                    ),
                    0,
                ),
                errors=sum(r.errors for r in rs),
            )
        )
    return out


# -- report --------------------------------------------------------------------------------


def _find(edges: list[EdgeSeries], edge: str, clients: int) -> EdgeSeries | None:
    return next((e for e in edges if e.edge == edge and e.clients == clients), None)


def checks(
    edges: list[EdgeSeries],
    floors: list[WriteFloor],
    tput: list[ThroughputSummary],
    window: int,
) -> list[Check]:
    """The issue's figures against its targets."""
    out = []
    hp = _find(edges, "plug", 1)
    if hp:
        out.append(
            Check(
                name="hot-plug detection, node created → camera.connected (1 client)",
                target="≤ 50 ms p99",
                measured=f"p50 {hp.event_last_p50_ms} ms, p99 {hp.event_last_p99_ms} ms",
                ok=hp.event_last_p99_ms <= 50 and hp.missing == 0,
            )
        )
        out.append(
            Check(
                name="hot-plug detection, node created → camera_status_update (1 client)",
                target="≤ 50 ms p99",
                measured=f"p50 {hp.status_last_p50_ms} ms, p99 {hp.status_last_p99_ms} ms",
                ok=hp.status_last_p99_ms <= 50 and hp.missing == 0,
            )
        )
    hu = _find(edges, "unplug", 1)
    if hu:
        out.append(
            Check(
                name="unplug detection, node deleted → camera.disconnected (1 client)",
                target="≤ 50 ms p99",
                measured=f"p50 {hu.event_last_p50_ms} ms, p99 {hu.event_last_p99_ms} ms",
                ok=hu.event_last_p99_ms <= 50 and hu.missing == 0,
            )
        )
    for n in sorted({e.clients for e in edges if e.clients > 1}):
        for edge, what in (("plug", "camera.connected"), ("unplug", "camera.disconnected")):
            e = _find(edges, edge, n)
            if e is None:
                continue
            probe = "incl. device probe" if edge == "plug" else "no probe"
            floor = next((f for f in floors if f.clients == n), None)
            out.append(
                Check(
                    name=f"fan-out to {n} clients, {what}: event → last client ({probe})",
                    target="≤ 20 ms p99",
                    measured=f"p50 {e.event_last_p50_ms} ms, p99 {e.event_last_p99_ms} ms"
                    + (f", {e.missing} missing" if e.missing else "")
                    + (
                        f" (plain write(2) floor: p50 {floor.last_arrival.p50_ms}, "
                        f"p99 {floor.last_arrival.p99_ms} ms)"
                        if floor
                        else ""
                    ),
                    ok=e.event_last_p99_ms <= 20 and e.missing == 0,
                )
            )
    t = next((s for s in tput if s.connections == 100 and s.window == window), None)
    if t:
        out.append(
            Check(
                name=f"get_camera_list, {CAMERAS} cameras, 100 connections (window {window})",
                target="≥ 8,000 req/s",
                measured=f"{t.rps:,.0f} req/s (p50 {t.p50_ms} ms, p99 {t.p99_ms} ms)"
                + (f", {t.errors} errors" if t.errors else ""),
                ok=t.rps >= 8000 and t.errors == 0,
            )
        )
    return out


def _verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("PASS" if ok else "**MISS**")


def render(r: Report) -> str:
    """The markdown section."""
    m = r.machine
    parts = [
        f"`make bench-events` — {r.date}, commit `{r.commit}`, {m.nproc} CPUs ({m.cpu_model}), "
        f"{m.ram_gib} GiB RAM, kernel {m.kernel}, Python {m.python}; load average before "
        f"{m.loadavg_before} (other sessions share the machine: see the *other CPU* columns, "
        "% of one core used by every other process during the run). Server: `camsvc serve` "
        "subprocess on 127.0.0.1 with the emulated "
        f"V4L2 device (LD_PRELOAD) and {CAMERAS} emulated cameras; clients: one separate process "
        "(`benchmarks/wsclient.py`, one epoll loop). Medians over repetitions of the "
        "per-repetition p50/p99.",
        "",
        markdown_table(
            ["scenario", "target", "measured", "verdict"],
            [[c.name, c.target, c.measured, _verdict(c.ok)] for c in r.checks],
        ),
        "",
        "### Plug/unplug notifications",
        "",
        "Times from the node's creation (deletion) in the client process. *event*: the topic "
        "event; *status*: `camera_status_update`; *spread*: first → last client.",
        "",
        markdown_table(
            [
                "edge",
                "clients",
                "cycles x reps",
                "event→last p50 / p99 ms",
                "status→last p50 / p99 ms",
                "spread p50 / p99 ms",
                "max ms (pooled)",
                "missing",
                "server CPU %",
                "other CPU %",
                "server RSS MiB",
            ],
            [
                [
                    e.edge,
                    str(e.clients),
                    f"{e.cycles} x {e.reps}",
                    f"{e.event_last_p50_ms} / {e.event_last_p99_ms}",
                    f"{e.status_last_p50_ms} / {e.status_last_p99_ms}",
                    f"{e.spread_p50_ms} / {e.spread_p99_ms}",
                    str(e.pooled_event_last.max_ms if e.pooled_event_last else "-"),
                    str(e.missing),
                    str(e.server.cpu_pct if e.server else "-"),
                    str(e.server.other_cpu_pct if e.server else "-"),
                    str(e.server.rss_mb if e.server else "-"),
                ]
                for e in r.edges
            ],
        ),
        "",
        "### Reference: plain write(2) fan-out on the same machine",
        "",
        "A second process writes one message of the event's size to each of N loopback "
        "sockets in a tight loop (no framing, no event loop); this process reads them as the "
        "clients above do (`benchmarks/writefloor.py`). Measured right before each fan-out "
        "series.",
        "",
        markdown_table(
            [
                "clients",
                "bytes",
                "rounds",
                "writer loop p50 / p99 ms",
                "last arrival p50 / p99 ms",
            ],
            [
                [
                    str(f.clients),
                    str(f.message_bytes),
                    str(f.rounds),
                    f"{f.writer_loop.p50_ms} / {f.writer_loop.p99_ms}",
                    f"{f.last_arrival.p50_ms} / {f.last_arrival.p99_ms}",
                ]
                for f in r.floors
            ],
        ),
        "",
        "### get_camera_list throughput",
        "",
        markdown_table(
            [
                "connections",
                "window",
                "reps",
                "req/s (median)",
                "runs",
                "p50 ms",
                "p99 ms",
                "server CPU %",
                "req/s per server core",
                "client CPU %",
                "other CPU %",
                "server RSS MiB",
                "errors",
            ],
            [
                [
                    str(t.connections),
                    str(t.window),
                    str(t.reps),
                    f"{t.rps:,.0f}",
                    ", ".join(f"{x:,.0f}" for x in t.rps_runs),
                    str(t.p50_ms),
                    str(t.p99_ms),
                    str(t.server_cpu_pct),
                    f"{t.per_core_rps:,.0f}",
                    str(t.gen_cpu_pct),
                    str(t.other_cpu_pct),
                    str(t.server_rss_mb),
                    str(t.errors),
                ]
                for t in r.throughput
            ],
        ),
        "",
        f"Server ready in {r.server_ready_s:.2f} s with {CAMERAS} cameras; idle RSS "
        f"{r.server_idle_rss_mb} MiB.",
    ]
    parts += report_tail(r.profiles, r.settings, r.notes)
    return "\n".join(parts) + "\n"


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.events", description=__doc__)
    ap.add_argument("--reps", type=int, default=3, help="repetitions per scenario (≥ 3)")
    ap.add_argument("--cycles", type=int, default=50, help="plug/unplug cycles, 1 client")
    ap.add_argument("--fanout-cycles", type=int, default=15, help="cycles per fan-out rep")
    ap.add_argument("--fanout", default="100,1000", help="client counts for fan-out")
    ap.add_argument("--gap", type=float, default=0.1, help="seconds between edges")
    ap.add_argument("--window", type=int, default=8, help="get_camera_list window per conn")
    ap.add_argument("--seconds", type=float, default=8.0, help="measured s per throughput run")
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
    raise_nofile_limit()
    niceness = apply_nice(args.nice)
    mach = machine()
    tmp = Path(tempfile.mkdtemp(prefix="camsvc-bench-events-"))
    emu = tmp / "dev"
    emu.mkdir()
    for i in range(CAMERAS):
        EmulatedCamera(emu, i).plug()
    plugged = EmulatedCamera(emu, PLUG_INDEX)
    server = Server(tmp, emu)
    edges: list[EdgeSeries] = []
    floors: list[WriteFloor] = []
    runs: list[LoadRun] = []
    profiles: list[Profile] = []
    notes: list[str] = []
    fanout = [int(x) for x in args.fanout.split(",") if x]
    t_begin = time.monotonic()
    try:
        with server.running():
            print(f"server ready in {server.ready_s:.2f} s (pid {server.pid})", flush=True)
            time.sleep(1.0)
            from benchmarks.wsclient import rss_mb

            idle_rss = rss_mb(server.pid)
            token = server.token()

            # 1. hot-plug detection with one subscribed client
            print("hot-plug detection, 1 client", flush=True)
            conns = open_clients(1, server.port, token, TOPICS)
            engine = Engine(conns)
            edges += measure_edges(server, engine, plugged, conns, args.reps, args.cycles, args.gap)
            engine.close()

            # 2. fan-out: grow the subscribed set to each size in turn
            for n in fanout:
                print(f"fan-out, {n} clients", flush=True)
                conns += open_clients(n - len(conns), server.port, token, TOPICS)
                engine = Engine(conns)
                engine.drain(0.5)
                wait_quiet(QUIET_S)
                floors.append(measure_floor(n, EVENT_BYTES))
                f = floors[-1].last_arrival
                print(f"  plain write(2) floor: p50 {f.p50_ms} p99 {f.p99_ms} ms", flush=True)
                edges += measure_edges(
                    server, engine, plugged, conns, args.reps, args.fanout_cycles, args.gap
                )
                miss = [e for e in edges if e.clients == n and e.event_last_p99_ms > 20]
                want = args.profile == "always" or (args.profile == "auto" and miss)
                if want:
                    print(f"  profiling fan-out to {n}", flush=True)
                    with pyspy(server.pid, tmp / f"fanout-{n}.raw", f"fan-out to {n}", profiles):
                        plug_cycles(engine, plugged, conns, args.fanout_cycles, args.gap)
                engine.close()
            for ws in conns:
                ws.close()
            conns = []
            time.sleep(1.0)

            # 3. get_camera_list throughput
            print(f"get_camera_list, {CAMERAS} cameras, 100 connections", flush=True)
            for rep in range(args.reps):
                for window in sorted({1, args.window}):
                    if window == 1 and rep > 0:
                        continue
                    run = camera_list_load(server, 100, window, args.seconds, "get_camera_list")
                    runs.append(run)
                    lat = run.latency
                    print(
                        f"  w={window:<3} {run.rps:>8,.0f} req/s p50 {lat.p50_ms if lat else '-'}"
                        f" p99 {lat.p99_ms if lat else '-'} ms  srv cpu "
                        f"{run.server.cpu_pct if run.server else '-'}% gen {run.gen_cpu_pct}%"
                        f"  errors {run.errors}",
                        flush=True,
                    )
            tput = summarise_throughput(runs)
            best = next((t for t in tput if t.window == args.window), None)
            want = args.profile == "always" or (
                args.profile == "auto" and best is not None and best.rps < 8000
            )
            if want:
                print("  profiling get_camera_list", flush=True)
                label = f"get_camera_list, 100 connections, window {args.window}"
                with pyspy(server.pid, tmp / "camera-list.raw", label, profiles):
                    camera_list_load(server, 100, args.window, args.seconds, "profiled")
    finally:
        plugged.unplug()
        print(f"server log: {server.log}", flush=True)
    elapsed = time.monotonic() - t_begin
    notes.append(
        f"The machine has {mach.nproc} CPUs: the server (one Python thread) and the client "
        "process share them, so client CPU is reported next to server CPU. With 1,000 clients "
        "the client's own epoll loop reads 1,000 sockets per event; its wake-up clock reading "
        "is taken before it reads a batch, so the figures are upper bounds on arrival times "
        "only by the time the previous batch took to read."
    )
    notes.append(
        "The plug edge includes inotify delivery and the service's probe of the new node "
        "(open, enumerate formats); the unplug edge has no probe, so it is the fan-out path "
        "with the least in front of it."
    )
    notes.append(
        "MediaMTX is not running (`mediamtx.spawn=never`); `get_camera_list` answered without "
        "it, so it makes no MediaMTX call per request."
    )
    notes.append(
        "*req/s per server core* = req/s ÷ (server CPU % / 100): the server's capacity per "
        "core-second it actually got, a figure that moves less than req/s when other sessions "
        "take CPU. The server is one Python thread, so one core is its ceiling."
    )
    notes.append(f"Whole benchmark: {elapsed:.0f} s.")
    report = Report(
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        commit=git_commit(),
        machine=mach,
        settings={
            "niceness": niceness,
            "reps": args.reps,
            "cycles": args.cycles,
            "fanout_cycles": args.fanout_cycles,
            "gap_s": args.gap,
            "window": args.window,
            "seconds": args.seconds,
        },
        server_ready_s=round(server.ready_s, 3),
        server_idle_rss_mb=idle_rss,
        edges=edges,
        floors=floors,
        throughput=tput,
        runs=runs,
        checks=checks(edges, floors, tput, args.window),
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
        (out_dir / f"events-{stamp}.json").write_bytes(
            msgspec.json.format(msgspec.json.encode(report))
        )
        update_results_md(ROOT / "benchmarks" / "RESULTS.md", text, SECTION)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
