"""Fixtures of the capture tests: emulated cameras in the session's emulator directory.

`emu_dir` (tests/conftest.py) is the directory named by CAMSVC_EMU_DIR, with the emulator
preloaded into this process. Every node made here is unplugged after its test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.emulator.control import EmulatedCamera

_next_index = iter(range(10, 10_000))


@pytest.fixture
def make_camera(emu_dir: Path) -> Iterator[Callable[..., EmulatedCamera]]:
    """Factory of plugged-in emulated cameras with fresh node numbers."""
    made: list[EmulatedCamera] = []

    def make(**kwargs: object) -> EmulatedCamera:
        node = EmulatedCamera(emu_dir, next(_next_index), **kwargs)  # type: ignore[arg-type]
        node.plug()
        made.append(node)
        return node

    yield make
    for node in made:
        node.unplug()


@pytest.fixture
def node(make_camera: Callable[..., EmulatedCamera]) -> EmulatedCamera:
    """One emulated camera on a manual clock: frames arrive only when the test ticks."""
    return make_camera(manual_clock=True)
