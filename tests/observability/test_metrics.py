"""/metrics (API.md §10.4, §11) and get_metrics (§8.7) after real traffic."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.http import http_request


def _families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(families, name: str, labels: dict[str, str] | None = None, suffix: str = "") -> float:
    family = families[name]
    for sample in family.samples:
        if sample.name == name + suffix and all(
            sample.labels.get(k) == v for k, v in (labels or {}).items()
        ):
            return sample.value
    raise AssertionError(f"no sample {name}{suffix} {labels}")


async def _scrape(svc, headers=None):
    resp = await http_request(svc.ports.main, "/metrics", headers=headers or {})
    return resp


class TestMetricsRoute:
    """Every metric of API.md §11, parsed with prometheus_client's own parser."""

    async def test_every_metric_after_traffic(self, cams, start_cameras_service, connect):
        """Requests, errors, snapshots, connections and cameras all show up with their labels."""
        cams(0)
        svc = await start_cameras_service()
        client = await connect(svc, "operator")
        await client.call("ping")
        await client.error("no_such_method")
        await client.error("get_camera_status", {"device": "bad"})
        await client.call("take_snapshot", {"device": "camera0"})
        resp = await _scrape(svc)
        assert resp.status == 200
        assert resp.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        fams = _families(resp.body.decode())
        assert (
            _value(fams, "camera_service_requests", {"method": "ping", "code": "0"}, "_total") == 1
        )
        assert (
            _value(
                fams, "camera_service_requests", {"method": "unknown", "code": "-32601"}, "_total"
            )
            == 1
        )
        assert (
            _value(
                fams,
                "camera_service_errors",
                {"method": "get_camera_status", "code": "-32602"},
                "_total",
            )
            == 1
        )
        assert (
            _value(fams, "camera_service_response_time_seconds", {"method": "ping"}, "_count") == 1
        )
        buckets = {
            s.labels["le"]
            for s in fams["camera_service_response_time_seconds"].samples
            if s.name.endswith("_bucket")
        }
        assert buckets == {
            "0.001",
            "0.005",
            "0.01",
            "0.025",
            "0.05",
            "0.1",
            "0.25",
            "0.5",
            "1.0",
            "2.5",
            "5.0",
            "10.0",
            "+Inf",
        }
        assert _value(fams, "camera_service_active_connections") == 1
        assert _value(fams, "camera_service_snapshots", {"device": "camera0"}, "_total") == 1
        assert _value(fams, "camera_service_snapshot_duration_seconds", None, "_count") == 1
        assert _value(fams, "camera_service_recordings_active") == 0
        assert _value(fams, "camera_service_cameras", {"status": "CONNECTED"}) == 1
        assert _value(fams, "camera_service_notifications_dropped", None, "_total") == 0
        for name in (
            "process_cpu_seconds",
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ):
            assert name in fams, name

    async def test_invalid_requests_label(self, service, connect):
        """-32700/-32600 are counted under method `invalid`."""
        client = await connect(service)
        await client.send("{oops")
        await client.recv()
        fams = _families((await _scrape(service)).body.decode())
        assert (
            _value(
                fams, "camera_service_requests", {"method": "invalid", "code": "-32700"}, "_total"
            )
            == 1
        )

    async def test_dropped_notifications_counted(self, start_service, connect):
        """Notifications dropped for a slow client are counted."""
        svc = await start_service(server={"send_queue_size": 2, "write_buffer_size": 4096})
        client = await connect(svc, "viewer")
        await client.call("subscribe_events", {"topics": ["snapshot.taken"]})
        # More than the socket buffers hold: the client's writer is busy, the rest queues.
        svc.app.bus.publish("snapshot.taken", {"seq": -1, "pad": "x" * 900_000})
        for i in range(10):
            svc.app.bus.publish("snapshot.taken", {"seq": i})
        fams = _families((await _scrape(svc)).body.decode())
        assert _value(fams, "camera_service_notifications_dropped", None, "_total") == 8

    async def test_label_cardinality_bounded(self, start_service, connect):
        """Thousands of distinct unknown methods and file names add no new label values."""
        service = await start_service(
            security={"rate_limit_rps": 100000, "rate_limit_burst": 100000}
        )
        client = await connect(service, "viewer")
        for i in range(10_000):
            if i % 5 == 0:
                await client.send({"jsonrpc": "2.0", "method": f"m{i}"})
            await client.send(
                {
                    "jsonrpc": "2.0",
                    "method": "get_snapshot_info",
                    "params": {"filename": f"f{i}.jpg"},
                }
            )
        await client.call("ping")
        fams = _families((await _scrape(service)).body.decode())
        methods = {s.labels["method"] for s in fams["camera_service_requests"].samples}
        assert methods <= {"unknown", "get_snapshot_info", "ping", "authenticate", "invalid"}

    async def test_disabled_is_404(self, start_service):
        """metrics.enabled: false removes the route."""
        svc = await start_service(metrics={"enabled": False})
        assert (await _scrape(svc)).status == 404

    async def test_require_admin(self, start_service):
        """metrics.require_admin: 401 without credentials, 403 below admin, 200 for admin."""
        svc = await start_service(metrics={"require_admin": True})
        assert (await _scrape(svc)).status == 401
        viewer = {"Authorization": f"Bearer {svc.token('viewer')}"}
        assert (await _scrape(svc, viewer)).status == 403
        admin = {"Authorization": f"Bearer {svc.token('admin')}"}
        assert (await _scrape(svc, admin)).status == 200


class TestGetMetrics:
    """The get_metrics shape and figures."""

    async def test_shape_and_figures(self, cams, start_cameras_service, connect):
        """Every block of API.md §8.7, with per-method percentiles."""
        cams(0)
        svc = await start_cameras_service()
        client = await connect(svc, "admin")
        for _ in range(5):
            await client.call("ping")
        m = await client.call("get_metrics")
        assert set(m) == {
            "timestamp",
            "system_metrics",
            "camera_metrics",
            "recording_metrics",
            "stream_metrics",
            "performance",
            "resources",
        }
        assert m["system_metrics"]["tasks"] > 5
        assert m["camera_metrics"]["connected_cameras"] == 1
        assert set(m["camera_metrics"]["cameras"]["camera0"]) == {
            "status",
            "fps_measured",
            "frames_captured",
            "frames_dropped",
            "readers",
            "bytes_sent",
            "recording",
            "snapshot_ready",
        }
        perf = m["performance"]
        assert perf["request_count"] >= 6 and perf["active_connections"] == 1
        assert perf["response_times"]["ping"]["count"] == 5
        assert perf["response_times"]["ping"]["p50_ms"] <= perf["response_times"]["ping"]["p99_ms"]
        assert m["resources"]["memory_usage_bytes"] > 10_000_000
        assert m["resources"]["file_handles"] > 0

    @pytest.mark.parametrize("role", ["viewer", "operator"])
    async def test_admin_only(self, service, connect, role):
        """get_metrics needs admin."""
        client = await connect(service, role)
        assert (await client.error("get_metrics"))["code"] == -32002
