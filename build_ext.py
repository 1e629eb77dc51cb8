"""cffi builder of `camsvc._capture` (API mode, out-of-line) from the C sources in csrc/.

The declarations come from csrc/capture.h, the module's one public C header, minus its
preprocessor lines. setup.py names this file in `cffi_modules`.
"""

from __future__ import annotations

from pathlib import Path

from cffi import FFI

__all__ = ["ffibuilder"]

ROOT = Path(__file__).resolve().parent
CSRC = ROOT / "csrc"
SOURCES = ["cap_sys.c", "cap_err.c", "enum.c", "camera.c", "mjpeg.c", "jpeg.c"]


def _cdef() -> str:
    header = (CSRC / "capture.h").read_text()
    return "\n".join(line for line in header.splitlines() if not line.lstrip().startswith("#"))


ffibuilder = FFI()
ffibuilder.cdef(_cdef())
ffibuilder.set_source(
    "camsvc._capture",
    '#include "capture.h"\n',
    sources=[f"csrc/{name}" for name in SOURCES],
    depends=sorted(f"csrc/{path.name}" for path in CSRC.glob("*.h")),
    include_dirs=[str(CSRC)],
    libraries=["turbojpeg"],
    extra_compile_args=["-std=gnu11", "-O2", "-Wall", "-Wextra"],
)
