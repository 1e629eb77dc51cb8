"""A bare trio-websocket server that answers every message with one constant `pong` reply.

The baseline for `make bench-rpc`: the same load generator and request payloads as against
camsvc, with nothing but trio-websocket (and wsproto) between the socket and the reply, so
the ratio of camsvc's throughput to this one's shows the cost of camsvc's own layers.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import sys

import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

__all__ = ["REPLY", "main", "serve"]

REPLY = '{"jsonrpc":"2.0","id":1,"result":"pong"}'


async def _handler(request: WebSocketRequest) -> None:
    ws = await request.accept()
    try:
        while True:
            await ws.get_message()
            await ws.send_message(REPLY)
    except ConnectionClosed:
        pass


async def serve(host: str, port: int, receive_buffer_size: int = 65536) -> None:
    """Serve the echo WebSocket on `host:port` until cancelled."""
    await serve_websocket(
        _handler,
        host,
        port,
        ssl_context=None,
        max_message_size=1048576,
        receive_buffer_size=receive_buffer_size,
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: `python -m benchmarks.echo_server --port P`."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.echo_server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(serve, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
