"""The `camsvc` command line: serve, mint tokens, manage API keys, MediaMTX's hook commands,
and the capture tools."""

from __future__ import annotations

import argparse
import functools
import gc
import os
import re
import resource
import sys
from collections.abc import Sequence

import structlog

from camsvc import __version__
from camsvc.auth.keys import KeyStore, KeyStoreError
from camsvc.auth.roles import Role
from camsvc.auth.tokens import mint_token
from camsvc.config import Config, ConfigError, load_config
from camsvc.logs import configure_logging

__all__ = ["GC_THRESHOLDS", "main", "parse_duration", "tune_gc"]

_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

log = structlog.get_logger("camsvc.cli")


def parse_duration(text: str) -> float:
    """`90`, `30s`, `5m`, `1h`, `90d` to seconds (argparse type)."""
    m = _DURATION_RE.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (use e.g. 30s, 5m, 1h, 90d)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _expiry(text: str) -> float | None:
    return None if text == "never" else parse_duration(text)


def _role(text: str) -> Role:
    try:
        return Role.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("role must be viewer, operator or admin") from exc


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns (old soft, new soft)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return soft, hard


# Young-generation collections every 50,000 allocations instead of 700: each connection keeps
# ~80 long-lived objects, and frequent collections re-scanned them all (about 14 % of server
# CPU at 100 connections, half of it at 1,000; see benchmarks/RESULTS.md, RPC). Full
# collections at Python's default pace after that (every 10th middle one, about every 10
# million allocations; CPython adds its own bar, a quarter more long-lived objects than after
# the last one): at 100 instead, the cycles a busy service makes waited over 10 minutes for
# one and the heap grew with them (docs/performance.md, the soak).
GC_THRESHOLDS = (50_000, 20, 10)


def tune_gc() -> None:
    """Freeze the start-up heap out of collections and collect young objects less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _load(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def _cmd_serve(args: argparse.Namespace) -> int:
    import trio

    from camsvc import heap
    from camsvc.app import App
    from camsvc.emulator.demo import DEMO_DIR_ENV, demo_environment, remove_demo_dir

    if args.demo and not os.environ.get(DEMO_DIR_ENV):
        # The emulated device must be preloaded before the process starts: run again in it.
        env = demo_environment()
        os.execve(sys.executable, [sys.executable, "-m", "camsvc", *sys.argv[1:]], env)
    config = _load(args)
    configure_logging(config.logging.level, config.logging.format)
    demo_dir = os.environ.get(DEMO_DIR_ENV) if args.demo else None
    if demo_dir:
        log.warning(
            "demo_mode",
            message="serving two EMULATED cameras (no real device is used)",
            device_dir=demo_dir,
            mediamtx=(
                f"if none answers at {config.mediamtx.api_url}: {config.mediamtx.binary} is "
                "started, or the MediaMTX stand-in when that binary is missing"
                if config.mediamtx.spawn == "auto"
                else "never started (mediamtx.spawn: never)"
            ),
        )
    sec = config.security
    if not sec.jwt_secret_key and not sec.auth_disabled:
        print(
            "camsvc: no JWT secret configured. Set CAMERA_SERVICE_JWT_SECRET (or "
            "security.jwt_secret_key), or security.auth_disabled: true for development.",
            file=sys.stderr,
        )
        return 2
    if sec.auth_disabled:
        log.warning(
            "auth_disabled", message="every connection is an admin session; development only"
        )
    elif len(sec.jwt_secret_key.encode()) < 32:
        log.warning("weak_jwt_secret", message="the JWT secret is shorter than 32 bytes")
    old, new = raise_nofile_limit()
    log.info("nofile_limit", soft_before=old, soft=new, hard=new)
    heap.pin_mmap_threshold()  # the encoders' memory goes back when freed (camsvc/heap.py)
    try:
        app = App(config, demo=bool(demo_dir))
        tune_gc()
        trio.run(
            functools.partial(
                app.run,
                trim_heap_every_s=heap.TRIM_PERIOD_S,
                worker_threads=heap.worker_threads(),
            )
        )
    finally:
        if demo_dir:
            remove_demo_dir(demo_dir)
    return 0


def _cmd_token(args: argparse.Namespace) -> int:
    config = _load(args)
    secret = config.security.jwt_secret_key
    if not secret:
        print("camsvc token: no JWT secret configured (CAMERA_SERVICE_JWT_SECRET)", file=sys.stderr)
        return 2
    print(mint_token(secret, args.user, args.role, args.ttl))
    return 0


def _cmd_keys(args: argparse.Namespace) -> int:
    store = KeyStore(_load(args).security.api_keys_path)
    try:
        if args.keys_cmd == "create":
            key, plaintext = store.create(args.role, args.expires, args.description)
            print(f"id:  {key.id}\nkey: {plaintext}\n(the key is shown only once)")
        elif args.keys_cmd == "list":
            rows = [("ID", "ROLE", "CREATED", "EXPIRES", "STATUS", "DESCRIPTION")]
            rows += [
                (k.id, k.role, k.created_at, k.expires_at or "never", k.status, k.description)
                for k in store.list()
            ]
            widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
            for row in rows:
                print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        elif args.keys_cmd == "revoke":
            store.revoke(args.id)
            print(f"revoked {args.id}")
        elif args.keys_cmd == "rotate":
            key, plaintext = store.rotate(args.id)
            print(
                f"revoked {args.id}\nid:  {key.id}\nkey: {plaintext}\n(the key is shown only once)"
            )
    except (KeyStoreError, OSError) as exc:
        print(f"camsvc keys: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_hook(args: argparse.Namespace) -> int:
    from camsvc.streaming import hook_protocol

    hook_protocol.install_signal_handlers()
    socket_path = args.socket
    if socket_path is None:
        config = _load(args)
        socket_path = config.mediamtx.control_socket or hook_protocol.default_socket_path(
            config.storage.db_path
        )
    return hook_protocol.run_hook(args, socket_path)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `camsvc`."""
    parser = argparse.ArgumentParser(
        prog="camsvc",
        description="Camera service for Linux V4L2 cameras: WebSocket JSON-RPC 2.0 API on "
        "ws://HOST:8002/ws, health on :8003, snapshots, streaming through MediaMTX.",
        epilog="Configuration: ./camsvc.yaml or $CAMSVC_CONFIG, overridden by "
        "CAMERA_SERVICE_<SECTION>_<KEY> variables (see camsvc.example.yaml).",
    )
    parser.add_argument("--version", action="version", version=f"camsvc {__version__}")
    parser.add_argument(
        "-c",
        "--config",
        default=None,
        help="YAML config file (default: $CAMSVC_CONFIG or ./camsvc.yaml)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser("serve", help="run the service in the foreground")
    serve.add_argument(
        "--demo",
        action="store_true",
        help="serve two emulated cameras from a private device directory, with the MediaMTX "
        "stand-in when no MediaMTX answers and none is installed (no hardware needed)",
    )
    serve.set_defaults(func=_cmd_serve)

    token = sub.add_parser("token", help="mint a JWT signed with the configured secret")
    token.add_argument("--role", type=_role, required=True, help="viewer, operator or admin")
    token.add_argument("--ttl", type=parse_duration, default=3600.0, help="lifetime (default 1h)")
    token.add_argument("--user", default="cli", help="user_id claim (default: cli)")
    token.set_defaults(func=_cmd_token)

    keys = sub.add_parser("keys", help="manage API keys (stored hashed in security.api_keys_path)")
    keys_sub = keys.add_subparsers(dest="keys_cmd", metavar="ACTION", required=True)
    create = keys_sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--role", type=_role, required=True, help="viewer, operator or admin")
    create.add_argument(
        "--expires", type=_expiry, default=None, help="e.g. 90d, or never (default)"
    )
    create.add_argument("--description", default="", help="free text")
    keys_sub.add_parser("list", help="list keys (never the key itself)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("id")
    rotate = keys_sub.add_parser(
        "rotate", help="replace a key: new key, same role, old one revoked"
    )
    rotate.add_argument("id")
    keys.set_defaults(func=_cmd_keys)

    from camsvc.streaming.hook_protocol import DESCRIPTION, add_hook_arguments

    hook = sub.add_parser(
        "hook",
        help="MediaMTX path hooks calling back into the running service (camsvc writes "
        "them into each camera's path: runOnDemand, runOnRecordSegmentComplete)",
        description=DESCRIPTION,
    )
    add_hook_arguments(hook)
    hook.set_defaults(func=_cmd_hook)

    try:
        from camsvc.capture import _cli as capture_cli
    except ImportError:  # the C module is not built (e.g. a source checkout)
        capture_cli = None
    if capture_cli is not None:
        capture_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"camsvc: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
