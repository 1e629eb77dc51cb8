"""Credentials on plain HTTP routes (API.md §5.1, §5.5, §10.3): a guard that wraps a route.

A protected route declares its minimum role; the guard reads `Authorization: Bearer <JWT or
API key>` or `X-API-Key: <key>`, checks it with the Authenticator, and answers 401 (missing,
invalid or expired, with `WWW-Authenticate`) or 403 (role too low) before the route runs.
Nothing is checked when auth is disabled. This module owns no state and never touches keys
or tokens itself: the Authenticator decides.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec
import structlog

from camsvc.auth.roles import Role
from camsvc.auth.session import Authenticator, Session
from camsvc.errors import AuthError
from camsvc.server.http import HttpRequest, HttpResponse, Route, error_response

__all__ = ["WWW_AUTHENTICATE", "Credential", "credential_of", "require_role"]

log = structlog.get_logger("camsvc.http")

#: The challenge every 401 carries (API.md §10.3).
WWW_AUTHENTICATE: Final = 'Bearer realm="camsvc"'


class Credential(msgspec.Struct, frozen=True):
    """A token from the request headers and how the Authenticator should read it."""

    token: str
    auth_type: Literal["auto", "api_key"]


def credential_of(headers: dict[str, str]) -> Credential | None:
    """The credential of a request: a Bearer token (JWT or key), else X-API-Key, else None."""
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return Credential(token.strip(), "auto")
    key = headers.get("x-api-key", "").strip()
    if key:
        return Credential(key, "api_key")
    return None


def _unauthorized(text: str) -> HttpResponse:
    return error_response(401, text, [("WWW-Authenticate", WWW_AUTHENTICATE)])


def require_role(authenticator: Authenticator, min_role: Role, route: Route) -> Route:
    """`route` behind a credential check: 401 without valid credentials, 403 below `min_role`."""

    async def guarded(req: HttpRequest) -> HttpResponse:
        if authenticator.auth_disabled:
            return await route(req)
        credential = credential_of(req.headers)
        if credential is None:
            return _unauthorized("Authentication required")
        try:
            session: Session = authenticator.authenticate(credential.token, credential.auth_type)
        except AuthError as exc:
            log.info("http_auth_failed", path=req.path, reason=exc.reason)
            text = "Token expired" if exc.reason == "token_expired" else "Invalid credentials"
            return _unauthorized(text)
        if session.role < min_role:
            log.info("http_forbidden", path=req.path, role=session.role.label)
            return error_response(403, "Forbidden")
        return await route(req)

    return guarded
