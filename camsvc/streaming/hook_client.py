"""The hook commands MediaMTX runs, on the standard library alone so they start fast.

MediaMTX waits on these: `stop_recording` returns once `segment-complete` has reported the
last segment, and an on-demand reader waits for `on-demand`. camsvc writes them into the
path configuration as `<python> -I -S <this file> hook --socket S <hook> PATH`: no site
packages, no camsvc package, only socket, json, os, signal and sys (about 20 ms to run on
an idle machine, against 60-170 ms for `python -m camsvc hook`, which runs the same code).

The arguments are `camsvc hook`'s (hook_protocol.add_hook_arguments); a command line this
module does not handle alone (no `--socket`, `--help`, anything unexpected) is handed to
`python -m camsvc` with the same arguments. The request it writes and the reply it reads
are the lines of hook_protocol.py's msgspec Structs (tests hold the two to each other).
Exit codes: 0 done, 1 camsvc refused, 2 usage, 69 camsvc not reachable (EX_UNAVAILABLE).
Must not import anything outside the standard library.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys

TYPE_CHECKING = False  # `typing` alone takes longer to import than all the rest
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Final

__all__ = [
    "EX_UNAVAILABLE",
    "HOOKS",
    "HookError",
    "Stop",
    "install_signal_handlers",
    "main",
    "run",
]

EX_UNAVAILABLE: Final = 69  # sysexits.h: the service is not available
EX_USAGE: Final = 2
MAX_LINE: Final = 16 * 1024  # as hook_protocol.MAX_LINE
REPLY_TIMEOUT_S: Final = 5.0  # how long a hook waits for camsvc's reply to its request
PR_SET_PDEATHSIG: Final = 1  # prctl(2): signal this process when its parent dies
HOOKS: Final = ("on-demand", "segment-complete")


class Stop(Exception):
    """SIGINT/SIGTERM from MediaMTX: the on-demand use is over."""


class HookError(Exception):
    """The hook could not do its job; `code` is its exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _stop(signum: int, frame: object) -> None:
    raise Stop


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM end a hook quietly (MediaMTX sends SIGINT to stop runOnDemand)."""
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)


def _connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(REPLY_TIMEOUT_S)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise HookError(f"camsvc is not reachable at {path}: {exc}", EX_UNAVAILABLE) from exc
    return sock


def _ask(sock: socket.socket, request: dict[str, object]) -> None:
    """Send `request` (one JSON line) and read the reply; HookError unless it is ok."""
    try:
        sock.sendall(json.dumps(request, separators=(",", ":")).encode() + b"\n")
        line = sock.makefile("rb").readline(MAX_LINE)
    except OSError as exc:
        raise HookError(f"camsvc did not answer: {exc}", EX_UNAVAILABLE) from exc
    if not line:
        raise HookError("camsvc closed the connection without an answer", EX_UNAVAILABLE)
    try:
        reply = json.loads(line)
        ok, error = reply["ok"], reply.get("error", "")
        if not isinstance(ok, bool) or not isinstance(error, str):
            raise TypeError(f"not a reply: {reply!r}")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise HookError(f"camsvc answered something else: {exc}", 1) from exc
    if not ok:
        raise HookError(f"camsvc refused: {error}", 1)


def _die_with_parent() -> None:
    """End with MediaMTX even if it cannot stop us (SIGKILL, crash): an orphaned on-demand
    command would hold the camera's publisher forever."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes  # only here: segment-complete must start fast

    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before prctl took effect
        raise Stop


def _hold(sock: socket.socket) -> None:
    """Block until MediaMTX stops the command (signal) or camsvc goes away (EOF)."""
    sock.settimeout(None)
    try:
        while sock.recv(4096):
            pass  # camsvc sends nothing after the reply
    except Stop:
        return
    except OSError as exc:
        raise HookError(f"connection to camsvc lost: {exc}", 1) from exc
    raise HookError("camsvc closed the connection", 1)


def _env_float(name: str) -> float | None:
    try:
        return float(os.environ[name])
    except (KeyError, ValueError):
        return None


def run(hook: str, path: str | None, segment: str | None, socket_path: str) -> int:
    """Run `hook` for camera `path` against camsvc at `socket_path`; the exit code.
    A missing `path`/`segment` comes from MediaMTX's environment."""
    path = path or os.environ.get("MTX_PATH", "")
    try:
        if not path:
            raise HookError("no path given and MTX_PATH is not set", EX_USAGE)
        if hook == "on-demand":
            _die_with_parent()
            with _connect(socket_path) as sock:
                _ask(sock, {"type": "on_demand", "path": path})
                _hold(sock)
        else:
            segment = segment or os.environ.get("MTX_SEGMENT_PATH", "")
            if not segment:
                raise HookError("no segment given and MTX_SEGMENT_PATH is not set", EX_USAGE)
            request: dict[str, object] = {
                "type": "segment_complete",
                "path": path,
                "segment": segment,
            }
            duration = _env_float("MTX_SEGMENT_DURATION")
            if duration is not None:
                request["duration"] = duration
            with _connect(socket_path) as sock:
                _ask(sock, request)
    except (Stop, KeyboardInterrupt):
        return 0  # stopped before camsvc answered: nothing is held
    except HookError as exc:
        print(f"camsvc hook {hook} {path}: {exc}", file=sys.stderr)
        return exc.code
    return 0


def _parse(argv: Sequence[str]) -> tuple[str, str, list[str]] | None:
    """(socket, hook, positionals) of `hook --socket S HOOK [ARGS]`, None for anything else."""
    args = list(argv)
    if args[:1] != ["hook"]:
        return None
    args = args[1:]
    sock = None
    if args[:1] == ["--socket"] and len(args) > 1:
        sock, args = args[1], args[2:]
    elif args and args[0].startswith("--socket="):
        sock, args = args[0].split("=", 1)[1], args[1:]
    if not sock or not args or args[0] not in HOOKS:
        return None
    hook, rest = args[0], args[1:]
    limit = 1 if hook == "on-demand" else 2
    if len(rest) > limit or any(a.startswith("-") for a in rest):
        return None
    return sock, hook, rest


def _full_cli(argv: Sequence[str]) -> int:
    """Hand the command line to `python -m camsvc` (help, usage errors, config lookup)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    os.execve(sys.executable, [sys.executable, "-m", "camsvc", *argv], env)
    return 1  # not reached


def main(argv: Sequence[str]) -> int:
    """`<python> -I -S hook_client.py hook --socket S HOOK [PATH [SEGMENT]]`."""
    install_signal_handlers()
    parsed = _parse(argv)
    if parsed is None:
        return _full_cli(argv)
    sock, hook, rest = parsed
    path = rest[0] if rest else None
    segment = rest[1] if len(rest) > 1 else None
    return run(hook, path, segment, sock)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
