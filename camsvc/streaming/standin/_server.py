"""The stand-in server: MediaMTX's v3 API and RTSP listener in one process.

Owns: the configuration (`Conf`), creating and dropping one `PathState` per path (its
lifecycle, hooks and recorder are in `_path`), the RTSP listener handing connections to
paths, and the HTTP API answering as MediaMTX v1.20.1 does.
Must not touch: camsvc's services; it is a separate program that camsvc reaches over HTTP
and RTSP only.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import os
import re
from pathlib import Path as FsPath
from typing import Any, Final
from urllib.parse import parse_qs, unquote, urlsplit

import h11
import structlog
import trio

from camsvc.streaming.standin._conf import (
    ALL_OTHERS,
    Conf,
    ConfError,
    PathNotFound,
    decode_path_body,
    encode_segment_path,
    find_path_conf,
    go_rfc3339nano,
    paginate,
    parse_segment_start,
    record_path_format,
)
from camsvc.streaming.standin._path import PathState, now_iso
from camsvc.streaming.standin._rtsp import (
    Reader,
    RtspConnection,
    RtspError,
    Track,
)

__all__ = ["VERSION", "StandIn", "StandInPorts"]

log = structlog.get_logger("camsvc.standin")

# The MediaMTX version whose API the stand-in answers as.
VERSION: Final = "v1.20.1"
MAX_API_BODY: Final = 1024 * 1024
# Path settings a running path takes without being recreated (MediaMTX hot-reloads these).
HOT_FIELDS: Final = frozenset(
    {
        "record",
        "recordPath",
        "recordFormat",
        "recordPartDuration",
        "recordMaxPartSize",
        "recordSegmentDuration",
        "recordDeleteAfter",
        "maxReaders",
        "overridePublisher",
        "runOnDemand",
        "runOnDemandRestart",
        "runOnDemandStartTimeout",
        "runOnDemandCloseAfter",
        "runOnUnDemand",
        "runOnReady",
        "runOnReadyRestart",
        "runOnNotReady",
        "runOnOnline",
        "runOnOnlineRestart",
        "runOnOffline",
        "runOnAvailable",
        "runOnAvailableRestart",
        "runOnUnavailable",
        "runOnRead",
        "runOnReadRestart",
        "runOnUnread",
        "runOnRecordSegmentCreate",
        "runOnRecordSegmentComplete",
    }
)


class StandInPorts:
    """Where the stand-in listens."""

    def __init__(self, api: int, rtsp: int) -> None:
        self.api = api
        self.rtsp = rtsp

    @property
    def api_url(self) -> str:
        """The API's base URL on loopback."""
        return f"http://127.0.0.1:{self.api}"


class StandIn:
    """A MediaMTX stand-in: `run` serves the API and RTSP until cancelled."""

    def __init__(
        self,
        *,
        api_port: int = 0,
        rtsp_port: int = 0,
        host: str = "127.0.0.1",
        recordings: str | None = None,
        paths: dict[str, dict[str, Any]] | None = None,
        ffmpeg: str = "ffmpeg",
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.conf = Conf(paths)
        if recordings is not None:
            self.conf.defaults["recordPath"] = os.path.join(
                recordings, "%path", "%Y-%m-%d_%H-%M-%S-%f"
            )
        self.host = host
        self._api_port = api_port
        self._rtsp_port = rtsp_port
        self.ffmpeg = ffmpeg
        self.auth = auth
        self.started = now_iso()
        self.paths: dict[str, PathState] = {}
        self.connections: set[RtspConnection] = set()
        # Set (and replaced) whenever the path configuration changes through the API.
        self.conf_changed = trio.Event()
        self.ports = StandInPorts(0, 0)
        self.nursery: trio.Nursery

    # --- run ---

    async def run(
        self, *, task_status: trio.TaskStatus[StandInPorts] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on the API and RTSP ports and serve until cancelled."""
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            api = await nursery.start(
                functools.partial(trio.serve_tcp, self._serve_api, self._api_port, host=self.host)
            )
            rtsp = await nursery.start(
                functools.partial(trio.serve_tcp, self._serve_rtsp, self._rtsp_port, host=self.host)
            )
            self.ports = StandInPorts(
                api[0].socket.getsockname()[1], rtsp[0].socket.getsockname()[1]
            )
            self._sync_paths()
            log.info("standin_listening", api=self.ports.api, rtsp=self.ports.rtsp)
            task_status.started(self.ports)
            try:
                await trio.sleep_forever()
            finally:
                for path in list(self.paths.values()):
                    path.close()

    # --- paths ---

    def _sync_paths(self, changed: set[str] | None = None) -> None:
        """Create, update or close static paths after a configuration change."""
        static = {n for n in self.conf.names() if not n.startswith("~") and n != ALL_OTHERS}
        for name in list(self.paths):
            path = self.paths[name]
            try:
                conf_name, conf = find_path_conf(self.conf, name)
            except ConfError:
                conf_name, conf = "", {}
            gone = not conf or (conf_name != path.conf_name)
            if gone:
                path.close()
                del self.paths[name]
                continue
            diff = {k for k in conf if conf[k] != path.conf.get(k)}
            if diff - HOT_FIELDS:
                path.close()
                del self.paths[name]
            elif diff:
                path.update_conf(conf)
        for name in sorted(static - set(self.paths)):
            path = PathState(self, name, name, self.conf.full(name))
            self.paths[name] = path
            path.open()

    def _path_for(self, name: str) -> PathState:
        if name in self.paths:
            return self.paths[name]
        try:
            conf_name, conf = find_path_conf(self.conf, name)
        except ConfError as exc:
            raise RtspError(404, "Not Found") from exc
        path = PathState(self, name, conf_name, conf)
        self.paths[name] = path
        path.open()
        return path

    def _drop_dynamic(self, path: PathState) -> None:
        dynamic = path.conf_name != path.name
        idle = not path.ready and not path.readers and not path.demand_waiters
        if dynamic and idle and self.paths.get(path.name) is path:
            path.close()
            del self.paths[path.name]

    # --- RTSP callbacks ---

    async def _serve_rtsp(self, stream: trio.SocketStream) -> None:
        conn = RtspConnection(stream, self)
        self.connections.add(conn)
        await conn.serve()

    async def describe(self, name: str, query: str, *, hidden: bool) -> PathState:
        """A reader asks for `name`: wait for it on demand; RtspError 404 if unavailable."""
        path = self._path_for(name)
        await path.wait_ready_on_demand(hidden, query)
        return path

    def announce(
        self, conn: RtspConnection, name: str, query: str, sdp: str, tracks: list[Track]
    ) -> PathState:
        """A publisher announces `name`; another publisher is kicked if overriding is on."""
        path = self._path_for(name)
        if path.conf["source"] != "publisher":
            raise RtspError(400, "Bad Request")  # MediaMTX: 'source' is not 'publisher'
        other = path.publisher or path.announcer
        if other is not None and other is not conn:
            if not path.conf["overridePublisher"]:
                raise RtspError(400, "Bad Request")
            path.remove_publisher(other)
            other.kick()
        path.announcer = conn
        path.sdp = sdp
        path.tracks = tracks
        return path

    def record(self, conn: RtspConnection) -> None:
        """The announcer started RECORD."""
        if conn.path is not None and conn.path.announcer is conn:
            conn.path.set_publisher(conn)

    def add_reader(self, reader: Reader) -> None:
        """A reader started PLAY."""
        reader.path.add_reader(reader)

    def connection_closed(self, conn: RtspConnection) -> None:
        """Forget a connection's publisher or reader."""
        self.connections.discard(conn)
        path = conn.path
        if path is None:
            return
        if conn.reader is not None:
            path.remove_reader(conn.reader)
        path.remove_publisher(conn)
        self._drop_dynamic(path)

    # --- HTTP API ---

    async def _serve_api(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = await _read_request(stream, conn)
                if request is None:
                    return
                status, payload = self.handle(
                    request.method.decode(), request.target.decode(), body, dict(request.headers)
                )
                if isinstance(payload, bytes):
                    data, ctype = payload, "text/plain"
                else:
                    data, ctype = (
                        json.dumps(payload, separators=(",", ":")).encode(),
                        "application/json; charset=utf-8",
                    )
                headers = [("Content-Type", ctype), ("Content-Length", str(len(data)))]
                await stream.send_all(conn.send(h11.Response(status_code=status, headers=headers)))
                await stream.send_all(conn.send(h11.Data(data=data)))
                await stream.send_all(conn.send(h11.EndOfMessage()))
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (
            h11.RemoteProtocolError,
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            ConnectionError,
        ):
            return
        finally:
            await stream.aclose()

    def handle(
        self, method: str, target: str, body: bytes, headers: dict[bytes, bytes] | None = None
    ) -> tuple[int, dict[str, Any] | bytes]:
        """Answer one API request: (status, JSON object or plain body)."""
        if self.auth is not None:
            want = "Basic " + base64.b64encode(":".join(self.auth).encode()).decode()
            if (headers or {}).get(b"authorization", b"").decode() != want:
                return 401, {"status": "error", "error": "authentication error"}
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        route = unquote(parts.path)
        try:
            return self._route(method, route, query, body)
        except PathNotFound as exc:
            return 404, _error(str(exc))
        except ConfError as exc:
            return 400, _error(str(exc))

    def _route(
        self, method: str, route: str, query: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any] | bytes]:
        page = (query.get("itemsPerPage", ""), query.get("page", ""))
        if method == "GET" and route == "/v3/info":
            return 200, {"version": VERSION, "started": self.started}
        if method == "GET" and route == "/v3/config/pathdefaults/get":
            return 200, dict(sorted(self.conf.defaults.items()))
        if method == "GET" and route == "/v3/config/paths/list":
            items = [self.conf.full(n) for n in self.conf.names()]
            return 200, _page(items, *page)
        if method == "GET" and route == "/v3/paths/list":
            items = [self.paths[n].api() for n in sorted(self.paths)]
            return 200, _page(items, *page)
        if method == "GET" and route == "/v3/recordings/list":
            names = self._paths_with_segments()
            count = len(names)
            names, pages = paginate(names, *page)
            items = [self._recording(n) for n in names]
            return 200, {"itemCount": count, "pageCount": pages, "items": items}
        if method == "DELETE" and route == "/v3/recordings/deletesegment":
            return self._delete_segment(query.get("path", ""), query.get("start", ""))
        for prefix, verb, action in (
            ("/v3/config/paths/get/", "GET", self._conf_get),
            ("/v3/config/paths/add/", "POST", self._conf_add),
            ("/v3/config/paths/patch/", "PATCH", self._conf_patch),
            ("/v3/config/paths/replace/", "POST", self._conf_replace),
            ("/v3/config/paths/delete/", "DELETE", self._conf_delete),
            ("/v3/paths/get/", "GET", self._path_get),
            ("/v3/recordings/get/", "GET", self._recording_get),
        ):
            if route.startswith(prefix) and method == verb:
                name = route[len(prefix) :]
                if not name:
                    raise ConfError("invalid name")
                return action(name, body)
        return 404, b"404 page not found"

    def _conf_get(self, name: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if name not in self.conf.optional:
            return 404, _error("path configuration not found")
        return 200, self.conf.full(name)

    def _change(self, op: str, name: str, body: bytes | None) -> tuple[int, dict[str, Any]]:
        values = decode_path_body(body) if body is not None else {}
        new = self.conf.clone()
        getattr(new, op)(name, values) if body is not None else new.remove(name)
        new.validate()
        self.conf = new
        self._sync_paths()
        self.conf_changed.set()
        self.conf_changed = trio.Event()
        return 200, {"status": "ok"}

    def _conf_add(self, name: str, body: bytes) -> tuple[int, dict[str, Any]]:
        return self._change("add", name, body)

    def _conf_patch(self, name: str, body: bytes) -> tuple[int, dict[str, Any]]:
        return self._change("patch", name, body)

    def _conf_replace(self, name: str, body: bytes) -> tuple[int, dict[str, Any]]:
        return self._change("replace", name, body)

    def _conf_delete(self, name: str, body: bytes) -> tuple[int, dict[str, Any]]:
        return self._change("remove", name, None)

    def _path_get(self, name: str, body: bytes) -> tuple[int, dict[str, Any]]:
        path = self.paths.get(name)
        if path is None:
            raise PathNotFound()
        return 200, path.api()

    def _recording_get(self, name: str, body: bytes) -> tuple[int, dict[str, Any]]:
        find_path_conf(self.conf, name)
        if not self._segments(name):
            return 404, _error("recording not found")
        return 200, self._recording(name)

    def _segments(self, name: str) -> list[tuple[dt.datetime, FsPath]]:
        try:
            _, conf = find_path_conf(self.conf, name)
        except ConfError:
            return []
        fmt = os.path.abspath(record_path_format(conf, name))
        root = FsPath(_common_path(fmt))
        found: list[tuple[dt.datetime, FsPath]] = []
        if not root.is_dir():
            return found
        for file in root.rglob("*"):
            if file.is_file():
                start = parse_segment_start(fmt, str(file))
                if start is not None:
                    found.append((start, file))
        return sorted(found)

    def _paths_with_segments(self) -> list[str]:
        names: set[str] = set()
        for conf_name in self.conf.names():
            if conf_name.startswith("~") or conf_name == ALL_OTHERS:
                conf = self.conf.full(conf_name)
                fmt = os.path.abspath(conf["recordPath"])
                root = FsPath(_common_path(fmt))
                if root.is_dir():
                    for d in root.iterdir():
                        if d.is_dir() and self._segments(d.name):
                            names.add(d.name)
            elif self._segments(conf_name):
                names.add(conf_name)
        return sorted(names)

    def _recording(self, name: str) -> dict[str, Any]:
        segments = [{"start": go_rfc3339nano(start)} for start, _ in self._segments(name)]
        return {"name": name, "segments": segments}

    def _delete_segment(self, path: str, start: str) -> tuple[int, dict[str, Any]]:
        try:
            when = _parse_rfc3339(start)
        except ValueError as exc:
            raise ConfError(
                f"invalid 'start' parameter: parsing time \"{start}\" as "
                '"2006-01-02T15:04:05Z07:00": cannot parse'
            ) from exc
        _, conf = find_path_conf(self.conf, path)
        file = encode_segment_path(record_path_format(conf, path), when.astimezone())
        try:
            os.remove(file)
        except OSError as exc:
            raise ConfError(
                f"remove {file}: {exc.strerror.lower() if exc.strerror else exc}"
            ) from exc
        return 200, {"status": "ok"}


def _error(message: str) -> dict[str, Any]:
    return {"status": "error", "error": message}


def _page(items: list[Any], items_per_page: str, page: str) -> dict[str, Any]:
    count = len(items)
    items, pages = paginate(items, items_per_page, page)
    return {"itemCount": count, "pageCount": pages, "items": items}


def _common_path(fmt: str) -> str:
    """The directory part of a record path before its first `%` token."""
    cut = fmt.find("%")
    head = fmt if cut < 0 else fmt[:cut]
    return head if head.endswith("/") else os.path.dirname(head)


def _parse_rfc3339(text: str) -> dt.datetime:
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", text):
        raise ValueError(text)
    main, _, rest = text.partition(".")
    frac = ""
    zone = text[19:]
    if rest:
        m = re.match(r"(\d+)(.*)", rest)
        assert m is not None
        frac, zone = m.group(1), m.group(2)
    base = dt.datetime.fromisoformat(main[:19] + ("+00:00" if zone == "Z" else zone))
    return base.replace(microsecond=int((frac + "000000")[:6]) if frac else 0)


async def _read_request(
    stream: trio.SocketStream, conn: h11.Connection
) -> tuple[h11.Request | None, bytes]:
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            conn.receive_data(data)
            if not data and request is None:
                return None, b""
            continue
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_API_BODY:
                return None, b""
        elif isinstance(event, h11.EndOfMessage):
            return request, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            return None, b""
