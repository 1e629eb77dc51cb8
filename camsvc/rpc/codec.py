"""JSON-RPC 2.0 wire format: bytes in, request Structs out; replies to bytes. Pure, no I/O.

Implements API.md §3: the envelope checks of §3.1 (in the order listed there), batches
(§3.3), error objects (§4) and the optional `metadata` block (§3.2). Parameters stay as
`msgspec.Raw` here; the dispatcher decodes them with the method's own params Struct.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, Raw, UnsetType

from camsvc.errors import CamsvcError, InvalidRequest, ParseError

__all__ = [
    "Call",
    "ErrorBody",
    "ErrorData",
    "Invalid",
    "Metadata",
    "Parsed",
    "Response",
    "decode_message",
    "encode",
    "error_body",
]


class Call(msgspec.Struct, frozen=True):
    """A well-formed request or notification (`id` UNSET)."""

    method: str
    params: Raw | None
    id: Any = UNSET
    # Positional params are a params error (-32602), checked after method, session and role.
    positional: bool = False

    @property
    def is_notification(self) -> bool:
        """True when the request has no `id` member."""
        return self.id is UNSET


class Invalid(msgspec.Struct, frozen=True):
    """An element that failed the envelope checks; answered even without `id`."""

    error: CamsvcError
    id: Any = None


Item = Call | Invalid


class Parsed(msgspec.Struct, frozen=True):
    """A decoded message: one item, or a batch of them."""

    items: list[Item]
    batch: bool


class _Envelope(msgspec.Struct):
    jsonrpc: Any = UNSET
    method: Any = UNSET
    params: Raw | UnsetType = UNSET
    id: Any = UNSET


class _RawEnvelope(msgspec.Struct):
    jsonrpc: Raw | UnsetType = UNSET
    method: Raw | UnsetType = UNSET
    params: Raw | UnsetType = UNSET
    id: Raw | UnsetType = UNSET


class ErrorData(msgspec.Struct, omit_defaults=True):
    """The `data` member of an error object."""

    reason: str
    details: str = ""
    suggestion: str | UnsetType = UNSET
    param: str | UnsetType = UNSET
    required_role: str | UnsetType = UNSET
    retry_after_ms: int | UnsetType = UNSET
    usage_percentage: float | UnsetType = UNSET
    block_percent: float | UnsetType = UNSET


class ErrorBody(msgspec.Struct):
    """A JSON-RPC error object."""

    code: int
    message: str
    data: ErrorData


class Metadata(msgspec.Struct):
    """The optional `metadata` block of a response (API.md §3.2)."""

    processing_time_ms: float
    server_timestamp: str
    request_id: Any


class Response(msgspec.Struct, omit_defaults=True):
    """A JSON-RPC response; exactly one of `result` and `error` is set."""

    jsonrpc: str  # always "2.0"; no default, as omit_defaults would drop it
    id: Any
    result: Any = UNSET
    error: ErrorBody | UnsetType = UNSET
    metadata: Metadata | UnsetType = UNSET


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_raw_envelope_decoder = msgspec.json.Decoder(_RawEnvelope)
_batch_decoder = msgspec.json.Decoder(list[Raw])
_any_decoder = msgspec.json.Decoder()
_raw_decoder = msgspec.json.Decoder(Raw)  # checks JSON syntax without converting numbers
_encoder = msgspec.json.Encoder()
_WS = b" \t\r\n"


def error_body(exc: CamsvcError) -> ErrorBody:
    """The error object for a CamsvcError."""
    data = ErrorData(reason=exc.reason, details=exc.details)
    if exc.suggestion is not None:
        data.suggestion = exc.suggestion
    if exc.param is not None:
        data.param = exc.param
    for key, value in exc.extra.items():
        setattr(data, key, value)
    return ErrorBody(code=exc.code, message=exc.message, data=data)


def encode(obj: Any) -> bytes:
    """Serialise a Response, a list of them, or any msgspec-encodable value."""
    return _encoder.encode(obj)


def _first_byte(data: bytes | Raw) -> int:
    for b in memoryview(data):
        if b not in _WS:
            return b
    return 0


def _echo_id(value: Any) -> Any:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return value
    return None


def _check_envelope(env: _Envelope) -> Item:
    """Apply API.md §3.1 to one decoded object."""
    if env.jsonrpc != "2.0":
        return Invalid(InvalidRequest("invalid_version", 'jsonrpc must be "2.0"'), _echo_id(env.id))
    if not isinstance(env.method, str):
        return Invalid(
            InvalidRequest("invalid_request", "method must be a string"), _echo_id(env.id)
        )
    if env.id is not UNSET and env.id is not None and _echo_id(env.id) is None:
        return Invalid(InvalidRequest("invalid_request", "id must be a string, number or null"))
    params: Raw | None = None
    if env.params is not UNSET:
        first = _first_byte(env.params)
        if first == ord("["):
            return Call(method=env.method, params=None, id=env.id, positional=True)
        if first not in (ord("{"), ord("n")):
            return Invalid(
                InvalidRequest("invalid_request", "params must be an object"), _echo_id(env.id)
            )
        params = env.params if first == ord("{") else None
    return Call(method=env.method, params=params, id=env.id)


def _decode_object(data: bytes) -> Item:
    try:
        env = _envelope_decoder.decode(data)
    except msgspec.ValidationError:
        # A number too large for a double (`1e400`) stops msgspec. Decode the members one by
        # one instead (a DecodeError from here is -32700), so the checks of §3.1 still apply.
        raw = _raw_envelope_decoder.decode(data)
        env = _Envelope(_member(raw.jsonrpc), _member(raw.method), raw.params, _member(raw.id))
    return _check_envelope(env)


class _OutOfRange:
    """A JSON number no double holds: never "2.0", a method name or an echoable id."""


def _member(raw: Raw | UnsetType) -> Any:
    if raw is UNSET:
        return UNSET
    try:
        return _any_decoder.decode(raw)
    except msgspec.ValidationError:
        return _OutOfRange()


def decode_message(data: bytes | str, max_batch: int) -> Parsed | Invalid:
    """Parse one WebSocket text message into request items, or one error for the whole message."""
    # msgspec does not check the UTF-8 of what it skips (unknown keys, Raw params), so the
    # text is checked here: bytes decoded once, str (lone surrogates) encoded strictly.
    try:
        if isinstance(data, str):
            data = data.encode()
        else:
            data.decode()
    except UnicodeError as exc:
        return Invalid(ParseError("parse_error", f"invalid UTF-8: {exc}"))
    first = _first_byte(data)
    try:
        if first == ord("{"):
            return Parsed([_decode_object(data)], batch=False)
        if first == ord("["):
            elements = _batch_decoder.decode(data)
            if not elements:
                return Invalid(InvalidRequest("empty_batch", "batch must not be empty"))
            if len(elements) > max_batch:
                return Invalid(
                    InvalidRequest("batch_too_large", f"batch holds more than {max_batch} requests")
                )
            items: list[Item] = []
            for raw in elements:
                if _first_byte(raw) == ord("{"):
                    items.append(_decode_object(raw))
                else:
                    items.append(
                        Invalid(InvalidRequest("invalid_request", "batch element is not an object"))
                    )
            return Parsed(items, batch=True)
        _raw_decoder.decode(data)  # only to tell invalid JSON from a JSON scalar
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        return Invalid(ParseError("parse_error", f"invalid JSON: {exc}"))
    return Invalid(InvalidRequest("invalid_request", "request must be a JSON object or array"))
