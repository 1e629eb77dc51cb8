"""`camsvc hook ...`: the commands MediaMTX runs as path hooks, and what they say to camsvc.

Owns: the wire messages of camsvc's control socket (one msgspec-JSON object per line:
a request, then one reply), the socket's default location, the command lines camsvc writes
into MediaMTX's path configuration, and the hook commands themselves:

- `hook on-demand [PATH]` (runOnDemand): asks camsvc to publish the camera, then holds the
  connection open for as long as MediaMTX keeps the command running. MediaMTX ends it
  (SIGINT) once the path has had no reader for runOnDemandCloseAfter; the closed
  connection is what tells camsvc this use of the publisher is over.
- `hook segment-complete [PATH [SEGMENT]]` (runOnRecordSegmentComplete): tells camsvc a
  recording segment is finished, so it is catalogued and stop_recording can return.

Arguments left out come from MediaMTX's environment (MTX_PATH, MTX_SEGMENT_PATH,
MTX_SEGMENT_DURATION). Exit codes: 0 done, 1 camsvc refused (its reason on stderr),
69 camsvc not reachable (EX_UNAVAILABLE). Imports only what a hook needs: MediaMTX waits
on these commands, so `python -m camsvc hook` skips the rest of the command line's imports.
Must not touch: services (this runs in MediaMTX's child process, not in camsvc).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Final

import msgspec

__all__ = [
    "DESCRIPTION",
    "EX_UNAVAILABLE",
    "OnDemand",
    "Reply",
    "Request",
    "SegmentComplete",
    "add_hook_arguments",
    "decode_reply",
    "decode_request",
    "default_socket_path",
    "encode",
    "hook_command",
    "install_signal_handlers",
    "main",
    "run_hook",
]

# sysexits.h: the service is not available.
EX_UNAVAILABLE: Final = 69
# A request line longer than this is refused (paths are short; nothing needs more).
MAX_LINE: Final = 16 * 1024
# How long a hook waits for camsvc's reply to its request.
REPLY_TIMEOUT_S: Final = 5.0
# prctl(2): signal this process when its parent dies.
PR_SET_PDEATHSIG: Final = 1
SOCKET_NAME: Final = "camsvc.sock"
DESCRIPTION: Final = (
    "Commands MediaMTX runs: they reach the running service over its control socket "
    "(mediamtx.control_socket). Exit 0 done, 1 refused, 69 service not reachable."
)


class OnDemand(msgspec.Struct, frozen=True, tag="on_demand"):
    """runOnDemand: publish camera `path` while this connection stays open."""

    path: str


class SegmentComplete(msgspec.Struct, frozen=True, tag="segment_complete"):
    """runOnRecordSegmentComplete: MediaMTX finished writing `segment` of `path`."""

    path: str
    segment: str
    duration: float | None = None


Request = OnDemand | SegmentComplete


class Reply(msgspec.Struct, frozen=True, omit_defaults=True):
    """camsvc's answer to a request: ok, or why not."""

    ok: bool
    error: str = ""


_encoder = msgspec.json.Encoder()
_request_decoder = msgspec.json.Decoder(Request)
_reply_decoder = msgspec.json.Decoder(Reply)


def encode(message: OnDemand | SegmentComplete | Reply) -> bytes:
    """One line of the protocol."""
    return _encoder.encode(message) + b"\n"


def decode_request(line: bytes) -> OnDemand | SegmentComplete:
    """A request line; msgspec.DecodeError/ValidationError if it is not one."""
    return _request_decoder.decode(line)


def decode_reply(line: bytes) -> Reply:
    """A reply line; msgspec.DecodeError/ValidationError if it is not one."""
    return _reply_decoder.decode(line)


def default_socket_path(db_path: str) -> str:
    """Where the control socket lives unless configured: next to the catalogue database."""
    return os.path.join(os.path.dirname(os.path.abspath(db_path)), SOCKET_NAME)


def hook_command(program: Sequence[str], socket_path: str, *args: str) -> str:
    """A hook command line for MediaMTX: `<program> hook --socket S <args>`, shell-quoted."""
    return shlex.join([*program, "hook", "--socket", socket_path, *args])


# --- the hook commands ----------------------------------------------------------------


class _Stop(Exception):
    """SIGINT/SIGTERM from MediaMTX: the on-demand use is over."""


class HookError(Exception):
    """The hook could not do its job; `code` is its exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _stop(signum: int, frame: object) -> None:
    raise _Stop


def _connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(REPLY_TIMEOUT_S)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise HookError(f"camsvc is not reachable at {path}: {exc}", EX_UNAVAILABLE) from exc
    return sock


def _ask(sock: socket.socket, request: OnDemand | SegmentComplete) -> None:
    """Send `request` and read the reply; HookError unless it is ok."""
    try:
        sock.sendall(encode(request))
        line = sock.makefile("rb").readline(MAX_LINE)
    except OSError as exc:
        raise HookError(f"camsvc did not answer: {exc}", EX_UNAVAILABLE) from exc
    if not line:
        raise HookError("camsvc closed the connection without an answer", EX_UNAVAILABLE)
    try:
        reply = decode_reply(line)
    except msgspec.MsgspecError as exc:
        raise HookError(f"camsvc answered something else: {exc}", 1) from exc
    if not reply.ok:
        raise HookError(f"camsvc refused: {reply.error}", 1)


def _die_with_parent() -> None:
    """End with MediaMTX even if it cannot stop us (SIGKILL, crash): an orphaned on-demand
    command would hold the camera's publisher forever."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes  # only here: segment-complete must start fast

    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before prctl took effect
        raise _Stop


def _hold(sock: socket.socket) -> None:
    """Block until MediaMTX stops the command (signal) or camsvc goes away (EOF)."""
    sock.settimeout(None)
    try:
        while sock.recv(4096):
            pass  # camsvc sends nothing after the reply
    except _Stop:
        return
    except OSError as exc:
        raise HookError(f"connection to camsvc lost: {exc}", 1) from exc
    raise HookError("camsvc closed the connection", 1)


def _env_float(name: str) -> float | None:
    try:
        return float(os.environ[name])
    except (KeyError, ValueError):
        return None


def add_hook_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `camsvc hook` (shared by the full command line and the fast path)."""
    parser.add_argument(
        "--socket",
        default=None,
        help="camsvc's control socket (default: mediamtx.control_socket of the config, "
        f"else {SOCKET_NAME} next to storage.db_path)",
    )
    actions = parser.add_subparsers(dest="hook_cmd", metavar="HOOK", required=True)
    demand = actions.add_parser(
        "on-demand",
        help="runOnDemand: ask camsvc to publish camera PATH and run until MediaMTX stops "
        "this command (SIGINT/SIGTERM); camsvc stops publishing when nothing else needs it",
    )
    demand.add_argument("path", nargs="?", help="camera path (default: $MTX_PATH)")
    segment = actions.add_parser(
        "segment-complete",
        help="runOnRecordSegmentComplete: tell camsvc a recording segment is finished",
    )
    segment.add_argument("path", nargs="?", help="camera path (default: $MTX_PATH)")
    segment.add_argument("segment", nargs="?", help="segment file (default: $MTX_SEGMENT_PATH)")


def run_hook(args: argparse.Namespace, socket_path: str) -> int:
    """Run the hook `args` names against camsvc at `socket_path`; returns the exit code."""
    path = args.path or os.environ.get("MTX_PATH", "")
    try:
        if not path:
            raise HookError("no path given and MTX_PATH is not set", 2)
        if args.hook_cmd == "on-demand":
            _die_with_parent()
            with _connect(socket_path) as sock:
                _ask(sock, OnDemand(path))
                _hold(sock)
        else:
            segment = args.segment or os.environ.get("MTX_SEGMENT_PATH", "")
            if not segment:
                raise HookError("no segment given and MTX_SEGMENT_PATH is not set", 2)
            duration = _env_float("MTX_SEGMENT_DURATION")
            with _connect(socket_path) as sock:
                _ask(sock, SegmentComplete(path, segment, duration))
    except (_Stop, KeyboardInterrupt):
        return 0  # stopped before camsvc answered: nothing is held
    except HookError as exc:
        print(f"camsvc hook {args.hook_cmd} {path}: {exc}", file=sys.stderr)
        return exc.code
    return 0


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM end a hook quietly (MediaMTX sends SIGINT to stop runOnDemand)."""
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)


def main(argv: Sequence[str]) -> int:
    """`python -m camsvc hook ...` without the rest of the command line (MediaMTX waits)."""
    install_signal_handlers()
    parser = argparse.ArgumentParser(prog="camsvc hook", description=DESCRIPTION)
    add_hook_arguments(parser)
    args = parser.parse_args(argv)
    if args.socket is None:
        from camsvc.config import ConfigError, load_config

        try:
            config = load_config(None)
        except ConfigError as exc:
            print(f"camsvc hook: configuration error: {exc}", file=sys.stderr)
            return 2
        args.socket = config.mediamtx.control_socket or default_socket_path(config.storage.db_path)
    return run_hook(args, args.socket)
