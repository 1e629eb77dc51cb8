"""JWT (HS256) minting and checking with PyJWT, exactly as API.md §5.1 accepts them."""

from __future__ import annotations

import time

import jwt
import msgspec

from camsvc.auth.roles import Role
from camsvc.errors import AuthError

__all__ = ["Claims", "decode_token", "mint_token"]

_REQUIRED = ["user_id", "role", "iat", "exp"]
#: 9999-12-31T23:59:59Z: the largest NumericDate a Timestamp can show.
MAX_NUMERIC_DATE = 253402300799


class Claims(msgspec.Struct, frozen=True):
    """The claims camsvc uses from a valid token."""

    user_id: str
    role: Role
    iat: float
    exp: float


def mint_token(
    secret: str, user_id: str, role: Role, ttl_s: float, now: float | None = None
) -> str:
    """A signed HS256 token for `user_id` with `role`, valid for `ttl_s` seconds."""
    iat = int(now if now is not None else time.time())
    payload = {"user_id": user_id, "role": role.label, "iat": iat, "exp": iat + int(ttl_s)}
    return jwt.encode(payload, secret, algorithm="HS256")


def decode_token(token: str, secret: str, now: float | None = None) -> Claims:
    """Verify a token; raise AuthError `auth_failed` or `token_expired`."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise AuthError("auth_failed", "malformed token") from exc
    # PyJWT already refuses other algorithms when given a list; checking the header too
    # makes the rule explicit and independent of library defaults.
    if header.get("alg") != "HS256":
        raise AuthError("auth_failed", "unsupported token algorithm")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={
                "require": _REQUIRED,
                "verify_exp": False,  # checked below, without leeway
                "verify_iat": False,
                "verify_aud": False,  # other claims are ignored (API.md §5.1)
                "verify_iss": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise AuthError("auth_failed", "invalid token") from exc
    user_id, role, iat, exp = (claims[k] for k in _REQUIRED)
    if not isinstance(user_id, str) or not user_id:
        raise AuthError("auth_failed", "claim user_id must be a non-empty string")
    if not isinstance(role, str) or role not in ("viewer", "operator", "admin"):
        raise AuthError("auth_failed", "claim role must be viewer, operator or admin")
    for name, value in (("iat", iat), ("exp", exp)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise AuthError("auth_failed", f"claim {name} must be a number")
        # PyJWT's JSON takes NaN and Infinity, which are no JSON numbers: NaN would never
        # compare as expired. Times past year 9999 cannot be shown as Timestamps (API.md §1).
        if not -MAX_NUMERIC_DATE <= value <= MAX_NUMERIC_DATE:
            raise AuthError("auth_failed", f"claim {name} is out of range")
    # No leeway: a token is valid strictly before its `exp`.
    if exp <= (now if now is not None else time.time()):
        raise AuthError("token_expired", "token has expired")
    return Claims(user_id=user_id, role=Role.parse(role), iat=float(iat), exp=float(exp))
