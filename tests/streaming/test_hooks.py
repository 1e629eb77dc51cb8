"""MediaMTX hooks calling back into camsvc: the control socket, `camsvc hook`, on-demand
publishing (a reader alone starts the camera) and segment completion ending a recording."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from camsvc.config import RecordingConfig
from camsvc.streaming import hook_client, hook_protocol, recordings
from camsvc.streaming.hook_protocol import (
    EX_UNAVAILABLE,
    OnDemand,
    Reply,
    SegmentComplete,
    decode_reply,
    decode_request,
    encode,
    hook_command,
    hook_program,
)
from camsvc.streaming.hooks import SOCKET_MODE, HookServer
from camsvc.streaming.paths import PathHooks, wanted_conf
from camsvc.streaming.publisher import Publishers
from camsvc.streaming.standin import StandIn
from camsvc.streaming.standin._rtsp import RtspError
from tests.fixtures.service import until

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


CLI = (sys.executable, "-m", "camsvc")


async def hook(
    socket: str,
    *args: str,
    env: dict[str, str] | None = None,
    program: tuple[str, ...] = CLI,
) -> trio.Process:
    """Run `<program> hook --socket S ARGS` as MediaMTX would (`python -m camsvc` unless
    told); its completed process."""
    with trio.fail_after(15):
        return await trio.run_process(
            [*program, "hook", "--socket", socket, *args],
            env={**os.environ, **(env or {})},
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


async def poll(predicate: Callable[[], bool], timeout_s: float = 15) -> None:
    """Wait (bounded) for `predicate` while media flows (tasks are never all idle then)."""
    with trio.fail_after(timeout_s):
        while not predicate():  # noqa: ASYNC110 (the state belongs to other processes' timers)
            await trio.sleep(0.05)


async def ffprobe(target: str, entries: str) -> dict[str, Any]:
    """ffprobe's JSON for `target` (an RTSP URL over TCP, or a file)."""
    rtsp = []
    if target.startswith("rtsp"):
        # Codec and size are in the SDP and the first key frame: no need to analyse 5 s.
        rtsp = ["-rtsp_transport", "tcp", "-probesize", "32768", "-analyzeduration", "0"]
    with trio.fail_after(20):
        done = await trio.run_process(
            ["ffprobe", "-v", "error", *rtsp, "-show_entries", entries, "-of", "json", target],
            capture_stdout=True,
            capture_stderr=True,
        )
    return json.loads(done.stdout)


class TestProtocol:
    def test_round_trip(self) -> None:
        """Requests and replies are one JSON line each, tagged by kind."""
        line = encode(SegmentComplete("camera0", "/r/camera0/x.mp4", 5.0))
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert json.loads(line)["type"] == "segment_complete"
        assert decode_request(line.strip()) == SegmentComplete("camera0", "/r/camera0/x.mp4", 5.0)
        assert decode_request(encode(OnDemand("camera1"))) == OnDemand("camera1")
        assert decode_reply(encode(Reply(False, "no"))) == Reply(False, "no")
        assert encode(Reply(True)) == b'{"ok":true}\n'

    def test_path_conf_has_hooks(self) -> None:
        """A camera path runs `camsvc hook` on demand and on segment completion."""
        hooks = PathHooks(("/usr/bin/python3", "-m", "camsvc"), "/run/my dir/c.sock", 3.0)
        conf = wanted_conf(RecordingConfig(path="/rec"), device="camera2", hooks=hooks)
        assert conf.run_on_demand == (
            "/usr/bin/python3 -m camsvc hook --socket '/run/my dir/c.sock' on-demand camera2"
        )
        assert conf.run_on_record_segment_complete == hook_command(
            hooks.program, hooks.socket, "segment-complete", "camera2"
        )
        assert conf.run_on_demand_close_after == "3s"
        bare = wanted_conf(RecordingConfig(path="/rec"), device="camera2")
        assert bare.run_on_demand == "" and bare.run_on_record_segment_complete == ""


async def test_publisher_uses_counted(nursery) -> None:
    """Each on-demand command is one use; `stream` and `recording` are one use however often
    asked for; the publisher stops with the last use, and a stale release touches nothing."""
    publishers = Publishers(lambda device: None, lambda device: f"rtsp://127.0.0.1:1/{device}")
    await nursery.start(publishers.run)
    # Synchronous on purpose: the publisher's task has not run yet (it would find no camera).
    first = publishers.acquire("camera0", "on_demand")
    assert publishers.acquire("camera0", "on_demand") is first
    publishers.acquire("camera0", "stream")
    publishers.acquire("camera0", "stream")
    assert publishers.release("camera0", "stream") is True  # two on-demand users remain
    assert publishers.release("camera0", "on_demand") is True
    assert publishers.reasons("camera0") == {"on_demand"}
    assert publishers.release("camera0", "on_demand", publisher=first) is False
    assert publishers.get("camera0") is None
    second = publishers.acquire("camera0", "recording")
    assert publishers.release("camera0", "on_demand", publisher=first) is True  # not `second`
    assert publishers.get("camera0") is second and publishers.reasons("camera0") == {"recording"}
    assert publishers.release("camera0", "recording") is False


async def test_hook_fails_cleanly_without_camsvc(tmp_path: Path) -> None:
    """No service on the socket: the hook says so on stderr and exits 69 (EX_UNAVAILABLE)."""
    sock = str(tmp_path / "absent.sock")
    done = await hook(sock, "on-demand", "camera0")
    assert done.returncode == EX_UNAVAILABLE
    assert b"camsvc is not reachable" in done.stderr and b"camera0" in done.stderr
    seg = await hook(sock, "segment-complete", env={"MTX_PATH": "camera0", "MTX_SEGMENT_PATH": "x"})
    assert seg.returncode == EX_UNAVAILABLE
    usage = await hook(sock, "segment-complete", "camera0", env={"MTX_SEGMENT_PATH": ""})
    assert usage.returncode == 2 and b"MTX_SEGMENT_PATH" in usage.stderr


@needs_ffmpeg
async def test_standin_reader_refused_when_hook_fails(tmp_path: Path, nursery) -> None:
    """MediaMTX (the stand-in) runs the hook for a reader; with camsvc down the hook exits 69,
    the reader is refused after runOnDemandStartTimeout and no command is left running."""
    standin = StandIn(recordings=str(tmp_path / "rec"))
    ports = await nursery.start(standin.run)
    cmd = hook_command((sys.executable, "-m", "camsvc"), str(tmp_path / "no.sock"), "on-demand")
    body = {"runOnDemand": cmd, "runOnDemandStartTimeout": "1s"}
    assert (
        standin.handle("POST", "/v3/config/paths/add/camera0", json.dumps(body).encode())[0] == 200
    )
    path = standin.paths["camera0"]
    url = f"rtsp://127.0.0.1:{ports.rtsp}/camera0"
    with trio.fail_after(20):
        done = await trio.run_process(
            ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", url],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode != 0 and b"404" in done.stderr
    await until(lambda: "demand" not in path.hooks and not path.demand_waiters)
    assert not path.ready


async def test_standin_start_timeout_stops_command(tmp_path: Path, nursery) -> None:
    """No publisher within runOnDemandStartTimeout: the reader is refused and MediaMTX (the
    stand-in) stops the command at once, not runOnDemandCloseAfter later; both commands get
    the first reader's query in MTX_QUERY."""
    standin = StandIn(recordings=str(tmp_path / "rec"))
    await nursery.start(standin.run)
    demand, undemand = tmp_path / "demand", tmp_path / "undemand"
    body = {
        "runOnDemand": f"sh -c 'echo $MTX_PATH $MTX_QUERY > {demand}; exec sleep 60'",
        "runOnDemandStartTimeout": "0.5s",
        "runOnDemandCloseAfter": "60s",
        "runOnUnDemand": f"sh -c 'echo $MTX_QUERY > {undemand}'",
    }
    assert standin.handle("POST", "/v3/config/paths/add/cam", json.dumps(body).encode())[0] == 200
    path = standin.paths["cam"]
    with pytest.raises(RtspError) as refused:
        await path.wait_ready_on_demand(hidden=False, query="a=1&b=x y")
    assert refused.value.status == 404
    await until(lambda: "demand" not in path.hooks, timeout_s=10)  # far below closeAfter
    # The commands' own output files are the only signal that they ran.
    await poll(lambda: undemand.exists() and undemand.read_text().strip() != "")
    assert demand.read_text().split() == ["cam", "a%3D1%26b%3Dx+y"]  # url.QueryEscape
    assert undemand.read_text().split() == ["a%3D1%26b%3Dx+y"]


class FakePublisher:
    def __init__(self) -> None:
        self.stopped = trio.Event()


class FakePublishers:
    """Publishers' acquire/release as the hook server uses them."""

    def __init__(self) -> None:
        self.uses = 0
        self.publisher = FakePublisher()

    def acquire(self, device: str, reason: str) -> FakePublisher:
        assert reason == "on_demand"
        self.uses += 1
        return self.publisher

    def release(self, device: str, reason: str, *, publisher: object = None) -> bool:
        assert publisher is self.publisher
        self.uses -= 1
        return False


class FakeEntry:
    status = "CONNECTED"


class FakeCameras:
    def get(self, device: str) -> FakeEntry | None:
        return FakeEntry() if device == "camera0" else None


class FakeRecordings:
    def __init__(self) -> None:
        self.reported: list[tuple[str, str, float | None]] = []

    async def segment_complete(self, device: str, segment: str, duration: float | None) -> None:
        if not segment.endswith(".mp4"):
            raise ValueError(f"{segment} is not a recording segment of {device}")
        self.reported.append((device, segment, duration))


def fake_server(path: str) -> Any:
    """A HookServer at `path` over fake cameras, publishers and recordings."""
    fakes: Any = (FakeCameras(), FakePublishers(), FakeRecordings())
    return HookServer(path, *fakes)


@pytest.fixture
async def control(nursery, tmp_path: Path):
    """A HookServer on tmp_path/c.sock over fakes, and a scope that stops it."""
    sock = str(tmp_path / "c.sock")
    server = fake_server(sock)
    scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[None]) -> None:
        with scope:
            await server.run(task_status=task_status)

    await nursery.start(run)
    return server, scope


async def test_control_socket_lifecycle(control, tmp_path: Path) -> None:
    """The socket is created 0660, answers hooks, refuses bad requests, and is removed at stop."""
    server, scope = control
    st = os.stat(server.path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == SOCKET_MODE
    assert server.listening
    seg = str(tmp_path / "camera0" / "camera0_2026-01-01_00-00-00-000000.mp4")
    env = {"MTX_PATH": "camera0", "MTX_SEGMENT_PATH": seg, "MTX_SEGMENT_DURATION": "4.5"}
    done = await hook(server.path, "segment-complete", env=env)
    assert done.returncode == 0, done.stderr
    assert server.recordings.reported == [("camera0", seg, 4.5)]
    refused = await hook(server.path, "segment-complete", "camera0", "/etc/passwd")
    assert refused.returncode == 1 and b"not a recording segment" in refused.stderr
    nobody = await hook(server.path, "on-demand", "camera7")
    assert nobody.returncode == 1 and b"no connected camera camera7" in nobody.stderr
    assert server.publishers.uses == 0

    stream = await trio.open_unix_socket(server.path)
    await stream.send_all(b'{"type":"nonsense"}\n')
    reply = decode_reply((await stream.receive_some(1024)).strip())
    assert not reply.ok and "bad request" in reply.error
    await stream.aclose()

    scope.cancel()
    await until(lambda: not os.path.exists(server.path))


async def test_on_demand_held_while_hook_runs(control) -> None:
    """on-demand holds one use of the publisher until MediaMTX stops the command (SIGINT)."""
    server, _ = control
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "camsvc", "hook", "--socket", server.path, "on-demand"],
        env={**os.environ, "MTX_PATH": "camera0"},
        stderr=subprocess.PIPE,
    )
    try:
        await until(lambda: server.publishers.uses == 1 and server.on_demand_holds == 1)
        proc.send_signal(2)  # SIGINT, as MediaMTX stops runOnDemand
        with trio.fail_after(10):
            code = await proc.wait()
        assert code == 0
        await until(lambda: server.publishers.uses == 0 and server.on_demand_holds == 0)
    finally:
        proc.kill()
        await proc.wait()


async def test_on_demand_ends_with_mediamtx(control) -> None:
    """A MediaMTX killed outright (no SIGINT for its commands) does not leave the publisher
    held: the on-demand command ends with its parent."""
    server, _ = control
    cmd = hook_command((sys.executable, "-m", "camsvc"), server.path, "on-demand", "camera0")
    parent = await trio.lowlevel.open_process(["sh", "-c", f"{cmd}; true"])
    try:
        await until(lambda: server.publishers.uses == 1)
        parent.kill()  # SIGKILL: nothing forwards a signal to the command
        await parent.wait()
        await until(lambda: server.publishers.uses == 0 and server.on_demand_holds == 0)
    finally:
        parent.kill()
        await parent.wait()


async def test_on_demand_ends_when_publisher_ends(control) -> None:
    """A publisher that ends by itself (camera gone) ends the hook: nothing stays held."""
    server, _ = control
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "camsvc", "hook", "--socket", server.path, "on-demand", "camera0"],
        stderr=subprocess.PIPE,
    )
    try:
        await until(lambda: server.publishers.uses == 1)
        server.publishers.publisher.stopped.set()
        with trio.fail_after(10):
            code = await proc.wait()
        assert code == 1
        assert server.publishers.uses == 0
    finally:
        proc.kill()
        await proc.wait()


async def test_stale_socket_replaced(nursery, tmp_path: Path) -> None:
    """A socket file left by a crashed camsvc is replaced; a live one is not stolen."""
    import socket as stdsocket

    path = str(tmp_path / "c.sock")
    dead = stdsocket.socket(stdsocket.AF_UNIX)
    dead.bind(path)
    dead.close()  # the file stays, nobody listens
    first = fake_server(path)
    await nursery.start(first.run)
    assert first.listening
    second = fake_server(path)
    await nursery.start(second.run)
    assert not second.listening and first.listening and os.path.exists(path)


# --- end to end: the service on an emulated camera, the stand-in as MediaMTX ---------------


@pytest.fixture
async def live(nursery, cams, start_cameras_service, connect, tmp_path: Path):
    """The service on one emulated camera with a stand-in; returns (svc, client, standin)."""

    async def start(recording: dict[str, Any] | None = None, **mediamtx: Any):
        standin = StandIn(recordings=str(tmp_path / "recordings"))
        await nursery.start(standin.run)
        cams(0)
        svc = await start_cameras_service(
            mediamtx={
                "api_url": standin.ports.api_url,
                "spawn": "never",
                "rtsp_port": standin.ports.rtsp,
                "health_check_interval": 0.5,
                **mediamtx,
            },
            recording=recording or {},
        )
        client = await connect(svc, "operator")
        await poll(
            lambda: "camera0" in standin.paths and standin.paths["camera0"].conf["runOnDemand"]
        )
        return svc, client, standin

    return start


@needs_ffmpeg
async def test_reader_alone_starts_publisher(live) -> None:
    """An RTSP reader with no API call gets H.264 at the camera's size; the publisher stops
    runOnDemandCloseAfter after the reader left."""
    svc, client, standin = await live(on_demand_close_after=1)
    app = svc.app
    assert app.publishers.get("camera0") is None and app.hook_server is not None
    assert standin.paths["camera0"].conf["runOnDemandCloseAfter"] == "1s"
    url = f"rtsp://127.0.0.1:{standin.ports.rtsp}/camera0"
    probed: dict[str, Any] = {}

    async def read() -> None:
        began = time.monotonic()
        probed.update(await ffprobe(url, "stream=codec_name,width,height"))
        print(f"reader alone: video after {time.monotonic() - began:.2f} s")  # the figure

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        # Held for the hook from before the reader gets video until closeAfter after it left.
        await poll(
            lambda: (
                app.publishers.reasons("camera0") == {"on_demand"}
                and app.hook_server.on_demand_holds == 1
            )
        )
    camera = (await client.call("get_camera_list"))["cameras"][0]
    w, h = map(int, camera["resolution"].split("x"))
    assert probed["streams"] == [{"codec_name": "h264", "width": w, "height": h}]
    # The reader left: MediaMTX stops the command after closeAfter, camsvc the publisher.
    await poll(lambda: app.publishers.get("camera0") is None)
    assert app.hook_server.on_demand_holds == 0
    assert "demand" not in standin.paths["camera0"].hooks


@needs_ffmpeg
async def test_on_demand_end_keeps_a_started_stream(live) -> None:
    """A publisher also started by start_streaming outlives the on-demand command."""
    svc, client, standin = await live(on_demand_close_after=0.5)
    app = svc.app
    url = f"rtsp://127.0.0.1:{standin.ports.rtsp}/camera0"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ffprobe, url, "stream=codec_name")
        await poll(lambda: app.publishers.reasons("camera0") == {"on_demand"})
        # While the reader still holds the on-demand command, the API starts the stream too.
        await client.call("start_streaming", {"device": "camera0"})
        assert app.publishers.reasons("camera0") == {"on_demand", "stream"}
    publisher = app.publishers.get("camera0")
    await poll(lambda: app.hook_server.on_demand_holds == 0)
    assert app.publishers.reasons("camera0") == {"stream"}
    assert app.publishers.get("camera0") is publisher and publisher.restarts == 0
    stopped = await client.call("stop_streaming", {"device": "camera0"})
    assert stopped["stream_continues"] is False


class LogSpy:
    """Stands in for a module's structlog logger: keeps (level, event) pairs, forwards all."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.events: list[tuple[str, str]] = []

    def __getattr__(self, level: str) -> Any:
        def call(event: str, **kw: Any) -> Any:
            self.events.append((level, event))
            return getattr(self.real, level)(event, **kw)

        return call


@needs_ffmpeg
async def test_stop_waits_for_segment_complete(live, monkeypatch) -> None:
    """stop_recording returns once MediaMTX reported the last segment complete: the file is
    whole (ffprobe reads it) and catalogued with MediaMTX's duration."""
    svc, client, standin = await live()
    app = svc.app
    spy = LogSpy(recordings.log)
    monkeypatch.setattr(recordings, "log", spy)
    reports: list[tuple[str, str, float | None]] = []
    real = app.recordings.segment_complete

    async def report(device: str, segment: str, duration: float | None) -> None:
        reports.append((device, segment, duration))
        await real(device, segment, duration)

    monkeypatch.setattr(app.recordings, "segment_complete", report)
    started = await client.call("start_recording", {"device": "camera0"})
    assert "camera0" in standin.paths and standin.paths["camera0"].conf[
        "runOnRecordSegmentComplete"
    ].endswith("segment-complete camera0")
    await trio.sleep(1.5)  # the recording's length: some video in the segment
    stopped = await client.call("stop_recording", {"device": "camera0"})
    file = Path(app.config.recording.path) / "camera0" / started["filename"]
    assert stopped["segments"] == [started["filename"]]
    assert [(d, Path(s).name) for d, s, _ in reports] == [("camera0", started["filename"])]
    reported = reports[0][2]
    assert reported is not None and reported > 0
    assert ("warning", "segment_complete_missing") not in spy.events
    info = await ffprobe(str(file), "format=duration:stream=codec_name")
    assert info["streams"] == [{"codec_name": "h264"}] and float(info["format"]["duration"]) > 0
    row = await client.call("get_recording_info", {"filename": started["filename"]})
    assert row["file_size"] == file.stat().st_size
    assert row["duration"] == pytest.approx(reported, abs=0.01)


@needs_ffmpeg
async def test_stop_falls_back_without_report(live, monkeypatch) -> None:
    """A MediaMTX whose hook never reaches camsvc: stop_recording still returns (bounded), says
    so in the log, and the segment is complete and playable."""
    svc, client, _ = await live()
    app = svc.app
    spy = LogSpy(recordings.log)
    monkeypatch.setattr(recordings, "log", spy)

    async def ignored(device: str, segment: str, duration: float | None) -> None:
        return None

    monkeypatch.setattr(app.recordings, "segment_complete", ignored)
    started = await client.call("start_recording", {"device": "camera0"})
    await trio.sleep(1.0)  # the recording's length: some video in the segment
    stopped = await client.call("stop_recording", {"device": "camera0"})
    assert stopped["segments"] == [started["filename"]] and stopped["file_size"] > 0
    assert ("warning", "segment_complete_missing") in spy.events
    file = Path(app.config.recording.path) / "camera0" / started["filename"]
    info = await ffprobe(str(file), "format=duration:stream=codec_name")
    assert info["streams"] == [{"codec_name": "h264"}] and float(info["format"]["duration"]) > 0


@needs_ffmpeg
async def test_segment_catalogued_on_completion(live, monkeypatch) -> None:
    """A segment MediaMTX completes mid-recording (1 s segments) is catalogued at once, whole,
    with MediaMTX's duration, and no longer counts as in use."""
    svc, client, _ = await live(recording={"segment_duration": 1})
    app = svc.app
    reported: dict[str, float | None] = {}
    real = app.recordings.segment_complete

    async def report(device: str, segment: str, duration: float | None) -> None:
        await real(device, segment, duration)
        reported[Path(segment).name] = duration

    monkeypatch.setattr(app.recordings, "segment_complete", report)
    started = await client.call("start_recording", {"device": "camera0"})
    first = started["filename"]
    await poll(lambda: first in reported)
    assert app.recordings.is_recording("camera0") and not app.recordings.in_use(first)
    row = app.catalog.get("recording", first)
    duration = reported[first]
    assert row is not None and duration is not None and row.duration == round(duration, 3)
    file = Path(app.config.recording.path) / "camera0" / first
    assert row.size == file.stat().st_size > 0
    info = await ffprobe(str(file), "stream=codec_name")
    assert info["streams"] == [{"codec_name": "h264"}]
    stopped = await client.call("stop_recording", {"device": "camera0"})
    assert stopped["segments"][0] == first


def test_fast_path_imports_little() -> None:
    """`python -m camsvc hook` does not import the service (MediaMTX waits on it)."""
    code = (
        "import sys, runpy; sys.argv=['camsvc','hook','--socket','/nonexistent','on-demand','c0'];"
        "\ntry: runpy.run_module('camsvc', run_name='__main__')\nexcept SystemExit: pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('trio','structlog','httpx')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
    assert hook_protocol.EX_UNAVAILABLE == 69


# --- hook_client.py: what the path configuration runs ------------------------------------


def test_hook_program_is_the_isolated_client() -> None:
    """Camera paths run hook_client.py with this interpreter, isolated, without site."""
    program = hook_program()
    assert program[:3] == (sys.executable, "-I", "-S")
    assert program[3] == os.path.abspath(hook_client.__file__) and os.path.isfile(program[3])


def test_client_imports_only_the_standard_library() -> None:
    """The client runs under `-I -S` (no site packages) and loads no typing, msgspec or camsvc."""
    code = (
        "import sys\n"
        f"f = {os.path.abspath(hook_client.__file__)!r}\n"
        "exec(compile(open(f).read(), f, 'exec'), {'__name__': 'probe'})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('camsvc', 'msgspec', 'typing', 'argparse', 'trio')))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout


async def test_client_speaks_the_protocol(control, tmp_path: Path) -> None:
    """The client's requests are the protocol's Structs to the server (duration included or
    left out) and it reads the server's replies: done 0, refused 1 with the reason."""
    server, _ = control
    program = hook_program()
    seg = str(tmp_path / "camera0" / "camera0_2026-01-01_00-00-00-000000.mp4")
    env = {"MTX_PATH": "camera0", "MTX_SEGMENT_PATH": seg, "MTX_SEGMENT_DURATION": "4.5"}
    done = await hook(server.path, "segment-complete", env=env, program=program)
    assert done.returncode == 0, done.stderr
    plain = await hook(
        server.path,
        "segment-complete",
        "camera0",
        seg,
        env={"MTX_SEGMENT_DURATION": ""},
        program=program,
    )
    assert plain.returncode == 0, plain.stderr
    assert server.recordings.reported == [("camera0", seg, 4.5), ("camera0", seg, None)]
    refused = await hook(server.path, "segment-complete", "camera0", "/etc/passwd", program=program)
    assert refused.returncode == 1
    assert refused.stderr.startswith(b"camsvc hook segment-complete camera0: camsvc refused")
    assert b"not a recording segment" in refused.stderr
    nobody = await hook(server.path, "on-demand", "camera7", program=program)
    assert nobody.returncode == 1 and b"no connected camera camera7" in nobody.stderr
    assert server.publishers.uses == 0


async def test_client_answer_not_a_reply(tmp_path: Path, nursery) -> None:
    """Something that is not camsvc's reply on the socket: exit 1, said on stderr."""
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    path = str(tmp_path / "odd.sock")
    await sock.bind(path)
    sock.listen(1)

    async def answer_oddly() -> None:
        conn, _ = await sock.accept()
        with conn:
            await conn.recv(4096)
            await conn.send(b'{"status":"fine"}\n')

    nursery.start_soon(answer_oddly)
    done = await hook(path, "segment-complete", "camera0", "x.mp4", program=hook_program())
    sock.close()
    assert done.returncode == 1 and b"camsvc answered something else" in done.stderr


async def test_client_fails_cleanly_without_camsvc(tmp_path: Path) -> None:
    """No service: 69 and the reason; no path or segment: 2 (the CLI's codes)."""
    program = hook_program()
    sock = str(tmp_path / "absent.sock")
    done = await hook(sock, "on-demand", "camera0", program=program)
    assert done.returncode == EX_UNAVAILABLE
    assert b"camsvc hook on-demand camera0: camsvc is not reachable" in done.stderr
    env = {"MTX_PATH": "camera0", "MTX_SEGMENT_PATH": ""}
    usage = await hook(sock, "segment-complete", env=env, program=program)
    assert usage.returncode == 2 and b"MTX_SEGMENT_PATH" in usage.stderr
    nopath = await hook(sock, "on-demand", env={"MTX_PATH": ""}, program=program)
    assert nopath.returncode == 2 and b"MTX_PATH" in nopath.stderr


async def test_client_hands_other_command_lines_to_the_cli() -> None:
    """--help and arguments the client does not handle alone go to `python -m camsvc hook`."""
    program = hook_program()
    with trio.fail_after(15):
        helped = await trio.run_process(
            [*program, "hook", "--help"], capture_stdout=True, capture_stderr=True, check=False
        )
        bogus = await trio.run_process(
            [*program, "hook", "--socket", "/x", "bogus"],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert helped.returncode == 0 and helped.stdout.startswith(b"usage: camsvc hook")
    assert bogus.returncode == 2 and b"invalid choice: 'bogus'" in bogus.stderr


async def test_client_on_demand_held_until_sigint(control) -> None:
    """The client's on-demand holds one use until SIGINT (exit 0), like `camsvc hook`."""
    server, _ = control
    proc = await trio.lowlevel.open_process(
        [*hook_program(), "hook", "--socket", server.path, "on-demand"],
        env={**os.environ, "MTX_PATH": "camera0"},
        stderr=subprocess.PIPE,
    )
    try:
        await until(lambda: server.publishers.uses == 1 and server.on_demand_holds == 1)
        proc.send_signal(2)
        with trio.fail_after(10):
            assert await proc.wait() == 0
        await until(lambda: server.publishers.uses == 0 and server.on_demand_holds == 0)
    finally:
        proc.kill()
        await proc.wait()


async def test_client_on_demand_ends_with_mediamtx(control) -> None:
    """The command line camsvc writes (hook_command over hook_program) dies with MediaMTX."""
    server, _ = control
    cmd = hook_command(hook_program(), server.path, "on-demand", "camera0")
    parent = await trio.lowlevel.open_process(["sh", "-c", f"{cmd}; true"])
    try:
        await until(lambda: server.publishers.uses == 1)
        parent.kill()
        await parent.wait()
        await until(lambda: server.publishers.uses == 0 and server.on_demand_holds == 0)
    finally:
        parent.kill()
        await parent.wait()
