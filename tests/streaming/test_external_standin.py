"""The stand-in pulls `source: rtsp://...` paths as MediaMTX does: always, or on demand."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator

import pytest
import trio

from camsvc.streaming.standin import StandIn, StandInPorts
from camsvc.streaming.standin._source import rewrite_sdp
from tests.streaming.conftest import Api
from tests.streaming.test_standin_media import HEIGHT, WIDTH, ffprobe, publisher_cmd, wait_for

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


@pytest.fixture
async def upstream(nursery: trio.Nursery, standin: StandIn, api: Api) -> AsyncIterator[str]:
    """ffmpeg publishing test-pattern H.264 to the stand-in's path `upstream`; its URL."""
    assert (await api.call("POST", "/v3/config/paths/add/upstream", {}))[0] == 200
    url = f"rtsp://127.0.0.1:{standin.ports.rtsp}/upstream"
    proc = await trio.lowlevel.open_process(
        publisher_cmd(url).split(), stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    await wait_for(standin.paths["upstream"], lambda p: p.ready)
    yield url
    proc.kill()
    await proc.wait()


def test_rewrite_sdp() -> None:
    """Controls become `*` for the session and `trackID=N` per media, whatever they were."""
    sdp = (
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\na=control:rtsp://cam/live\r\n"
        "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:rtsp://cam/live/v\r\n"
        "m=audio 0 RTP/AVP 0\r\na=control:streamid=1\r\n"
    )
    assert rewrite_sdp(sdp).split("\r\n") == [
        "v=0",
        "o=- 0 0 IN IP4 127.0.0.1",
        "s=x",
        "a=control:*",
        "m=video 0 RTP/AVP 96",
        "a=control:trackID=0",
        "a=rtpmap:96 H264/90000",
        "m=audio 0 RTP/AVP 0",
        "a=control:trackID=1",
        "",
    ]


@needs_ffmpeg
async def test_static_source_is_pulled(
    standin: StandIn, api: Api, upstream: str, ports: StandInPorts
) -> None:
    """A path whose source is an RTSP URL is ready with an rtspSource and reads as published."""
    assert (await api.call("POST", "/v3/config/paths/add/pulled", {"source": upstream}))[0] == 200
    path = standin.paths["pulled"]
    await wait_for(path, lambda p: p.ready)
    _, state = await api.call("GET", "/v3/paths/get/pulled")
    assert state["source"] == {"type": "rtspSource", "id": ""}
    assert state["tracks"] == ["H264"]
    probed = await ffprobe(
        f"rtsp://127.0.0.1:{ports.rtsp}/pulled", "stream=codec_name,width,height"
    )
    assert probed["streams"] == [{"codec_name": "h264", "width": WIDTH, "height": HEIGHT}]
    # Deleting the path ends the pull.
    assert (await api.call("DELETE", "/v3/config/paths/delete/pulled"))[0] == 200
    assert "pulled" not in standin.paths
    await wait_for(path, lambda p: not p.ready)


@needs_ffmpeg
async def test_on_demand_source(
    standin: StandIn, api: Api, upstream: str, ports: StandInPorts
) -> None:
    """sourceOnDemand: pulled only for a reader, closed sourceOnDemandCloseAfter after it left."""
    conf = {"source": upstream, "sourceOnDemand": True, "sourceOnDemandCloseAfter": "1s"}
    assert (await api.call("POST", "/v3/config/paths/add/lazy", conf))[0] == 200
    path = standin.paths["lazy"]
    assert not path.ready and path._source is None  # nobody reads: nothing pulled
    probed = await ffprobe(f"rtsp://127.0.0.1:{ports.rtsp}/lazy", "stream=codec_name")
    assert probed["streams"] == [{"codec_name": "h264"}]
    await wait_for(path, lambda p: not p.ready)  # closed after the reader left
    assert path._source is None


async def test_unreachable_source_stays_not_ready(standin: StandIn, api: Api) -> None:
    """A source that refuses leaves the path not ready (retried later), readers get 404."""
    with trio.socket.socket() as sock:  # a port nobody listens on
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conf = {"source": f"rtsp://127.0.0.1:{port}/nothing"}
    assert (await api.call("POST", "/v3/config/paths/add/dead", conf))[0] == 200
    await trio.testing.wait_all_tasks_blocked(cushion=0.2)
    _, state = await api.call("GET", "/v3/paths/get/dead")
    assert state["ready"] is False and state["source"] is None


async def test_publishing_to_a_pulled_path_is_refused(standin: StandIn, api: Api) -> None:
    """ANNOUNCE on a path whose source is not `publisher` is answered 400, as MediaMTX does."""
    conf = {"source": "rtsp://127.0.0.1:1/x", "sourceOnDemand": True}
    assert (await api.call("POST", "/v3/config/paths/add/pulled", conf))[0] == 200
    sdp = b"v=0\r\ns=x\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    url = f"rtsp://127.0.0.1:{standin.ports.rtsp}/pulled"
    request = (
        f"ANNOUNCE {url} RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/sdp\r\n"
        f"Content-Length: {len(sdp)}\r\n\r\n"
    ).encode() + sdp
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream("127.0.0.1", standin.ports.rtsp)
        async with stream:
            await stream.send_all(request)
            reply = await stream.receive_some(4096)
    assert reply.startswith(b"RTSP/1.0 400 ")


async def test_source_validation(api: Api) -> None:
    """MediaMTX's checks: sourceOnDemand needs a static source; a regex path needs it on."""
    status, body = await api.call("POST", "/v3/config/paths/add/cam", {"sourceOnDemand": True})
    assert (status, body["error"]) == (
        400,
        "'sourceOnDemand' is useless when source is 'publisher'",
    )
    conf = {"source": "rtsp://127.0.0.1:1/x"}
    status, body = await api.call("POST", "/v3/config/paths/add/~^ext_", conf)
    assert status == 400 and body["error"] == (
        "a path with a regular expression (or path 'all') and a static source"
        " must have 'sourceOnDemand' set to true"
    )
    conf["sourceOnDemand"] = True
    assert (await api.call("POST", "/v3/config/paths/add/~^ext_", conf))[0] == 200
