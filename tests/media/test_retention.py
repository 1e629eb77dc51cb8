"""Retention policies and cleanup (API.md §8.7)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import trio

DAY = 86400


def _put(root: Path, subdir: str, name: str, size: int, age_days: float) -> Path:
    path = root / subdir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)
    t = time.time() - age_days * DAY
    os.utime(path, (t, t))
    return path


@pytest.fixture
def media(tmp_path):
    snaps, recs = tmp_path / "snapshots", tmp_path / "recordings"
    files = {
        "old.jpg": _put(snaps, "camera0", "old.jpg", 1000, 40),
        "mid.mp4": _put(recs, "camera0", "mid.mp4", 4000, 20),
        "new.jpg": _put(snaps, "camera1", "new.jpg", 2000, 1),
        "newest.mp4": _put(recs, "camera1", "newest.mp4", 3000, 0.1),
    }
    return files


class TestPolicies:
    """age, size, manual, disabled."""

    async def test_disabled_by_default(self, media, service, connect):
        """Disabled: cleanup_old_files answers a result (not an error) and deletes nothing."""
        client = await connect(service, "admin")
        r = await client.call("cleanup_old_files")
        assert r == {
            "cleanup_executed": False,
            "files_deleted": 0,
            "space_freed": 0,
            "message": "Retention policy is disabled",
        }
        assert all(p.exists() for p in media.values())

    async def test_age(self, media, service, connect):
        """age deletes files older than max_age_days, snapshots and recordings alike."""
        client = await connect(service, "admin")
        r = await client.call(
            "set_retention_policy", {"policy_type": "age", "enabled": True, "max_age_days": 10}
        )
        assert r == {
            "policy_type": "age",
            "max_age_days": 10,
            "max_size_gb": 10,
            "enabled": True,
            "message": "Retention policy updated",
        }
        r = await client.call("cleanup_old_files")
        assert (
            r["cleanup_executed"] is True and r["files_deleted"] == 2 and r["space_freed"] == 5000
        )
        assert [n for n, p in media.items() if p.exists()] == ["new.jpg", "newest.mp4"]
        assert (await client.call("list_recordings"))["total"] == 1

    async def test_size(self, media, service, connect):
        """size deletes oldest first until the total fits."""
        client = await connect(service, "admin")
        await client.call(
            "set_retention_policy", {"policy_type": "size", "enabled": True, "max_size_gb": 5.5e-6}
        )
        r = await client.call("cleanup_old_files")
        assert r["files_deleted"] == 2 and r["space_freed"] == 5000  # 10,000 bytes down to 5,000
        assert [n for n, p in media.items() if p.exists()] == ["new.jpg", "newest.mp4"]

    async def test_manual_applies_limits_only_on_request(self, media, service, connect, mock_clock):
        """manual never runs by itself; cleanup_old_files applies the limits that are set."""
        client = await connect(service, "admin")
        await client.call(
            "set_retention_policy", {"policy_type": "manual", "enabled": True, "max_age_days": 30}
        )
        mock_clock.jump(10 * DAY)
        await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        assert media["old.jpg"].exists()
        r = await client.call("cleanup_old_files")
        assert r["files_deleted"] >= 1 and not media["old.jpg"].exists()

    async def test_scheduled_runs(self, media, start_service, connect, mock_clock):
        """An enabled age policy runs every interval_s by itself."""
        svc = await start_service(
            retention_policy={"enabled": True, "max_age_days": 30, "interval_s": 60}
        )
        assert media["old.jpg"].exists()
        mock_clock.jump(61)
        with trio.fail_after(5):  # MockClock: the deadline is virtual; I/O is real
            while media["old.jpg"].exists():
                await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        assert svc.app.retention.deleted_total == 1

    async def test_persisted_across_restart(self, media, start_service, connect):
        """The stored policy overrides the config after a restart."""
        svc = await start_service()
        client = await connect(svc, "admin")
        await client.call(
            "set_retention_policy", {"policy_type": "size", "enabled": True, "max_size_gb": 2}
        )
        svc.app.request_shutdown()
        again = await start_service()
        assert again.app.retention.policy.policy_type == "size"
        assert again.app.retention.policy.max_size_gb == 2

    async def test_recording_in_use_is_kept(self, media, service, connect):
        """A segment still being written is never deleted."""
        service.app.retention._in_use = lambda name: name == "mid.mp4"
        client = await connect(service, "admin")
        await client.call(
            "set_retention_policy", {"policy_type": "age", "enabled": True, "max_age_days": 1}
        )
        await client.call("cleanup_old_files")
        assert media["mid.mp4"].exists() and not media["old.jpg"].exists()

    @pytest.mark.parametrize(
        ("params", "reason", "param"),
        [
            ({"policy_type": "forever", "enabled": True}, "invalid_value", "policy_type"),
            ({"policy_type": "age"}, "missing_param", "enabled"),
            ({"policy_type": "age", "enabled": "yes"}, "invalid_type", "enabled"),
            (
                {"policy_type": "age", "enabled": True, "max_age_days": 0},
                "out_of_range",
                "max_age_days",
            ),
            (
                {"policy_type": "age", "enabled": True, "max_age_days": 366},
                "out_of_range",
                "max_age_days",
            ),
            (
                {"policy_type": "size", "enabled": True, "max_size_gb": 0},
                "out_of_range",
                "max_size_gb",
            ),
            (
                {"policy_type": "size", "enabled": True, "max_size_gb": 1001},
                "out_of_range",
                "max_size_gb",
            ),
        ],
    )
    async def test_bad_params(self, service, connect, params, reason, param):
        """Invalid policies are -32602 with the param named."""
        client = await connect(service, "admin")
        error = await client.error("set_retention_policy", params)
        assert (error["code"], error["data"]["reason"], error["data"]["param"]) == (
            -32602,
            reason,
            param,
        )


class TestHealthEvents:
    """system.health on change, and the storage warning."""

    async def test_storage_warning_event(self, start_service, connect, mock_clock):
        """Crossing warn_percent turns storage degraded and publishes system.health."""
        svc = await start_service()
        client = await connect(svc, "viewer")
        await client.call("subscribe_events", {"topics": ["system.health"]})
        svc.app.storage.warn_percent = 0.001  # usage is now above the warning level
        mock_clock.jump(3)
        msg = await client.recv()
        assert msg["params"]["topic"] == "system.health"
        assert msg["params"]["data"]["status"] == "degraded"
        assert msg["params"]["data"]["components"]["storage"] == "degraded"
