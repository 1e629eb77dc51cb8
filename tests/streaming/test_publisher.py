"""The publisher's in-process H.264 encoder (PyAV) and the relay that publishes it."""

from __future__ import annotations

from fractions import Fraction

import av
import pytest

from camsvc.capture import Format
from camsvc.streaming import publisher
from camsvc.streaming.publisher import BadFrame, H264Encoder, relay_argv

FPS = 15.0
W, H = 320, 240


def _fmt(fourcc: str, bytesperline: int = 0) -> Format:
    return Format(W, H, fourcc, bytesperline, 0, FPS, 4, False)


def _yuyv(luma: int, bytesperline: int) -> bytes:
    """A YUYV frame of one grey level; row padding (if any) is zeros."""
    row = bytes([luma, 128]) * W
    return (row + bytes(bytesperline - len(row))) * H


def _nv12(luma: int) -> bytes:
    return bytes([luma]) * (W * H) + bytes([128]) * (W * H // 2)


def _mjpeg(luma: int) -> bytes:
    enc = av.CodecContext.create("mjpeg", "w")
    enc.width, enc.height, enc.pix_fmt = W, H, "yuvj420p"
    enc.time_base = Fraction(1, 25)
    frame = av.VideoFrame(W, H, "yuvj420p")
    for plane, value in zip(frame.planes, (luma, 128, 128), strict=True):
        plane.update(bytes([value]) * plane.buffer_size)
    frame.pts = 0
    return b"".join(bytes(p) for p in [*enc.encode(frame), *enc.encode(None)])


FRAMES = {
    "MJPG": (_fmt("MJPG"), _mjpeg),
    "YUYV": (_fmt("YUYV", W * 2), lambda luma: _yuyv(luma, W * 2)),
    "NV12": (_fmt("NV12", W), _nv12),
}


def _decode(stream: bytes) -> list[av.VideoFrame]:
    dec = av.CodecContext.create("h264", "r")
    frames = [f for p in dec.parse(stream) for f in dec.decode(p)]
    return frames + list(dec.decode(None))


@pytest.mark.parametrize("fourcc", sorted(FRAMES))
def test_key_frame_on_demand(fourcc: str) -> None:
    """The first frame and a forced one are IDRs; the frames between are not."""
    fmt, make = FRAMES[fourcc]
    encoder = H264Encoder(fmt)
    keys = []
    stream = b""
    for i in range(12):
        out, key = encoder.encode(make(40 + 10 * i), i * 67, keyframe=i == 7)
        assert out, f"frame {i} gave no H.264 (zerolatency must not hold frames back)"
        keys.append(key)
        stream += out
    assert keys == [i in (0, 7) for i in range(12)]
    decoded = _decode(stream)
    assert len(decoded) == 12
    assert {(f.width, f.height) for f in decoded} == {(W, H)}


def test_gop_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no key frame asked for, one comes every GOP_S anyway (readers joining)."""
    monkeypatch.setattr(publisher, "GOP_S", 1.0)
    fmt, make = FRAMES["NV12"]
    encoder = H264Encoder(fmt)
    keys = [encoder.encode(make(100), i * 67, keyframe=False)[1] for i in range(32)]
    assert [i for i, key in enumerate(keys) if key] == [0, 15, 30]


def test_padded_rows_are_dropped() -> None:
    """YUYV rows with padding (bytesperline > width * 2) encode the picture, not the padding."""
    fmt = _fmt("YUYV", W * 2 + 64)
    encoder = H264Encoder(fmt)
    out, _ = encoder.encode(_yuyv(200, W * 2 + 64), 0, keyframe=False)
    [frame] = _decode(out)
    plane = bytes(frame.planes[0])
    stride = frame.planes[0].line_size
    rows = [plane[y * stride : y * stride + W] for y in range(H)]
    mean = sum(sum(r) for r in rows) / (W * H)
    assert abs(mean - 200) < 4, mean


def test_torn_mjpeg_frame_is_a_bad_frame() -> None:
    """A frame that does not decode raises BadFrame (skipped), and the next one encodes."""
    encoder = H264Encoder(_fmt("MJPG"))
    with pytest.raises(BadFrame):
        encoder.encode(b"\xff\xd8 not a jpeg", 0, keyframe=False)
    out, key = encoder.encode(_mjpeg(90), 67, keyframe=False)
    assert out and key


def test_unsupported_format() -> None:
    with pytest.raises(ValueError, match="RGB3"):
        H264Encoder(_fmt("RGB3"))


def test_relay_argv() -> None:
    """The relay copies H.264 from stdin, stamps it on arrival and publishes over TCP."""
    argv = relay_argv("rtsp://127.0.0.1:8554/camera0", ffmpeg="/opt/ffmpeg")
    assert argv[0] == "/opt/ffmpeg"
    assert argv[argv.index("-i") - 1 : argv.index("-i") + 2] == ["h264", "-i", "pipe:0"]
    assert argv[argv.index("-c:v") + 1] == "copy"
    assert argv[argv.index("-f", argv.index("-c:v")) + 1] == "rtsp"
    assert argv[-1] == "rtsp://127.0.0.1:8554/camera0"
    assert argv[argv.index("-rtsp_transport") + 1] == "tcp"
