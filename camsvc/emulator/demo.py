"""Demo mode: the service on two emulated cameras in a private device directory."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from camsvc.emulator._control import EmulatedCamera, library_path

__all__ = ["DEMO_DIR_ENV", "demo_environment", "remove_demo_dir"]

# Set in the re-executed demo process: the emulated device directory.
DEMO_DIR_ENV = "CAMSVC_DEMO_DIR"


def demo_environment(cameras: int = 2) -> dict[str, str]:
    """Create a device directory with `cameras` emulated cameras; the environment to run in."""
    directory = Path(tempfile.mkdtemp(prefix="camsvc-demo-"))
    for index in range(cameras):
        EmulatedCamera(directory, index, card=f"Demo Camera {index}").plug()
    env = dict(os.environ)
    env["LD_PRELOAD"] = " ".join(filter(None, [str(library_path()), env.get("LD_PRELOAD")]))
    env["CAMSVC_EMU_DIR"] = str(directory)
    env[DEMO_DIR_ENV] = str(directory)
    env["CAMERA_SERVICE_CAMERA_DEVICE_DIR"] = str(directory)
    return env


def remove_demo_dir(directory: str) -> None:
    """Remove a demo device directory (only one this module made)."""
    path = Path(directory)
    if path.name.startswith("camsvc-demo-"):
        shutil.rmtree(path, ignore_errors=True)
