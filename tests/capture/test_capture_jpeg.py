"""JPEG output without a device: the MJPEG check and Huffman-table fix-up, raw encoders."""

from __future__ import annotations

import io
import subprocess

import pytest
from PIL import Image, ImageChops

from camsvc.capture import JpegJob, fourcc_code
from camsvc.capture._native import ffi, lib
from tests.capture.helpers import decode


def pillow_jpeg(size: tuple[int, int] = (64, 48), subsampling: int = 1) -> bytes:
    """A small JPEG with libjpeg's standard Huffman tables (Pillow does not optimize)."""
    img = Image.new("RGB", size)
    for x in range(size[0]):
        for y in range(size[1]):
            img.putpixel((x, y), ((x * 4) % 256, (y * 5) % 256, ((x + y) * 3) % 256))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80, subsampling=subsampling)
    return buf.getvalue()


def strip_dht(jpeg: bytes) -> bytes:
    """Remove every DHT segment before SOS, walking segment lengths."""
    out, pos = bytearray(jpeg[:2]), 2
    while jpeg[pos + 1] != 0xDA:
        length = int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
        if jpeg[pos + 1] != 0xC4:
            out += jpeg[pos : pos + 2 + length]
        pos += 2 + length
    return bytes(out + jpeg[pos:])


def encode(data: bytes, fourcc: str, width: int = 0, height: int = 0, bpl: int = 0, scale=1):
    """Call cap_jpeg_encode; returns (rc, jpeg bytes, width, height)."""
    enc = ffi.gc(lib.cap_jpeg_new(), lib.cap_jpeg_free)
    out, size = ffi.new("const uint8_t **"), ffi.new("size_t *")
    ow, oh = ffi.new("uint32_t *"), ffi.new("uint32_t *")
    rc = lib.cap_jpeg_encode(
        enc, data, len(data), fourcc_code(fourcc), width, height, bpl, 85, scale, out, size, ow, oh
    )
    if rc < 0:
        return rc, b"", 0, 0
    return rc, ffi.buffer(out[0], size[0])[:], ow[0], oh[0]


def check(data: bytes):
    """cap_mjpeg_check: (rc, info)."""
    info = ffi.new("struct cap_mjpeg_info *")
    return lib.cap_mjpeg_check(data, len(data), info), info


@pytest.mark.parametrize("subsampling", [0, 1, 2])
def test_dht_fix_restores_the_standard_tables(subsampling):
    """A frame stripped of its tables decodes to the very same pixels once fixed."""
    original = pillow_jpeg(subsampling=subsampling)
    bare = strip_dht(original)
    rc, info = check(bare)
    assert rc == 0 and not info.has_dht and (info.width, info.height) == (64, 48)
    rc, fixed, w, h = encode(bare + b"\0" * 32, "MJPG")  # with camera padding after EOI
    assert rc == 0 and (w, h) == (64, 48)
    assert check(fixed)[1].has_dht
    assert fixed.endswith(b"\xff\xd9")
    diff = ImageChops.difference(decode(fixed).convert("RGB"), decode(original).convert("RGB"))
    assert diff.getbbox() is None


def test_fixed_frame_decodes_with_ffmpeg(tmp_path):
    """ffmpeg accepts the fixed-up frame without a warning."""
    _rc, fixed, _w, _h = encode(strip_dht(pillow_jpeg()), "MJPG")
    path = tmp_path / "fixed.jpg"
    path.write_bytes(fixed)
    result = subprocess.run(
        ["ffmpeg", "-v", "error", "-xerror", "-i", str(path), "-f", "null", "-"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_frame_with_tables_passes_through():
    """A complete frame comes out byte for byte (padding after EOI dropped)."""
    original = pillow_jpeg()
    rc, out, _w, _h = encode(original + b"\0\0\0\0", "MJPG")
    assert rc == 0 and out == original


@pytest.mark.parametrize(
    "broken",
    [
        b"",
        b"\xff\xd8",
        b"\x00\xd8\xff\xd9",
        b"\xff\xd8\xff\xd9",  # no frame header, no scan
        b"\xff\xd8\xff\xc0\x00\x02\xff\xd9",  # frame header too short
    ],
)
def test_broken_frames_are_refused(broken):
    """Frames that are not whole JPEGs are refused with EBADMSG."""
    assert check(broken)[0] == -74
    assert encode(broken, "MJPG")[0] in (-74, -22)


def test_truncated_frame_is_refused():
    """A frame cut short (no EOI) is refused."""
    jpeg = pillow_jpeg()
    assert check(jpeg[: len(jpeg) // 2])[0] == -74


def test_yuyv_and_nv12_encode_from_planes():
    """Grey YUYV and NV12 frames encode to grey JPEGs of the same size."""
    w, h = 64, 32
    yuyv = bytes([100, 128, 100, 128]) * (w // 2 * h)
    rc, jpeg, ow, oh = encode(yuyv, "YUYV", w, h, w * 2)
    assert rc == 0 and (ow, oh) == (w, h)
    img = decode(jpeg).convert("L")
    assert img.size == (w, h) and abs(img.getpixel((10, 10)) - 100) <= 3
    nv12 = bytes([200]) * (w * h) + bytes([128]) * (w * h // 2)
    rc, jpeg, ow, oh = encode(nv12, "NV12", w, h, w, scale=2)
    assert rc == 0 and (ow, oh) == (w // 2, h // 2)
    img = decode(jpeg).convert("L")
    assert abs(img.getpixel((5, 5)) - 200) <= 3


def test_short_raw_frame_is_refused():
    """A YUYV buffer shorter than its format is refused (EINVAL), not read past."""
    assert encode(b"\0" * 100, "YUYV", 64, 32, 128)[0] == -22


def test_jpeg_job_is_public():
    """JpegJob is exported for callers that run the encode themselves."""
    assert JpegJob.__name__ == "JpegJob"
