"""API keys: `csk_` + 32 random bytes (base64url), stored only as SHA-256 (API.md §13).

The store is one JSON file that both the CLI and the service use. The service re-reads it
when the file changes, so `camsvc keys revoke` takes effect at a session's next call.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import time
from pathlib import Path
from typing import Literal

import msgspec

from camsvc.auth.roles import Role
from camsvc.timefmt import parse_timestamp, utc_timestamp

__all__ = ["ApiKey", "KeyStore", "KeyStoreError", "generate_key", "is_key_syntax"]

KEY_PREFIX = "csk_"
_KEY_RE = re.compile(r"^csk_[A-Za-z0-9_-]{43}$")


class KeyStoreError(Exception):
    """The key file cannot be read or written, or names no such key."""


class ApiKey(msgspec.Struct, frozen=True):
    """One stored key (never the plaintext)."""

    id: str
    key_sha256: str
    role: str
    created_at: str
    expires_at: str | None
    description: str
    status: Literal["active", "revoked"]


class _KeyFile(msgspec.Struct):
    keys: dict[str, ApiKey] = msgspec.field(default_factory=dict)


def generate_key() -> str:
    """A new plaintext key."""
    return KEY_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def is_key_syntax(token: str) -> bool:
    """True when `token` has the shape of an API key."""
    return _KEY_RE.match(token) is not None


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    """The key file: create, list, revoke, rotate, and look up by plaintext."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int, int] | None = None
        self._keys: dict[str, ApiKey] = {}
        self._by_hash: dict[str, ApiKey] = {}

    def _load(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._keys, self._by_hash = None, {}, {}
            return
        # Saves replace the file (new inode), so two saves within one mtime tick still differ.
        stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
        if stamp == self._stamp:
            return
        try:
            data = msgspec.json.decode(self.path.read_bytes(), type=_KeyFile)
        except (OSError, msgspec.DecodeError) as exc:
            raise KeyStoreError(f"{self.path}: cannot read key store: {exc}") from exc
        self._stamp = stamp
        self._keys = data.keys
        self._by_hash = {k.key_sha256: k for k in data.keys.values()}

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        body = msgspec.json.format(msgspec.json.encode(_KeyFile(self._keys)), indent=2)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._stamp = None

    def list(self) -> list[ApiKey]:
        """Every stored key, oldest first."""
        self._load()
        return sorted(self._keys.values(), key=lambda k: k.created_at)

    def create(
        self, role: Role, expires_s: float | None = None, description: str = ""
    ) -> tuple[ApiKey, str]:
        """Store a new key; returns its record and the plaintext (shown once)."""
        self._load()
        plaintext = generate_key()
        now = time.time()
        key = ApiKey(
            id=secrets.token_hex(4),
            key_sha256=_hash(plaintext),
            role=role.label,
            created_at=utc_timestamp(now),
            expires_at=utc_timestamp(now + expires_s) if expires_s is not None else None,
            description=description,
            status="active",
        )
        self._keys[key.id] = key
        self._save()
        return key, plaintext

    def revoke(self, key_id: str) -> ApiKey:
        """Mark a key revoked."""
        self._load()
        if key_id not in self._keys:
            raise KeyStoreError(f"no key with id {key_id!r}")
        key = msgspec.structs.replace(self._keys[key_id], status="revoked")
        self._keys[key_id] = key
        self._save()
        return key

    def rotate(self, key_id: str) -> tuple[ApiKey, str]:
        """Revoke a key and create a new one with the same role and description."""
        old = self.revoke(key_id)
        remaining: float | None = None
        if old.expires_at is not None:
            remaining = max(0.0, parse_timestamp(old.expires_at) - time.time())
        return self.create(Role.parse(old.role), remaining, old.description)

    def lookup(self, plaintext: str) -> ApiKey | None:
        """The active, unexpired key with this plaintext, else None."""
        self._load()
        digest = _hash(plaintext)
        key = self._by_hash.get(digest)
        # The dict lookup is on a hash the caller cannot steer; the final comparison is
        # constant-time anyway so no byte-by-byte timing of stored material leaks.
        if key is None or not hmac.compare_digest(key.key_sha256, digest):
            return None
        return key if self.is_valid(key) else None

    def is_valid(self, key: ApiKey, now: float | None = None) -> bool:
        """True while the key is active and not expired (re-reads the file if it changed)."""
        self._load()
        current = self._keys.get(key.id)
        if current is None or current.status != "active":
            return False
        if current.expires_at is None:
            return True
        return parse_timestamp(current.expires_at) > (now if now is not None else time.time())
