"""The soak of issue 11 (`make test-long-soak`, part of `make test-long`; never in `make test`):
`camsvc serve` with 4 emulated cameras streaming and one recording, 100 clients sending 500
mixed requests a second, a camera unplugged and plugged back every minute and MediaMTX (the
stand-in) restarted every 10 minutes. Passes with zero unanswered requests, zero crashes and
resident memory growing less than 5 % from the end of the warm-up to the end (medians over a
minute at each end).

CAMSVC_SOAK_SECONDS sets the duration (1800 in `make test-long`); shorter runs shrink the
fault periods so that every fault still happens at least twice.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import trio
import trio_websocket

from camsvc.streaming.standin import StandIn
from tests.fixtures.service import until
from tests.reliability.load import LoadClient, Request
from tests.reliability.process import ServiceProcess

SOAK_SECONDS = float(os.environ.get("CAMSVC_SOAK_SECONDS", "0"))
CAMERAS = 4
CLIENTS = 100
RATE_PER_CLIENT = 5.0  # 500 requests/s in all
MAX_MEMORY_GROWTH = 0.05
#: Periods at full length (issue 11); shorter soaks divide the run instead.
PLUG_PERIOD_S = min(60.0, SOAK_SECONDS / 4)
MEDIAMTX_PERIOD_S = min(600.0, SOAK_SECONDS / 2.5)
WARM_UP_S = min(120.0, SOAK_SECONDS / 4)
#: Growth compares medians of the samples over this long right after the warm-up and at the
#: end: a single sample lands anywhere in the ±15 MiB a camera's unplug and frames in flight
#: move the RSS by.
WINDOW_S = min(60.0, SOAK_SECONDS / 8)
#: Streams and the recording are (re)asked for this often: they end on unplug and outages.
KEEP_UP_S = 3.0
#: How long a camera stays unplugged once the service has seen it go.
UNPLUGGED_S = 5.0
DRAIN_S = 30.0

pytestmark = [
    pytest.mark.skipif(SOAK_SECONDS <= 0, reason="the soak runs with CAMSVC_SOAK_SECONDS set"),
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg"),
]

#: (weight, method, needs a device) of the request mix.
MIX: list[tuple[int, str, bool]] = [
    (20, "ping", False),
    (18, "get_camera_list", False),
    (15, "get_camera_status", True),
    (10, "list_snapshots", False),
    (10, "list_recordings", False),
    (10, "get_stream_url", True),
    (5, "get_streams", False),
    (4, "get_storage_info", False),
    (4, "get_status", False),
    (3, "get_metrics", False),
    (1, "take_snapshot", True),
]


def request_mix(seed: int) -> Any:
    """A deterministic stream of mixed requests over the cameras."""
    rng = random.Random(seed)
    weights = [w for w, _, _ in MIX]

    def next_request() -> Request:
        _, method, on_device = rng.choices(MIX, weights)[0]
        if not on_device:
            return method, ({"limit": 20} if method.startswith("list_") else None)
        return method, {"device": f"camera{rng.randrange(CAMERAS)}"}

    return next_request


class Soak:
    """What the fault and keep-up tasks did, for the report."""

    def __init__(self) -> None:
        self.unplugs = 0
        self.mediamtx_restarts = 0
        self.recording_starts = 0
        self.stream_starts = 0
        self.keep_up_errors: Counter[int] = Counter()
        self.keep_up_rounds = 0
        self.control_slowest: dict[str, float] = {}
        self.sent_at_start = 0
        self.rss: list[tuple[float, int]] = []


async def test_soak(nursery, cams, emu_dir: Path, tmp_path: Path) -> None:
    """Run for CAMSVC_SOAK_SECONDS with the load and faults above; then check the figures."""
    cameras = [cams(i) for i in range(CAMERAS)]
    mediamtx = Restartable(tmp_path / "recordings")
    await nursery.start(mediamtx.run)
    ports = mediamtx.standin.ports
    service = ServiceProcess(
        tmp_path,
        emu_dir,
        mediamtx={
            "api_url": ports.api_url,
            "spawn": "never",
            "rtsp_port": ports.rtsp,
            "health_check_interval": 1,
        },
        server={"max_connections": 1000},
    )
    soak = Soak()
    try:
        async with trio.open_nursery() as inner:
            await service.start(inner)
            clients = [
                LoadClient(service.url, service.token(), request_mix(i), rate=RATE_PER_CLIENT)
                for i in range(CLIENTS)
            ]
            for client in clients:
                await inner.start(client.run)
            control = await ControlCalls.open(inner, service)
            started = trio.current_time()
            sent_before = sum(c.sent for c in clients)
            end = started + SOAK_SECONDS
            async with trio.open_nursery() as faults:
                faults.start_soon(keep_up, control, soak)
                faults.start_soon(plug_cycle, control, cameras, soak)
                faults.start_soon(restart_mediamtx, mediamtx, soak, nursery)
                faults.start_soon(sample_memory, service, soak, started)
                await trio.sleep_until(end)
                faults.cancel_scope.cancel()
            assert service.proc.returncode is None, service.tail()
            sent_during = sum(c.sent for c in clients) - sent_before
            rss_end = service.rss()
            for client in clients:
                client.stop()
            with trio.move_on_after(DRAIN_S):
                await until(lambda: all(not c.outstanding for c in clients), DRAIN_S)
            inner.cancel_scope.cancel()
    finally:
        await service.stop()

    sent = sum(c.sent for c in clients)
    answered = sum(c.answered for c in clients)
    unanswered = sum(len(c.outstanding) for c in clients)
    codes: Counter[int] = sum((c.codes for c in clients), Counter())
    closed = [c.close_code for c in clients if c.close_code is not None]
    crashes = [
        e for e in service.logs if "exception" in e or e.get("event", "").endswith("_crashed")
    ]
    first = [rss for t, rss in soak.rss if WARM_UP_S <= t < WARM_UP_S + WINDOW_S]
    last = [rss for t, rss in soak.rss if t >= SOAK_SECONDS - WINDOW_S] + [rss_end]
    base = statistics.median(first or [soak.rss[0][1]])
    end_rss = statistics.median(last)
    growth = (end_rss - base) / base
    print(
        f"\nsoak {SOAK_SECONDS:g} s: {sent} requests sent ({sent_during / SOAK_SECONDS:.0f}/s "
        f"during the run), "
        f"{answered} answered, {unanswered} unanswered; codes {dict(codes)}; "
        f"slowest {max(c.slowest_s for c in clients):.2f} s ({_slowest(clients)}); "
        f"keep-up rounds {soak.keep_up_rounds}, slowest {_rounded(control.slowest)}; "
        f"connections closed by the "
        f"server: {len(closed)}; unplugs {soak.unplugs}, MediaMTX restarts "
        f"{soak.mediamtx_restarts}, recording (re)starts {soak.recording_starts}, stream "
        f"(re)starts {soak.stream_starts}, keep-up errors {dict(soak.keep_up_errors)}; "
        f"RSS {base / 2**20:.1f} MiB after warm-up -> {end_rss / 2**20:.1f} MiB "
        f"(medians over {WINDOW_S:.0f} s; last sample {rss_end / 2**20:.1f} MiB) "
        f"({growth:+.2%}), max {max(r for _, r in soak.rss) / 2**20:.1f} MiB; "
        f"crashes {len(crashes)}"
    )
    print("RSS MiB by time:", " ".join(f"{t:.0f}s={r / 2**20:.1f}" for t, r in soak.rss[::2]))
    assert unanswered == 0
    assert not closed, Counter(closed)
    assert not crashes, "\n".join(
        f"{e.get('timestamp')} {e.get('event')} {e.get('device', '')}\n{e.get('exception', '')}"
        for e in crashes[:3]
    )
    assert growth < MAX_MEMORY_GROWTH, f"RSS grew {growth:.2%}"
    assert soak.unplugs >= 2 and soak.mediamtx_restarts >= 2
    # The rate reached is a figure, not a pass mark (a loaded machine sends less); it is
    # printed above and flagged here so a run that did not apply the load is not mistaken
    # for one that did.
    if sent_during < 0.9 * CLIENTS * RATE_PER_CLIENT * SOAK_SECONDS:
        print(f"NOTE: the load generator reached {sent_during / SOAK_SECONDS:.0f} requests/s")


def _rounded(slowest: dict[str, float]) -> dict[str, float]:
    return {m: round(s, 2) for m, s in sorted(slowest.items(), key=lambda kv: -kv[1])[:4]}


def _slowest(clients: list[LoadClient]) -> dict[str, float]:
    merged: dict[str, float] = {}
    for client in clients:
        for method, took in client.slowest.items():
            merged[method] = max(merged.get(method, 0.0), took)
    return _rounded(merged)


class Restartable:
    """The MediaMTX stand-in, restartable on the same ports."""

    def __init__(self, recordings: Path) -> None:
        self._recordings = recordings
        self.standin = StandIn(recordings=str(recordings))
        self._scope = trio.CancelScope()
        self._stopped = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the current stand-in until `restart` stops it."""
        self._scope = trio.CancelScope()
        self._stopped = trio.Event()
        try:
            with self._scope:
                await self.standin.run(task_status=task_status)
        finally:
            self._stopped.set()

    async def restart(self, nursery: trio.Nursery) -> None:
        """Stop the stand-in (its paths, readers and recorder go) and start a fresh one."""
        ports = self.standin.ports
        self._scope.cancel()
        with trio.fail_after(15):
            await self._stopped.wait()  # the ports are free again
        self.standin = StandIn(
            api_port=ports.api, rtsp_port=ports.rtsp, recordings=str(self._recordings)
        )
        await nursery.start(self.run)


class ControlCalls:
    """A client of its own for the keep-up and fault tasks: one request at a time, codes only."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._lock = trio.Lock()
        self.slowest: dict[str, float] = {}

    @classmethod
    async def open(cls, nursery: trio.Nursery, service: ServiceProcess) -> ControlCalls:
        """Connect and authenticate as admin."""
        calls = cls(await trio_websocket.connect_websocket_url(nursery, service.url))
        assert await calls.code("authenticate", {"auth_token": service.token()}) == 0
        return calls

    async def reply(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """The whole response (notifications on the way are skipped)."""
        began = trio.current_time()
        try:
            return await self._reply(method, params)
        finally:
            took = trio.current_time() - began
            self.slowest[method] = max(self.slowest.get(method, 0.0), took)

    async def _reply(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        async with self._lock:
            request_id = f"k{next(self._ids)}"
            await self._ws.send_message(
                json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": request_id})
            )
            with trio.fail_after(30):
                while True:
                    reply = json.loads(await self._ws.get_message())
                    if isinstance(reply, dict) and reply.get("id") == request_id:
                        return reply

    async def code(self, method: str, params: dict[str, Any]) -> int:
        """0 for a result, else the error code."""
        reply = await self.reply(method, params)
        return reply["error"]["code"] if "error" in reply else 0


async def keep_up(control: ControlCalls, soak: Soak) -> None:
    """Keep the 4 streams and the recording of camera0 going through unplugs and outages."""
    while True:
        for i in range(CAMERAS):
            code = await control.code("start_streaming", {"device": f"camera{i}"})
            soak.stream_starts += code == 0
            if code:
                soak.keep_up_errors[code] += 1
        code = await control.code("start_recording", {"device": "camera0"})
        soak.recording_starts += code == 0
        if code not in (0, -32020):  # -32020: already recording
            soak.keep_up_errors[code] += 1
        soak.keep_up_rounds += 1
        await trio.sleep(KEEP_UP_S)


async def plug_cycle(control: ControlCalls, cameras: list[Any], soak: Soak) -> None:
    """Every PLUG_PERIOD_S, pull the next camera out, and plug it back once the service has
    seen it go."""
    for i, cam in itertools.cycle(enumerate(cameras)):
        await trio.sleep(PLUG_PERIOD_S)
        cam.unplug()
        soak.unplugs += 1
        with trio.fail_after(15):
            while True:
                reply = await control.reply("get_camera_status", {"device": f"camera{i}"})
                if "error" in reply or reply["result"]["status"] != "CONNECTED":
                    break
                await trio.sleep(0.1)  # the child's state, seen only through the API
        await trio.sleep(UNPLUGGED_S)  # the fault lasts this long
        cam.plug()


async def restart_mediamtx(mediamtx: Restartable, soak: Soak, nursery: trio.Nursery) -> None:
    """Every MEDIAMTX_PERIOD_S, stop the stand-in and start a fresh one on the same ports."""
    while True:
        await trio.sleep(MEDIAMTX_PERIOD_S)
        await mediamtx.restart(nursery)
        soak.mediamtx_restarts += 1


async def sample_memory(service: ServiceProcess, soak: Soak, started: float) -> None:
    """RSS of the child every 5 s."""
    while True:
        soak.rss.append((trio.current_time() - started, service.rss()))
        await trio.sleep(5)
