"""Fragmented MP4 segments whose writing stopped in the middle of a box.

MediaMTX appends each part of a segment (a `moof` box and its `mdat`) with one write. When
the disk fills, the kernel takes what fits and refuses the rest, which leaves a last box
that claims more bytes than the file holds. FFmpeg indexes every top-level box of a
seekable MP4 before it returns a frame, so that one cut box makes the whole segment
unreadable. Cutting the file back to its last whole part keeps everything recorded in full.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

__all__ = ["complete_length", "trim_incomplete_tail"]

_HEADER = struct.Struct(">I4s")
_LARGE_SIZE = struct.Struct(">Q")


def complete_length(file: BinaryIO, size: int) -> int:
    """Length of the longest prefix of `file` (`size` bytes) made of whole top-level boxes,
    where a `moof` counts only with the box after it (its media). 0 if `file` does not begin
    with a whole `ftyp` box, i.e. is not an MP4 this can judge."""
    pos = whole = 0
    while pos + _HEADER.size <= size:
        file.seek(pos)
        head = file.read(_HEADER.size + _LARGE_SIZE.size)
        box_size, kind = _HEADER.unpack_from(head)
        if box_size == 1:  # a 64-bit size follows the type
            if len(head) < _HEADER.size + _LARGE_SIZE.size:
                break
            (box_size,) = _LARGE_SIZE.unpack_from(head, _HEADER.size)
        elif box_size == 0:  # the box runs to the end of the file
            box_size = size - pos
        if box_size < _HEADER.size or pos + box_size > size:
            break
        if pos == 0 and kind != b"ftyp":
            return 0
        pos += box_size
        if kind != b"moof":
            whole = pos
    return whole


def trim_incomplete_tail(path: str | os.PathLike[str]) -> int:
    """Cut `path` back to its whole boxes (see `complete_length`); the bytes removed.

    Leaves alone a file that is whole, that is not an MP4, or that holds no whole box (there
    is nothing to keep, and deleting is not this function's call). Blocking: run it in a
    worker thread. Only for a segment its writer has closed.
    """
    with open(Path(path), "r+b") as file:
        size = os.fstat(file.fileno()).st_size
        keep = complete_length(file, size)
        if keep in (0, size):
            return 0
        file.truncate(keep)
        return size - keep
