"""`make bench-soak`: 30 minutes of steady load on a service that streams and records, its
memory sampled throughout (the issue's mark: under 5 % growth after the warm-up).

Four cameras stream (H.264 through the MediaMTX stand-in), each watched by a viewer (an
ffmpeg reading its RTSP URL; without one the service rightly closes an idle stream after
`mediamtx.idle_close_after`), camera0 records, and 100 clients each send 5 mixed requests a
second (500/s in all). No faults are injected here: the fault soak (unplugs, MediaMTX
restarts) is `make test-long-soak` (tests/reliability/test_soak.py).
"""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import time
from collections.abc import Iterator
from typing import Any

from benchmarks.perf.model import Row, Scenario
from benchmarks.perf.scenarios import CAMERAS, Context, _op_row, say
from benchmarks.perf.usage import UsageSampler
from benchmarks.wsclient import Engine, Step, WsSocket, open_clients, wait_quiet

__all__ = ["soak"]

CLIENTS = 100
PERIOD_S = 0.2  # each client: 5 requests a second
MAX_GROWTH = 0.05
SAMPLE_S = 5.0
#: Each end of the growth is the median RSS over this long (one sample moves with the frames
#: in flight).
WINDOW_S = 60.0
#: The requests, in turn per client (the snapshot one in 20: about 25 a second in all).
MIX: list[tuple[str, bool]] = [
    ("ping", False),
    ("get_camera_list", False),
    ("get_camera_status", True),
    ("list_recordings", False),
    ("get_stream_url", True),
    ("get_streams", False),
    ("get_camera_status", True),
    ("list_snapshots", False),
    ("get_storage_info", False),
    ("get_camera_list", False),
    ("ping", False),
    ("get_camera_status", True),
    ("get_stream_url", True),
    ("list_recordings", False),
    ("get_status", False),
    ("get_camera_list", False),
    ("get_metrics", False),
    ("get_camera_status", True),
    ("ping", False),
    ("take_snapshot", True),
]


def _script(conns: list[WsSocket]) -> Any:
    state = {
        ws.fileno(): (k, time.monotonic() + PERIOD_S * k / len(conns)) for k, ws in enumerate(conns)
    }

    def script(ws: WsSocket) -> Step:
        turn, due = state[ws.fileno()]
        state[ws.fileno()] = (turn + 1, max(due + PERIOD_S, time.monotonic()))
        method, on_device = MIX[turn % len(MIX)]
        params: Any = {"device": f"camera{turn % CAMERAS}"} if on_device else None
        if method.startswith("list_"):
            params = {"limit": 20}
        return Step("mixed", method, params, due)

    return script


@contextlib.contextmanager
def viewers(urls: list[str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    """One ffmpeg per URL reading the stream over RTSP (and dropping it) until the end."""
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-rtsp_transport", "tcp"]
    out = ["-map", "0", "-c", "copy", "-f", "null", "-"]
    procs = [
        subprocess.Popen(
            [*argv, "-i", url, *out],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for url in urls
    ]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def soak(ctx: Context) -> Scenario:
    """The steady soak; its length is `--soak-seconds` (1800)."""
    t_begin = time.monotonic()
    total = ctx.args.soak_seconds
    warm = min(120.0, total / 4)
    with ctx.rig() as r:
        control = open_clients(1, r.server.port, r.server.token(ttl_s=86400))[0]
        urls = [
            control.call("start_streaming", {"device": f"camera{i}"}, timeout=60)["stream_url"]
            for i in range(CAMERAS)
        ]
        control.call("start_recording", {"device": "camera0"}, timeout=60)
        # Closed while the load runs: an idle socket here answers no keepalive ping, and the
        # service rightly drops it (that lost the first 30-minute run's report).
        control.close()
        with viewers(urls) as watching:
            # Admin: get_storage_info, get_status and get_metrics are admin methods.
            conns = open_clients(CLIENTS, r.server.port, r.server.token(ttl_s=86400, admin=True))
            wait_quiet(5.0)
            say(
                f"{CLIENTS} clients at {1 / PERIOD_S:g} requests/s each, {CAMERAS} cameras "
                f"streaming to a viewer each, camera0 recording, {total:.0f} s "
                f"(warm-up {warm:.0f} s)"
            )
            sampler = UsageSampler(r.server.pid)
            t0 = time.monotonic()

            def tick() -> None:
                s = sampler.sample()
                if len(sampler.samples) % 12 == 0:
                    say(f"  {s.t - t0:5.0f} s: RSS {s.rss_mb} MiB, {s.fds} fds")

            engine = Engine(conns)
            try:
                ops, elapsed = engine.scripted(
                    _script(conns), total, warmup_s=0.0, tick=tick, tick_s=SAMPLE_S
                )
            finally:
                engine.close()
            control = open_clients(1, r.server.port, r.server.token())[0]
            watched = [
                s["name"] for s in control.call("get_streams") if s["ready"] and s["readers"] > 0
            ]
            recording = control.call("get_camera_status", {"device": "camera0"})
            viewers_alive = sum(proc.poll() is None for proc in watching)
            for ws in [*conns, control]:
                ws.close()
    op = ops[0]
    series = [[s.t - t0, s.rss_mb] for s in sampler.samples]
    after = [rss for t, rss in series if t >= warm]
    window = max(1, round(WINDOW_S / SAMPLE_S))
    first = statistics.median(after[:window]) if after else float("nan")
    last = statistics.median(after[-window:]) if after else float("nan")
    growth = (last - first) / first if first else float("nan")
    say(f"  RSS after warm-up {first:.1f} → end {last:.1f} MiB ({100 * growth:+.1f} %)")
    held = len(watched) == CAMERAS and viewers_alive == CAMERAS
    rows = [
        _op_row(op, elapsed, sampler.usage(), name=f"Mixed requests, {CLIENTS} clients"),
        Row(
            name="Streams watched at the end",
            goal=f"{CAMERAS} of {CAMERAS}",
            value=len(watched),
            unit="streams",
            ok=held,
            note=f"ready with a reader: {', '.join(watched) or 'none'}; "
            f"viewers still reading: {viewers_alive}",
        ),
        Row(
            name="RSS growth after the warm-up",
            goal="< 5 %",
            value=round(100 * growth, 2),
            unit="%",
            rss_mb=last,
            ok=growth < MAX_GROWTH and op.errors == 0,
            note=f"{first:.1f} → {last:.1f} MiB, medians of the first and last "
            f"{window * SAMPLE_S:g} s after {warm:.0f} s; "
            f"peak {max(rss for _, rss in series):.1f} MiB",
        ),
    ]
    notes = [
        f"Requests in turn: {', '.join(m for m, _ in MIX)}. camera0's status at the end: "
        f"recording {recording.get('recording')!r}.",
        "No faults here; the fault soak is `make test-long-soak` (docs/reliability.md).",
    ]
    return Scenario(
        name="soak",
        title=f"Soak: {total / 60:.0f} minutes of steady load",
        rows=rows,
        wall_s=time.monotonic() - t_begin,
        notes=notes,
        series={"soak": series},
    )
