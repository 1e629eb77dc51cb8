"""MediaMTX paths following cameras: one path `cameraN` per connected camera.

Owns: the wanted path configuration of each camera (recording settings from config, and
the hooks that call back into camsvc: runOnDemand, runOnRecordSegmentComplete), the
pure reconcile `plan(wanted, observed) -> actions`, and `PathManager`, the service that
applies those actions through the client when cameras come and go. Paths whose names are
not camsvc's (`cameraN`) are never touched. Must not touch: publishers, devices.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Callable, Mapping
from typing import Final

import msgspec
import structlog
import trio

from camsvc.cameras.registry import CameraRegistry
from camsvc.config import RecordingConfig
from camsvc.streaming.hook_protocol import hook_command
from camsvc.streaming.mediamtx import (
    MediaMTXClient,
    MediaMTXError,
    MediaMTXNotFound,
    PathAlreadyExists,
    PathCache,
    PathConf,
    PathConfPatch,
)

__all__ = [
    "MANAGED_NAME",
    "AddPath",
    "DeletePath",
    "PatchPath",
    "PathAction",
    "PathHooks",
    "PathManager",
    "duration_s",
    "plan",
    "record_path",
    "wanted_conf",
]

log = structlog.get_logger("camsvc.streaming.paths")

# The path names camsvc owns; any other path in MediaMTX belongs to someone else.
MANAGED_NAME: Final = re.compile(r"^camera\d+$")
# MediaMTX's part duration for fMP4 recordings (camsvc's config has no key for it).
PART_DURATION: Final = "1s"
# How often the manager looks for camera changes (cheap: compares a version number).
WATCH_INTERVAL_S: Final = 0.25
# Pause before a failed reconcile is tried again.
RETRY_S: Final = 1.0
_DURATION_FIELDS: Final = frozenset(
    {"record_part_duration", "record_segment_duration", "run_on_demand_close_after"}
)


class AddPath(msgspec.Struct, frozen=True, tag=True):
    """Add path `name` with `conf`."""

    name: str
    conf: PathConfPatch


class PatchPath(msgspec.Struct, frozen=True, tag=True):
    """Patch the fields of `conf` on path `name`."""

    name: str
    conf: PathConfPatch


class DeletePath(msgspec.Struct, frozen=True, tag=True):
    """Delete path `name`."""

    name: str


PathAction = AddPath | PatchPath | DeletePath


def record_path(recordings_dir: str) -> str:
    """MediaMTX recordPath for camsvc's recordings: `<dir>/%path/%path_<time>`."""
    return os.path.join(recordings_dir, "%path", "%path_%Y-%m-%d_%H-%M-%S-%f")


def _go_duration(seconds: float) -> str:
    """A Go duration string for `seconds` (`3600s`, `0.5s`)."""
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{seconds:g}s"


_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_UNIT_S["d"] = 86400.0


def duration_s(text: str) -> float:
    """Seconds in a MediaMTX duration (`1h0m0s`, `500ms`, `1d`); NaN if unparsable."""
    if text in ("0", ""):
        return 0.0 if text == "0" else math.nan
    total, pos = 0.0, 0
    while pos < len(text):
        m = _PART.match(text, pos)
        if m is None:
            return math.nan
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    return total


class PathHooks(msgspec.Struct, frozen=True):
    """How MediaMTX's hook commands reach camsvc (see camsvc/streaming/hook_protocol.py)."""

    program: tuple[str, ...]  # runs the `camsvc` command line, e.g. (python, "-m", "camsvc")
    socket: str
    on_demand_close_after: float


def wanted_conf(
    cfg: RecordingConfig,
    *,
    record: bool = False,
    device: str = "",
    hooks: PathHooks | None = None,
) -> PathConfPatch:
    """The configuration camsvc wants for `device`'s path.

    With `hooks`, a reader of an unpublished path makes MediaMTX run `camsvc hook
    on-demand`, and every finished recording segment `camsvc hook segment-complete` (set
    whether or not the path records: `record` flips at run time, the hook stays).
    """
    demand = segment = ""
    close_after = _go_duration(10.0)  # MediaMTX's default: unused without runOnDemand
    if hooks is not None:
        demand = hook_command(hooks.program, hooks.socket, "on-demand", device)
        segment = hook_command(hooks.program, hooks.socket, "segment-complete", device)
        close_after = _go_duration(hooks.on_demand_close_after)
    return PathConfPatch(
        source="publisher",
        record=record,
        record_path=record_path(cfg.path),
        # MediaMTX records fMP4 or MPEG-TS; camsvc's `mp4` is served as fMP4 segments.
        record_format="fmp4",
        record_segment_duration=_go_duration(float(cfg.segment_duration)),
        record_part_duration=PART_DURATION,
        run_on_demand=demand,
        run_on_demand_close_after=close_after,
        run_on_record_segment_complete=segment,
    )


def _differs(field: str, want: object, have: object) -> bool:
    if field in _DURATION_FIELDS and isinstance(want, str) and isinstance(have, str):
        return not math.isclose(duration_s(want), duration_s(have))
    return want != have


def plan(
    wanted: Mapping[str, PathConfPatch],
    observed: Mapping[str, PathConf],
    *,
    managed: Callable[[str], bool] = lambda name: MANAGED_NAME.match(name) is not None,
) -> list[PathAction]:
    """The actions that turn `observed` path configs into `wanted` ones (sorted by name).

    Missing paths are added, differing fields patched (only those), managed paths that
    are not wanted deleted; paths not `managed` are left alone.
    """
    actions: list[PathAction] = []
    for name in sorted(set(wanted) | set(observed)):
        want = wanted.get(name)
        have = observed.get(name)
        if want is None:
            if have is not None and managed(name):
                actions.append(DeletePath(name))
            continue
        if have is None:
            actions.append(AddPath(name, want))
            continue
        diff = {
            field: value
            for field, value in want.fields().items()
            if _differs(field, value, getattr(have, field))
        }
        if diff:
            actions.append(PatchPath(name, PathConfPatch(**diff)))
    return actions


class PathManager:
    """Keeps one MediaMTX path per connected camera, as `plan` says, until cancelled."""

    def __init__(
        self,
        client: MediaMTXClient,
        cache: PathCache,
        cameras: CameraRegistry,
        recording: RecordingConfig,
        *,
        resync_s: float,
        hooks: PathHooks | None = None,
    ) -> None:
        self.client = client
        self.cache = cache
        self.cameras = cameras
        self.recording = recording
        self.resync_s = resync_s
        self.hooks = hooks
        self._record: dict[str, bool] = {}
        self._dirty = trio.Event()
        self.applied = 0
        self.synced = trio.Event()

    def wanted(self) -> dict[str, PathConfPatch]:
        """The wanted config of every connected camera's path."""
        return {
            entry.device_id: wanted_conf(
                self.recording,
                record=self._record.get(entry.device_id, False),
                device=entry.device_id,
                hooks=self.hooks,
            )
            for entry in self.cameras.connected()
        }

    def set_record(self, device_id: str, record: bool) -> None:
        """Ask for `record` on a camera's path (applied by the next reconcile)."""
        self._record[device_id] = record
        self._dirty.set()

    async def reconcile(self) -> list[PathAction]:
        """Read MediaMTX's path configs, apply the plan; MediaMTXError if unreachable."""
        confs = await self.client.config_paths_all()
        observed = {c.name: c for c in confs}
        actions = plan(self.wanted(), observed)
        for action in actions:
            await self._apply(action)
        if actions:
            self.cache.refresh_soon()
        return actions

    async def _apply(self, action: PathAction) -> None:
        try:
            if isinstance(action, AddPath):
                try:
                    await self.client.config_path_add(action.name, action.conf)
                except PathAlreadyExists:
                    await self.client.config_path_patch(action.name, action.conf)
            elif isinstance(action, PatchPath):
                try:
                    await self.client.config_path_patch(action.name, action.conf)
                except MediaMTXNotFound:
                    await self.client.config_path_add(action.name, action.conf)
            else:
                # Someone else removed it: already as wanted.
                with contextlib.suppress(MediaMTXNotFound):
                    await self.client.config_path_delete(action.name)
        finally:
            self.applied += 1
        log.info("mediamtx_path", action=type(action).__name__, path=action.name)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Reconcile on camera changes, on `set_record`, and every `resync_s`."""
        task_status.started()
        seen: object = None
        last_sync = -math.inf
        while True:
            key = self._camera_key()
            due = trio.current_time() - last_sync >= self.resync_s
            if key != seen or due or self._dirty.is_set():
                self._dirty = trio.Event()
                try:
                    await self.reconcile()
                except MediaMTXError as exc:
                    log.warning("mediamtx_reconcile_failed", error=str(exc))
                    # Try again after RETRY_S (or resync_s if shorter), not at once.
                    last_sync = trio.current_time() - self.resync_s + min(RETRY_S, self.resync_s)
                else:
                    last_sync = trio.current_time()
                seen = key
            with trio.move_on_after(WATCH_INTERVAL_S):
                await self._dirty.wait()

    def _camera_key(self) -> tuple[str, ...]:
        return tuple(e.device_id for e in self.cameras.connected())
