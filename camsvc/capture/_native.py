"""The compiled cffi module and small helpers around it; nothing here touches a device."""

from __future__ import annotations

import os

from camsvc._capture import ffi, lib

__all__ = ["ffi", "fsencode", "lib", "string"]


def fsencode(path: str | os.PathLike[str]) -> bytes:
    """Encode a path for C."""
    return os.fsencode(os.fspath(path))


def string(chars: object) -> str:
    """Decode a NUL-terminated C char array."""
    return ffi.string(chars).decode("utf-8", "replace")
