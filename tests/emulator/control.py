"""The emulated device as the tests use it: the package's control API, and the library built
fresh from `csrc/emulator/` when its sources changed since the last build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Final

from camsvc.emulator import FAULTS, EmulatedCamera, decode_sequence, library_path

__all__ = ["FAULTS", "EmulatedCamera", "decode_sequence", "emulator_library"]

_ROOT: Final = Path(__file__).resolve().parent.parent.parent


def emulator_library() -> Path:
    """The emulator's shared library, rebuilt in place first if a source is newer."""
    sources = [*(_ROOT / "csrc" / "emulator").glob("*.[ch]"), _ROOT / "setup.py"]
    try:
        built = library_path()
        if all(src.stat().st_mtime <= built.stat().st_mtime for src in sources):
            return built
    except FileNotFoundError:
        pass
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=_ROOT, check=True
    )
    return library_path()
