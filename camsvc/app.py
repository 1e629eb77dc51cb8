"""The composition root: reads nothing itself, builds every service from a Config and runs them.

Nothing else constructs services. `App.run` owns the root nursery: the main listener
(HTTP + `/ws`), the health listener, and the graceful shutdown on SIGINT/SIGTERM.
"""

from __future__ import annotations

import functools
import signal
from pathlib import Path
from typing import Any, Literal

import msgspec
import structlog
import trio

from camsvc import __version__, heap
from camsvc.api.cameras import CamerasApi
from camsvc.api.events import EventsApi
from camsvc.api.external import ExternalApi
from camsvc.api.media import MediaApi
from camsvc.api.metrics import MetricsApi
from camsvc.api.retention import RetentionApi
from camsvc.api.session import SessionApi
from camsvc.api.streams import StreamsApi
from camsvc.api.system import SystemApi
from camsvc.auth.keys import KeyStore
from camsvc.auth.session import Authenticator
from camsvc.cameras.registry import CameraEntry, CameraRegistry
from camsvc.cameras.supervisor import CameraSupervisor
from camsvc.config import Config
from camsvc.events import EventBus
from camsvc.media.catalog import Catalog
from camsvc.media.library import MediaLibrary
from camsvc.media.retention import Retention
from camsvc.media.snapshots import Snapshots, remove_stale_temporaries
from camsvc.media.storage import StorageWatch
from camsvc.observability.alerts import AlertService
from camsvc.observability.health import ComponentHealth, HealthMonitor
from camsvc.observability.metrics import Metrics
from camsvc.observability.resources import ResourceSampler
from camsvc.rpc.dispatch import Dispatcher
from camsvc.rpc.registry import Registry
from camsvc.server.files import add_file_routes
from camsvc.server.http import Router, serve_http_connection
from camsvc.server.routes import add_dashboard_routes, add_health_routes, add_metrics_route
from camsvc.server.websocket import ClientConnection, ConnectionTable
from camsvc.streaming.external import ExternalStreams
from camsvc.streaming.external_live import ExternalLive
from camsvc.streaming.hook_protocol import default_socket_path, hook_program
from camsvc.streaming.hooks import HookServer
from camsvc.streaming.mediamtx import MediaMTXClient, PathCache
from camsvc.streaming.paths import PathHooks, PathManager
from camsvc.streaming.publisher import Publishers
from camsvc.streaming.recordings import RecordingService
from camsvc.streaming.streams import StreamService
from camsvc.streaming.supervisor import MediaMTXSupervisor
from camsvc.streaming.urls import Streams
from camsvc.streaming.watchdog import MediaMTXWatchdog

__all__ = ["App", "BoundPorts"]

log = structlog.get_logger("camsvc.app")


class ShutdownEvent(msgspec.Struct, frozen=True):
    """Data of the `system.shutdown` topic."""

    reason: Literal["signal", "requested"]


class CameraStatusUpdate(msgspec.Struct, frozen=True):
    """Params of the `camera_status_update` notification."""

    device: str
    status: str
    name: str
    resolution: str
    fps: int
    streams: Streams


class BoundPorts(msgspec.Struct, frozen=True):
    """The ports the listeners actually bound (useful with port 0)."""

    main: int
    health: int | None


class App:
    """Every service of one camsvc process, wired together."""

    def __init__(self, config: Config, *, demo: bool = False) -> None:
        self.config = config
        sec = config.security
        self.keys = KeyStore(sec.api_keys_path)
        self.authenticator = Authenticator(
            sec.jwt_secret_key, self.keys, auth_disabled=sec.auth_disabled
        )
        self.health = HealthMonitor()
        self.metrics = Metrics()
        self.sampler = ResourceSampler(lambda: config.recording.path)
        self.storage = StorageWatch(
            [Path(config.recording.path), Path(config.snapshots.path)],
            config.storage.warn_percent,
            config.storage.block_percent,
        )
        self.bus = EventBus(fanout=ClientConnection.fan_out)
        self.cameras = CameraRegistry(
            config.camera,
            self.bus,
            warm_keepalive_s=config.snapshots.warm_keepalive_s,
            status_update=self._camera_status_update,
        )
        self.catalog = Catalog(config.storage.db_path, repair=True)
        self.library = MediaLibrary(
            self.catalog,
            {"snapshot": Path(config.snapshots.path), "recording": Path(config.recording.path)},
            self.storage,
            recording_in_use=lambda name: self.recordings.in_use(name),
        )
        self.retention = Retention(config.retention_policy, self.catalog, self.library)
        self.snapshots = Snapshots(
            config.snapshots,
            self.cameras,
            self.catalog,
            self.storage,
            self.bus,
            on_snapshot=self.metrics.observe_snapshot,
            external=lambda device: self.external.has(device),
            grab_external=lambda *args: self.external_live.grab_jpeg(*args),
        )
        self.registry = Registry()
        SessionApi(self.authenticator, sec, self.registry).register(self.registry)
        SystemApi(config, self.health, self.registry).register(self.registry)
        EventsApi(self.bus).register(self.registry)
        self.cameras_api = CamerasApi(
            self.cameras,
            config.mediamtx,
            self.health,
            recording=lambda device: self.recordings.is_recording(device),
        )
        self.cameras_api.register(self.registry)
        MediaApi(self.snapshots, self.library, config.recording.default_page_size).register(
            self.registry
        )
        RetentionApi(self.retention).register(self.registry)
        self.dispatcher = Dispatcher(
            self.registry,
            self.authenticator,
            max_batch=config.server.max_batch_size,
            metadata=config.server.response_metadata,
            observer=self.metrics.observe_request,
        )
        self.connections = ConnectionTable(
            config.server,
            self.dispatcher,
            self.authenticator,
            self.bus,
            sec.rate_limit_rps,
            sec.rate_limit_burst,
            sec.allowed_origins,
            on_drop=self.metrics.notification_dropped,
        )
        self.metrics.on_render(self._refresh_gauges)
        self._listening = False
        self.health.register("websocket_server", self._websocket_health)
        self.health.register("camera_monitor", self.cameras.health)
        self.health.register("storage", self.storage.health)
        mtx = config.mediamtx
        self.mediamtx = MediaMTXClient.from_config(mtx)
        self.mediamtx_supervisor = MediaMTXSupervisor(
            mtx, config.recording, self.mediamtx, standin_fallback=demo
        )
        self.mediamtx_paths = PathCache(self.mediamtx, mtx.health_check_interval)
        self.paths = PathManager(
            self.mediamtx,
            self.mediamtx_paths,
            self.cameras,
            config.recording,
            resync_s=mtx.health_check_interval,
            hooks=self._path_hooks(),
        )
        self.publishers = Publishers(
            self._camera_supervisor, lambda device: f"rtsp://127.0.0.1:{mtx.rtsp_port}/{device}"
        )
        self.recordings = RecordingService(
            config.recording,
            self.cameras,
            self.publishers,
            self.mediamtx,
            self.paths,
            self.storage,
            self.catalog,
            self.bus,
            external=lambda device: self.external.has(device),
            external_streaming=lambda device: self.external_live.streaming(device),
            hooks_listening=lambda: self.hook_server is not None and self.hook_server.listening,
        )
        self.hook_server = (
            HookServer(self._control_socket(), self.cameras, self.publishers, self.recordings)
            if mtx.hooks
            else None
        )
        self.external = ExternalStreams(
            config.external_discovery,
            config.recording,
            self.mediamtx,
            self.catalog,
            resync_s=mtx.health_check_interval,
            end_recording=self.recordings.end_for_removal,
            hooks=self._path_hooks(),
        )
        ExternalApi(self.external).register(self.registry)
        self.streams = StreamService(
            self.cameras,
            self.publishers,
            self.mediamtx,
            self.mediamtx_paths,
            mtx,
            self.bus,
            recording=self.recordings.is_recording,
        )
        self.external_live = ExternalLive(
            self.external,
            self.mediamtx,
            self.mediamtx_paths,
            mtx,
            recording=self.recordings.is_recording,
        )
        StreamsApi(self.streams, self.recordings, self.external_live).register(self.registry)
        self.mediamtx_watchdog = MediaMTXWatchdog(
            self.mediamtx_paths, self.paths, self.publishers, self.recordings
        )
        self.health.register("mediamtx", self.mediamtx_watchdog.health)
        MetricsApi(
            self.metrics,
            self.sampler,
            self.cameras,
            self.catalog,
            lambda: len(self.connections),
            self.health.started_at,
            self.mediamtx_paths,
            self.recordings,
        ).register(self.registry)
        self.alerts = AlertService(
            config.alerts, self.metrics, self.sampler, self.health, self.bus.publish
        )
        self._shutdown = trio.Event()
        self._shutdown_reason: Literal["signal", "requested"] = "requested"

    def _control_socket(self) -> str:
        mtx = self.config.mediamtx
        return mtx.control_socket or default_socket_path(self.config.storage.db_path)

    def _path_hooks(self) -> PathHooks | None:
        """The hook commands of camera paths: this interpreter runs hook_client.py."""
        mtx = self.config.mediamtx
        if not mtx.hooks:
            return None
        return PathHooks(
            program=hook_program(),
            socket=self._control_socket(),
            on_demand_close_after=float(mtx.on_demand_close_after),
        )

    def _camera_supervisor(self, device: str) -> CameraSupervisor | None:
        entry = self.cameras.get(device)
        return entry.supervisor if entry is not None and entry.status == "CONNECTED" else None

    def _refresh_gauges(self) -> None:
        self.metrics.active_connections.set(len(self.connections))
        counts = dict.fromkeys(("CONNECTED", "DISCONNECTED", "ERROR"), 0)
        for entry in self.cameras.entries():
            counts[entry.status] += 1
        for status, n in counts.items():
            self.metrics.cameras.labels(status).set(n)
        self.metrics.recordings_active.set(self.recordings.active_count)

    def _websocket_health(self) -> ComponentHealth:
        cfg = self.config.server
        if not self._listening:
            return ComponentHealth(
                "websocket_server", "unhealthy", "not listening", lifecycle="STARTING"
            )
        n = len(self.connections)
        details = {"connections": n, "max_connections": cfg.max_connections}
        if n >= 0.9 * cfg.max_connections:
            return ComponentHealth(
                "websocket_server", "degraded", "near the connection cap", details=details
            )
        return ComponentHealth("websocket_server", "healthy", "listening", details=details)

    def _camera_status_update(self, entry: CameraEntry) -> None:
        view = self.cameras_api.view(entry)
        self.bus.notify_all(
            "camera_status_update",
            CameraStatusUpdate(
                view.device, view.status, view.name, view.resolution, view.fps, view.streams
            ),
        )

    def request_shutdown(self, reason: Literal["signal", "requested"] = "requested") -> None:
        """Begin a graceful shutdown (SIGINT/SIGTERM call this with reason `signal`)."""
        self._shutdown_reason = reason
        self._shutdown.set()

    async def run(
        self,
        *,
        handle_signals: bool = True,
        trim_heap_every_s: float | None = None,
        worker_threads: int | None = None,
        task_status: trio.TaskStatus[BoundPorts] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until shutdown is requested or a signal arrives, then stop gracefully.

        `camsvc serve` tunes its process with the other two (an embedding program keeps its
        own settings): `trim_heap_every_s` hands the C heap's free pages back that often
        (`camsvc.heap`); `worker_threads` caps the worker threads that run at once (Trio's
        default is 40; see `camsvc.heap.worker_threads`)."""
        if worker_threads is not None:
            trio.to_thread.current_default_thread_limiter().total_tokens = worker_threads
        cfg = self.config
        self.storage.prepare()
        stale = remove_stale_temporaries(Path(cfg.snapshots.path))
        if stale:
            log.info("removed_stale_temporaries", count=stale)
        main_router = Router()
        add_health_routes(main_router, self.health)
        add_file_routes(main_router, self.library, self.authenticator)
        add_dashboard_routes(main_router, cfg.server.websocket_path)
        if cfg.metrics.enabled:
            add_metrics_route(
                main_router,
                self.metrics,
                self.authenticator,
                require_admin=cfg.metrics.require_admin,
            )
        health_router = Router()
        add_health_routes(health_router, self.health)
        async with trio.open_nursery() as root:
            if handle_signals:
                root.start_soon(self._watch_signals)
            if trim_heap_every_s is not None:
                root.start_soon(heap.trim_every, trim_heap_every_s)
            # Listeners come up at once; get_camera_list answers what is known meanwhile.
            root.start_soon(self.cameras.run)
            root.start_soon(self.library.run)
            root.start_soon(self.retention.run)
            root.start_soon(self._run_mediamtx)
            # Through the alerts' publish: one system.health event per change.
            root.start_soon(self.health.watch, self.alerts.publish)
            root.start_soon(self.sampler.run)
            root.start_soon(self.alerts.run)
            async with trio.open_nursery() as handlers:
                async with trio.open_nursery() as listeners:
                    main_port = await _listen(
                        listeners,
                        handlers,
                        cfg.server.host,
                        cfg.server.port,
                        router=main_router,
                        read_timeout_s=cfg.server.read_timeout,
                        write_timeout_s=cfg.server.write_timeout,
                        receive_size=cfg.server.read_buffer_size,
                        ws_path=cfg.server.websocket_path,
                        on_upgrade=self.connections.handle_upgrade,
                    )
                    health_port = None
                    if cfg.health.enabled:
                        health_port = await _listen(
                            listeners,
                            handlers,
                            cfg.health.host,
                            cfg.health.port,
                            router=health_router,
                            read_timeout_s=cfg.server.read_timeout,
                            write_timeout_s=cfg.server.write_timeout,
                        )
                    self._listening = True
                    ports = BoundPorts(main=main_port, health=health_port)
                    log.info(
                        "listening",
                        version=__version__,
                        host=cfg.server.host,
                        port=ports.main,
                        ws_path=cfg.server.websocket_path,
                        health_port=ports.health,
                    )
                    task_status.started(ports)
                    await self._shutdown.wait()
                    log.info("shutdown_begin", connections=len(self.connections))
                    self.health.shutting_down = True
                    listeners.cancel_scope.cancel()
                    self.bus.publish("system.shutdown", ShutdownEvent(self._shutdown_reason))
                self._listening = False
                self.connections.begin_shutdown()
                grace = cfg.server.shutdown_timeout + cfg.server.write_timeout
                with trio.move_on_after(grace):
                    await self.connections.wait_empty()
                handlers.cancel_scope.cancel()
            root.cancel_scope.cancel()
        # Every task that used the catalogue has ended with the root nursery.
        self.catalog.close()
        log.info("shutdown_complete")

    async def _run_mediamtx(self) -> None:
        """MediaMTX: start it if `spawn: auto` needs to, then the path cache and manager."""
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.mediamtx_supervisor.run)
                nursery.start_soon(self.mediamtx_paths.run)
                nursery.start_soon(self.paths.run)
                await nursery.start(self.publishers.run)
                await nursery.start(self.recordings.run)
                if self.hook_server is not None:
                    await nursery.start(self.hook_server.run)
                await nursery.start(self.external.run)
                await nursery.start(self.external_live.run)
                nursery.start_soon(self.streams.run)
                nursery.start_soon(self.mediamtx_watchdog.run)
        finally:
            with trio.move_on_after(1) as scope:
                scope.shield = True
                await self.mediamtx.aclose()

    async def _watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.info("signal", signal=signal.Signals(signum).name)
                self.request_shutdown("signal")
                return


async def _listen(
    listeners: trio.Nursery, handlers: trio.Nursery, host: str, port: int, **http: Any
) -> int:
    """Start a TCP listener serving HTTP connections (in `handlers`); returns the bound port."""
    bound = await listeners.start(
        functools.partial(
            trio.serve_tcp,
            functools.partial(serve_http_connection, **http),
            port,
            host=host or None,
            handler_nursery=handlers,
        )
    )
    return bound[0].socket.getsockname()[1]
