"""Retention methods: `set_retention_policy`, `cleanup_old_files` (API.md §8.7)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from camsvc.auth.roles import Role
from camsvc.media.retention import CleanupResult, Retention, RetentionPolicy
from camsvc.rpc.connection import RpcConnection
from camsvc.rpc.registry import NoParams, Registry

__all__ = ["PolicyParams", "RetentionApi"]


class PolicyParams(msgspec.Struct, frozen=True):
    """Params of set_retention_policy; limits not given keep their current values."""

    policy_type: Literal["age", "size", "manual"]
    enabled: bool
    max_age_days: Annotated[int, msgspec.Meta(ge=1, le=365)] | None = None
    max_size_gb: Annotated[float, msgspec.Meta(gt=0, le=1000)] | None = None


class PolicyResult(msgspec.Struct, frozen=True):
    """The result of set_retention_policy."""

    policy_type: str
    max_age_days: int | None
    max_size_gb: float | None
    enabled: bool
    message: str


class RetentionApi:
    """Handlers for the retention policy."""

    def __init__(self, retention: Retention) -> None:
        self._retention = retention

    def register(self, registry: Registry) -> None:
        """Add this group's methods to `registry`."""
        registry.add(
            "set_retention_policy",
            self.set_policy,
            params=PolicyParams,
            result=PolicyResult,
            role=Role.ADMIN,
        )
        registry.add("cleanup_old_files", self.cleanup, result=CleanupResult, role=Role.ADMIN)

    def set_policy(self, conn: RpcConnection, params: PolicyParams) -> PolicyResult:
        """Store the retention policy (persisted; overrides the config after restart)."""
        current = self._retention.policy
        policy = self._retention.set_policy(
            RetentionPolicy(
                policy_type=params.policy_type,
                enabled=params.enabled,
                max_age_days=params.max_age_days or current.max_age_days,
                max_size_gb=params.max_size_gb or current.max_size_gb,
            )
        )
        return PolicyResult(
            policy.policy_type,
            policy.max_age_days,
            policy.max_size_gb,
            policy.enabled,
            "Retention policy updated",
        )

    def cleanup(self, conn: RpcConnection, params: NoParams) -> CleanupResult:
        """Apply the stored retention policy once now."""
        return self._retention.cleanup()
