"""The `lane` fixture: device tests run against emulated nodes, or vivid in the guest."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.device.lanes import EmulatorLane, Lane


@pytest.fixture
def lane(request: pytest.FixtureRequest) -> Iterator[Lane]:
    """The device lane of this run: vivid when CAMSVC_TEST_DEVICE_DIR is set, else emulated."""
    device_dir = os.environ.get("CAMSVC_TEST_DEVICE_DIR")
    if device_dir:
        from tests.device.vivid_lane import VividLane

        yield VividLane(Path(device_dir))
        return
    emulated = EmulatorLane(request.getfixturevalue("emu_dir"))
    try:
        yield emulated
    finally:
        emulated.close()
