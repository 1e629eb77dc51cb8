"""Control of the emulated V4L2 device (the LD_PRELOAD library built from ``csrc/emulator/``).

A node is a regular file ``videoN`` in the directory named by ``CAMSVC_EMU_DIR``; its
first bytes are a control page that every process opening the node maps (see
``csrc/emulator/emu.h``, ``struct emu_ctl``). This module writes that page: plug/unplug create
and delete the file, faults and manual-clock ticks are small ``pwrite``s that the
library sees at once and that wake its producer thread through inotify. The writes go
through a hard link, ``.videoN.ctl``: in a preloaded process opening ``videoN`` itself
gives the emulated device, not the file. It owns no process state and never talks to a
device itself.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Final, Literal

from PIL import Image, ImageStat

__all__ = ["FAULTS", "EmulatedCamera", "decode_sequence", "library_path"]

# struct emu_ctl (src/emu.h): u32 fields at these offsets, little-endian.
_MAGIC: Final = 0x554D4543
_VERSION: Final = 1
_OFF_KIND: Final = 8
_OFF_FAULT: Final = 12
_OFF_MANUAL: Final = 16
_OFF_TICKS: Final = 20
_OFF_CARD: Final = 64
_CARD_MAX: Final = 31
_PAGE_SIZE: Final = 256

FAULTS: Final[dict[str | None, int]] = {
    None: 0,
    "ebusy": 1,
    "enospc_streamon": 2,
    "stall": 3,
    "no_dht": 4,
    "corrupt": 5,
    "truncated": 6,
    "eio": 7,
}
_KINDS: Final = {"capture": 0, "metadata": 1}

# The sequence band of the test pattern (csrc/emulator/pattern.c).
_CELLS: Final = 16
_BAND_DIV: Final = 12
_CHECK_XOR: Final = 0xA5A5


def library_path() -> Path:
    """The emulator's shared library, built into the package by `pip install`."""
    import camsvc.emulator

    here = Path(camsvc.emulator.__file__).resolve().parent
    found = sorted(here.glob("_preload*.so"))
    if not found:
        raise FileNotFoundError(f"no emulator library in {here}: run `make install`")
    return found[0]


class EmulatedCamera:
    """One emulated node: plug it in, pull it out, break it, clock it."""

    def __init__(
        self,
        directory: Path,
        index: int,
        *,
        card: str = "Emulated Camera",
        kind: Literal["capture", "metadata"] = "capture",
        manual_clock: bool = False,
    ) -> None:
        if kind not in _KINDS:
            raise ValueError(f"unknown node kind {kind!r}")
        if len(card.encode()) > _CARD_MAX:
            raise ValueError(f"card name longer than {_CARD_MAX} bytes")
        self.path: Path = Path(directory) / f"video{index}"
        self._control = self.path.with_name(f".{self.path.name}.ctl")
        self.index = index
        self.card = card
        self.kind = kind
        self.manual_clock = manual_clock

    def __repr__(self) -> str:
        return f"EmulatedCamera({str(self.path)!r}, kind={self.kind!r})"

    def plug(self) -> None:
        """Create the node (a fresh device: default format, controls and no fault)."""
        page = bytearray(_PAGE_SIZE)
        struct.pack_into("<5I", page, 0, _MAGIC, _VERSION, _KINDS[self.kind], 0, self.manual_clock)
        page[_OFF_CARD : _OFF_CARD + len(self.card.encode())] = self.card.encode()
        # Written aside and renamed, so an opener never sees a half-written node.
        tmp = self.path.with_name(f".{self.path.name}.plug")
        tmp.write_bytes(bytes(page))
        self._control.unlink(missing_ok=True)
        os.link(tmp, self._control)
        os.replace(tmp, self.path)

    def unplug(self) -> None:
        """Delete the node: open handles get ENODEV and their fd turns readable."""
        self.path.unlink(missing_ok=True)
        self._control.unlink(missing_ok=True)

    def inject(self, fault: str | None) -> None:
        """Set the current fault (None clears it); see FAULTS for the names.

        A fault applies to frames the emulator produces after it has seen it; ticks
        are read at the same moment, so ``inject(f); tick()`` always makes frames
        with ``f``, while a tick followed at once by ``inject(None)`` may not.
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {sorted(map(str, FAULTS))}")
        self._write_u32(_OFF_FAULT, FAULTS[fault])

    def tick(self, frames: int = 1) -> None:
        """Manual clock: make the camera deliver `frames` frames now.

        Asynchronous: the emulator's thread in each process streaming from the node
        produces them; wait for the fd to turn readable. A frame that finds no queued
        buffer is lost, as on a camera, but still counts in the sequence.
        """
        if not self.manual_clock:
            raise RuntimeError("tick() needs EmulatedCamera(..., manual_clock=True)")
        if frames < 0:
            raise ValueError("frames must be >= 0")
        ticks = (self._read_u32(_OFF_TICKS) + frames) & 0xFFFFFFFF
        self._write_u32(_OFF_TICKS, ticks)

    def _read_u32(self, offset: int) -> int:
        fd = os.open(self._control, os.O_RDONLY | os.O_CLOEXEC)
        try:
            (value,) = struct.unpack("<I", os.pread(fd, 4, offset))
        finally:
            os.close(fd)
        return value

    def _write_u32(self, offset: int, value: int) -> None:
        # pwrite, not mmap: the write is what raises the inotify event the emulator's
        # producer thread waits for.
        fd = os.open(self._control, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.pwrite(fd, struct.pack("<I", value), offset)
        finally:
            os.close(fd)


def _luma(pixels_rgb: bytes | Image.Image, width: int, height: int) -> Image.Image:
    if isinstance(pixels_rgb, Image.Image):
        if pixels_rgb.size != (width, height):
            raise ValueError(f"image is {pixels_rgb.size}, expected {(width, height)}")
        return pixels_rgb.convert("L")
    return Image.frombytes("RGB", (width, height), bytes(pixels_rgb)).convert("L")


def decode_sequence(pixels_rgb: bytes | Image.Image, width: int, height: int) -> int:
    """Return the frame sequence number drawn into an emulated camera frame."""
    luma = _luma(pixels_rgb, width, height)
    band_h = height / _BAND_DIV
    cell_w = width / _CELLS
    words = []
    for row in range(3):
        word = 0
        for cell in range(_CELLS):
            # The middle half of each cell: far from edges blurred by JPEG or scaling.
            box = (
                round((cell + 0.25) * cell_w),
                round((row + 0.25) * band_h),
                max(round((cell + 0.75) * cell_w), round((cell + 0.25) * cell_w) + 1),
                max(round((row + 0.75) * band_h), round((row + 0.25) * band_h) + 1),
            )
            mean = ImageStat.Stat(luma.crop(box)).mean[0]
            word = (word << 1) | (mean >= 128)
        words.append(word)
    high, low, check = words
    if high ^ low ^ _CHECK_XOR != check:
        raise ValueError("no emulator frame counter in this image (check word mismatch)")
    return (high << 16) | low
