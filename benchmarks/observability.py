"""`make bench-metrics`: the cost of `/metrics` and of metrics plus logging (issue 9).

Three measurements, all in one run:

- render in-process: `Metrics.render()` of an App whose metric families hold the label sets
  of a busy service (every registered method answered, a few error codes, 16 cameras with
  snapshots, the camera gauge refreshed, the alert series), timed `--renders` times;
- full scrape: `camsvc serve` as a subprocess on loopback with 16 emulated cameras, 1,000
  open WebSocket connections and a snapshot taken on every camera; `GET /metrics` timed from
  the request to the last body byte (a new TCP connection each time, as a scraper without
  keep-alive), `--renders` times;
- throughput: `App(config).dispatcher.handle(conn, ping)` in a loop, in a fresh interpreter
  per mode so structlog is configured as in production (`configure_logging`, JSON to
  /dev/null): `off` (no observer, level critical), `info` (the metrics observer, level info:
  the production default), `debug` (observer and one `rpc` log line per call). Modes are
  interleaved over `--rounds` rounds; medians reported. `ping` is the cheapest method, so
  the relative cost is the worst case.

Targets (issue 9): render < 5 ms with 16 cameras and 1,000 connections; metrics plus logging
< 10 % of the throughput without them. Writes the section "Observability (issue 9)" of
`benchmarks/RESULTS.md` (other sections kept) and `benchmarks/results/observability-<date>.json`.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import gc
import json
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
RESULTS_DIR = ROOT / "benchmarks" / "results"
SECTION = "## Observability (issue 9)"
HOST = "127.0.0.1"
SECRET = "bench-observability-secret-" + "x" * 32
CAMERAS = 16
CONNECTIONS = 1000
RENDER_TARGET_MS = 5.0
OVERHEAD_TARGET = 0.10
MODES = ("off", "info", "debug")

__all__ = ["main"]


class Timing(msgspec.Struct, frozen=True):
    """Milliseconds over repeated runs."""

    runs: int
    p50_ms: float
    p95_ms: float
    max_ms: float


def timing(samples_s: list[float]) -> Timing:
    """Summarise durations in seconds."""
    ms = sorted(s * 1000 for s in samples_s)
    return Timing(
        len(ms),
        round(statistics.median(ms), 3),
        round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 3),
        round(ms[-1], 3),
    )


def _base_config(tmp: Path) -> dict[str, Any]:
    return {
        "server": {"host": HOST, "port": 0},
        "health": {"enabled": False},
        "security": {
            "jwt_secret_key": SECRET,
            "api_keys_path": str(tmp / "keys.json"),
            "rate_limit_rps": 1e9,
            "rate_limit_burst": 1_000_000_000,
        },
        "snapshots": {"path": str(tmp / "snapshots")},
        "recording": {"path": str(tmp / "recordings")},
        "storage": {"db_path": str(tmp / "camsvc.db")},
        "camera": {"device_dir": str(tmp / "dev")},
    }


# -- render in-process ----------------------------------------------------------------


def bench_render(renders: int) -> tuple[Timing, Timing, int, int]:
    """Render time of a populated App's registry; (wall, CPU, bytes, series)."""
    from camsvc.app import App
    from camsvc.config import config_from_dict

    with tempfile.TemporaryDirectory(prefix="camsvc-bench-") as tmp:
        (Path(tmp) / "dev").mkdir()
        app = App(config_from_dict(_base_config(Path(tmp))))
        m = app.metrics
        methods = [spec.name for spec in app.registry]
        for i, method in enumerate([*methods, "unknown", "invalid"]):
            for _ in range(5):
                m.observe_request(method, 0, 0.0005 * (i % 7 + 1))
            for code in (-32602, -32010, -32001)[: i % 4]:
                m.observe_request(method, code, 0.002)
        for n in range(CAMERAS):
            m.observe_snapshot(f"camera{n}", 0.004)
        m.cameras.labels("CONNECTED").set(CAMERAS)
        m.active_connections.set(CONNECTIONS)
        samples, cpu = [], []
        body = m.render()
        for _ in range(renders):
            t0, c0 = time.perf_counter(), time.thread_time()
            body = m.render()
            cpu.append(time.thread_time() - c0)
            samples.append(time.perf_counter() - t0)
        series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        return timing(samples), timing(cpu), len(body), series


# -- full scrape against a server -----------------------------------------------------


def _ws_handshake(port: int) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
    return sock


def _ws_send(sock: socket.socket, payload: bytes) -> None:
    n = len(payload)
    short = n < 126
    header = bytes([0x81, 0x80 | (n if short else 126)]) + (b"" if short else n.to_bytes(2, "big"))
    sock.sendall(header + b"\0\0\0\0" + payload)  # mask key 0: payload unchanged


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def _ws_recv(sock: socket.socket) -> bytes:
    b0, b1 = _recv_exact(sock, 2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(_recv_exact(sock, 2), "big")
    elif n == 127:
        n = int.from_bytes(_recv_exact(sock, 8), "big")
    payload = _recv_exact(sock, n)
    if b0 & 0x0F == 0x9:  # ping: answer and read on
        sock.sendall(bytes([0x8A, 0x80 | n]) + b"\0\0\0\0" + payload)
        return _ws_recv(sock)
    return payload


def _call(sock: socket.socket, method: str, params: Any = None, rid: int = 1) -> Any:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": rid}
    if params is not None:
        msg["params"] = params
    _ws_send(sock, json.dumps(msg).encode())
    while True:
        reply = json.loads(_ws_recv(sock))
        if reply.get("id") == rid:
            return reply


def _scrape(port: int) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(f"GET /metrics HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    elapsed = time.perf_counter() - t0
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.decode(errors="replace"))
    return elapsed, body


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class ScrapeResult(msgspec.Struct, frozen=True):
    """The HTTP scrape figures."""

    timing: Timing
    bytes: int
    connections_reported: float
    cameras_reported: float
    server_rss_mib: float


def bench_scrape(renders: int) -> ScrapeResult:
    """GET /metrics on a real server with 16 cameras and 1,000 connections."""
    from camsvc.auth import Role, mint_token
    from camsvc.emulator import EmulatedCamera, library_path

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tmp = Path(tempfile.mkdtemp(prefix="camsvc-bench-obs-"))
    dev = tmp / "dev"
    dev.mkdir()
    for n in range(CAMERAS):
        EmulatedCamera(dev, n, card=f"Bench Camera {n}").plug()
    port = _free_port()
    env = dict(os.environ)
    env.pop("CAMSVC_CONFIG", None)
    env.update(
        {
            "LD_PRELOAD": " ".join(filter(None, [str(library_path()), env.get("LD_PRELOAD")])),
            "CAMSVC_EMU_DIR": str(dev),
            "CAMERA_SERVICE_JWT_SECRET": SECRET,
            "CAMERA_SERVICE_SERVER_HOST": HOST,
            "CAMERA_SERVICE_SERVER_PORT": str(port),
            "CAMERA_SERVICE_SERVER_MAX_CONNECTIONS": str(CONNECTIONS + 100),
            "CAMERA_SERVICE_HEALTH_ENABLED": "false",
            "CAMERA_SERVICE_SECURITY_API_KEYS_PATH": str(tmp / "keys.json"),
            "CAMERA_SERVICE_SNAPSHOTS_PATH": str(tmp / "snapshots"),
            "CAMERA_SERVICE_RECORDING_PATH": str(tmp / "recordings"),
            "CAMERA_SERVICE_STORAGE_DB_PATH": str(tmp / "camsvc.db"),
            "CAMERA_SERVICE_CAMERA_DEVICE_DIR": str(dev),
            "CAMERA_SERVICE_MEDIAMTX_SPAWN": "never",
            "CAMERA_SERVICE_LOGGING_LEVEL": "warning",
        }
    )
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "camsvc", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    socks: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socks.append(_ws_handshake(port))
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp / "server.log").read_text()) from None
                time.sleep(0.1)
        admin = socks[0]
        token = mint_token(SECRET, "bench", Role.ADMIN, 3600)
        assert "result" in _call(admin, "authenticate", {"auth_token": token})
        # Wait for the cameras, then one snapshot each (device labels) and a few errors.
        while True:
            cams = _call(admin, "get_camera_list")["result"]
            if cams["connected"] >= CAMERAS or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        for n in range(CAMERAS):
            _call(admin, "take_snapshot", {"device": f"camera{n}"}, rid=100 + n)
        for rid, method in enumerate(["get_metrics", "get_status", "no_such", "get_storage_info"]):
            _call(admin, method, rid=200 + rid)
        while len(socks) < CONNECTIONS:
            socks.append(_ws_handshake(port))
        samples, body = [], b""
        for _ in range(3):
            _scrape(port)
        for _ in range(renders):
            elapsed, body = _scrape(port)
            samples.append(elapsed)
        text = body.decode()
        conns = float(re.search(r"^camera_service_active_connections (\S+)$", text, re.M)[1])
        cams_up = float(
            re.search(r'^camera_service_cameras\{status="CONNECTED"\} (\S+)$', text, re.M)[1]
        )
        rss = psutil.Process(proc.pid).memory_info().rss / 2**20
        return ScrapeResult(timing(samples), len(body), conns, cams_up, round(rss, 1))
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# -- dispatcher throughput ------------------------------------------------------------


def worker(mode: str, calls: int) -> None:
    """Child process: calls/s of dispatcher.handle(ping) in `mode`; prints JSON."""
    from camsvc.app import App
    from camsvc.auth import Role
    from camsvc.auth.session import Session
    from camsvc.config import config_from_dict
    from camsvc.logs import configure_logging
    from camsvc.rpc.connection import RpcConnection
    from camsvc.rpc.ratelimit import TokenBucket

    level = {"off": "critical", "info": "info", "debug": "debug"}[mode]
    sink = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the process)
    configure_logging(level, "json", stream=sink)
    with tempfile.TemporaryDirectory(prefix="camsvc-bench-") as tmp:
        (Path(tmp) / "dev").mkdir()
        app = App(config_from_dict(_base_config(Path(tmp))))
        if mode == "off":
            app.dispatcher.observer = None
        conn = RpcConnection("bench", TokenBucket(1e12, 1e12))
        conn.session = Session(user_id="bench", role=Role.ADMIN, auth_method="jwt", expires_at=None)
        handle = app.dispatcher.handle
        msgs = [b'{"jsonrpc":"2.0","method":"ping","id":%d}' % i for i in range(calls)]
        for msg in msgs[:5000]:
            handle(conn, msg)
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        for msg in msgs:
            handle(conn, msg)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(
        json.dumps({"mode": mode, "calls_per_s": calls / elapsed, "calls_per_cpu_s": calls / cpu})
    )


class Throughput(msgspec.Struct, frozen=True):
    """Median calls per CPU-second per mode and the per-round figures."""

    calls: int
    rounds: int
    median_calls_per_cpu_s: dict[str, float]
    runs: dict[str, list[float]]  # calls per CPU-second
    wall_runs: dict[str, list[float]]  # calls per wall-clock second
    overhead_info: float  # 1 - info/off, per CPU-second
    overhead_debug: float


def bench_throughput(calls: int, rounds: int) -> Throughput:
    """Interleaved worker processes per mode."""
    runs: dict[str, list[float]] = {m: [] for m in MODES}
    wall: dict[str, list[float]] = {m: [] for m in MODES}
    for r in range(rounds):
        order = MODES[r % 3 :] + MODES[: r % 3]
        for mode in order:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.observability", "--worker", mode,
                 "--calls", str(calls)],
                cwd=ROOT, capture_output=True, text=True, check=True, timeout=600,
            )  # fmt: skip
            res = json.loads(out.stdout.strip().splitlines()[-1])
            runs[mode].append(round(res["calls_per_cpu_s"]))
            wall[mode].append(round(res["calls_per_s"]))
    med = {m: float(statistics.median(v)) for m, v in runs.items()}
    return Throughput(
        calls,
        rounds,
        med,
        runs,
        wall,
        round(1 - med["info"] / med["off"], 4),
        round(1 - med["debug"] / med["off"], 4),
    )


# -- full stack: loadgen against a server per mode -----------------------------------


def serve(mode: str, port: int) -> None:
    """Child process: the real App on `port` with the observer and log level of `mode`."""
    import trio

    from camsvc.app import App
    from camsvc.config import config_from_dict
    from camsvc.logs import configure_logging

    level = {"off": "critical", "info": "info", "debug": "debug"}[mode]
    sink = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the process)
    configure_logging(level, "json", stream=sink)
    with tempfile.TemporaryDirectory(prefix="camsvc-bench-") as tmp:
        (Path(tmp) / "dev").mkdir()
        cfg = _base_config(Path(tmp))
        cfg["server"]["port"] = port
        app = App(config_from_dict(cfg))
        if mode == "off":
            app.dispatcher.observer = None
        trio.run(app.run)


class StackRun(msgspec.Struct, frozen=True):
    """One loadgen run against one server."""

    mode: str
    rps: float
    server_cpu_pct: float
    per_cpu_s: float  # requests per server CPU-second
    p50_ms: float
    p99_ms: float


class FullStack(msgspec.Struct, frozen=True):
    """Medians per mode of the loadgen closed-loop runs."""

    connections: int
    window: int
    duration_s: float
    rounds: int
    runs: list[StackRun]
    median_rps: dict[str, float]
    median_per_cpu_s: dict[str, float]
    overhead_info: float  # 1 - info/off, requests per server CPU-second
    overhead_debug: float


def _stack_run(mode: str, connections: int, window: int, duration: float) -> StackRun:
    from camsvc.auth import Role, mint_token

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.observability", "--serve", mode, "--port", str(port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server ({mode}) did not start") from None
                time.sleep(0.1)
        env = dict(os.environ, CAMSVC_BENCH_TOKEN=mint_token(SECRET, "bench", Role.ADMIN, 3600))
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.loadgen", "closed", "--port", str(port),
             "-c", str(connections), "-w", str(window), "-d", str(duration), "--warmup", "1",
             "--server-pid", str(server.pid)],
            cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=120,
        )  # fmt: skip
        res = json.loads(out.stdout.strip().splitlines()[-1])
        cpu = float(res.get("server_cpu_pct") or 0.0)
        lat = res.get("latency") or {}
        return StackRun(
            mode,
            round(res["rps"], 1),
            round(cpu, 1),
            round(res["rps"] / (cpu / 100), 1) if cpu else 0.0,
            round(lat.get("p50_ms", 0.0), 3),
            round(lat.get("p99_ms", 0.0), 3),
        )
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def bench_fullstack(rounds: int, connections: int, window: int, duration: float) -> FullStack:
    """Interleaved server-per-mode runs of `loadgen closed` (authenticated ping)."""
    runs: list[StackRun] = []
    for r in range(rounds):
        for mode in MODES[r % 3 :] + MODES[: r % 3]:
            runs.append(_stack_run(mode, connections, window, duration))
            print(f"  {runs[-1]}", flush=True)
    rps = {m: float(statistics.median(x.rps for x in runs if x.mode == m)) for m in MODES}
    per = {m: float(statistics.median(x.per_cpu_s for x in runs if x.mode == m)) for m in MODES}
    return FullStack(
        connections, window, duration, rounds, runs, rps, per,
        round(1 - per["info"] / per["off"], 4), round(1 - per["debug"] / per["off"], 4),
    )  # fmt: skip


# -- report ---------------------------------------------------------------------------


class Report(msgspec.Struct, frozen=True):
    """Everything one run measured."""

    date: str
    commit: str
    machine: str
    load_before: list[float]
    nice: int
    render: Timing
    render_cpu: Timing
    render_bytes: int
    render_series: int
    scrape: ScrapeResult | None
    throughput: Throughput
    fullstack: FullStack | None


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = psutil.virtual_memory().total / 2**30
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {ram:.1f} GiB RAM, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def _commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except OSError:
        return "unknown"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def markdown(rep: Report) -> str:
    """The RESULTS.md section for one run."""
    t = rep.throughput
    med = t.median_calls_per_cpu_s
    lines = [
        SECTION,
        "",
        f"Date {rep.date}, commit `{rep.commit}`. Machine: {rep.machine}; load average before "
        f"the run {' / '.join(f'{x:.2f}' for x in rep.load_before)}; niceness {rep.nice}. "
        "Produced by "
        "`make bench-metrics` (`python -m benchmarks.observability`).",
        "",
        "### Targets",
        "",
        "| figure | target | measured | verdict |",
        "|---|---|---|---|",
        f"| `Metrics.render()` in-process, 16 cameras, 1,000 connections: wall p50 / p95 | < "
        f"{RENDER_TARGET_MS:g} ms | {rep.render.p50_ms} / {rep.render.p95_ms} ms | "
        f"{_verdict(rep.render.p95_ms < RENDER_TARGET_MS)} |",
        f"| same, CPU time p50 / p95 | < {RENDER_TARGET_MS:g} ms | {rep.render_cpu.p50_ms} / "
        f"{rep.render_cpu.p95_ms} ms | {_verdict(rep.render_cpu.p95_ms < RENDER_TARGET_MS)} |",
    ]
    if rep.scrape:
        s = rep.scrape.timing
        lines.append(
            f"| `GET /metrics` over HTTP (new TCP connection each), 16 cameras, 1,000 open "
            f"connections: p50 / p95 | < {RENDER_TARGET_MS:g} ms | {s.p50_ms} / {s.p95_ms} ms | "
            f"{_verdict(s.p95_ms < RENDER_TARGET_MS)} |"
        )
    if rep.fullstack:
        f = rep.fullstack
        lines += [
            f"| full stack (`loadgen closed`, {f.connections} connections, window {f.window}): "
            f"cost of metrics + logging at level `info`, per server CPU-second | < "
            f"{OVERHEAD_TARGET:.0%} | {f.overhead_info:.1%} | "
            f"{_verdict(f.overhead_info < OVERHEAD_TARGET)} |",
            f"| same with `logging.level: debug` (one `rpc` line per call) | (not a target) | "
            f"{f.overhead_debug:.1%} | - |",
        ]
    lines += [
        f"| dispatcher alone (in-process `handle(ping)`, per CPU-s): cost of the observer at "
        f"level `info` | "
        f"< {OVERHEAD_TARGET:.0%} | {t.overhead_info:.1%} | "
        f"{_verdict(t.overhead_info < OVERHEAD_TARGET)} |",
        f"| dispatcher alone with `logging.level: debug` | (not a target) | "
        f"{t.overhead_debug:.1%} | - |",
        "",
        "### /metrics",
        "",
        f"In-process: {rep.render.runs} renders of an App registry holding every registered "
        f"method answered (a few error codes each), 16 cameras with snapshots and the alert "
        f"series: {rep.render_series} series, {rep.render_bytes} bytes (more than a real "
        f"server exports: every method answered); wall p50 {rep.render.p50_ms} ms, p95 "
        f"{rep.render.p95_ms} ms, max {rep.render.max_ms} ms; CPU p50 {rep.render_cpu.p50_ms} "
        f"ms, p95 {rep.render_cpu.p95_ms} ms.",
        "",
    ]
    if rep.scrape:
        s = rep.scrape
        lines += [
            f"Over HTTP: `camsvc serve` with 16 emulated cameras (one snapshot each), "
            f"{s.connections_reported:.0f} open WebSocket connections (as the scrape reports "
            f"them), {s.cameras_reported:.0f} cameras CONNECTED, server RSS "
            f"{s.server_rss_mib} MiB; {s.timing.runs} scrapes of {s.bytes} bytes, each on a "
            f"new TCP connection, request sent to last byte read: p50 {s.timing.p50_ms} ms, "
            f"p95 {s.timing.p95_ms} ms, max {s.timing.max_ms} ms.",
            "",
        ]
    lines += ["### Request throughput with and without metrics and logging", ""]
    if rep.fullstack:
        f = rep.fullstack
        lines += [
            f"Full stack: the real App served by a bench launcher (`python -m "
            f"benchmarks.observability --serve MODE`), one server process per run, driven by "
            f"`benchmarks/loadgen.py closed` ({f.connections} authenticated connections, window "
            f"{f.window}, {f.duration_s:g} s measured after 1 s warm-up); modes interleaved over "
            f"{f.rounds} rounds. Requests per server CPU-second is the comparison figure "
            "(other work shares the 2 cores; req/s alone moves with it).",
            "",
            "| mode | req/s (median) | req per server CPU-s (median) | vs off "
            "| runs (req/s @ server CPU %) |",
            "|---|---|---|---|---|",
        ]
        for mode in MODES:
            mine = [r for r in f.runs if r.mode == mode]
            runs = ", ".join(f"{r.rps:.0f} @ {r.server_cpu_pct:.0f}%" for r in mine)
            ratio = f.median_per_cpu_s[mode] / f.median_per_cpu_s["off"]
            lines.append(
                f"| {mode} | {f.median_rps[mode]:.0f} | {f.median_per_cpu_s[mode]:.0f} | "
                f"{ratio:.3f} | {runs} |"
            )
        lines.append("")
    cost_us = (1 / med["info"] - 1 / med["off"]) * 1e6
    debug_us = (1 / med["debug"] - 1 / med["off"]) * 1e6
    if rep.fullstack:
        per_req_us = 1e6 / rep.fullstack.median_per_cpu_s["off"]
        lines += [
            f"From the dispatcher figures below, metrics cost {cost_us:.2f} µs of CPU per call "
            f"(debug logging {debug_us:.2f} µs); a full-stack request costs the server "
            f"{per_req_us:.0f} µs of CPU (median `off` above), so the expected full-stack cost is "
            f"{cost_us / per_req_us:.1%} at level `info` ({debug_us / per_req_us:.1%} at "
            "`debug`), below the run-to-run spread of the full-stack runs on this shared machine.",
            "",
        ]
    lines += [
        f"Dispatcher alone: `App(config).dispatcher.handle(conn, ping)` in-process, {t.calls} "
        f'calls per run, a fresh interpreter per run with `configure_logging(level, "json")` '
        f"to /dev/null; modes interleaved over {t.rounds} rounds, medians. `ping` does almost "
        "nothing and no transport is included, so this ratio is the upper bound of the cost. "
        "Compared per CPU-second of the worker (process time), which other work on the "
        "machine moves much less than calls per wall-clock second.",
        "",
        "| mode | calls per CPU-s (median) | runs, per CPU-s | runs, per wall-clock s | vs off |",
        "|---|---|---|---|---|",
    ]
    for mode in MODES:
        ratio = med[mode] / med["off"]
        runs = ", ".join(f"{v:.0f}" for v in t.runs[mode])
        wall = ", ".join(f"{v:.0f}" for v in t.wall_runs[mode])
        lines.append(f"| {mode} | {med[mode]:.0f} | {runs} | {wall} | {ratio:.3f} |")
    lines += [
        "",
        "Modes: `off` = `dispatcher.observer = None` and level `critical`; `info` = the metrics "
        "observer and level `info`, the default (the per-call `rpc` event is debug, so it is "
        "filtered); `debug` = observer plus one JSON log line per call. There is no config "
        "switch that turns the request observer off (`metrics.enabled: false` only removes "
        "the route), hence the bench launcher.",
        "",
        "Where the time goes: `prometheus_client`'s `generate_latest` formats every sample "
        "line in Python (label escaping, float formatting), a few µs per line, and the request "
        "histogram is 15 lines per method answered (12 buckets, `+Inf`, `_count`, `_sum`; no "
        "`_created` series), so render time grows with the number of methods called, not with "
        "connections or cameras. On the request path the observer is plain Python (a bucket "
        "count, a per-(method, code) count, the percentile deque); the Prometheus families "
        "are built by a collector only when `/metrics` is scraped.",
        "",
    ]
    return "\n".join(lines)


def update_results(section: str) -> None:
    """Replace (or append) this benchmark's section of RESULTS.md, keeping the others."""
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else "# Benchmark results\n"
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        nxt = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + ("" if nxt < 0 else "\n" + text[nxt + 1 :])
    RESULTS_MD.write_text(text.rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or one worker) and report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=200_000, help="calls per throughput run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved throughput rounds")
    parser.add_argument("--renders", type=int, default=300, help="renders / scrapes timed")
    parser.add_argument("--no-scrape", action="store_true", help="skip the HTTP server part")
    parser.add_argument("--stack-rounds", type=int, default=5, help="full-stack rounds (0: skip)")
    parser.add_argument("--stack-duration", type=float, default=4.0, help="seconds per run")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--report", type=Path, help="rewrite the section from a saved JSON result")
    parser.add_argument(
        "--nice", type=int, default=0, help="add to the niceness (negative needs root)"
    )
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.calls)
        return 0
    if args.serve:
        serve(args.serve, args.port)
        return 0
    if args.report:
        update_results(markdown(msgspec.json.decode(args.report.read_bytes(), type=Report)))
        return 0
    if args.nice:
        os.nice(args.nice)  # inherited by the workers, servers and load generators
    load = list(os.getloadavg())
    render, render_cpu, size, series = bench_render(args.renders)
    print(f"render: {render} cpu {render_cpu}", flush=True)
    scrape = None if args.no_scrape else bench_scrape(args.renders)
    print(f"scrape: {scrape}", flush=True)
    throughput = bench_throughput(args.calls, args.rounds)
    print(f"throughput: {throughput}", flush=True)
    fullstack = None
    if args.stack_rounds:
        fullstack = bench_fullstack(args.stack_rounds, 10, 3, args.stack_duration)
    rep = Report(
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        commit=_commit(),
        machine=_machine(),
        load_before=load,
        nice=os.nice(0),
        render=render,
        render_cpu=render_cpu,
        render_bytes=size,
        render_series=series,
        scrape=scrape,
        throughput=throughput,
        fullstack=fullstack,
    )
    section = markdown(rep)
    print(section)
    if not args.no_write:
        update_results(section)
        RESULTS_DIR.mkdir(exist_ok=True)
        (RESULTS_DIR / f"observability-{rep.date[:10]}.json").write_bytes(
            msgspec.json.format(msgspec.json.encode(rep))
        )
    cost = fullstack.overhead_info if fullstack else throughput.overhead_info
    ok = render_cpu.p95_ms < RENDER_TARGET_MS and cost < OVERHEAD_TARGET
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
