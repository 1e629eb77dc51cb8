"""The error tree of camsvc: one class per JSON-RPC error code of API.md §4.

    CamsvcError
    ├── ParseError            -32700
    ├── InvalidRequest        -32600
    ├── MethodNotFound        -32601
    ├── InvalidParams         -32602
    ├── InternalError         -32603
    ├── AuthError             -32001  (message depends on the reason)
    ├── PermissionDenied      -32002
    ├── NotFound              -32010  (message names the object)
    ├── InvalidState          -32020
    ├── Unsupported           -32030
    ├── RateLimited           -32040
    ├── DependencyFailed      -32050
    └── InsufficientStorage   -32060

Services raise these; only `camsvc.rpc` turns them into JSON-RPC error objects.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AuthError",
    "CamsvcError",
    "DependencyFailed",
    "InsufficientStorage",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "InvalidState",
    "MethodNotFound",
    "NotFound",
    "ParseError",
    "PermissionDenied",
    "RateLimited",
    "Unsupported",
]


class CamsvcError(Exception):
    """Base of every error the API reports; carries code, message, reason and extra data."""

    code: ClassVar[int] = -32603
    default_message: ClassVar[str] = "Internal error"
    default_reason: ClassVar[str] = "internal_error"

    def __init__(
        self,
        reason: str | None = None,
        details: str = "",
        *,
        message: str | None = None,
        param: str | None = None,
        suggestion: str | None = None,
        **extra: Any,
    ) -> None:
        self.reason = reason or self.default_reason
        self.details = details
        self.message = message or self.default_message
        self.param = param
        self.suggestion = suggestion
        self.extra = extra
        super().__init__(f"{self.code} {self.reason}: {details}" if details else self.reason)


class ParseError(CamsvcError):
    """The message is not valid JSON."""

    code = -32700
    default_message = "Parse error"
    default_reason = "parse_error"


class InvalidRequest(CamsvcError):
    """The JSON is not a valid JSON-RPC 2.0 request."""

    code = -32600
    default_message = "Invalid Request"
    default_reason = "invalid_request"


class MethodNotFound(CamsvcError):
    """No such method."""

    code = -32601
    default_message = "Method not found"
    default_reason = "method_not_found"


class InvalidParams(CamsvcError):
    """A parameter is missing, ill-typed, out of range or otherwise invalid."""

    code = -32602
    default_message = "Invalid params"
    default_reason = "invalid_value"


class InternalError(CamsvcError):
    """An unexpected failure inside the service."""


_AUTH_MESSAGES = {
    "auth_required": "Authentication required",
    "auth_failed": "Authentication failed",
    "token_expired": "Token expired",
}


class AuthError(CamsvcError):
    """No session, a rejected credential, or an expired one."""

    code = -32001
    default_message = "Authentication required"
    default_reason = "auth_required"

    def __init__(self, reason: str = "auth_required", details: str = "", **kw: Any) -> None:
        kw.setdefault("message", _AUTH_MESSAGES[reason])
        super().__init__(reason, details, **kw)


class PermissionDenied(CamsvcError):
    """The session's role is below the method's minimum role."""

    code = -32002
    default_message = "Permission denied"
    default_reason = "permission_denied"


_NOT_FOUND_MESSAGES = {
    "camera": ("Camera not found", "camera_not_found"),
    "recording": ("Recording not found", "file_not_found"),
    "snapshot": ("Snapshot not found", "file_not_found"),
    "stream": ("Stream not found", "stream_not_found"),
}


class NotFound(CamsvcError):
    """The named camera, file or stream does not exist."""

    code = -32010
    default_message = "Camera not found"
    default_reason = "camera_not_found"

    def __init__(self, kind: str, details: str = "", **kw: Any) -> None:
        message, reason = _NOT_FOUND_MESSAGES[kind]
        super().__init__(reason, details, message=message, **kw)


class InvalidState(CamsvcError):
    """The operation is not allowed in the object's current state."""

    code = -32020
    default_message = "Invalid state"
    default_reason = "invalid_state"


class Unsupported(CamsvcError):
    """A disabled feature or an unsupported format."""

    code = -32030
    default_message = "Unsupported"
    default_reason = "feature_disabled"


class RateLimited(CamsvcError):
    """The connection's token bucket is empty."""

    code = -32040
    default_message = "Rate limited"
    default_reason = "rate_limited"


class DependencyFailed(CamsvcError):
    """MediaMTX is unreachable, erroring or too slow."""

    code = -32050
    default_message = "Dependency failed"
    default_reason = "mediamtx_unavailable"


class InsufficientStorage(CamsvcError):
    """Storage usage is at or above the blocking threshold."""

    code = -32060
    default_message = "Insufficient storage"
    default_reason = "insufficient_storage"
