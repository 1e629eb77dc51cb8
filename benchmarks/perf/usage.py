"""The service's resource use over a run, sampled with psutil: the figures of the spec's
resource table (CPU, memory, disk I/O, network I/O, file descriptors)."""

from __future__ import annotations

import contextlib
import os
import time

import msgspec
import psutil

__all__ = ["Usage", "UsageSampler"]


class Sample(msgspec.Struct, array_like=True):
    """One reading: the clock, cumulative CPU seconds and I/O bytes, memory and fds now."""

    t: float
    cpu_s: float  # camsvc and its children (encoder relays), user + system
    rss_mb: float  # camsvc alone
    tree_rss_mb: float  # camsvc and its children
    fds: int  # camsvc
    disk_bytes: int  # read + written to storage by camsvc and its children
    net_bytes: int  # bytes sent on the loopback interface (every process: the load is there)


class Usage(msgspec.Struct, kw_only=True):
    """A run's resource figures."""

    seconds: float
    cpu_pct: float  # camsvc tree, % of one core, mean
    cpu_host_pct: float  # the same as a share of every CPU (the spec's "CPU usage")
    cpu_pct_max: float  # the busiest sampling interval
    rss_mb_max: float
    tree_rss_mb_max: float
    fds_max: int
    disk_mb_s: float
    net_mbit_s: float


def _loopback_bytes() -> int:
    counters = psutil.net_io_counters(pernic=True)
    lo = counters.get("lo")
    return lo.bytes_sent if lo else 0


class UsageSampler:
    """Reads the service's process tree whenever `sample()` is called (about once a second)."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.samples: list[Sample] = []
        self._cpu: dict[tuple[int, float], float] = {}  # per process, its last CPU reading
        self._io: dict[tuple[int, float], int] = {}

    def sample(self) -> Sample:
        """Read the tree once and keep the reading."""
        procs = [self.root]
        with contextlib.suppress(psutil.NoSuchProcess):
            procs += self.root.children(recursive=True)
        tree_rss = 0.0
        rss = 0.0
        fds = 0
        for p in procs:
            try:
                with p.oneshot():
                    key = (p.pid, p.create_time())
                    self._cpu[key] = sum(p.cpu_times()[:2])
                    io = p.io_counters()
                    self._io[key] = io.read_bytes + io.write_bytes
                    mem = p.memory_info().rss / 2**20
                    if p is self.root:
                        rss = mem
                        fds = p.num_fds()
                    tree_rss += mem
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        s = Sample(
            t=time.monotonic(),
            cpu_s=sum(self._cpu.values()),
            rss_mb=round(rss, 1),
            tree_rss_mb=round(tree_rss, 1),
            fds=fds,
            disk_bytes=sum(self._io.values()),
            net_bytes=_loopback_bytes(),
        )
        self.samples.append(s)
        return s

    def usage(self) -> Usage:
        """The figures between the first and the last reading."""
        if len(self.samples) < 2:
            self.sample()
        a, b = self.samples[0], self.samples[-1]
        secs = max(1e-6, b.t - a.t)
        steps = [
            100 * (y.cpu_s - x.cpu_s) / max(1e-6, y.t - x.t)
            for x, y in zip(self.samples, self.samples[1:], strict=False)
        ]
        cpu = 100 * (b.cpu_s - a.cpu_s) / secs
        return Usage(
            seconds=round(secs, 1),
            cpu_pct=round(cpu, 1),
            cpu_host_pct=round(cpu / (os.cpu_count() or 1), 1),
            cpu_pct_max=round(max(steps, default=cpu), 1),
            rss_mb_max=max(s.rss_mb for s in self.samples),
            tree_rss_mb_max=max(s.tree_rss_mb for s in self.samples),
            fds_max=max(s.fds for s in self.samples),
            disk_mb_s=round((b.disk_bytes - a.disk_bytes) / secs / 1e6, 2),
            net_mbit_s=round((b.net_bytes - a.net_bytes) * 8 / secs / 1e6, 1),
        )
