"""The stand-in's paths: one `PathState` per MediaMTX path, as MediaMTX keeps it.

Owns: a path's publisher and readers, its on-demand wait and close timer, the hooks MediaMTX
starts and stops for a path (`runOnReady`, `runOnDemand` and the rest), pulling a static
source, and the fMP4 recorder (ffmpeg reading the path and writing segments named by
`recordPath`). The server (`_server.StandIn`) creates and drops paths and answers the API.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import time
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote_plus

import structlog
import trio

from camsvc.streaming.standin._conf import (
    encode_segment_path,
    go_duration,
    go_rfc3339nano,
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

if TYPE_CHECKING:
    from camsvc.streaming.standin._server import StandIn

__all__ = ["PathState", "now_iso"]

log = structlog.get_logger("camsvc.standin")

# MediaMTX waits this long before pulling a static source again after it failed or ended.
SOURCE_RETRY_S: Final = 5.0


def now_iso() -> str:
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
        self.ready_time = now_iso()
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
