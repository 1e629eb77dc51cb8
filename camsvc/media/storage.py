"""Storage usage of the media folders and the thresholds of API.md §8.7 / §10.2."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from camsvc.errors import InsufficientStorage
from camsvc.observability.health import ComponentHealth

__all__ = ["StorageUsage", "StorageWatch", "usage_of"]


class StorageUsage(msgspec.Struct, frozen=True):
    """Figures for one filesystem, computed as `df` does."""

    total_space: int
    used_space: int
    available_space: int
    usage_percentage: float


def usage_of(path: str | os.PathLike[str]) -> StorageUsage:
    """Usage of the filesystem holding `path`."""
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    free = st.f_bfree * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    used = total - free
    pct = 100.0 * used / (used + avail) if used + avail else 0.0
    return StorageUsage(total, used, avail, round(pct, 2))


class StorageWatch:
    """Checks the media roots against the warn and block thresholds."""

    def __init__(self, roots: list[Path], warn_percent: float, block_percent: float) -> None:
        self.roots = roots
        self.warn_percent = warn_percent
        self.block_percent = block_percent

    def prepare(self) -> None:
        """Create the media roots if they are missing."""
        for root in self.roots:
            root.mkdir(parents=True, exist_ok=True)

    def check_room(self, root: Path) -> None:
        """Raise InsufficientStorage when the filesystem of `root` is at or over the block level."""
        usage = usage_of(root).usage_percentage
        if usage >= self.block_percent:
            raise InsufficientStorage(
                "insufficient_storage",
                f"storage at {usage}% (block at {self.block_percent}%)",
                usage_percentage=usage,
                block_percent=self.block_percent,
            )

    def health(self) -> ComponentHealth:
        """The `storage` component (API.md §10.2)."""
        worst = 0.0
        for root in self.roots:
            if not os.access(root, os.W_OK | os.X_OK):
                return ComponentHealth("storage", "unhealthy", f"{root} is not writable")
            worst = max(worst, usage_of(root).usage_percentage)
        details = {
            "usage_percentage": worst,
            "warn_percent": self.warn_percent,
            "block_percent": self.block_percent,
        }
        if worst >= self.block_percent:
            return ComponentHealth(
                "storage",
                "unhealthy",
                f"usage {worst}% at or above block threshold",
                details=details,
            )
        if worst >= self.warn_percent:
            return ComponentHealth(
                "storage", "degraded", f"usage {worst}% at or above warn threshold", details=details
            )
        return ComponentHealth("storage", "healthy", f"usage {worst}%", details=details)
