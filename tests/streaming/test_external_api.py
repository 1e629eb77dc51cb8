"""External streams through the API (API.md §8.9): the real service, the stand-in, ffmpeg."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path as FsPath
from typing import Any

import pytest
import trio

from camsvc.app import App
from camsvc.streaming.mediamtx import Path, PathConfPatch
from camsvc.streaming.standin import StandInPorts
from tests.fixtures.service import RpcClient, Service, merge, until
from tests.streaming.live import Inbox, Restartable, ffprobe, recording_update
from tests.streaming.test_standin_media import HEIGHT, WIDTH, publisher_cmd

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

METHODS = {
    "discover_external_streams": {},
    "add_external_stream": {"stream_url": "rtsp://127.0.0.1:1/x", "stream_name": "x"},
    "remove_external_stream": {"stream_url": "rtsp://127.0.0.1:1/x"},
    "set_discovery_interval": {"scan_interval": 60},
}


class Stack:
    """A restartable stand-in and the service using it, with external streams enabled."""

    def __init__(self, svc: Service, client: RpcClient, standin: Restartable) -> None:
        self.svc = svc
        self.client = client
        self.standin = standin

    @property
    def app(self) -> App:
        return self.svc.app

    def rtsp(self, path: str) -> str:
        assert self.standin.ports is not None
        return f"rtsp://127.0.0.1:{self.standin.ports.rtsp}/{path}"


@pytest.fixture
def stack(
    nursery: trio.Nursery,
    start_service: Callable[..., Awaitable[Service]],
    connect: Callable[..., Awaitable[RpcClient]],
    tmp_path: FsPath,
) -> Callable[..., Awaitable[Stack]]:
    """Start a stand-in and the service with `external_discovery.enabled`, plus overrides
    (`configure(ports)` adds some that need the stand-in's ports)."""

    async def start(
        configure: Callable[[StandInPorts], dict[str, Any]] | None = None,
        *,
        sections: dict[str, Any] | None = None,
        **external: Any,
    ) -> Stack:
        standin = Restartable(nursery, tmp_path / "recordings")
        ports = await standin.start()
        if configure is not None:
            external.update(configure(ports))
        svc = await start_service(
            **merge(
                {
                    "mediamtx": {
                        "api_url": ports.api_url,
                        "spawn": "never",
                        "rtsp_port": ports.rtsp,
                        "health_check_interval": 0.5,
                    },
                    "external_discovery": {"enabled": True, **external},
                },
                sections or {},
            ),
        )
        return Stack(svc, await connect(svc, "admin"), standin)

    return start


@pytest.fixture
async def upstream(nursery: trio.Nursery) -> AsyncIterator[Callable[[Stack], Awaitable[str]]]:
    """ffmpeg publishing test-pattern H.264 to the stand-in's path `upstream`; its URL."""
    procs: list[trio.Process] = []

    async def start(stack: Stack) -> str:
        await stack.app.mediamtx.config_path_add("upstream", PathConfPatch(source="publisher"))
        url = stack.rtsp("upstream")
        procs.append(
            await trio.lowlevel.open_process(
                publisher_cmd(url).split(), stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
        await wait_path(stack, "upstream", lambda p: p.ready)
        return url

    yield start
    for proc in procs:
        proc.kill()
        await proc.wait()


async def wait_path(stack: Stack, name: str, predicate: Callable[[Path], bool]) -> None:
    """Wait (bounded) until the cached MediaMTX path `name` satisfies `predicate`."""
    cache = stack.app.mediamtx_paths
    with trio.fail_after(15):
        while (path := cache.get(name)) is None or not predicate(path):
            await cache.changed.wait()


# --- the feature switch ----------------------------------------------------------------


async def test_disabled_by_default(service: Service, client: RpcClient) -> None:
    """Off (default): -32030 feature_disabled, except get_external_streams (empty lists)."""
    for method, params in METHODS.items():
        error = await client.error(method, params)
        assert (error["code"], error["data"]["reason"]) == (-32030, "feature_disabled"), method
        assert error["message"] == "Unsupported"
    listed = await client.call("get_external_streams")
    assert listed["external_streams"] == listed["skydio_streams"] == []
    assert listed["generic_streams"] == [] and listed["total_count"] == 0
    assert "external_streams" not in (await client.call("get_server_info"))["capabilities"]
    # Params are checked before the feature (API.md §3.4).
    error = await client.error("set_discovery_interval", {"scan_interval": -1})
    assert error["code"] == -32602


async def test_enabled_capability(stack) -> None:
    """get_server_info lists external_streams when the feature is on."""
    s = await stack()
    assert "external_streams" in (await s.client.call("get_server_info"))["capabilities"]


# --- params ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "params", "reason", "param"),
    [
        ("add_external_stream", {"stream_name": "a"}, "missing_param", "stream_url"),
        ("add_external_stream", {"stream_url": "rtsp://h/p"}, "missing_param", "stream_name"),
        (
            "add_external_stream",
            {"stream_url": "http://h/p", "stream_name": "a"},
            "invalid_value",
            "stream_url",
        ),
        (
            "add_external_stream",
            {"stream_url": "rtsp://h/" + "a" * 2040, "stream_name": "a"},
            "out_of_range",
            "stream_url",
        ),
        (
            "add_external_stream",
            {"stream_url": "rtsp://h/p q", "stream_name": "a"},
            "invalid_value",
            "stream_url",
        ),
        (
            "add_external_stream",
            {"stream_url": "rtsp://h/p", "stream_name": "a b"},
            "invalid_value",
            "stream_name",
        ),
        (
            "add_external_stream",
            {"stream_url": "rtsp://h/p", "stream_name": "a" * 65},
            "invalid_value",
            "stream_name",
        ),
        (
            "add_external_stream",
            {"stream_url": "rtsp://h/p", "stream_name": "a", "stream_type": "onvif"},
            "invalid_value",
            "stream_type",
        ),
        (
            "add_external_stream",
            {"stream_url": 5, "stream_name": "a"},
            "invalid_type",
            "stream_url",
        ),
        (
            "add_external_stream",
            {"stream_url": "rtsps://", "stream_name": "a"},
            "invalid_value",
            "stream_url",
        ),
        (
            "add_external_stream",
            {"stream_url": "rtsp://[::1/p", "stream_name": "a"},
            "invalid_value",
            "stream_url",
        ),
        (
            "add_external_stream",
            {"stream_url": "rtsp://h:99999/p", "stream_name": "a"},
            "invalid_value",
            "stream_url",
        ),
        (
            "remove_external_stream",
            {"stream_url": "file:///etc/passwd"},
            "invalid_value",
            "stream_url",
        ),
        ("set_discovery_interval", {"scan_interval": 86401}, "out_of_range", "scan_interval"),
        ("set_discovery_interval", {"scan_interval": "60"}, "invalid_type", "scan_interval"),
        ("set_discovery_interval", {"scan_interval": 1.5}, "invalid_type", "scan_interval"),
        ("set_discovery_interval", {}, "missing_param", "scan_interval"),
        ("discover_external_streams", {"force_rescan": "yes"}, "invalid_type", "force_rescan"),
    ],
)
async def test_bad_params(stack, method: str, params: dict, reason: str, param: str) -> None:
    """Each malformed param is -32602 with its reason and name."""
    s = await stack()
    error = await s.client.error(method, params)
    assert error["code"] == -32602, error
    assert (error["data"]["reason"], error["data"].get("param")) == (reason, param), error


async def test_url_of_2048_chars_is_accepted(stack) -> None:
    """The limit is inclusive: a 2048-character URL is added."""
    s = await stack()
    url = "rtsp://127.0.0.1:1/" + "a" * (2048 - len("rtsp://127.0.0.1:1/"))
    added = await s.client.call("add_external_stream", {"stream_url": url, "stream_name": "long"})
    assert added["stream_url"] == url and added["device"] == "ext_long"


# --- errors --------------------------------------------------------------------------------


async def test_unknown_and_duplicate(stack) -> None:
    """Removing an unknown URL is -32010 stream_not_found; a taken name or URL is -32020."""
    s = await stack(scan_timeout=1)
    error = await s.client.error("remove_external_stream", {"stream_url": "rtsp://h:1/none"})
    assert (error["code"], error["data"]["reason"], error["message"]) == (
        -32010,
        "stream_not_found",
        "Stream not found",
    )
    first = {"stream_url": "rtsp://127.0.0.1:1/a", "stream_name": "cam"}
    await s.client.call("add_external_stream", first)
    for params in (
        {"stream_url": "rtsp://127.0.0.1:1/b", "stream_name": "cam"},  # name taken
        {"stream_url": "rtsp://127.0.0.1:1/a", "stream_name": "other"},  # URL taken
    ):
        error = await s.client.error("add_external_stream", params)
        assert (error["code"], error["data"]["reason"]) == (-32020, "already_exists"), params
    assert [p.name for p in await s.app.mediamtx.config_paths_all()] == ["ext_cam"]


async def test_mediamtx_down(stack) -> None:
    """With MediaMTX unreachable, add and remove answer -32050; the registry is unchanged."""
    s = await stack(scan_timeout=1)
    kept = {"stream_url": "rtsp://127.0.0.1:1/a", "stream_name": "kept"}
    await s.client.call("add_external_stream", kept)
    await s.standin.stop()
    error = await s.client.error(
        "add_external_stream", {"stream_url": "rtsp://127.0.0.1:1/b", "stream_name": "new"}
    )
    assert (error["code"], error["data"]["reason"]) == (-32050, "mediamtx_unavailable")
    error = await s.client.error("remove_external_stream", {"stream_url": kept["stream_url"]})
    assert error["code"] == -32050
    error = await s.client.error("take_snapshot", {"device": "ext_kept"})
    assert error["code"] == -32050  # ext_ frames come from MediaMTX's RTSP output
    listed = await s.client.call("get_external_streams")
    assert [e["device"] for e in listed["external_streams"]] == ["ext_kept"]
    # Back up (empty, as after a MediaMTX restart): the path of the added stream returns.
    await s.standin.start()
    await until(lambda: s.app.mediamtx_paths.get("ext_kept") is not None, timeout_s=15)


async def test_viewers_see_no_password_in_stream_urls(stack, connect) -> None:
    """get_external_streams shows a URL's password to operators and admins only."""
    s = await stack(scan_timeout=1)
    url = "rtsp://cam:s3cret@127.0.0.1:1/a"
    await s.client.call("add_external_stream", {"stream_url": url, "stream_name": "locked"})
    seen = {}
    for role in ("viewer", "operator", "admin"):
        client = await connect(s.svc, role)
        [stream] = (await client.call("get_external_streams"))["external_streams"]
        seen[role] = stream["url"]
        if role == "viewer":  # nor anywhere else a viewer may look
            for method, params in (
                ("get_camera_list", None),
                ("get_camera_status", {"device": "ext_locked"}),
                ("get_stream_url", {"device": "ext_locked"}),
            ):
                assert "s3cret" not in json.dumps(await client.request(method, params)), method
    assert seen == {
        "viewer": "rtsp://cam:***@127.0.0.1:1/a",
        "operator": url,
        "admin": url,
    }


# --- persistence and discovery -------------------------------------------------------------


async def test_persisted_across_restart(
    stack, start_service: Callable[..., Awaitable[Service]], connect
) -> None:
    """Added streams and the discovery interval are in the state database after a restart."""
    s = await stack(scan_timeout=1)
    await s.client.call(
        "add_external_stream",
        {
            "stream_url": "rtsp://127.0.0.1:1/a",
            "stream_name": "drone",
            "stream_type": "skydio_stanag4609",
        },
    )
    updated = await s.client.call("set_discovery_interval", {"scan_interval": 120})
    assert updated["scan_interval"] == 120 and updated["status"] == "UPDATED"
    assert updated["message"] == "Discovery interval updated"
    again = await start_service(
        mediamtx={"api_url": s.app.config.mediamtx.api_url, "spawn": "never"},
        external_discovery={"enabled": True},
    )
    assert again.app.external.scan_interval == 120
    client = await connect(again, "viewer")
    listed = await client.call("get_external_streams")
    [stream] = listed["external_streams"]
    assert listed["skydio_streams"] == [stream] and listed["total_count"] == 1
    assert stream["device"] == "ext_drone" and stream["name"] == "drone"
    assert stream["type"] == "skydio_stanag4609" and stream["status"] == "ERROR"


@needs_ffmpeg
async def test_discover_configured_candidates(stack, upstream) -> None:
    """A generic candidate that serves a stream is DISCOVERED with its codec and size."""
    s = await stack(
        lambda ports: {
            "generic": {
                "enabled": True,
                "known_hosts": ["127.0.0.1"],
                "ports": [ports.rtsp],
                "stream_paths": ["/upstream", "/missing"],
            }
        }
    )
    url = await upstream(s)
    result = await s.client.call(
        "discover_external_streams", {"skydio_enabled": False, "generic_enabled": True}
    )
    assert [e["url"] for e in result["discovered_streams"]] == [url]
    [found] = result["generic_streams"]
    assert found["status"] == "DISCOVERED" and found["type"] == "generic_rtsp"
    assert found["capabilities"] == {"codec": "H264", "resolution": f"{WIDTH}x{HEIGHT}"}
    assert found["device"] is None and result["skydio_streams"] == []
    assert result["total_found"] == 1 and result["errors"] == []
    assert result["discovery_options"] == {
        "skydio_enabled": False,
        "generic_enabled": True,
        "force_rescan": False,
        "include_offline": False,
    }
    listed = await s.client.call("get_external_streams")
    assert [e["url"] for e in listed["generic_streams"]] == [url]


# --- end to end ------------------------------------------------------------------------------


@needs_ffmpeg
async def test_add_probe_record_remove(stack, upstream, tmp_path: FsPath) -> None:
    """An RTSP stream published by ffmpeg is added, probed, read, recorded and removed."""
    s = await stack()
    url = await upstream(s)
    inbox = Inbox(s.client)

    added = await s.client.call("add_external_stream", {"stream_url": url, "stream_name": "cam"})
    assert added == {
        "stream_url": url,
        "stream_name": "cam",
        "stream_type": "generic_rtsp",
        "device": "ext_cam",
        "status": "ADDED",
        "timestamp": added["timestamp"],
    }
    [stream] = (await s.client.call("get_external_streams"))["external_streams"]
    assert stream["status"] == "DISCOVERED" and stream["device"] == "ext_cam"
    assert stream["capabilities"] == {"codec": "H264", "resolution": f"{WIDTH}x{HEIGHT}"}
    conf = await s.app.mediamtx.config_path_get("ext_cam")
    assert conf.source == url and conf.source_on_demand is True
    # MediaMTX allows runOnDemand only with source `publisher`; segments are reported.
    assert conf.run_on_demand == "" and "segment-complete" in conf.run_on_record_segment_complete

    # MediaMTX pulls it for a reader.
    probed = await ffprobe(s.rtsp("ext_cam"), "stream=codec_name,width,height")
    assert probed["streams"] == [{"codec_name": "h264", "width": WIDTH, "height": HEIGHT}]

    started = await s.client.call("start_recording", {"device": "ext_cam"})
    assert started["status"] == "RECORDING" and started["filename"].startswith("ext_cam_")
    await inbox.expect(recording_update("STARTED"))
    await wait_path(s, "ext_cam", lambda p: p.bytes_received > 20_000)
    stopped = await s.client.call("stop_recording", {"device": "ext_cam"})
    assert stopped["segments"][0] == started["filename"] and stopped["file_size"] > 0
    segment = tmp_path / "recordings" / "ext_cam" / started["filename"]
    info = await ffprobe(str(segment), "stream=codec_name,width,height")
    assert info["streams"] == [{"codec_name": "h264", "width": WIDTH, "height": HEIGHT}]
    listed = await s.client.call("list_recordings", {"device": "ext_cam"})
    assert [f["filename"] for f in listed["files"]] == [started["filename"]]
    assert listed["files"][0]["device"] == "ext_cam"
    conf = await s.app.mediamtx.config_path_get("ext_cam")
    assert conf.record is False and conf.source_on_demand is True

    # Snapshots come from the path's RTSP output, at the stream's size or scaled down.
    shot = await s.client.call("take_snapshot", {"device": "ext_cam"})
    assert shot["status"] == "SUCCESS" and shot["format"] == "jpeg"
    assert (shot["width"], shot["height"]) == (WIDTH, HEIGHT)
    assert shot["file_path"] == f"ext_cam/{shot['filename']}"
    jpeg = (tmp_path / "snapshots" / "ext_cam" / shot["filename"]).read_bytes()
    assert jpeg.startswith(b"\xff\xd8") and len(jpeg) == shot["file_size"]
    small = await s.client.call(
        "take_snapshot", {"device": "ext_cam", "format": "png", "max_width": 160}
    )
    assert (small["width"], small["height"], small["format"]) == (160, 120, "png")
    error = await s.client.error("take_snapshot", {"device": "ext_none"})
    assert (error["code"], error["data"]["reason"]) == (-32010, "stream_not_found")

    # Removing it while it records stops the recording first (reason stream_removed).
    again = await s.client.call("start_recording", {"device": "ext_cam"})
    removed = await s.client.call("remove_external_stream", {"stream_url": url})
    assert removed["stream_url"] == url and removed["status"] == "REMOVED"
    update = await inbox.expect(
        lambda m: (
            m.get("method") == "recording_status_update"
            and m["params"]["status"] == "STOPPED"
            and m["params"]["filename"] == again["filename"]
        )
    )
    assert update["params"]["reason"] == "stream_removed"
    assert not s.app.recordings.is_recording("ext_cam")
    assert "ext_cam" not in [p.name for p in await s.app.mediamtx.config_paths_all()]
    assert (await s.client.call("get_external_streams"))["external_streams"] == []
    error = await s.client.error("start_recording", {"device": "ext_cam"})
    assert (error["code"], error["data"]["reason"]) == (-32010, "stream_not_found")


@needs_ffmpeg
async def test_stream_methods_on_ext_devices(stack, upstream) -> None:
    """start/stop_streaming, get_stream_url and get_stream_status take ext_ ids: MediaMTX
    pulls the source while a stream or a recording wants it, else only for readers."""
    s = await stack()
    url = await upstream(s)
    for method in ("get_stream_url", "get_stream_status", "start_streaming", "stop_streaming"):
        error = await s.client.error(method, {"device": "ext_none"})
        assert (error["code"], error["data"]["reason"]) == (-32010, "stream_not_found"), method
    await s.client.call("add_external_stream", {"stream_url": url, "stream_name": "cam"})
    device = {"device": "ext_cam"}
    await wait_path(s, "ext_cam", lambda p: True)
    before = await s.client.call("get_stream_url", device)
    assert before["stream_status"] == "NOT_READY" and before["available"] is True
    assert before["stream_url"] == s.rtsp("ext_cam")  # the Host header of the client
    idle = await s.client.call("get_stream_status", device)
    assert idle["status"] == "INACTIVE" and idle["ready"] is False

    started = await s.client.call("start_streaming", device)
    assert started["status"] == "STARTED" and started["stream_name"] == "ext_cam"
    assert (await s.app.mediamtx.config_path_get("ext_cam")).source_on_demand is False
    status = await s.client.call("get_stream_status", device)
    assert status["status"] == "ACTIVE" and status["mediamtx_path"]["exists"] is True
    assert status["ffmpeg_process"] == {"running": False, "pid": None, "uptime": 0.0}
    assert status["start_time"] == started["start_time"]
    await wait_path(s, "ext_cam", lambda p: p.ready)
    assert (await s.client.call("get_stream_url", device))["stream_status"] == "READY"

    # A recording ending while the stream runs keeps the source pulled.
    await s.client.call("start_recording", device)
    await s.client.call("stop_recording", device)
    conf = await s.app.mediamtx.config_path_get("ext_cam")
    assert conf.record is False and conf.source_on_demand is False

    stopped = await s.client.call("stop_streaming", device)
    assert stopped["status"] == "STOPPED" and stopped["stream_continues"] is False
    assert stopped["start_time"] == started["start_time"]
    assert (await s.app.mediamtx.config_path_get("ext_cam")).source_on_demand is True


@needs_ffmpeg
async def test_idle_stream_goes_back_on_demand(stack, upstream) -> None:
    """A started ext_ stream without readers for idle_close_after is pulled on demand again."""
    s = await stack(sections={"mediamtx": {"idle_close_after": 1}})
    url = await upstream(s)
    await s.client.call("add_external_stream", {"stream_url": url, "stream_name": "cam"})
    await s.client.call("start_streaming", {"device": "ext_cam"})
    assert s.app.external_live.streaming("ext_cam")
    await until(lambda: not s.app.external_live.streaming("ext_cam"), timeout_s=15)
    conf = await s.app.mediamtx.config_path_get("ext_cam")
    assert conf.source_on_demand is True
    status = await s.client.call("get_stream_status", {"device": "ext_cam"})
    assert status["start_time"] is None


async def test_recording_an_unreachable_stream_fails_cleanly(stack) -> None:
    """No first segment within recording.start_timeout: -32050, the path back as it was."""
    s = await stack(scan_timeout=1, sections={"recording": {"start_timeout": 1}})
    with trio.socket.socket() as sock:  # a port nobody listens on
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"rtsp://127.0.0.1:{port}/gone"
    await s.client.call("add_external_stream", {"stream_url": url, "stream_name": "gone"})
    [stream] = (await s.client.call("get_external_streams"))["external_streams"]
    assert stream["status"] == "ERROR" and stream["capabilities"] == {}
    error = await s.client.error("start_recording", {"device": "ext_gone"})
    assert (error["code"], error["data"]["reason"]) == (-32050, "mediamtx_error")
    assert not s.app.recordings.is_recording("ext_gone")
    conf = await s.app.mediamtx.config_path_get("ext_gone")
    assert conf.record is False and conf.source_on_demand is True
