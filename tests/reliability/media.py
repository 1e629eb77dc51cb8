"""Checks of media files the reliability tests leave behind: complete JPEGs, playable MP4s."""

from __future__ import annotations

import json
from pathlib import Path

import trio
from PIL import Image

__all__ = ["ffprobe_duration", "is_complete_jpeg"]


def is_complete_jpeg(path: Path) -> bool:
    """Whether `path` is a whole JPEG: starts with SOI, ends with EOI and decodes fully."""
    data = path.read_bytes()
    if not (data.startswith(b"\xff\xd8") and data.rstrip(b"\0").endswith(b"\xff\xd9")):
        return False
    with Image.open(path) as img:
        img.load()  # raises on truncated data
    return True


async def ffprobe_duration(path: Path) -> float:
    """Seconds of video ffprobe finds by reading every packet of `path` (0 if none)."""
    with trio.fail_after(30):
        done = await trio.run_process(
            ["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0",
             "-show_entries", "stream=nb_read_packets,codec_name:format=duration",
             "-of", "json", str(path)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )  # fmt: skip
    assert done.returncode == 0, f"ffprobe {path.name}: {done.stderr.decode(errors='replace')}"
    probed = json.loads(done.stdout)
    streams = probed.get("streams") or [{}]
    assert streams[0].get("codec_name") == "h264", probed
    assert int(streams[0].get("nb_read_packets", 0)) > 0, probed
    return float(probed.get("format", {}).get("duration", 0) or 0)
