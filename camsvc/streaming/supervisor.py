"""`mediamtx.spawn: auto`: start and supervise the real MediaMTX when none answers.

Owns: the one-time probe of `mediamtx.api_url` at start, the generated `mediamtx.yml`
(API, RTSP, WebRTC and HLS addresses from camsvc's config; paths are added by
`PathManager` over the API), and the child process (in demo mode, with no binary, the
stand-in `python -m camsvc.streaming.standin` instead): restarted after a pause if it exits,
SIGINT then SIGKILL on shutdown. Must not touch: paths (the API does that), recordings.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import structlog
import trio
import yaml

from camsvc.config import MediaMTXConfig, RecordingConfig
from camsvc.streaming.mediamtx import MediaMTXClient, MediaMTXError
from camsvc.streaming.paths import record_path
from camsvc.streaming.processes import end_process_group

__all__ = ["RESTART_PAUSE_S", "MediaMTXSupervisor", "generated_config"]

log = structlog.get_logger("camsvc.streaming.supervisor")

# Pause before a MediaMTX that exited is started again.
RESTART_PAUSE_S: Final = 2.0
# How long a started MediaMTX may take before its API answers.
START_WAIT_S: Final = 10.0
# Grace after SIGINT before SIGKILL on shutdown.
STOP_GRACE_S: Final = 5.0


def generated_config(cfg: MediaMTXConfig, recording: RecordingConfig) -> dict[str, object]:
    """The mediamtx.yml camsvc writes for a MediaMTX it starts itself."""
    api = urlsplit(cfg.api_url)
    return {
        "logLevel": "info",
        "api": True,
        "apiAddress": f"{api.hostname or '127.0.0.1'}:{api.port or 9997}",
        "rtsp": True,
        "rtspAddress": f":{cfg.rtsp_port}",
        "webrtc": True,
        "webrtcAddress": f":{cfg.webrtc_port}",
        "hls": True,
        "hlsAddress": f":{cfg.hls_port}",
        "rtmp": False,
        "srt": False,
        "pathDefaults": {
            "recordPath": record_path(recording.path),
            "recordFormat": "fmp4",
        },
        "paths": {},
    }


class MediaMTXSupervisor:
    """Runs `mediamtx.binary` with a generated config when spawn is auto and none answers."""

    def __init__(
        self,
        cfg: MediaMTXConfig,
        recording: RecordingConfig,
        client: MediaMTXClient,
        *,
        standin_fallback: bool = False,
    ) -> None:
        self.cfg = cfg
        self.standin_fallback = standin_fallback
        self.recording = recording
        self.client = client
        self.spawned = False
        self.pid: int | None = None
        self.starts = 0

    async def _answers(self) -> bool:
        try:
            await self.client.info()
        except MediaMTXError:
            return False
        return True

    async def run(self, *, task_status: trio.TaskStatus[bool] = trio.TASK_STATUS_IGNORED) -> None:
        """Probe once; if needed and possible, start MediaMTX and keep it running.

        `task_status.started(spawned)` once decided (and, if spawned, once launched).
        """
        if self.cfg.spawn == "never" or await self._answers():
            task_status.started(False)
            return
        binary = shutil.which(self.cfg.binary)
        if binary is None and self.standin_fallback:
            # Demo mode without MediaMTX: the stand-in plays its part on the same ports.
            log.warning("mediamtx_standin", message="no mediamtx binary: running the stand-in")
            self.spawned = True
            while True:
                await self._run_once(self.standin_argv(), task_status)
                task_status = trio.TASK_STATUS_IGNORED
                await trio.sleep(RESTART_PAUSE_S)
        if binary is None:
            log.warning("mediamtx_not_spawned", reason="binary not found", binary=self.cfg.binary)
            task_status.started(False)
            return
        self.spawned = True
        with tempfile.TemporaryDirectory(prefix="camsvc-mediamtx-") as tmp:
            conf = Path(tmp) / "mediamtx.yml"
            text = yaml.safe_dump(generated_config(self.cfg, self.recording))
            await trio.Path(conf).write_text(text)
            while True:
                await self._run_once([binary, str(conf)], task_status)
                task_status = trio.TASK_STATUS_IGNORED
                await trio.sleep(RESTART_PAUSE_S)

    def standin_argv(self) -> list[str]:
        """The command running the stand-in on `api_url`'s port and `rtsp_port`."""
        api = urlsplit(self.cfg.api_url)
        return [
            sys.executable,
            "-m",
            "camsvc.streaming.standin",
            "--host",
            api.hostname or "127.0.0.1",
            "--api-port",
            str(api.port or 9997),
            "--rtsp-port",
            str(self.cfg.rtsp_port),
            "--recordings",
            self.recording.path,
        ]

    async def _run_once(self, argv: list[str], task_status: trio.TaskStatus[bool]) -> None:
        proc = await trio.lowlevel.open_process(
            argv, start_new_session=True, stdin=subprocess.DEVNULL
        )
        self.pid = proc.pid
        self.starts += 1
        log.info("mediamtx_spawned", pid=proc.pid, argv=argv)
        try:
            # Report started once the API answers (bounded), so the first checks succeed.
            with trio.move_on_after(START_WAIT_S):
                while proc.returncode is None:
                    if await self._answers():
                        break
                    await trio.sleep(0.1)
            task_status.started(True)
            code = await proc.wait()
            log.warning("mediamtx_exited", pid=proc.pid, code=code)
        finally:
            with trio.CancelScope(shield=True):
                await end_process_group(proc, signal.SIGINT, STOP_GRACE_S)
            self.pid = None
