"""Snapshot and file methods: `take_snapshot`, `list_*`, `get_*_info`, `delete_*`,
`get_storage_info` (API.md §8.3, §8.5, §8.7)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from camsvc.auth.roles import Role
from camsvc.errors import InvalidParams
from camsvc.ids import check_device_id
from camsvc.media.catalog import Kind
from camsvc.media.library import DeleteResult, FileEntry, FileList, MediaLibrary, StorageInfo
from camsvc.media.names import check_filename
from camsvc.media.snapshots import SnapshotResult, Snapshots
from camsvc.rpc.connection import RpcConnection
from camsvc.rpc.registry import NoParams, Registry

__all__ = ["FileParams", "ListParams", "MediaApi", "SnapshotParams"]

Dimension = Annotated[int, msgspec.Meta(ge=1, le=16384)]


class SnapshotParams(msgspec.Struct, frozen=True):
    """Params of take_snapshot."""

    device: str
    filename: str | None = None
    format: Literal["jpeg", "jpg", "png"] | None = None
    quality: Annotated[int, msgspec.Meta(ge=0, le=100)] | None = None
    max_width: Dimension | None = None
    max_height: Dimension | None = None

    def __post_init__(self) -> None:
        check_device_id(self.device)
        if self.filename is not None:
            check_filename(self.filename)
        if self.quality == 0 and self.format not in ("png",):
            raise InvalidParams("out_of_range", "quality must be 1-100 for JPEG", param="quality")


class ListParams(msgspec.Struct, frozen=True):
    """Params of list_recordings / list_snapshots."""

    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None
    offset: Annotated[int, msgspec.Meta(ge=0)] = 0
    device: str | None = None

    def __post_init__(self) -> None:
        if self.device is not None:
            check_device_id(self.device)


class FileParams(msgspec.Struct, frozen=True):
    """A bare file name."""

    filename: str

    def __post_init__(self) -> None:
        check_filename(self.filename)


class MediaApi:
    """Handlers for snapshots, files and storage."""

    def __init__(self, snapshots: Snapshots, library: MediaLibrary, default_page_size: int) -> None:
        self._snapshots = snapshots
        self._library = library
        self._page = default_page_size

    def register(self, registry: Registry) -> None:
        """Add this group's methods to `registry`."""
        add = registry.add
        add(
            "take_snapshot",
            self.take_snapshot,
            params=SnapshotParams,
            result=SnapshotResult,
            role=Role.OPERATOR,
        )
        for kind, plural in (("recording", "recordings"), ("snapshot", "snapshots")):
            add(f"list_{plural}", self._lister(kind), params=ListParams, result=FileList)
            add(f"get_{kind}_info", self._getter(kind), params=FileParams, result=FileEntry)
            add(
                f"delete_{kind}",
                self._deleter(kind),
                params=FileParams,
                result=DeleteResult,
                role=Role.OPERATOR,
            )
        add("get_storage_info", self.get_storage_info, result=StorageInfo, role=Role.ADMIN)

    async def take_snapshot(self, conn: RpcConnection, params: SnapshotParams) -> SnapshotResult:
        """Take a JPEG or PNG snapshot of a camera's newest frame."""
        max_size = None
        if params.max_width or params.max_height:
            max_size = (params.max_width or 16384, params.max_height or 16384)
        fmt = "jpeg" if params.format == "jpg" else params.format
        return await self._snapshots.take(
            params.device,
            filename=params.filename,
            fmt=fmt,
            quality=params.quality or None,
            max_size=max_size,
        )

    def _lister(self, kind: Kind):  # type: ignore[no-untyped-def]
        def list_files(conn: RpcConnection, params: ListParams) -> FileList:
            return self._library.page(
                kind, params.limit or self._page, params.offset, params.device
            )

        list_files.__doc__ = f"{kind.capitalize()}s, newest first, with paging and a device filter."
        return list_files

    def _getter(self, kind: Kind):  # type: ignore[no-untyped-def]
        def get_info(conn: RpcConnection, params: FileParams) -> FileEntry:
            return self._library.info(kind, params.filename)

        get_info.__doc__ = f"One {kind} file's details."
        return get_info

    def _deleter(self, kind: Kind):  # type: ignore[no-untyped-def]
        def delete(conn: RpcConnection, params: FileParams) -> DeleteResult:
            return self._library.delete(kind, params.filename)

        delete.__doc__ = f"Delete a {kind} file."
        return delete

    def get_storage_info(self, conn: RpcConnection, params: NoParams) -> StorageInfo:
        """Disk usage of the media folders and the storage thresholds."""
        return self._library.storage_info()
