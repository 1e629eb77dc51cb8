"""camsvc's client for MediaMTX's v3 control API (contracts/mediamtx-openapi.yaml, v1.9+).

Owns: the httpx AsyncClient (Trio), timeouts, retries on connection errors, the one place
where MediaMTX's error bodies become typed exceptions, and a cached view of MediaMTX's
paths refreshed in the background so hot RPCs never call MediaMTX per request.
Must not touch: camera devices, publishers, recordings on disk.

Errors::

    MediaMTXError
    ├── MediaMTXUnavailable      connection refused/reset, timeout (after retries)
    ├── MediaMTXProtocolError    an answer that is not what the API promises
    └── MediaMTXRequestError     an HTTP error with MediaMTX's `{"error": ...}` body
        ├── MediaMTXBadRequest   400
        │   └── PathAlreadyExists    400 `path already exists`
        └── MediaMTXNotFound     404 (`path not found`, `path configuration not found`)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Final, Literal, TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx
import msgspec
import structlog
import trio

from camsvc.config import MediaMTXConfig
from camsvc.errors import DependencyFailed
from camsvc.observability.health import ComponentHealth

__all__ = [
    "MAX_ATTEMPTS",
    "Info",
    "MediaMTXBadRequest",
    "MediaMTXClient",
    "MediaMTXError",
    "MediaMTXNotFound",
    "MediaMTXProtocolError",
    "MediaMTXRequestError",
    "MediaMTXUnavailable",
    "OkReply",
    "Path",
    "PathAlreadyExists",
    "PathCache",
    "PathConf",
    "PathConfList",
    "PathConfPatch",
    "PathList",
    "PathReader",
    "PathSource",
    "Recording",
    "RecordingList",
    "RecordingSegment",
    "map_error",
    "to_camsvc_error",
]

log = structlog.get_logger("camsvc.mediamtx")

# Attempts per request when the connection itself fails (never after a request was sent).
MAX_ATTEMPTS: Final = 3
# First retry pause; doubles per attempt.
BACKOFF_S: Final = 0.1
# Page size used when the client walks a whole list.
PAGE_SIZE: Final = 100
# What a response's stream is replaced with once its body has been read (see `_send`).
_SPENT: Final = httpx.ByteStream(b"")

T = TypeVar("T")


# --- Structs mirroring the OpenAPI schemas camsvc uses -------------------------------------


class Info(msgspec.Struct, frozen=True):
    """`Info`: MediaMTX's version and start time."""

    version: str = ""
    started: str = ""


class OkReply(msgspec.Struct, frozen=True):
    """`OK`: `{"status": "ok"}` (MediaMTX before 1.12 answers an empty body)."""

    status: str = "ok"


class ErrorBody(msgspec.Struct, frozen=True):
    """`Error`: `{"status": "error", "error": "..."}` (no `status` before 1.12)."""

    error: str
    status: str = "error"


class PathSource(msgspec.Struct, frozen=True):
    """`PathSource`: who publishes a path."""

    type: str
    id: str = ""


class PathReader(msgspec.Struct, frozen=True):
    """`PathReader`: one reader of a path."""

    type: str
    id: str = ""


class Path(msgspec.Struct, frozen=True, rename="camel"):
    """`Path`: a path's runtime state (deprecated fields kept for MediaMTX 1.9)."""

    name: str
    conf_name: str = ""
    source: PathSource | None = None
    ready: bool = False
    ready_time: str | None = None
    tracks: list[str] = msgspec.field(default_factory=list)
    bytes_received: int = 0
    bytes_sent: int = 0
    readers: list[PathReader] = msgspec.field(default_factory=list)


class PathList(msgspec.Struct, frozen=True, rename="camel"):
    """`PathList`: one page of paths."""

    item_count: int = 0
    page_count: int = 0
    items: list[Path] = msgspec.field(default_factory=list)


class PathConf(msgspec.Struct, frozen=True, rename="camel"):
    """`PathConf`: the settings of a configured path that camsvc reads."""

    name: str = ""
    source: str = "publisher"
    source_on_demand: bool = False
    record: bool = False
    record_path: str = ""
    record_format: str = "fmp4"
    record_part_duration: str = ""
    record_segment_duration: str = ""
    run_on_demand: str = ""
    run_on_demand_close_after: str = ""
    run_on_init: str = ""
    run_on_record_segment_complete: str = ""


class PathConfList(msgspec.Struct, frozen=True, rename="camel"):
    """`PathConfList`: one page of path configurations."""

    item_count: int = 0
    page_count: int = 0
    items: list[PathConf] = msgspec.field(default_factory=list)


class PathConfPatch(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """`PathConf` as camsvc sends it: only the fields that are set."""

    source: str | msgspec.UnsetType = msgspec.UNSET
    source_on_demand: bool | msgspec.UnsetType = msgspec.UNSET
    record: bool | msgspec.UnsetType = msgspec.UNSET
    record_path: str | msgspec.UnsetType = msgspec.UNSET
    record_format: str | msgspec.UnsetType = msgspec.UNSET
    record_part_duration: str | msgspec.UnsetType = msgspec.UNSET
    record_segment_duration: str | msgspec.UnsetType = msgspec.UNSET
    run_on_demand: str | msgspec.UnsetType = msgspec.UNSET
    run_on_demand_close_after: str | msgspec.UnsetType = msgspec.UNSET
    run_on_init: str | msgspec.UnsetType = msgspec.UNSET
    run_on_record_segment_complete: str | msgspec.UnsetType = msgspec.UNSET

    def fields(self) -> dict[str, Any]:
        """The set fields by attribute name."""
        return {
            f: getattr(self, f)
            for f in self.__struct_fields__
            if getattr(self, f) is not msgspec.UNSET
        }


class RecordingSegment(msgspec.Struct, frozen=True):
    """`RecordingSegment`: when a segment starts (RFC 3339)."""

    start: str


class Recording(msgspec.Struct, frozen=True):
    """`Recording`: the segments of one path."""

    name: str
    segments: list[RecordingSegment] = msgspec.field(default_factory=list)


class RecordingList(msgspec.Struct, frozen=True, rename="camel"):
    """`RecordingList`: one page of recordings."""

    item_count: int = 0
    page_count: int = 0
    items: list[Recording] = msgspec.field(default_factory=list)


# --- errors ------------------------------------------------------------------------------


class MediaMTXError(Exception):
    """Root of the client's errors."""


class MediaMTXUnavailable(MediaMTXError):
    """MediaMTX did not answer (refused, reset, timed out)."""


class MediaMTXProtocolError(MediaMTXError):
    """MediaMTX answered something the API does not promise."""


class MediaMTXRequestError(MediaMTXError):
    """MediaMTX refused a request with an error body."""

    def __init__(self, status_code: int, error: str) -> None:
        super().__init__(f"{status_code}: {error}")
        self.status_code = status_code
        self.error = error


class MediaMTXBadRequest(MediaMTXRequestError):
    """400: the request was invalid."""


class PathAlreadyExists(MediaMTXBadRequest):
    """400 `path already exists` on config add."""


class MediaMTXNotFound(MediaMTXRequestError):
    """404: no such path, path configuration or recording."""


def map_error(status_code: int, body: bytes) -> MediaMTXRequestError:
    """The typed exception for an HTTP error answer of MediaMTX (the only mapping point)."""
    try:
        error = msgspec.json.decode(body, type=ErrorBody).error
    except msgspec.DecodeError:
        error = body.decode("utf-8", "replace").strip() or f"HTTP {status_code}"
    if status_code == 404:
        return MediaMTXNotFound(status_code, error)
    if status_code == 400:
        if error == "path already exists":
            return PathAlreadyExists(status_code, error)
        return MediaMTXBadRequest(status_code, error)
    return MediaMTXRequestError(status_code, error)


def to_camsvc_error(exc: MediaMTXError) -> DependencyFailed:
    """The API error (-32050) for a client error: unavailable or erroring."""
    if isinstance(exc, MediaMTXUnavailable):
        return DependencyFailed("mediamtx_unavailable", str(exc))
    return DependencyFailed("mediamtx_error", str(exc))


# --- the client --------------------------------------------------------------------------


def _split_auth(api_url: str) -> tuple[str, tuple[str, str] | None]:
    """`http://user:pass@host:9997` -> (`http://host:9997`, (user, pass))."""
    parts = urlsplit(api_url)
    if parts.username is None:
        return api_url.rstrip("/"), None
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    base = urlunsplit((parts.scheme, netloc, parts.path, "", "")).rstrip("/")
    return base, (unquote(parts.username), unquote(parts.password or ""))


class MediaMTXClient:
    """Calls MediaMTX's v3 API; every method raises only `MediaMTXError` subclasses.

    Basic auth comes from `auth` or from user info in `api_url`
    (`http://user:pass@127.0.0.1:9997`). `transport` lets tests plug an httpx transport.
    """

    def __init__(
        self,
        api_url: str,
        *,
        timeout_s: float = 2.0,
        auth: tuple[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        on_request: Callable[[httpx.Request], None] | None = None,
    ) -> None:
        base, url_auth = _split_auth(api_url)
        self.base_url = base
        hooks = {"request": [self._request_hook]} if on_request else {}
        self._on_request = on_request
        self._http = httpx.AsyncClient(
            base_url=base,
            timeout=httpx.Timeout(timeout_s),
            auth=auth or url_auth,
            transport=transport,
            event_hooks=hooks,
        )

    @classmethod
    def from_config(cls, cfg: MediaMTXConfig, **kw: Any) -> MediaMTXClient:
        """A client for `mediamtx.api_url` with `mediamtx.request_timeout`."""
        return cls(cfg.api_url, timeout_s=float(cfg.request_timeout), **kw)

    async def _request_hook(self, request: httpx.Request) -> None:
        assert self._on_request is not None
        self._on_request(request)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _send(
        self, method: str, url: str, *, params: dict[str, Any] | None = None, body: Any = None
    ) -> bytes:
        content = None if body is None else msgspec.json.encode(body)
        headers = {"Content-Type": "application/json"} if content is not None else None
        delay = BACKOFF_S
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                response = await self._http.request(
                    method, url, params=params, content=content, headers=headers
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Nothing reached MediaMTX: safe to retry any method.
                if attempt == MAX_ATTEMPTS:
                    raise MediaMTXUnavailable(f"{method} {url}: {exc!r}") from exc
                log.debug("mediamtx_retry", method=method, url=url, attempt=attempt)
                await trio.sleep(delay)
                delay *= 2
                continue
            except httpx.TimeoutException as exc:
                raise MediaMTXUnavailable(f"{method} {url}: timed out") from exc
            except httpx.TransportError as exc:
                raise MediaMTXUnavailable(f"{method} {url}: {exc!r}") from exc
            status, content = response.status_code, response.content
            # httpx's Response and its (closed) stream refer to each other, so every response
            # waited for the cyclic collector's next full pass: between passes, minutes apart,
            # they piled up by the thousand (docs/performance.md, the soak). Unlinked, it is freed
            # here.
            response.stream = _SPENT
            if status >= 400:
                raise map_error(status, content)
            return content
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _decode(data: bytes, type_: type[T]) -> T:
        try:
            return msgspec.json.decode(data, type=type_)
        except msgspec.DecodeError as exc:
            raise MediaMTXProtocolError(f"bad {type_.__name__}: {exc}") from exc

    @staticmethod
    def _name(name: str) -> str:
        return quote(name, safe="/")

    @staticmethod
    def _page(page: int, items_per_page: int) -> dict[str, Any]:
        return {"page": page, "itemsPerPage": items_per_page}

    async def _ok(self, method: str, url: str, body: Any = None) -> None:
        data = await self._send(method, url, body=body)
        if data.strip():
            self._decode(data, OkReply)

    async def info(self) -> Info:
        """`GET /v3/info`."""
        return self._decode(await self._send("GET", "/v3/info"), Info)

    async def paths_list(self, page: int = 0, items_per_page: int = PAGE_SIZE) -> PathList:
        """`GET /v3/paths/list`: one page of runtime paths."""
        data = await self._send("GET", "/v3/paths/list", params=self._page(page, items_per_page))
        return self._decode(data, PathList)

    async def paths_all(self) -> list[Path]:
        """Every runtime path, walking all pages."""
        return await self._walk(self.paths_list)

    async def path_get(self, name: str) -> Path:
        """`GET /v3/paths/get/{name}`."""
        return self._decode(await self._send("GET", f"/v3/paths/get/{self._name(name)}"), Path)

    async def config_paths_list(
        self, page: int = 0, items_per_page: int = PAGE_SIZE
    ) -> PathConfList:
        """`GET /v3/config/paths/list`: one page of path configurations."""
        params = self._page(page, items_per_page)
        return self._decode(
            await self._send("GET", "/v3/config/paths/list", params=params), PathConfList
        )

    async def config_paths_all(self) -> list[PathConf]:
        """Every path configuration, walking all pages."""
        return await self._walk(self.config_paths_list)

    async def config_path_get(self, name: str) -> PathConf:
        """`GET /v3/config/paths/get/{name}`."""
        url = f"/v3/config/paths/get/{self._name(name)}"
        return self._decode(await self._send("GET", url), PathConf)

    async def config_path_add(self, name: str, conf: PathConfPatch) -> None:
        """`POST /v3/config/paths/add/{name}`."""
        await self._ok("POST", f"/v3/config/paths/add/{self._name(name)}", conf)

    async def config_path_patch(self, name: str, conf: PathConfPatch) -> None:
        """`PATCH /v3/config/paths/patch/{name}`."""
        await self._ok("PATCH", f"/v3/config/paths/patch/{self._name(name)}", conf)

    async def config_path_replace(self, name: str, conf: PathConfPatch) -> None:
        """`POST /v3/config/paths/replace/{name}`."""
        await self._ok("POST", f"/v3/config/paths/replace/{self._name(name)}", conf)

    async def config_path_delete(self, name: str) -> None:
        """`DELETE /v3/config/paths/delete/{name}`."""
        await self._ok("DELETE", f"/v3/config/paths/delete/{self._name(name)}")

    async def recordings_list(
        self, page: int = 0, items_per_page: int = PAGE_SIZE
    ) -> RecordingList:
        """`GET /v3/recordings/list`: one page of recordings."""
        params = self._page(page, items_per_page)
        return self._decode(
            await self._send("GET", "/v3/recordings/list", params=params), RecordingList
        )

    async def recording_get(self, name: str) -> Recording:
        """`GET /v3/recordings/get/{name}`."""
        url = f"/v3/recordings/get/{self._name(name)}"
        return self._decode(await self._send("GET", url), Recording)

    async def recording_delete_segment(self, path: str, start: str) -> None:
        """`DELETE /v3/recordings/deletesegment?path=&start=`."""
        data = await self._send(
            "DELETE", "/v3/recordings/deletesegment", params={"path": path, "start": start}
        )
        if data.strip():
            self._decode(data, OkReply)

    async def _walk(self, fetch: Callable[[int, int], Any]) -> list[Any]:
        items: list[Any] = []
        page = 0
        while True:
            reply = await fetch(page, PAGE_SIZE)
            items.extend(reply.items)
            page += 1
            if page >= reply.page_count:
                return items


# --- the cached view ---------------------------------------------------------------------

# Consecutive failed refreshes after which the component is unhealthy (MediaMTX is down).
FAILURES_UNHEALTHY: Final = 2
# After a first failed refresh the next one comes this soon (at most), to confirm an outage.
CONFIRM_S: Final = 0.5


class PathCache:
    """MediaMTX's runtime paths as of the last refresh, and the `mediamtx` health check.

    `run` refreshes every `interval_s`; readers use `get`/`paths` and never wait on MediaMTX.
    `changed` is set (and replaced) when the paths change, when `down` flips and when
    MediaMTX restarted (`restarts`); during an outage the paths stay the last known ones.
    """

    def __init__(
        self,
        client: MediaMTXClient,
        interval_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.interval_s = interval_s
        self._clock = clock
        self._paths: dict[str, Path] = {}
        self.version: str = ""
        self.started = ""  # MediaMTX's start time (`/v3/info`): a new one means a restart
        self.restarts = 0  # restarts seen, including those across an outage
        self.checked = 0
        self.failures = 0
        self.last_error = ""
        self.refreshed_at = -math.inf
        self._wake = trio.Event()
        self.changed = trio.Event()
        self.first_check = trio.Event()

    @property
    def reachable(self) -> bool:
        """Whether the last refresh reached MediaMTX."""
        return self.checked > 0 and self.failures == 0

    @property
    def down(self) -> bool:
        """Whether MediaMTX is out: FAILURES_UNHEALTHY refreshes in a row failed."""
        return self.failures >= FAILURES_UNHEALTHY

    def get(self, name: str) -> Path | None:
        """The cached path `name`, or None."""
        return self._paths.get(name)

    def paths(self) -> list[Path]:
        """Every cached path, sorted by name."""
        return [self._paths[k] for k in sorted(self._paths)]

    def refresh_soon(self) -> None:
        """Ask the background loop to refresh now (after a change camsvc made)."""
        self._wake.set()

    async def refresh(self) -> None:
        """Refresh once; records success or failure, never raises MediaMTXError."""
        try:
            await self._refresh()
        finally:
            self.first_check.set()

    async def _refresh(self) -> None:
        try:
            # Every time: a MediaMTX restarted between two checks is only told by its start.
            info = await self.client.info()
            items = await self.client.paths_all()
        except MediaMTXError as exc:
            self.checked += 1
            self.failures += 1
            self.last_error = str(exc)
            if isinstance(exc, MediaMTXUnavailable):
                self.version = ""
            log.warning("mediamtx_refresh_failed", error=str(exc), failures=self.failures)
            if self.failures == FAILURES_UNHEALTHY:
                self._notify()  # the outage begins: watchers look at `down`
            return
        self.checked += 1
        was_down = self.down
        restarted = bool(self.started and info.started and info.started != self.started)
        if restarted:
            self.restarts += 1
            log.warning("mediamtx_restarted", started=info.started, restarts=self.restarts)
        self.version, self.started = info.version, info.started
        if self.failures:
            log.info("mediamtx_reachable", version=self.version)
        self.failures = 0
        self.last_error = ""
        self.refreshed_at = self._clock()
        new = {p.name: p for p in items}
        if new != self._paths or was_down or restarted:
            self._paths = new
            self._notify()

    def _notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Refresh every `interval_s` (or when woken) until cancelled."""
        task_status.started()
        while True:
            await self.refresh()
            wait = self.interval_s
            if 0 < self.failures < FAILURES_UNHEALTHY:
                wait = min(wait, CONFIRM_S)
            with trio.move_on_after(wait):
                await self._wake.wait()
            self._wake = trio.Event()

    def health(self) -> ComponentHealth:
        """The `mediamtx` component: healthy while the API answers."""
        details: dict[str, Any] = {"api_url": self.client.base_url, "paths": len(self._paths)}
        if self.version:
            details["version"] = self.version
        if self.checked == 0:
            return ComponentHealth(
                "mediamtx", "unhealthy", "not checked yet", lifecycle="STARTING", details=details
            )
        if self.failures == 0:
            return ComponentHealth("mediamtx", "healthy", "API answers", details=details)
        status: Literal["degraded", "unhealthy"] = (
            "unhealthy" if self.failures >= FAILURES_UNHEALTHY else "degraded"
        )
        details["failures"] = self.failures
        return ComponentHealth("mediamtx", status, self.last_error, details=details)
