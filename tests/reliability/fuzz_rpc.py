"""Coverage-guided fuzzing (atheris, libFuzzer) of decode-and-dispatch: `make fuzz-rpc`.

Each input is one WebSocket text message handed to `App(config).dispatcher.handle` on a fresh
admin connection, inside a Trio run (handlers read the Trio clock), with async replies
awaited. The reply must be the spec-valid answer of `tests.reliability.spec.check_reply`
(API.md §3, §4; no -32603 `internal_error`), and no exception may escape. The App is never
started: no socket is opened, MediaMTX-bound handlers are replaced by a stub that fails the
way MediaMTX being down does, and every file lives in one temporary directory.

    python -m tests.reliability.fuzz_rpc -max_total_time=30 -dict=tests/reliability/rpc.dict
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import atheris

with atheris.instrument_imports(include=["camsvc"]):
    import msgspec
    import structlog
    import trio

    from camsvc.app import App
    from camsvc.errors import DependencyFailed
    from tests.reliability.spec import (
        INVALID_JSON,
        admin_connection,
        check_reply,
        is_parse_error,
        make_app,
    )

__all__ = ["SEEDS", "main"]

#: Seed inputs: one of each envelope shape the spec names (the fuzzer mutates from these).
SEEDS: list[bytes] = [
    b'{"jsonrpc":"2.0","method":"ping","id":1}',
    b'{"jsonrpc":"2.0","method":"ping"}',
    b'[{"jsonrpc":"2.0","method":"ping","id":"a"},{"jsonrpc":"2.0","method":"ping"},5]',
    b'{"jsonrpc":"2.0","method":"get_snapshot_info","params":{"filename":"x.jpg"},"id":2}',
    b'{"jsonrpc":"2.0","method":"delete_recording","params":{"filename":"../x"},"id":null}',
    b'{"jsonrpc":"2.0","method":"take_snapshot","params":{"device":"camera0","filename":"a"},'
    b'"id":3}',
    b'{"jsonrpc":"2.0","method":"list_snapshots","params":{"limit":5.0,"offset":0},"id":4}',
    b'{"jsonrpc":"2.0","method":"subscribe_events","params":{"topics":["camera.connected"],'
    b'"filters":{"device":"camera0"}},"id":5}',
    b'{"jsonrpc":"2.0","method":"authenticate","params":{"auth_token":"csk_x"},"id":6}',
    b'{"jsonrpc":"2.0","method":"set_retention_policy","params":{"policy_type":"age",'
    b'"max_age_days":1,"enabled":true},"id":7}',
    b'{"jsonrpc":"2.0","method":"rpc.discover","id":8}',
    b'{"jsonrpc":"2.0","method":"get_camera_status","params":[1],"id":9}',
    b"[]",
]


def _stub_mediamtx(app: App) -> None:
    """Replace handlers that would call MediaMTX by one answering -32050 (no network)."""

    def down(conn: Any, params: Any) -> Any:
        raise DependencyFailed("mediamtx_unavailable", "fuzzing: MediaMTX is not reachable")

    async def down_async(conn: Any, params: Any) -> Any:
        down(conn, params)

    methods = app.registry._methods  # the fuzzer's own App: safe to rewire
    for name, spec in list(methods.items()):
        if spec.needs_mediamtx:
            handler = down_async if spec.is_async else down
            methods[name] = msgspec.structs.replace(spec, handler=handler)


def _message_of(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:  # UnicodeDecodeError included
        return INVALID_JSON


def _one_input(app: App, data: bytes) -> None:
    async def run() -> bytes | None:
        with admin_connection(app) as conn, trio.fail_after(10):
            reply = app.dispatcher.handle(conn, data)
            if reply is None or isinstance(reply, bytes):
                return reply
            return await reply

    reply = trio.run(run)
    message = _message_of(data)
    try:
        if is_parse_error(reply):
            # What Python's json takes beyond RFC 8259 (NaN, lone surrogates) is -32700.
            check_reply(INVALID_JSON, reply)
        else:
            check_reply(message, reply)
    except AssertionError:
        print(f"input {data!r}\nreply {reply!r:.2000}", file=sys.stderr)
        raise


def main(argv: list[str]) -> None:
    """Run libFuzzer with `argv` (its flags) on a throw-away App and corpus."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    with tempfile.TemporaryDirectory(prefix="camsvc-fuzz-rpc-") as tmp:
        root = Path(tmp)
        corpus = root / "corpus"
        corpus.mkdir()
        for i, seed in enumerate(SEEDS):
            (corpus / f"seed{i}").write_bytes(seed)
        app = make_app(root / "app")
        _stub_mediamtx(app)
        args = [argv[0], *argv[1:], f"-artifact_prefix={root}/", str(corpus)]
        atheris.Setup(args, lambda data: _one_input(app, data))
        try:
            atheris.Fuzz()
        finally:
            app.catalog.close()


if __name__ == "__main__":
    main(sys.argv)
