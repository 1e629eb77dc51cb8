"""cffi builders (API mode, out-of-line) of the two native modules; setup.py names both in
`cffi_modules`:

- `camsvc._capture` from csrc/: V4L2 enumeration, the streaming ring, JPEG output;
- `camsvc._fanout` from csrc/fanout/: one notification written to many sockets.

The declarations come from each module's one public C header, minus its preprocessor lines.
"""

from __future__ import annotations

from pathlib import Path

from cffi import FFI

__all__ = ["fanout_builder", "ffibuilder"]

ROOT = Path(__file__).resolve().parent
CSRC = ROOT / "csrc"
SOURCES = ["cap_sys.c", "cap_err.c", "enum.c", "camera.c", "mjpeg.c", "jpeg.c"]
CFLAGS = ["-std=gnu11", "-O2", "-Wall", "-Wextra"]


def _cdef(header: Path) -> str:
    return "\n".join(
        line for line in header.read_text().splitlines() if not line.lstrip().startswith("#")
    )


ffibuilder = FFI()
ffibuilder.cdef(_cdef(CSRC / "capture.h"))
ffibuilder.set_source(
    "camsvc._capture",
    '#include "capture.h"\n',
    sources=[f"csrc/{name}" for name in SOURCES],
    depends=sorted(f"csrc/{path.name}" for path in CSRC.glob("*.h")),
    include_dirs=[str(CSRC)],
    libraries=["turbojpeg"],
    extra_compile_args=CFLAGS,
)

fanout_builder = FFI()
fanout_builder.cdef(_cdef(CSRC / "fanout" / "fanout.h"))
fanout_builder.set_source(
    "camsvc._fanout",
    '#include "fanout.h"\n',
    sources=["csrc/fanout/fanout.c"],
    depends=["csrc/fanout/fanout.h"],
    include_dirs=[str(CSRC / "fanout")],
    extra_compile_args=CFLAGS,
)
