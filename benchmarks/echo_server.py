"""Bare echo servers: every WebSocket message is answered with one constant `pong` reply.

The baselines for `make bench-rpc`, driven by the same load generator and request payloads as
camsvc:

- `--impl trio-websocket` (the default): `trio_websocket.serve_websocket`, i.e. the same
  WebSocket library camsvc uses, with nothing else between the socket and the reply. The ratio
  of camsvc's throughput to this one's shows the cost of camsvc's own layers.
- `--impl wsproto`: one Trio task per connection driving `wsproto` directly: read what the
  socket has, answer every complete message in it, send all the replies with one `send_all`.
  No reader task, message channel or send lock per connection: this shows how much of the
  budget trio-websocket's own machinery takes, i.e. the headroom of a leaner transport.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import sys
from functools import partial

import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

__all__ = ["REPLY", "main", "serve", "serve_wsproto"]

REPLY = '{"jsonrpc":"2.0","id":1,"result":"pong"}'
MAX_MESSAGE = 1048576
RECEIVE_SIZE = 65536


async def _handler(request: WebSocketRequest) -> None:
    ws = await request.accept()
    try:
        while True:
            await ws.get_message()
            await ws.send_message(REPLY)
    except ConnectionClosed:
        pass


async def serve(host: str, port: int, receive_buffer_size: int = RECEIVE_SIZE) -> None:
    """Serve the trio-websocket echo on `host:port` until cancelled."""
    await serve_websocket(
        _handler,
        host,
        port,
        ssl_context=None,
        max_message_size=MAX_MESSAGE,
        receive_buffer_size=receive_buffer_size,
    )


async def _wsproto_connection(stream: trio.SocketStream) -> None:
    ws = WSConnection(ConnectionType.SERVER)
    reply = TextMessage(data=REPLY)
    pending_text = 0
    try:
        while True:
            data = await stream.receive_some(RECEIVE_SIZE)
            if not data:
                return
            ws.receive_data(data)
            out = bytearray()
            for event in ws.events():
                if isinstance(event, TextMessage | BytesMessage):
                    pending_text += len(event.data)
                    if pending_text > MAX_MESSAGE:
                        out += ws.send(CloseConnection(code=1009))
                        await stream.send_all(out)
                        return
                    if event.message_finished:
                        pending_text = 0
                        out += ws.send(reply)
                elif isinstance(event, Request):
                    out += ws.send(AcceptConnection())
                elif isinstance(event, Ping):
                    out += ws.send(event.response())
                elif isinstance(event, CloseConnection):
                    out += ws.send(event.response())
                    await stream.send_all(out)
                    return
            if out:
                await stream.send_all(out)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    except (LocalProtocolError, RemoteProtocolError):
        pass
    finally:
        await trio.aclose_forcefully(stream)


async def serve_wsproto(host: str, port: int) -> None:
    """Serve the single-task wsproto echo on `host:port` until cancelled."""
    await trio.serve_tcp(_wsproto_connection, port, host=host)


def main(argv: list[str] | None = None) -> int:
    """Command line: `python -m benchmarks.echo_server --port P [--impl wsproto]`."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.echo_server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--impl", choices=("trio-websocket", "wsproto"), default="trio-websocket")
    args = p.parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    run = serve if args.impl == "trio-websocket" else serve_wsproto
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(partial(run, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
