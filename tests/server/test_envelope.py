"""JSON-RPC 2.0 envelope handling over a real WebSocket (API.md §3)."""

from __future__ import annotations

import pytest


class TestMalformedInput:
    """Every row of API.md §3.1."""

    @pytest.mark.parametrize(
        ("message", "code", "reason", "reply_id"),
        [
            ("{not json", -32700, "parse_error", None),
            ('{"jsonrpc": "2.0", "method": "ping", "id": 1', -32700, "parse_error", None),
            ("42", -32600, "invalid_request", None),
            ('"ping"', -32600, "invalid_request", None),
            ("[]", -32600, "empty_batch", None),
            ('{"method": "ping", "id": 7}', -32600, "invalid_version", 7),
            ('{"jsonrpc": "1.0", "method": "ping", "id": "a"}', -32600, "invalid_version", "a"),
            (
                '{"jsonrpc": "1.0", "method": "ping", "id": {"x": 1}}',
                -32600,
                "invalid_version",
                None,
            ),
            ('{"jsonrpc": "2.0", "id": 3}', -32600, "invalid_request", 3),
            ('{"jsonrpc": "2.0", "method": 5, "id": 3}', -32600, "invalid_request", 3),
            ('{"jsonrpc": "2.0", "method": "ping", "id": true}', -32600, "invalid_request", None),
            ('{"jsonrpc": "2.0", "method": "ping", "id": [1]}', -32600, "invalid_request", None),
            ('{"jsonrpc": "2.0", "method": "ping", "id": {}}', -32600, "invalid_request", None),
            (
                '{"jsonrpc": "2.0", "method": "ping", "params": [1], "id": 4}',
                -32602,
                "positional_params",
                4,
            ),
            (
                '{"jsonrpc": "2.0", "method": "ping", "params": "x", "id": 4}',
                -32600,
                "invalid_request",
                4,
            ),
            (
                '{"jsonrpc": "2.0", "method": "ping", "params": 1, "id": 4}',
                -32600,
                "invalid_request",
                4,
            ),
            (
                '{"jsonrpc": "2.0", "method": "ping", "params": true, "id": 4}',
                -32600,
                "invalid_request",
                4,
            ),
            (
                '{"jsonrpc": "2.0", "method": "no_such_method", "id": 5}',
                -32601,
                "method_not_found",
                5,
            ),
            ('{"jsonrpc": "2.0", "method": "rpc.other", "id": 5}', -32601, "method_not_found", 5),
        ],
    )
    async def test_error_reply(self, client, message, code, reason, reply_id):
        """The reply carries the code, message and reason the spec lists, and the right id."""
        await client.send(message)
        reply = await client.recv()
        assert reply["jsonrpc"] == "2.0"
        assert reply["id"] == reply_id
        assert reply["error"]["code"] == code
        assert reply["error"]["data"]["reason"] == reason
        assert "result" not in reply

    async def test_malformed_without_id_is_answered(self, client):
        """A message that cannot be recognised as a notification is answered with id null."""
        await client.send('{"jsonrpc": "2.0"}')
        reply = await client.recv()
        assert reply["id"] is None and reply["error"]["code"] == -32600

    async def test_method_not_found_names_method(self, client):
        """data.details holds the unknown method's name."""
        error = await client.error("bogus_method")
        assert error["message"] == "Method not found"
        assert error["data"]["details"] == "bogus_method"

    async def test_batch_too_large(self, start_service, connect):
        """A batch longer than max_batch_size is one -32600 error object, not an array."""
        svc = await start_service(server={"max_batch_size": 3})
        client = await connect(svc)
        await client.send([{"jsonrpc": "2.0", "method": "ping", "id": i} for i in range(4)])
        reply = await client.recv()
        assert isinstance(reply, dict)
        assert reply["error"]["data"]["reason"] == "batch_too_large"


class TestRequests:
    """Ids, params and results."""

    @pytest.mark.parametrize("request_id", [1, 0, -5, 2.5, "abc", ""])
    async def test_id_echoed(self, client, request_id):
        """Any string or number id comes back unchanged."""
        await client.send({"jsonrpc": "2.0", "method": "ping", "id": request_id})
        reply = await client.recv()
        assert reply["id"] == request_id and reply["result"] == "pong"

    async def test_null_id_is_a_request(self, client):
        """`id: null` is answered with `id: null` (and without metadata)."""
        await client.send({"jsonrpc": "2.0", "method": "ping", "id": None})
        reply = await client.recv()
        assert reply == {"jsonrpc": "2.0", "id": None, "result": "pong"}

    async def test_params_null_counts_as_absent(self, client):
        """`params: null` is accepted like no params."""
        await client.send({"jsonrpc": "2.0", "method": "ping", "params": None, "id": 1})
        assert (await client.recv())["result"] == "pong"

    async def test_unknown_param_keys_ignored(self, client):
        """Params a method does not know are ignored (API.md §1)."""
        assert await client.call("ping", {"whatever": 1}) == "pong"

    async def test_metadata_block(self, client):
        """Responses carry processing time, server timestamp and the request id."""
        reply = await client.request("ping")
        meta = reply["metadata"]
        assert meta["request_id"] == reply["id"]
        assert meta["processing_time_ms"] >= 0
        assert meta["server_timestamp"].endswith("Z") and len(meta["server_timestamp"]) == 24

    async def test_metadata_can_be_switched_off(self, start_service, connect):
        """server.response_metadata: false removes the block."""
        svc = await start_service(server={"response_metadata": False})
        client = await connect(svc)
        reply = await client.request("ping")
        assert reply == {"jsonrpc": "2.0", "id": reply["id"], "result": "pong"}

    async def test_wrong_param_type(self, client):
        """A string where a string enum is expected but invalid gives -32602 with the param name."""
        error = await client.error("authenticate", {"auth_token": "x", "auth_type": "password"})
        assert error["code"] == -32602
        assert error["data"]["param"] == "auth_type"

    async def test_param_of_wrong_json_type(self, client):
        """A number where a string is expected is never coerced: -32602 invalid_type."""
        error = await client.error("authenticate", {"auth_token": 12345})
        assert error["code"] == -32602
        assert error["data"]["reason"] == "invalid_type"
        assert error["data"]["param"] == "auth_token"


class TestNotifications:
    """Client notifications: run, never answered."""

    async def test_notification_gets_no_reply(self, client):
        """Nothing comes back for a notification, even an erroring one; later requests work."""
        await client.send({"jsonrpc": "2.0", "method": "ping"})
        await client.send({"jsonrpc": "2.0", "method": "no_such_method"})
        await client.send({"jsonrpc": "2.0", "method": "ping", "params": [1]})
        reply = await client.request("ping")
        assert reply["result"] == "pong"
        assert not client.pending  # nothing was sent back for the notifications

    async def test_notification_runs(self, service, connect):
        """An authenticate notification establishes the session without a reply."""
        client = await connect(service)
        await client.send(
            {
                "jsonrpc": "2.0",
                "method": "authenticate",
                "params": {"auth_token": service.token("viewer")},
            }
        )
        result = await client.call("get_server_info")
        assert result["name"] == "camsvc"


class TestBatches:
    """API.md §3.3."""

    async def test_batch_in_order_with_notifications_skipped(self, client):
        """One array, a response per request element in request order; notifications have none."""
        await client.send(
            [
                {"jsonrpc": "2.0", "method": "ping", "id": "a"},
                {"jsonrpc": "2.0", "method": "ping"},
                {"jsonrpc": "2.0", "method": "nope", "id": "b"},
                7,
                {"jsonrpc": "2.0", "method": "ping", "id": "c"},
            ]
        )
        reply = await client.recv()
        assert [r["id"] for r in reply] == ["a", "b", None, "c"]
        assert reply[0]["result"] == "pong"
        assert reply[1]["error"]["code"] == -32601
        assert reply[2]["error"]["code"] == -32600
        assert reply[3]["result"] == "pong"

    async def test_batch_of_notifications_sends_nothing(self, client):
        """When no element needs a reply, nothing is sent."""
        await client.send(
            [{"jsonrpc": "2.0", "method": "ping"}, {"jsonrpc": "2.0", "method": "ping"}]
        )
        reply = await client.request("ping")
        assert reply["result"] == "pong"

    async def test_authenticate_applies_to_later_elements(self, service, connect):
        """Elements run sequentially: an authenticate applies to the elements after it."""
        client = await connect(service)
        await client.send(
            [
                {"jsonrpc": "2.0", "method": "get_server_info", "id": 1},
                {
                    "jsonrpc": "2.0",
                    "method": "authenticate",
                    "params": {"token": service.token("viewer")},
                    "id": 2,
                },
                {"jsonrpc": "2.0", "method": "get_server_info", "id": 3},
            ]
        )
        reply = await client.recv()
        assert reply[0]["error"]["code"] == -32001
        assert reply[1]["result"]["role"] == "viewer"
        assert reply[2]["result"]["name"] == "camsvc"
