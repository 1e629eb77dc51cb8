"""Stream and recording methods: `start_streaming`, `stop_streaming`, `get_stream_url`,
`get_stream_status`, `get_streams`, `start_recording`, `stop_recording` (API.md §8.4, §8.6)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from camsvc.api.cameras import DeviceParams
from camsvc.auth.roles import Role
from camsvc.rpc.connection import RpcConnection
from camsvc.rpc.registry import NoParams, Registry
from camsvc.streaming.external_live import ExternalLive
from camsvc.streaming.recording_messages import RecordingStarted, RecordingStopped
from camsvc.streaming.recordings import RecordingService
from camsvc.streaming.streams import (
    StreamEntry,
    StreamService,
    StreamStarted,
    StreamStatus,
    StreamStopped,
    StreamUrl,
)

__all__ = ["StartRecordingParams", "StreamsApi"]


class StartRecordingParams(DeviceParams, frozen=True):
    """Params of start_recording."""

    duration: Annotated[float, msgspec.Meta(ge=1, le=86400)] | None = None
    format: Literal["fmp4", "mp4", "mkv"] | None = None


class StreamsApi:
    """Handlers over the stream and recording services (`ext_` streams: `external`)."""

    def __init__(
        self,
        streams: StreamService,
        recordings: RecordingService,
        external: ExternalLive | None = None,
    ) -> None:
        self._streams = streams
        self._recordings = recordings
        self._external = external

    def _ext(self, device: str) -> ExternalLive | None:
        """The external streams' service when `device` is an `ext_` id."""
        return self._external if device.startswith("ext_") else None

    def register(self, registry: Registry) -> None:
        """Add this group's methods to `registry`."""
        add = registry.add
        op, m = Role.OPERATOR, True
        add(
            "start_streaming",
            self.start_streaming,
            params=DeviceParams,
            result=StreamStarted,
            role=op,
            needs_mediamtx=m,
        )
        add(
            "stop_streaming",
            self.stop_streaming,
            params=DeviceParams,
            result=StreamStopped,
            role=op,
            needs_mediamtx=m,
        )
        add("get_stream_url", self.get_stream_url, params=DeviceParams, result=StreamUrl)
        add(
            "get_stream_status",
            self.get_stream_status,
            params=DeviceParams,
            result=StreamStatus,
            needs_mediamtx=m,
        )
        add("get_streams", self.get_streams, result=list[StreamEntry], needs_mediamtx=m)
        add(
            "start_recording",
            self.start_recording,
            params=StartRecordingParams,
            result=RecordingStarted,
            role=op,
            needs_mediamtx=m,
        )
        add(
            "stop_recording",
            self.stop_recording,
            params=DeviceParams,
            result=RecordingStopped,
            role=op,
            needs_mediamtx=m,
        )

    async def start_streaming(self, conn: RpcConnection, params: DeviceParams) -> StreamStarted:
        """Start publishing a camera into MediaMTX; returns when its path is ready."""
        if ext := self._ext(params.device):
            return await ext.start_streaming(params.device, conn.host)
        return await self._streams.start_streaming(params.device, conn.host)

    async def stop_streaming(self, conn: RpcConnection, params: DeviceParams) -> StreamStopped:
        """Stop a camera's publisher unless a recording uses it."""
        if ext := self._ext(params.device):
            return await ext.stop_streaming(params.device)
        return await self._streams.stop_streaming(params.device)

    def get_stream_url(self, conn: RpcConnection, params: DeviceParams) -> StreamUrl:
        """A camera's stream URLs and readiness (works while MediaMTX is down)."""
        if ext := self._ext(params.device):
            return ext.get_stream_url(params.device, conn.host)
        return self._streams.get_stream_url(params.device, conn.host)

    async def get_stream_status(self, conn: RpcConnection, params: DeviceParams) -> StreamStatus:
        """A camera's publisher and MediaMTX path, asked now."""
        if ext := self._ext(params.device):
            return await ext.get_stream_status(params.device)
        return await self._streams.get_stream_status(params.device)

    def get_streams(self, conn: RpcConnection, params: NoParams) -> list[StreamEntry]:
        """Every MediaMTX path, sorted by name."""
        return self._streams.get_streams()

    async def start_recording(
        self, conn: RpcConnection, params: StartRecordingParams
    ) -> RecordingStarted:
        """Start recording a camera; returns the first segment's name."""
        return await self._recordings.start_recording(params.device, params.duration, params.format)

    async def stop_recording(self, conn: RpcConnection, params: DeviceParams) -> RecordingStopped:
        """Stop a camera's recording once its last segment is closed."""
        return await self._recordings.stop_recording(params.device)
