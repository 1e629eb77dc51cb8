"""The MediaMTX watchdog: what camsvc does when MediaMTX goes away and when it comes back.

Owns: the outage state as seen through the path cache (`PathCache.down`: the health
check failed twice in a row), ending running recordings with ERROR `mediamtx_error` when
an outage begins (their segments stay catalogued), and on recovery re-creating the camera
paths at once and restarting the publishers still wanted (start_streaming, on-demand
readers) without waiting out their backoff. Clients hear of it through the `mediamtx`
health component (get_status, `system.health`, /health) and, per path, through
`mediamtx.stream_stopped` / `stream_started` (StreamService). Must not touch: MediaMTX's
process (that is `MediaMTXSupervisor`), devices.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
import trio

from camsvc.observability.health import ComponentHealth
from camsvc.streaming.mediamtx import MediaMTXError, PathCache
from camsvc.streaming.paths import PathManager
from camsvc.streaming.publisher import Publishers
from camsvc.streaming.recordings import RecordingService
from camsvc.timefmt import utc_timestamp

__all__ = ["MediaMTXWatchdog"]

log = structlog.get_logger("camsvc.streaming.watchdog")


class MediaMTXWatchdog:
    """Reacts to the begin and the end of MediaMTX outages, until cancelled."""

    def __init__(
        self,
        cache: PathCache,
        paths: PathManager,
        publishers: Publishers,
        recordings: RecordingService,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cache = cache
        self.paths = paths
        self.publishers = publishers
        self.recordings = recordings
        self._clock = clock
        self.outages = 0
        self.down_since: float | None = None
        self.recovered_at: float | None = None
        self.recovered = trio.Event()  # replaced after each recovery

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Follow `cache.down`; act on each change."""
        task_status.started()
        down = False
        restarts = self.cache.restarts
        while True:
            changed = self.cache.changed
            if self.cache.down and not down:
                down = True
                await self._outage()
            elif not self.cache.down and down:
                down = False
                restarts = self.cache.restarts  # a restart behind an outage: handled here
                await self._recovery()
            elif self.cache.restarts != restarts:
                restarts = self.cache.restarts
                await self._restarted()
            else:
                await changed.wait()

    async def _outage(self) -> None:
        self.outages += 1
        self.down_since = self._clock()
        log.warning("mediamtx_outage", error=self.cache.last_error, outages=self.outages)
        await self._end_recordings(switch_off=False)

    async def _restarted(self) -> None:
        """MediaMTX restarted between two checks (never seen down): what a recording had
        in the old one ended there, and the new one has no paths yet."""
        log.warning("mediamtx_restart_seen", restarts=self.cache.restarts)
        await self._end_recordings(switch_off=True)
        await self._restore()

    async def _end_recordings(self, *, switch_off: bool) -> None:
        ended = await self.recordings.end_all("mediamtx_error", switch_off=switch_off)
        for stopped in ended:
            log.warning(
                "recording_ended_by_outage",
                device=stopped.device,
                segments=len(stopped.segments),
                duration=stopped.duration,
            )

    async def _recovery(self) -> None:
        began = self.down_since
        self.down_since = None
        self.recovered_at = self._clock()
        log.info(
            "mediamtx_recovered",
            version=self.cache.version,
            outage_s=round(self.recovered_at - began, 3) if began is not None else None,
        )
        await self._restore()

    async def _restore(self) -> None:
        # A restarted MediaMTX has none of camsvc's paths: add them before publishers retry
        # (MediaMTX refuses a publisher on a path it does not know).
        try:
            await self.paths.reconcile()
        except MediaMTXError as exc:
            # The path manager's own loop tries again; publishers keep their backoff.
            log.warning("mediamtx_recovery_reconcile_failed", error=str(exc))
        else:
            self.publishers.retry_all()
        self.recovered.set()
        self.recovered = trio.Event()

    def health(self) -> ComponentHealth:
        """The path cache's `mediamtx` component, with the outage history in its details."""
        component = self.cache.health()
        details = dict(component.details)
        details["outages"] = self.outages
        details["restarts"] = self.cache.restarts
        if self.down_since is not None:
            details["down_since"] = utc_timestamp(self.down_since)
        if self.recovered_at is not None:
            details["recovered_at"] = utc_timestamp(self.recovered_at)
        return ComponentHealth(
            component.name,
            component.status,
            component.message,
            lifecycle=component.lifecycle,
            details=details,
        )
