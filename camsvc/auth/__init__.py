"""Authentication and authorisation: JWTs, API keys, roles and per-connection sessions."""

from camsvc.auth.keys import ApiKey, KeyStore, KeyStoreError, generate_key, is_key_syntax
from camsvc.auth.roles import Role
from camsvc.auth.session import Authenticator, Session
from camsvc.auth.tokens import Claims, decode_token, mint_token

__all__ = [
    "ApiKey",
    "Authenticator",
    "Claims",
    "KeyStore",
    "KeyStoreError",
    "Role",
    "Session",
    "decode_token",
    "generate_key",
    "is_key_syntax",
    "mint_token",
]
