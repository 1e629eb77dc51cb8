"""Fixtures for camera tests: the real service watching a directory of emulated cameras."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from tests.emulator.control import EmulatedCamera


@pytest.fixture
def cams(emu_dir: Path) -> Iterator[Callable[..., EmulatedCamera]]:
    """Make emulated nodes `videoN` (plugged by default); all unplugged after the test."""
    made: list[EmulatedCamera] = []

    def make(index: int, *, plug: bool = True, **kwargs: object) -> EmulatedCamera:
        cam = EmulatedCamera(emu_dir, index, **kwargs)  # type: ignore[arg-type]
        if plug:
            cam.plug()
        made.append(cam)
        return cam

    yield make
    for cam in made:
        cam.unplug()


@pytest.fixture
def start_cameras_service(start_service, emu_dir: Path) -> Callable[..., Awaitable[object]]:
    """Start the service on the emulated device directory (with optional config sections)."""

    async def start(**sections: dict) -> object:
        camera = {"device_dir": str(emu_dir), "poll_interval": 30, **sections.pop("camera", {})}
        return await start_service(camera=camera, **sections)

    return start
