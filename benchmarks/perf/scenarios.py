"""The performance specification's scenarios, each against a fresh `camsvc serve` (emulated
cameras at the spec's 640x480 @ 30 fps, the MediaMTX stand-in as a second process) and
measured from other processes: `benchmarks.loadgen` (asyncio, its own process) for the
connection, throughput and memory figures, `benchmarks.wsclient.Engine` (this process) for
scripted mixed loads, Artillery as an independent check.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from benchmarks import recording
from benchmarks.loadgen import TOKEN_ENV, RunResult
from benchmarks.perf import artillery
from benchmarks.perf.model import Row, Scenario
from benchmarks.perf.usage import Usage, UsageSampler
from benchmarks.wsclient import (
    HOST,
    Engine,
    OpRun,
    Stats,
    Step,
    WsSocket,
    open_clients,
    wait_quiet,
)

__all__ = ["SCENARIOS", "Context"]

ROOT = Path(__file__).resolve().parents[2]
MODE = "640x480@30"
CAMERAS = 4
#: Connections the rigs accept: above the largest step of the connection scenarios.
MAX_CONNECTIONS = 21000
#: The spec's response-time rows, by the method that answers them.
SPEC_ROW = {
    "get_camera_list": "Camera list",
    "get_camera_status": "Camera status",
    "take_snapshot": "Take snapshot",
    "start_recording": "Start recording",
    "stop_recording": "Stop recording",
    "list_recordings": "List recordings",
    "get_stream_url": "Stream URL",
}


class Context:
    """Where a run works (tmp folder, emulated device nodes) and its options."""

    def __init__(self, tmp: Path, emu: Path, args: argparse.Namespace) -> None:
        self.tmp = tmp
        self.emu = emu
        self.args = args
        self._n = itertools.count()

    def scale(self, seconds: float) -> float:
        """A measured interval, shortened by `--quick`."""
        return max(2.0, seconds / 4) if self.args.quick else seconds

    @contextlib.contextmanager
    def rig(self, cameras: int = CAMERAS) -> Iterator[recording.Rig]:
        """A fresh stand-in and service seeing `cameras` cameras in the spec's mode."""
        env = {"CAMERA_SERVICE_SERVER_MAX_CONNECTIONS": str(MAX_CONNECTIONS)}
        with recording.rig(self.tmp, self.emu, f"rig{next(self._n)}", cameras, MODE, env) as r:
            ws = WsSocket.open(r.server.port)
            try:
                ws.call("authenticate", {"auth_token": r.server.token()})
                recording.wait_cameras(ws, cameras, MODE)
            finally:
                ws.close()
            yield r

    def loadgen_start(
        self, scenario: str, r: recording.Rig, **opts: object
    ) -> subprocess.Popen[bytes]:
        """Start one `benchmarks.loadgen` run in its own process against the rig's service."""
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.loadgen",
            scenario,
            "--port",
            str(r.server.port),
            "--server-pid",
            str(r.server.pid),
        ]
        for key, value in opts.items():
            cmd += [f"--{key.replace('_', '-')}", str(value)]
        env = dict(os.environ, **{TOKEN_ENV: r.server.token(ttl_s=86400)})
        return subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

    @staticmethod
    def loadgen_result(proc: subprocess.Popen[bytes]) -> RunResult:
        """Wait for a run started with `loadgen_start` and read what it measured."""
        out, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"loadgen failed: {err.decode()[-2000:]}")
        return msgspec.json.decode(out.splitlines()[-1], type=RunResult)

    def loadgen(self, scenario: str, r: recording.Rig, **opts: object) -> RunResult:
        """One `benchmarks.loadgen` run, waited for."""
        return self.loadgen_result(self.loadgen_start(scenario, r, **opts))


def say(text: str) -> None:
    """A progress line."""
    print(f"  {text}", flush=True)


def _stats(lat: Any) -> Stats | None:
    """A loadgen `Latency` as the report's `Stats`."""
    if lat is None:
        return None
    return Stats(
        count=lat.count,
        p50_ms=lat.p50_ms,
        p95_ms=lat.p95_ms,
        p99_ms=lat.p99_ms,
        max_ms=lat.max_ms,
        mean_ms=lat.mean_ms,
    )


def _op_row(op: OpRun, seconds: float, usage: Usage | None = None, name: str = "") -> Row:
    spec = SPEC_ROW.get(op.label, "")
    return Row(
        name=name or f"{spec or op.label} (`{op.label}`)",
        spec=spec,
        value=op.latency.p95_ms if op.latency else None,
        unit="ms",
        latency=op.latency,
        requests=op.requests,
        errors=op.errors,
        rate=round(op.requests / seconds, 1),
        cpu_pct=usage.cpu_pct if usage else None,
        rss_mb=usage.rss_mb_max if usage else None,
        note="; ".join(op.error_samples[:1]),
    )


def _resource_rows(u: Usage, where: str) -> list[Row]:
    return [
        Row(
            name=f"CPU usage, camsvc and its children ({where})",
            spec="CPU usage",
            value=u.cpu_host_pct,
            unit="% of the host",
            note=f"{u.cpu_pct} % of one core, busiest second {u.cpu_pct_max} %",
        ),
        Row(
            name=f"Memory usage, camsvc RSS ({where})",
            spec="Memory usage",
            value=u.rss_mb_max,
            unit="MiB",
            note=f"with its children {u.tree_rss_mb_max} MiB",
        ),
        Row(
            name=f"Disk I/O, camsvc and its children ({where})",
            spec="Disk I/O",
            value=u.disk_mb_s,
            unit="MB/s",
        ),
        Row(
            name=f"Network I/O, loopback, every process ({where})",
            spec="Network I/O",
            value=u.net_mbit_s,
            unit="Mbit/s",
        ),
        Row(
            name=f"File descriptors, camsvc ({where})",
            spec="File descriptors",
            value=float(u.fds_max),
            unit="fds",
        ),
    ]


# -- baseline -------------------------------------------------------------------------------

#: What a reader connection asks, in turn (one request every READ_PERIOD_S).
READS: list[tuple[str, bool]] = [
    ("get_camera_list", False),
    ("get_camera_status", True),
    ("get_stream_url", True),
    ("list_recordings", False),
    ("get_camera_list", False),
    ("get_camera_status", True),
    ("get_stream_url", True),
    ("list_recordings", False),
    ("get_camera_status", True),
    ("take_snapshot", True),
]
READ_PERIOD_S = 0.1  # 96 readers at 10 requests/s: with the recorders, the spec's 1,000 req/s
RECORD_HOLD_S = 2.0  # a recorder's start → stop
RECORD_GAP_S = 0.5  # stop → next start


def _baseline_script(conns: list[WsSocket]) -> Callable[[WsSocket], Step]:
    """Connections 0..3 record on their camera in cycles; the others read at a fixed rate."""
    recorders = {conns[i].fileno(): f"camera{i}" for i in range(CAMERAS)}
    state: dict[int, tuple[int, float]] = {}  # fd -> (turn, next due time)
    t0 = time.monotonic()
    for k, ws in enumerate(conns):  # spread the readers' first requests over one period
        turn = 0 if ws.fileno() in recorders else k
        state[ws.fileno()] = (turn, t0 + READ_PERIOD_S * k / len(conns))

    def script(ws: WsSocket) -> Step:
        fd = ws.fileno()
        turn, due = state[fd]
        now = time.monotonic()
        device = recorders.get(fd)
        if device is not None:
            starting = turn % 2 == 0
            state[fd] = (turn + 1, now)
            method = "start_recording" if starting else "stop_recording"
            wait = 0.0 if turn == 0 else (RECORD_GAP_S if starting else RECORD_HOLD_S)
            return Step(method, method, {"device": device}, now + wait)
        method, on_device = READS[turn % len(READS)]
        state[fd] = (turn + 1, max(due + READ_PERIOD_S, now))
        params: dict[str, Any] = {"device": f"camera{turn % CAMERAS}"} if on_device else {}
        if method == "list_recordings":
            params = {"limit": 20}
        return Step(method, method, params or None, due)

    return script


CONNECTS = 300  # new connections during the baseline load


def _connect_rows(c: RunResult, how: str, judged: bool) -> list[Row]:
    """The connect and authenticate figures of a loadgen `connect` run, judged against the
    spec or informative."""
    common: dict[str, Any] = {
        "requests": c.requests,
        "errors": c.errors,
        "unit": "ms",
        "cpu_pct": c.server_cpu_pct,
        "rss_mb": c.server_rss_mb,
    }
    return [
        Row(
            name=f"WebSocket connection (TCP connect + upgrade), {how}",
            spec="WebSocket connection" if judged else "",
            value=c.handshake.p95_ms if c.handshake else None,
            latency=_stats(c.handshake),
            rate=c.rps,
            **common,
        ),
        Row(
            name=f"Authentication (`authenticate`, JWT), {how}",
            spec="Authentication" if judged else "",
            value=c.auth.p95_ms if c.auth else None,
            latency=_stats(c.auth),
            **common,
        ),
    ]


def baseline(ctx: Context) -> Scenario:
    """Every operation of the spec's response-time table at 100 concurrent clients."""
    t_begin = time.monotonic()
    rows: list[Row] = []
    notes: list[str] = []
    seconds = ctx.scale(30.0)
    with ctx.rig() as r:
        wait_quiet(5.0)
        say("a burst: 1,000 connections, 100 at a time (loadgen)")
        burst = ctx.loadgen("connect", r, connections=1000, parallel=100)
        say(f"100 clients: 4 recording in cycles, 96 reading at 10/s each, {seconds:.0f} s")
        conns = open_clients(100, r.server.port, r.server.token())
        engine = Engine(conns)
        sampler = UsageSampler(r.server.pid)
        # New clients connecting one after another while the 100 work: the connect figures.
        newcomers = ctx.loadgen_start("connect", r, connections=CONNECTS, parallel=1)
        try:
            ops, elapsed = engine.scripted(
                _baseline_script(conns), seconds, warmup_s=3.0, tick=sampler.sample
            )
        finally:
            engine.close()
            for ws in conns:
                ws.close()
        c = ctx.loadgen_result(newcomers)
        rows += _connect_rows(c, "one at a time while the 100 clients work", judged=True)
        rows += _connect_rows(burst, "a burst of 100 at once, 10 times", judged=False)
        usage = sampler.usage()
        by = {op.label: op for op in ops}
        for method in SPEC_ROW:
            if method in by:
                rows.append(_op_row(by[method], elapsed, usage))
        total = sum(op.requests for op in ops)
        errors = sum(op.errors for op in ops)
        rows.append(
            Row(
                name="Concurrent connections, each active",
                spec="Concurrent connections",
                value=100,
                unit="connections",
                requests=total,
                errors=errors,
                rate=round(total / elapsed, 1),
                cpu_pct=usage.cpu_pct,
                rss_mb=usage.rss_mb_max,
                note="none dropped",
            )
        )
        cycles = by["stop_recording"].requests if "stop_recording" in by else 0
        rows.append(
            Row(
                name=f"Recordings per hour ({CAMERAS} cameras, {RECORD_HOLD_S:g} s each, "
                "while 96 clients read)",
                spec="Recordings per hour",
                value=round(cycles * 3600 / elapsed),
                unit="/h",
                requests=cycles,
                errors=by["stop_recording"].errors if cycles else None,
            )
        )
        rows += _resource_rows(usage, "100 clients, about 1,000 req/s")
        notes.append(
            f"Load: {total:,} requests in {elapsed:.0f} s ({total / elapsed:,.0f}/s) from 100 "
            "connections in this process: 96 each send one request every "
            f"{READ_PERIOD_S * 1000:.0f} ms in turn ({', '.join(m for m, _ in READS)}), 4 each "
            f"start a recording on their camera, stop it {RECORD_HOLD_S:g} s later, and start "
            f"again {RECORD_GAP_S:g} s after. Latency counts from when a request was due."
        )
        notes.append(
            f"Connect and authenticate: `benchmarks.loadgen connect` in its own process, "
            f"{CONNECTS} new connections one after another while the 100 clients work (the "
            "rows judged), and before that a burst: 1,000 connections in waves of 100 at once "
            "(informative: the 100th of a wave waits for the 99 before it on the service's one "
            "core). The WebSocket rows are TCP connect + upgrade (`101`), the authentication "
            "rows the `authenticate` call on the open connection."
        )
    return Scenario(
        name="baseline",
        title="Baseline: every operation at 100 clients",
        rows=rows,
        wall_s=time.monotonic() - t_begin,
        notes=notes,
    )


# -- throughput -----------------------------------------------------------------------------

TRANSFER_MB = 64  # the file the data-transfer figure downloads again and again


def _download_rate(r: recording.Rig, seconds: float) -> tuple[float, int, int]:
    """Mbit/s of one client downloading a catalogued recording over and over (keep-alive)."""
    folder = r.recordings / "camera0"
    folder.mkdir(parents=True, exist_ok=True)
    name = "camera0_2020-01-01_00-00-00-000000.mp4"
    (folder / name).write_bytes(os.urandom(TRANSFER_MB * 2**20))
    ws = WsSocket.open(r.server.port)
    try:
        ws.call("authenticate", {"auth_token": r.server.token()})
        deadline = time.monotonic() + 30
        while not any(
            f["filename"] == name for f in ws.call("list_recordings", {"limit": 1000})["files"]
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the transfer file was not catalogued within 30 s")
            time.sleep(0.2)
    finally:
        ws.close()
    conn = http.client.HTTPConnection(HOST, r.server.port, timeout=30)
    headers = {"Authorization": f"Bearer {r.server.token()}"}
    total = count = errors = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        conn.request("GET", f"/files/recordings/{name}", headers=headers)
        resp = conn.getresponse()
        while chunk := resp.read(1 << 20):
            total += len(chunk)
        count += 1
        errors += resp.status != 200
    elapsed = time.monotonic() - t0
    conn.close()
    return total * 8 / elapsed / 1e6, count, errors


def throughput(ctx: Context) -> Scenario:
    """Requests per second at 100 connections (loadgen and Artillery) and the file rate."""
    t_begin = time.monotonic()
    rows: list[Row] = []
    art: dict[str, str] = {}
    seconds = ctx.scale(10.0)
    with ctx.rig() as r:
        for method, params in (
            ("ping", None),
            ("get_camera_list", None),
            ("get_camera_status", '{"device":"camera0"}'),
        ):
            wait_quiet(5.0)
            say(f"{method}: 100 connections, 4 in flight each, {seconds:.0f} s (loadgen)")
            opts: dict[str, object] = {"method": method} | ({"params": params} if params else {})
            g = ctx.loadgen(
                "closed", r, connections=100, window=4, duration=seconds, warmup=1.0, **opts
            )
            say(f"  {g.rps:,.0f} req/s, p99 {g.latency.p99_ms if g.latency else '—'} ms")
            rows.append(
                Row(
                    name=f"Requests per second, `{method}`, 100 connections",
                    spec="Requests per second" if method == "ping" else "",
                    value=g.rps,
                    unit="req/s",
                    latency=_stats(g.latency),
                    requests=g.requests,
                    errors=g.errors,
                    rate=g.rps,
                    cpu_pct=g.server_cpu_pct,
                    rss_mb=g.server_rss_mb,
                )
            )
            if method in ("ping", "get_camera_list"):
                rows.append(
                    Row(
                        name=f"Requests per second, `{method}`",
                        goal="≥ 10,000 req/s (10 times the spec's 1,000)",
                        value=g.rps,
                        unit="req/s",
                        ok=g.rps >= 10_000 and g.errors == 0,
                    )
                )
        say("data transfer: one client downloading a 64 MiB recording over and over")
        mbit, count, errors = _download_rate(r, ctx.scale(5.0))
        rows.append(
            Row(
                name=f"Data transfer rate (`GET /files/recordings/…`, {TRANSFER_MB} MiB, "
                "one client)",
                spec="Data transfer rate",
                value=round(mbit),
                unit="Mbit/s",
                requests=count,
                errors=errors,
            )
        )
        say("Artillery: 100 connections, 200 pings each, one after another")
        try:
            a = artillery.run_ping(ctx.tmp / "artillery", r.server.port, r.server.token(), 100, 200)
            art["ping, 100 connections, 200 each in turn"] = (
                f"{a['count']:,} pings, p50 {a['p50_ms']} / p95 {a['p95_ms']} / p99 "
                f"{a['p99_ms']} ms, {a['errors']} errors, about {a['rate']:,.0f}/s (Node, one "
                "request in flight per connection: the generator's own limit)"
            )
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            art["ping"] = f"failed: {exc}"
    notes = [
        "`benchmarks.loadgen closed`: 100 authenticated connections in a separate process, "
        "each keeping 4 requests in flight (pipelined); the service answers one "
        "connection's synchronous calls in order.",
        f"Data transfer: a {TRANSFER_MB} MiB file placed in camera0's recordings and "
        "catalogued by the service's folder watch, downloaded with `Authorization: Bearer` "
        "on one keep-alive connection.",
    ]
    return Scenario(
        name="throughput",
        title="Throughput: requests per second and file rate",
        rows=rows,
        wall_s=time.monotonic() - t_begin,
        notes=notes,
        artillery=art,
    )


# -- connections ----------------------------------------------------------------------------

STEPS = [100, 250, 500, 1000, 2500, 5000, 10000, 15000, 20000]
STEP_P99_MS = 100.0


def connections(ctx: Context) -> Scenario:
    """More and more connections, each asking for a camera's status once a second, until the
    p99 passes 100 ms (or the file-descriptor limit stops the steps)."""
    import resource

    t_begin = time.monotonic()
    rows: list[Row] = []
    points: list[list[float]] = []
    art: dict[str, str] = {}
    seconds = ctx.scale(10.0)
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1] - 500
    steps = [n for n in STEPS if n <= limit]
    stopped = f"the steps end at {steps[-1]:,} (file-descriptor limit {limit + 500:,})"
    with ctx.rig() as r:
        for n in steps:
            wait_quiet(5.0)
            say(f"{n:,} connections, 1 `get_camera_status` a second each, {seconds:.0f} s")
            g = ctx.loadgen(
                "open",
                r,
                connections=n,
                rate=n,
                duration=seconds,
                warmup=2.0,
                method="get_camera_status",
                params='{"device":"camera0"}',
            )
            lat = g.latency
            p99 = lat.p99_ms if lat else float("nan")
            say(
                f"  p50 {lat.p50_ms if lat else '—'} / p99 {p99} ms, {g.errors} errors, "
                f"camsvc {g.server_cpu_pct} % CPU, {g.server_rss_mb} MiB"
            )
            points.append(
                [n, lat.p50_ms if lat else 0, lat.p95_ms if lat else 0, p99, g.server_rss_mb or 0]
            )
            rows.append(
                Row(
                    name=f"{n:,} connections",
                    spec="Concurrent connections" if n == 100 else "",
                    value=float(n),
                    unit="connections",
                    latency=_stats(lat),
                    requests=g.requests,
                    errors=g.errors,
                    rate=g.rps,
                    cpu_pct=g.server_cpu_pct,
                    rss_mb=g.server_rss_mb,
                )
            )
            if not p99 <= STEP_P99_MS or g.errors:
                stopped = f"p99 passed {STEP_P99_MS:.0f} ms at {n:,} connections"
                break
        held = [p for p in points if p[3] <= STEP_P99_MS]
        rows.append(
            Row(
                name="Most connections with p99 ≤ 100 ms",
                goal="step up until p99 > 100 ms",
                value=held[-1][0] if held else 0.0,
                unit="connections",
                ok=None,
                note=stopped,
            )
        )
        say("Artillery: 1,000 users arriving over 10 s, each connecting and authenticating")
        try:
            a = artillery.run_connect(
                ctx.tmp / "artillery", r.server.port, r.server.token(), 1000, 10
            )
            art["connect + authenticate, 1,000 users over 10 s"] = (
                f"{a['count']:,} sessions, session length (connect, upgrade, authenticate, "
                f"close) p50 {a['p50_ms']} / p95 {a['p95_ms']} / p99 {a['p99_ms']} ms, "
                f"{a['errors']} errors"
            )
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            art["connect"] = f"failed: {exc}"
    notes = [
        "`benchmarks.loadgen open`: the connections are opened (64 handshakes at a time), then "
        "a fixed total rate of one `get_camera_status` per connection per second is sent "
        "round-robin; latency counts from the scheduled send, so generator lag counts "
        f"against the service. {stopped[0].upper() + stopped[1:]}.",
    ]
    return Scenario(
        name="connections",
        title="Concurrent connections, stepped up",
        rows=rows,
        wall_s=time.monotonic() - t_begin,
        notes=notes,
        series={"connections": points},
        artillery=art,
    )


# -- memory ---------------------------------------------------------------------------------


def memory(ctx: Context) -> Scenario:
    """The service's RSS with 1,000 and 10,000 idle authenticated connections."""
    t_begin = time.monotonic()
    rows: list[Row] = []
    points: list[list[float]] = []
    with ctx.rig() as r:
        for n in (1000, 10000):
            wait_quiet(5.0)
            say(f"{n:,} authenticated connections, idle, then one ping each (loadgen)")
            g = ctx.loadgen("idle", r, connections=n, parallel=200, duration=3.0)
            rss = g.rss_after_mb or 0.0
            say(f"  RSS {g.rss_before_mb} → {rss} MiB, {g.errors} errors")
            if not points:
                points.append([0, g.rss_before_mb or 0.0])
            points.append([n, rss])
            rows.append(
                Row(
                    name=f"Memory with {n:,} connections (RSS, camsvc)",
                    spec="Memory usage",
                    value=rss,
                    unit="MiB",
                    latency=_stats(g.latency),
                    requests=g.requests,
                    errors=g.errors,
                    rss_mb=rss,
                    note=f"{g.rss_before_mb} MiB before, "
                    f"{1024 * (g.rss_added_mb or 0) / n:.1f} KiB per connection",
                )
            )
            if n == 10000:
                rows.append(
                    Row(
                        name="RSS with 10,000 connections",
                        goal="< 500 MB",
                        value=round(rss * 2**20 / 1e6, 1),
                        unit="MB",
                        ok=rss * 2**20 < 500e6 and g.errors == 0,
                    )
                )
    notes = [
        "`benchmarks.loadgen idle`: the connections are opened and authenticated (200 "
        "handshakes at a time), left idle 3 s, then each sends one ping to show it is still "
        "served; RSS read with psutil before and with them.",
    ]
    return Scenario(
        name="memory",
        title="Memory stress: idle authenticated connections",
        rows=rows,
        wall_s=time.monotonic() - t_begin,
        notes=notes,
        series={"memory": points},
    )


# -- snapshots ------------------------------------------------------------------------------


def _closed(
    conns: list[WsSocket],
    method: str,
    params: Callable[[int], dict[str, Any]],
    seconds: float,
    sampler: UsageSampler,
) -> tuple[OpRun, float]:
    """Every connection asks again as soon as it has its reply (one in flight each)."""
    index = {ws.fileno(): i for i, ws in enumerate(conns)}
    engine = Engine(conns)
    try:
        ops, elapsed = engine.scripted(
            lambda ws: Step(method, method, params(index[ws.fileno()])),
            seconds,
            warmup_s=2.0,
            tick=sampler.sample,
        )
    finally:
        engine.close()
    return ops[0], elapsed


def _snapshot_loops(r: recording.Rig, clients: int, seconds: float) -> tuple[OpRun, float, Usage]:
    """`clients` connections taking snapshots back to back, round-robin over the cameras."""
    conns = open_clients(clients, r.server.port, r.server.token())
    wait_quiet(5.0)
    sampler = UsageSampler(r.server.pid)
    try:
        op, elapsed = _closed(
            conns, "take_snapshot", lambda i: {"device": f"camera{i % CAMERAS}"}, seconds, sampler
        )
    finally:
        for ws in conns:
            ws.close()
    return op, elapsed, sampler.usage()


def snapshots(ctx: Context) -> Scenario:
    """High-frequency snapshots: one client per camera, back to back."""
    t_begin = time.monotonic()
    rows: list[Row] = []
    seconds = ctx.scale(20.0)
    with ctx.rig() as r:
        say(f"one client per camera ({CAMERAS}), take_snapshot back to back, {seconds:.0f} s")
        op, elapsed, u = _snapshot_loops(r, CAMERAS, seconds)
        per_min = op.requests / CAMERAS / elapsed * 60
        p99 = op.latency.p99_ms if op.latency else None
        say(f"  {per_min:,.0f} per minute per camera, p99 {p99} ms")
        rows.append(_op_row(op, elapsed, u, name=f"Take snapshot, {CAMERAS} cameras back to back"))
        rows.append(
            Row(
                name="Snapshots per minute, per camera",
                spec="Snapshots per minute",
                value=round(per_min),
                unit="/min",
                requests=op.requests,
                errors=op.errors,
                cpu_pct=u.cpu_pct,
                rss_mb=u.rss_mb_max,
            )
        )
    notes = [
        "Each snapshot waits for a frame captured after the request (30 fps), is written "
        "under a temporary name, fsynced and linked; latency includes all of it. Errors "
        "count every refusal (a busy camera included).",
    ]
    return Scenario(
        name="snapshot-rate",
        title="High-frequency snapshots",
        rows=rows,
        wall_s=time.monotonic() - t_begin,
        notes=notes,
    )


def cpu(ctx: Context) -> Scenario:
    """CPU stress: 100 clients each taking snapshots back to back over the 4 cameras."""
    t_begin = time.monotonic()
    rows: list[Row] = []
    seconds = ctx.scale(20.0)
    with ctx.rig() as r:
        say(f"100 clients, take_snapshot back to back over {CAMERAS} cameras, {seconds:.0f} s")
        op, elapsed, u = _snapshot_loops(r, 100, seconds)
        say(f"  {op.requests / elapsed:,.0f} snapshots/s, camsvc {u.cpu_pct} % CPU")
        rows.append(_op_row(op, elapsed, u, name="Take snapshot, 100 clients back to back"))
        rows += _resource_rows(u, "100 snapshot loops")
    notes = [
        "The spec's CPU stress runs 100 concurrent snapshot loops and asks that CPU stay "
        "stable: the CPU rows give the mean and the busiest second. One camsvc process "
        "(Trio) handles requests on one core; JPEG work runs in worker threads.",
    ]
    return Scenario(
        name="cpu",
        title="CPU stress: 100 snapshot loops",
        rows=rows,
        wall_s=time.monotonic() - t_begin,
        notes=notes,
    )


def camera_ops(ctx: Context) -> Scenario:
    """The spec's camera-operations benchmark: one client, one call after another."""
    t_begin = time.monotonic()
    rows: list[Row] = []
    seconds = ctx.scale(10.0)
    with ctx.rig() as r:
        conns = open_clients(1, r.server.port, r.server.token())
        for method in ("take_snapshot", "get_camera_status", "get_camera_list"):
            wait_quiet(5.0)
            say(f"{method}, one client, one call after another, {seconds:.0f} s")
            sampler = UsageSampler(r.server.pid)
            params = {} if method == "get_camera_list" else {"device": "camera0"}
            op, elapsed = _closed(conns, method, lambda _i, p=params: p or None, seconds, sampler)  # type: ignore[misc]
            rows.append(
                _op_row(
                    op, elapsed, sampler.usage(), name=f"{SPEC_ROW[method]}, one client in turn"
                )
            )
        for ws in conns:
            ws.close()
    notes = ["The spec's `BenchmarkCameraOperations`: sequential calls on one connection."]
    return Scenario(
        name="camera-ops",
        title="Camera operations, one client",
        rows=rows,
        wall_s=time.monotonic() - t_begin,
        notes=notes,
    )


# -- recording load -------------------------------------------------------------------------

RECORDINGS = 10


def recordings(ctx: Context) -> Scenario:
    """The spec's recording load: 10 recordings at once (benchmarks.recording's load)."""
    t_begin = time.monotonic()
    hold = ctx.scale(20.0)
    say(f"{RECORDINGS} cameras recording at once for {hold:.0f} s, snapshots meanwhile")
    args = argparse.Namespace(mode=MODE, snapshot_interval=0.5)
    res = recording.load(ctx.tmp, ctx.emu, "perf-recordings", RECORDINGS, hold, args)
    u = res.usage
    rows = [
        Row(
            name=f"{RECORDINGS} recordings at once, {hold:.0f} s",
            goal="all held: no error, every file plays, ≤ 5 % frames missing",
            value=float(res.started),
            unit="started",
            errors=len(res.failures),
            cpu_pct=u.cpu_pct if u else None,
            rss_mb=u.rss_mb_peak if u else None,
            ok=res.held,
            note="; ".join(res.failures[:2]),
        ),
        Row(
            name="Take snapshot while they record",
            spec="Take snapshot",
            value=res.snapshots.p99_ms,
            unit="ms (p99)",
            requests=res.snapshots.count,
            errors=res.snapshots.errors,
            note=f"p50 {res.snapshots.p50_ms} ms",
        ),
    ]
    if u is not None:
        rows.append(
            Row(
                name=f"CPU, camsvc, its encoders and the stand-in ({RECORDINGS} recording)",
                spec="CPU usage",
                value=round(u.cpu_pct / (os.cpu_count() or 1), 1),
                unit="% of the host",
                note=f"{u.cpu_pct} % of one core",
            )
        )
    notes = [
        f"All {RECORDINGS} started together with `duration`, so camsvc stops each; files "
        "checked with ffprobe (H.264 640x480, duration within 10 %). Details and the "
        "largest count held: `make bench-recording`.",
    ]
    return Scenario(
        name="recordings",
        title="Recording load: 10 at once",
        rows=rows,
        wall_s=time.monotonic() - t_begin,
        notes=notes,
    )


#: `make bench` order; the soak (`make bench-soak`) is not part of it.
SCENARIOS: dict[str, Callable[[Context], Scenario]] = {
    "baseline": baseline,
    "throughput": throughput,
    "connections": connections,
    "memory": memory,
    "snapshot-rate": snapshots,
    "cpu": cpu,
    "camera-ops": camera_ops,
    "recordings": recordings,
}
