"""Path management: the pure reconcile, and paths following emulated cameras end to end."""

from __future__ import annotations

import httpx
import pytest
import trio

from camsvc.config import RecordingConfig
from camsvc.streaming.mediamtx import MediaMTXClient, PathCache, PathConf, PathConfPatch
from camsvc.streaming.paths import (
    AddPath,
    DeletePath,
    PatchPath,
    PathManager,
    duration_s,
    plan,
    record_path,
    wanted_conf,
)
from tests.streaming.contract import check_request

CFG = RecordingConfig(path="/rec", segment_duration=3600)


def observed_from(conf: PathConfPatch, name: str, **changes: object) -> PathConf:
    """The PathConf MediaMTX would report after `conf` was applied (durations its way)."""
    fields = conf.fields()
    fields.update(record_segment_duration="1h0m0s", record_part_duration="1s")
    fields.update(changes)
    return PathConf(name=name, **fields)  # type: ignore[arg-type]


class TestWanted:
    def test_camera_conf(self) -> None:
        """recordPath, format and durations come from the recording config."""
        conf = wanted_conf(CFG)
        assert conf.record is False and conf.source == "publisher"
        assert conf.record_path == "/rec/%path/%path_%Y-%m-%d_%H-%M-%S-%f"
        assert conf.record_format == "fmp4"
        assert (conf.record_segment_duration, conf.record_part_duration) == ("3600s", "1s")
        assert record_path("/x") == "/x/%path/%path_%Y-%m-%d_%H-%M-%S-%f"

    @pytest.mark.parametrize(
        ("text", "seconds"),
        [("1h0m0s", 3600), ("3600s", 3600), ("500ms", 0.5), ("1d", 86400), ("0", 0)],
    )
    def test_durations(self, text: str, seconds: float) -> None:
        """MediaMTX's duration strings compare by value."""
        assert duration_s(text) == seconds


class TestPlan:
    def test_add_missing(self) -> None:
        """A wanted path MediaMTX lacks is added whole."""
        want = {"camera0": wanted_conf(CFG)}
        assert plan(want, {}) == [AddPath("camera0", want["camera0"])]

    def test_in_sync(self) -> None:
        """Equal settings (durations written differently) need nothing."""
        want = {"camera0": wanted_conf(CFG)}
        assert plan(want, {"camera0": observed_from(want["camera0"], "camera0")}) == []

    def test_patch_only_differences(self) -> None:
        """A differing field is patched alone."""
        want = {"camera0": wanted_conf(CFG, record=True)}
        have = {"camera0": observed_from(wanted_conf(CFG), "camera0")}
        assert plan(want, have) == [PatchPath("camera0", PathConfPatch(record=True))]

    def test_delete_unwanted_managed_only(self) -> None:
        """An unplugged camera's path is deleted; other people's paths are left alone."""
        have = {
            "camera3": observed_from(wanted_conf(CFG), "camera3"),
            "all_others": PathConf(name="all_others"),
            "ext_drone": PathConf(name="ext_drone"),
        }
        assert plan({}, have) == [DeletePath("camera3")]

    def test_sorted_mixed(self) -> None:
        """Several changes come out sorted by name."""
        want = {"camera1": wanted_conf(CFG), "camera0": wanted_conf(CFG)}
        have = {"camera2": PathConf(name="camera2")}
        assert [type(a).__name__ + ":" + a.name for a in plan(want, have)] == [
            "AddPath:camera0",
            "AddPath:camera1",
            "DeletePath:camera2",
        ]


@pytest.mark.device
async def test_paths_follow_cameras(cams, start_cameras_service, standin) -> None:
    """Plugging cameras adds their paths in MediaMTX; unplugging deletes them."""
    cam0 = cams(0)
    svc = await start_cameras_service(
        mediamtx={"api_url": standin.ports.api_url, "spawn": "never", "health_check_interval": 1}
    )

    async def wait_paths(names: list[str]) -> None:
        with trio.fail_after(15):
            while standin.conf.names() != names:
                await standin.conf_changed.wait()

    await wait_paths(["camera0"])
    conf = standin.conf.full("camera0")
    assert conf["recordPath"].endswith("/%path/%path_%Y-%m-%d_%H-%M-%S-%f")
    assert conf["recordPath"].startswith(svc.app.config.recording.path)
    cams(1)
    await wait_paths(["camera0", "camera1"])
    cam0.unplug()
    await wait_paths(["camera1"])
    # The cached view catches up without a request per RPC.
    cache = svc.app.mediamtx_paths
    with trio.fail_after(10):
        while [p.name for p in cache.paths()] != ["camera1"]:
            await cache.changed.wait()
    assert svc.app.health.report().status == "healthy"


class _Entry:
    def __init__(self, device_id: str) -> None:
        self.device_id = device_id


class _Cameras:
    """A registry stand-in: just `connected()`."""

    def __init__(self, *ids: str) -> None:
        self.ids = list(ids)

    def connected(self) -> list[_Entry]:
        return [_Entry(i) for i in self.ids]


async def test_manager_requests_follow_contract(standin) -> None:
    """Every request the path manager sends is an operation of the OpenAPI file with a
    valid body; paths of others are left alone; record is patched alone."""
    sent: list[httpx.Request] = []
    client = MediaMTXClient(standin.ports.api_url, on_request=sent.append)
    await client.config_path_add("other", PathConfPatch())
    cameras = _Cameras("camera0", "camera1")
    manager = PathManager(client, PathCache(client, 5), cameras, CFG, resync_s=5)  # type: ignore[arg-type]
    with trio.fail_after(10):
        assert [a.name for a in await manager.reconcile()] == ["camera0", "camera1"]
        assert await manager.reconcile() == []
        manager.set_record("camera1", True)
        assert await manager.reconcile() == [PatchPath("camera1", PathConfPatch(record=True))]
        cameras.ids = ["camera1"]
        assert await manager.reconcile() == [DeletePath("camera0")]
    assert standin.conf.names() == ["camera1", "other"]
    assert standin.conf.full("camera1")["record"] is True
    for request in sent:
        check_request(request.method, str(request.url), request.content)
    assert {r.method for r in sent} == {"GET", "POST", "PATCH", "DELETE"}
    await client.aclose()
