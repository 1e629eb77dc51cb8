"""The lanes device tests run in: the emulated device here, vivid in the QEMU guest.

A lane owns a directory of capture nodes and can unplug and replug them. Tests written
against `Lane` must hold in both lanes; the vivid lane is the truth (docs/testing.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from tests.emulator.control import EmulatedCamera

__all__ = ["EmulatorLane", "Lane"]


class Lane(Protocol):
    """What a device test may ask of its lane."""

    name: str
    device_dir: Path

    def nodes(self) -> list[Path]:
        """Return the capture nodes present now, in node-number order."""
        ...

    def unplug(self, path: Path) -> None:
        """Unplug the device behind path; returns once the node is gone."""
        ...

    def replug(self, path: Path) -> None:
        """Plug it back; returns once path is a capture node again."""
        ...


class EmulatorLane:
    """Two emulated UVC cameras (video0, video1) and their metadata node (video2)."""

    name = "emulator"

    def __init__(self, device_dir: Path) -> None:
        """Plug the cameras into device_dir (the directory CAMSVC_EMU_DIR names)."""
        self.device_dir = Path(device_dir)
        self.cameras = [
            EmulatedCamera(self.device_dir, 0, card="Emulated Camera 0"),
            EmulatedCamera(self.device_dir, 1, card="Emulated Camera 1"),
        ]
        # A UVC camera also has a metadata node: enumeration must skip it.
        self.metadata = EmulatedCamera(
            self.device_dir, 2, card="Emulated Camera 1", kind="metadata"
        )
        for node in [*self.cameras, self.metadata]:
            node.plug()

    def camera(self, path: Path) -> EmulatedCamera:
        """Return the emulated camera behind path (for faults and clock ticks)."""
        for cam in self.cameras:
            if cam.path == Path(path):
                return cam
        raise KeyError(f"{path} is not a camera of this lane")

    def nodes(self) -> list[Path]:
        """Return the capture nodes present now, in node-number order."""
        return [cam.path for cam in self.cameras if cam.path.exists()]

    def unplug(self, path: Path) -> None:
        """Delete the node: open fds get ENODEV and poll POLLERR|POLLHUP."""
        self.camera(path).unplug()

    def replug(self, path: Path) -> None:
        """Create the node again: a fresh device with default settings."""
        self.camera(path).plug()

    def close(self) -> None:
        """Unplug every node of the lane."""
        for node in [*self.cameras, self.metadata]:
            node.unplug()
