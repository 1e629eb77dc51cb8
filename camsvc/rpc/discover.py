"""`rpc.discover`: an OpenRPC 1.2.6 document generated from the method registry."""

from __future__ import annotations

from typing import Any

import msgspec

from camsvc import API_VERSION
from camsvc.errors import (
    AuthError,
    CamsvcError,
    DependencyFailed,
    InsufficientStorage,
    InternalError,
    InvalidParams,
    InvalidRequest,
    InvalidState,
    MethodNotFound,
    NotFound,
    ParseError,
    PermissionDenied,
    RateLimited,
    Unsupported,
)
from camsvc.rpc.registry import Registry

__all__ = ["NOTIFICATIONS", "openrpc_document"]

_ERRORS: list[type[CamsvcError]] = [
    ParseError,
    InvalidRequest,
    MethodNotFound,
    InvalidParams,
    InternalError,
    AuthError,
    PermissionDenied,
    NotFound,
    InvalidState,
    Unsupported,
    RateLimited,
    DependencyFailed,
    InsufficientStorage,
]

# Server-to-client notifications (API.md §9), listed under `x-notifications`.
NOTIFICATIONS: list[dict[str, str]] = [
    {"name": "camera_status_update", "summary": "A camera connected, disconnected or changed"},
    {"name": "recording_status_update", "summary": "A recording started, stopped or failed"},
    {"name": "event", "summary": "A subscribed topic event: params {topic, timestamp, data}"},
    {"name": "system_health_update", "summary": "Legacy alias carrying system.health data"},
]


def openrpc_document(
    registry: Registry, server_url: str = "ws://localhost:8002/ws"
) -> dict[str, Any]:
    """The OpenRPC document for every registered method (JSON-ready)."""
    specs = list(registry)
    types: list[Any] = []
    for spec in specs:
        types.extend([spec.params, spec.result])
    schemas, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    methods = []
    for i, spec in enumerate(specs):
        params_schema = schemas[2 * i]
        ref = params_schema.get("$ref", "")
        params_obj = components.get(ref.rsplit("/", 1)[-1], {}) if ref else params_schema
        required = set(params_obj.get("required", []))
        params = [
            {"name": name, "required": name in required, "schema": prop}
            for name, prop in params_obj.get("properties", {}).items()
        ]
        methods.append(
            {
                "name": spec.name,
                "summary": spec.summary,
                "paramStructure": "by-name",
                "params": params,
                "result": {"name": f"{spec.name}_result", "schema": schemas[2 * i + 1]},
                "x-required-role": spec.role.label if spec.role else "none",
                "x-needs-mediamtx": spec.needs_mediamtx,
            }
        )
    errors = {cls.__name__: {"code": cls.code, "message": cls.default_message} for cls in _ERRORS}
    return {
        "openrpc": "1.2.6",
        "info": {"title": "camsvc API", "version": API_VERSION},
        "servers": [{"name": "camsvc", "url": server_url}],
        "methods": methods,
        "components": {"schemas": components, "errors": errors},
        "x-notifications": NOTIFICATIONS,
    }
