"""Errors of the capture module: one tree, rooted at `CaptureError(OSError)`.

    CaptureError(OSError)          errno, device path, message
    ├── DeviceNotFound             ENOENT: no such node
    ├── DeviceAccessDenied         EACCES, EPERM
    ├── DeviceBusy                 EBUSY: another process streams from it
    ├── DeviceGone                 ENODEV, EIO, ENXIO: unplugged or failed mid-use
    ├── NotACamera                 ENOTTY: not a V4L2 streaming capture node
    ├── UnsupportedFormat          EINVAL, ENOTSUP: no usable format or a bad argument
    ├── NoSpace                    ENOSPC, ENOMEM: the driver or the bus cannot stream
    ├── BadFrame                   EBADMSG: a frame that is not a whole JPEG
    ├── FrameTimeout               ETIMEDOUT: no frame arrived in time
    └── CameraClosed               EBADF: the camera is not open

`error_from_code` is the one place that maps the C module's negative errnos to these.
"""

from __future__ import annotations

import errno as _errno

__all__ = [
    "BadFrame",
    "CameraClosed",
    "CaptureError",
    "DeviceAccessDenied",
    "DeviceBusy",
    "DeviceGone",
    "DeviceNotFound",
    "FrameTimeout",
    "NoSpace",
    "NotACamera",
    "UnsupportedFormat",
    "error_from_code",
]


class CaptureError(OSError):
    """A capture failure on one device: `errno`, `strerror` (the message) and `path`."""

    def __init__(self, errno: int, message: str, path: str | None = None) -> None:
        super().__init__(errno, message)
        self.path = path

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        name = _errno.errorcode.get(self.errno or 0, str(self.errno))
        return f"{where}{self.strerror} [{name}]"


class DeviceNotFound(CaptureError):
    """The device node does not exist."""


class DeviceAccessDenied(CaptureError):
    """The process may not open the device node."""


class DeviceBusy(CaptureError):
    """Another owner is streaming from the device."""


class DeviceGone(CaptureError):
    """The device went away (unplugged, or failed with EIO/ENXIO) while in use."""


class NotACamera(CaptureError):
    """The node is not a V4L2 video capture device with streaming I/O."""


class UnsupportedFormat(CaptureError):
    """The device offers no usable format, or an argument is out of range."""


class NoSpace(CaptureError):
    """The driver could not get the memory or bandwidth to stream."""


class BadFrame(CaptureError):
    """A frame could not be turned into a JPEG (not a whole JPEG, or unusable)."""


class FrameTimeout(CaptureError):
    """No frame arrived within the time allowed."""


class CameraClosed(CaptureError):
    """The camera is not open."""


_BY_ERRNO: dict[int, type[CaptureError]] = {
    _errno.ENOENT: DeviceNotFound,
    _errno.EACCES: DeviceAccessDenied,
    _errno.EPERM: DeviceAccessDenied,
    _errno.EBUSY: DeviceBusy,
    _errno.ENODEV: DeviceGone,
    _errno.EIO: DeviceGone,
    _errno.ENXIO: DeviceGone,
    _errno.ENOTTY: NotACamera,
    _errno.EINVAL: UnsupportedFormat,
    _errno.ENOTSUP: UnsupportedFormat,
    _errno.ENOSPC: NoSpace,
    _errno.ENOMEM: NoSpace,
    _errno.EBADMSG: BadFrame,
    _errno.ETIMEDOUT: FrameTimeout,
    _errno.EBADF: CameraClosed,
}


def error_from_code(code: int, message: str, path: str | None = None) -> CaptureError:
    """Build the most specific CaptureError for a C result code (negative or positive errno)."""
    err = abs(code)
    return _BY_ERRNO.get(err, CaptureError)(err, message or _errno.errorcode.get(err, ""), path)
