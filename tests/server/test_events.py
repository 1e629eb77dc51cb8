"""Subscriptions and notification delivery over real WebSockets (API.md §8.8, §9)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
import trio

from camsvc.auth import Role
from camsvc.auth.session import Session
from camsvc.events import EventBus
from camsvc.rpc.connection import RpcConnection
from camsvc.rpc.ratelimit import TokenBucket
from camsvc.server import fanout


class TestSubscriptions:
    """subscribe_events, unsubscribe_events, get_subscription_stats."""

    async def test_subscribe_adds_and_sorts(self, client):
        """Each call adds to the set; the result is the whole set, sorted."""
        r = await client.call("subscribe_events", {"topics": ["snapshot.taken"]})
        assert r == {"subscribed": True, "topics": ["snapshot.taken"], "filters": None}
        r = await client.call(
            "subscribe_events", {"topics": ["camera.connected", "camera_status_update"]}
        )
        assert r["topics"] == ["camera.connected", "camera_status_update", "snapshot.taken"]

    async def test_filters_replace_and_clear(self, client):
        """filters replaces the filter; omitted keeps it; {} or null clears it."""
        r = await client.call(
            "subscribe_events", {"topics": ["snapshot.taken"], "filters": {"device": "camera0"}}
        )
        assert r["filters"] == {"device": ["camera0"]}
        r = await client.call("subscribe_events", {"topics": ["camera.connected"]})
        assert r["filters"] == {"device": ["camera0"]}
        r = await client.call(
            "subscribe_events",
            {"topics": ["camera.connected"], "filters": {"device": ["camera2", "ext_a"]}},
        )
        assert r["filters"] == {"device": ["camera2", "ext_a"]}
        r = await client.call("subscribe_events", {"topics": ["camera.connected"], "filters": {}})
        assert r["filters"] is None
        await client.call(
            "subscribe_events", {"topics": ["camera.connected"], "filters": {"device": "camera1"}}
        )
        r = await client.call("subscribe_events", {"topics": ["camera.connected"], "filters": None})
        assert r["filters"] is None

    @pytest.mark.parametrize(
        ("params", "reason", "param"),
        [
            ({"topics": ["camera.exploded"]}, "unknown_topic", "topics"),
            ({"topics": []}, "out_of_range", "topics"),
            ({"topics": ["snapshot.taken"] * 33}, "out_of_range", "topics"),
            ({"topics": "snapshot.taken"}, "invalid_type", "topics"),
            ({}, "missing_param", "topics"),
            (
                {"topics": ["snapshot.taken"], "filters": {"camera": "camera0"}},
                "invalid_value",
                "filters",
            ),
            (
                {"topics": ["snapshot.taken"], "filters": {"device": "/dev/video0"}},
                "invalid_device",
                "filters.device",
            ),
            (
                {"topics": ["snapshot.taken"], "filters": {"device": ["camera0", "foo"]}},
                "invalid_device",
                "filters.device",
            ),
        ],
    )
    async def test_bad_params(self, client, params, reason, param):
        """Bad topics and filters are -32602 with the precise reason."""
        error = await client.error("subscribe_events", params)
        assert error["code"] == -32602
        assert error["data"]["reason"] == reason
        assert error["data"]["param"] == param

    async def test_unsubscribe(self, client):
        """Named topics leave the set (names not in it are ignored); null removes all."""
        await client.call("subscribe_events", {"topics": ["snapshot.taken", "camera.connected"]})
        r = await client.call(
            "unsubscribe_events", {"topics": ["snapshot.taken", "recording.stop"]}
        )
        assert r == {
            "unsubscribed": True,
            "topics": ["snapshot.taken", "recording.stop"],
            "remaining": ["camera.connected"],
        }
        r = await client.call("unsubscribe_events", {})
        assert r == {"unsubscribed": True, "topics": None, "remaining": []}
        error = await client.error("unsubscribe_events", {"topics": ["nope"]})
        assert error["data"]["reason"] == "unknown_topic"

    async def test_stats(self, service, connect):
        """Global counts across connections, and this connection's own view."""
        a = await connect(service, "viewer")
        b = await connect(service, "viewer")
        await a.call(
            "subscribe_events",
            {"topics": ["snapshot.taken", "system.health"], "filters": {"device": "camera1"}},
        )
        await b.call("subscribe_events", {"topics": ["snapshot.taken"]})
        stats = await a.call("get_subscription_stats")
        assert stats["global_stats"] == {
            "total_subscriptions": 3,
            "active_clients": 2,
            "topic_counts": {"snapshot.taken": 2, "system.health": 1},
        }
        assert stats["client_topics"] == ["snapshot.taken", "system.health"]
        assert stats["filters"] == {"device": ["camera1"]}
        assert stats["events_dropped"] == 0
        assert (
            stats["client_id"]
            == (await a.call("authenticate", {"auth_token": service.token("viewer")}))["session_id"]
        )


class TestDelivery:
    """What the bus sends to whom."""

    async def test_topic_event_envelope_and_filters(self, service, connect):
        """Subscribers get method `event` with {topic, timestamp, data}; device filters apply."""
        all_cams = await connect(service, "viewer")
        cam1 = await connect(service, "viewer")
        await all_cams.call("subscribe_events", {"topics": ["snapshot.taken", "system.health"]})
        await cam1.call(
            "subscribe_events",
            {"topics": ["snapshot.taken", "system.health"], "filters": {"device": "camera1"}},
        )
        bus = service.app.bus
        bus.publish("snapshot.taken", {"device": "camera0", "filename": "a.jpg"}, device="camera0")
        bus.publish("snapshot.taken", {"device": "camera1", "filename": "b.jpg"}, device="camera1")
        bus.publish("system.health", {"status": "healthy", "components": {}})
        got_all = [await all_cams.recv() for _ in range(3)]
        got_cam1 = [await cam1.recv() for _ in range(2)]
        assert [m["params"]["data"].get("filename") for m in got_all] == ["a.jpg", "b.jpg", None]
        assert [m["params"]["topic"] for m in got_cam1] == ["snapshot.taken", "system.health"]
        assert got_cam1[0]["params"]["data"]["filename"] == "b.jpg"
        first = got_all[0]
        assert first["jsonrpc"] == "2.0" and first["method"] == "event" and "id" not in first
        assert first["params"]["timestamp"].endswith("Z")

    async def test_unauthenticated_get_nothing(self, service, connect):
        """Only authenticated connections receive notifications."""
        anon = await connect(service)
        authed = await connect(service, "viewer")
        service.app.bus.notify_all(
            "camera_status_update", {"device": "camera0", "status": "CONNECTED"}
        )
        assert (await authed.recv())["method"] == "camera_status_update"
        assert await anon.call("ping") == "pong"
        assert not anon.pending  # nothing arrived before the reply

    async def test_a_connection_that_loses_its_session_gets_nothing_until_it_authenticates(
        self, service, connect
    ):
        """A failed `authenticate` ends the session: topic events and status updates stop,
        and the subscription's events come again after a good one."""
        client = await connect(service, "viewer")
        await client.call("subscribe_events", {"topics": ["snapshot.taken"]})
        bus = service.app.bus

        def announce(n: int) -> None:
            bus.publish("snapshot.taken", {"device": "camera0", "n": n}, device="camera0")
            bus.notify_all("camera_status_update", {"device": "camera0", "n": n})

        async def heard() -> list[int]:
            got = [(await client.recv())["params"] for _ in range(2)]
            return [got[0]["data"]["n"], got[1]["n"]]  # the event, then the status update

        announce(1)
        assert await heard() == [1, 1]
        assert (await client.error("authenticate", {"auth_token": "not-a-token"}))["code"]
        announce(2)
        assert await client.call("ping") == "pong"
        assert not client.pending  # nothing arrived before the reply
        await client.call("authenticate", {"auth_token": service.token("viewer")})
        announce(3)
        assert await heard() == [3, 3]

    async def test_notification_raised_while_a_response_is_written_follows_it(
        self, service, connect, nursery
    ):
        """Once a response has begun, a notification raised meanwhile reaches the client after
        it (a client that reads "the next message" after `authenticate` gets the reply)."""
        armed = False

        async def publisher() -> None:
            # Runs in every scheduling round, so it raises the notification in the round in
            # which the reader begins writing the reply and yields, or in the next one.
            nonlocal armed
            while True:
                await trio.lowlevel.checkpoint()
                if armed:
                    armed = False
                    service.app.bus.notify_all("camera_status_update", {"device": "camera0"})

        def arm(conn: object, params: object) -> str:
            nonlocal armed
            armed = True
            return "armed"

        service.app.registry.add("test.arm_publisher", arm, result=str)
        client = await connect(service, "viewer")
        nursery.start_soon(publisher)
        # Trio runs each round's tasks in a random order: repeat so that every order of the
        # reader, the publisher and the connection's writer task occurs.
        for _ in range(40):
            assert await client.call("test.arm_publisher") == "armed"
            assert not client.pending, "a notification overtook the response"
            assert (await client.recv())["method"] == "camera_status_update"

    async def test_legacy_system_health_update(self, service, connect):
        """Subscribing to system_health_update also delivers the method system_health_update."""
        client = await connect(service, "viewer")
        await client.call("subscribe_events", {"topics": ["system_health_update"]})
        service.app.bus.publish(
            "system.health", {"status": "degraded", "components": {"storage": "degraded"}}
        )
        msg = await client.recv()
        assert msg["method"] == "system_health_update"
        assert msg["params"] == {"status": "degraded", "components": {"storage": "degraded"}}

    async def test_slow_client_loses_oldest_only(self, start_service, connect):
        """A full queue drops the oldest notifications, counts them, and never drops a response."""
        svc = await start_service(server={"send_queue_size": 4, "write_buffer_size": 4096})
        slow = await connect(svc, "viewer")
        await slow.call("subscribe_events", {"topics": ["snapshot.taken"]})
        # Larger than the socket buffers: its direct write is partial, the writer task owns
        # the socket until the client reads, and what follows must queue.
        big = {"device": "camera0", "seq": -1, "pad": "x" * 900_000}
        svc.app.bus.publish("snapshot.taken", big, device="camera0")
        for i in range(100):  # no checkpoint in between: the writer cannot drain meanwhile
            svc.app.bus.publish("snapshot.taken", {"device": "camera0", "seq": i}, device="camera0")
        got = [(await slow.recv())["params"]["data"]["seq"] for _ in range(5)]
        assert got == [-1, 96, 97, 98, 99]
        stats = await slow.call("get_subscription_stats")
        assert stats["events_dropped"] == 96

    async def test_shutdown_event_then_1001(self, service, connect):
        """system.shutdown reaches subscribers before the connection closes with 1001."""
        client = await connect(service, "viewer")
        await client.call("subscribe_events", {"topics": ["system.shutdown"]})
        service.app.request_shutdown()
        msg = await client.recv()
        assert msg["params"]["topic"] == "system.shutdown"
        assert msg["params"]["data"] == {"reason": "requested"}
        with trio.fail_after(5):
            import trio_websocket

            with pytest.raises(trio_websocket.ConnectionClosed) as info:
                while True:
                    await client.ws.get_message()
        assert info.value.reason.code == 1001


class _RecordingSink:
    """A sink that keeps each delivery as it came: one entry per notify or notify_many."""

    authenticated = True
    dropped = 0

    def __init__(self) -> None:
        self.deliveries: list[list[bytes]] = []

    def notify(self, message: bytes) -> None:
        self.deliveries.append([message])

    def notify_many(self, messages: Sequence[bytes]) -> None:
        self.deliveries.append(list(messages))


def _methods(delivery: list[bytes]) -> list[str]:
    return [json.loads(m)["method"] for m in delivery]


class TestBatch:
    """`EventBus.batch`: what one change announces reaches each client as one write."""

    def test_held_until_the_block_ends_then_one_delivery_each_in_order(self):
        bus = EventBus()
        subscribed, other = _RecordingSink(), _RecordingSink()
        bus.attach("a", subscribed)
        bus.attach("b", other)
        bus.subscribe("a", ["camera.disconnected"])
        with bus.batch():
            bus.publish("camera.disconnected", {"device": "camera0"}, device="camera0")
            bus.notify_all("camera_status_update", {"device": "camera0"})
            assert subscribed.deliveries == [] and other.deliveries == []
        assert [_methods(d) for d in subscribed.deliveries] == [["event", "camera_status_update"]]
        assert [_methods(d) for d in other.deliveries] == [["camera_status_update"]]

    def test_nested_blocks_deliver_once_at_the_outermost(self):
        bus = EventBus()
        sink = _RecordingSink()
        bus.attach("a", sink)
        with bus.batch():
            with bus.batch():
                bus.notify_all("camera_status_update", {"n": 1})
            assert sink.deliveries == []
            bus.notify_all("camera_status_update", {"n": 2})
        assert [[json.loads(m)["params"]["n"] for m in d] for d in sink.deliveries] == [[1, 2]]
        bus.notify_all("camera_status_update", {"n": 3})  # outside a block: at once
        assert len(sink.deliveries) == 2

    def test_an_error_inside_still_delivers_what_was_published(self):
        bus = EventBus()
        sink = _RecordingSink()
        bus.attach("a", sink)
        with pytest.raises(RuntimeError), bus.batch():
            bus.notify_all("camera_status_update", {"n": 1})
            raise RuntimeError("boom")
        assert len(sink.deliveries) == 1
        with bus.batch():  # and the bus is not left batching
            pass
        bus.notify_all("camera_status_update", {"n": 2})
        assert len(sink.deliveries) == 2

    async def test_over_a_websocket_in_order_whether_written_at_once_or_queued(
        self, start_service, connect
    ):
        """A client gets a batch's notifications in order, both when its socket is free (one
        write) and when an earlier notification still holds it (the batch queues)."""
        svc = await start_service(server={"write_buffer_size": 4096})
        client = await connect(svc, "viewer")
        await client.call("subscribe_events", {"topics": ["camera.disconnected"]})
        bus = svc.app.bus

        def change(seq: int) -> None:
            with bus.batch():
                bus.publish("camera.disconnected", {"device": "camera0", "seq": seq}, "camera0")
                bus.notify_all("camera_status_update", {"device": "camera0", "seq": seq})

        change(1)
        # Larger than the socket buffers: its write is partial and the next batch must queue.
        bus.publish("camera.disconnected", {"device": "camera0", "pad": "x" * 900_000}, "camera0")
        change(2)
        got = [await client.recv() for _ in range(5)]
        seqs = [(m["method"], (m["params"].get("data") or m["params"]).get("seq")) for m in got]
        assert seqs == [
            ("event", 1),
            ("camera_status_update", 1),
            ("event", None),
            ("event", 2),
            ("camera_status_update", 2),
        ]


class _RecordingFanout:
    """A bus fan-out that keeps each call: (sinks, messages)."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[_RecordingSink], list[str]]] = []

    def __call__(self, sinks: Sequence[_RecordingSink], messages: Sequence[bytes]) -> None:
        self.calls.append((list(sinks), [json.loads(m)["method"] for m in messages]))


def _three_sinks(
    topic: str,
) -> tuple[EventBus, _RecordingFanout, tuple[_RecordingSink, _RecordingSink, _RecordingSink]]:
    """A bus with a recording fan-out and sinks a, b, c, of which a and c subscribe to
    `topic`."""
    fan = _RecordingFanout()
    bus = EventBus(fanout=fan)
    sinks = _RecordingSink(), _RecordingSink(), _RecordingSink()
    for conn_id, sink in zip("abc", sinks, strict=True):
        bus.attach(conn_id, sink)
    bus.subscribe("a", [topic])
    bus.subscribe("c", [topic])
    return bus, fan, sinks


_SESSION = Session(user_id="u", role=Role.VIEWER, auth_method="jwt", expires_at=None)


class _SessionSink(_RecordingSink):
    """A sink authenticated while its connection has a session, as the transport's are."""

    def __init__(self, rpc: RpcConnection) -> None:
        super().__init__()
        self._rpc = rpc

    @property
    def authenticated(self) -> bool:  # type: ignore[override]
        return self._rpc.session is not None


class TestFanout:
    """The bus hands the same messages to many sinks in one call of its fan-out."""

    def test_an_event_goes_to_all_its_subscribers_in_one_call(self):
        bus, fan, (a, _, c) = _three_sinks("camera.connected")
        assert bus.publish("camera.connected", {"device": "camera0"}, device="camera0") == 2
        assert fan.calls == [([a, c], ["event"])]

    def test_unsubscribing_and_detaching_stop_delivery_and_resubscribing_restores_it(self):
        bus, fan, (a, b, _) = _three_sinks("camera.connected")
        bus.subscribe("b", ["camera.connected", "snapshot.taken"])
        bus.unsubscribe("a", ["camera.connected"])
        bus.unsubscribe("b", None)
        bus.detach("c")
        assert bus.publish("camera.connected", {"device": "camera0"}, device="camera0") == 0
        assert bus.publish("snapshot.taken", {"device": "camera0"}, device="camera0") == 0
        bus.subscribe("a", ["camera.connected"], devices=frozenset({"camera1"}))
        bus.subscribe("b", ["camera.connected"])
        assert bus.publish("camera.connected", {"device": "camera0"}, device="camera0") == 1
        assert bus.publish("camera.connected", {"device": "camera1"}, device="camera1") == 2
        assert fan.calls == [([b], ["event"]), ([a, b], ["event"])]

    def test_a_session_change_reported_by_the_connection_changes_the_recipients(self):
        """The bus keeps its recipient lists between events: a connection that loses or
        regains its session tells it (`RpcConnection.on_auth_change`)."""
        fan = _RecordingFanout()
        bus = EventBus(fanout=fan)
        rpc = RpcConnection("a", TokenBucket(1e9, 10**9), session=_SESSION)
        rpc.on_auth_change = bus.recipients_changed
        sink = _SessionSink(rpc)
        bus.attach("a", sink)
        bus.subscribe("a", ["camera.connected"])

        def announce() -> int:
            return bus.publish("camera.connected", {"device": "camera0"}, device="camera0") + (
                bus.notify_all("camera_status_update", {"device": "camera0"})
            )

        assert announce() == 2
        rpc.session = None
        assert announce() == 0
        rpc.session = _SESSION
        assert announce() == 2
        assert fan.calls == [([sink], ["event"]), ([sink], ["camera_status_update"])] * 2

    def test_a_batch_groups_the_sinks_due_the_same_messages(self):
        bus, fan, (a, b, c) = _three_sinks("camera.disconnected")
        with bus.batch():
            bus.publish("camera.disconnected", {"device": "camera0"}, device="camera0")
            bus.notify_all("camera_status_update", {"device": "camera0"})
        assert fan.calls == [
            ([a, c], ["event", "camera_status_update"]),
            ([b], ["camera_status_update"]),
        ]

    def test_a_batch_for_the_same_recipients_is_one_call_in_publishing_order(self):
        bus, fan, (a, b, c) = _three_sinks("camera.disconnected")
        bus.subscribe("b", ["camera.disconnected"])
        with bus.batch():
            bus.publish("camera.disconnected", {"device": "camera0"}, device="camera0")
            bus.notify_all("camera_status_update", {"device": "camera0"})
            with bus.batch():
                bus.publish("camera.disconnected", {"device": "camera1"}, device="camera1")
        [(sinks, methods)] = fan.calls  # one call, in whatever order the sinks come
        assert sorted(map(id, sinks)) == sorted(map(id, (a, b, c)))
        assert methods == ["event", "camera_status_update", "event"]

    def test_system_health_legacy_name_follows_the_event_for_a_sink_with_both(self):
        bus = EventBus()
        both, legacy_only = _RecordingSink(), _RecordingSink()
        bus.attach("a", both)
        bus.attach("b", legacy_only)
        bus.subscribe("a", ["system.health", "system_health_update"])
        bus.subscribe("b", ["system_health_update"])
        assert bus.publish("system.health", {"status": "healthy"}) == 2
        assert [_methods(d) for d in both.deliveries] == [["event"], ["system_health_update"]]
        assert [_methods(d) for d in legacy_only.deliveries] == [["system_health_update"]]

    async def test_clients_shared_between_two_threads_each_get_every_event_in_order(
        self, start_service, connect, monkeypatch
    ):
        """Above `SPLIT_AT` clients, a Trio worker thread and the event loop's thread share
        the sends, one client at a time here; nobody misses or reorders a thing, including
        clients whose sockets are full and queue the rest."""
        monkeypatch.setattr(fanout, "SPLIT_AT", 2)
        monkeypatch.setattr(fanout, "CHUNK", 1)
        svc = await start_service(server={"write_buffer_size": 4096})
        clients = [await connect(svc, "viewer") for _ in range(8)]
        for client in clients:
            await client.call("subscribe_events", {"topics": ["camera.disconnected"]})
        bus = svc.app.bus
        bus.publish("camera.disconnected", {"device": "camera0", "seq": 1}, "camera0")
        # Larger than the socket buffers: every write is partial and the next one queues.
        bus.publish("camera.disconnected", {"device": "camera0", "pad": "x" * 900_000}, "camera0")
        bus.publish("camera.disconnected", {"device": "camera0", "seq": 2}, "camera0")
        for client in clients:
            got = [await client.recv() for _ in range(3)]
            assert [m["params"]["data"].get("seq") for m in got] == [1, None, 2]
