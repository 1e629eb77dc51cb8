"""Retention: delete old snapshots and recordings by age or total size (API.md §8.7).

The policy is stored in the state database and overrides the configuration after a restart.
`age` deletes files created more than `max_age_days` ago; `size` deletes oldest first until
recordings + snapshots fit in `max_size_gb` (10^9 bytes); `manual` never runs by itself, and
`cleanup_old_files` then applies whichever limits are set. Files still being written are
never deleted. Every deletion is logged and counted.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Literal

import msgspec
import structlog
import trio

from camsvc.config import RetentionPolicyConfig
from camsvc.media.catalog import Catalog, FileRecord
from camsvc.media.library import MediaLibrary

__all__ = ["CleanupResult", "Retention", "RetentionPolicy"]

log = structlog.get_logger("camsvc.retention")

_SETTING = "retention_policy"
GB = 1_000_000_000
PolicyType = Literal["age", "size", "manual"]


class RetentionPolicy(msgspec.Struct, frozen=True):
    """The policy in force."""

    policy_type: PolicyType
    enabled: bool
    max_age_days: int | None
    max_size_gb: float | None


class CleanupResult(msgspec.Struct, frozen=True):
    """The result of cleanup_old_files."""

    cleanup_executed: bool
    files_deleted: int
    space_freed: int
    message: str


class Retention:
    """Holds the policy, applies it on request and every `interval_s` while enabled."""

    def __init__(
        self,
        cfg: RetentionPolicyConfig,
        catalog: Catalog,
        library: MediaLibrary,
        *,
        recording_in_use: Callable[[str], bool] = lambda filename: False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._catalog = catalog
        self._library = library
        self._in_use = recording_in_use
        self._clock = clock
        self.interval_s = cfg.interval_s
        self.deleted_total = 0
        self._changed = trio.Event()
        stored = catalog.setting(_SETTING)
        self.policy = (
            msgspec.json.decode(stored, type=RetentionPolicy)
            if stored
            else RetentionPolicy(cfg.policy_type, cfg.enabled, cfg.max_age_days, cfg.max_size_gb)
        )

    def set_policy(self, policy: RetentionPolicy) -> RetentionPolicy:
        """Store a new policy (it applies from now, and after restarts)."""
        self.policy = policy
        self._catalog.set_setting(_SETTING, msgspec.json.encode(policy))
        self._changed.set()
        log.info("retention_policy_set", **msgspec.structs.asdict(policy))
        return policy

    def _victims(self, policy: RetentionPolicy) -> list[FileRecord]:
        use_age = policy.policy_type == "age" or (
            policy.policy_type == "manual" and policy.max_age_days
        )
        use_size = policy.policy_type == "size" or (
            policy.policy_type == "manual" and policy.max_size_gb
        )
        victims: dict[tuple[str, str], FileRecord] = {}
        if use_age and policy.max_age_days:
            cutoff = self._clock() - policy.max_age_days * 86400
            for rec in self._catalog.oldest(("snapshot", "recording"), before=cutoff):
                victims[rec.kind, rec.filename] = rec
        if use_size and policy.max_size_gb:
            total = self._catalog.total_size("snapshot") + self._catalog.total_size("recording")
            total -= sum(r.size for r in victims.values())
            limit = policy.max_size_gb * GB
            for rec in self._catalog.oldest(("snapshot", "recording")):
                if total <= limit:
                    break
                if (rec.kind, rec.filename) not in victims:
                    victims[rec.kind, rec.filename] = rec
                    total -= rec.size
        return [
            r for r in victims.values() if not (r.kind == "recording" and self._in_use(r.filename))
        ]

    def cleanup(self, reason: str = "requested") -> CleanupResult:
        """Apply the stored policy once now."""
        policy = self.policy
        if not policy.enabled:
            return CleanupResult(False, 0, 0, "Retention policy is disabled")
        deleted = freed = 0
        for rec in self._victims(policy):
            size = self._library.unlink(rec)
            self._catalog.remove(rec.kind, rec.filename)
            deleted += 1
            freed += size
            log.info(
                "file_deleted",
                kind=rec.kind,
                filename=rec.filename,
                bytes=size,
                reason=f"retention_{policy.policy_type}",
                trigger=reason,
            )
        self.deleted_total += deleted
        return CleanupResult(True, deleted, freed, f"Deleted {deleted} files, freed {freed} bytes")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Apply the policy every `interval_s` while it is enabled and not manual."""
        task_status.started()
        while True:
            self._changed = trio.Event()
            policy = self.policy
            if policy.enabled and policy.policy_type != "manual":
                with trio.move_on_after(self.interval_s):
                    await self._changed.wait()
                    continue  # the policy changed: re-read it before running
                try:
                    self.cleanup(reason="scheduled")
                except sqlite3.Error as exc:
                    # Locked or damaged: the library repairs it; the next run tries again.
                    log.warning("retention_failed", error=str(exc))
            else:
                await self._changed.wait()
