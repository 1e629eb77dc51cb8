"""`python -m benchmarks.pinned_mode WxH@FPS [serve options]`: `camsvc serve` with every camera
opened in one capture mode.

camsvc has no setting for the capture mode: the registry takes `choose_mode`'s pick (the
largest size up to 1080p at its highest rate; on the emulated device MJPEG 1920x1080 @ 60).
The recording benchmark needs the performance spec's 640x480 @ 30 fps, so this wrapper
replaces the registry's `choose_mode` in the server process only: the preferred format at the
pinned size and rate when the device offers them, else camsvc's own choice. Nothing else of
the service changes; the benchmark checks the mode it got through `get_camera_list`.
"""

from __future__ import annotations

import re
import sys

import camsvc.cameras.registry as registry
from camsvc.cameras.modes import PREFERRED_FOURCC, Mode, choose_mode
from camsvc.cli import main as camsvc_main

__all__ = ["main", "pinned"]

_SPEC = re.compile(r"^(\d+)x(\d+)@(\d+)$")


def pinned(width: int, height: int, fps: int) -> object:
    """A `choose_mode` that picks `width`x`height` at `fps` when offered."""

    def choose(modes: list[Mode]) -> Mode | None:
        offered = [m for m in modes if (m.width, m.height) == (width, height) and fps in m.fps]
        if not offered:
            return choose_mode(modes)
        best = min(
            offered,
            key=lambda m: PREFERRED_FOURCC.index(m.format) if m.format in PREFERRED_FOURCC else 99,
        )
        return Mode(best.format, width, height, [fps])

    return choose


def main(argv: list[str]) -> int:
    """Pin the mode, then run `camsvc serve` with the remaining arguments."""
    m = _SPEC.match(argv[0]) if argv else None
    if m is None:
        print("usage: python -m benchmarks.pinned_mode WxH@FPS [serve options]", file=sys.stderr)
        return 2
    registry.choose_mode = pinned(*map(int, m.groups()))  # type: ignore[assignment]
    return camsvc_main(["serve", *argv[1:]])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
