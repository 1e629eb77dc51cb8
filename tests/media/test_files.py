"""File methods and the catalogue (API.md §8.5, §8.7): listing, info, delete, reconciliation."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.fixtures.service import until


def _put(root: Path, subdir: str, name: str, size: int = 100, mtime: float | None = None) -> Path:
    path = root / subdir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


async def _until(predicate, timeout_s: float = 10) -> None:
    await until(predicate, timeout_s, cushion_s=0.05)


@pytest.fixture
def roots(tmp_path):
    return {"snapshots": tmp_path / "snapshots", "recordings": tmp_path / "recordings"}


class TestListing:
    """Paging, ordering, filters and what counts as a file."""

    async def test_order_paging_and_filter(self, start_service, connect, roots):
        """Newest first (ties by name), total before paging, device filter, offset past the end."""
        now = time.time()
        _put(roots["recordings"], "camera0", "camera0_a.mp4", mtime=now - 30)
        _put(roots["recordings"], "camera0", "camera0_b.mp4", mtime=now - 10)
        _put(roots["recordings"], "camera1", "camera1_a.mp4", mtime=now - 10)
        _put(roots["recordings"], "camera1", "camera1_c.mkv", mtime=now - 5)
        _put(roots["recordings"], "camera1", "notes.txt", mtime=now)
        _put(roots["recordings"], "misc", "orphan.mp4", mtime=now - 100)
        svc = await start_service()
        client = await connect(svc, "viewer")
        r = await client.call("list_recordings")
        assert [f["filename"] for f in r["files"]] == [
            "camera1_c.mkv",
            "camera0_b.mp4",
            "camera1_a.mp4",
            "camera0_a.mp4",
            "orphan.mp4",
        ]
        assert (r["total"], r["limit"], r["offset"]) == (5, 50, 0)
        first = r["files"][0]
        assert (
            first["device"] == "camera1" and first["format"] == "mkv" and first["file_size"] == 100
        )
        assert first["download_url"] == "/files/recordings/camera1_c.mkv"
        assert first["duration"] is None and "created_time" not in first
        assert r["files"][-1]["device"] is None
        r = await client.call("list_recordings", {"limit": 2, "offset": 1})
        assert [f["filename"] for f in r["files"]] == ["camera0_b.mp4", "camera1_a.mp4"] and r[
            "total"
        ] == 5
        r = await client.call("list_recordings", {"device": "camera1"})
        assert r["total"] == 2
        r = await client.call("list_recordings", {"device": "camera9"})
        assert r == {"files": [], "total": 0, "limit": 50, "offset": 0}
        r = await client.call("list_recordings", {"offset": 5})
        assert r["files"] == [] and r["total"] == 5

    @pytest.mark.parametrize(
        ("params", "reason"),
        [
            ({"limit": 0}, "out_of_range"),
            ({"limit": 1001}, "out_of_range"),
            ({"offset": -1}, "out_of_range"),
            ({"limit": "10"}, "invalid_type"),
            ({"device": "video0"}, "invalid_device"),
        ],
    )
    async def test_bad_params(self, service, connect, params, reason):
        """Limits are 1-1000, never clamped; offsets ≥ 0; device ids well formed."""
        client = await connect(service, "viewer")
        for method in ("list_recordings", "list_snapshots"):
            error = await client.error(method, params)
            assert error["code"] == -32602 and error["data"]["reason"] == reason


class TestInfoAndDelete:
    """get_*_info and delete_*."""

    async def test_snapshot_info_and_delete(self, start_service, connect, roots):
        """Info has created_time; delete removes file and entry; deleting again is -32010."""
        path = _put(roots["snapshots"], "camera0", "shot.jpg", size=1234)
        svc = await start_service()
        client = await connect(svc, "operator")
        info = await client.call("get_snapshot_info", {"filename": "shot.jpg"})
        assert (
            info["file_size"] == 1234 and info["device"] == "camera0" and info["format"] == "jpeg"
        )
        assert info["created_time"].endswith("Z") and "duration" not in info
        r = await client.call("delete_snapshot", {"filename": "shot.jpg"})
        assert r == {"filename": "shot.jpg", "deleted": True, "message": "Snapshot deleted"}
        assert not path.exists()
        error = await client.error("delete_snapshot", {"filename": "shot.jpg"})
        assert (error["code"], error["message"], error["data"]["reason"]) == (
            -32010,
            "Snapshot not found",
            "file_not_found",
        )
        error = await client.error("get_recording_info", {"filename": "shot.jpg"})
        assert error["message"] == "Recording not found"

    @pytest.mark.parametrize(
        "name",
        ["../etc/passwd", "/etc/passwd", "a/b.jpg", "..", "x\x00.jpg", "a\\b.jpg", "", "x" * 256],
    )
    @pytest.mark.parametrize(
        "method", ["get_snapshot_info", "delete_snapshot", "get_recording_info", "delete_recording"]
    )
    async def test_traversal_rejected(self, service, connect, method, name):
        """Names that are not bare file names are -32602 invalid_filename."""
        client = await connect(service, "operator")
        error = await client.error(method, {"filename": name})
        assert error["code"] == -32602 and error["data"]["reason"] == "invalid_filename"

    async def test_symlink_never_catalogued(self, start_service, connect, roots, tmp_path):
        """A symlink placed in a media folder (pointing outside) is not a file of the API."""
        secret = tmp_path / "secret.jpg"
        secret.write_bytes(b"secret")
        (roots["snapshots"] / "camera0").mkdir(parents=True)
        (roots["snapshots"] / "camera0" / "link.jpg").symlink_to(secret)
        svc = await start_service()
        client = await connect(svc, "operator")
        assert (await client.call("list_snapshots"))["total"] == 0
        assert (await client.error("delete_snapshot", {"filename": "link.jpg"}))["code"] == -32010
        assert secret.exists()


class TestReconcile:
    """The catalogue follows the disk."""

    async def test_external_add_and_delete(self, start_service, connect, roots):
        """Files added or removed behind the service's back are picked up by the watch."""
        svc = await start_service()
        client = await connect(svc, "viewer")
        added = _put(roots["snapshots"], "camera3", "outside.png")
        await _until(lambda: svc.app.catalog.get("snapshot", "outside.png") is not None)
        assert (await client.call("list_snapshots"))["files"][0]["filename"] == "outside.png"
        added.unlink()
        await _until(lambda: svc.app.catalog.get("snapshot", "outside.png") is None)
        assert (await client.call("list_snapshots"))["total"] == 0

    async def test_file_events_touch_only_their_files(
        self, start_service, connect, roots, monkeypatch
    ):
        """A file added, changed or removed in a device folder updates its own row, never a
        whole reconcile of the library (which grows with it: 45,000 snapshots in a soak); a
        new device folder still gets one."""
        import camsvc.media.library as library

        for i in range(50):
            _put(roots["snapshots"], "camera0", f"old{i}.jpg")
        svc = await start_service()
        catalog = svc.app.catalog
        whole: list[str] = []
        reconcile = library._reconcile_in_worker
        monkeypatch.setattr(
            library,
            "_reconcile_in_worker",
            lambda db, kind, root: whole.append(kind) or reconcile(db, kind, root),
        )
        _put(roots["snapshots"], "camera0", "outside.jpg", size=10)
        await _until(lambda: catalog.get("snapshot", "outside.jpg") is not None)
        _put(roots["snapshots"], "camera0", "outside.jpg", size=20)
        await _until(lambda: catalog.get("snapshot", "outside.jpg").size == 20)
        (roots["snapshots"] / "camera0" / "old7.jpg").unlink()
        await _until(lambda: catalog.get("snapshot", "old7.jpg") is None)
        assert whole == []
        assert catalog.page("snapshot", 1000, 0)[1] == 50

        _put(roots["snapshots"], "camera5", "elsewhere.jpg")
        await _until(lambda: catalog.get("snapshot", "elsewhere.jpg") is not None)
        assert "snapshot" in whole

    def test_refresh_keeps_what_the_service_knew(self, tmp_path):
        """`Catalog.refresh`: a changed file keeps its dimensions; a vanished one loses its row
        only in its own folder; temporaries, other extensions and symlinks stay out."""
        from camsvc.media.catalog import Catalog, FileRecord

        root = tmp_path / "snapshots"
        shot = _put(root, "camera0", "shot.jpg", size=10)
        _put(root, "camera0", ".shot.jpg.1234.tmp")
        _put(root, "camera0", "notes.txt")
        (root / "camera0" / "link.jpg").symlink_to(shot)
        catalog = Catalog(tmp_path / "c.db")
        catalog.add(FileRecord("snapshot", "shot.jpg", "camera0", 10, 1.0, 1.0, 640, 480))
        catalog.add(FileRecord("snapshot", "moved.jpg", "camera1", 5, 1.0, 1.0))
        shot.write_bytes(b"y" * 30)
        names = {"shot.jpg", ".shot.jpg.1234.tmp", "notes.txt", "link.jpg", "moved.jpg"}
        assert catalog.refresh("snapshot", root / "camera0", names) == (1, 0)
        rec = catalog.get("snapshot", "shot.jpg")
        assert (rec.size, rec.width, rec.height) == (30, 640, 480)
        assert catalog.get("snapshot", "moved.jpg") is not None  # its row is camera1's
        assert catalog.page("snapshot", 100, 0)[1] == 2
        shot.unlink()
        assert catalog.refresh("snapshot", root / "camera0", {"shot.jpg"}) == (0, 1)
        assert catalog.get("snapshot", "shot.jpg") is None
        catalog.close()

    async def test_after_restart(self, start_service, connect, roots, make_config):
        """A restart keeps what was catalogued and reconciles what changed while it was down."""
        from camsvc.media.catalog import Catalog

        _put(roots["snapshots"], "camera0", "kept.jpg")
        _put(roots["snapshots"], "camera0", "gone.jpg")
        cfg = make_config()
        catalog = Catalog(cfg.storage.db_path)
        catalog.reconcile("snapshot", roots["snapshots"])
        catalog.close()
        (roots["snapshots"] / "camera0" / "gone.jpg").unlink()
        _put(roots["snapshots"], "camera0", "new.jpg")
        svc = await start_service()
        client = await connect(svc, "viewer")
        names = {f["filename"] for f in (await client.call("list_snapshots"))["files"]}
        assert names == {"kept.jpg", "new.jpg"}


class TestStorageInfo:
    """get_storage_info."""

    async def test_fields(self, start_service, connect, roots):
        """Figures of the recordings filesystem and bytes under each root."""
        _put(roots["recordings"], "camera0", "a.mp4", size=1000)
        _put(roots["snapshots"], "camera0", "a.jpg", size=300)
        svc = await start_service()
        client = await connect(svc, "admin")
        info = await client.call("get_storage_info")
        assert info["recordings_size"] == 1000 and info["snapshots_size"] == 300
        assert (
            info["total_space"] > 0
            and info["used_space"] + info["available_space"] <= info["total_space"]
        )
        st = os.statvfs(roots["recordings"])
        assert info["available_space"] == pytest.approx(st.f_bavail * st.f_frsize, rel=0.01)
        assert info["warn_percent"] == 80 and info["block_percent"] == 90
        assert info["low_space_warning"] == (info["usage_percentage"] >= 80)
        assert info["blocked"] == (info["usage_percentage"] >= 90)


class TestCatalogPaging:
    """Pages from either end of the index are the same slices of one ordering."""

    def test_every_page_matches_the_full_order(self, tmp_path):
        """Newest first, ties by name, for every offset and several limits (both directions)."""
        from camsvc.media.catalog import Catalog, FileRecord

        catalog = Catalog(tmp_path / "c.db")
        for i in range(37):
            mtime = 1000.0 + i // 3  # groups of equal mtime exercise the filename tie-break
            catalog.add(FileRecord("snapshot", f"f{i:02d}.jpg", "camera0", 1, mtime, mtime))
        full, total = catalog.page("snapshot", 1000, 0)
        assert total == 37
        names = [r.filename for r in full]
        assert names == sorted(names, key=lambda n: (-(1000 + int(n[1:3]) // 3), n))
        for limit in (1, 5, 10, 36, 37):
            for offset in range(0, 40):
                page, page_total = catalog.page("snapshot", limit, offset)
                assert page_total == 37
                assert [r.filename for r in page] == names[offset : offset + limit]
        catalog.add(FileRecord("snapshot", "new.jpg", "camera1", 1, 5000.0, 5000.0))
        assert catalog.page("snapshot", 1, 0) == ([catalog.get("snapshot", "new.jpg")], 38)
        catalog.close()
