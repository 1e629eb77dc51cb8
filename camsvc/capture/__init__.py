"""camsvc.capture: V4L2 cameras from Python, through the native `camsvc._capture` module.

Public API:

- `list_devices(dir=None)` / `probe(path)`: the video capture nodes and what they offer;
- `Camera(path)`: open with a format, stream through an mmap ring, `read_latest()` the
  newest frame without blocking, `jpeg()` it;
- Trio: `wait_frame(camera)`, `frames(camera)`, `snapshot(camera)`, and `EncodeAhead` to
  have each new frame's JPEG made as it arrives;
- records (frozen msgspec Structs) and the `CaptureError` tree.

This package must not import the service (server, RPC, config): it stands on its own.
"""

from camsvc.capture._camera import DEFAULT_BUFFERS, DEFAULT_QUALITY, Camera, JpegJob, scale_for
from camsvc.capture._enum import DEFAULT_DIR, list_devices, probe
from camsvc.capture._errors import (
    BadFrame,
    CameraClosed,
    CaptureError,
    DeviceAccessDenied,
    DeviceBusy,
    DeviceGone,
    DeviceNotFound,
    FrameTimeout,
    NoSpace,
    NotACamera,
    UnsupportedFormat,
)
from camsvc.capture._trio import EncodeAhead, frames, snapshot, wait_frame
from camsvc.capture._types import (
    CaptureStats,
    DeviceInfo,
    Format,
    Frame,
    FrameInterval,
    FrameSize,
    JpegFrame,
    PixelFormat,
    fourcc_code,
    fourcc_name,
)

__all__ = [
    "DEFAULT_BUFFERS",
    "DEFAULT_DIR",
    "DEFAULT_QUALITY",
    "BadFrame",
    "Camera",
    "CameraClosed",
    "CaptureError",
    "CaptureStats",
    "DeviceAccessDenied",
    "DeviceBusy",
    "DeviceGone",
    "DeviceInfo",
    "DeviceNotFound",
    "EncodeAhead",
    "Format",
    "Frame",
    "FrameInterval",
    "FrameSize",
    "FrameTimeout",
    "JpegFrame",
    "JpegJob",
    "NoSpace",
    "NotACamera",
    "PixelFormat",
    "UnsupportedFormat",
    "fourcc_code",
    "fourcc_name",
    "frames",
    "list_devices",
    "probe",
    "scale_for",
    "snapshot",
    "wait_frame",
]
