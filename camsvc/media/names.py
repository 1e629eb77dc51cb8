"""File names of the API (API.md §1.1, §8.3): validation, generated names, download URLs."""

from __future__ import annotations

import re
import secrets
import string
import time
from urllib.parse import quote

from camsvc.errors import InvalidParams

__all__ = [
    "check_filename",
    "check_snapshot_name",
    "download_url",
    "generated_snapshot_name",
]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CLIENT_SNAPSHOT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits


def check_filename(name: str, param: str = "filename") -> str:
    """A bare file name (1-255 bytes, no separators, `..`, NUL or control characters)."""
    size = len(name.encode("utf-8", "surrogatepass"))
    if not 1 <= size <= 255 or "/" in name or "\\" in name or ".." in name or _CONTROL.search(name):
        raise InvalidParams("invalid_filename", f"{name!r} is not a bare file name", param=param)
    return name


def check_snapshot_name(name: str) -> str:
    """A client-chosen snapshot name: the bare-name rule and `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`."""
    check_filename(name)
    if not _CLIENT_SNAPSHOT.match(name):
        raise InvalidParams(
            "invalid_filename",
            f"{name!r}: use letters, digits, '.', '_' or '-', starting with a letter or digit",
            param="filename",
        )
    return name


def generated_snapshot_name(device: str, extension: str, now: float | None = None) -> str:
    """`<device>_<YYYY-MM-DD_HH-MM-SS>_<6 random [a-z0-9]>.<ext>` (UTC)."""
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.gmtime(now))
    suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(6))
    return f"{device}_{stamp}_{suffix}.{extension}"


def download_url(kind: str, filename: str) -> str:
    """`/files/snapshots/<name>` or `/files/recordings/<name>`, percent-encoded."""
    root = "snapshots" if kind == "snapshot" else "recordings"
    return f"/files/{root}/{quote(filename, safe='')}"
