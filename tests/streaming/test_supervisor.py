"""`mediamtx.spawn`: the supervisor starts a `mediamtx` from PATH only when none answers."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import trio

from camsvc.config import MediaMTXConfig, RecordingConfig
from camsvc.streaming.mediamtx import MediaMTXClient, MediaMTXUnavailable
from camsvc.streaming.standin import StandInPorts
from camsvc.streaming.supervisor import MediaMTXSupervisor, generated_config

REC = RecordingConfig(path="/rec")

# A fake `mediamtx` binary: reads the generated config and serves it with the stand-in.
FAKE = """#!{python}
import sys, yaml
from camsvc.streaming.standin.__main__ import main
conf = yaml.safe_load(open(sys.argv[1]))
sys.exit(main(["--api-port", conf["apiAddress"].rsplit(":", 1)[1],
               "--rtsp-port", conf["rtspAddress"].rsplit(":", 1)[1]]))
"""


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def supervisor(api_url: str, **cfg: object) -> MediaMTXSupervisor:
    """A supervisor for `api_url` with config overrides."""
    mtx = MediaMTXConfig(api_url=api_url, **cfg)  # type: ignore[arg-type]
    return MediaMTXSupervisor(mtx, REC, MediaMTXClient(api_url, timeout_s=1))


def test_generated_config() -> None:
    """The generated mediamtx.yml enables the API on api_url and uses camsvc's ports."""
    mtx = MediaMTXConfig(api_url="http://127.0.0.1:9998", rtsp_port=8555)
    conf = generated_config(mtx, REC)
    assert conf["api"] is True and conf["apiAddress"] == "127.0.0.1:9998"
    assert conf["rtspAddress"] == ":8555" and conf["paths"] == {}
    assert conf["pathDefaults"]["recordPath"] == "/rec/%path/%path_%Y-%m-%d_%H-%M-%S-%f"  # type: ignore[index]


async def test_not_spawned(nursery: trio.Nursery, ports: StandInPorts) -> None:
    """spawn never, an answering MediaMTX, or no binary on PATH: nothing is started."""
    dead = f"http://127.0.0.1:{free_port()}"
    assert await nursery.start(supervisor(dead, spawn="never").run) is False
    assert await nursery.start(supervisor(ports.api_url).run) is False
    missing = supervisor(dead, binary="no-such-mediamtx-binary")
    assert await nursery.start(missing.run) is False


async def test_spawns_binary(nursery: trio.Nursery, tmp_path: Path) -> None:
    """No answer and a binary on PATH: it runs with the generated config until cancelled."""
    fake = tmp_path / "mediamtx"
    fake.write_text(FAKE.format(python=sys.executable))
    fake.chmod(0o755)
    api_url = f"http://127.0.0.1:{free_port()}"
    sup = supervisor(api_url, binary=str(fake), rtsp_port=free_port())
    scope = trio.CancelScope()
    nursery.start_soon(_run, sup, scope)
    with trio.fail_after(20):
        while True:
            try:
                info = await MediaMTXClient(api_url).info()
                break
            except MediaMTXUnavailable:
                await trio.sleep(0.1)
    assert info.version and sup.spawned and sup.starts == 1
    pid = sup.pid
    assert pid is not None
    scope.cancel()
    with trio.fail_after(10):
        # The supervisor's child is reaped in its own task; its pid clears then.
        while sup.pid is not None:  # noqa: ASYNC110
            await trio.sleep(0.05)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError("mediamtx still running")


async def _run(sup: MediaMTXSupervisor, scope: trio.CancelScope) -> None:
    with scope:
        await sup.run()


async def test_demo_falls_back_to_standin(nursery: trio.Nursery, tmp_path: Path) -> None:
    """Demo mode with no binary: the stand-in is started on api_url's port instead."""
    api_url = f"http://127.0.0.1:{free_port()}"
    mtx = MediaMTXConfig(api_url=api_url, binary="no-such-mediamtx", rtsp_port=free_port())
    sup = MediaMTXSupervisor(
        mtx, RecordingConfig(path=str(tmp_path)), MediaMTXClient(api_url), standin_fallback=True
    )
    scope = trio.CancelScope()
    nursery.start_soon(_run, sup, scope)
    with trio.fail_after(20):
        while True:
            try:
                info = await MediaMTXClient(api_url).info()
                break
            except MediaMTXUnavailable:
                await trio.sleep(0.1)
    assert info.version == "v1.20.1" and sup.spawned
    scope.cancel()
