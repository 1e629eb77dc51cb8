"""A path's static RTSP source, pulled as MediaMTX pulls `source: rtsp://...` (`rtspSource`).

The stand-in connects as an RTSP client (DESCRIBE, SETUP with RTP/AVP/TCP interleaved,
PLAY; Basic credentials from the URL when the server asks) and feeds the packets to the
path as a publisher would; readers and the recorder see the same path either way. The SDP
handed to readers is rewritten with `trackID=N` controls, as MediaMTX generates its own.
Owns: one client session and its wire format. Must not touch: path state beyond
`set_publisher` / `on_packet` (the path decides when a source runs).
"""

from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING, Final
from urllib.parse import unquote, urlsplit, urlunsplit

import structlog
import trio

from camsvc.streaming.standin._rtsp import Track, parse_sdp

if TYPE_CHECKING:
    from camsvc.streaming.standin._path import PathState

__all__ = ["KEEPALIVE_S", "RtspSource", "SourceError", "rewrite_sdp"]

log = structlog.get_logger("camsvc.standin.source")

USER_AGENT: Final = "mediamtx-standin"
MAX_HEADER_BYTES: Final = 64 * 1024
MAX_BODY_BYTES: Final = 1024 * 1024
# Keep-alive (GET_PARAMETER) period of the client session (MediaMTX: 30 s).
KEEPALIVE_S: Final = 30.0


class SourceError(Exception):
    """The source refused, answered garbage, or went away."""


def rewrite_sdp(sdp: str) -> str:
    """`sdp` with session-level control `*` and each media's control `trackID=N`."""
    out: list[str] = []
    media = -1
    for raw in sdp.splitlines():
        line = raw.strip()
        if not line or line.startswith("a=control:"):
            continue
        if line.startswith("m="):
            if media < 0:
                out.append("a=control:*")
            media += 1
            out.append(line)
            out.append(f"a=control:trackID={media}")
            continue
        out.append(line)
    return "\r\n".join(out) + "\r\n"


def _absolute(base: str, control: str) -> str:
    if re.match(r"^[a-z]+://", control):
        return control
    return base.split("?", 1)[0].rstrip("/") + "/" + control


class RtspSource:
    """One pull session; `run` returns (or raises SourceError) when the source ends."""

    source_type: Final = "rtspSource"

    def __init__(self, path: PathState, url: str) -> None:
        self.path = path
        parts = urlsplit(url)
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password or "")
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        self.host = host
        self.port = parts.port or 554
        if parts.port:
            netloc += f":{parts.port}"
        self.scheme = parts.scheme
        self.url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        self.session_id = ""  # MediaMTX lists static sources without an id
        self.bytes_received = 0
        self.scope = trio.CancelScope()
        self._stream: trio.SocketStream | None = None
        self._buf = bytearray()
        self._cseq = 0
        self._session = ""
        self._auth = ""
        self._send_lock = trio.Lock()

    def kick(self) -> None:
        """End the session (path closed, source no longer wanted)."""
        self.scope.cancel()

    # --- wire ---

    async def _fill(self) -> None:
        assert self._stream is not None
        data = await self._stream.receive_some(65536)
        if not data:
            raise SourceError("connection closed by the source")
        self._buf += data

    async def _read_message(self) -> tuple[str, dict[str, str], bytes]:
        """The next RTSP message (interleaved frames before it are handed to the path)."""
        while True:
            while not self._buf:
                await self._fill()
            if self._buf[0] == 0x24:
                await self._read_frame()
                continue
            end = self._buf.find(b"\r\n\r\n")
            while end < 0:
                if len(self._buf) > MAX_HEADER_BYTES:
                    raise SourceError("header block too long")
                await self._fill()
                end = self._buf.find(b"\r\n\r\n")
            lines = bytes(self._buf[:end]).decode("utf-8", "replace").split("\r\n")
            del self._buf[: end + 4]
            headers: dict[str, str] = {}
            for line in lines[1:]:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
            try:
                length = int(headers.get("content-length", "0") or 0)
            except ValueError as exc:
                raise SourceError("bad Content-Length") from exc
            if not 0 <= length <= MAX_BODY_BYTES:
                raise SourceError("body too large")
            while len(self._buf) < length:
                await self._fill()
            body = bytes(self._buf[:length])
            del self._buf[:length]
            return lines[0], headers, body

    async def _read_frame(self) -> None:
        while len(self._buf) < 4:
            await self._fill()
        size = int.from_bytes(self._buf[2:4], "big")
        while len(self._buf) < 4 + size:
            await self._fill()
        channel = self._buf[1]
        packet = bytes(self._buf[4 : 4 + size])
        del self._buf[: 4 + size]
        if self.path.publisher is self and channel // 2 < len(self.path.tracks):
            self.bytes_received += len(packet)
            self.path.on_packet(channel // 2, bool(channel % 2), packet)

    async def _request(
        self, method: str, url: str, headers: dict[str, str] | None = None
    ) -> tuple[dict[str, str], bytes]:
        """Send a request and return the reply's headers and body (SourceError unless 200)."""
        for attempt in range(2):
            self._cseq += 1
            lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self._cseq}", f"User-Agent: {USER_AGENT}"]
            if self._session:
                lines.append(f"Session: {self._session}")
            if self._auth:
                lines.append(f"Authorization: {self._auth}")
            lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
            assert self._stream is not None
            async with self._send_lock:
                await self._stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
            while True:
                first, reply, body = await self._read_message()
                if first.startswith("RTSP/") and reply.get("cseq") == str(self._cseq):
                    break
            m = re.match(r"^RTSP/1\.\d (\d{3})", first)
            if m is None:
                raise SourceError(f"bad status line {first[:80]!r}")
            status = int(m.group(1))
            if status == 401 and attempt == 0 and self.user is not None and not self._auth:
                if "basic" not in reply.get("www-authenticate", "").lower():
                    raise SourceError("the source asks for an authentication other than Basic")
                token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
                self._auth = f"Basic {token}"
                continue
            if status != 200:
                raise SourceError(f"{method}: {first.strip()}")
            return reply, body
        raise SourceError(f"{method}: authentication failed")

    # --- session ---

    async def run(self) -> None:
        """Connect, DESCRIBE, SETUP every track, PLAY, then feed the path until the end."""
        if self.scheme != "rtsp":
            raise SourceError(f"the stand-in pulls rtsp:// sources only, not {self.scheme}://")
        with self.scope:
            try:
                self._stream = await trio.open_tcp_stream(self.host, self.port)
            except OSError as exc:
                raise SourceError(f"connect {self.host}:{self.port}: {exc}") from exc
            try:
                await self._session_loop()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise SourceError(f"connection lost: {exc}") from exc
            finally:
                with trio.CancelScope(shield=True):
                    await self._stream.aclose()

    async def _session_loop(self) -> None:
        reply, body = await self._request("DESCRIBE", self.url, {"Accept": "application/sdp"})
        base = reply.get("content-base") or reply.get("content-location") or self.url
        sdp = body.decode("utf-8", "replace")
        tracks = parse_sdp(sdp)
        if not tracks:
            raise SourceError("the source's SDP has no media")
        for track in tracks:
            transport = f"RTP/AVP/TCP;unicast;interleaved={2 * track.index}-{2 * track.index + 1}"
            reply, _ = await self._request(
                "SETUP", _absolute(base, track.control), {"Transport": transport}
            )
            if not self._session:
                self._session = reply.get("session", "").split(";", 1)[0].strip()
        await self._request("PLAY", base, {"Range": "npt=0.000-"})
        log.info("source_ready", path=self.path.name, url=self.url, tracks=len(tracks))
        self.path.sdp = rewrite_sdp(sdp)
        self.path.tracks = [Track(t.index, f"trackID={t.index}", t.codec) for t in tracks]
        self.path.set_publisher(self)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._keepalive)
            while True:
                await self._read_message()  # replies to keep-alives; frames go to the path

    async def _keepalive(self) -> None:
        while True:
            await trio.sleep(KEEPALIVE_S)
            self._cseq += 1
            lines = [
                f"GET_PARAMETER {self.url} RTSP/1.0",
                f"CSeq: {self._cseq}",
                f"User-Agent: {USER_AGENT}",
                f"Session: {self._session}",
            ]
            if self._auth:
                lines.append(f"Authorization: {self._auth}")
            assert self._stream is not None
            async with self._send_lock:
                await self._stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
