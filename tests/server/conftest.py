"""Fixtures for tests that run the real service on loopback and talk to it over sockets."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio_websocket

from camsvc.app import App, BoundPorts
from camsvc.auth import Role, mint_token
from camsvc.config import Config, config_from_dict

SECRET = "test-secret-0123456789abcdef0123456789"


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Nested dict merge for config overrides."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and key in out else value
    return out


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """A Config on loopback, port 0, state under tmp_path, with sections overridden."""

    def make(**sections: dict[str, Any]) -> Config:
        base = {
            "server": {"host": "127.0.0.1", "port": 0},
            "health": {"host": "127.0.0.1", "port": 0},
            "security": {"jwt_secret_key": SECRET, "api_keys_path": str(tmp_path / "keys.json")},
            "snapshots": {"path": str(tmp_path / "snapshots")},
            "recording": {"path": str(tmp_path / "recordings")},
            "storage": {"db_path": str(tmp_path / "camsvc.db")},
        }
        return config_from_dict(merge(base, sections))

    return make


class Service:
    """A running App and how to reach it."""

    def __init__(self, app: App, ports: BoundPorts) -> None:
        self.app = app
        self.ports = ports
        self.url = f"ws://127.0.0.1:{ports.main}/ws"
        self.secret = SECRET

    def token(self, role: str = "admin", ttl_s: float = 3600, user: str = "tester") -> str:
        """A valid JWT for `role`."""
        return mint_token(SECRET, user, Role.parse(role), ttl_s)


class RpcClient:
    """A JSON-RPC client over a real trio-websocket connection."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self.ws = ws
        self._next_id = 0

    async def send(self, message: Any) -> None:
        """Send a raw message (a str as is, anything else as JSON)."""
        await self.ws.send_message(message if isinstance(message, str) else json.dumps(message))

    async def recv(self) -> Any:
        """The next message, decoded."""
        with trio.fail_after(5):
            return json.loads(await self.ws.get_message())

    async def request(self, method: str, params: Any = None, **extra: Any) -> dict[str, Any]:
        """Send a request with a fresh id and return its whole response."""
        self._next_id += 1
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": self._next_id, **extra}
        if params is not None:
            msg["params"] = params
        await self.send(msg)
        response = await self.recv()
        assert response["id"] == self._next_id
        return response

    async def call(self, method: str, params: Any = None) -> Any:
        """The `result` of a request (fails the test on an error)."""
        response = await self.request(method, params)
        assert "error" not in response, response
        return response["result"]

    async def error(self, method: str, params: Any = None) -> dict[str, Any]:
        """The `error` of a request (fails the test on success)."""
        response = await self.request(method, params)
        assert "error" in response, response
        return response["error"]


@pytest.fixture
async def start_service(
    nursery: trio.Nursery, make_config: Callable[..., Config]
) -> Callable[..., Awaitable[Service]]:
    """Start the real service in the test's nursery; returns a Service."""

    async def start(**sections: dict[str, Any]) -> Service:
        app = App(make_config(**sections))
        ports = await nursery.start(functools.partial(app.run, handle_signals=False))
        return Service(app, ports)

    return start


@pytest.fixture
async def service(start_service: Callable[..., Awaitable[Service]]) -> Service:
    """The service with default test settings."""
    return await start_service()


@pytest.fixture
def connect(nursery: trio.Nursery) -> Callable[..., Awaitable[RpcClient]]:
    """Open a WebSocket client to a Service (closed when the test ends)."""

    async def open_client(svc: Service, role: str | None = None, **kw: Any) -> RpcClient:
        ws = await trio_websocket.connect_websocket_url(nursery, svc.url, **kw)
        client = RpcClient(ws)
        if role is not None:
            await client.call("authenticate", {"auth_token": svc.token(role)})
        return client

    return open_client


@pytest.fixture
async def client(
    service: Service, connect: Callable[..., Awaitable[RpcClient]]
) -> AsyncIterator[RpcClient]:
    """An admin client of the default service."""
    yield await connect(service, "admin")
