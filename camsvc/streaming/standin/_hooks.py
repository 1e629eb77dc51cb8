"""Hook commands as MediaMTX runs them (`internal/externalcmd`): one process per hook.

Owns: variable expansion (`$MTX_PATH` from the hook's environment, then the process's),
shell-like splitting without a shell, the environment, restart after a pause, and the stop:
SIGINT to the command's process group, SIGKILL if it is still there after a grace period.
Must not touch: paths, RTSP, the API.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
from collections.abc import Mapping
from typing import Final

import structlog
import trio

__all__ = ["RESTART_PAUSE_S", "STOP_GRACE_S", "HookCmd", "expand", "terminate"]

log = structlog.get_logger("camsvc.standin.hooks")

# MediaMTX waits this long before restarting a command that exited.
RESTART_PAUSE_S: Final = 5.0
# How long a stopped command may take to exit after SIGINT before SIGKILL.
STOP_GRACE_S: Final = 5.0

_VAR = re.compile(r"\$(\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


def expand(cmdline: str, env: Mapping[str, str]) -> str:
    """`$VAR`/`${VAR}` replaced from `env`, else from the process environment, else ''."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(2) or m.group(3)
        return env.get(name, os.environ.get(name, ""))

    return _VAR.sub(sub, cmdline)


class HookCmd:
    """One running hook; `run` starts it (restarting if asked) until `stop` or cancel."""

    def __init__(self, kind: str, cmdline: str, env: Mapping[str, str], *, restart: bool) -> None:
        self.kind = kind
        self.argv = shlex.split(expand(cmdline, env))
        self.env = {**os.environ, **env}
        self.restart = restart
        self.pid: int | None = None
        self.runs = 0
        self.started = trio.Event()
        self.done = trio.Event()
        self._scope = trio.CancelScope()

    def stop(self) -> None:
        """Stop the command (idempotent); `done` is set once it has exited."""
        self._scope.cancel()

    async def run(self) -> None:
        """Run the command, restart it after RESTART_PAUSE_S if asked, until stopped."""
        try:
            with self._scope:
                while True:
                    await self._run_once()
                    if not self.restart:
                        return
                    await trio.sleep(RESTART_PAUSE_S)
        finally:
            self.done.set()

    async def _run_once(self) -> None:
        try:
            proc = await trio.lowlevel.open_process(
                self.argv, env=self.env, start_new_session=True, stdin=subprocess.DEVNULL
            )
        except OSError as exc:
            log.warning("hook_start_failed", hook=self.kind, argv=self.argv, error=str(exc))
            return
        self.pid = proc.pid
        self.runs += 1
        self.started.set()
        log.info("hook_started", hook=self.kind, pid=proc.pid, argv=self.argv)
        try:
            code = await proc.wait()
            log.info("hook_exited", hook=self.kind, pid=proc.pid, code=code)
        finally:
            with trio.CancelScope(shield=True):
                await terminate(proc)
            self.pid = None


async def terminate(proc: trio.Process) -> None:
    """SIGINT the process group, wait STOP_GRACE_S, then SIGKILL it; reap."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    with trio.move_on_after(STOP_GRACE_S):
        await proc.wait()
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()
