"""Enumeration: which nodes of a directory are cameras, and what each one offers.

Owns `list_devices` and `probe`; opens a node only for the duration of the query, so it
works while another process streams from the device.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from camsvc.capture._errors import CaptureError, error_from_code
from camsvc.capture._native import ffi, fsencode, lib, string
from camsvc.capture._types import (
    DeviceInfo,
    FrameInterval,
    FrameSize,
    PixelFormat,
    RangeKind,
    fourcc_name,
)

__all__ = ["DEFAULT_DIR", "list_devices", "probe"]

DEFAULT_DIR = "/dev"
_NODE = re.compile(r"^video(\d+)$")
_FIRST_ROWS = 256
_COMPRESSED = 0x0001  # V4L2_FMT_FLAG_COMPRESSED
_KINDS: dict[int, RangeKind] = {1: "discrete", 2: "continuous", 3: "stepwise"}


def _interval(r: Any) -> FrameInterval | None:
    kind = _KINDS.get(r.ival_type)
    if kind is None:
        return None
    if kind == "discrete":
        return FrameInterval(kind, r.num, r.den)
    return FrameInterval(kind, r.num, r.den, r.max_num, r.max_den, r.step_num, r.step_den)


def _formats(rows: list[Any]) -> tuple[PixelFormat, ...]:
    """Group the C module's flat (format, size, interval) rows."""
    formats: dict[int, tuple[str, bool, dict[tuple, list[FrameInterval]]]] = {}
    for r in rows:
        desc, compressed, sizes = formats.setdefault(
            r.fourcc, (string(r.description), bool(r.fmt_flags & _COMPRESSED), {})
        )
        kind = _KINDS.get(r.size_type)
        if kind is None:
            continue
        key = (kind, r.width, r.height, r.max_width, r.max_height, r.step_width, r.step_height)
        intervals = sizes.setdefault(key, [])
        iv = _interval(r)
        if iv is not None and iv not in intervals:
            intervals.append(iv)
    out = []
    for code, (desc, compressed, sizes) in formats.items():
        size_list = tuple(FrameSize(*key, intervals=tuple(ivs)) for key, ivs in sizes.items())
        out.append(PixelFormat(fourcc_name(code), desc, compressed, size_list))
    return tuple(out)


def probe(path: str | os.PathLike[str]) -> DeviceInfo | None:
    """Describe the node at path, or None when it is not a video capture camera."""
    cpath = fsencode(path)
    info = ffi.new("struct cap_devinfo *")
    err = ffi.new("char[]", lib.CAP_ERR_LEN)
    cap = _FIRST_ROWS
    while True:
        modes = ffi.new("struct cap_mode[]", cap)
        n = lib.cap_enum_device(cpath, info, modes, cap, err, lib.CAP_ERR_LEN)
        if n < 0:
            raise error_from_code(n, string(err), os.fspath(path))
        if n <= cap:
            break
        cap = n
    if not info.is_capture:
        return None
    return DeviceInfo(
        path=os.fspath(path),
        driver=string(info.driver),
        card=string(info.card),
        bus_info=string(info.bus_info),
        version=info.version,
        capabilities=info.capabilities,
        device_caps=info.device_caps,
        multiplanar=bool(info.multiplanar),
        formats=_formats([modes[i] for i in range(n)]),
    )


def list_devices(dir: str | os.PathLike[str] | None = None) -> list[DeviceInfo]:
    """List the video capture cameras among the `videoN` nodes of dir (default /dev)."""
    root = Path(dir if dir is not None else DEFAULT_DIR)
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    nodes = sorted((int(m.group(1)), name) for name in names if (m := _NODE.match(name)))
    found = []
    for _n, name in nodes:
        try:
            info = probe(root / name)
        except CaptureError:
            continue  # unplugged since the listing, busy, not ours to open, not V4L2
        if info is not None:
            found.append(info)
    return found
