"""WebSocket and HTTP transport behaviour on real loopback sockets (API.md §2, §10.1)."""

from __future__ import annotations

import json

import pytest
import trio
import trio_websocket
import wsproto
from wsproto.events import AcceptConnection, CloseConnection, Ping, Request, TextMessage


async def _closed_code(ws: trio_websocket.WebSocketConnection) -> int:
    """Read until the server closes; return its close code."""
    with trio.fail_after(5):
        try:
            while True:
                await ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            return exc.reason.code


class RawClient:
    """A wsproto client that answers pings only when told to (to test keepalive)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self.pings = 0

    @classmethod
    async def open(cls, port: int) -> RawClient:
        client = cls(await trio.open_tcp_stream("127.0.0.1", port))
        await client.stream.send_all(client.ws.send(Request(host="127.0.0.1", target="/ws")))
        event = await client.next_event()
        assert isinstance(event, AcceptConnection)
        return client

    async def next_event(self) -> wsproto.events.Event | None:
        """The next event, or None at EOF."""
        while True:
            for event in self.ws.events():
                return event
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self.ws.receive_data(data)

    async def send_text(self, text: str) -> None:
        await self.stream.send_all(self.ws.send(TextMessage(data=text)))


class TestMessages:
    """Frames the server refuses."""

    async def test_oversized_message_closes_1009(self, start_service, connect):
        """A message over max_message_size closes the connection with 1009."""
        svc = await start_service(server={"max_message_size": 4096})
        client = await connect(svc)
        await client.send(
            '{"jsonrpc":"2.0","method":"ping","params":{"x":"' + "a" * 5000 + '"},"id":1}'
        )
        assert await _closed_code(client.ws) == 1009

    async def test_message_at_limit_is_served(self, start_service, connect):
        """A message just under the limit is answered."""
        svc = await start_service(server={"max_message_size": 4096})
        client = await connect(svc)
        assert await client.call("ping", {"x": "a" * 3900}) == "pong"

    async def test_binary_frame_closes_1003(self, service, connect):
        """Binary frames are refused with close 1003."""
        client = await connect(service)
        await client.ws.send_message(b'{"jsonrpc":"2.0","method":"ping","id":1}')
        assert await _closed_code(client.ws) == 1003


class TestUpgrade:
    """Checks before the WebSocket is accepted."""

    async def test_connection_cap_503(self, start_service, connect):
        """With max_connections open, the next upgrade gets HTTP 503; HTTP requests still work."""
        svc = await start_service(server={"max_connections": 2})
        await connect(svc)
        await connect(svc)
        with pytest.raises(trio_websocket.ConnectionRejected) as info:
            async with trio_websocket.open_websocket_url(svc.url):
                pass
        assert info.value.status_code == 503
        assert json.loads(info.value.body) == {
            "error": "Maximum connections reached",
            "status": 503,
        }
        status, _, _ = await http_get(svc.ports.main, "/health")
        assert status == 200

    async def test_slot_freed_on_close(self, start_service, connect):
        """A closed connection frees its slot."""
        svc = await start_service(server={"max_connections": 1})
        first = await connect(svc)
        await first.ws.aclose()
        with trio.fail_after(5):
            while len(svc.app.connections):
                await trio.testing.wait_all_tasks_blocked()
        second = await connect(svc)
        assert await second.call("ping") == "pong"

    @pytest.mark.parametrize(
        ("allowed", "origin", "ok"),
        [
            (["*"], "http://evil.example", True),
            (["http://ui.example:3000"], "http://ui.example:3000", True),
            (["http://ui.example:3000"], "HTTP://UI.EXAMPLE:3000", True),
            (["http://ui.example:3000"], "http://evil.example", False),
            (["http://ui.example:3000"], None, True),
        ],
    )
    async def test_origin(self, start_service, allowed, origin, ok):
        """Absent Origin is allowed; present must match the allow-list (case-insensitive) or 403."""
        svc = await start_service(security={"allowed_origins": allowed})
        headers = [("Origin", origin)] if origin else None
        if ok:
            async with trio_websocket.open_websocket_url(svc.url, extra_headers=headers) as ws:
                await ws.send_message('{"jsonrpc":"2.0","method":"ping","id":1}')
                assert json.loads(await ws.get_message())["result"] == "pong"
        else:
            with pytest.raises(trio_websocket.ConnectionRejected) as info:
                async with trio_websocket.open_websocket_url(svc.url, extra_headers=headers):
                    pass
            assert info.value.status_code == 403

    async def test_slow_headers_time_out(self, start_service):
        """A client that never finishes its request head is answered 408 and closed."""
        svc = await start_service(server={"read_timeout": 0.3})
        stream = await trio.open_tcp_stream("127.0.0.1", svc.ports.main)
        await stream.send_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        data = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(4096):
                data += chunk
        assert data.startswith(b"HTTP/1.1 408")


class TestKeepalive:
    """Server pings; silent clients that answer stay, clients that do not are dropped."""

    async def test_client_answering_pings_stays(self, start_service):
        """Across several ping intervals a client that answers pings keeps working."""
        svc = await start_service(server={"ping_interval": 0.05, "pong_wait": 0.5})
        raw = await RawClient.open(svc.ports.main)
        with trio.fail_after(10):
            while raw.pings < 3:
                event = await raw.next_event()
                assert isinstance(event, Ping)
                raw.pings += 1
                await raw.stream.send_all(raw.ws.send(event.response()))
            await raw.send_text('{"jsonrpc":"2.0","method":"ping","id":1}')
            while True:
                event = await raw.next_event()
                if isinstance(event, Ping):
                    await raw.stream.send_all(raw.ws.send(event.response()))
                    continue
                break
        assert isinstance(event, TextMessage)
        assert json.loads(event.data)["result"] == "pong"

    async def test_client_ignoring_pings_is_dropped(self, start_service):
        """No pong within pong_wait: the server closes with 1011 (or drops the socket)."""
        svc = await start_service(server={"ping_interval": 0.05, "pong_wait": 0.2})
        raw = await RawClient.open(svc.ports.main)
        with trio.fail_after(10):
            while True:
                event = await raw.next_event()
                if event is None:
                    break
                if isinstance(event, CloseConnection):
                    assert event.code == 1011
                    break
            while len(svc.app.connections):
                await trio.testing.wait_all_tasks_blocked()
        assert len(svc.app.connections) == 0

    async def test_client_pings_are_answered(self, service, connect):
        """A client's ping gets a pong."""
        client = await connect(service)
        with trio.fail_after(5):
            await client.ws.ping(b"hello")


async def http_get(
    port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None
):
    """One HTTP/1.1 request; returns (status, headers, body)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = b""
    with trio.fail_after(5):
        while chunk := await stream.receive_some(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    hdrs = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}
    return int(status_line.split()[1]), hdrs, body


class TestHttp:
    """Routes on both listeners."""

    @pytest.mark.parametrize("listener", ["main", "health"])
    async def test_health(self, service, listener):
        """/health answers 200 with the spec's fields and headers on both listeners."""
        port = service.ports.main if listener == "main" else service.ports.health
        status, headers, body = await http_get(port, "/health")
        assert status == 200
        assert headers["content-type"] == "application/json"
        assert headers["cache-control"] == "no-store"
        assert headers["access-control-allow-origin"] == "*"
        doc = json.loads(body)
        assert doc["status"] == "healthy" and doc["version"] and doc["uptime_seconds"] >= 0

    async def test_live_ready_detailed(self, service):
        """The other health routes answer with their documented bodies."""
        status, _, body = await http_get(service.ports.main, "/health/live")
        assert status == 200 and json.loads(body)["alive"] is True
        status, _, body = await http_get(service.ports.main, "/health/ready")
        assert status == 200 and json.loads(body)["message"] == "System is ready"
        status, _, body = await http_get(service.ports.health, "/health/detailed")
        doc = json.loads(body)
        names = {c["name"] for c in doc["components"]}
        assert {"websocket_server", "storage"} <= names
        assert doc["metrics"]["component_count"] == len(doc["components"])

    async def test_unhealthy_storage_gives_503(self, start_service, tmp_path):
        """Storage usage at or above block_percent makes /health 503 and status unhealthy."""
        svc = await start_service(storage={"warn_percent": 0.001, "block_percent": 0.002})
        status, _, body = await http_get(svc.ports.main, "/health")
        assert status == 503 and json.loads(body)["status"] == "unhealthy"

    async def test_head_has_no_body(self, service):
        """HEAD answers the headers of GET, with Content-Length and no body."""
        status, headers, body = await http_get(service.ports.main, "/health", method="HEAD")
        assert status == 200 and body == b"" and int(headers["content-length"]) > 0

    async def test_not_found_and_method_not_allowed(self, service):
        """Unknown paths 404; other methods 405 with Allow; JSON error bodies."""
        status, _, body = await http_get(service.ports.main, "/nope")
        assert status == 404 and json.loads(body) == {"error": "Not Found", "status": 404}
        status, headers, _ = await http_get(service.ports.main, "/health", method="DELETE")
        assert status == 405 and headers["allow"] == "GET, HEAD"

    async def test_health_listener_has_no_websocket(self, service):
        """The health listener serves only /health*."""
        status, _, _ = await http_get(service.ports.health, "/ws")
        assert status == 404

    async def test_keep_alive(self, service):
        """Two requests on one connection are both answered."""
        stream = await trio.open_tcp_stream("127.0.0.1", service.ports.main)
        req = b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"
        await stream.send_all(req + req)
        data = b""
        with trio.fail_after(5):
            while data.count(b"HTTP/1.1 200") < 2:
                data += await stream.receive_some(65536)
        await stream.aclose()


class TestShutdown:
    """Graceful shutdown (the CLI test checks the exit code on SIGTERM)."""

    async def test_clients_closed_with_1001_and_live_turns_503(self, service, connect):
        """request_shutdown closes WebSocket clients with 1001."""
        client = await connect(service, "admin")
        service.app.request_shutdown()
        assert await _closed_code(client.ws) == 1001
        with pytest.raises(OSError):
            await trio.open_tcp_stream("127.0.0.1", service.ports.main)
