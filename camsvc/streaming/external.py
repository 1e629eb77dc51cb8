"""External RTSP streams (API.md §8.9): the ones added by clients and the ones discovered.

Owns: the registry of external streams (added ones persisted in the state database, key
`external_streams`; the discovery interval under `discovery_interval`), the candidate list
(configured hosts, ports and paths; `network_ranges` only with `allow_network_scan`),
scans that DESCRIBE every candidate within `scan_timeout`, the periodic scan, and one
MediaMTX path `ext_<name>` per added stream whose `source` is the stream's URL (pulled on
demand). Must not touch: local cameras, publishers, recording state (a recording on a
stream being removed is ended through the `end_recording` callback).
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final, Literal
from urllib.parse import urlsplit, urlunsplit

import msgspec
import structlog
import trio

from camsvc.config import ExternalDiscoveryConfig, RecordingConfig
from camsvc.errors import InvalidState, NotFound, Unsupported
from camsvc.media.catalog import Catalog
from camsvc.streaming.mediamtx import (
    MediaMTXClient,
    MediaMTXError,
    MediaMTXNotFound,
    PathAlreadyExists,
    PathConfPatch,
    to_camsvc_error,
)
from camsvc.streaming.paths import PathHooks, wanted_conf
from camsvc.streaming.rtsp_probe import ProbeResult, probe
from camsvc.timefmt import utc_timestamp

__all__ = [
    "EXTERNAL_NAME",
    "Candidate",
    "DiscoveryOptions",
    "DiscoveryResult",
    "ExternalStream",
    "ExternalStreamList",
    "ExternalStreams",
    "IntervalUpdated",
    "StreamAdded",
    "StreamRemoved",
    "StreamType",
    "candidates",
    "external_conf",
    "redact",
]

log = structlog.get_logger("camsvc.streaming.external")

# The MediaMTX path names camsvc owns for external streams (`ext_<stream_name>`).
EXTERNAL_NAME: Final = re.compile(r"^ext_[A-Za-z0-9_-]{1,64}$")
# discover_external_streams reuses a scan of the same groups younger than this (API.md §8.9).
REUSE_S: Final = 30.0
# Probes in flight at once during a scan.
MAX_PARALLEL_PROBES: Final = 32
# A network range with more hosts than this is not swept (reported in `errors`).
MAX_RANGE_HOSTS: Final = 1024
# At most this many per-candidate failures are listed in a scan's `errors`.
MAX_ERRORS: Final = 50
SETTING_STREAMS: Final = "external_streams"
SETTING_INTERVAL: Final = "discovery_interval"

StreamType = Literal["generic_rtsp", "skydio_stanag4609"]


class ExternalStream(msgspec.Struct, frozen=True):
    """An ExternalStream object (API.md §6)."""

    url: str
    type: StreamType
    name: str
    status: Literal["DISCOVERED", "ERROR"]
    discovered_at: str
    last_seen: str
    capabilities: dict[str, str]
    device: str | None = None


class Candidate(msgspec.Struct, frozen=True):
    """A URL discovery probes, with the type and name a stream found there gets."""

    url: str
    type: StreamType
    name: str


class DiscoveryOptions(msgspec.Struct, frozen=True):
    """The four booleans of discover_external_streams, as used."""

    skydio_enabled: bool = True
    generic_enabled: bool = False
    force_rescan: bool = False
    include_offline: bool = False


class DiscoveryResult(msgspec.Struct, frozen=True):
    """The result of discover_external_streams."""

    discovered_streams: list[ExternalStream]
    skydio_streams: list[ExternalStream]
    generic_streams: list[ExternalStream]
    scan_timestamp: str
    total_found: int
    discovery_options: DiscoveryOptions
    scan_duration: str
    errors: list[str]


class ExternalStreamList(msgspec.Struct, frozen=True):
    """The result of get_external_streams."""

    external_streams: list[ExternalStream]
    skydio_streams: list[ExternalStream]
    generic_streams: list[ExternalStream]
    total_count: int
    timestamp: str


class StreamAdded(msgspec.Struct, frozen=True):
    """The result of add_external_stream."""

    stream_url: str
    stream_name: str
    stream_type: StreamType
    device: str
    status: Literal["ADDED"]
    timestamp: str


class StreamRemoved(msgspec.Struct, frozen=True):
    """The result of remove_external_stream."""

    stream_url: str
    status: Literal["REMOVED"]
    timestamp: str


class IntervalUpdated(msgspec.Struct, frozen=True):
    """The result of set_discovery_interval."""

    scan_interval: int
    status: Literal["UPDATED"]
    message: str
    timestamp: str


class _Scan(msgspec.Struct, frozen=True):
    """A finished scan: which groups, what answered, and when."""

    skydio: bool
    generic: bool
    found: list[str]
    errors: list[str]
    timestamp: str
    duration_s: float
    at: float  # monotonic


# --- candidates (pure) ------------------------------------------------------------------


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")[:64] or "stream"


def _url(host: str, port: int, path: str) -> str:
    netloc = f"[{host}]" if ":" in host else host
    return f"rtsp://{netloc}:{port}/{path.lstrip('/')}"


def _hosts(known: list[str], ranges: list[str], sweep: bool, errors: list[str]) -> list[str]:
    hosts = list(dict.fromkeys(known))
    if not sweep:
        return hosts
    for text in ranges:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            errors.append(f"{text}: not a network range")
            continue
        if net.num_addresses > MAX_RANGE_HOSTS + 2:
            errors.append(f"{text}: more than {MAX_RANGE_HOSTS} hosts, not swept")
            continue
        for addr in net.hosts() if net.num_addresses > 1 else [net.network_address]:
            if str(addr) not in hosts:
                hosts.append(str(addr))
    return hosts


def candidates(
    cfg: ExternalDiscoveryConfig, *, skydio: bool, generic: bool
) -> tuple[list[Candidate], list[str]]:
    """Every URL a scan of the given groups probes, and the configuration's problems."""
    errors: list[str] = []
    out: dict[str, Candidate] = {}
    if skydio and cfg.skydio.enabled:
        sky = cfg.skydio
        for host in _hosts(sky.known_hosts, sky.network_ranges, cfg.allow_network_scan, errors):
            for kind, port, path in (
                ("eo", sky.eo_port, sky.eo_stream_path),
                ("ir", sky.ir_port, sky.ir_stream_path),
            ):
                url = _url(host, port, path)
                out.setdefault(
                    url, Candidate(url, "skydio_stanag4609", _safe_name(f"skydio_{kind}_{host}"))
                )
    if generic and cfg.generic.enabled:
        gen = cfg.generic
        for host in _hosts(gen.known_hosts, gen.network_ranges, cfg.allow_network_scan, errors):
            for port in gen.ports:
                for path in gen.stream_paths:
                    url = _url(host, port, path)
                    name = _safe_name(f"{host}_{port}_{path}")
                    out.setdefault(url, Candidate(url, "generic_rtsp", name))
    return list(out.values()), errors


def redact(url: str) -> str:
    """`url` with its password replaced by `***`, for logs and for viewers."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def external_conf(
    url: str, recording: RecordingConfig, device: str, hooks: PathHooks | None = None
) -> PathConfPatch:
    """The MediaMTX path of an added stream: pulled from `url` while someone reads it, with
    a camera path's recording settings and segment hook (MediaMTX allows runOnDemand only
    on `publisher` paths, so none)."""
    return msgspec.structs.replace(
        wanted_conf(recording, record=False, device=device, hooks=hooks),
        source=url,
        source_on_demand=True,
        run_on_demand="",
    )


def _stored(catalog: Catalog, key: str, type_: Any, default: Any) -> Any:
    """A setting of the state database, or `default` if absent or unreadable (logged)."""
    raw = catalog.setting(key)
    if raw is None:
        return default
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.DecodeError as exc:
        log.warning("external_setting_unreadable", key=key, error=str(exc))
        return default


# --- the service ------------------------------------------------------------------------


class ExternalStreams:
    """The external streams of API.md §8.9 and their MediaMTX paths."""

    def __init__(
        self,
        cfg: ExternalDiscoveryConfig,
        recording: RecordingConfig,
        client: MediaMTXClient,
        catalog: Catalog,
        *,
        resync_s: float,
        end_recording: Callable[[str], Awaitable[None]],
        hooks: PathHooks | None = None,
        prober: Callable[[str, float], Awaitable[ProbeResult]] = probe,
    ) -> None:
        self.cfg = cfg
        self.recording = recording
        self.client = client
        self.catalog = catalog
        self.resync_s = resync_s
        self._end_recording = end_recording
        self.hooks = hooks
        self._probe = prober
        self._streams: dict[str, ExternalStream] = {}  # by URL: added and discovered
        self._last_scan: _Scan | None = None
        self._scan_lock = trio.Lock()
        self._paths_lock = trio.Lock()
        self._interval_changed = trio.Event()
        self.scans = 0
        self.scan_interval = _stored(catalog, SETTING_INTERVAL, int, cfg.scan_interval)
        for stream in _stored(catalog, SETTING_STREAMS, list[ExternalStream], []):
            self._streams[stream.url] = stream

    @property
    def enabled(self) -> bool:
        """Whether `external_discovery.enabled` is on."""
        return self.cfg.enabled

    def _require_enabled(self) -> None:
        if not self.enabled:
            raise Unsupported("feature_disabled", "external_discovery.enabled is false")

    # -- queries -----------------------------------------------------------------------

    def added(self) -> list[ExternalStream]:
        """The added streams, by device id."""
        return sorted(
            (s for s in self._streams.values() if s.device is not None),
            key=lambda s: s.device or "",
        )

    def by_device(self, device: str) -> ExternalStream | None:
        """The added stream whose device id is `device`."""
        for stream in self._streams.values():
            if stream.device == device:
                return stream
        return None

    def has(self, device: str) -> bool:
        """Whether `device` is an added external stream (and the feature is on)."""
        return self.enabled and self.by_device(device) is not None

    def list(self, *, passwords: bool = True) -> ExternalStreamList:
        """get_external_streams: added and discovered (empty while the feature is off);
        without `passwords`, each URL's password is `***`."""
        streams = sorted(self._streams.values(), key=lambda s: s.url) if self.enabled else []
        if not passwords:
            streams = [msgspec.structs.replace(s, url=redact(s.url)) for s in streams]
        return ExternalStreamList(
            external_streams=streams,
            skydio_streams=[s for s in streams if s.type == "skydio_stanag4609"],
            generic_streams=[s for s in streams if s.type == "generic_rtsp"],
            total_count=len(streams),
            timestamp=utc_timestamp(),
        )

    def _persist(self) -> None:
        self.catalog.set_setting(SETTING_STREAMS, msgspec.json.encode(self.added()))

    # -- probing -----------------------------------------------------------------------

    def _record_probe(self, cand: Candidate, result: ProbeResult, now: str) -> ExternalStream:
        """Fold a probe result into the registry (a new stream only if it answered)."""
        known = self._streams.get(cand.url)
        if known is None:
            stream = ExternalStream(
                url=cand.url,
                type=cand.type,
                name=cand.name,
                status="DISCOVERED" if result.found else "ERROR",
                discovered_at=now,
                last_seen=now,
                capabilities=result.capabilities,
            )
        elif result.found:
            stream = msgspec.structs.replace(
                known, status="DISCOVERED", last_seen=now, capabilities=result.capabilities
            )
        else:
            stream = msgspec.structs.replace(known, status="ERROR")
        if known is not None or result.found:
            self._streams[cand.url] = stream
        return stream

    async def _probe_all(self, cands: list[Candidate], deadline_s: float) -> list[ProbeResult]:
        """Probe every candidate, at most MAX_PARALLEL_PROBES at once, within `deadline_s`."""
        results: dict[str, ProbeResult] = {}
        limit = trio.CapacityLimiter(MAX_PARALLEL_PROBES)

        async def one(cand: Candidate) -> None:
            async with limit:
                results[cand.url] = await self._probe(cand.url, deadline_s)

        with trio.move_on_after(deadline_s):
            async with trio.open_nursery() as nursery:
                for cand in cands:
                    nursery.start_soon(one, cand)
        timeout = f"no reply within {deadline_s:g} s"
        return [results.get(c.url) or ProbeResult(c.url, "timeout", error=timeout) for c in cands]

    # -- discovery ---------------------------------------------------------------------

    async def discover(self, opts: DiscoveryOptions) -> DiscoveryResult:
        """discover_external_streams: scan (or reuse a scan under 30 s old) and report."""
        self._require_enabled()
        skydio = opts.skydio_enabled and self.cfg.skydio.enabled
        generic = opts.generic_enabled and self.cfg.generic.enabled
        async with self._scan_lock:
            scan = self._last_scan
            if (
                opts.force_rescan
                or scan is None
                or (scan.skydio, scan.generic) != (skydio, generic)
                or trio.current_time() - scan.at >= REUSE_S
            ):
                scan = await self._scan(skydio, generic)
        return self._report(scan, opts, skydio, generic)

    async def _scan(self, skydio: bool, generic: bool) -> _Scan:
        """Probe the candidates of the groups (and every added stream) once."""
        began = trio.current_time()
        timestamp = utc_timestamp()
        cands, errors = candidates(self.cfg, skydio=skydio, generic=generic)
        targets = {c.url: c for c in cands}
        for stream in self.added():
            targets.setdefault(stream.url, Candidate(stream.url, stream.type, stream.name))
        results = await self._probe_all(list(targets.values()), float(self.cfg.scan_timeout))
        now = utc_timestamp()
        found: list[str] = []
        failures: list[str] = []
        for result in results:
            self._record_probe(targets[result.url], result, now)
            if result.found:
                found.append(result.url)
            elif result.status != "not_found" or result.url not in {c.url for c in cands}:
                failures.append(f"{result.url}: {result.error or result.status}")
        if len(failures) > MAX_ERRORS:
            failures = [*failures[:MAX_ERRORS], f"... {len(failures) - MAX_ERRORS} more"]
        self._persist()
        self.scans += 1
        duration = trio.current_time() - began
        log.info(
            "external_scan",
            candidates=len(cands),
            found=len(found),
            duration_s=round(duration, 3),
        )
        scan = _Scan(skydio, generic, found, errors + failures, timestamp, duration, began)
        self._last_scan = scan
        return scan

    def _report(
        self, scan: _Scan, opts: DiscoveryOptions, skydio: bool, generic: bool
    ) -> DiscoveryResult:
        types = {t for t, on in (("skydio_stanag4609", skydio), ("generic_rtsp", generic)) if on}
        listed = [self._streams[u] for u in scan.found if u in self._streams]
        if opts.include_offline:
            listed += [
                s
                for s in self._streams.values()
                if s.status == "ERROR" and s.type in types and s.url not in scan.found
            ]
        listed.sort(key=lambda s: s.url)
        return DiscoveryResult(
            discovered_streams=listed,
            skydio_streams=[s for s in listed if s.type == "skydio_stanag4609"],
            generic_streams=[s for s in listed if s.type == "generic_rtsp"],
            scan_timestamp=scan.timestamp,
            total_found=len(scan.found),
            discovery_options=opts,
            scan_duration=f"{scan.duration_s:.1f}s",
            errors=scan.errors,
        )

    def set_interval(self, seconds: int) -> IntervalUpdated:
        """set_discovery_interval: persisted; 0 = scan on request only."""
        self._require_enabled()
        self.scan_interval = seconds
        self.catalog.set_setting(SETTING_INTERVAL, msgspec.json.encode(seconds))
        self._interval_changed.set()
        self._interval_changed = trio.Event()
        log.info("discovery_interval", scan_interval=seconds)
        return IntervalUpdated(seconds, "UPDATED", "Discovery interval updated", utc_timestamp())

    # -- add / remove ------------------------------------------------------------------

    async def add(self, url: str, name: str, stream_type: StreamType) -> StreamAdded:
        """add_external_stream: register it, create its MediaMTX path, probe it once."""
        self._require_enabled()
        device = f"ext_{name}"
        async with self._paths_lock:
            for stream in self.added():
                if stream.url == url or stream.device == device:
                    raise InvalidState(
                        "already_exists", f"{stream.device} already has {stream.url}"
                    )
            conf = external_conf(url, self.recording, device, self.hooks)
            try:
                try:
                    await self.client.config_path_add(device, conf)
                except PathAlreadyExists:
                    # A path of ours left over from before (removed while MediaMTX was away).
                    await self.client.config_path_replace(device, conf)
            except MediaMTXError as exc:
                raise to_camsvc_error(exc) from exc
            now = utc_timestamp()
            known = self._streams.get(url)
            self._streams[url] = ExternalStream(
                url=url,
                type=stream_type,
                name=name,
                status=known.status if known is not None else "ERROR",
                discovered_at=known.discovered_at if known is not None else now,
                last_seen=known.last_seen if known is not None else now,
                capabilities=known.capabilities if known is not None else {},
                device=device,
            )
            self._persist()
        log.info("external_stream_added", device=device, url=redact(url))
        # One DESCRIBE so the listing says at once whether it answers (and what it carries).
        result = await self._probe(url, float(self.cfg.scan_timeout))
        if self._streams.get(url) is not None:
            self._record_probe(Candidate(url, stream_type, name), result, utc_timestamp())
            self._persist()
        return StreamAdded(url, name, stream_type, device, "ADDED", now)

    async def remove(self, url: str) -> StreamRemoved:
        """remove_external_stream: end its recording, delete its path, forget it."""
        self._require_enabled()
        stream = self._streams.get(url)
        if stream is None or stream.device is None:
            raise NotFound("stream", f"no external stream {url} was added")
        device = stream.device
        try:
            await self.client.info()
        except MediaMTXError as exc:
            raise to_camsvc_error(exc) from exc
        await self._end_recording(device)
        async with self._paths_lock:
            try:
                with contextlib.suppress(MediaMTXNotFound):
                    await self.client.config_path_delete(device)
            except MediaMTXError as exc:
                raise to_camsvc_error(exc) from exc
            current = self._streams.get(url)
            if current is not None and current.device == device:
                if self._is_candidate(url):
                    self._streams[url] = msgspec.structs.replace(current, device=None)
                else:
                    del self._streams[url]
            self._persist()
        log.info("external_stream_removed", device=device, url=redact(url))
        return StreamRemoved(url, "REMOVED", utc_timestamp())

    def _is_candidate(self, url: str) -> bool:
        """Whether discovery probes `url` (it stays listed as discovered once removed)."""
        cands, _ = candidates(self.cfg, skydio=True, generic=True)
        return any(c.url == url for c in cands)

    # -- background --------------------------------------------------------------------

    async def reconcile_paths(self) -> None:
        """Add the missing paths of added streams, delete `ext_` paths of streams gone."""
        async with self._paths_lock:
            observed = {c.name for c in await self.client.config_paths_all()}
            wanted = {s.device: s for s in self.added() if s.device is not None}
            for device, stream in sorted(wanted.items()):
                if device not in observed:
                    with contextlib.suppress(PathAlreadyExists):
                        await self.client.config_path_add(
                            device, external_conf(stream.url, self.recording, device, self.hooks)
                        )
                    log.info("mediamtx_path", action="AddPath", path=device)
            for name in sorted(observed - set(wanted)):
                if EXTERNAL_NAME.match(name):
                    with contextlib.suppress(MediaMTXNotFound):
                        await self.client.config_path_delete(name)
                    log.info("mediamtx_path", action="DeletePath", path=name)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the paths in line and scan every `scan_interval` s, until cancelled."""
        task_status.started()
        if not self.enabled:
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._keep_paths)
            nursery.start_soon(self._scan_periodically)

    async def _keep_paths(self) -> None:
        while True:
            try:
                await self.reconcile_paths()
            except MediaMTXError as exc:
                log.warning("external_paths_failed", error=str(exc))
            await trio.sleep(self.resync_s)

    async def _scan_periodically(self) -> None:
        while True:
            changed = self._interval_changed
            interval = self.scan_interval
            with trio.move_on_after(interval if interval > 0 else math.inf):
                await changed.wait()
            if changed.is_set():
                continue  # a new interval: wait that long from now
            async with self._scan_lock:
                await self._scan(self.cfg.skydio.enabled, self.cfg.generic.enabled)
