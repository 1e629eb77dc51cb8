"""Graceful shutdown under load (issue 11): SIGTERM to `camsvc serve` while clients send
requests and a camera records. Recordings stop cleanly (playable, catalogued with their
duration), every request is answered or was in flight when its connection closed with 1001,
and the process exits 0 within 5 s of the signal.
"""

from __future__ import annotations

import itertools
import shutil
import signal
import sqlite3
from pathlib import Path

import pytest
import trio
import trio_websocket

from camsvc.streaming.standin import StandIn
from tests.fixtures.service import RpcClient, until
from tests.reliability.load import LoadClient, Request
from tests.reliability.media import ffprobe_duration
from tests.reliability.process import ServiceProcess

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

#: The bound of issue 11, from SIGTERM to the process gone.
EXIT_WITHIN_S = 5.0
CLIENTS = 6
WINDOW = 4  # requests each client keeps in flight


def mixed_requests(device: str) -> Request:
    """A cycle of cheap and slow requests, snapshots included."""
    cycle = itertools.cycle(
        [
            ("ping", None),
            ("get_camera_list", None),
            ("take_snapshot", {"device": device}),
            ("list_snapshots", {"limit": 10}),
            ("get_camera_status", {"device": device}),
            ("list_recordings", None),
        ]
    )
    return lambda: next(cycle)  # type: ignore[return-value]


async def test_sigterm_under_load(nursery, cams, emu_dir: Path, tmp_path: Path) -> None:
    """SIGTERM with 6 clients, 4 requests each, in flight and a recording running."""
    cams(0)
    cams(1)
    standin = StandIn(recordings=str(tmp_path / "recordings"))
    await nursery.start(standin.run)
    service = ServiceProcess(
        tmp_path,
        emu_dir,
        mediamtx={
            "api_url": standin.ports.api_url,
            "spawn": "never",
            "rtsp_port": standin.ports.rtsp,
            "health_check_interval": 0.5,
        },
    )
    try:
        async with trio.open_nursery() as inner:
            await service.start(inner)
            clients = [
                LoadClient(service.url, service.token(), mixed_requests(f"camera{i % 2}"),
                           window=WINDOW)
                for i in range(CLIENTS)
            ]  # fmt: skip
            for client in clients:
                await inner.start(client.run)
            recorder = RpcClient(await trio_websocket.connect_websocket_url(inner, service.url))
            await recorder.call("authenticate", {"auth_token": service.token()})
            started = await recorder.call("start_recording", {"device": "camera0"})
            segment = tmp_path / "recordings" / "camera0" / started["filename"]
            await until(lambda: segment.stat().st_size > 0, 10)
            await until(lambda: all(c.answered >= 20 for c in clients), 30)

            sent_at = trio.current_time()
            service.proc.send_signal(signal.SIGTERM)
            code = await service.wait(timeout_s=30)
            elapsed = trio.current_time() - sent_at
            inner.cancel_scope.cancel()
    finally:
        await service.stop()

    print(f"\nSIGTERM to exit: {elapsed:.2f} s; requests answered: "
          f"{sum(c.answered for c in clients)}, in flight at close: "
          f"{sum(len(c.outstanding) for c in clients)}")  # fmt: skip
    assert code == 0, service.tail()
    assert elapsed < EXIT_WITHIN_S, f"exit took {elapsed:.2f} s"
    assert "shutdown_complete" in {e["event"] for e in service.logs}
    for client in clients:
        assert client.close_code == 1001, client.close_code
        # Answered, or still in flight when the close came: never more than the window.
        assert len(client.outstanding) <= WINDOW
        assert set(client.codes) <= {0}, client.codes  # nothing answered with an error
    # The recording stopped for the shutdown, its segment closed, playable and catalogued.
    stops = service.events("recording_stopped")
    assert [e["reason"] for e in stops] == ["shutdown"], stops
    assert await ffprobe_duration(segment) > 0
    db = sqlite3.connect(tmp_path / "camsvc.db")
    try:
        row = db.execute(
            "SELECT size, duration FROM files WHERE kind = 'recording' AND filename = ?",
            (started["filename"],),
        ).fetchone()
    finally:
        db.close()
    assert row is not None and row[0] == segment.stat().st_size and row[1] > 0
