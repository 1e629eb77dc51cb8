"""Helpers of the capture tests: bounded waits for frames and JPEG decoding."""

from __future__ import annotations

import io
import time

from PIL import Image

from camsvc.capture import Camera, Frame
from tests.emulator.control import decode_sequence

WAIT_S = 10.0


def wait_for_sequence(camera: Camera, sequence: int, timeout_s: float = WAIT_S) -> Frame:
    """Read frames until one with at least `sequence` arrives (fails after timeout_s)."""
    deadline = time.monotonic() + timeout_s
    frame = camera.latest
    while frame is None or frame.sequence < sequence:
        left = deadline - time.monotonic()
        assert left > 0, f"no frame {sequence} within {timeout_s} s (last: {frame})"
        camera.wait_readable(left)
        frame = camera.read_latest() or frame
    return frame


def decode(jpeg: bytes) -> Image.Image:
    """Decode a whole JPEG with Pillow."""
    img = Image.open(io.BytesIO(jpeg))
    assert img.format == "JPEG"
    img.load()
    return img


def pixel_sequence(jpeg: bytes) -> int:
    """The emulator's frame counter drawn in a JPEG's pixels."""
    img = decode(jpeg)
    return decode_sequence(img.convert("RGB"), *img.size)
