"""Property-based tests of decode-and-dispatch (API.md §3, §4): whatever arrives, the pure
dispatcher answers with a spec-valid reply, never raises, and echoes ids by the rules; and
over a real socket the connection stays usable afterwards.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio_websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camsvc.app import App
from camsvc.auth import Role, mint_token
from tests.reliability.spec import (
    INVALID_JSON,
    MAX_BATCH,
    Unanswered,
    admin_connection,
    check_reply,
    expected_ids,
    is_parse_error,
    make_app,
)
from tests.reliability.strategies import envelopes, json_values, messages, params_for

# The pure tests build one App for the module; examples are bounded to keep the suite fast.
PURE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def app() -> Iterator[App]:
    """An App on a throw-away directory, never started (handlers run on its services)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "dev").mkdir()
        built = make_app(root)
        yield built
        built.catalog.close()


def _registry() -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        built = make_app(Path(tmp))
        built.catalog.close()
        return built.registry


REGISTRY = _registry()


def answer(app: App, text: str | bytes) -> bytes | None:
    """The dispatcher's reply to `text` on a fresh admin connection, in a Trio run (handlers
    read the Trio clock); async replies are awaited."""

    async def run() -> bytes | None:
        with admin_connection(app) as conn, trio.fail_after(10):
            reply = app.dispatcher.handle(conn, text)
            if reply is None or isinstance(reply, bytes):
                return reply
            return await reply

    return trio.run(run)


class TestPureDispatcher:
    """`Dispatcher.handle` on generated messages."""

    @PURE
    @given(message=messages(REGISTRY, MAX_BATCH))
    def test_any_message_gets_a_spec_valid_reply(self, app, message):
        """Envelopes, batch mixes and plain JSON values: the reply matches API.md §3 and §4."""
        check_reply(message, answer(app, json.dumps(message)))

    @pytest.mark.parametrize("method", [spec.name for spec in REGISTRY])
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def test_params_of_every_method(self, app, method, data):
        """Each registered method, params from its schema (and junk): never -32603, never raises."""
        spec = REGISTRY.get(method)
        params = data.draw(params_for(spec.params))
        request_id = data.draw(st.integers(0, 10**9) | st.text(max_size=5))
        message = {"jsonrpc": "2.0", "method": spec.name, "params": params, "id": request_id}
        [reply] = check_reply(message, answer(app, json.dumps(message)))
        if not isinstance(params, dict) and params is not None:
            assert reply["error"]["code"] in (-32600, -32602), reply

    @PURE
    @given(text=st.text(max_size=60) | st.binary(max_size=60))
    def test_arbitrary_text(self, app, text):
        """Any text or bytes: a reply for everything except a well-formed notification."""
        try:
            message = json.loads(text)
        except ValueError:  # UnicodeDecodeError included
            message = INVALID_JSON
        reply = answer(app, text)
        if reply is None:
            assert message is not INVALID_JSON and expected_ids(message) is Unanswered, text
        elif message is INVALID_JSON or is_parse_error(reply):
            # Python's json is laxer than RFC 8259 (NaN, Infinity, lone surrogates); what it
            # takes and msgspec refuses is a -32700 from the service, as it should be.
            check_reply(INVALID_JSON, reply)
        else:
            check_reply(message, reply)

    @PURE
    @given(batch=st.lists(envelopes(REGISTRY) | json_values, min_size=1, max_size=MAX_BATCH))
    def test_batch_order_and_notifications(self, app, batch):
        """A batch's replies come in request order, one per element that needs one."""
        check_reply(batch, answer(app, json.dumps(batch)))


class TestOverSocket:
    """Generated messages over a real WebSocket; a ping afterwards always answers."""

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(batch=st.lists(messages(REGISTRY, MAX_BATCH), min_size=1, max_size=4))
    def test_connection_stays_usable(self, batch):
        """After any messages, a ping on the same connection is answered (a service per example:
        Hypothesis runs each example in its own Trio run)."""
        trio.run(_send_then_ping, batch)


async def _send_then_ping(batch: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(
            Path(tmp),
            rate_limit_rps=1e6,
            rate_limit_burst=10**6,
            auth_failure_limit=10**6,
        )
        try:
            async with trio.open_nursery() as nursery:
                ports = await nursery.start(functools.partial(app.run, handle_signals=False))
                url = f"ws://127.0.0.1:{ports.main}/ws"
                async with trio_websocket.open_websocket_url(url) as ws:
                    with trio.fail_after(10):
                        await ws.send_message(
                            json.dumps(
                                {
                                    "jsonrpc": "2.0",
                                    "method": "authenticate",
                                    "id": 0,
                                    "params": {
                                        "auth_token": mint_token(
                                            app.config.security.jwt_secret_key,
                                            "fuzz",
                                            Role.ADMIN,
                                            600,
                                        )
                                    },
                                }
                            )
                        )
                        for message in batch:
                            await ws.send_message(json.dumps(message))
                        await ws.send_message('{"jsonrpc":"2.0","method":"ping","id":"probe"}')
                        while True:
                            reply = json.loads(await ws.get_message())
                            if isinstance(reply, dict) and reply.get("id") == "probe":
                                assert reply["result"] == "pong"
                                break
                app.request_shutdown()
        finally:
            app.catalog.close()


class TestFoundByFuzzing:
    """Inputs the fuzzers found; each was a wrong answer before its fix."""

    @pytest.mark.parametrize(
        "text",
        [
            b'{"jsonrpc":"2.0","method":"ping","id":2,"x\xff":1}',  # skipped key, not UTF-8
            b'{"jsonrpc":"2.0","method":"ping","params":{"a":"\xff"},"id":2}',  # in Raw params
            '{"jsonrpc":"2.0","method":"ping","id":"\ud800"}',  # a lone surrogate in a str
        ],
    )
    def test_invalid_utf8_anywhere_is_a_parse_error(self, app, text):
        """Invalid UTF-8 is -32700 with id null even where msgspec skips the bytes."""
        check_reply(INVALID_JSON, answer(app, text))

    def test_offset_past_64_bits_is_an_empty_page(self, app):
        """`offset` beyond SQLite's INTEGER gives `files: []`, not -32603."""
        message = {
            "jsonrpc": "2.0",
            "method": "list_snapshots",
            "params": {"offset": 10**30},
            "id": 1,
        }
        [reply] = check_reply(message, answer(app, json.dumps(message)))
        assert reply["result"]["files"] == [] and reply["result"]["offset"] == 10**30

    def test_out_of_range_member_keeps_the_other_checks(self, app):
        """`jsonrpc: 1e400` is invalid_version with the id echoed, like any other bad version."""
        reply = json.loads(answer(app, '{"jsonrpc":1e400,"method":"ping","id":7}'))
        assert reply["id"] == 7 and reply["error"]["data"]["reason"] == "invalid_version"

    def test_unrepresentable_id_is_not_echoed(self, app):
        """An id that overflows a double (1e400) is -32600 with id null (it cannot be echoed)."""
        reply = json.loads(answer(app, '{"jsonrpc":"2.0","method":"ping","id":1e400}'))
        assert reply["id"] is None and reply["error"]["code"] == -32600

    @pytest.mark.parametrize(
        ("text", "code"),
        [
            (b'{"jsonrpc":1e400,"method":"ping","params":{"a":"\x08\x00', -32700),
            (b'{"jsonrpc":"2.0","method":"ping","id":1e400} x', -32700),
            (b"1e400", -32600),
        ],
    )
    def test_number_out_of_range_does_not_hide_the_syntax(self, app, text, code):
        """msgspec stops at `1e400`; invalid JSON after it is still -32700, valid is -32600."""
        reply = json.loads(answer(app, text))
        assert reply["id"] is None and reply["error"]["code"] == code, reply
