"""The event bus: topics, per-connection subscriptions and notification fan-out (API.md §9).

Services publish typed events here; the bus encodes each once and hands the bytes to the
sinks (client connections) that should get it, all of an event's recipients at once through
its fan-out. The transport attaches a sink per WebSocket connection and detaches it on
close; the bus never touches sockets, and delivery never waits on a client (a sink queues,
dropping its oldest notification when full).

One change often makes several notifications (a status change: `camera.status_change` and
`camera_status_update`). Published inside `batch()`, each sink gets them together at the
end, in order, as one write: half the system calls of a fan-out to many clients.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

import msgspec
from msgspec import UNSET, UnsetType

from camsvc.timefmt import utc_timestamp

__all__ = [
    "ALIASES",
    "ALWAYS_DELIVERED",
    "TOPICS",
    "EventBus",
    "Fanout",
    "Sink",
    "SubscriptionStats",
    "notify_each",
]

TOPICS = frozenset(
    {
        "camera.connected",
        "camera.disconnected",
        "camera.status_change",
        "recording.start",
        "recording.stop",
        "recording.progress",
        "recording.error",
        "snapshot.taken",
        "system.health",
        "system.startup",
        "system.shutdown",
        "mediamtx.stream_started",
        "mediamtx.stream_stopped",
    }
)
# Legacy names accepted in subscriptions and kept in the set (API.md §9.3).
ALIASES = frozenset({"camera_status_update", "recording_status_update", "system_health_update"})
# Notifications every authenticated client gets without subscribing (API.md §9.1).
ALWAYS_DELIVERED = frozenset({"camera_status_update", "recording_status_update"})


class Sink(Protocol):
    """Where a connection's notifications go (implemented by the transport).

    The bus reads `authenticated` when it works out who gets what, and keeps the answer
    until told otherwise: whoever changes it calls `EventBus.recipients_changed`.
    """

    @property
    def authenticated(self) -> bool: ...

    @property
    def dropped(self) -> int: ...

    def notify(self, message: bytes) -> None: ...

    def notify_many(self, messages: Sequence[bytes]) -> None: ...


class _Notification(msgspec.Struct):
    jsonrpc: str
    method: str
    params: Any


class _EventParams(msgspec.Struct):
    topic: str
    timestamp: str
    data: Any


class GlobalStats(msgspec.Struct, frozen=True):
    """Subscription figures across all connections."""

    total_subscriptions: int
    active_clients: int
    topic_counts: dict[str, int]


class SubscriptionStats(msgspec.Struct, frozen=True):
    """The result of `get_subscription_stats`."""

    global_stats: GlobalStats
    client_topics: list[str]
    client_id: str
    filters: dict[str, list[str]] | None
    events_dropped: int


class _Subscription:
    __slots__ = ("devices", "sink", "topics")

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.topics: set[str] = set()
        self.devices: frozenset[str] | None = None


_encoder = msgspec.json.Encoder()


Fanout = Callable[[Sequence[Sink], Sequence[bytes]], None]


def notify_each(sinks: Sequence[Sink], messages: Sequence[bytes]) -> None:
    """Deliver to one sink after another (the bus's fan-out when the transport has none)."""
    for sink in sinks:
        if len(messages) == 1:
            sink.notify(messages[0])
        else:
            sink.notify_many(messages)


class EventBus:
    """Subscriptions by connection id, and delivery of events and notifications.

    `fanout` hands the same messages to many sinks at once; the transport may give its own
    (`ClientConnection.fan_out` writes to every free socket in one C call).
    """

    def __init__(self, fanout: Fanout = notify_each) -> None:
        self._subs: dict[str, _Subscription] = {}
        # Who wants each topic, so that an event for many clients walks only its own.
        self._by_topic: dict[str, dict[str, _Subscription]] = {}
        # The recipients of each (topic, device) and of `notify_all`, worked out once per change
        # of subscriptions or sessions: walking a thousand connections for them cost about as
        # much as collecting their sockets for the fan-out.
        self._lists: dict[tuple[str, str | None], list[Sink]] = {}
        self._everyone: list[Sink] | None = None
        self._fanout = fanout
        self._batch_depth = 0
        # While batching: each delivery held, in publishing order.
        self._held: list[tuple[list[Sink], bytes]] = []

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Hold what is published inside the block and hand each sink its share at the end,
        in one write. Nests; only the outermost block delivers. Whatever any task publishes
        meanwhile is held too, so each sink's order is the publishing order."""
        self._batch_depth += 1
        try:
            yield
        finally:
            self._batch_depth -= 1
            if not self._batch_depth:
                held, self._held = self._held, []
                self._deliver_held(held)

    def _deliver_held(self, held: list[tuple[list[Sink], bytes]]) -> None:
        if not held:
            return
        first = held[0][0]
        # Usually a single notification, or all of them for the same recipients (each list
        # holds a sink once): one fan-out, found without a map per sink.
        members = {id(sink) for sink in first} if len(held) > 1 else set()
        if all(
            len(sinks) == len(first) and members.issuperset(map(id, sinks)) for sinks, _ in held[1:]
        ):
            self._fanout(first, [message for _, message in held])
            return
        due: dict[int, tuple[Sink, list[bytes]]] = {}  # dicts keep the first-touched order
        for sinks, message in held:
            for sink in sinks:
                if (entry := due.get(id(sink))) is None:
                    due[id(sink)] = (sink, [message])
                else:
                    entry[1].append(message)
        # Sinks due the same messages go out in one fan-out.
        groups: dict[tuple[int, ...], tuple[list[bytes], list[Sink]]] = {}
        for sink, messages in due.values():
            key = tuple(map(id, messages))
            if (group := groups.get(key)) is None:
                groups[key] = (messages, [sink])
            else:
                group[1].append(sink)
        for messages, sinks in groups.values():
            self._fanout(sinks, messages)

    def _deliver(self, sinks: list[Sink], message: bytes) -> None:
        if not sinks:
            return
        if self._batch_depth:
            self._held.append((sinks, message))
        else:
            self._fanout(sinks, (message,))

    # -- connections ------------------------------------------------------------------

    def attach(self, conn_id: str, sink: Sink) -> None:
        """Start tracking a connection (no topics yet)."""
        self._subs[conn_id] = _Subscription(sink)
        self.recipients_changed()

    def detach(self, conn_id: str) -> None:
        """Forget a closed connection and its subscriptions."""
        if (sub := self._subs.pop(conn_id, None)) is not None:
            self._drop_topics(conn_id, sub.topics)
            self.recipients_changed()

    def recipients_changed(self) -> None:
        """Who gets what may differ (a connection, a subscription, or a sink's
        `authenticated` changed): work the recipient lists out afresh."""
        self._lists.clear()
        self._everyone = None

    # -- subscriptions ----------------------------------------------------------------

    def subscribe(
        self,
        conn_id: str,
        topics: Iterable[str],
        devices: frozenset[str] | UnsetType | None = UNSET,
    ) -> tuple[list[str], frozenset[str] | None]:
        """Add topics; `devices` UNSET keeps the filter, None clears it. Returns set and filter."""
        sub = self._subs[conn_id]
        for topic in topics:
            sub.topics.add(topic)
            self._by_topic.setdefault(topic, {})[conn_id] = sub
        if devices is not UNSET:
            sub.devices = devices or None  # type: ignore[assignment]
        self.recipients_changed()
        return sorted(sub.topics), sub.devices

    def unsubscribe(self, conn_id: str, topics: Iterable[str] | None) -> list[str]:
        """Remove topics (None: all); returns what remains."""
        sub = self._subs[conn_id]
        gone = set(sub.topics) if topics is None else sub.topics.intersection(topics)
        sub.topics.difference_update(gone)
        self._drop_topics(conn_id, gone)
        self.recipients_changed()
        return sorted(sub.topics)

    def _drop_topics(self, conn_id: str, topics: Iterable[str]) -> None:
        for topic in topics:
            subs = self._by_topic[topic]
            del subs[conn_id]
            if not subs:
                del self._by_topic[topic]

    def stats(self, conn_id: str) -> SubscriptionStats:
        """Figures for `get_subscription_stats`."""
        counts: dict[str, int] = {}
        total = active = 0
        for sub in self._subs.values():
            total += len(sub.topics)
            active += bool(sub.topics)
            for topic in sub.topics:
                counts[topic] = counts.get(topic, 0) + 1
        mine = self._subs[conn_id]
        return SubscriptionStats(
            global_stats=GlobalStats(total, active, dict(sorted(counts.items()))),
            client_topics=sorted(mine.topics),
            client_id=conn_id,
            filters={"device": sorted(mine.devices)} if mine.devices else None,
            events_dropped=mine.sink.dropped,
        )

    # -- delivery ---------------------------------------------------------------------

    def notify_all(self, method: str, params: Any) -> int:
        """Send a notification to every authenticated client; returns the recipient count."""
        message = _encoder.encode(_Notification("2.0", method, params))
        if (sinks := self._everyone) is None:
            sinks = self._everyone = [s.sink for s in self._subs.values() if s.sink.authenticated]
        self._deliver(sinks, message)
        return len(sinks)

    def publish(
        self, topic: str, data: Any, device: str | None = None, now: float | None = None
    ) -> int:
        """Deliver a topic event to its subscribers; returns the recipient count.

        `device` is the event's `data.device` (None for events without one, which pass
        every device filter).
        """
        sinks = self._recipients(topic, device)
        if sinks:
            params = _EventParams(topic, utc_timestamp(now), data)
            self._deliver(sinks, _encoder.encode(_Notification("2.0", "event", params)))
        if topic != "system.health":
            return len(sinks)
        # The legacy name goes after the event, to each sink that wants it (some want both).
        legacy_sinks = self._recipients("system_health_update", device)
        if legacy_sinks:
            legacy = _encoder.encode(_Notification("2.0", "system_health_update", data))
            self._deliver(legacy_sinks, legacy)
        return len({id(sink) for sink in sinks + legacy_sinks})

    def _recipients(self, topic: str, device: str | None) -> list[Sink]:
        """The authenticated sinks subscribed to `topic` whose device filter lets it pass
        (a list the caller must not change)."""
        if (sinks := self._lists.get((topic, device))) is None:
            sinks = self._lists[topic, device] = self._work_out(topic, device)
        return sinks

    def _work_out(self, topic: str, device: str | None) -> list[Sink]:
        subs = self._by_topic.get(topic)
        if subs is None:
            return []
        if device is None:
            return [sub.sink for sub in subs.values() if sub.sink.authenticated]
        return [
            sub.sink
            for sub in subs.values()
            if sub.sink.authenticated and (sub.devices is None or device in sub.devices)
        ]
