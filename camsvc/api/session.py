"""Session methods: `ping`, `authenticate`, `rpc.discover` (API.md §8.1)."""

from __future__ import annotations

from functools import cached_property
from typing import Any, Literal

import msgspec

from camsvc.auth.roles import Role
from camsvc.auth.session import Authenticator
from camsvc.config import SecurityConfig
from camsvc.errors import AuthError
from camsvc.rpc.connection import RpcConnection
from camsvc.rpc.discover import openrpc_document
from camsvc.rpc.registry import NoParams, Registry
from camsvc.timefmt import utc_timestamp

__all__ = ["AuthResult", "AuthenticateParams", "SessionApi"]

CLOSE_POLICY = 1008


class AuthenticateParams(msgspec.Struct, frozen=True):
    """`auth_token` (or its alias `token`) holds a JWT or an API key."""

    auth_token: str | None = None
    token: str | None = None
    auth_type: Literal["jwt", "api_key", "auto"] = "auto"


class AuthResult(msgspec.Struct, frozen=True):
    """The result of a successful `authenticate`."""

    authenticated: bool
    role: str
    permissions: list[str]
    expires_at: str | None
    session_id: str
    auth_method: str
    user_id: str


class SessionApi:
    """Handlers for the methods every client may call."""

    def __init__(
        self, authenticator: Authenticator, security: SecurityConfig, registry: Registry
    ) -> None:
        self._auth = authenticator
        self._security = security
        self._registry = registry

    def register(self, registry: Registry) -> None:
        """Add this group's methods to `registry`."""
        registry.add("ping", self.ping, result=str, role=Role.NONE)
        registry.add(
            "authenticate",
            self.authenticate,
            params=AuthenticateParams,
            result=AuthResult,
            role=Role.NONE,
        )
        registry.add("rpc.discover", self.discover, result=dict[str, Any], role=Role.NONE)

    def ping(self, conn: RpcConnection, params: NoParams) -> str:
        """Liveness check; answers `pong`."""
        return "pong"

    def authenticate(self, conn: RpcConnection, params: AuthenticateParams) -> AuthResult:
        """Start or replace the connection's session with a JWT or an API key."""
        token = params.auth_token if params.auth_token is not None else params.token
        try:
            session = self._auth.authenticate(token or "", params.auth_type)
        except AuthError:
            conn.session = None
            if conn.record_auth_failure(
                self._security.auth_failure_limit, self._security.auth_failure_window
            ):
                conn.close_code = CLOSE_POLICY
            raise
        conn.session = session
        return AuthResult(
            authenticated=True,
            role=session.role.label,
            permissions=session.role.permissions,
            expires_at=utc_timestamp(session.expires_at)
            if session.expires_at is not None
            else None,
            session_id=conn.conn_id,
            auth_method=session.auth_method,
            user_id=session.user_id,
        )

    def discover(self, conn: RpcConnection, params: NoParams) -> dict[str, Any]:
        """The OpenRPC document of this server, generated from the method registry."""
        return self._document

    @cached_property
    def _document(self) -> dict[str, Any]:
        return openrpc_document(self._registry)
