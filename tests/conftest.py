"""Fixtures shared by every test suite.

The emulator lane: unless CAMSVC_TEST_DEVICE_DIR names a real device directory (the
kernel lane), a pytest run re-executes itself once with the emulated V4L2 device
(tests/emulator) in LD_PRELOAD, before any test module is imported, so this process and
every subprocess it starts (ffmpeg, v4l2-ctl, the camsvc CLI) see emulated nodes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `tests.emulator.control`, `tests.device.lanes`

from tests.emulator.control import emulator_library  # noqa: E402

# The service fixtures (start_service, connect, ...) for every suite.
pytest_plugins = ["tests.fixtures.service", "tests.fixtures.cameras"]

#: Set in the re-executed run; its presence means "the emulator is preloaded".
EMULATOR_MARKER = "CAMSVC_EMU_PRELOADED"
#: The kernel lane's device directory; when set, no emulator.
DEVICE_DIR_VAR = "CAMSVC_TEST_DEVICE_DIR"


def emulator_preloaded() -> bool:
    """Whether this process runs with the emulated device (or its ASan build) preloaded."""
    preload = os.environ.get("LD_PRELOAD", "")
    # The packaged build (camsvc/emulator/_preload*.so) or the ASan one from mk/emulator.mk.
    return os.environ.get(EMULATOR_MARKER) == "1" and (
        "camsvc/emulator/_preload" in preload or "libcamsvc_emu" in preload
    )


def reexec_with_emulator(config: pytest.Config) -> None:
    """Replace this pytest run with the same run under LD_PRELOAD=<emulator>, once."""
    if os.environ.get(DEVICE_DIR_VAR) or os.environ.get(EMULATOR_MARKER):
        return
    args = list(config.invocation_params.args)
    if args != sys.argv[1:]:
        return  # pytest.main() from another program: not ours to replace
    library = emulator_library()
    env = dict(os.environ)
    env[EMULATOR_MARKER] = "1"
    env["LD_PRELOAD"] = " ".join(filter(None, [str(library), env.get("LD_PRELOAD")]))
    # Give the terminal back before exec: pytest has fds 1 and 2 captured by now.
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.stop_global_capturing()
    sys.stdout.flush()
    sys.stderr.flush()
    os.chdir(config.invocation_params.dir)
    os.execve(sys.executable, [sys.executable, "-m", "pytest", *args], env)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    reexec_with_emulator(config)


@pytest.fixture
def emu_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh directory of emulated nodes, named by CAMSVC_EMU_DIR for this test."""
    if os.environ.get(DEVICE_DIR_VAR):
        pytest.skip("kernel lane: real devices, no emulator")
    if not emulator_preloaded():
        pytest.skip("the emulated device is not preloaded (pytest.main() from another program?)")
    directory = tmp_path / "emu"
    directory.mkdir()
    # Read by the emulator on every open(), so each test can have its own directory.
    monkeypatch.setenv("CAMSVC_EMU_DIR", str(directory))
    yield directory
