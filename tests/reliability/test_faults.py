"""Faults under a running service (issue 11): the catalogue locked or damaged, the disk full
during a snapshot and a recording, cameras unplugged mid-snapshot, mid-stream and
mid-recording. Each test checks that nothing written is lost, nothing partial is visible, and
the service keeps answering after the fault is gone.

Related checks elsewhere: MediaMTX killed and restarted, and the encoder killed, in
tests/streaming/; `kill -9` of the whole service in test_crash_recovery.py.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from camsvc.streaming.standin import StandIn
from tests.fixtures.service import until
from tests.reliability.media import ffprobe_duration, is_complete_jpeg
from tests.streaming.live import serve_with_standin

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 6 MiB tmpfs mounted for this test (a real filesystem that really fills up)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m,mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        # Lazy: a file the service still has open must not fail the teardown.
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(path: Path, leave: int = 0) -> int:
    """Write `path` until its filesystem is full, then give back `leave` bytes; its size."""
    chunk = b"\0" * 65536
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while True:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
        size = os.fstat(fd).st_size
        os.ftruncate(fd, max(0, size - leave))
        return max(0, size - leave)
    finally:
        os.close(fd)


def visible(folder: Path) -> set[str]:
    """Names in `folder` a client could be given (no hidden temporaries)."""
    try:
        return {p.name for p in folder.iterdir() if not p.name.startswith(".")}
    except FileNotFoundError:
        return set()


async def listed(client: Any, method: str) -> set[str]:
    """Every file name a list method returns."""
    result = await client.call(method, {"limit": 1000})
    return {f["filename"] for f in result["files"]}


# -- the catalogue ------------------------------------------------------------------------


def _put(root: Path, subdir: str, name: str, data: bytes = b"x" * 100) -> Path:
    path = root / subdir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _garble(db: Path) -> None:
    """Write random bytes over the database and its write-ahead log, keeping their sizes."""
    for part in (db, Path(f"{db}-wal")):
        if part.exists():
            with part.open("r+b") as f:
                f.write(os.urandom(max(part.stat().st_size, 4096)))


async def lock_catalogue(svc: Any) -> trio.Process:
    """Another process holding the catalogue's write lock until `unlock_catalogue`."""
    holder = await trio.lowlevel.open_process(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "db.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.readline()\n"
            "db.execute('COMMIT')\n",
            svc.app.config.storage.db_path,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    with trio.fail_after(10):
        assert (await holder.stdout.receive_some(16)).startswith(b"locked")
    return holder


async def unlock_catalogue(holder: trio.Process) -> None:
    """Let the holder commit and exit."""
    await holder.stdin.send_all(b"go\n")
    with trio.fail_after(10):
        await holder.wait()


class TestCatalogue:
    """SQLite locked by another connection, or damaged: the files stay the truth."""

    async def test_locked_by_another_connection(self, cams, start_cameras_service, connect):
        """While another process holds the write lock the service answers (lists read through
        WAL) and a snapshot still succeeds; once the lock goes, the catalogue catches up."""
        cams(0)
        svc = await start_cameras_service()
        client = await connect(svc, "operator")
        first = (await client.call("take_snapshot", {"device": "camera0"}))["filename"]
        holder = await lock_catalogue(svc)
        try:
            assert await listed(client, "list_snapshots") == {first}
            # The catalogue write waits out busy_timeout (5 s), then the snapshot is answered
            # from the file alone: read the reply with a bound above that.
            await client.send(
                {"jsonrpc": "2.0", "method": "take_snapshot", "id": "locked",
                 "params": {"device": "camera0", "filename": "during-lock"}}
            )  # fmt: skip
            with trio.fail_after(20):
                reply = json.loads(await client.ws.get_message())
                while reply.get("id") != "locked":
                    reply = json.loads(await client.ws.get_message())
            assert reply["result"]["filename"] == "during-lock.jpg", reply
            assert svc.app.catalog.get("snapshot", "during-lock.jpg") is None
        finally:
            await unlock_catalogue(holder)
        await until(lambda: svc.app.catalog.get("snapshot", "during-lock.jpg") is not None, 20)
        assert await listed(client, "list_snapshots") == {first, "during-lock.jpg"}
        assert (await client.call("take_snapshot", {"device": "camera0"}))["status"] == "SUCCESS"

    @needs_ffmpeg
    async def test_locked_while_a_recording_ends(self, live):
        """A recording ending (unplug) while the catalogue is locked: it still ends with
        ERROR camera_disconnected, the service keeps serving, and the segments are catalogued
        once the lock is gone."""
        svc, client, standin = await live()
        started = await client.call("start_recording", {"device": "camera0"})
        folder = Path(svc.app.config.recording.path) / "camera0"
        await until(lambda: (folder / started["filename"]).stat().st_size > 0, 10)
        holder = await lock_catalogue(svc)
        try:
            standin.camera.unplug()
            with trio.fail_after(20):
                while True:
                    msg = json.loads(await client.ws.get_message())
                    update = msg.get("method") == "recording_status_update"
                    if update and msg["params"]["status"] != "STARTED":
                        break
            assert (msg["params"]["status"], msg["params"]["reason"]) == (
                "ERROR",
                "camera_disconnected",
            )
        finally:
            await unlock_catalogue(holder)
        assert (await client.call("ping")) == "pong"
        segments = visible(folder)
        await until(lambda: all(svc.app.catalog.get("recording", n) for n in segments), 20)
        assert await listed(client, "list_recordings") == segments

    async def test_damaged_while_stopped_is_rebuilt_at_start(
        self, start_service, connect, make_config, tmp_path
    ):
        """Garbage over the database file: the next start sets it aside and lists every file."""
        from camsvc.media.catalog import Catalog

        cfg = make_config()
        snapshots, recordings = Path(cfg.snapshots.path), Path(cfg.recording.path)
        names = {f"s{i}.jpg" for i in range(20)}
        for name in names:
            _put(snapshots, "camera0", name)
        _put(recordings, "camera0", "camera0_2026-01-01_00-00-00-000000.mp4")
        catalog = Catalog(cfg.storage.db_path)
        catalog.reconcile("snapshot", snapshots)
        catalog.close()
        _garble(Path(cfg.storage.db_path))

        svc = await start_service()
        client = await connect(svc, "admin")
        assert await listed(client, "list_snapshots") == names
        assert await listed(client, "list_recordings") == {"camera0_2026-01-01_00-00-00-000000.mp4"}
        assert svc.app.library.rebuilds == 1
        aside = svc.app.catalog.set_aside
        assert aside is not None and aside.exists() and aside.parent == tmp_path
        # The fresh catalogue takes writes: settings and deletes work.
        await client.call("set_retention_policy", {"policy_type": "manual", "enabled": False})
        await client.call("delete_snapshot", {"filename": "s0.jpg"})
        assert "s0.jpg" not in await listed(client, "list_snapshots")

    async def test_damaged_while_running_is_rebuilt(self, start_service, connect):
        """Garbage over the database and its WAL under a running service: the next reconcile
        finds it, sets it aside and rebuilds the rows from the files."""
        svc = await start_service()
        client = await connect(svc, "viewer")
        snapshots = Path(svc.app.config.snapshots.path)
        names = {f"s{i}.jpg" for i in range(10)}
        for name in names:
            _put(snapshots, "camera0", name)
        await until(lambda: svc.app.catalog.get("snapshot", "s9.jpg") is not None)
        _garble(Path(svc.app.config.storage.db_path))
        _put(snapshots, "camera1", "after.jpg")  # any change in the media folders reconciles
        await until(lambda: svc.app.library.rebuilds == 1)
        await until(lambda: svc.app.catalog.get("snapshot", "after.jpg") is not None)
        assert await listed(client, "list_snapshots") == names | {"after.jpg"}

    async def test_query_finding_damage_rebuilds(self, start_service, connect):
        """A query of the service's own connection that meets the damage (its `on_corrupt`
        callback) has the library set the file aside and rebuild from the files."""
        svc = await start_service()
        client = await connect(svc, "viewer")
        snapshots = Path(svc.app.config.snapshots.path)
        _put(snapshots, "camera0", "a.jpg")
        await until(lambda: svc.app.catalog.get("snapshot", "a.jpg") is not None)
        _garble(Path(svc.app.config.storage.db_path))
        svc.app.catalog.on_corrupt()  # as a query raising SQLITE_CORRUPT does
        await until(lambda: svc.app.library.rebuilds == 1)
        await until(lambda: svc.app.catalog.get("snapshot", "a.jpg") is not None)
        assert await listed(client, "list_snapshots") == {"a.jpg"}

    def test_catalog_reports_damage_and_repairs(self, tmp_path):
        """Catalog: a query meeting a damaged page calls on_corrupt and re-raises; repair()
        leaves a sound file alone and sets a damaged one aside for an empty catalogue."""
        import sqlite3

        from camsvc.media.catalog import Catalog, FileRecord, is_corrupt

        db = tmp_path / "c.db"
        catalog = Catalog(db)
        for i in range(2000):
            catalog.add(FileRecord("snapshot", f"s{i}.jpg", "camera0", i, float(i), float(i)))
        assert catalog.repair() is None  # sound: nothing moved
        catalog.close()  # checkpointed: the rows are in the file itself
        with db.open("r+b") as f:
            f.seek(4096)  # keep the header page, damage the rest
            f.write(os.urandom(db.stat().st_size - 4096))
        catalog = Catalog(db)
        seen: list[int] = []
        catalog.on_corrupt = lambda: seen.append(1)
        with pytest.raises(sqlite3.DatabaseError) as raised:
            catalog.page("snapshot", 5000, 0)
        assert is_corrupt(raised.value) and seen == [1]
        aside = catalog.repair()
        assert aside is not None and aside.exists()
        assert catalog.page("snapshot", 10, 0) == ([], 0)
        catalog.add(FileRecord("snapshot", "new.jpg", "camera0", 1, 1.0, 1.0))
        assert catalog.get("snapshot", "new.jpg") is not None


# -- the disk full ------------------------------------------------------------------------


class TestDiskFull:
    """The media folders on a small tmpfs that the test fills up."""

    async def test_snapshot(self, cams, start_cameras_service, connect, tmpfs):
        """A full disk: -32060 insufficient_storage, before the capture (usage at the block
        level) or when the write itself fails (room for the check, not for the file); no
        partial or temporary file is left; after space is freed snapshots work again."""
        cams(0)
        svc = await start_cameras_service(
            snapshots={"path": str(tmpfs / "snapshots")},
            recording={"path": str(tmpfs / "recordings")},
            storage={"warn_percent": 99.0, "block_percent": 99.99},
        )
        client = await connect(svc, "operator")
        folder = tmpfs / "snapshots" / "camera0"
        first = await client.call("take_snapshot", {"device": "camera0"})
        assert is_complete_jpeg(folder / first["filename"])

        filler = tmpfs / "filler"
        fill(filler)
        error = await client.error("take_snapshot", {"device": "camera0", "filename": "full"})
        assert (error["code"], error["data"]["reason"]) == (-32060, "insufficient_storage")
        assert error["data"]["usage_percentage"] >= 99.99

        # Less room than one snapshot but usage under the block level: the write fails.
        fill(filler, leave=first["file_size"] // 2)
        assert svc.app.library.storage_info().usage_percentage < 99.99
        error = await client.error("take_snapshot", {"device": "camera0", "filename": "short"})
        assert (error["code"], error["data"]["reason"]) == (-32060, "insufficient_storage")
        assert os.listdir(folder) == [first["filename"]]  # no partial file, no temporary
        assert await listed(client, "list_snapshots") == {first["filename"]}

        filler.unlink()
        again = await client.call("take_snapshot", {"device": "camera0", "filename": "short"})
        assert is_complete_jpeg(folder / again["filename"])
        assert await listed(client, "list_snapshots") == {first["filename"], "short.jpg"}

    @needs_ffmpeg
    async def test_recording(self, live, tmpfs):
        """The disk fills during a recording: it ends with ERROR insufficient_storage, its
        segments are kept (cut back to their whole parts), catalogued and playable; a new
        one is refused until space is freed, then records again."""
        svc, client, _ = await live(
            tmpfs / "recordings",
            snapshots={"path": str(tmpfs / "snapshots")},
            storage={"warn_percent": 98.0, "block_percent": 99.0},
        )
        started = await client.call("start_recording", {"device": "camera0"})
        segment = tmpfs / "recordings" / "camera0" / started["filename"]
        # Some media recorded (a part after the init), so there is something to keep.
        await until(lambda: segment.exists() and b"mdat" in segment.read_bytes(), 10)
        filler = tmpfs / "filler"
        fill(filler)
        params = await next_status(client)
        assert (params["status"], params["reason"]) == ("ERROR", "insufficient_storage")
        assert not svc.app.recordings.is_recording("camera0")
        segments = visible(tmpfs / "recordings" / "camera0")
        assert started["filename"] in segments
        assert await listed(client, "list_recordings") == segments
        for name in segments:
            assert await ffprobe_duration(tmpfs / "recordings" / "camera0" / name) > 0

        error = await client.error("start_recording", {"device": "camera0"})
        assert (error["code"], error["data"]["reason"]) == (-32060, "insufficient_storage")
        filler.unlink()
        again = await client.call("start_recording", {"device": "camera0"})
        stopped = await client.call("stop_recording", {"device": "camera0"})
        assert stopped["segments"] and stopped["segments"][0] == again["filename"]
        assert await ffprobe_duration(tmpfs / "recordings" / "camera0" / again["filename"]) > 0


# -- cameras unplugged --------------------------------------------------------------------


@pytest.fixture
async def live(nursery, cams, start_cameras_service, connect, tmp_path: Path):
    """Start a service on one emulated camera with a stand-in recording into `recordings`."""

    async def start(recordings: Path | None = None, **sections: Any):
        recordings = recordings or tmp_path / "recordings"
        standin = StandIn(recordings=str(recordings))
        await nursery.start(standin.run)
        standin.camera = cams(0)
        svc, client = await serve_with_standin(
            start_cameras_service,
            connect,
            standin.ports,
            "operator",
            recording={"path": str(recordings), **sections.pop("recording", {})},
            **sections,
        )
        return svc, client, standin

    return start


async def next_status(client: Any, *, skip: str = "STARTED") -> dict[str, Any]:
    """The params of the next recording_status_update whose status is not `skip`."""
    with trio.fail_after(10):
        while True:
            msg = await client.recv()
            if msg.get("method") == "recording_status_update" and msg["params"]["status"] != skip:
                return msg["params"]


async def wait_connected(svc: Any, device: str, connected: bool = True) -> None:
    """Until the registry has `device` CONNECTED (or not)."""

    def seen() -> bool:
        entry = svc.app.cameras.get(device)
        return (entry is not None and entry.status == "CONNECTED") == connected

    await until(seen, 15)


class TestUnplug:
    """A camera pulled out in the middle of work: that work fails cleanly, nothing partial
    stays, and the camera works again once plugged back."""

    async def test_mid_snapshot(self, cams, start_cameras_service, connect):
        """A snapshot waiting for a frame: -32603 capture_failed and no file; replugged, the
        camera takes snapshots again."""
        cam = cams(0, manual_clock=True)
        svc = await start_cameras_service()
        client = await connect(svc, "operator")
        sup = svc.app.cameras.get("camera0").supervisor
        await client.send(
            {"jsonrpc": "2.0", "method": "take_snapshot", "id": 1,
             "params": {"device": "camera0", "filename": "cut"}}
        )  # fmt: skip
        await until(lambda: sup.running)
        cam.unplug()
        with trio.fail_after(10):
            reply = await client.recv()
            while reply.get("id") != 1:
                reply = await client.recv()
        assert reply["error"]["data"]["reason"] == "capture_failed"
        await wait_connected(svc, "camera0", False)
        folder = Path(svc.app.config.snapshots.path) / "camera0"
        assert not list(folder.glob("*")) if folder.exists() else True
        assert await listed(client, "list_snapshots") == set()

        cams(0)  # plugged back, free-running this time
        await wait_connected(svc, "camera0")
        shot = await client.call("take_snapshot", {"device": "camera0", "filename": "back"})
        assert is_complete_jpeg(folder / shot["filename"])

    @needs_ffmpeg
    async def test_mid_stream(self, live, cams):
        """A stream whose camera goes away stops (publisher gone, path not ready); replugged,
        start_streaming brings it back."""
        svc, client, standin = await live()
        await client.call("start_streaming", {"device": "camera0"})
        assert svc.app.publishers.get("camera0") is not None
        standin.camera.unplug()
        await wait_connected(svc, "camera0", False)
        await until(lambda: svc.app.publishers.get("camera0") is None, 15)
        error = await client.error("start_streaming", {"device": "camera0"})
        assert error["code"] == -32010
        assert (await client.call("ping")) == "pong"

        cams(0)
        await wait_connected(svc, "camera0")
        started = await client.call("start_streaming", {"device": "camera0"})
        assert started["status"] == "STARTED"
        await svc.app.streams.wait_ready("camera0")

    @needs_ffmpeg
    async def test_mid_recording(self, live, cams):
        """Recording ends with ERROR camera_disconnected; every segment is catalogued and
        playable; replugged, the camera records again."""
        svc, client, standin = await live()
        started = await client.call("start_recording", {"device": "camera0"})
        folder = Path(svc.app.config.recording.path) / "camera0"
        await until(lambda: (folder / started["filename"]).stat().st_size > 0, 10)
        standin.camera.unplug()
        params = await next_status(client)
        assert (params["status"], params["reason"]) == ("ERROR", "camera_disconnected")
        segments = visible(folder)
        assert started["filename"] in segments
        assert await listed(client, "list_recordings") == segments
        for name in segments:
            assert await ffprobe_duration(folder / name) > 0

        cams(0)
        await wait_connected(svc, "camera0")
        again = await client.call("start_recording", {"device": "camera0"})
        stopped = await client.call("stop_recording", {"device": "camera0"})
        assert stopped["segments"][0] == again["filename"]
        assert await ffprobe_duration(folder / again["filename"]) > 0
