"""The stand-in's RTSP server: publishers (ANNOUNCE/RECORD) and readers (DESCRIBE/PLAY).

RTP and RTCP travel interleaved on the RTSP connection (RTP/AVP/TCP); a UDP SETUP gets
461 so clients such as ffmpeg fall back to TCP by themselves. Packets are relayed as they
are: no depacketizing, no codec. A new reader starts at the next H.264/H.265 key frame.
Owns: the RTSP wire format and one connection's sessions. Must not touch: path state
(the `Paths` it is handed decides), processes, the API.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
import uuid
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import structlog
import trio

if TYPE_CHECKING:
    from camsvc.streaming.standin._path import PathState
    from camsvc.streaming.standin._server import StandIn

__all__ = [
    "RECORDER_USER_AGENT",
    "Reader",
    "RecorderTap",
    "RtspConnection",
    "Track",
    "parse_sdp",
]

log = structlog.get_logger("camsvc.standin.rtsp")

MAX_HEADER_BYTES: Final = 64 * 1024
MAX_BODY_BYTES: Final = 1024 * 1024
# Packets queued per reader before the oldest new ones are dropped.
READER_QUEUE: Final = 1024
# Packets a recorder tap holds for its ffmpeg (seconds of a camera's video; ffmpeg takes
# a fraction of one to connect).
TAP_PACKETS: Final = 4096
# The stand-in's own recorder reads with this agent (then `/<its tap's id>`); it is not
# listed as a reader.
RECORDER_USER_AGENT: Final = "mediamtx-standin-recorder"
SERVER: Final = "mediamtx-standin"

_CODECS = {
    "H264": "H264",
    "H265": "H265",
    "VP8": "VP8",
    "VP9": "VP9",
    "AV1": "AV1",
    "JPEG": "M-JPEG",
    "MP4V-ES": "MPEG-4 Video",
    "MPV": "MPEG-1/2 Video",
    "MPEG4-GENERIC": "MPEG-4 Audio",
    "MP4A-LATM": "MPEG-4 Audio LATM",
    "MPA": "MPEG-1/2 Audio",
    "OPUS": "Opus",
    "PCMU": "G711",
    "PCMA": "G711",
    "G722": "G722",
    "L16": "LPCM",
    "L24": "LPCM",
    "AC3": "AC3",
}
_STATIC_PT = {
    0: "G711",
    8: "G711",
    9: "G722",
    14: "MPEG-1/2 Audio",
    26: "M-JPEG",
    32: "MPEG-1/2 Video",
}


class Track:
    """One media section of a publisher's SDP."""

    def __init__(self, index: int, control: str, codec: str) -> None:
        self.index = index
        self.control = control
        self.codec = codec


def parse_sdp(sdp: str) -> list[Track]:
    """The tracks (control attribute and MediaMTX codec name) of an SDP description."""
    tracks: list[Track] = []
    control = ""
    codec = ""
    payload = -1

    def flush() -> None:
        if payload >= 0:
            name = codec or _STATIC_PT.get(payload, "Generic")
            tracks.append(Track(len(tracks), control or f"trackID={len(tracks)}", name))

    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            flush()
            fields = line[2:].split()
            payload = int(fields[3]) if len(fields) > 3 and fields[3].isdigit() else 0
            control = codec = ""
        elif line.startswith("a=control:") and payload >= 0:
            control = line[len("a=control:") :]
        elif line.startswith("a=rtpmap:") and payload >= 0:
            encoding = line.split(None, 1)[1].split("/", 1)[0].upper() if " " in line else ""
            codec = _CODECS.get(encoding, "Generic")
    flush()
    return tracks


def is_keyframe_start(codec: str, rtp: bytes) -> bool:
    """Whether an RTP packet begins an H.264/H.265 key frame (or its parameter sets)."""
    if len(rtp) < 13:
        return False
    header = 12 + 4 * (rtp[0] & 0x0F)
    if rtp[0] & 0x10 and len(rtp) >= header + 4:  # extension
        header += 4 + 4 * int.from_bytes(rtp[header + 2 : header + 4], "big")
    payload = rtp[header:]
    if not payload:
        return False
    if codec == "H264":
        nal = payload[0] & 0x1F
        if nal in (5, 7):
            return True
        if nal == 24 and len(payload) > 3:  # STAP-A
            return payload[3] & 0x1F in (5, 7)
        if nal == 28 and len(payload) > 1:  # FU-A
            return bool(payload[1] & 0x80) and payload[1] & 0x1F == 5
        return False
    if codec == "H265" and len(payload) > 2:
        nal = (payload[0] >> 1) & 0x3F
        if 16 <= nal <= 21 or nal == 32:
            return True
        if nal == 49:  # FU
            return bool(payload[2] & 0x80) and 16 <= payload[2] & 0x3F <= 21
        return False
    return True


def waits_for_key_frame(tracks: list[Track]) -> bool:
    """Whether a new reader of `tracks` starts at a key frame (H.264/H.265 present)."""
    return any(t.codec in ("H264", "H265") for t in tracks)


def starts_reading(tracks: list[Track], track: int, rtcp: bool, packet: bytes) -> bool:
    """Whether a reader waiting for a key frame starts with this packet."""
    codec = tracks[track].codec
    return not rtcp and codec in ("H264", "H265") and is_keyframe_start(codec, packet)


class RecorderTap:
    """What the recorder receives from the first key frame after it was armed: packets held
    until its ffmpeg's RTSP session plays and takes them (`Reader.take`).

    Armed when `record` turns on, so a segment starts at the first key frame after that
    moment however long ffmpeg takes to start and connect, as with MediaMTX's in-process
    recorder (and a key frame the publisher forces at that moment is not missed). Closed
    when the segment ends: it takes nothing more, and the session that takes it ends once
    it has sent what was held, so ffmpeg writes every sample received until then.
    """

    def __init__(self, tracks: list[Track]) -> None:
        self.id = uuid.uuid4().hex
        self.tracks = tracks
        self.started = not waits_for_key_frame(tracks)
        self.packets: list[tuple[int, bool, bytes]] = []
        self.dropped = 0
        self.first_sample_at: dt.datetime | None = None
        self.first_sample_mono: float | None = None  # time.monotonic() of the same moment
        self.first_sample = trio.Event()
        self.closed = False
        self.reader: Reader | None = None  # the recorder's session, once it took the tap

    @property
    def user_agent(self) -> str:
        """The user agent the recorder's ffmpeg connects with."""
        return f"{RECORDER_USER_AGENT}/{self.id}"

    def close(self) -> None:
        """The segment ends: hold nothing more; the session ends after what it has."""
        self.closed = True
        if self.reader is not None:
            self.reader.finish()

    def offer(self, track: int, rtcp: bool, packet: bytes) -> None:
        """Hold a publisher packet (from the first key frame on; bounded)."""
        if self.closed or self.reader is not None:
            return
        if not self.started:
            if not starts_reading(self.tracks, track, rtcp, packet):
                return
            self.started = True
        self.note_first_sample()
        if len(self.packets) < TAP_PACKETS:
            self.packets.append((track, rtcp, packet))
        else:
            self.dropped += 1

    def note_first_sample(self) -> None:
        """The segment's first sample arrived now (later calls change nothing)."""
        if self.first_sample_at is None:
            self.first_sample_at = dt.datetime.now().astimezone()
            self.first_sample_mono = time.monotonic()
            self.first_sample.set()


class Reader:
    """A reading session: its channel per track and a bounded queue of packets to send."""

    def __init__(self, conn: RtspConnection, path: PathState, channels: dict[int, int]) -> None:
        self.id = conn.session_id
        self.conn = conn
        self.path = path
        self.channels = channels
        self.hidden = RECORDER_USER_AGENT in conn.user_agent
        # The recorder tap this session plays (named by its user agent's last part).
        self.tap_id = conn.user_agent.rsplit("/", 1)[-1] if self.hidden else ""
        self.tap: RecorderTap | None = None
        self.finished = False
        self.started = not waits_for_key_frame(path.tracks)
        # The recorder's session also takes what its tap held.
        queue = READER_QUEUE + (TAP_PACKETS if self.hidden else 0)
        self.send, self.receive = trio.open_memory_channel[bytes](queue)
        self.dropped = 0
        self.bytes_sent = 0

    def take(self, tap: RecorderTap) -> None:
        """Start with what `tap` held (the recorder's session plays); a closed tap's
        session ends once that is sent."""
        self.tap = tap
        tap.reader = self
        self.started = self.started or tap.started
        for track, rtcp, packet in tap.packets:
            self.offer(track, rtcp, packet)
        tap.packets.clear()
        if tap.closed:
            self.finish()

    def finish(self) -> None:
        """Take nothing more; the session ends once the queue is sent."""
        if not self.finished:
            self.finished = True
            self.send.close()

    def offer(self, track: int, rtcp: bool, packet: bytes) -> None:
        """Queue a publisher packet for this reader (dropped when the queue is full)."""
        if track not in self.channels or self.finished:
            return
        if not self.started:
            if not starts_reading(self.path.tracks, track, rtcp, packet):
                return
            self.started = True
        if self.tap is not None:
            self.tap.note_first_sample()  # no key frame to wait for, or none was held
        channel = self.channels[track] + (1 if rtcp else 0)
        frame = b"$" + bytes([channel]) + len(packet).to_bytes(2, "big") + packet
        try:
            self.send.send_nowait(frame)
        except trio.WouldBlock:
            self.dropped += 1


class RtspRequest:
    """One parsed RTSP request."""

    def __init__(self, method: str, url: str, headers: dict[str, str], body: bytes) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body


class RtspError(Exception):
    """A request the connection answers with `status` and closes nothing."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def split_url(url: str) -> tuple[str, str]:
    """The path name and query of an RTSP URL (`rtsp://h:p/camera0/?x=1` → `camera0`, `x=1`)."""
    parts = urlsplit(url)
    return parts.path.strip("/"), parts.query


class RtspConnection:
    """One client connection: reads requests and interleaved frames, writes replies."""

    source_type: Final = "rtspSession"  # as a path's publisher

    def __init__(self, stream: trio.SocketStream, server: StandIn) -> None:
        self.stream = stream
        self.server = server
        self.id = str(uuid.uuid4())
        self.session_id = str(uuid.uuid4())
        self.session_token = secrets.token_hex(8)
        self.user_agent = ""
        self.path: PathState | None = None
        self.path_name = ""
        self.query = ""
        self.publishing = False
        self.setups: dict[int, int] = {}  # track index -> first interleaved channel
        self.channel_track: dict[int, int] = {}  # publisher's channel -> track index
        self.reader: Reader | None = None
        self.bytes_received = 0
        self._send_lock = trio.Lock()
        self._buf = bytearray()
        self.closed = trio.Event()

    async def _send(self, data: bytes) -> None:
        async with self._send_lock:
            await self.stream.send_all(data)

    async def serve(self) -> None:
        """Serve the connection until the peer closes or the session is kicked."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await self._read_loop()
                nursery.cancel_scope.cancel()
        except* (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            # The peer went away (also while a task of the nursery was replying): done.
            pass
        finally:
            self.closed.set()
            with trio.CancelScope(shield=True):
                self.server.connection_closed(self)
                await self.stream.aclose()

    def kick(self) -> None:
        """Close the connection (publisher overridden, path removed, on-demand stopped)."""
        self._nursery.cancel_scope.cancel()

    async def _fill(self) -> bool:
        data = await self.stream.receive_some(65536)
        if not data:
            return False
        self._buf += data
        return True

    async def _read_loop(self) -> None:
        while True:
            if not self._buf and not await self._fill():
                return
            if self._buf[0] == 0x24:  # '$': an interleaved frame
                while len(self._buf) < 4:
                    if not await self._fill():
                        return
                size = int.from_bytes(self._buf[2:4], "big")
                while len(self._buf) < 4 + size:
                    if not await self._fill():
                        return
                channel = self._buf[1]
                packet = bytes(self._buf[4 : 4 + size])
                del self._buf[: 4 + size]
                self._on_frame(channel, packet)
                continue
            end = self._buf.find(b"\r\n\r\n")
            while end < 0:
                if len(self._buf) > MAX_HEADER_BYTES or not await self._fill():
                    return
                end = self._buf.find(b"\r\n\r\n")
            head = bytes(self._buf[:end]).decode("utf-8", "replace")
            del self._buf[: end + 4]
            lines = head.split("\r\n")
            headers: dict[str, str] = {}
            for line in lines[1:]:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            if length > MAX_BODY_BYTES:
                return
            while len(self._buf) < length:
                if not await self._fill():
                    return
            body = bytes(self._buf[:length])
            del self._buf[:length]
            request_line = lines[0].split()
            if len(request_line) != 3:
                return
            method, url, _ = request_line
            await self._handle(RtspRequest(method, url, headers, body))

    def _on_frame(self, channel: int, packet: bytes) -> None:
        if not self.publishing or self.path is None:
            return  # a reader's RTCP receiver reports
        track = self.channel_track.get(channel - (channel % 2))
        if track is None:
            return
        self.bytes_received += len(packet)
        self.path.on_packet(track, bool(channel % 2), packet)

    async def _reply(
        self,
        req: RtspRequest,
        status: int,
        reason: str,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> None:
        lines = [f"RTSP/1.0 {status} {reason}", f"CSeq: {req.headers.get('cseq', '0')}"]
        lines.append(f"Server: {SERVER}")
        for key, value in (headers or {}).items():
            lines.append(f"{key}: {value}")
        if body:
            lines.append(f"Content-Length: {len(body)}")
        await self._send(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def _session_header(self) -> dict[str, str]:
        return {"Session": f"{self.session_token};timeout=60"}

    async def _handle(self, req: RtspRequest) -> None:
        self.user_agent = req.headers.get("user-agent", self.user_agent)
        try:
            handler = getattr(self, "_on_" + req.method.lower().replace("_", ""), None)
            if handler is None:
                raise RtspError(501, "Not Implemented")
            await handler(req)
        except RtspError as exc:
            await self._reply(req, exc.status, exc.reason)

    async def _on_options(self, req: RtspRequest) -> None:
        public = "DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD, PAUSE, GET_PARAMETER, TEARDOWN"
        await self._reply(req, 200, "OK", {"Public": public})

    async def _on_getparameter(self, req: RtspRequest) -> None:
        await self._reply(req, 200, "OK", self._session_header())

    async def _on_setparameter(self, req: RtspRequest) -> None:
        await self._reply(req, 200, "OK", self._session_header())

    async def _on_pause(self, req: RtspRequest) -> None:
        await self._reply(req, 200, "OK", self._session_header())

    async def _on_describe(self, req: RtspRequest) -> None:
        name, query = split_url(req.url)
        path = await self.server.describe(
            name, query, hidden=RECORDER_USER_AGENT in self.user_agent
        )
        self.path, self.path_name, self.query = path, name, query
        base = req.url.split("?", 1)[0].rstrip("/") + "/"
        sdp = path.sdp.encode()
        headers = {"Content-Base": base, "Content-Type": "application/sdp"}
        await self._reply(req, 200, "OK", headers, sdp)

    async def _on_announce(self, req: RtspRequest) -> None:
        name, query = split_url(req.url)
        if "application/sdp" not in req.headers.get("content-type", ""):
            raise RtspError(400, "Bad Request")
        sdp = req.body.decode("utf-8", "replace")
        tracks = parse_sdp(sdp)
        if not tracks:
            raise RtspError(400, "Bad Request")
        self.path = self.server.announce(self, name, query, sdp, tracks)
        self.path_name, self.query = name, query
        await self._reply(req, 200, "OK", self._session_header())

    def _track_of(self, url: str) -> int:
        tracks = self.path.tracks if self.path is not None else []
        tail = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        for track in tracks:
            if track.control == tail or url.rstrip("/").endswith(track.control):
                return track.index
        if len(tracks) == 1:
            return 0
        raise RtspError(404, "Not Found")

    async def _on_setup(self, req: RtspRequest) -> None:
        if self.path is None:
            # SETUP without DESCRIBE: describe the path first, as a reader.
            base = req.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[0]
            name, query = split_url(base)
            self.path = await self.server.describe(name, query, hidden=False)
            self.path_name, self.query = name, query
        transport = req.headers.get("transport", "")
        if "RTP/AVP/TCP" not in transport.upper():
            raise RtspError(461, "Unsupported Transport")
        track = self._track_of(req.url)
        channel = 2 * len(self.setups)
        for part in transport.split(";"):
            if part.strip().startswith("interleaved="):
                channel = int(part.strip().split("=", 1)[1].split("-", 1)[0])
        self.setups[track] = channel
        mode = ";mode=record" if self.publishing_intent else ""
        reply = f"RTP/AVP/TCP;unicast;interleaved={channel}-{channel + 1}{mode}"
        await self._reply(req, 200, "OK", {"Transport": reply, **self._session_header()})

    @property
    def publishing_intent(self) -> bool:
        """Whether this connection announced (it publishes rather than reads)."""
        return self.path is not None and self.path.announcer is self

    async def _on_record(self, req: RtspRequest) -> None:
        if not self.publishing_intent or not self.setups:
            raise RtspError(455, "Method Not Valid in This State")
        self.channel_track = {ch: track for track, ch in self.setups.items()}
        assert self.path is not None
        self.publishing = True
        await self._reply(req, 200, "OK", self._session_header())
        self.server.record(self)

    async def _on_play(self, req: RtspRequest) -> None:
        if self.path is None or not self.setups or self.publishing_intent:
            raise RtspError(455, "Method Not Valid in This State")
        if not self.path.ready:
            raise RtspError(404, "Not Found")
        headers = {"Range": "npt=0.000-", **self._session_header()}
        await self._reply(req, 200, "OK", headers)
        if self.reader is None:
            self.reader = Reader(self, self.path, dict(self.setups))
            self._nursery.start_soon(self._send_packets, self.reader)
            self.server.add_reader(self.reader)

    async def _send_packets(self, reader: Reader) -> None:
        async for frame in reader.receive:
            await self._send(frame)
            reader.bytes_sent += len(frame) - 4
            reader.path.bytes_sent += 0 if reader.hidden else len(frame) - 4
        if reader.finished:
            self.kick()  # the recorder's segment ended: its session ends after the queue

    async def _on_teardown(self, req: RtspRequest) -> None:
        await self._reply(req, 200, "OK", self._session_header())
        self.kick()
