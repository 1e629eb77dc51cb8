"""Records of the capture module: what a device offers, what was set, frames and JPEGs.

All are frozen msgspec Structs. Pixel formats are FourCC strings such as "MJPG", "YUYV",
"NV12"; `fourcc_code` and `fourcc_name` convert to and from V4L2's 32-bit codes.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "CaptureStats",
    "DeviceInfo",
    "Format",
    "Frame",
    "FrameInterval",
    "FrameSize",
    "JpegFrame",
    "PixelFormat",
    "fourcc_code",
    "fourcc_name",
]

RangeKind = Literal["discrete", "stepwise", "continuous"]


def fourcc_code(name: str) -> int:
    """Return the V4L2 code of a FourCC string ("MJPG" -> 0x47504a4d)."""
    raw = name.encode("ascii")
    if len(raw) != 4:
        raise ValueError(f"a FourCC has 4 characters, not {name!r}")
    return int.from_bytes(raw, "little")


def fourcc_name(code: int) -> str:
    """Return the FourCC string of a V4L2 code (0x47504a4d -> "MJPG")."""
    return code.to_bytes(4, "little").decode("ascii", "replace").rstrip("\x00 ")


class FrameInterval(msgspec.Struct, frozen=True):
    """A frame interval (seconds per frame, as a fraction), or a range of them."""

    kind: RangeKind
    numerator: int
    denominator: int
    max_numerator: int = 0
    max_denominator: int = 0
    step_numerator: int = 0
    step_denominator: int = 0

    @property
    def fps(self) -> float:
        """Frames per second of the (shortest) interval."""
        return self.denominator / self.numerator if self.numerator else 0.0


class FrameSize(msgspec.Struct, frozen=True):
    """A frame size (or a stepwise/continuous range of them) and its frame intervals."""

    kind: RangeKind
    width: int
    height: int
    max_width: int = 0
    max_height: int = 0
    step_width: int = 0
    step_height: int = 0
    intervals: tuple[FrameInterval, ...] = ()


class PixelFormat(msgspec.Struct, frozen=True):
    """One pixel format a device offers, with its frame sizes."""

    fourcc: str
    description: str
    compressed: bool
    sizes: tuple[FrameSize, ...] = ()


class DeviceInfo(msgspec.Struct, frozen=True):
    """A V4L2 video capture node: identity, capabilities and formats."""

    path: str
    driver: str
    card: str
    bus_info: str
    version: int
    capabilities: int
    device_caps: int
    multiplanar: bool
    formats: tuple[PixelFormat, ...] = ()


class Format(msgspec.Struct, frozen=True):
    """The format the driver actually set on open."""

    width: int
    height: int
    fourcc: str
    bytesperline: int
    sizeimage: int
    fps: float | None
    buffers: int
    multiplanar: bool


class Frame(msgspec.Struct, frozen=True):
    """The newest good frame (metadata; the pixels stay in the camera's ring)."""

    sequence: int
    timestamp: float
    width: int
    height: int
    fourcc: str
    size: int


class JpegFrame(msgspec.Struct, frozen=True):
    """A JPEG made from one frame."""

    data: bytes
    width: int
    height: int
    sequence: int
    timestamp: float


class CaptureStats(msgspec.Struct, frozen=True):
    """Counters of an open camera."""

    frames: int
    dropped: int
    replaced: int
