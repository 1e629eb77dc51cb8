"""The pure protocol core: codec, dispatcher rules and the token bucket, without sockets."""

from __future__ import annotations

import json
from typing import Annotated

import msgspec
import pytest

from camsvc.auth import Authenticator, KeyStore, Role, Session
from camsvc.errors import NotFound
from camsvc.rpc.connection import RpcConnection
from camsvc.rpc.dispatch import Dispatcher
from camsvc.rpc.ratelimit import TokenBucket
from camsvc.rpc.registry import NoParams, Registry


class CountParams(msgspec.Struct, frozen=True):
    n: Annotated[int, msgspec.Meta(ge=1, le=10)]
    label: str = "x"


@pytest.fixture
def dispatcher(tmp_path):
    reg = Registry()
    reg.add(
        "count",
        lambda conn, p: {"n": p.n, "label": p.label},
        params=CountParams,
        result=dict,
        role=Role.VIEWER,
    )
    reg.add(
        "missing",
        lambda conn, p: (_ for _ in ()).throw(NotFound("camera", "camera7")),
        result=str,
        role=Role.NONE,
    )
    reg.add("boom", lambda conn, p: 1 / 0, result=str, role=Role.NONE)
    reg.add("unencodable", lambda conn, p: object(), result=str, role=Role.NONE)

    async def slow(conn, p: NoParams) -> str:
        return "done"

    reg.add("slow", slow, result=str, role=Role.NONE)
    auth = Authenticator("s" * 32, KeyStore(tmp_path / "k.json"))
    return Dispatcher(reg, auth, metadata=False)


@pytest.fixture
def conn():
    c = RpcConnection("c1", TokenBucket(1000, 1000))
    c.session = Session(user_id="u", role=Role.ADMIN, auth_method="jwt", expires_at=None)
    return c


def call(dispatcher, conn, method, params=None, rid=1):
    msg = {"jsonrpc": "2.0", "method": method, "id": rid}
    if params is not None:
        msg["params"] = params
    return json.loads(dispatcher.handle(conn, json.dumps(msg)))


class TestParams:
    """Params decoding rules of API.md §1."""

    @pytest.mark.parametrize("value", [5, 5.0])
    def test_integral_float_is_int(self, dispatcher, conn, value):
        """`5` and `5.0` both mean 5."""
        assert call(dispatcher, conn, "count", {"n": value})["result"]["n"] == 5

    @pytest.mark.parametrize(
        ("params", "reason", "param"),
        [
            ({"n": 5.5}, "invalid_type", "n"),
            ({"n": "5"}, "invalid_type", "n"),
            ({"n": True}, "invalid_type", "n"),
            ({"n": None}, "invalid_type", "n"),
            ({"n": 0}, "out_of_range", "n"),
            ({"n": 11.0}, "out_of_range", "n"),
            ({}, "missing_param", "n"),
            ({"n": 1, "label": 3}, "invalid_type", "label"),
        ],
    )
    def test_bad_params(self, dispatcher, conn, params, reason, param):
        """Strings, booleans and null are never coerced; ranges are checked; `param` is named."""
        error = call(dispatcher, conn, "count", params)["error"]
        assert error["code"] == -32602
        assert error["data"]["reason"] == reason
        assert error["data"]["param"] == param


class TestErrors:
    """Service errors and unexpected exceptions."""

    def test_service_error_mapped(self, dispatcher, conn):
        """A CamsvcError keeps its code, message and reason."""
        error = call(dispatcher, conn, "missing")["error"]
        assert error == {
            "code": -32010,
            "message": "Camera not found",
            "data": {"reason": "camera_not_found", "details": "camera7"},
        }

    def test_unexpected_exception_is_internal(self, dispatcher, conn):
        """Anything else becomes -32603 internal_error."""
        error = call(dispatcher, conn, "boom")["error"]
        assert error["code"] == -32603 and error["data"]["reason"] == "internal_error"

    def test_unencodable_result_is_internal(self, dispatcher, conn):
        """A handler bug that returns something JSON cannot hold is -32603, not a crash."""
        assert call(dispatcher, conn, "unencodable")["error"]["code"] == -32603
        batch = json.dumps(
            [
                {"jsonrpc": "2.0", "method": m, "id": i}
                for i, m in enumerate(["unencodable", "missing"])
            ]
        )
        replies = json.loads(dispatcher.handle(conn, batch))
        assert [r["error"]["code"] for r in replies] == [-32603, -32010]

    def test_async_method_returns_coroutine(self, dispatcher, conn):
        """Async handlers are handed back to the transport to run."""
        import inspect

        import trio

        pending = dispatcher.handle(conn, '{"jsonrpc":"2.0","method":"slow","id":9}')
        assert inspect.iscoroutine(pending)
        assert json.loads(trio.run(lambda: pending))["result"] == "done"

    def test_order_rate_limit_before_method(self, dispatcher):
        """Check 3 (rate limit) comes before check 4 (method exists)."""
        c = RpcConnection("c", TokenBucket(0.001, 1))
        assert call(dispatcher, c, "nope")["error"]["code"] == -32601
        assert call(dispatcher, c, "nope")["error"]["code"] == -32040

    def test_order_method_before_session(self, dispatcher):
        """Check 4 (method) before 5 (session), and 5 before 7 (params)."""
        c = RpcConnection("c", TokenBucket(1000, 1000))
        assert call(dispatcher, c, "nope")["error"]["code"] == -32601
        assert call(dispatcher, c, "count", {"n": "bad"})["error"]["code"] == -32001

    def test_positional_checked_after_role(self, dispatcher):
        """Positional params are a params error (check 7): an unauthenticated caller gets -32001."""
        c = RpcConnection("c", TokenBucket(1000, 1000))
        reply = json.loads(
            dispatcher.handle(c, '{"jsonrpc":"2.0","method":"count","params":[1],"id":1}')
        )
        assert reply["error"]["code"] == -32001


class TestTokenBucket:
    """API.md §5.3 with a fake clock."""

    def test_refill_and_retry_after(self):
        """Burst first, then one token per 1/rate seconds; retry_after rounds up."""
        now = [0.0]
        bucket = TokenBucket(rate=10, burst=2, clock=lambda: now[0])
        assert bucket.take() == 0 and bucket.take() == 0
        assert bucket.take() == 100
        now[0] += 0.05
        assert bucket.take() == 50
        now[0] += 0.05
        assert bucket.take() == 0

    def test_capacity_caps_refill(self):
        """A long idle time refills only up to the burst."""
        now = [0.0]
        bucket = TokenBucket(rate=100, burst=3, clock=lambda: now[0])
        now[0] += 1000
        assert [bucket.take() for _ in range(4)][-1] > 0
