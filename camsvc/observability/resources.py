"""Resource figures of the host and of this process, sampled with psutil (API.md §8.7)."""

from __future__ import annotations

import os
from collections.abc import Callable

import msgspec
import psutil
import trio

__all__ = ["SAMPLE_INTERVAL_S", "ResourceSample", "ResourceSampler", "count_tasks"]

# Percentages are averaged over this interval (psutil measures between two calls).
SAMPLE_INTERVAL_S = 5.0


class ResourceSample(msgspec.Struct, frozen=True):
    """One reading."""

    host_cpu_percent: float = 0.0
    host_memory_percent: float = 0.0
    disk_percent: float = 0.0
    process_cpu_percent: float = 0.0
    rss_bytes: int = 0
    network_io_bytes: int = 0
    open_fds: int = 0


def count_tasks() -> int:
    """Live Trio tasks in this run (walks the task tree from the root)."""
    stack = [trio.lowlevel.current_root_task()]
    count = 0
    while stack:
        task = stack.pop()
        if task is None:
            continue
        count += 1
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return count


class ResourceSampler:
    """Samples every SAMPLE_INTERVAL_S; `latest` is always the newest reading."""

    def __init__(self, disk_path: Callable[[], str]) -> None:
        self._disk_path = disk_path
        self._process = psutil.Process(os.getpid())
        self._net_start = self._net_total()
        self.latest = ResourceSample()

    @staticmethod
    def _net_total() -> int:
        io = psutil.net_io_counters()
        return (io.bytes_recv + io.bytes_sent) if io else 0

    def sample(self) -> ResourceSample:
        """Take a reading now (percentages cover the time since the previous one)."""
        try:
            disk = psutil.disk_usage(self._disk_path()).percent
        except OSError:
            disk = 0.0
        with self._process.oneshot():
            self.latest = ResourceSample(
                host_cpu_percent=psutil.cpu_percent(None),
                host_memory_percent=psutil.virtual_memory().percent,
                disk_percent=disk,
                process_cpu_percent=self._process.cpu_percent(None),
                rss_bytes=self._process.memory_info().rss,
                network_io_bytes=self._net_total() - self._net_start,
                open_fds=self._process.num_fds(),
            )
        return self.latest

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sample until cancelled."""
        self.sample()  # primes the CPU percentages
        task_status.started()
        while True:
            await trio.sleep(SAMPLE_INTERVAL_S)
            self.sample()
