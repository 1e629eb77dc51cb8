"""The RTSP DESCRIBE prober against fake servers on loopback, and discovery's candidates."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from camsvc.config import ExternalDiscoveryConfig, RecordingConfig, config_from_dict
from camsvc.media.catalog import Catalog
from camsvc.streaming.external import (
    Candidate,
    DiscoveryOptions,
    ExternalStreams,
    candidates,
    redact,
)
from camsvc.streaming.mediamtx import MediaMTXClient
from camsvc.streaming.rtsp_probe import (
    ProbeResult,
    RtspProtocolError,
    authorization,
    describe_request,
    h264_resolution,
    parse_reply,
    probe,
    sdp_capabilities,
)

# SPS NAL units of libx264 (testsrc, yuv420p): 320x240 high and baseline, 1920x1080 (cropped).
SPS_320 = "Z2QADKzZQUH7ARAAAAMAEAAAAwHg8UKZYA=="
SPS_320_BASELINE = "Z0LADNkBQfsBEAAAAwAQAAADAeDxQqSA"
SPS_1080 = "Z2QAKKzZQHgCJ+XARAAAAwAEAAADAHg8YMZY"
SDP = (
    "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=Test\r\nt=0 0\r\n"
    "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    f"a=fmtp:96 packetization-mode=1; sprop-parameter-sets={SPS_320},aO48gA==\r\n"
    "a=control:trackID=0\r\n"
)


def rtsp_reply(status: str, cseq: str = "1", body: bytes = b"", extra: str = "") -> bytes:
    """An RTSP/1.0 reply."""
    head = f"RTSP/1.0 {status}\r\nCSeq: {cseq}\r\n{extra}"
    if body:
        head += f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


Handler = Callable[[trio.SocketStream], Awaitable[None]]


@pytest.fixture
def fake_rtsp(nursery: trio.Nursery) -> Callable[[Handler], Awaitable[int]]:
    """Start a TCP server on loopback running `handler` per connection; returns its port."""

    async def start(handler: Handler) -> int:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1")
        )
        return listeners[0].socket.getsockname()[1]

    return start


def answering(reply: bytes, seen: list[bytes] | None = None) -> Handler:
    """A handler that reads one request (kept in `seen`) and sends `reply`."""

    async def handle(stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            data += chunk
        if seen is not None:
            seen.append(data)
        await stream.send_all(reply)
        await stream.aclose()

    return handle


class TestParse:
    def test_describe_request(self) -> None:
        """DESCRIBE with CSeq, Accept and no credentials from the URL."""
        req = describe_request("rtsp://user:pw@cam.local:8554/live?x=1", 3).decode()
        lines = req.split("\r\n")
        assert lines[0] == "DESCRIBE rtsp://cam.local:8554/live?x=1 RTSP/1.0"
        assert "CSeq: 3" in lines and "Accept: application/sdp" in lines
        assert req.endswith("\r\n\r\n") and "pw" not in req

    def test_reply_needs_more_then_complete(self) -> None:
        """A partial reply asks for more; a complete one carries status and body."""
        whole = rtsp_reply("200 OK", body=SDP.encode())
        assert parse_reply(whole[:20], 1) is None
        assert parse_reply(whole[:-5], 1) is None
        reply = parse_reply(whole, 1)
        assert reply is not None and reply.status == 200 and reply.body == SDP.encode()

    @pytest.mark.parametrize(
        "data",
        [
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"\x00\x01\x02\x03garbage-garbage",
            b"RTSP/1.0 2OO OK\r\nCSeq: 1\r\n\r\n",
            b"RTSP/1.0 200 OK\r\nCSeq: 2\r\n\r\n",
            b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: x\r\n\r\n",
            b"RTSP/1.0 200 OK\r\nno header colon\r\n\r\n",
        ],
    )
    def test_garbage(self, data: bytes) -> None:
        """Non-RTSP bytes, bad status lines, a foreign CSeq or bad headers are errors."""
        with pytest.raises(RtspProtocolError):
            parse_reply(data, 1)

    def test_basic_authorization(self) -> None:
        """Basic: the base64 of user:password, whatever the realm."""
        header = authorization('Basic realm="cam"', "admin", "p:w", "DESCRIBE", "rtsp://h/x")
        assert header == "Basic YWRtaW46cDp3"

    def test_digest_authorization_rfc2617(self) -> None:
        """Digest with qop=auth gives RFC 2617's worked example's response."""
        challenge = (
            'Digest realm="testrealm@host.com", qop="auth,auth-int", '
            'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
        )
        header = authorization(
            challenge, "Mufasa", "Circle Of Life", "GET", "/dir/index.html", cnonce="0a4f113b"
        )
        assert header is not None and header.startswith("Digest ")
        assert 'response="6629fae49393a05397450978507c4ef1"' in header
        assert 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in header and "nc=00000001" in header

    def test_unknown_scheme(self) -> None:
        """A scheme other than Basic or MD5 Digest: no header (the 401 stands)."""
        assert authorization('Bearer realm="x"', "u", "p", "DESCRIBE", "rtsp://h/") is None
        sha = 'Digest realm="r", nonce="n", algorithm=SHA-256'
        assert authorization(sha, "u", "p", "DESCRIBE", "rtsp://h/") is None

    def test_sps_resolutions(self) -> None:
        """The resolution of high and baseline SPS, with frame cropping (1080 from 1088)."""
        import base64

        assert h264_resolution(base64.b64decode(SPS_320)) == (320, 240)
        assert h264_resolution(base64.b64decode(SPS_320_BASELINE)) == (320, 240)
        assert h264_resolution(base64.b64decode(SPS_1080)) == (1920, 1080)
        with pytest.raises(ValueError):
            h264_resolution(b"\x68\xee\x3c\x80")  # a PPS

    def test_sdp_capabilities(self) -> None:
        """Codec from rtpmap, resolution from the SPS or a framesize attribute."""
        assert sdp_capabilities(SDP) == {"codec": "H264", "resolution": "320x240"}
        other = "m=video 0 RTP/AVP 97\r\na=rtpmap:97 H265/90000\r\na=framesize:97 640-480\r\n"
        assert sdp_capabilities(other) == {"codec": "H265", "resolution": "640x480"}
        assert sdp_capabilities("m=audio 0 RTP/AVP 0\r\n") == {}


class TestProbe:
    async def test_200_with_sdp(self, fake_rtsp) -> None:
        """A 200 reply: found, codec and resolution from its SDP; the request was a DESCRIBE."""
        seen: list[bytes] = []
        port = await fake_rtsp(answering(rtsp_reply("200 OK", body=SDP.encode()), seen))
        url = f"rtsp://127.0.0.1:{port}/live"
        result = await probe(url, 5)
        assert result.found and result.status == "ok" and result.rtsp_status == 200
        assert result.capabilities == {"codec": "H264", "resolution": "320x240"}
        assert seen[0].startswith(f"DESCRIBE {url} RTSP/1.0\r\n".encode())
        assert b"CSeq: 1\r\n" in seen[0]

    @pytest.mark.parametrize(
        ("status", "expected"),
        [
            ("401 Unauthorized", "unauthorized"),
            ("404 Not Found", "not_found"),
            ("503 Service Unavailable", "error"),
        ],
    )
    async def test_error_statuses(self, fake_rtsp, status: str, expected: str) -> None:
        """401, 404 and other statuses are not found, each with its own status."""
        extra = 'WWW-Authenticate: Basic realm="cam"\r\n' if status.startswith("401") else ""
        port = await fake_rtsp(answering(rtsp_reply(status, extra=extra)))
        result = await probe(f"rtsp://127.0.0.1:{port}/live", 5)
        assert not result.found and result.status == expected
        assert result.rtsp_status == int(status[:3]) and status in result.error

    async def test_401_then_credentials_from_the_url(self, fake_rtsp) -> None:
        """With user info in the URL, a 401 is answered once with those credentials."""
        seen: list[bytes] = []

        async def guarded(stream: trio.SocketStream) -> None:
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive_some(4096)
            seen.append(data)
            cseq = data.split(b"CSeq: ", 1)[1].split(b"\r\n", 1)[0].decode()
            if b"Authorization: Basic dXNlcjpzZWNyZXQ=\r\n" in data:
                await stream.send_all(rtsp_reply("200 OK", cseq, SDP.encode()))
            else:
                challenge = 'WWW-Authenticate: Basic realm="cam"\r\n'
                await stream.send_all(rtsp_reply("401 Unauthorized", cseq, extra=challenge))
            await stream.aclose()

        port = await fake_rtsp(guarded)
        result = await probe(f"rtsp://user:secret@127.0.0.1:{port}/live", 5)
        assert result.found and result.capabilities["codec"] == "H264"
        assert len(seen) == 2 and b"secret" not in seen[0] and b"user" not in seen[0]
        assert seen[1].startswith(f"DESCRIBE rtsp://127.0.0.1:{port}/live RTSP/1.0".encode())
        # Wrong credentials: still 401 after the one retry.
        result = await probe(f"rtsp://user:wrong@127.0.0.1:{port}/live", 5)
        assert result.status == "unauthorized" and len(seen) == 4

    async def test_garbage_reply(self, fake_rtsp) -> None:
        """An HTTP server on the port: error, not found."""
        port = await fake_rtsp(answering(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
        result = await probe(f"rtsp://127.0.0.1:{port}/live", 5)
        assert result.status == "error" and "not an RTSP reply" in result.error

    async def test_closed_without_reply(self, fake_rtsp) -> None:
        """A peer that closes after the request: error."""

        async def close(stream: trio.SocketStream) -> None:
            await stream.receive_some(4096)
            await stream.aclose()

        port = await fake_rtsp(close)
        result = await probe(f"rtsp://127.0.0.1:{port}/live", 5)
        assert result.status == "error" and "closed" in result.error

    async def test_silent_server_times_out(self, fake_rtsp) -> None:
        """A server that accepts and never answers: timeout after the probe's deadline."""
        done = trio.Event()

        async def silent(stream: trio.SocketStream) -> None:
            await done.wait()

        port = await fake_rtsp(silent)
        result = await probe(f"rtsp://127.0.0.1:{port}/live", 0.3)
        done.set()
        assert result.status == "timeout" and result.elapsed_s >= 0.3

    async def test_refused(self) -> None:
        """Nobody listening: refused."""
        with trio.socket.socket() as sock:
            await sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        result = await probe(f"rtsp://127.0.0.1:{port}/live", 5)
        assert result.status == "refused" and not result.found


# --- discovery ---------------------------------------------------------------------------


def discovery_config(**over: object) -> ExternalDiscoveryConfig:
    """An enabled external_discovery section with `over` merged in."""
    section = {"enabled": True, **over}
    return config_from_dict({"external_discovery": section}).external_discovery


class TestCandidates:
    def test_skydio_and_generic(self) -> None:
        """Known hosts with EO and IR for Skydio, with ports and paths for generic, only."""
        cfg = discovery_config(
            skydio={"known_hosts": ["10.0.0.5"]},
            generic={
                "enabled": True,
                "known_hosts": ["cam.local"],
                "ports": [554, 8554],
                "stream_paths": ["/live", "video"],
            },
        )
        cands, errors = candidates(cfg, skydio=True, generic=True)
        assert errors == []
        assert [(c.url, c.type) for c in cands] == [
            ("rtsp://10.0.0.5:5554/subject", "skydio_stanag4609"),
            ("rtsp://10.0.0.5:6554/infrared", "skydio_stanag4609"),
            ("rtsp://cam.local:554/live", "generic_rtsp"),
            ("rtsp://cam.local:554/video", "generic_rtsp"),
            ("rtsp://cam.local:8554/live", "generic_rtsp"),
            ("rtsp://cam.local:8554/video", "generic_rtsp"),
        ]
        assert cands[0].name == "skydio_eo_10_0_0_5"
        assert [c.url for c in candidates(cfg, skydio=False, generic=True)[0]] == [
            c.url for c in cands[2:]
        ]

    def test_groups_disabled_in_config_are_skipped(self) -> None:
        """generic.enabled false (default) or skydio.enabled false: no candidates of it."""
        cfg = discovery_config(
            skydio={"enabled": False, "known_hosts": ["10.0.0.5"]},
            generic={"known_hosts": ["10.0.0.6"]},
        )
        assert candidates(cfg, skydio=True, generic=True) == ([], [])

    def test_ranges_only_with_network_scan(self) -> None:
        """network_ranges are ignored unless allow_network_scan; huge ranges are refused."""
        sky = {"known_hosts": [], "network_ranges": ["192.168.5.0/30", "10.0.0.0/8", "bad"]}
        assert candidates(discovery_config(skydio=sky), skydio=True, generic=False) == ([], [])
        cands, errors = candidates(
            discovery_config(skydio=sky, allow_network_scan=True), skydio=True, generic=False
        )
        hosts = sorted({c.url.split("//")[1].split(":")[0] for c in cands})
        assert hosts == ["192.168.5.1", "192.168.5.2"]
        assert len(errors) == 2 and "10.0.0.0/8" in errors[0] and "bad" in errors[1]

    def test_ipv6_host(self) -> None:
        """IPv6 literals are bracketed in the URL."""
        cfg = discovery_config(skydio={"known_hosts": ["fd00::5"]})
        cands, _ = candidates(cfg, skydio=True, generic=False)
        assert cands[0].url == "rtsp://[fd00::5]:5554/subject"


class FakeProber:
    """Answers probes from a table of URLs that are 'up'; records every URL probed."""

    def __init__(self, up: set[str]) -> None:
        self.up = up
        self.probed: list[str] = []

    async def __call__(self, url: str, timeout_s: float) -> ProbeResult:
        self.probed.append(url)
        await trio.lowlevel.checkpoint()
        if url in self.up:
            return ProbeResult(url, "ok", 200, {"codec": "H264"})
        return ProbeResult(url, "refused", error="connection refused")


def make_external(
    tmp_path: Path, cfg: ExternalDiscoveryConfig, prober: FakeProber
) -> ExternalStreams:
    async def no_recording(device: str) -> None:
        pass

    return ExternalStreams(
        cfg,
        RecordingConfig(path=str(tmp_path / "rec")),
        MediaMTXClient("http://127.0.0.1:9"),  # discovery never calls MediaMTX
        Catalog(tmp_path / "state.db"),
        resync_s=1,
        end_recording=no_recording,
        prober=prober,
    )


SKY = {"known_hosts": ["10.0.0.5", "10.0.0.6"]}
EO5, IR5 = "rtsp://10.0.0.5:5554/subject", "rtsp://10.0.0.5:6554/infrared"
EO6, IR6 = "rtsp://10.0.0.6:5554/subject", "rtsp://10.0.0.6:6554/infrared"


class TestDiscovery:
    async def test_probes_only_candidates(self, tmp_path: Path) -> None:
        """A scan probes exactly the configured candidates; what answered is DISCOVERED."""
        prober = FakeProber({EO5})
        ext = make_external(tmp_path, discovery_config(skydio=SKY), prober)
        result = await ext.discover(DiscoveryOptions())
        assert sorted(prober.probed) == sorted([EO5, IR5, EO6, IR6])
        assert [s.url for s in result.discovered_streams] == [EO5]
        assert result.skydio_streams == result.discovered_streams
        assert result.generic_streams == [] and result.total_found == 1
        stream = result.discovered_streams[0]
        assert stream.status == "DISCOVERED" and stream.type == "skydio_stanag4609"
        assert stream.capabilities == {"codec": "H264"} and stream.device is None
        assert len(result.errors) == 3 and all("refused" in e for e in result.errors)
        assert result.discovery_options == DiscoveryOptions()
        assert result.scan_duration.endswith("s")
        assert [s.url for s in ext.list().external_streams] == [EO5]

    async def test_reuse_force_and_offline(self, tmp_path: Path, autojump_clock) -> None:
        """Under 30 s a scan is reused unless forced; a stream gone is ERROR, listed on request."""
        prober = FakeProber({EO5, EO6})
        ext = make_external(tmp_path, discovery_config(skydio=SKY), prober)
        first = await ext.discover(DiscoveryOptions())
        assert first.total_found == 2 and len(prober.probed) == 4
        again = await ext.discover(DiscoveryOptions())
        assert len(prober.probed) == 4 and again.scan_timestamp == first.scan_timestamp
        prober.up = {EO5}
        forced = await ext.discover(DiscoveryOptions(force_rescan=True))
        assert len(prober.probed) == 8
        assert [s.url for s in forced.discovered_streams] == [EO5]
        await trio.sleep(31)
        offline = await ext.discover(DiscoveryOptions(include_offline=True))
        assert len(prober.probed) == 12  # older than 30 s: scanned again
        assert [(s.url, s.status) for s in offline.discovered_streams] == [
            (EO5, "DISCOVERED"),
            (EO6, "ERROR"),
        ]
        assert offline.total_found == 1

    async def test_group_disabled_by_option(self, tmp_path: Path) -> None:
        """skydio_enabled false and generic not enabled: nothing to probe, nothing found."""
        prober = FakeProber({EO5})
        ext = make_external(tmp_path, discovery_config(skydio=SKY), prober)
        result = await ext.discover(DiscoveryOptions(skydio_enabled=False, generic_enabled=True))
        assert prober.probed == [] and result.discovered_streams == []

    async def test_periodic_scan_follows_interval(self, tmp_path: Path, autojump_clock) -> None:
        """scan_interval 0 never scans by itself; set_discovery_interval starts and stops it."""
        prober = FakeProber({EO5})
        ext = make_external(tmp_path, discovery_config(skydio=SKY), prober)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ext._scan_periodically)
            await trio.sleep(1000)
            assert ext.scans == 0
            ext.set_interval(60)
            await trio.sleep(59)
            assert ext.scans == 0
            await trio.sleep(2)
            assert ext.scans == 1
            await trio.sleep(60)
            assert ext.scans == 2
            ext.set_interval(0)
            await trio.sleep(1000)
            assert ext.scans == 2
            nursery.cancel_scope.cancel()
        assert Catalog(tmp_path / "state.db").setting("discovery_interval") == b"0"

    async def test_scan_bounded_by_timeout(self, tmp_path: Path, autojump_clock) -> None:
        """Probes still running at scan_timeout are reported as timeouts; the scan ends then."""

        class Hanging(FakeProber):
            async def __call__(self, url: str, timeout_s: float) -> ProbeResult:
                self.probed.append(url)
                await trio.sleep_forever()
                raise AssertionError

        ext = make_external(tmp_path, discovery_config(skydio=SKY, scan_timeout=2), Hanging(set()))
        began = trio.current_time()
        result = await ext.discover(DiscoveryOptions())
        assert trio.current_time() - began == pytest.approx(2)
        assert result.total_found == 0 and len(result.errors) == 4
        assert all("no reply within 2 s" in e for e in result.errors)


def test_unreadable_settings_fall_back(tmp_path: Path) -> None:
    """A damaged stored setting does not stop the service: config values are used."""
    catalog = Catalog(tmp_path / "state.db")
    catalog.set_setting("external_streams", b"[{not json")
    catalog.set_setting("discovery_interval", b'"sixty"')
    catalog.close()
    ext = make_external(tmp_path, discovery_config(scan_interval=30), FakeProber(set()))
    assert ext.scan_interval == 30 and ext.added() == []


def test_redact() -> None:
    """Passwords never reach the log; URLs without one are unchanged."""
    assert redact("rtsp://admin:s3cret@10.0.0.5:554/live?x=1") == (
        "rtsp://admin:***@10.0.0.5:554/live?x=1"
    )
    assert redact("rtsp://10.0.0.5/live") == "rtsp://10.0.0.5/live"
    assert redact("rtsp://user@10.0.0.5/live") == "rtsp://user@10.0.0.5/live"


def test_candidate_is_frozen() -> None:
    """Candidates are values."""
    cand = Candidate("rtsp://h:1/p", "generic_rtsp", "h_1_p")
    with pytest.raises(AttributeError):
        cand.url = "x"  # type: ignore[misc]
