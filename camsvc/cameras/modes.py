"""Capture modes: what a device offers (flattened from the capture module) and which one to use."""

from __future__ import annotations

import msgspec

from camsvc.capture import DeviceInfo

__all__ = ["PREFERRED_FOURCC", "Mode", "choose_mode", "modes_of"]

# Snapshots are cheapest from MJPEG (a copy), then YUYV and NV12 (one encode).
PREFERRED_FOURCC = ("MJPG", "YUYV", "NV12")
# Without a configured size, the largest mode up to this area is used.
DEFAULT_MAX_AREA = 1920 * 1080


class Mode(msgspec.Struct, frozen=True):
    """One format at one size, with its frame rates (highest first)."""

    format: str
    width: int
    height: int
    fps: list[int]


def modes_of(info: DeviceInfo) -> list[Mode]:
    """Discrete modes of a device (stepwise/continuous ranges give their bounds)."""
    modes: list[Mode] = []
    for pf in info.formats:
        for size in pf.sizes:
            rates = sorted({round(iv.fps) for iv in size.intervals if iv.fps >= 1}, reverse=True)
            dims = [(size.width, size.height)]
            if size.kind != "discrete" and size.max_width:
                dims.append((size.max_width, size.max_height))
            for width, height in dims:
                modes.append(Mode(pf.fourcc, width, height, rates))
    return modes


def choose_mode(modes: list[Mode]) -> Mode | None:
    """The mode the pump opens: preferred format first, then the largest size up to 1080p."""
    if not modes:
        return None

    def rank(m: Mode) -> tuple[int, int, int, int]:
        pref = PREFERRED_FOURCC.index(m.format) if m.format in PREFERRED_FOURCC else 99
        area = m.width * m.height
        fits = area <= DEFAULT_MAX_AREA
        return (pref, 0 if fits else 1, -area if fits else area, -(m.fps[0] if m.fps else 0))

    return min(modes, key=rank)
