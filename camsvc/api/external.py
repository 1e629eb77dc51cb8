"""External stream methods: `discover_external_streams`, `add_external_stream`,
`remove_external_stream`, `get_external_streams`, `set_discovery_interval` (API.md §8.9)."""

from __future__ import annotations

from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

import msgspec

from camsvc.auth.roles import Role
from camsvc.errors import InvalidParams
from camsvc.rpc.connection import RpcConnection
from camsvc.rpc.registry import NoParams, Registry
from camsvc.streaming.external import (
    DiscoveryOptions,
    DiscoveryResult,
    ExternalStreamList,
    ExternalStreams,
    IntervalUpdated,
    StreamAdded,
    StreamRemoved,
)

__all__ = ["AddParams", "ExternalApi", "IntervalParams", "RemoveParams"]

MAX_URL_CHARS: Final = 2048
_SCHEMES: Final = ("rtsp://", "rtsps://")

StreamUrl = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_URL_CHARS)]


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        valid = bool(parts.hostname) and (parts.port is None or parts.port > 0)
    except ValueError:  # a bad IPv6 literal, a port that is not a number in 0-65535
        valid = False
    if not url.lower().startswith(_SCHEMES) or not valid:
        raise InvalidParams(
            "invalid_value",
            "stream_url must be an rtsp:// or rtsps:// URL with a host",
            param="stream_url",
        )
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise InvalidParams(
            "invalid_value",
            "stream_url must not hold spaces or control characters",
            param="stream_url",
        )


class AddParams(msgspec.Struct, frozen=True):
    """Params of add_external_stream."""

    stream_url: StreamUrl
    stream_name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    stream_type: Literal["generic_rtsp", "skydio_stanag4609"] = "generic_rtsp"

    def __post_init__(self) -> None:
        _check_url(self.stream_url)


class RemoveParams(msgspec.Struct, frozen=True):
    """Params of remove_external_stream."""

    stream_url: StreamUrl

    def __post_init__(self) -> None:
        _check_url(self.stream_url)


class IntervalParams(msgspec.Struct, frozen=True):
    """Params of set_discovery_interval."""

    scan_interval: Annotated[int, msgspec.Meta(ge=0, le=86400)]


class ExternalApi:
    """Handlers over the external streams service."""

    def __init__(self, external: ExternalStreams) -> None:
        self._external = external

    def register(self, registry: Registry) -> None:
        """Add this group's methods to `registry`."""
        op = Role.OPERATOR
        registry.add(
            "discover_external_streams",
            self.discover,
            params=DiscoveryOptions,
            result=DiscoveryResult,
            role=op,
        )
        registry.add(
            "add_external_stream",
            self.add,
            params=AddParams,
            result=StreamAdded,
            role=op,
            needs_mediamtx=True,
        )
        registry.add(
            "remove_external_stream",
            self.remove,
            params=RemoveParams,
            result=StreamRemoved,
            role=op,
            needs_mediamtx=True,
        )
        registry.add("get_external_streams", self.list, result=ExternalStreamList)
        registry.add(
            "set_discovery_interval",
            self.set_interval,
            params=IntervalParams,
            result=IntervalUpdated,
            role=Role.ADMIN,
        )

    async def discover(self, conn: RpcConnection, params: DiscoveryOptions) -> DiscoveryResult:
        """Probe the configured candidates (or reuse a scan under 30 s old)."""
        return await self._external.discover(params)

    async def add(self, conn: RpcConnection, params: AddParams) -> StreamAdded:
        """Add an RTSP stream as device `ext_<stream_name>` with its MediaMTX path."""
        return await self._external.add(params.stream_url, params.stream_name, params.stream_type)

    async def remove(self, conn: RpcConnection, params: RemoveParams) -> StreamRemoved:
        """Remove an added stream (its recording is stopped first)."""
        return await self._external.remove(params.stream_url)

    def list(self, conn: RpcConnection, params: NoParams) -> ExternalStreamList:
        """Added and discovered streams (empty lists while the feature is off). A stream URL's
        password is shown to operators and admins only (who add and remove streams by URL)."""
        session = conn.session
        return self._external.list(passwords=session is not None and session.role >= Role.OPERATOR)

    def set_interval(self, conn: RpcConnection, params: IntervalParams) -> IntervalUpdated:
        """Set the periodic discovery interval (0 = on request only); persisted."""
        return self._external.set_interval(params.scan_interval)
