"""`kill -9` of `camsvc serve` during a recording and a stream of snapshots, then a restart
(issue 11): completed segments intact, playable and catalogued; no partial snapshot visible;
every snapshot answered before the kill on disk; the catalogue the same as the disk; the
service fully working again.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio_websocket

from camsvc.streaming.standin import StandIn
from tests.fixtures.service import RpcClient, until
from tests.reliability.media import ffprobe_duration, is_complete_jpeg
from tests.reliability.process import ServiceProcess

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

#: Kill-and-restart rounds; each kills the service at a different point of the snapshot loop.
ROUNDS = 10 if os.environ.get("CAMSVC_LONG") else 3
SNAPSHOT_CLIENTS = 3


@pytest.fixture
async def crashable(nursery, cams, emu_dir: Path, tmp_path: Path) -> AsyncIterator[ServiceProcess]:
    """Two emulated cameras, a stand-in (`service.standin`), and `camsvc serve` on them (not
    yet started)."""
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
    service.standin = standin  # type: ignore[attr-defined]
    try:
        yield service
    finally:
        await service.stop()


async def open_client(nursery: trio.Nursery, service: ServiceProcess) -> RpcClient:
    """An admin client of the child."""
    ws = await trio_websocket.connect_websocket_url(nursery, service.url)
    client = RpcClient(ws)
    await client.call("authenticate", {"auth_token": service.token()})
    return client


def on_disk(root: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Visible media files under `root/<device>/` by name (hidden temporaries excluded)."""
    return {
        p.name: p
        for p in root.glob("*/*")
        if p.is_file() and not p.name.startswith(".") and p.suffix in suffixes
    }


async def listed(client: RpcClient, method: str) -> dict[str, dict[str, Any]]:
    """Every FileEntry a list method returns (all pages), by name."""
    found: dict[str, dict[str, Any]] = {}
    while True:
        page = await client.call(method, {"limit": 1000, "offset": len(found)})
        found.update((f["filename"], f) for f in page["files"])
        if len(found) >= page["total"] or not page["files"]:
            return found


class Answers:
    """Snapshots answered SUCCESS, and a wait for the n-th."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._wanted = 0
        self._reached = trio.Event()

    def add(self, name: str) -> None:
        self.names.append(name)
        if len(self.names) >= self._wanted:
            self._reached.set()

    async def wait_for(self, n: int) -> None:
        """Until `n` snapshots in all have been answered (bounded)."""
        self._wanted, self._reached = n, trio.Event()
        if len(self.names) >= n:
            return
        with trio.fail_after(30):
            await self._reached.wait()


async def snapshot_loop(client: RpcClient, device: str, answers: Answers) -> None:
    """Take snapshots back to back until the connection dies with the service."""
    try:
        while True:
            result = await client.call("take_snapshot", {"device": device})
            answers.add(result["filename"])
    except (trio_websocket.ConnectionClosed, trio.BrokenResourceError, trio.TooSlowError):
        return


@pytest.mark.long
async def test_kill_9_during_recording_and_snapshots(crashable: ServiceProcess, tmp_path: Path):
    """Each round: a recording runs and three clients take snapshots back to back; the
    service is SIGKILLed after some answers, restarted, and checked against the disk."""
    snapshots, recordings = tmp_path / "snapshots", tmp_path / "recordings"
    answers = Answers()
    recorded: set[str] = set()
    for round_no in range(ROUNDS):
        async with trio.open_nursery() as nursery:
            await crashable.start(nursery)
            client = await open_client(nursery, crashable)
            started = await client.call("start_recording", {"device": "camera0"})
            recorded.add(started["filename"])
            segment = recordings / "camera0" / started["filename"]
            await until(lambda s=segment: s.stat().st_size > 0, 10)
            before = len(answers.names)
            for i in range(SNAPSHOT_CLIENTS):
                shooter = await open_client(nursery, crashable)
                nursery.start_soon(snapshot_loop, shooter, f"camera{i % 2}", answers)
            # Kill a little later each round, so it lands at different points of the loop.
            await answers.wait_for(before + 5 + 3 * round_no)
            relays = crashable.children()
            assert relays, "a recording needs the publisher's RTSP relay (ffmpeg)"
            crashable.kill()
            assert await crashable.wait() == -9
            nursery.cancel_scope.cancel()

        # The orphaned relay sees its input end and exits; MediaMTX then closes the segment.
        await until(lambda r=relays: not any(p.is_running() for p in r), 15)
        path = crashable.standin.paths.get("camera0")  # type: ignore[attr-defined]
        if path is not None:
            with trio.fail_after(15):
                await path.recorder_stopped.wait()
        async with trio.open_nursery() as nursery:
            await crashable.start(nursery)
            client = await open_client(nursery, crashable)
            # Files linked but not yet catalogued at the kill are reconciled at start-up.
            await crashable.catalog_ready()
            await _check_consistent(client, snapshots, recordings, answers.names, recorded)
            # Fully working again: a snapshot, and a recording of the same camera.
            shot = await client.call("take_snapshot", {"device": "camera1"})
            answers.add(shot["filename"])
            again = await client.call("start_recording", {"device": "camera0"})
            stopped = await client.call("stop_recording", {"device": "camera0"})
            assert stopped["segments"][0] == again["filename"]
            recorded.update(stopped["segments"])
            crashable.kill()
            await crashable.wait()
            nursery.cancel_scope.cancel()
    temporaries = sum(e.get("count", 0) for e in crashable.events("removed_stale_temporaries"))
    print(
        f"\n{ROUNDS} kills: {len(answers.names)} snapshots answered, all on disk and complete; "
        f"{len(recorded)} segments catalogued and playable; {temporaries} temporaries removed"
    )


async def _check_consistent(
    client: RpcClient,
    snapshots: Path,
    recordings: Path,
    answered: list[str],
    recorded: set[str],
) -> None:
    """The catalogue equals the disk; nothing answered is lost; nothing partial is visible."""
    shots = on_disk(snapshots, (".jpg",))
    assert not list(snapshots.glob("*/.*")), "a temporary survived the restart"
    assert set(answered) <= shots.keys(), set(answered) - shots.keys()
    for path in shots.values():
        assert is_complete_jpeg(path), path
    listed_shots = await listed(client, "list_snapshots")
    assert listed_shots.keys() == shots.keys()
    for name, entry in listed_shots.items():
        assert entry["file_size"] == shots[name].stat().st_size, name

    segments = on_disk(recordings, (".mp4",))
    assert recorded <= segments.keys()
    listed_segments = await listed(client, "list_recordings")
    assert listed_segments.keys() == segments.keys()
    for name, path in segments.items():
        assert listed_segments[name]["file_size"] == path.stat().st_size, name
        assert await ffprobe_duration(path) > 0, name
