"""The vivid lane: real V4L2 nodes of the kernel's vivid driver, in the QEMU guest.

`make test-kernel` (tests/kernel/run.py) boots Debian's kernel with
`vivid n_devs=2 node_types=0x1,0x1` and runs the device tests with
CAMSVC_TEST_DEVICE_DIR=/dev. Hot-plug unbinds and rebinds vivid's platform device in sysfs,
which is what the kernel does when a USB camera goes away and comes back.

Kernel behaviour this relies on (checked in the guest, see docs/testing.md):
- all vivid instances hang off one platform device, `vivid.0`: unbinding it removes every
  vivid node at once, and binding it creates them all again;
- devtmpfs removes and creates the nodes during the sysfs write, before it returns;
- a node comes back under the same name only if no process still holds the old one open:
  the kernel frees a minor (and so `videoN`) when its last file descriptor is closed;
- vivid keeps a device's format and interval across opens; a rebound device starts from
  its power-on state (640x360 YUYV at 5 fps).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

SYSFS_V4L = Path("/sys/class/video4linux")
SYSFS_DRIVER = Path("/sys/bus/platform/drivers/vivid")
SYSFS_PLATFORM = Path("/sys/bus/platform/devices")
NODE_NAME = re.compile(r"^video(\d+)$")
VIVID_CAPTURE = re.compile(r"^vivid-\d+-vid-cap$")


class VividLane:
    """The `lane` fixture's vivid implementation: nodes, unplug and replug."""

    name = "vivid"

    def __init__(
        self, device_dir: Path = Path("/dev"), timeout: float = 10.0, reset: bool = True
    ) -> None:
        """Use the vivid nodes under device_dir; waits for a node give up after timeout s.

        With reset (the default), every vivid device is unbound and bound again first, so
        each test starts, as in the emulator lane, from devices in their power-on state
        (vivid otherwise keeps the format and interval the previous test set) and with
        every node present even if an earlier test failed while they were unplugged.
        """
        self.device_dir = Path(device_dir)
        self.timeout = timeout
        self._unbound: list[str] = []
        if reset:
            self.reset()

    def reset(self) -> None:
        """Unbind and rebind every vivid device; return once all its nodes exist."""
        platform = sorted(p.name for p in SYSFS_PLATFORM.glob("vivid.*"))
        for name in platform:
            if (SYSFS_DRIVER / name).exists():
                (SYSFS_DRIVER / "unbind").write_text(name)
        for name in platform:
            (SYSFS_DRIVER / "bind").write_text(name)
        self._unbound.clear()
        expected = int(_read(Path("/sys/module/vivid/parameters/n_devs")) or 1)
        self._wait(lambda: len(self.nodes()) >= expected, f"{expected} vivid nodes after reset")

    def nodes(self) -> list[Path]:
        """Return the vivid video capture nodes, in node-number order."""
        found = []
        if not SYSFS_V4L.is_dir():
            return []
        for entry in SYSFS_V4L.iterdir():
            m = NODE_NAME.match(entry.name)
            if not m or not VIVID_CAPTURE.match(_read(entry / "name")):
                continue
            node = self.device_dir / entry.name
            if node.exists():
                found.append((int(m.group(1)), node))
        return [node for _n, node in sorted(found)]

    def unplug(self, path: Path) -> None:
        """Unplug the vivid device behind path (and every other vivid node with it)."""
        path = Path(path)
        platform = self._platform_device(path)
        if platform not in self._unbound:
            self._unbound.append(platform)
        (SYSFS_DRIVER / "unbind").write_text(platform)
        self._wait(lambda: not path.exists(), f"{path} to disappear after unbinding {platform}")

    def replug(self, path: Path) -> None:
        """Plug the vivid device back and wait until path is a device node again."""
        path = Path(path)
        if not self._unbound:
            raise RuntimeError(f"replug({path}): nothing was unplugged")
        while self._unbound:
            platform = self._unbound.pop()
            if not (SYSFS_DRIVER / platform).exists():
                (SYSFS_DRIVER / "bind").write_text(platform)

        def back() -> bool:
            return path.exists() and path in self.nodes()

        try:
            self._wait(back, f"{path} to come back")
        except TimeoutError as exc:
            now = ", ".join(str(p) for p in self.nodes()) or "none"
            raise TimeoutError(
                f"{exc}; vivid nodes now: {now}. A node keeps its name only when nothing "
                "holds the old one open: close every fd of it before replug()"
            ) from None

    def restore(self) -> None:
        """Rebind anything still unplugged (for fixture teardown after a failed test)."""
        while self._unbound:
            platform = self._unbound.pop()
            if not (SYSFS_DRIVER / platform).exists():
                (SYSFS_DRIVER / "bind").write_text(platform)

    def _platform_device(self, path: Path) -> str:
        """Return the name of the platform device (e.g. vivid.0) behind a node."""
        entry = SYSFS_V4L / path.name
        try:
            return (entry / "device").resolve(strict=True).name
        except OSError:
            raise FileNotFoundError(f"{path} is not a vivid node") from None

    def _wait(self, done, what: str) -> None:
        """Poll done() every 10 ms until it is true; TimeoutError after self.timeout s."""
        deadline = time.monotonic() + self.timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {self.timeout:.0f} s for {what}")
            time.sleep(0.01)

    def __repr__(self) -> str:
        """Show the lane's name for pytest ids and failure messages."""
        return f"VividLane({self.device_dir})"


def _read(path: Path) -> str:
    """Return a sysfs attribute's text, or '' when it cannot be read."""
    try:
        return path.read_text().strip()
    except OSError:
        return ""
