"""Helpers of the end-to-end streaming tests: a restartable stand-in, notification matching."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from camsvc.streaming.standin import StandIn, StandInPorts
from tests.fixtures.service import RpcClient, Service

__all__ = [
    "Inbox",
    "Restartable",
    "ffprobe",
    "recording_update",
    "serve_with_standin",
    "start_live",
    "topic",
]


async def ffprobe(target: str, entries: str, *, timeout_s: float = 15) -> dict[str, Any]:
    """ffprobe's JSON for `target` (an RTSP URL over TCP, or a file)."""
    transport = ["-rtsp_transport", "tcp"] if target.startswith("rtsp") else []
    argv = ["ffprobe", "-v", "error", *transport, "-show_entries", entries, "-of", "json", target]
    with trio.fail_after(timeout_s):
        done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True)
    return json.loads(done.stdout)


class Restartable:
    """A stand-in that can be stopped (an outage) and started again on the same ports."""

    def __init__(self, nursery: trio.Nursery, recordings: Path) -> None:
        self._nursery = nursery
        self._recordings = str(recordings)
        self._scope = trio.CancelScope()
        self._ended = trio.Event()
        self.ports: StandInPorts | None = None

    async def start(self) -> StandInPorts:
        """Start it: on fresh ports the first time, on the same ports afterwards."""
        api, rtsp = (self.ports.api, self.ports.rtsp) if self.ports else (0, 0)
        standin = StandIn(api_port=api, rtsp_port=rtsp, recordings=self._recordings)
        self._scope, self._ended = trio.CancelScope(), trio.Event()
        scope, ended = self._scope, self._ended

        async def run(task_status: trio.TaskStatus[StandInPorts]) -> None:
            try:
                with scope:
                    await standin.run(task_status=task_status)
            finally:
                ended.set()

        self.ports = await self._nursery.start(run)
        return self.ports

    async def stop(self) -> None:
        """Stop it and wait until its sockets are closed."""
        self._scope.cancel()
        with trio.fail_after(5):
            await self._ended.wait()


class Inbox:
    """A client's notifications; `expect` finds one in any order (earlier ones are kept)."""

    def __init__(self, client: RpcClient) -> None:
        self.client = client
        self.seen: list[dict[str, Any]] = []

    async def expect(
        self, match: Callable[[dict[str, Any]], bool], timeout_s: float = 15
    ) -> dict[str, Any]:
        """The first message `match` accepts, seen already or arriving (bounded)."""
        for i, msg in enumerate(self.seen):
            if match(msg):
                return self.seen.pop(i)
        with trio.fail_after(timeout_s):
            while True:
                msg = await self.client.recv()
                if match(msg):
                    return msg
                self.seen.append(msg)


def topic(name: str, **data: Any) -> Callable[[dict[str, Any]], bool]:
    """A matcher of the `event` notification of `name` whose data holds `data`."""

    def match(msg: dict[str, Any]) -> bool:
        if msg.get("method") != "event" or msg["params"]["topic"] != name:
            return False
        return all(msg["params"]["data"].get(k) == v for k, v in data.items())

    return match


def recording_update(status: str) -> Callable[[dict[str, Any]], bool]:
    """A matcher of the `recording_status_update` of `status`."""
    return lambda msg: (
        msg.get("method") == "recording_status_update" and msg["params"]["status"] == status
    )


async def start_live(
    nursery: trio.Nursery,
    start_cameras_service: Callable[..., Awaitable[Service]],
    connect: Callable[..., Awaitable[RpcClient]],
    recordings: Path,
    **sections: Any,
) -> tuple[Service, RpcClient, Restartable]:
    """A restartable stand-in, the service on the emulated cameras, an admin client; returns
    once camera0's path exists."""
    standin = Restartable(nursery, recordings)
    ports = await standin.start()
    svc, client = await serve_with_standin(
        start_cameras_service, connect, ports, "admin", **sections
    )
    return svc, client, standin


async def serve_with_standin(
    start_cameras_service: Callable[..., Awaitable[Service]],
    connect: Callable[..., Awaitable[RpcClient]],
    ports: StandInPorts,
    role: str,
    **sections: Any,
) -> tuple[Service, RpcClient]:
    """The service on the emulated cameras, driving the stand-in at `ports`, and a client
    of `role`; returns once camera0's path exists."""
    svc = await start_cameras_service(
        mediamtx={
            "api_url": ports.api_url,
            "spawn": "never",
            "rtsp_port": ports.rtsp,
            "health_check_interval": 0.5,
        },
        **sections,
    )
    client = await connect(svc, role)
    with trio.fail_after(10):
        while not svc.app.mediamtx_paths.get("camera0"):
            await svc.app.mediamtx_paths.changed.wait()
    return svc, client
