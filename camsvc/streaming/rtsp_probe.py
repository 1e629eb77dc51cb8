"""The RTSP prober of external streams: TCP connect + one `DESCRIBE` (API.md §8.9).

Owns: the DESCRIBE request (again with Basic or Digest credentials from the URL after a
401), parsing the reply (a pure core: bytes in, `RtspReply` out),
summarising the SDP (codec, and the H.264 resolution from `sprop-parameter-sets`), and
`probe`, which does the I/O under a deadline and never raises for a bad peer. Must not
touch: MediaMTX, the registry of external streams.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import ssl
import time
from typing import Final, Literal
from urllib.parse import unquote, urlsplit

import msgspec
import trio

__all__ = [
    "MAX_REPLY_BYTES",
    "ProbeResult",
    "RtspProtocolError",
    "RtspReply",
    "authorization",
    "describe_request",
    "h264_resolution",
    "parse_reply",
    "probe",
    "request_uri",
    "sdp_capabilities",
]

# A DESCRIBE reply (headers and SDP) larger than this is not an RTSP camera's.
MAX_REPLY_BYTES: Final = 64 * 1024
USER_AGENT: Final = "camsvc-probe"
DEFAULT_PORTS: Final = {"rtsp": 554, "rtsps": 322}

ProbeStatus = Literal["ok", "unauthorized", "not_found", "error", "timeout", "refused"]


class RtspProtocolError(ValueError):
    """The peer's bytes are not an RTSP reply."""


class RtspReply(msgspec.Struct, frozen=True):
    """One parsed RTSP reply."""

    status: int
    reason: str
    headers: dict[str, str]
    body: bytes


class ProbeResult(msgspec.Struct, frozen=True):
    """What one DESCRIBE found: `ok` (200) and the SDP summary, or why not."""

    url: str
    status: ProbeStatus
    rtsp_status: int | None = None
    capabilities: dict[str, str] = msgspec.field(default_factory=dict)
    error: str = ""
    elapsed_s: float = 0.0

    @property
    def found(self) -> bool:
        """Whether the stream answered 200 (API.md: DISCOVERED)."""
        return self.status == "ok"


def request_uri(url: str) -> str:
    """`url` without its user info (what goes on the request line)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    target = f"{parts.scheme}://{netloc}{parts.path or '/'}"
    return f"{target}?{parts.query}" if parts.query else target


def describe_request(url: str, cseq: int = 1, authorization: str | None = None) -> bytes:
    """An RTSP/1.0 DESCRIBE for `url`; credentials only as the `authorization` given."""
    lines = [
        f"DESCRIBE {request_uri(url)} RTSP/1.0",
        f"CSeq: {cseq}",
        "Accept: application/sdp",
        f"User-Agent: {USER_AGENT}",
    ]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


_AUTH_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')


def authorization(
    challenge: str, user: str, password: str, method: str, uri: str, *, cnonce: str = ""
) -> str | None:
    """The Authorization header answering a Basic or Digest (MD5) `WWW-Authenticate`
    challenge (RFC 2617), or None for a scheme the prober does not speak."""
    scheme, _, rest = challenge.strip().partition(" ")
    if scheme.lower() == "basic":
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    if scheme.lower() != "digest":
        return None
    params = {
        m.group(1).lower(): m.group(2) or m.group(3) or "" for m in _AUTH_PARAM.finditer(rest)
    }
    if params.get("algorithm", "MD5").upper() != "MD5" or "nonce" not in params:
        return None

    def md5(text: str) -> str:
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    realm, nonce = params.get("realm", ""), params["nonce"]
    ha1 = md5(f"{user}:{realm}:{password}")
    ha2 = md5(f"{method}:{uri}")
    fields = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
    if "auth" in [q.strip() for q in params.get("qop", "").split(",")]:
        cnonce = cnonce or secrets.token_hex(8)
        response = md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
        fields += ["qop=auth", "nc=00000001", f'cnonce="{cnonce}"']
    else:
        response = md5(f"{ha1}:{nonce}:{ha2}")
    fields.append(f'response="{response}"')
    if "opaque" in params:
        fields.append(f'opaque="{params["opaque"]}"')
    return "Digest " + ", ".join(fields)


_STATUS_LINE = re.compile(r"^RTSP/1\.\d (\d{3})(?: (.*))?$")


def parse_reply(data: bytes, cseq: int | None = None) -> RtspReply | None:
    """The reply in `data`, None if more bytes are needed; RtspProtocolError if garbage."""
    if not data.startswith(b"RTSP/1."[: len(data)]):
        raise RtspProtocolError("not an RTSP reply")
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if len(data) > MAX_REPLY_BYTES:
            raise RtspProtocolError("reply headers too long")
        return None
    head = data[:end].decode("utf-8", "replace").split("\r\n")
    m = _STATUS_LINE.match(head[0])
    if m is None:
        raise RtspProtocolError(f"bad status line {head[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in head[1:]:
        key, sep, value = line.partition(":")
        if not sep:
            raise RtspProtocolError(f"bad header line {line[:80]!r}")
        headers[key.strip().lower()] = value.strip()
    try:
        length = int(headers.get("content-length", "0") or 0)
    except ValueError as exc:
        raise RtspProtocolError("bad Content-Length") from exc
    if length < 0 or end + 4 + length > MAX_REPLY_BYTES:
        raise RtspProtocolError("reply too large")
    if cseq is not None and headers.get("cseq", str(cseq)) != str(cseq):
        raise RtspProtocolError(f"CSeq {headers.get('cseq')!r} does not match {cseq}")
    if len(data) < end + 4 + length:
        return None
    body = data[end + 4 : end + 4 + length]
    return RtspReply(int(m.group(1)), m.group(2) or "", headers, body)


# --- SDP --------------------------------------------------------------------------------


class _Bits:
    """An MSB-first bit reader over an RBSP (emulation prevention bytes removed)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise ValueError("SPS truncated")
            value = (value << 1) | ((self.data[byte] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad Exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k % 2 else -(k // 2)


_HIGH_PROFILES: Final = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})


def h264_resolution(sps_nal: bytes) -> tuple[int, int]:
    """(width, height) coded in an H.264 SPS NAL unit; ValueError if it cannot be read."""
    rbsp = re.sub(b"\x00\x00\x03", b"\x00\x00", sps_nal[1:])
    if not sps_nal or sps_nal[0] & 0x1F != 7:
        raise ValueError("not an SPS")
    b = _Bits(rbsp)
    profile = b.u(8)
    b.u(16)  # constraint flags, level
    b.ue()  # seq_parameter_set_id
    chroma = 1
    if profile in _HIGH_PROFILES:
        chroma = b.ue()
        if chroma == 3:
            b.u(1)  # separate_colour_plane_flag
        b.ue()  # bit_depth_luma
        b.ue()  # bit_depth_chroma
        b.u(1)  # qpprime_y_zero_transform_bypass
        if b.u(1):  # seq_scaling_matrix_present
            for i in range(8 if chroma != 3 else 12):
                if b.u(1):
                    last, nxt = 8, 8
                    for _ in range(16 if i < 6 else 64):
                        if nxt:
                            nxt = (last + b.se()) % 256
                        last = nxt or last
    b.ue()  # log2_max_frame_num
    poc_type = b.ue()
    if poc_type == 0:
        b.ue()
    elif poc_type == 1:
        b.u(1)
        b.se()
        b.se()
        for _ in range(b.ue()):
            b.se()
    b.ue()  # max_num_ref_frames
    b.u(1)  # gaps_in_frame_num_allowed
    width_mbs = b.ue() + 1
    height_units = b.ue() + 1
    frame_mbs_only = b.u(1)
    if not frame_mbs_only:
        b.u(1)  # mb_adaptive_frame_field
    b.u(1)  # direct_8x8_inference
    width = width_mbs * 16
    height = height_units * 16 * (2 - frame_mbs_only)
    if b.u(1):  # frame_cropping
        left, right, top, bottom = b.ue(), b.ue(), b.ue(), b.ue()
        crop_x = 1 if chroma in (0, 3) else 2
        crop_y = (1 if chroma in (0, 2, 3) else 2) * (2 - frame_mbs_only)
        width -= (left + right) * crop_x
        height -= (top + bottom) * crop_y
    if width <= 0 or height <= 0:
        raise ValueError("bad dimensions")
    return width, height


def sdp_capabilities(sdp: str) -> dict[str, str]:
    """The first video track's codec (`H264`, `H265`…) and, when cheap, its resolution."""
    caps: dict[str, str] = {}
    in_video = False
    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            if in_video:
                break
            in_video = line.startswith("m=video")
        elif not in_video:
            continue
        elif line.startswith("a=rtpmap:") and "codec" not in caps:
            encoding = line.split(None, 1)[1] if " " in line else ""
            caps["codec"] = encoding.split("/", 1)[0].upper()
        elif line.startswith("a=fmtp:") and "sprop-parameter-sets=" in line:
            sets = line.split("sprop-parameter-sets=", 1)[1].split(";", 1)[0]
            try:
                w, h = h264_resolution(base64.b64decode(sets.split(",", 1)[0]))
            except (ValueError, binascii.Error):
                continue
            caps["resolution"] = f"{w}x{h}"
        elif line.startswith(("a=framesize:", "a=x-dimensions:")) and "resolution" not in caps:
            m = re.search(r"(\d+)[-,x](\d+)\s*$", line)
            if m:
                caps["resolution"] = f"{m.group(1)}x{m.group(2)}"
    return caps


# --- I/O --------------------------------------------------------------------------------


async def _connect(url: str) -> trio.abc.Stream:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or DEFAULT_PORTS.get(parts.scheme, 554)
    stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
    if parts.scheme == "rtsps":
        # Cameras serve self-signed certificates; the probe only asks whether a stream is there.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        stream = trio.SSLStream(stream, context, server_hostname=host)
    return stream


async def _describe(url: str, cseq: int, auth: str | None) -> RtspReply:
    stream = await _connect(url)
    try:
        await stream.send_all(describe_request(url, cseq, auth))
        data = b""
        while True:
            reply = parse_reply(data, cseq)
            if reply is not None:
                return reply
            chunk = await stream.receive_some(MAX_REPLY_BYTES)
            if not chunk:
                raise RtspProtocolError("connection closed before a complete reply")
            data += chunk
    finally:
        await trio.aclose_forcefully(stream)


async def _exchange(url: str) -> RtspReply:
    """DESCRIBE; on a 401, once more with the URL's credentials (on a new connection, as
    cameras often close after a 401)."""
    reply = await _describe(url, 1, None)
    parts = urlsplit(url)
    if reply.status != 401 or parts.username is None:
        return reply
    header = authorization(
        reply.headers.get("www-authenticate", ""),
        unquote(parts.username),
        unquote(parts.password or ""),
        "DESCRIBE",
        request_uri(url),
    )
    return reply if header is None else await _describe(url, 2, header)


def _refused(exc: BaseException) -> bool:
    """Whether a connect failed with ECONNREFUSED (trio groups the attempts' errors)."""
    if isinstance(exc, ConnectionRefusedError):
        return True
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup):
        return all(isinstance(e, ConnectionRefusedError) for e in cause.exceptions)
    return False


async def probe(url: str, timeout_s: float) -> ProbeResult:
    """DESCRIBE `url` within `timeout_s`; every failure is a result, never an exception."""
    began = time.monotonic()

    def result(status: ProbeStatus, **kw: object) -> ProbeResult:
        return ProbeResult(url, status, elapsed_s=round(time.monotonic() - began, 3), **kw)  # type: ignore[arg-type]

    with trio.move_on_after(timeout_s):
        try:
            reply = await _exchange(url)
        except RtspProtocolError as exc:
            return result("error", error=str(exc))
        except (OSError, trio.BrokenResourceError, ssl.SSLError) as exc:
            if _refused(exc):
                return result("refused", error="connection refused")
            return result("error", error=f"{type(exc).__name__}: {exc}")
        if reply.status == 200:
            sdp = reply.body.decode("utf-8", "replace")
            return result("ok", rtsp_status=200, capabilities=sdp_capabilities(sdp))
        status: ProbeStatus = {401: "unauthorized", 404: "not_found"}.get(reply.status, "error")
        return result(
            status, rtsp_status=reply.status, error=f"RTSP {reply.status} {reply.reason}".strip()
        )
    return result("timeout", error=f"no reply within {timeout_s:g} s")
