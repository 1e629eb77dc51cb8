"""`camsvc hook ...`: the commands MediaMTX runs as path hooks, and what they say to camsvc.

Owns: the wire messages of camsvc's control socket (one msgspec-JSON object per line:
a request, then one reply), the socket's default location, the command lines camsvc writes
into MediaMTX's path configuration, and the `camsvc hook` command line. The commands
themselves are hook_client.py's (standard library only), which the path configuration
runs directly (`hook_program`) so they start fast:

- `hook on-demand [PATH]` (runOnDemand): asks camsvc to publish the camera, then holds the
  connection open for as long as MediaMTX keeps the command running. MediaMTX ends it
  (SIGINT) once the path has had no reader for runOnDemandCloseAfter; the closed
  connection is what tells camsvc this use of the publisher is over.
- `hook segment-complete [PATH [SEGMENT]]` (runOnRecordSegmentComplete): tells camsvc a
  recording segment is finished, so it is catalogued and stop_recording can return.

Arguments left out come from MediaMTX's environment (MTX_PATH, MTX_SEGMENT_PATH,
MTX_SEGMENT_DURATION). Exit codes: 0 done, 1 camsvc refused (its reason on stderr),
2 usage, 69 camsvc not reachable (EX_UNAVAILABLE). Imports only what a hook needs, so
`python -m camsvc hook` skips the rest of the command line's imports.
Must not touch: services (this runs in MediaMTX's child process, not in camsvc).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from typing import Final

import msgspec

from camsvc.streaming import hook_client

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
    "hook_program",
    "install_signal_handlers",
    "main",
    "run_hook",
]

# sysexits.h: the service is not available.
EX_UNAVAILABLE: Final = hook_client.EX_UNAVAILABLE
# A request line longer than this is refused (paths are short; nothing needs more).
MAX_LINE: Final = hook_client.MAX_LINE
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


def hook_program() -> tuple[str, ...]:
    """What runs `camsvc hook` for MediaMTX: this interpreter, isolated and without site
    packages, on hook_client.py (the same commands, a fraction of the start-up time)."""
    return (sys.executable, "-I", "-S", os.path.abspath(hook_client.__file__))


def hook_command(program: Sequence[str], socket_path: str, *args: str) -> str:
    """A hook command line for MediaMTX: `<program> hook --socket S <args>`, shell-quoted."""
    return shlex.join([*program, "hook", "--socket", socket_path, *args])


# --- the hook commands ----------------------------------------------------------------
# They run hook_client.py's code, which camsvc's path configuration starts on its own.


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
    return hook_client.run(args.hook_cmd, args.path, getattr(args, "segment", None), socket_path)


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM end a hook quietly (MediaMTX sends SIGINT to stop runOnDemand)."""
    hook_client.install_signal_handlers()


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
