"""The stand-in server: MediaMTX's v3 API, path lifecycle, hooks and recorder in one process.

Owns: the configuration (`Conf`), one `PathState` per path, hook commands started and
stopped when MediaMTX would, the fMP4 recorder (ffmpeg reading the path and writing
segments named by `recordPath`), and the HTTP API answering as MediaMTX v1.20.1 does.
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
import subprocess
import time
from pathlib import Path as FsPath
from typing import Any, Final
from urllib.parse import parse_qs, quote_plus, unquote, urlsplit

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
    go_duration,
    go_rfc3339nano,
    paginate,
    parse_segment_start,
    record_path_format,
)
from camsvc.streaming.standin._hooks import STOP_GRACE_S, HookCmd, terminate
from camsvc.streaming.standin._rtsp import (
    Reader,
    RecorderTap,
    RtspConnection,
    RtspError,
    Track,
)
from camsvc.streaming.standin._segment import SegmentFile
from camsvc.streaming.standin._source import RtspSource, SourceError

__all__ = ["VERSION", "PathState", "StandIn", "StandInPorts"]

log = structlog.get_logger("camsvc.standin")

# MediaMTX waits this long before pulling a static source again after it failed or ended.
SOURCE_RETRY_S: Final = 5.0
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


def _now_iso() -> str:
    return go_rfc3339nano(dt.datetime.now().astimezone())


class PathState:
    """A path at run time: its conf, publisher, readers, counters, hooks and recorder."""

    def __init__(self, server: StandIn, name: str, conf_name: str, conf: dict[str, Any]) -> None:
        self.server = server
        self.name = name
        self.conf_name = conf_name
        self.conf = conf
        self.announcer: RtspConnection | None = None
        self.publisher: RtspConnection | RtspSource | None = None
        self._source: trio.CancelScope | None = None  # the static source's pull loop
        self.sdp = ""
        self.tracks: list[Track] = []
        self.ready_time: str | None = None
        self.readers: dict[str, Reader] = {}
        self.bytes_received = 0
        self.bytes_sent = 0
        self.ready_changed = trio.Event()
        self.hooks: dict[str, HookCmd] = {}
        self._recorder: trio.CancelScope | None = None
        self._close_timer: trio.CancelScope | None = None
        self.demand_waiters = 0
        # runOnDemand's and runOnUnDemand's MTX_QUERY: the first reader's, as url.QueryEscape.
        self._demand_query = ""
        # The tap armed for the recorder's next segment, and those waiting for their ffmpeg.
        self._tap: RecorderTap | None = None
        self._taps: dict[str, RecorderTap] = {}
        self.recorder_stopped = trio.Event()
        self.recorder_stopped.set()

    # --- state ---

    @property
    def ready(self) -> bool:
        """Whether a publisher is recording into the path."""
        return self.publisher is not None

    def env(self, **extra: str) -> dict[str, str]:
        """MediaMTX's hook environment for this path."""
        env = {
            "MTX_PATH": self.name,
            "MTX_QUERY": "",
            "RTSP_PORT": str(self.server.ports.rtsp),
        }
        if self.conf_name.startswith("~"):
            m = re.search(self.conf_name[1:], self.name)
            if m:
                for i, group in enumerate(m.groups(), 1):
                    env[f"G{i}"] = group or ""
        env.update(extra)
        return env

    def api(self) -> dict[str, Any]:
        """The `Path` object of /v3/paths/*."""
        source = None
        if self.publisher is not None:
            source = {"type": self.publisher.source_type, "id": self.publisher.session_id}
        readers = [
            {"type": "rtspSession", "id": r.id} for r in self.readers.values() if not r.hidden
        ]
        return {
            "name": self.name,
            "confName": self.conf_name,
            "source": source,
            "available": self.ready,
            "availableTime": self.ready_time,
            "online": self.ready,
            "onlineTime": self.ready_time,
            "ready": self.ready,
            "readyTime": self.ready_time,
            "tracks": [t.codec for t in self.tracks] if self.ready else [],
            "tracks2": [{"codec": t.codec, "codecProps": None} for t in self.tracks]
            if self.ready
            else [],
            "inboundBytes": self.bytes_received,
            "inboundFramesInError": 0,
            "outboundBytes": self.bytes_sent,
            "bytesReceived": self.bytes_received,
            "bytesSent": self.bytes_sent,
            "readers": readers,
        }

    def on_packet(self, track: int, rtcp: bool, packet: bytes) -> None:
        """Relay one publisher packet to every reader."""
        self.bytes_received += len(packet)
        if self._tap is not None:
            self._tap.offer(track, rtcp, packet)
        for tap in self._taps.values():
            tap.offer(track, rtcp, packet)
        for reader in self.readers.values():
            reader.offer(track, rtcp, packet)

    # --- hooks ---

    def start_hook(self, kind: str, cmdline: str, *, restart: bool = False, **env: str) -> None:
        """Start hook `kind` unless it runs already (no-op for an empty command)."""
        if not cmdline or kind in self.hooks:
            return
        cmd = HookCmd(kind, cmdline, self.env(**env), restart=restart)
        self.hooks[kind] = cmd

        async def run() -> None:
            try:
                await cmd.run()
            finally:
                if self.hooks.get(kind) is cmd:
                    del self.hooks[kind]

        self.server.nursery.start_soon(run)

    def fire_hook(self, cmdline: str, **env: str) -> None:
        """Run a one-shot hook (runOnNotReady, runOnUnread, segment hooks), not tracked."""
        if cmdline:
            cmd = HookCmd("oneshot", cmdline, self.env(**env), restart=False)
            self.server.nursery.start_soon(cmd.run)

    def stop_hook(self, kind: str) -> None:
        """Stop hook `kind` if it runs."""
        cmd = self.hooks.pop(kind, None)
        if cmd is not None:
            cmd.stop()

    def _online_cmd(self) -> tuple[str, bool]:
        c = self.conf
        if c.get("runOnOnline"):
            return c["runOnOnline"], bool(c.get("runOnOnlineRestart"))
        return c.get("runOnReady") or "", bool(c.get("runOnReadyRestart"))

    def _offline_cmd(self) -> str:
        return self.conf.get("runOnOffline") or self.conf.get("runOnNotReady") or ""

    # --- lifecycle ---

    def open(self) -> None:
        """The path came into existence: runOnInit, and a static source unless on demand."""
        self.start_hook("init", self.conf["runOnInit"], restart=self.conf["runOnInitRestart"])
        if self.has_static_source and not self.conf["sourceOnDemand"]:
            self._start_source()

    def close(self) -> None:
        """The path goes away: kick everyone, stop every hook and the recorder."""
        if self.publisher is not None or self.announcer is not None:
            (self.publisher or self.announcer).kick()  # type: ignore[union-attr]
        for reader in list(self.readers.values()):
            reader.conn.kick()
        self._stop_recorder()
        self._stop_source()
        if self._close_timer is not None:
            self._close_timer.cancel()
        for kind in list(self.hooks):
            self.stop_hook(kind)

    def update_conf(self, conf: dict[str, Any]) -> None:
        """Take hot-reloadable settings; start or stop recording as `record` says."""
        old = self.conf
        self.conf = conf
        if self.ready and conf["record"] and not old["record"]:
            self._start_recorder()
        elif not conf["record"] and old["record"]:
            self._stop_recorder()
        elif (
            self.ready
            and conf["record"]
            and any(
                conf[k] != old[k] for k in ("recordPath", "recordFormat", "recordSegmentDuration")
            )
        ):
            self._stop_recorder()
            self._start_recorder()

    def set_publisher(self, conn: RtspConnection | RtspSource) -> None:
        """RECORD (or a static source playing): the path is ready."""
        self.publisher = conn
        self.ready_time = _now_iso()
        self._signal_ready()
        cmd, restart = self._online_cmd()
        source = {"MTX_SOURCE_TYPE": conn.source_type, "MTX_SOURCE_ID": conn.session_id}
        self.start_hook("online", cmd, restart=restart, **source)
        self.start_hook(
            "available",
            self.conf["runOnAvailable"],
            restart=self.conf["runOnAvailableRestart"],
            **source,
        )
        if self.conf["record"]:
            self._start_recorder()

    def remove_publisher(self, conn: RtspConnection | RtspSource) -> None:
        """The publisher left: not ready; readers are closed, offline hooks run."""
        if self.announcer is conn:
            self.announcer = None
        if self.publisher is not conn:
            return
        self.publisher = None
        self.ready_time = None
        self._signal_ready()
        self._stop_recorder()
        self.stop_hook("online")
        self.stop_hook("available")
        self.fire_hook(self._offline_cmd())
        self.fire_hook(self.conf["runOnUnavailable"])
        for reader in list(self.readers.values()):
            reader.conn.kick()

    def _signal_ready(self) -> None:
        self.ready_changed.set()
        self.ready_changed = trio.Event()

    # --- on demand ---

    @property
    def demanded(self) -> bool:
        """Whether anyone wants the on-demand publisher (visible readers or waiting ones)."""
        return self.demand_waiters > 0 or any(not r.hidden for r in self.readers.values())

    async def wait_ready_on_demand(self, hidden: bool, query: str = "") -> None:
        """Start runOnDemand (or the on-demand source) if needed and wait for a publisher
        (404 after the timeout)."""
        if self.ready:
            return
        cmd = self.conf["runOnDemand"]
        on_demand_source = self.has_static_source and self.conf["sourceOnDemand"]
        if not (cmd or on_demand_source) or hidden:
            raise RtspError(404, "Not Found")
        self.demand_waiters += 1
        try:
            self._cancel_close_timer()
            if on_demand_source:
                self._start_source()
                timeout = go_duration(self.conf["sourceOnDemandStartTimeout"])
            else:
                if "demand" not in self.hooks:
                    self._demand_query = quote_plus(query, safe="")
                self.start_hook(
                    "demand",
                    cmd,
                    restart=self.conf["runOnDemandRestart"],
                    MTX_QUERY=self._demand_query,
                )
                timeout = go_duration(self.conf["runOnDemandStartTimeout"])
            with trio.move_on_after(timeout) as waited:
                while not self.ready:
                    await self.ready_changed.wait()
        finally:
            self.demand_waiters -= 1
            self._maybe_schedule_close()
        if not self.ready:
            if waited.cancelled_caught and not on_demand_source:
                self._demand_timed_out()
            raise RtspError(404, "Not Found")

    def _demand_timed_out(self) -> None:
        """runOnDemandStartTimeout passed without a publisher: MediaMTX stops the command
        at once (not runOnDemandCloseAfter later) and runs runOnUnDemand."""
        if self.demand_waiters:
            return  # a later reader still waits (MediaMTX fails them all together)
        log.info("on_demand_timed_out", path=self.name)
        self._cancel_close_timer()
        self.stop_hook("demand")
        self.fire_hook(self.conf["runOnUnDemand"], MTX_QUERY=self._demand_query)

    def _cancel_close_timer(self) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None

    def _maybe_schedule_close(self) -> None:
        source = self._source is not None and self.conf["sourceOnDemand"]
        if not ("demand" in self.hooks or source) or self.demanded or self._close_timer is not None:
            return
        scope = trio.CancelScope()
        self._close_timer = scope
        key = "sourceOnDemandCloseAfter" if source else "runOnDemandCloseAfter"
        after = go_duration(self.conf[key])

        async def close_later() -> None:
            with scope:
                await trio.sleep(after)
                self._close_timer = None
                log.info("on_demand_close", path=self.name)
                if source:
                    self._stop_source()
                    return
                # MediaMTX stops the command only: a publisher it started goes with it,
                # one that also publishes for someone else stays.
                self.stop_hook("demand")
                self.fire_hook(self.conf["runOnUnDemand"], MTX_QUERY=self._demand_query)

        self.server.nursery.start_soon(close_later)

    def add_reader(self, reader: Reader) -> None:
        """A reader started playing."""
        self.readers[reader.id] = reader
        if reader.hidden:
            tap = self._taps.pop(reader.tap_id, None)
            if tap is not None:
                reader.take(tap)
        if not reader.hidden:
            self._cancel_close_timer()
            env = {"MTX_READER_TYPE": "rtspSession", "MTX_READER_ID": reader.id}
            self.start_hook(
                f"read:{reader.id}",
                self.conf["runOnRead"],
                restart=self.conf["runOnReadRestart"],
                **env,
            )

    def remove_reader(self, reader: Reader) -> None:
        """A reader left."""
        if self.readers.pop(reader.id, None) is None:
            return
        reader.send.close()
        if not reader.hidden:
            self.stop_hook(f"read:{reader.id}")
            env = {"MTX_READER_TYPE": "rtspSession", "MTX_READER_ID": reader.id}
            self.fire_hook(self.conf["runOnUnread"], **env)
            self._maybe_schedule_close()

    # --- static source ---

    @property
    def has_static_source(self) -> bool:
        """Whether `source` is a URL the path pulls (rather than `publisher`/`redirect`)."""
        return self.conf["source"] not in ("publisher", "redirect")

    def _start_source(self) -> None:
        if self._source is not None:
            return
        scope = trio.CancelScope()
        self._source = scope
        self.server.nursery.start_soon(self._pull, scope)

    def _stop_source(self) -> None:
        if self._source is not None:
            self._source.cancel()
            self._source = None

    async def _pull(self, scope: trio.CancelScope) -> None:
        """Pull the source, again SOURCE_RETRY_S after each failure, until stopped."""
        with scope:
            while True:
                source = RtspSource(self, self.conf["source"])
                try:
                    await source.run()
                except SourceError as exc:
                    log.warning("source_error", path=self.name, error=str(exc))
                finally:
                    self.remove_publisher(source)
                await trio.sleep(SOURCE_RETRY_S)

    # --- recorder ---

    def _start_recorder(self) -> None:
        if self._recorder is not None:
            return
        self._tap = RecorderTap(self.tracks)  # now, not when the recorder's task gets to run
        scope = trio.CancelScope()
        self._recorder = scope
        self.server.nursery.start_soon(self._record, scope)

    def _stop_recorder(self) -> None:
        self._tap = None
        if self._recorder is not None:
            self._recorder.cancel()
            self._recorder = None

    async def _record(self, scope: trio.CancelScope) -> None:
        self.recorder_stopped = trio.Event()
        try:
            with scope:
                while True:
                    await self._record_segment()
        finally:
            self.recorder_stopped.set()

    async def _record_segment(self) -> None:
        """Record one segment: ffmpeg reads the path over RTSP and writes fMP4 (or MPEG-TS)
        to its stdout, which the stand-in writes into the segment file.

        The segment starts at its tap's first sample (the first key frame after the tap was
        armed), whose packets ffmpeg's session takes over when it plays. The file is created
        under the MediaMTX name of that sample's time once ffmpeg has written its header, so
        it is never empty (MediaMTX writes the init when it creates a segment).
        """
        conf = self.conf
        tap, self._tap = self._tap or RecorderTap(self.tracks), None
        self._taps[tap.id] = tap
        fmt = _absolute(record_path_format(conf, self.name))
        segment_s = go_duration(conf["recordSegmentDuration"])
        part_us = max(int(go_duration(conf["recordPartDuration"]) * 1e6), 1000)
        url = f"rtsp://127.0.0.1:{self.server.ports.rtsp}/{self.name}"
        if conf["recordFormat"] == "fmp4":
            out = ["-f", "mp4", "-movflags", "+frag_keyframe+empty_moov+default_base_moof"]
            out += ["-frag_duration", str(part_us)]
        else:
            out = ["-f", "mpegts"]
        argv = [
            self.server.ffmpeg,
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-rtsp_transport",
            "tcp",
            "-user_agent",
            tap.user_agent,
            # Codec parameters are in the SDP and the first held packets: probing more
            # only delays the segment (0 would mean ffmpeg's default of 5 s).
            "-probesize",
            "32",
            "-analyzeduration",
            "1",
            "-i",
            url,
            "-map",
            "0",
            "-c",
            "copy",
            "-t",
            f"{segment_s:.3f}",
            *out,
            "-flush_packets",
            "1",  # the header reaches the file at once, not with the first full buffer
            "pipe:1",
        ]
        proc = await trio.lowlevel.open_process(
            argv, start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
        )
        assert proc.stdout is not None
        began = time.monotonic()
        segment = SegmentFile()

        async def create() -> None:
            if segment.path is not None or tap.first_sample_at is None or not segment.pending:
                return
            file = encode_segment_path(fmt, tap.first_sample_at)
            await segment.create(FsPath(file))
            log.info("segment_started", path=self.name, file=file, pid=proc.pid)
            self.fire_hook(conf["runOnRecordSegmentCreate"], MTX_SEGMENT_PATH=file)

        try:
            async with trio.open_nursery() as nursery:

                async def create_when_written() -> None:
                    await segment.has_data.wait()
                    await tap.first_sample.wait()
                    await create()

                nursery.start_soon(create_when_written)
                await segment.copy(proc.stdout, until_failed=True)
                nursery.cancel_scope.cancel()  # ffmpeg ended before a first sample
            if segment.failed is not None:
                # As MediaMTX: the write error ends the segment; the recorder starts again.
                log.warning("recorder_error", path=self.name, error=str(segment.failed))
            else:
                await proc.wait()
        finally:
            with trio.CancelScope(shield=True):
                tap.close()
                if proc.returncode is None:
                    # The recorder's RTSP session ends once it has sent what it holds
                    # (`tap.close`): ffmpeg finishes the file, as MediaMTX writes every
                    # sample it received.
                    with trio.move_on_after(STOP_GRACE_S):
                        await segment.copy(proc.stdout)
                        await proc.wait()
                await terminate(proc)
                await proc.stdout.aclose()
                await create()  # when stopped while the first sample was being written
                await segment.flush()
                self._taps.pop(tap.id, None)  # ffmpeg never played
                # From the segment's first sample (held before ffmpeg ran, or its first).
                duration = time.monotonic() - (tap.first_sample_mono or began)
                file = await segment.close()
                if file is not None:
                    log.info("segment_complete", path=self.name, file=str(file), s=duration)
                    self.fire_hook(
                        conf["runOnRecordSegmentComplete"],
                        MTX_SEGMENT_PATH=str(file),
                        MTX_SEGMENT_DURATION=f"{duration:g}",
                    )
        if proc.returncode not in (0, 255) or segment.failed is not None:
            await trio.sleep(1)  # the publisher is gone or the disk is full: do not spin


def _absolute(path: str) -> str:
    """`path` made absolute against the working directory (as MediaMTX resolves it)."""
    return os.path.abspath(path)


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
        self.started = _now_iso()
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
