"""ping, rpc.discover, get_server_info and get_status (API.md §8.1, §8.7)."""

from __future__ import annotations

import platform

import camsvc


async def test_ping_needs_no_session(service, connect):
    """ping answers "pong" before authenticating."""
    client = await connect(service)
    assert await client.call("ping") == "pong"


async def test_discover_lists_every_registered_method(service, connect):
    """rpc.discover is an OpenRPC 1.2.6 document generated from the registry."""
    client = await connect(service)
    doc = await client.call("rpc.discover")
    assert doc["openrpc"] == "1.2.6"
    assert doc["info"] == {"title": "camsvc API", "version": "1.0.0"}
    names = [m["name"] for m in doc["methods"]]
    assert names == [spec.name for spec in service.app.registry]
    by_name = {m["name"]: m for m in doc["methods"]}
    assert by_name["get_status"]["x-required-role"] == "admin"
    assert by_name["ping"]["x-required-role"] == "none"
    auth_params = {p["name"]: p for p in by_name["authenticate"]["params"]}
    assert set(auth_params) == {"auth_token", "token", "auth_type"}
    assert sorted(auth_params["auth_type"]["schema"]["enum"]) == ["api_key", "auto", "jwt"]
    codes = {e["code"] for e in doc["components"]["errors"].values()}
    assert {-32700, -32600, -32601, -32602, -32603, -32001, -32002, -32040} <= codes
    assert {n["name"] for n in doc["x-notifications"]} >= {"camera_status_update", "event"}


async def test_server_info(service, connect):
    """get_server_info reports name, versions, platform and capabilities."""
    client = await connect(service, "viewer")
    info = await client.call("get_server_info")
    assert info["name"] == "camsvc"
    assert info["version"] == camsvc.__version__
    assert info["api_version"] == "1.0.0"
    assert info["python_version"] == platform.python_version()
    assert info["architecture"] == platform.machine()
    assert info["build_date"].endswith("Z")
    assert "batch" in info["capabilities"] and "api_keys" in info["capabilities"]
    assert info["supported_formats"] == ["fmp4", "mp4", "jpeg", "png"]
    assert info["max_cameras"] == 64


async def test_status(service, connect):
    """get_status: overall status in upper case and the four components."""
    client = await connect(service, "admin")
    status = await client.call("get_status")
    assert status["status"] == "HEALTHY"
    assert status["version"] == camsvc.__version__
    assert status["uptime"] >= 0
    assert status["components"]["websocket_server"] == "RUNNING"
    assert status["components"]["storage"] == "RUNNING"
    assert set(status["components"]) == {
        "websocket_server",
        "camera_monitor",
        "mediamtx",
        "storage",
    }


async def test_status_unhealthy_storage(start_service, connect):
    """A storage component over block_percent makes get_status UNHEALTHY with storage ERROR."""
    svc = await start_service(storage={"warn_percent": 0.001, "block_percent": 0.002})
    client = await connect(svc, "admin")
    status = await client.call("get_status")
    assert status["status"] == "UNHEALTHY" and status["components"]["storage"] == "ERROR"
