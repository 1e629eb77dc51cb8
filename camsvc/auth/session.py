"""Per-connection sessions and the authenticator that creates and re-checks them (API.md §5)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

import msgspec

from camsvc.auth.keys import KEY_PREFIX, ApiKey, KeyStore, KeyStoreError, is_key_syntax
from camsvc.auth.roles import Role
from camsvc.auth.tokens import decode_token
from camsvc.errors import AuthError
from camsvc.timefmt import parse_timestamp

__all__ = ["Authenticator", "Session"]

AuthMethod = Literal["jwt", "api_key", "none"]


class Session(msgspec.Struct, frozen=True):
    """Who a connection is, as established by its last successful `authenticate`."""

    user_id: str
    role: Role
    auth_method: AuthMethod
    expires_at: float | None  # Unix seconds; None for a key without expiry
    key: ApiKey | None = None


class Authenticator:
    """Checks credentials into Sessions and sessions against expiry and revocation."""

    def __init__(
        self,
        secret: str,
        keys: KeyStore,
        *,
        auth_disabled: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self._keys = keys
        self.auth_disabled = auth_disabled
        self._clock = clock

    def anonymous(self) -> Session | None:
        """The session a new connection starts with (admin when auth is disabled)."""
        if self.auth_disabled:
            return Session(
                user_id="anonymous", role=Role.ADMIN, auth_method="none", expires_at=None
            )
        return None

    def authenticate(self, token: str, auth_type: str = "auto") -> Session:
        """A session for the credential, or AuthError."""
        if self.auth_disabled:
            session = self.anonymous()
            assert session is not None
            return session
        if not token:
            raise AuthError("auth_required", "no token given")
        if auth_type == "api_key" or (auth_type == "auto" and token.startswith(KEY_PREFIX)):
            return self._from_key(token)
        claims = decode_token(token, self._secret, now=self._clock())
        return Session(
            user_id=claims.user_id, role=claims.role, auth_method="jwt", expires_at=claims.exp
        )

    def _from_key(self, token: str) -> Session:
        if not is_key_syntax(token):
            raise AuthError("auth_failed", "malformed API key")
        try:
            key = self._keys.lookup(token)
        except KeyStoreError as exc:
            raise AuthError("auth_failed", "key store unavailable") from exc
        if key is None:
            raise AuthError("auth_failed", "unknown, revoked or expired API key")
        expires = parse_timestamp(key.expires_at) if key.expires_at is not None else None
        return Session(
            user_id=f"key:{key.id}",
            role=Role.parse(key.role),
            auth_method="api_key",
            expires_at=expires,
            key=key,
        )

    def check(self, session: Session | None) -> Session:
        """The session if still valid; AuthError otherwise (the caller clears it)."""
        if session is None:
            raise AuthError("auth_required", "authenticate first")
        if session.expires_at is not None and session.expires_at <= self._clock():
            raise AuthError("token_expired", "session credential has expired")
        if session.key is not None:
            try:
                valid = self._keys.is_valid(session.key, now=self._clock())
            except KeyStoreError:
                valid = False
            if not valid:
                raise AuthError("auth_failed", "API key revoked")
        return session
