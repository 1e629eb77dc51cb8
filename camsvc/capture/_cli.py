"""Command-line tools of the capture module: `camsvc devices` and `camsvc snapshot`.

`register(subparsers)` adds both to the main CLI (camsvc/cli.py); `python -m
camsvc.capture` runs them on their own. Each command returns an exit code and reports
failures as one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from camsvc.capture._camera import DEFAULT_QUALITY, Camera
from camsvc.capture._enum import DEFAULT_DIR, list_devices, probe
from camsvc.capture._errors import CaptureError
from camsvc.capture._types import DeviceInfo, FrameSize

__all__ = ["build_parser", "main", "plan_capture", "register"]

SNAPSHOT_TIMEOUT_S = 10.0
_PREFERENCE = ("MJPG", "JPEG", "YUYV", "NV12")
_SCALES = (1, 2, 4, 8)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, not {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError("size must be positive")
    return w, h


def _quality(text: str) -> int:
    q = int(text)
    if not 1 <= q <= 100:
        raise argparse.ArgumentTypeError("quality must be 1..100")
    return q


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `devices` and `snapshot` subcommands."""
    devices = subparsers.add_parser("devices", help="list cameras, formats, sizes and rates")
    devices.add_argument(
        "--dir", default=None, help="folder of the videoN nodes (default: camera.device_dir)"
    )
    devices.set_defaults(func=cmd_devices)

    snap = subparsers.add_parser("snapshot", help="write one JPEG from a camera")
    snap.add_argument("device", help="the camera's node, e.g. /dev/video0")
    snap.add_argument("out", help="the JPEG file to write")
    snap.add_argument("--size", type=_size, default=None, help="WIDTHxHEIGHT of the picture")
    snap.add_argument("--quality", type=_quality, default=DEFAULT_QUALITY, help="1..100")
    snap.set_defaults(func=cmd_snapshot)


def _device_dir(args: argparse.Namespace) -> str:
    if args.dir:
        return args.dir
    try:  # the service's configured folder (file or CAMERA_SERVICE_CAMERA_DEVICE_DIR)
        from camsvc.config import load_config

        return load_config(getattr(args, "config", None)).camera.device_dir
    except Exception:  # no usable configuration: the system's folder
        return DEFAULT_DIR


def _rates(size: FrameSize) -> str:
    rates = []
    for iv in size.intervals:
        if iv.kind == "discrete":
            rates.append(f"{iv.fps:g}")
        else:
            slow = iv.max_denominator / iv.max_numerator if iv.max_numerator else 0.0
            rates.append(f"{slow:g}-{iv.fps:g}")
    return f" @ {', '.join(rates)} fps" if rates else ""


def format_device(info: DeviceInfo) -> str:
    """A camera's identity and formats as indented text lines."""
    lines = [f"{info.path}  {info.card}  ({info.driver}, {info.bus_info})"]
    for fmt in info.formats:
        lines.append(f"    {fmt.fourcc:<4}  {fmt.description}")
        for size in fmt.sizes:
            if size.kind == "discrete":
                dims = f"{size.width}x{size.height}"
            else:
                dims = (
                    f"{size.width}x{size.height} - {size.max_width}x{size.max_height}"
                    f" step {size.step_width}x{size.step_height}"
                )
            lines.append(f"          {dims}{_rates(size)}")
    return "\n".join(lines)


def cmd_devices(args: argparse.Namespace) -> int:
    """Print every camera of the folder with its formats; 0 even when there are none."""
    folder = _device_dir(args)
    found = list_devices(folder)
    if not found:
        print(f"no cameras in {folder}")
        return 0
    print("\n\n".join(format_device(info) for info in found))
    return 0


def _fits(size: FrameSize, w: int, h: int) -> bool:
    if size.kind == "discrete":
        return (size.width, size.height) == (w, h)
    in_range = size.width <= w <= size.max_width and size.height <= h <= size.max_height
    step_w, step_h = max(size.step_width, 1), max(size.step_height, 1)
    return in_range and (w - size.width) % step_w == 0 and (h - size.height) % step_h == 0


def plan_capture(
    info: DeviceInfo | None, size: tuple[int, int] | None
) -> tuple[str | None, tuple[int, int] | None, int]:
    """Choose (fourcc, capture size, scale) so that capture size / scale == size exactly.

    Prefers the least scaling, then MJPEG > YUYV > NV12. Without an exact way, asks for
    the size itself and lets the driver choose (scale 1).
    """
    if size is None or info is None:
        return None, size, 1
    w, h = size
    formats = {f.fourcc: f for f in info.formats}
    for scale in _SCALES:
        for fourcc in _PREFERENCE:
            fmt = formats.get(fourcc)
            if fmt and any(_fits(s, w * scale, h * scale) for s in fmt.sizes):
                return fourcc, (w * scale, h * scale), scale
    return None, size, 1


def cmd_snapshot(args: argparse.Namespace) -> int:
    """Write one JPEG of the camera's newest frame to args.out (atomically)."""
    out = Path(args.out)
    try:
        fourcc, capture_size, _scale = plan_capture(probe(args.device), args.size)
        width, height = capture_size if capture_size else (None, None)
        with Camera(args.device) as cam:
            fmt = cam.open(width, height, fourcc=fourcc)
            max_size = args.size or (fmt.width, fmt.height)
            jpeg = cam.jpeg(args.quality, max_size, timeout_s=SNAPSHOT_TIMEOUT_S)
    except CaptureError as exc:
        print(f"camsvc snapshot: {exc}", file=sys.stderr)
        return 1
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(jpeg.data)
        os.replace(tmp, out)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        print(f"camsvc snapshot: cannot write {out}: {exc}", file=sys.stderr)
        return 1
    print(f"{out}: {jpeg.width}x{jpeg.height} JPEG, {len(jpeg.data)} bytes, frame {jpeg.sequence}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """A parser with just the capture subcommands (for `python -m camsvc.capture`)."""
    parser = argparse.ArgumentParser(prog="python -m camsvc.capture")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a capture subcommand; returns the exit code."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))
