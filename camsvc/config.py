"""Configuration: defaults < YAML file < `CAMERA_SERVICE_*` environment, into msgspec Structs.

Owns the whole configuration tree of API.md §12 and its validation. Any unknown key or bad
value raises `ConfigError` naming the key, so the service stops at start instead of
misbehaving later. Nothing here reads the file system beyond the one config file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import yaml

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "AlertsConfig",
    "CameraConfig",
    "Config",
    "ConfigError",
    "Duration",
    "ExternalDiscoveryConfig",
    "HealthConfig",
    "LoggingConfig",
    "MediaMTXConfig",
    "MetricsConfig",
    "RecordingConfig",
    "RetentionPolicyConfig",
    "SecurityConfig",
    "ServerConfig",
    "SnapshotsConfig",
    "StorageConfig",
    "config_from_dict",
    "env_overrides",
    "load_config",
]

DEFAULT_CONFIG_PATH = Path("camsvc.yaml")
ENV_PREFIX = "CAMERA_SERVICE_"
# Read by `load_config` before the generic env mapping (API.md §5.1: first set wins).
JWT_SECRET_ENV = ("CAMERA_SERVICE_JWT_SECRET", "CAMERA_SERVICE_SECURITY_JWT_SECRET_KEY")


class ConfigError(ValueError):
    """An invalid configuration; the message names the offending key."""


class Duration(float):
    """Seconds; accepts a number or a string such as `"30s"`, `"5m"`, `"1h"`."""


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def _dec_hook(tp: type, obj: Any) -> Any:
    if tp is Duration:
        if isinstance(obj, bool):
            raise ValueError("expected seconds or a duration such as '30s'")
        if isinstance(obj, int | float):
            if obj < 0:
                raise ValueError("a duration cannot be negative")
            return Duration(obj)
        if isinstance(obj, str) and (m := _DURATION_RE.match(obj)):
            return Duration(float(m.group(1)) * _DURATION_UNITS[m.group(2)])
        raise ValueError(f"expected seconds or a duration such as '30s', got {obj!r}")
    raise NotImplementedError


Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class ServerConfig(_Section):
    host: str = "0.0.0.0"
    port: Port = 8002
    websocket_path: str = "/ws"
    max_connections: Positive = 1000
    max_message_size: Annotated[int, msgspec.Meta(ge=1024)] = 1048576
    max_batch_size: Positive = 100
    max_concurrent_requests: Positive = 16
    send_queue_size: Positive = 256
    read_timeout: Duration = Duration(10)
    write_timeout: Duration = Duration(10)
    ping_interval: Duration = Duration(30)
    pong_wait: Duration = Duration(60)
    read_buffer_size: Annotated[int, msgspec.Meta(ge=512)] = 65536
    write_buffer_size: Annotated[int, msgspec.Meta(ge=512)] = 65536
    response_metadata: bool = True
    shutdown_timeout: Duration = Duration(10)


class SecurityConfig(_Section):
    jwt_secret_key: str = ""
    auth_disabled: bool = False
    allowed_origins: list[str] = msgspec.field(default_factory=lambda: ["*"])
    api_keys_path: str = "/var/lib/camsvc/api_keys.json"
    rate_limit_rps: Annotated[float, msgspec.Meta(gt=0)] = 100.0
    rate_limit_burst: Positive = 200
    auth_failure_limit: Positive = 5
    auth_failure_window: Duration = Duration(60)


class MediaMTXConfig(_Section):
    api_url: str = "http://127.0.0.1:9997"
    rtsp_port: Port = 8554
    webrtc_port: Port = 8889
    hls_port: Port = 8888
    host_for_urls: str = ""
    spawn: Literal["auto", "never"] = "auto"
    binary: str = "mediamtx"
    health_check_interval: Duration = Duration(5)
    request_timeout: Duration = Duration(2)
    idle_close_after: Duration = Duration(300)
    # MediaMTX's path hooks (runOnDemand, runOnRecordSegmentComplete) call `camsvc hook`,
    # which reaches the service over this Unix socket ("": camsvc.sock beside storage.db_path).
    hooks: bool = True
    control_socket: str = ""
    on_demand_close_after: Duration = Duration(10)


class CameraConfig(_Section):
    device_dir: str = "/dev"
    device_range: Annotated[list[NonNegative], msgspec.Meta(min_length=2, max_length=2)] = (
        msgspec.field(default_factory=lambda: [0, 63])
    )
    poll_interval: Duration = Duration(1.0)
    probe: bool = True
    forget_after: Duration = Duration(300)


class SnapshotsConfig(_Section):
    path: str = "/var/lib/camsvc/snapshots"
    format: Literal["jpeg", "png"] = "jpeg"
    quality: Annotated[int, msgspec.Meta(ge=1, le=100)] = 85
    max_width: Annotated[int, msgspec.Meta(ge=0, le=16384)] = 0
    max_height: Annotated[int, msgspec.Meta(ge=0, le=16384)] = 0
    warm_keepalive_s: Duration = Duration(30)
    timeout: Duration = Duration(5)


class RecordingConfig(_Section):
    path: str = "/var/lib/camsvc/recordings"
    format: Literal["fmp4", "mp4"] = "fmp4"
    segment_duration: Duration = Duration(3600)
    default_page_size: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 50
    start_timeout: Duration = Duration(10)
    progress_interval: Duration = Duration(30)


class StorageConfig(_Section):
    warn_percent: Percent = 80
    block_percent: Percent = 90
    db_path: str = "/var/lib/camsvc/camsvc.db"


class RetentionPolicyConfig(_Section):
    enabled: bool = False
    policy_type: Literal["age", "size", "manual"] = "age"
    max_age_days: Annotated[int, msgspec.Meta(ge=1, le=365)] = 30
    max_size_gb: Annotated[float, msgspec.Meta(gt=0, le=1000)] = 10
    interval_s: Duration = Duration(3600)


class HealthConfig(_Section):
    enabled: bool = True
    host: str = "0.0.0.0"
    port: Port = 8003


class MetricsConfig(_Section):
    enabled: bool = True
    require_admin: bool = False


class AlertsConfig(_Section):
    """In-service alert thresholds (docs/observability.md); a figure must stay above its
    threshold for the `*_for` duration before the alert fires."""

    enabled: bool = True
    interval: Duration = Duration(10)
    response_time_window: Duration = Duration(60)
    response_time_warning_s: Annotated[float, msgspec.Meta(gt=0)] = 2.0
    response_time_warning_for: Duration = Duration(300)
    response_time_critical_s: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    response_time_critical_for: Duration = Duration(120)
    cpu_percent: Annotated[float, msgspec.Meta(gt=0)] = 70
    cpu_for: Duration = Duration(300)
    memory_bytes: Positive = 2147483648
    memory_for: Duration = Duration(300)
    disk_percent: Percent = 90
    disk_for: Duration = Duration(60)
    anomaly_enabled: bool = True
    anomaly_bucket: Duration = Duration(60)
    anomaly_baseline_window: Duration = Duration(3600)
    anomaly_min_buckets: Positive = 15
    anomaly_min_requests: Positive = 20
    anomaly_response_factor: Annotated[float, msgspec.Meta(gt=1)] = 2.0
    anomaly_response_floor_s: Annotated[float, msgspec.Meta(ge=0)] = 0.05
    anomaly_error_factor: Annotated[float, msgspec.Meta(gt=1)] = 3.0
    anomaly_error_floor: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.01
    anomaly_for: Duration = Duration(120)


class LoggingConfig(_Section):
    level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    format: Literal["json", "console"] = "json"


class SkydioDiscoveryConfig(_Section):
    enabled: bool = True
    known_hosts: list[str] = msgspec.field(default_factory=list)
    network_ranges: list[str] = msgspec.field(default_factory=list)
    eo_port: Port = 5554
    ir_port: Port = 6554
    eo_stream_path: str = "/subject"
    ir_stream_path: str = "/infrared"


class GenericDiscoveryConfig(_Section):
    enabled: bool = False
    known_hosts: list[str] = msgspec.field(default_factory=list)
    network_ranges: list[str] = msgspec.field(default_factory=list)
    ports: list[Port] = msgspec.field(default_factory=lambda: [554, 8554])
    stream_paths: list[str] = msgspec.field(default_factory=lambda: ["/stream", "/live", "/video"])


class ExternalDiscoveryConfig(_Section):
    enabled: bool = False
    allow_network_scan: bool = False
    scan_interval: Annotated[int, msgspec.Meta(ge=0, le=86400)] = 0
    scan_timeout: Duration = Duration(10)
    skydio: SkydioDiscoveryConfig = msgspec.field(default_factory=SkydioDiscoveryConfig)
    generic: GenericDiscoveryConfig = msgspec.field(default_factory=GenericDiscoveryConfig)


class Config(_Section):
    """The whole configuration tree."""

    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    security: SecurityConfig = msgspec.field(default_factory=SecurityConfig)
    mediamtx: MediaMTXConfig = msgspec.field(default_factory=MediaMTXConfig)
    camera: CameraConfig = msgspec.field(default_factory=CameraConfig)
    snapshots: SnapshotsConfig = msgspec.field(default_factory=SnapshotsConfig)
    recording: RecordingConfig = msgspec.field(default_factory=RecordingConfig)
    storage: StorageConfig = msgspec.field(default_factory=StorageConfig)
    retention_policy: RetentionPolicyConfig = msgspec.field(default_factory=RetentionPolicyConfig)
    health: HealthConfig = msgspec.field(default_factory=HealthConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    alerts: AlertsConfig = msgspec.field(default_factory=AlertsConfig)
    logging: LoggingConfig = msgspec.field(default_factory=LoggingConfig)
    external_discovery: ExternalDiscoveryConfig = msgspec.field(
        default_factory=ExternalDiscoveryConfig
    )


def _leaf_paths(tp: type[msgspec.Struct], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every settable key of a Struct tree, as tuples of field names."""
    paths: list[tuple[str, ...]] = []
    for field in msgspec.structs.fields(tp):
        path = (*prefix, field.name)
        ftype = field.type
        if isinstance(ftype, type) and issubclass(ftype, msgspec.Struct):
            paths.extend(_leaf_paths(ftype, path))
        else:
            paths.append(path)
    return paths


# Env name -> key path; on a clash the path with the longer section wins (API.md §12).
_ENV_KEYS: dict[str, tuple[str, ...]] = {}
for _path in sorted(_leaf_paths(Config), key=lambda p: len("_".join(p[:-1]))):
    _ENV_KEYS[ENV_PREFIX + "_".join(_path).upper()] = _path


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """The nested overrides that `CAMERA_SERVICE_*` variables ask for."""
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in JWT_SECRET_ENV:
            continue
        path = _ENV_KEYS.get(name)
        if path is None:
            raise ConfigError(f"{name}: unknown configuration key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"{name}: cannot parse {raw!r}: {exc}") from exc
        if isinstance(value, str | int | float | bool | list) or value is None:
            node = tree
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = raw if value is None else value
        else:
            raise ConfigError(f"{name}: expected a scalar or a flow list, got {raw!r}")
    return tree


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


_PATH_RE = re.compile(r"at `\$\.?([^`]*)`")


def _key_of(message: str) -> str:
    m = _PATH_RE.search(message)
    return m.group(1).replace("[", ".").replace("]", "") if m else ""


def _check(cfg: Config) -> None:
    if cfg.storage.warn_percent >= cfg.storage.block_percent:
        raise ConfigError("storage.warn_percent: must be below storage.block_percent")
    lo, hi = cfg.camera.device_range
    if lo > hi:
        raise ConfigError("camera.device_range: first number must not exceed the second")
    if not cfg.server.websocket_path.startswith("/"):
        raise ConfigError("server.websocket_path: must start with '/'")


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Read the configuration: defaults, then the YAML file, then the environment.

    `path` None means `$CAMSVC_CONFIG`, else `./camsvc.yaml` if it exists. A file that was
    named explicitly (argument or `CAMSVC_CONFIG`) must exist.
    """
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    named = path if path is not None else environ.get("CAMSVC_CONFIG")
    file = Path(named) if named else DEFAULT_CONFIG_PATH
    if file.exists():
        try:
            loaded = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read: {exc.strerror}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file}: the top level must be a mapping of sections")
        data = loaded
    elif named:
        raise ConfigError(f"{file}: configuration file not found")
    data = _merge(data, env_overrides(environ))
    for name in JWT_SECRET_ENV:
        if environ.get(name):
            data = _merge(data, {"security": {"jwt_secret_key": environ[name]}})
            break
    return config_from_dict(data)


def config_from_dict(data: Mapping[str, Any]) -> Config:
    """Validate a nested mapping (as the YAML file holds) into a Config."""
    try:
        cfg = msgspec.convert(data, Config, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        key = _key_of(msg)
        if msg.startswith("Object contains unknown field"):
            field = msg.split("`")[1]
            key = f"{key}.{field}" if key else field
            raise ConfigError(f"{key}: unknown configuration key") from exc
        raise ConfigError(f"{key}: {_PATH_RE.sub('', msg).rstrip(' -')}") from exc
    _check(cfg)
    return cfg
