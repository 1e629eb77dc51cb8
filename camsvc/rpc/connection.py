"""Protocol-level state of one client connection: session, rate limit, auth failures."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from camsvc.auth.session import Session
from camsvc.rpc.ratelimit import TokenBucket

__all__ = ["RpcConnection"]


class RpcConnection:
    """What the dispatcher and handlers know about the connection a request came on."""

    __slots__ = (
        "_clock",
        "_session",
        "auth_failures",
        "bucket",
        "close_code",
        "conn_id",
        "host",
        "on_auth_change",
    )

    def __init__(
        self,
        conn_id: str,
        bucket: TokenBucket,
        *,
        session: Session | None = None,
        host: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.conn_id = conn_id
        self.bucket = bucket
        # Called when the connection gains or loses its session (the event bus keeps lists of
        # the authenticated connections that want each topic).
        self.on_auth_change: Callable[[], None] | None = None
        self._session = session
        # Host header of the upgrade request, for stream URLs (API.md §6).
        self.host = host
        self.auth_failures: deque[float] = deque()
        # Set by a handler when the transport must close after sending the reply.
        self.close_code: int | None = None
        self._clock = clock

    @property
    def session(self) -> Session | None:
        """The authenticated session, or None."""
        return self._session

    @session.setter
    def session(self, session: Session | None) -> None:
        changed = (session is None) != (self._session is None)
        self._session = session
        if changed and self.on_auth_change is not None:
            self.on_auth_change()

    def record_auth_failure(self, limit: int, window_s: float) -> bool:
        """Count a failed `authenticate`; True when `limit` failures fell within `window_s`."""
        now = self._clock()
        self.auth_failures.append(now)
        while self.auth_failures and self.auth_failures[0] <= now - window_s:
            self.auth_failures.popleft()
        return len(self.auth_failures) >= limit
