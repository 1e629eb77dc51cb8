"""Dispatch: the order of checks of API.md §3.4, params decoding, handler calls, replies.

`Dispatcher.handle` answers a whole message. When every method it names is synchronous the
reply is computed inline (the common, fast case: no task is spawned); otherwise it returns a
coroutine for the transport to run in the connection's nursery.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import msgspec
import structlog

from camsvc.auth.roles import Role
from camsvc.auth.session import Authenticator
from camsvc.errors import (
    AuthError,
    CamsvcError,
    InternalError,
    InvalidParams,
    MethodNotFound,
    PermissionDenied,
    RateLimited,
)
from camsvc.rpc import codec
from camsvc.rpc.connection import RpcConnection
from camsvc.rpc.registry import MethodSpec, Registry
from camsvc.timefmt import utc_timestamp

__all__ = ["Dispatcher", "RequestObserver"]

log = structlog.get_logger("camsvc.rpc")

Reply = bytes | None


class RequestObserver(Protocol):
    """Receives one call per answered or executed request (metrics hook)."""

    def __call__(self, method: str, code: int, seconds: float) -> None: ...


_PATH_RE = re.compile(r" - at `\$\.?([^`\[]*)[^`]*`$")
_MISSING_RE = re.compile(r"^Object missing required field `([^`]*)`")


def params_error(exc: msgspec.ValidationError) -> InvalidParams:
    """Map a msgspec validation error to -32602 with the right reason and `param`."""
    text = str(exc)
    if m := _MISSING_RE.match(text):
        param = m.group(1)
        if pm := _PATH_RE.search(text):
            param = f"{pm.group(1)}.{param}" if pm.group(1) else param
        return InvalidParams("missing_param", f"missing parameter {param}", param=param)
    pm = _PATH_RE.search(text)
    param = pm.group(1) if pm else None
    message = _PATH_RE.sub("", text)
    if message.startswith("Expected `") and ", got `" in message:
        reason = "invalid_type"
    elif re.search(r"[<>]=? ?-?\d|length", message):
        reason = "out_of_range"
    else:
        reason = "invalid_value"
    return InvalidParams(reason, f"{param}: {message}" if param else message, param=param or None)


def _integral_floats_to_int(value: Any) -> Any:
    """Replace floats without a fractional part by ints (API.md §1: `5.0` means 5)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral_floats_to_int(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral_floats_to_int(v) for v in value]
    return value


_EMPTY = b"{}"


def decode_params(spec: MethodSpec, raw: msgspec.Raw | None) -> msgspec.Struct:
    """Decode a method's params (absent or null = `{}`); InvalidParams on failure."""
    try:
        return spec.decoder.decode(raw if raw is not None else _EMPTY)
    except msgspec.ValidationError as exc:
        if "got `float`" not in str(exc):
            raise params_error(exc) from exc
    # Slow path only for integral floats given where an int is expected.
    try:
        generic = _integral_floats_to_int(msgspec.json.decode(raw if raw is not None else _EMPTY))
        return msgspec.convert(generic, spec.params)
    except msgspec.ValidationError as exc:
        raise params_error(exc) from exc


class Dispatcher:
    """Turns decoded messages into replies for one service's registry."""

    def __init__(
        self,
        registry: Registry,
        authenticator: Authenticator,
        *,
        max_batch: int = 100,
        metadata: bool = True,
        observer: RequestObserver | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.registry = registry
        self.authenticator = authenticator
        self.max_batch = max_batch
        self.metadata = metadata
        self.observer = observer
        self._clock = clock

    # -- message level ---------------------------------------------------------------

    def handle(self, conn: RpcConnection, data: bytes | str) -> Reply | Coroutine[Any, Any, Reply]:
        """Answer one text message: reply bytes, None (nothing to send) or a coroutine."""
        start = self._clock()
        parsed = codec.decode_message(data, self.max_batch)
        if isinstance(parsed, codec.Invalid):
            return codec.encode(self._invalid(parsed, start))
        if not parsed.batch:
            item = parsed.items[0]
            if isinstance(item, codec.Invalid):
                return codec.encode(self._invalid(item, start))
            spec, error = self._admit(conn, item)
            if error is None and spec is not None and spec.is_async:
                return self._run_async_single(conn, item, spec, start)
            response = self._finish(conn, item, spec, error, start)
            return None if response is None else self._encode(response)
        if any(self._is_async_call(item) for item in parsed.items):
            return self._run_async_batch(conn, parsed.items, start)
        responses = [r for item in parsed.items if (r := self._answer_sync(conn, item, start))]
        return self._encode(responses) if responses else None

    def _is_async_call(self, item: codec.Item) -> bool:
        if isinstance(item, codec.Invalid):
            return False
        spec = self.registry.get(item.method)
        return spec is not None and spec.is_async

    def _answer_sync(
        self, conn: RpcConnection, item: codec.Item, start: float
    ) -> codec.Response | None:
        if isinstance(item, codec.Invalid):
            return self._invalid(item, start)
        spec, error = self._admit(conn, item)
        return self._finish(conn, item, spec, error, start)

    async def _run_async_single(
        self, conn: RpcConnection, call: codec.Call, spec: MethodSpec, start: float
    ) -> Reply:
        response = await self._finish_async(conn, call, spec, start)
        return None if response is None else self._encode(response)

    async def _run_async_batch(
        self, conn: RpcConnection, items: list[codec.Item], start: float
    ) -> Reply:
        responses: list[codec.Response] = []
        for item in items:
            # Each element is handled as if sent alone, in order (API.md §3.3).
            if isinstance(item, codec.Invalid):
                responses.append(self._invalid(item, start))
                continue
            spec, error = self._admit(conn, item)
            if error is None and spec is not None and spec.is_async:
                response = await self._finish_async(conn, item, spec, start)
            else:
                response = self._finish(conn, item, spec, error, start)
            if response is not None:
                responses.append(response)
        return self._encode(responses) if responses else None

    def _encode(self, reply: codec.Response | list[codec.Response]) -> bytes:
        """Encode a reply; a result that cannot be encoded becomes -32603 (a bug, logged)."""
        try:
            return codec.encode(reply)
        except (TypeError, ValueError, OverflowError):
            log.exception("rpc_unencodable_result")
            error = codec.error_body(InternalError("internal_error", "unencodable result"))
            fixed = [
                r
                if r.result is msgspec.UNSET
                else codec.Response(r.jsonrpc, r.id, error=error, metadata=r.metadata)
                for r in (reply if isinstance(reply, list) else [reply])
            ]
            return codec.encode(fixed if isinstance(reply, list) else fixed[0])

    # -- request level ---------------------------------------------------------------

    def _admit(
        self, conn: RpcConnection, call: codec.Call
    ) -> tuple[MethodSpec | None, CamsvcError | None]:
        """Checks 3 to 6 of API.md §3.4: rate limit, method, session, role."""
        retry_ms = conn.bucket.take()
        if retry_ms:
            return None, RateLimited(
                "rate_limited", "request rate limit exceeded", retry_after_ms=retry_ms
            )
        spec = self.registry.get(call.method)
        if spec is None:
            return None, MethodNotFound("method_not_found", call.method)
        if spec.role is Role.NONE:
            return spec, None
        try:
            session = self.authenticator.check(conn.session)
        except AuthError as exc:
            conn.session = None
            return spec, exc
        if session.role < spec.role:
            return spec, PermissionDenied(
                "permission_denied",
                f"{call.method} needs role {spec.role.label}",
                required_role=spec.role.label,
            )
        return spec, None

    def _params(self, spec: MethodSpec, call: codec.Call) -> msgspec.Struct:
        if call.positional:
            raise InvalidParams(
                "positional_params", "params must be an object (named params)", param="params"
            )
        return decode_params(spec, call.params)

    def _finish(
        self,
        conn: RpcConnection,
        call: codec.Call,
        spec: MethodSpec | None,
        error: CamsvcError | None,
        start: float,
    ) -> codec.Response | None:
        result: Any = None
        if error is None:
            assert spec is not None
            try:
                result = spec.handler(conn, self._params(spec, call))
            except CamsvcError as exc:
                error = exc
            except Exception as exc:
                error = self._internal(call, exc)
        return self._respond(call, spec, result, error, start)

    async def _finish_async(
        self, conn: RpcConnection, call: codec.Call, spec: MethodSpec, start: float
    ) -> codec.Response | None:
        result: Any = None
        error: CamsvcError | None = None
        try:
            result = await spec.handler(conn, self._params(spec, call))
        except CamsvcError as exc:
            error = exc
        except Exception as exc:
            error = self._internal(call, exc)
        return self._respond(call, spec, result, error, start)

    def _internal(self, call: codec.Call, exc: Exception) -> InternalError:
        log.exception("rpc_internal_error", method=call.method)
        return InternalError("internal_error", f"{type(exc).__name__} in {call.method}")

    def _respond(
        self,
        call: codec.Call,
        spec: MethodSpec | None,
        result: Any,
        error: CamsvcError | None,
        start: float,
    ) -> codec.Response | None:
        elapsed = self._clock() - start
        code = error.code if error is not None else 0
        label = spec.name if spec is not None else "unknown"
        if self.observer is not None:
            self.observer(label, code, elapsed)
        log.debug("rpc", method=call.method, code=code, ms=round(elapsed * 1000, 3))
        if call.is_notification:
            return None
        response = codec.Response("2.0", call.id)
        if error is not None:
            response.error = codec.error_body(error)
        else:
            response.result = result
        if self.metadata and call.id is not None:
            response.metadata = self._metadata(call.id, elapsed)
        return response

    def _invalid(self, item: codec.Invalid, start: float) -> codec.Response:
        elapsed = self._clock() - start
        if self.observer is not None:
            self.observer("invalid", item.error.code, elapsed)
        response = codec.Response("2.0", item.id, error=codec.error_body(item.error))
        if self.metadata and item.id is not None:
            response.metadata = self._metadata(item.id, elapsed)
        return response

    @staticmethod
    def _metadata(request_id: Any, elapsed: float) -> codec.Metadata:
        return codec.Metadata(
            processing_time_ms=round(elapsed * 1000, 3),
            server_timestamp=utc_timestamp(),
            request_id=request_id,
        )
