"""The `camsvc` command line, run as a real process."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
import trio
import trio_websocket

from camsvc.auth import Role, mint_token

SECRET = "cli-test-secret-0123456789abcdef012345"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("CAMERA_SERVICE_")}
    e.update(
        CAMERA_SERVICE_JWT_SECRET=SECRET,
        CAMERA_SERVICE_SECURITY_API_KEYS_PATH=str(tmp_path / "keys.json"),
        CAMERA_SERVICE_SNAPSHOTS_PATH=str(tmp_path / "snap"),
        CAMERA_SERVICE_RECORDING_PATH=str(tmp_path / "rec"),
        CAMERA_SERVICE_SERVER_HOST="127.0.0.1",
        CAMERA_SERVICE_HEALTH_HOST="127.0.0.1",
        CAMSVC_CONFIG=str(tmp_path / "none.yaml"),
    )
    (tmp_path / "none.yaml").write_text("{}\n")
    return e


def camsvc(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "camsvc", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )


def test_version_and_help(env):
    """--version prints the version; --help lists every command."""
    assert camsvc("--version", env=env).stdout.startswith("camsvc ")
    out = camsvc("--help", env=env).stdout
    for command in ("serve", "token", "keys"):
        assert command in out


def test_token_is_valid_jwt(env):
    """`camsvc token` mints an HS256 token with the role, user and ttl asked for."""
    out = camsvc(
        "token", "--role", "operator", "--ttl", "2h", "--user", "alice", env=env
    ).stdout.strip()
    claims = jwt.decode(out, SECRET, algorithms=["HS256"])
    assert claims["role"] == "operator" and claims["user_id"] == "alice"
    assert claims["exp"] - claims["iat"] == 7200


def test_token_rejects_bad_role(env):
    """A role outside viewer/operator/admin is a usage error."""
    result = camsvc("token", "--role", "root", env=env, check=False)
    assert result.returncode == 2 and "role must be" in result.stderr


def test_keys_lifecycle(env, tmp_path):
    """create prints the key once; list never shows it; revoke and rotate update the store."""
    out = camsvc("keys", "create", "--role", "viewer", "--description", "cam wall", env=env).stdout
    key_id = re.search(r"id:\s+(\S+)", out).group(1)
    key = re.search(r"key:\s+(csk_\S+)", out).group(1)
    assert re.fullmatch(r"csk_[A-Za-z0-9_-]{43}", key)
    listing = camsvc("keys", "list", env=env).stdout
    assert key_id in listing and "cam wall" in listing and key not in listing
    stored = (tmp_path / "keys.json").read_text()
    assert key not in stored
    assert oct((tmp_path / "keys.json").stat().st_mode & 0o777) == "0o600"
    out = camsvc("keys", "rotate", key_id, env=env).stdout
    new_id = re.search(r"id:\s+(\S+)", out).group(1)
    data = json.loads((tmp_path / "keys.json").read_text())["keys"]
    assert data[key_id]["status"] == "revoked" and data[new_id]["status"] == "active"
    assert data[new_id]["role"] == "viewer" and data[new_id]["description"] == "cam wall"
    assert camsvc("keys", "revoke", "nope", env=env, check=False).returncode == 1


def test_serve_without_secret_exits_with_message(env):
    """No JWT secret and auth not disabled: exit 2 with a message saying what to set."""
    env = {k: v for k, v in env.items() if k != "CAMERA_SERVICE_JWT_SECRET"}
    result = camsvc("serve", env=env, check=False)
    assert result.returncode == 2 and "CAMERA_SERVICE_JWT_SECRET" in result.stderr


def test_config_error_names_key(env):
    """A bad value stops the service at start, naming the key."""
    result = camsvc("serve", env={**env, "CAMERA_SERVICE_SERVER_PORT": "many"}, check=False)
    assert result.returncode == 2 and "server.port" in result.stderr


async def _ws_ping(url: str) -> str:
    with trio.fail_after(10):
        async with trio_websocket.open_websocket_url(url) as ws:
            await ws.send_message('{"jsonrpc": "2.0", "method": "ping", "id": 1}')
            return json.loads(await ws.get_message())["result"]


def test_serve_answers_then_exits_0_on_sigterm(env):
    """`camsvc serve` answers ping and /health, logs JSON without secrets, exits 0 on SIGTERM."""
    port, health = _free_port(), _free_port()
    env = {
        **env,
        "CAMERA_SERVICE_SERVER_PORT": str(port),
        "CAMERA_SERVICE_HEALTH_PORT": str(health),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "camsvc", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        line = ""
        while "listening" not in line:
            assert time.monotonic() < deadline, "service did not start"
            line = proc.stderr.readline()
            assert line, "service exited early"
        event = json.loads(line)
        assert event["event"] == "listening" and event["port"] == port
        with socket.create_connection(("127.0.0.1", health), timeout=5) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200")
        assert trio.run(_ws_ping, f"ws://127.0.0.1:{port}/ws") == "pong"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    logs = proc.stderr.read()
    assert SECRET not in logs
    assert "shutdown_complete" in logs


def test_rlimit_raised():
    """The soft open-file limit is raised to the hard limit."""
    import resource

    from camsvc.cli import raise_nofile_limit

    _, hard = raise_nofile_limit()
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard


def test_log_redaction():
    """Credential-like keys never reach a log line."""
    import io

    import structlog

    from camsvc.logs import configure_logging

    buf = io.StringIO()
    configure_logging("debug", "json", stream=buf)
    try:
        structlog.get_logger("t").info(
            "auth", token="eyJabc", auth_token="x", api_key="csk_y", user="bob"
        )
    finally:
        structlog.reset_defaults()
    line = json.loads(buf.getvalue())
    assert line["token"] == line["auth_token"] == line["api_key"] == "***"
    assert line["user"] == "bob"


def _start(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], int]:
    port, health = _free_port(), _free_port()
    env = {
        **env,
        "CAMERA_SERVICE_SERVER_PORT": str(port),
        "CAMERA_SERVICE_HEALTH_PORT": str(health),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "camsvc", "serve", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, port


async def _result(ws: trio_websocket.WebSocketConnection, request: dict) -> dict:
    """The result of `request`, skipping the notifications that come meanwhile."""
    await ws.send_message(json.dumps(request))
    while "id" not in (reply := json.loads(await ws.get_message())):
        pass
    assert reply["id"] == request["id"] and "result" in reply, reply
    return reply["result"]


async def _camera_list(url: str) -> dict:
    with trio.fail_after(20):
        async with trio_websocket.open_websocket_url(url) as ws:
            token = mint_token(SECRET, "t", Role.VIEWER, 60)
            auth = {"jsonrpc": "2.0", "method": "authenticate", "params": {"auth_token": token}}
            assert (await _result(ws, {**auth, "id": 1}))["authenticated"]
            listing = {"jsonrpc": "2.0", "method": "get_camera_list"}
            request_id = 1
            while True:
                request_id += 1
                result = await _result(ws, {**listing, "id": request_id})
                if result["connected"] == 2:
                    return result
                await trio.sleep(0.1)  # the first scan of the demo devices is still running


def test_serve_demo_lists_two_cameras(env):
    """`camsvc serve --demo` says so in its first lines and lists two CONNECTED cameras."""
    proc, port = _start(env, "--demo")
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while not any("listening" in line for line in lines):
            assert time.monotonic() < deadline, "service did not start"
            line = proc.stderr.readline()
            assert line, "service exited early: " + "".join(lines)
            lines.append(line)
        assert json.loads(lines[0])["event"] == "demo_mode"
        result = trio.run(_camera_list, f"ws://127.0.0.1:{port}/ws")
        assert [c["device"] for c in result["cameras"]] == ["camera0", "camera1"]
        assert {c["status"] for c in result["cameras"]} == {"CONNECTED"}
        assert result["cameras"][0]["name"] == "Demo Camera 0"
        demo_dir = json.loads(lines[0])["device_dir"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert not Path(demo_dir).exists()
    finally:
        proc.kill()
