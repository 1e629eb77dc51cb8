"""Write the seed corpus of the MJPEG fuzz target: small JPEGs, with and without DHT.

Each seed is one scale byte followed by a frame (see fuzz_mjpeg.c). Usage: make_seeds.py DIR
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from PIL import Image


def strip_dht(jpeg: bytes) -> bytes:
    """Drop the DHT segments before SOS, as a camera that omits its tables would."""
    out, pos = bytearray(jpeg[:2]), 2
    while pos + 4 <= len(jpeg) and jpeg[pos + 1] != 0xDA:
        length = int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
        if jpeg[pos + 1] != 0xC4:
            out += jpeg[pos : pos + 2 + length]
        pos += 2 + length
    return bytes(out + jpeg[pos:])


def main(directory: str) -> int:
    """Write the seeds into directory."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    for i, (w, h, sub) in enumerate([(16, 16, 0), (33, 17, 1), (64, 48, 2), (8, 8, 0)]):
        img = Image.new("RGB", (w, h), (i * 40, 100, 200))
        for x in range(w):
            img.putpixel((x, x % h), (255, 0, 0))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=70, subsampling=sub)
        data = buf.getvalue()
        (root / f"seed{i}").write_bytes(bytes([i & 1]) + data)
        (root / f"seed{i}-pad").write_bytes(bytes([0]) + data + b"\0" * 8)
        (root / f"seed{i}-nodht").write_bytes(bytes([1]) + strip_dht(data))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
