"""Fixtures of the emulator's own tests: emulated cameras in this test's emu_dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.emulator.control import EmulatedCamera


@pytest.fixture
def camera(emu_dir: Path) -> Iterator[EmulatedCamera]:
    """video0 on a manual clock: a frame exists only once the test ticks."""
    cam = EmulatedCamera(emu_dir, 0, manual_clock=True)
    cam.plug()
    yield cam
    cam.unplug()


@pytest.fixture
def live_camera(emu_dir: Path) -> Iterator[EmulatedCamera]:
    """video1 on its own clock (30 fps by default), for programs that just stream."""
    cam = EmulatedCamera(emu_dir, 1)
    cam.plug()
    yield cam
    cam.unplug()
