"""Transport: the listeners' HTTP/1.1 routes and the `/ws` WebSocket clients.

Owns sockets, framing, timeouts and per-connection queues; knows nothing about what a
method does (that is `camsvc.rpc` and `camsvc.api`).
"""

__all__: list[str] = []
