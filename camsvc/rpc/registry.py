"""The method registry: each method's name, params Struct, result type, minimum role and handler.

The registry is the single source for dispatch, the permission matrix and `rpc.discover`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from camsvc.auth.roles import Role

__all__ = ["MethodSpec", "NoParams", "Registry"]


class NoParams(msgspec.Struct, frozen=True):
    """Params of a method that takes none (unknown keys are ignored, API.md §1)."""


class MethodSpec(msgspec.Struct, frozen=True):
    """Everything the dispatcher and `rpc.discover` know about one method."""

    name: str
    handler: Callable[..., Any]
    params: type[msgspec.Struct]
    result: Any
    role: Role
    summary: str
    needs_mediamtx: bool
    is_async: bool
    decoder: msgspec.json.Decoder[Any]


class Registry:
    """Methods by name, in registration order."""

    def __init__(self) -> None:
        self._methods: dict[str, MethodSpec] = {}

    def add(
        self,
        name: str,
        handler: Callable[..., Any],
        *,
        result: Any,
        params: type[msgspec.Struct] = NoParams,
        role: Role = Role.VIEWER,
        needs_mediamtx: bool = False,
        summary: str = "",
    ) -> MethodSpec:
        """Register `handler(conn, params)`; sync handlers run inline, async ones in a task."""
        if name in self._methods:
            raise ValueError(f"method {name!r} registered twice")
        spec = MethodSpec(
            name=name,
            handler=handler,
            params=params,
            result=result,
            role=role,
            summary=summary or (inspect.getdoc(handler) or "").split("\n")[0],
            needs_mediamtx=needs_mediamtx,
            is_async=inspect.iscoroutinefunction(handler),
            decoder=msgspec.json.Decoder(params),
        )
        self._methods[name] = spec
        return spec

    def get(self, name: str) -> MethodSpec | None:
        """The method called `name`, if registered."""
        return self._methods.get(name)

    def __iter__(self) -> Iterator[MethodSpec]:
        return iter(self._methods.values())

    def __len__(self) -> int:
        return len(self._methods)
