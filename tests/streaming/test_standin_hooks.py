"""Hook commands: expansion as MediaMTX does it, runOnInit started and stopped with its path."""

from __future__ import annotations

import os

import trio

from camsvc.streaming.standin import StandIn
from camsvc.streaming.standin._hooks import HookCmd, expand
from tests.streaming.conftest import Api


class TestExpand:
    def test_hook_env_first(self) -> None:
        """$VAR and ${VAR} come from the hook's environment first, unknown ones are empty."""
        env = {"MTX_PATH": "camera0", "RTSP_PORT": "8554"}
        line = "x rtsp://localhost:$RTSP_PORT/${MTX_PATH} $NOPE_NOT_SET"
        assert expand(line, env) == "x rtsp://localhost:8554/camera0 "

    def test_split_without_shell(self) -> None:
        """The command line is split like a shell would, but no shell runs it."""
        cmd = HookCmd("init", "sh -c 'echo $MTX_PATH'", {"MTX_PATH": "cam 1"}, restart=False)
        assert cmd.argv == ["sh", "-c", "echo cam 1"]


async def test_run_on_init_follows_path(standin: StandIn, api: Api) -> None:
    """runOnInit starts when the path is added and is stopped (SIGINT) when it is deleted."""
    body = {"runOnInit": "sleep 60", "runOnInitRestart": True}
    await api.call("POST", "/v3/config/paths/add/camera2", body)
    hook = standin.paths["camera2"].hooks["init"]
    with trio.fail_after(5):
        await hook.started.wait()
    pid = hook.pid
    assert pid is not None
    await api.call("DELETE", "/v3/config/paths/delete/camera2")
    with trio.fail_after(10):
        await hook.done.wait()
    assert "camera2" not in standin.paths
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError("runOnInit still running")
