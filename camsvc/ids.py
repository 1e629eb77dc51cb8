"""Identifier rules of API.md §1.1 (device ids), raising -32602 with the reason the spec names."""

from __future__ import annotations

import re

from camsvc.errors import InvalidParams

__all__ = ["DEVICE_ID_RE", "EXTERNAL_ID_RE", "LOCAL_ID_RE", "check_device_id"]

LOCAL_ID_RE = re.compile(r"^camera[0-9]+$")
EXTERNAL_ID_RE = re.compile(r"^ext_[A-Za-z0-9_-]{1,64}$")
DEVICE_ID_RE = re.compile(f"{LOCAL_ID_RE.pattern}|{EXTERNAL_ID_RE.pattern}")


def check_device_id(value: str, param: str = "device", *, local_only: bool = False) -> str:
    """Return `value` if it is a well-formed device id, else raise `invalid_device`."""
    pattern = LOCAL_ID_RE if local_only else DEVICE_ID_RE
    if not pattern.fullmatch(value):
        kind = "a local device id (cameraN)" if local_only else "a device id (cameraN or ext_NAME)"
        raise InvalidParams("invalid_device", f"{value!r} is not {kind}", param=param)
    return value
