"""`camsvc serve` as a real child process, for the checks that kill or signal the whole service
(crash recovery, graceful shutdown, the soak): a YAML config on the test's folders, the
emulated cameras of CAMSVC_EMU_DIR, and a MediaMTX stand-in the test runs itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import trio
import yaml

from camsvc.auth import Role, mint_token
from tests.fixtures.service import merge

__all__ = ["ServiceProcess"]

SECRET = "reliability-secret-0123456789abcdef0123"
#: Bound on `camsvc serve` coming up (imports, first scan, first MediaMTX check).
START_TIMEOUT_S = 30


class ServiceProcess:
    """One `camsvc serve` child; restartable on the same folders (as after a crash)."""

    def __init__(self, folder: Path, device_dir: Path, **sections: dict[str, Any]) -> None:
        self.folder = folder
        self.config: dict[str, Any] = merge(
            {
                "server": {"host": "127.0.0.1", "port": 0},
                "health": {"enabled": False},
                "security": {"jwt_secret_key": SECRET, "api_keys_path": str(folder / "keys.json")},
                "snapshots": {"path": str(folder / "snapshots")},
                "recording": {"path": str(folder / "recordings")},
                "storage": {"db_path": str(folder / "camsvc.db")},
                "camera": {"device_dir": str(device_dir), "poll_interval": 30},
                "logging": {"level": "info"},
            },
            sections,
        )
        self.proc: trio.Process | None = None
        self.port = 0
        self.logs: list[dict[str, Any]] = []
        self.starts = 0
        self._listening = trio.Event()
        self._catalog_ready = trio.Event()
        self._exited = trio.Event()

    @property
    def url(self) -> str:
        """The WebSocket URL of the running child."""
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def pid(self) -> int:
        """The child's pid."""
        assert self.proc is not None
        return self.proc.pid

    def token(self, role: str = "admin") -> str:
        """A JWT the child accepts."""
        return mint_token(SECRET, "reliability", Role.parse(role), 3600)

    async def start(self, nursery: trio.Nursery) -> None:
        """Start the child and return once it logged `listening` (its port is then known)."""
        path = self.folder / "camsvc.yaml"
        path.write_text(yaml.safe_dump(self.config))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAMERA_SERVICE_")}
        env["CAMSVC_CONFIG"] = str(path)
        self._listening = trio.Event()
        self._catalog_ready = trio.Event()
        self._exited = trio.Event()
        self.proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "camsvc", "serve"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.starts += 1
        nursery.start_soon(self._read_logs, self.proc)
        with trio.fail_after(START_TIMEOUT_S):
            await self._listening.wait()
        if self.proc.returncode is not None:
            raise RuntimeError(f"camsvc exited early ({self.proc.returncode}): {self.tail()}")

    async def catalog_ready(self, timeout_s: float = 30) -> None:
        """Until the child logged `catalog_ready` (its first reconcile with the disk is done)."""
        with trio.fail_after(timeout_s):
            await self._catalog_ready.wait()

    async def _read_logs(self, proc: trio.Process) -> None:
        """Keep the child's JSON log lines (and never let its stderr pipe fill up)."""
        assert proc.stderr is not None
        buffer = b""
        # Kept on disk too (pytest keeps the last runs' folders), for a failure's post-mortem.
        log_file = (self.folder / f"camsvc-{self.starts}.log").open("ab")
        try:
            while chunk := await proc.stderr.receive_some(65536):
                log_file.write(chunk)
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    try:
                        event = json.loads(line)
                    except ValueError:
                        event = {"event": "raw", "text": line.decode(errors="replace")}
                    if not isinstance(event, dict):
                        event = {"event": "raw", "text": str(event)}
                    event["start"] = self.starts
                    self.logs.append(event)
                    if event.get("event") == "listening":
                        self.port = int(event["port"])
                        self._listening.set()
                    elif event.get("event") == "catalog_ready":
                        self._catalog_ready.set()
        finally:
            log_file.close()
            await proc.wait()
            self._listening.set()  # an early exit must not leave start() waiting
            self._exited.set()

    def events(self, name: str) -> list[dict[str, Any]]:
        """Log events called `name`, from every start so far."""
        return [e for e in self.logs if e.get("event") == name]

    def tail(self, n: int = 20) -> str:
        """The last log lines, for failure messages."""
        return "\n".join(json.dumps(e) for e in self.logs[-n:])

    def rss(self) -> int:
        """Resident memory of the child (bytes)."""
        return psutil.Process(self.pid).memory_info().rss

    def children(self) -> list[psutil.Process]:
        """The child's own children (ffmpeg encoders)."""
        return psutil.Process(self.pid).children(recursive=True)

    def kill(self) -> None:
        """SIGKILL: the crash the service must recover from."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    async def wait(self, timeout_s: float = 30) -> int:
        """Wait for the child to exit (and its log to end); its exit code."""
        assert self.proc is not None
        with trio.fail_after(timeout_s):
            await self._exited.wait()
        assert self.proc.returncode is not None
        return self.proc.returncode

    async def stop(self) -> None:
        """Best-effort end of a child still running (test teardown)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            with trio.move_on_after(10):
                await self.proc.wait()
