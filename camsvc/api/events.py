"""Event subscription methods: `subscribe_events`, `unsubscribe_events`,
`get_subscription_stats` (API.md §8.8)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import UNSET, UnsetType

from camsvc.errors import InvalidParams
from camsvc.events import ALIASES, TOPICS, EventBus, SubscriptionStats
from camsvc.ids import check_device_id
from camsvc.rpc.connection import RpcConnection
from camsvc.rpc.registry import NoParams, Registry

__all__ = ["EventsApi", "SubscribeParams", "UnsubscribeParams"]

_KNOWN = TOPICS | ALIASES


def _check_topics(topics: list[str]) -> None:
    unknown = sorted(set(topics) - _KNOWN)
    if unknown:
        raise InvalidParams(
            "unknown_topic", f"unknown topics: {', '.join(unknown)}", param="topics"
        )


class Filters(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Subscription filters; only `device` exists."""

    device: str | list[str] | None = None

    def __post_init__(self) -> None:
        for device in [self.device] if isinstance(self.device, str) else self.device or []:
            check_device_id(device, "filters.device")


class SubscribeParams(msgspec.Struct, frozen=True):
    """Topics to add (1-32) and optionally new filters (`{}` or null clears them)."""

    topics: Annotated[list[str], msgspec.Meta(min_length=1, max_length=32)]
    filters: Filters | UnsetType | None = UNSET

    def __post_init__(self) -> None:
        _check_topics(self.topics)


class UnsubscribeParams(msgspec.Struct, frozen=True):
    """Topics to remove; absent or null removes all."""

    topics: list[str] | None = None

    def __post_init__(self) -> None:
        if self.topics is not None:
            _check_topics(self.topics)


class FilterView(msgspec.Struct, frozen=True):
    """The filters in force, as results show them."""

    device: list[str]


class SubscribeResult(msgspec.Struct, frozen=True):
    """The result of `subscribe_events`."""

    subscribed: bool
    topics: list[str]
    filters: FilterView | None


class UnsubscribeResult(msgspec.Struct, frozen=True):
    """The result of `unsubscribe_events`."""

    unsubscribed: bool
    topics: list[str] | None
    remaining: list[str]


class EventsApi:
    """Handlers that manage a connection's subscriptions on the event bus."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus

    def register(self, registry: Registry) -> None:
        """Add this group's methods to `registry`."""
        registry.add(
            "subscribe_events", self.subscribe, params=SubscribeParams, result=SubscribeResult
        )
        registry.add(
            "unsubscribe_events",
            self.unsubscribe,
            params=UnsubscribeParams,
            result=UnsubscribeResult,
        )
        registry.add("get_subscription_stats", self.stats, result=SubscriptionStats)

    def subscribe(self, conn: RpcConnection, params: SubscribeParams) -> SubscribeResult:
        """Add topics to this connection's set; replace its filters when given."""
        devices: frozenset[str] | UnsetType | None = UNSET
        if params.filters is None:
            devices = None
        elif params.filters is not UNSET:
            d = params.filters.device
            devices = frozenset([d] if isinstance(d, str) else d) if d else None
        topics, active = self._bus.subscribe(conn.conn_id, params.topics, devices)
        return SubscribeResult(
            subscribed=True,
            topics=topics,
            filters=FilterView(sorted(active)) if active else None,
        )

    def unsubscribe(self, conn: RpcConnection, params: UnsubscribeParams) -> UnsubscribeResult:
        """Remove topics (or all) from this connection's set."""
        remaining = self._bus.unsubscribe(conn.conn_id, params.topics)
        return UnsubscribeResult(unsubscribed=True, topics=params.topics, remaining=remaining)

    def stats(self, conn: RpcConnection, params: NoParams) -> SubscriptionStats:
        """Subscription figures for all connections and this one."""
        return self._bus.stats(conn.conn_id)
