"""What a spec-valid reply is (API.md §3, §4), checked against the request it answers.

Pure helpers shared by the property tests and the atheris fuzz target: the App built on a
throw-away directory, the expected reply shape of any request value, and the reply checker.
No network, no disk outside the directory the caller gives.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from camsvc.app import App
from camsvc.auth.roles import Role
from camsvc.auth.session import Session
from camsvc.config import config_from_dict
from camsvc.rpc.connection import RpcConnection
from camsvc.rpc.ratelimit import TokenBucket

__all__ = [
    "ERRORS",
    "INVALID_JSON",
    "MAX_BATCH",
    "Unanswered",
    "admin_connection",
    "check_reply",
    "expected_ids",
    "is_parse_error",
    "make_app",
]

#: Batch limit of the App built by `make_app` (small, so fuzzing reaches it).
MAX_BATCH = 8

#: API.md §4: code → (messages allowed, reasons allowed).
ERRORS: dict[int, tuple[set[str], set[str]]] = {
    -32700: ({"Parse error"}, {"parse_error"}),
    -32600: (
        {"Invalid Request"},
        {"invalid_request", "invalid_version", "empty_batch", "batch_too_large"},
    ),
    -32601: ({"Method not found"}, {"method_not_found"}),
    -32602: (
        {"Invalid params"},
        {
            "missing_param",
            "invalid_type",
            "out_of_range",
            "invalid_value",
            "invalid_device",
            "invalid_filename",
            "filename_exists",
            "unknown_topic",
            "positional_params",
        },
    ),
    -32603: ({"Internal error"}, {"internal_error", "capture_failed"}),
    -32001: (
        {"Authentication required", "Authentication failed", "Token expired"},
        {"auth_required", "auth_failed", "token_expired"},
    ),
    -32002: ({"Permission denied"}, {"permission_denied"}),
    -32010: (
        {"Camera not found", "Recording not found", "Snapshot not found", "Stream not found"},
        {"camera_not_found", "file_not_found", "stream_not_found"},
    ),
    -32020: (
        {"Invalid state"},
        {"already_recording", "not_recording", "already_exists", "file_in_use"},
    ),
    -32030: ({"Unsupported"}, {"feature_disabled", "format_unsupported"}),
    -32040: ({"Rate limited"}, {"rate_limited"}),
    -32050: ({"Dependency failed"}, {"mediamtx_unavailable", "mediamtx_error"}),
    -32060: ({"Insufficient storage"}, {"insufficient_storage"}),
}


class Unanswered:
    """Marker in `expected_ids`: this element needs no reply (a client notification)."""


class _InvalidJson:
    """Type of INVALID_JSON."""


#: Stands for "the text sent was not JSON" in `check_reply`.
INVALID_JSON: Any = _InvalidJson()


def make_app(root: Path, **security: Any) -> App:
    """An App on `root` (never started): MediaMTX on a closed loopback port, small batches."""
    for sub in ("dev", "snapshots", "recordings"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return App(
        config_from_dict(
            {
                "server": {"host": "127.0.0.1", "port": 0, "max_batch_size": MAX_BATCH},
                "health": {"host": "127.0.0.1", "port": 0},
                "security": {
                    "jwt_secret_key": "fuzz-secret-0123456789abcdef012345",
                    "api_keys_path": str(root / "keys.json"),
                    **security,
                },
                "storage": {"db_path": str(root / "camsvc.db")},
                "snapshots": {"path": str(root / "snapshots")},
                "recording": {"path": str(root / "recordings")},
                "camera": {"device_dir": str(root / "dev")},
                "mediamtx": {"api_url": "http://127.0.0.1:9", "spawn": "never"},
            }
        )
    )


class _Sink:
    """Stands for the transport side of a connection on the event bus: counts notifications."""

    def __init__(self, conn: RpcConnection) -> None:
        self._conn = conn
        self.received = 0
        self.dropped = 0

    @property
    def authenticated(self) -> bool:
        return self._conn.session is not None

    def notify(self, message: bytes) -> None:
        self.received += 1

    def notify_many(self, messages: Sequence[bytes]) -> None:
        self.received += len(messages)


@contextlib.contextmanager
def admin_connection(app: App) -> Iterator[RpcConnection]:
    """A fresh connection on `app`'s bus with an admin session and an unlimited bucket."""
    session = Session(user_id="fuzz", role=Role.ADMIN, auth_method="jwt", expires_at=None)
    conn = RpcConnection("fuzz", TokenBucket(1e9, 10**9), session=session)
    app.bus.attach(conn.conn_id, _Sink(conn))
    try:
        yield conn
    finally:
        app.bus.detach(conn.conn_id)


def _is_id(value: Any) -> bool:
    # A number JSON cannot carry back (1e400 overflows to inf) is not echoed: -32600, id null.
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _echo(obj: dict[str, Any]) -> Any:
    value = obj.get("id")
    return value if _is_id(value) else None


def _is_notification(obj: Any) -> bool:
    """A well-formed request object without an `id` member (API.md §3)."""
    if not isinstance(obj, dict) or "id" in obj:
        return False
    if obj.get("jsonrpc") != "2.0" or not isinstance(obj.get("method"), str):
        return False
    return "params" not in obj or obj["params"] is None or isinstance(obj["params"], dict | list)


def expected_ids(message: Any, max_batch: int = MAX_BATCH) -> Any:
    """The reply shape `message` (a decoded JSON value) must get.

    `Unanswered` (no reply), an id (one reply object with that id), or a list of ids (one
    batch array). A whole-message error is an id of None.
    """
    if isinstance(message, list):
        if not message or len(message) > max_batch:
            return None
        ids = [
            _echo(e) if isinstance(e, dict) else None for e in message if not _is_notification(e)
        ]
        return ids if ids else Unanswered
    if isinstance(message, dict):
        return Unanswered if _is_notification(message) else _echo(message)
    return None


def is_parse_error(reply: bytes | None) -> bool:
    """Whether `reply` is one -32700 error object."""
    if reply is None:
        return False
    decoded = json.loads(reply)
    return isinstance(decoded, dict) and decoded.get("error", {}).get("code") == -32700


def _same_id(got: Any, want: Any) -> bool:
    if isinstance(want, float) and isinstance(got, int | float):
        return float(got) == want
    return type(got) is type(want) and got == want


def _check_object(reply: Any, want_id: Any, *, metadata: bool) -> None:
    assert isinstance(reply, dict), reply
    assert reply.get("jsonrpc") == "2.0", reply
    assert "id" in reply and _same_id(reply["id"], want_id), (reply, want_id)
    assert ("result" in reply) != ("error" in reply), reply
    assert set(reply) <= {"jsonrpc", "id", "result", "error", "metadata"}, reply
    if "error" in reply:
        error = reply["error"]
        assert set(error) == {"code", "message", "data"}, error
        assert error["code"] in ERRORS, error
        messages, reasons = ERRORS[error["code"]]
        assert error["message"] in messages, error
        assert error["data"]["reason"] in reasons, error
        assert isinstance(error["data"].get("details", ""), str), error
        # An unexpected exception in a handler is a bug, not an answer.
        assert error["data"]["reason"] != "internal_error", error
    if metadata and reply["id"] is not None:
        assert _same_id(reply["metadata"]["request_id"], reply["id"]), reply
    else:
        assert "metadata" not in reply, reply


def check_reply(message: Any, reply: bytes | None, *, metadata: bool = True) -> list[Any]:
    """Assert `reply` is the spec-valid answer to `message`; returns the reply objects.

    `message` is the decoded request (or the `INVALID_JSON` sentinel string for text that is
    not JSON, which must get one -32700 object with `id: null`).
    """
    want = expected_ids(message) if message is not INVALID_JSON else None
    if want is Unanswered:
        assert reply is None, (message, reply)
        return []
    assert reply is not None, message
    decoded = json.loads(reply)
    if message is INVALID_JSON:
        _check_object(decoded, None, metadata=metadata)
        assert decoded["error"]["code"] == -32700, decoded
        return [decoded]
    if isinstance(want, list):
        assert isinstance(decoded, list) and len(decoded) == len(want), (message, decoded)
        for obj, want_id in zip(decoded, want, strict=True):
            _check_object(obj, want_id, metadata=metadata)
        return decoded
    _check_object(decoded, want, metadata=metadata)
    if not isinstance(message, dict | list):
        assert decoded["error"]["code"] == -32600, decoded
    elif isinstance(message, list):  # empty or too large: one error object
        assert decoded["error"]["data"]["reason"] in ("empty_batch", "batch_too_large"), decoded
    return [decoded]
