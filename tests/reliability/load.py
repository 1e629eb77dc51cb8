"""Load clients for the shutdown check and the soak: each keeps a few requests in flight at a
set rate and accounts for every one (answered, with which code, or still outstanding).
"""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import trio
import trio_websocket

__all__ = ["LoadClient", "Request"]

#: (method, params) of one request; a factory so params can change per call.
Request = tuple[str, dict[str, Any] | None]


class LoadClient:
    """One authenticated WebSocket client sending `next_request()` at `rate` per second
    with at most `window` requests outstanding."""

    def __init__(
        self,
        url: str,
        token: str,
        next_request: Callable[[], Request],
        *,
        rate: float = math.inf,
        window: int = 4,
        reply_timeout_s: float = 10,
    ) -> None:
        self.url = url
        self._token = token
        self._next_request = next_request
        self._rate = rate
        self._window = trio.Semaphore(window)
        self._reply_timeout_s = reply_timeout_s
        self._ids = itertools.count(1)
        self._stop = trio.Event()
        self._receiving = trio.CancelScope()
        #: id -> (method, send time) of requests not answered yet.
        self.outstanding: dict[int, tuple[str, float]] = {}
        self.sent = 0
        self.answered = 0
        self.codes: Counter[int] = Counter()  # 0 for results, else the error code
        self.notifications = 0
        self.slowest_s = 0.0
        self.slowest: dict[str, float] = {}  # by method
        self.close_code: int | None = None
        self.ws: trio_websocket.WebSocketConnection | None = None

    def stop(self) -> None:
        """Stop sending; `run` returns once every outstanding request is answered."""
        self._stop.set()
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self._stop.is_set() and not self.outstanding:
            self._receiving.cancel()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, authenticate, then send and receive until stopped (and answered) or until
        the server closes the connection (`close_code`)."""
        async with trio.open_nursery() as nursery:
            self.ws = await trio_websocket.connect_websocket_url(nursery, self.url)
            await self.ws.send_message(
                json.dumps({"jsonrpc": "2.0", "method": "authenticate", "id": 0,
                            "params": {"auth_token": self._token}})
            )  # fmt: skip
            with trio.fail_after(self._reply_timeout_s):
                reply = json.loads(await self.ws.get_message())
                while "id" not in reply:  # a notification may come first
                    self.notifications += 1
                    reply = json.loads(await self.ws.get_message())
            if "result" not in reply:
                raise RuntimeError(f"authenticate failed: {reply}")
            task_status.started()
            nursery.start_soon(self._send_loop)
            try:
                with self._receiving:
                    await self._receive_loop()
            finally:
                nursery.cancel_scope.cancel()

    async def _send_loop(self) -> None:
        assert self.ws is not None
        due = trio.current_time()
        try:
            while not self._stop.is_set():
                if self._rate != math.inf:
                    due += 1 / self._rate
                    await trio.sleep_until(due)
                await self._window.acquire()
                if self._stop.is_set():
                    self._window.release()
                    return
                method, params = self._next_request()
                request_id = next(self._ids)
                message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
                if params is not None:
                    message["params"] = params
                self.outstanding[request_id] = (method, trio.current_time())
                await self.ws.send_message(json.dumps(message))
                self.sent += 1
        except trio_websocket.ConnectionClosed:
            return

    async def _receive_loop(self) -> None:
        assert self.ws is not None
        try:
            while True:
                self._account(json.loads(await self.ws.get_message()))
        except trio_websocket.ConnectionClosed as exc:
            self.close_code = exc.reason.code

    def _account(self, reply: Any) -> None:
        if not isinstance(reply, dict) or "id" not in reply:
            self.notifications += 1
            return
        entry = self.outstanding.pop(reply["id"], None)
        if entry is None:
            return  # authenticate's, or a duplicate (counted by the caller's checks)
        took = trio.current_time() - entry[1]
        self.slowest_s = max(self.slowest_s, took)
        self.slowest[entry[0]] = max(self.slowest.get(entry[0], 0.0), took)
        self.answered += 1
        self.codes[reply["error"]["code"] if "error" in reply else 0] += 1
        self._window.release()
        self._maybe_done()
