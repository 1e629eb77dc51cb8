"""`camsvc serve --demo` as a subprocess with no MediaMTX answering: it starts the stand-in,
says so early in its log, and serves the whole API (what `make run` does on this machine)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio_websocket
import yaml

from camsvc.auth.roles import Role
from camsvc.auth.tokens import mint_token
from tests.fixtures.service import RpcClient
from tests.streaming.live import Inbox, ffprobe, recording_update, topic

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

SECRET = "demo-test-secret-0123456789abcdef0123456789"
# The stand-in must be announced among the service's first log lines.
FIRST_LINES = 12
# Variables of the test run that must not reach the demo (it makes its own device).
_DROP_ENV = ("LD_PRELOAD", "CAMSVC_EMU_DIR", "CAMSVC_EMU_PRELOADED", "CAMSVC_DEMO_DIR")


def free_ports(n: int) -> list[int]:
    """`n` distinct loopback ports free right now."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class DemoProcess:
    """The demo service's process and the log lines it has written so far."""

    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []
        self.changed = trio.Event()

    async def read_log(self) -> None:
        assert self.proc.stdout is not None
        buf = b""
        async for chunk in self.proc.stdout:
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    entry = {"text": line.decode("utf-8", "replace")}
                self.lines.append(entry if isinstance(entry, dict) else {"value": entry})
            self.changed.set()
            self.changed = trio.Event()

    def events(self) -> list[str]:
        """The `event` of each structured log line, in order."""
        return [line["event"] for line in self.lines if "event" in line]

    async def wait_for(self, event: str, timeout_s: float = 30) -> dict[str, Any]:
        """The first log line of `event` (bounded)."""
        with trio.fail_after(timeout_s):
            while True:
                for line in self.lines:
                    if line.get("event") == event:
                        return line
                if self.proc.returncode is not None:
                    raise AssertionError(f"camsvc exited: {self.lines[-5:]}")
                await self.changed.wait()


async def test_demo_serves_the_whole_api(nursery: trio.Nursery, tmp_path: Path) -> None:
    """Two cameras, a snapshot and a recording that download, a stream ffprobe reads."""
    main, api, rtsp = free_ports(3)
    config = {
        "server": {"host": "127.0.0.1", "port": main},
        "health": {"enabled": False},
        "security": {"jwt_secret_key": SECRET, "api_keys_path": str(tmp_path / "keys.json")},
        "snapshots": {"path": str(tmp_path / "snapshots")},
        "recording": {"path": str(tmp_path / "recordings")},
        "storage": {"db_path": str(tmp_path / "camsvc.db")},
        "mediamtx": {"api_url": f"http://127.0.0.1:{api}", "rtsp_port": rtsp},
        "logging": {"format": "json"},
    }
    cfg = tmp_path / "camsvc.yaml"
    cfg.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
    env = {k: v for k, v in env.items() if not k.startswith("CAMERA_SERVICE_")}
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "camsvc", "-c", str(cfg), "serve", "--demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    demo = DemoProcess(proc)
    nursery.start_soon(demo.read_log)
    try:
        await demo.wait_for("listening")
        await demo.wait_for("mediamtx_standin")
        standin_pid = (await demo.wait_for("mediamtx_spawned"))["pid"]
        events = demo.events()
        assert events[0] == "demo_mode"
        assert "stand-in" in (await demo.wait_for("demo_mode"))["mediamtx"]
        assert events.index("mediamtx_standin") < FIRST_LINES, events
        await exercise(main, rtsp, tmp_path)
    finally:
        with trio.CancelScope(shield=True):
            await stop(proc)
    assert proc.returncode == 0, demo.lines[-5:]
    assert "shutdown_complete" in demo.events()
    with pytest.raises(ProcessLookupError):
        os.kill(standin_pid, 0)  # the stand-in ended with the service


async def stop(proc: trio.Process) -> None:
    """SIGINT, as Ctrl-C would; SIGKILL if it does not end in time."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
        with trio.move_on_after(20):
            await proc.wait()
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


async def exercise(port: int, rtsp: int, tmp_path: Path) -> None:
    """The Done-when checks of issue 8 against the running demo."""
    token = mint_token(SECRET, "demo-test", Role.ADMIN, 600)
    bearer = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{port}"
    async with (
        trio_websocket.open_websocket_url(f"ws://127.0.0.1:{port}/ws") as ws,
        httpx.AsyncClient(base_url=base, headers=bearer, timeout=10) as http,
    ):
        client = RpcClient(ws)
        await client.call("authenticate", {"auth_token": token})
        # The first scan and the stand-in's first check run after the listener is up.
        await client.call("subscribe_events", {"topics": ["system.startup"]})
        inbox = Inbox(client)
        if (await client.call("get_system_status"))["status"] != "ready":
            await inbox.expect(topic("system.startup"), timeout_s=20)
        cameras = (await client.call("get_camera_list"))["cameras"]
        assert [(c["device"], c["status"]) for c in cameras] == [
            ("camera0", "CONNECTED"),
            ("camera1", "CONNECTED"),
        ]

        snap = await client.call("take_snapshot", {"device": "camera0"})
        got = await http.get(snap["download_url"])
        assert got.status_code == 200 and got.content[:2] == b"\xff\xd8"
        assert len(got.content) == snap["file_size"]

        started = await client.call("start_recording", {"device": "camera1", "duration": 3})
        stopped = await inbox.expect(recording_update("STOPPED"))
        assert stopped["params"]["reason"] == "duration_elapsed"
        info = await client.call("get_recording_info", {"filename": started["filename"]})
        got = await http.get(info["download_url"])
        assert got.status_code == 200 and len(got.content) == info["file_size"] > 0
        local = tmp_path / started["filename"]
        local.write_bytes(got.content)
        probed = await ffprobe(str(local), "format=duration:stream=codec_name")
        assert probed["streams"] == [{"codec_name": "h264"}]
        assert 2.5 <= float(probed["format"]["duration"]) <= 3.5, probed

        stream = await client.call("start_streaming", {"device": "camera0"})
        assert stream["stream_url"].endswith(f":{rtsp}/camera0")
        probed = await ffprobe(f"rtsp://127.0.0.1:{rtsp}/camera0", "stream=codec_name,width,height")
        w, h = map(int, cameras[0]["resolution"].split("x"))
        assert probed["streams"] == [{"codec_name": "h264", "width": w, "height": h}]
