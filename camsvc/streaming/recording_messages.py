"""What the recordings service answers and announces (API.md §8.4, §9): the results of
start_recording and stop_recording, the params of `recording_status_update`, and the data of
the `recording.*` events. Plain msgspec Structs, encoded as they are."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "RecordingError",
    "RecordingProgress",
    "RecordingStart",
    "RecordingStarted",
    "RecordingStatusUpdate",
    "RecordingStop",
    "RecordingStopped",
]


class RecordingStarted(msgspec.Struct, frozen=True):
    """The result of start_recording."""

    device: str
    filename: str
    status: Literal["RECORDING"]
    start_time: str
    duration: float | None
    format: str


class RecordingStopped(msgspec.Struct, frozen=True):
    """The result of stop_recording."""

    device: str
    filename: str
    status: Literal["STOPPED"]
    start_time: str
    end_time: str
    duration: float
    file_size: int
    format: str
    segments: list[str]


class RecordingStatusUpdate(msgspec.Struct, frozen=True, omit_defaults=True):
    """Params of the `recording_status_update` notification."""

    device: str
    status: Literal["STARTED", "STOPPED", "ERROR"]
    filename: str
    duration: float | None
    reason: str | msgspec.UnsetType = msgspec.UNSET


class RecordingStart(msgspec.Struct, frozen=True):
    """Data of `recording.start`."""

    device: str
    filename: str
    format: str
    start_time: str
    duration: float | None


class RecordingStop(msgspec.Struct, frozen=True):
    """Data of `recording.stop`."""

    device: str
    filename: str
    end_time: str
    duration: float
    file_size: int
    reason: str


class RecordingProgress(msgspec.Struct, frozen=True):
    """Data of `recording.progress`."""

    device: str
    filename: str
    elapsed: float
    file_size: int


class RecordingError(msgspec.Struct, frozen=True):
    """Data of `recording.error`."""

    device: str
    filename: str
    reason: str
    message: str
