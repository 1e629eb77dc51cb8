"""The stand-in's v3 API: MediaMTX's status codes and error bodies, case by case."""

from __future__ import annotations

import pytest

from camsvc.streaming.mediamtx import (
    MediaMTXBadRequest,
    MediaMTXClient,
    MediaMTXNotFound,
    PathAlreadyExists,
    PathConfPatch,
)
from camsvc.streaming.standin import VERSION, StandInPorts
from tests.streaming.conftest import Api

OK = {"status": "ok"}


def err(message: str) -> dict[str, str]:
    """MediaMTX's error body."""
    return {"status": "error", "error": message}


class TestConfigPaths:
    async def test_info(self, api: Api) -> None:
        """/v3/info reports the emulated version."""
        status, data = await api.call("GET", "/v3/info")
        assert status == 200 and data["version"] == VERSION

    async def test_add_get_list(self, api: Api) -> None:
        """An added path is returned whole by config get and listed by paths/list, not ready."""
        assert await api.call("POST", "/v3/config/paths/add/camera0", {"record": False}) == (
            200,
            OK,
        )
        status, conf = await api.call("GET", "/v3/config/paths/get/camera0")
        assert status == 200
        assert conf["name"] == "camera0" and conf["source"] == "publisher"
        assert conf["recordFormat"] == "fmp4" and conf["runOnDemandCloseAfter"] == "10s"
        status, paths = await api.call("GET", "/v3/paths/list")
        assert paths["itemCount"] == 1
        item = paths["items"][0]
        assert (item["name"], item["ready"], item["source"], item["readers"]) == (
            "camera0",
            False,
            None,
            [],
        )

    async def test_add_twice(self, api: Api) -> None:
        """A second add of the same name: 400 `path already exists`."""
        await api.call("POST", "/v3/config/paths/add/camera0", {})
        assert await api.call("POST", "/v3/config/paths/add/camera0", {}) == (
            400,
            err("path already exists"),
        )

    async def test_unknown_field(self, api: Api) -> None:
        """An unknown field: 400 with Go's decoder message."""
        status, data = await api.call(
            "POST", "/v3/config/paths/add/camera0", content=b'{"recrod": true}'
        )
        assert (status, data) == (400, err('json: unknown field "recrod"'))

    async def test_wrong_type(self, api: Api) -> None:
        """A field of the wrong JSON type: 400."""
        status, data = await api.call(
            "POST", "/v3/config/paths/add/camera0", content=b'{"record": "yes"}'
        )
        assert status == 400
        assert data["error"].startswith("json: cannot unmarshal string")

    async def test_invalid_record_path(self, api: Api) -> None:
        """recordPath without %path: 400 as MediaMTX's validation says."""
        body = {"recordPath": "/tmp/x/%Y-%m-%d_%H-%M-%S"}
        assert await api.call("POST", "/v3/config/paths/add/camera0", body) == (
            400,
            err("'recordPath' must contain %path"),
        )

    async def test_invalid_duration(self, api: Api) -> None:
        """A bad Go duration: 400 `time: invalid duration`."""
        status, data = await api.call(
            "POST", "/v3/config/paths/add/camera0", {"recordSegmentDuration": "soon"}
        )
        assert (status, data) == (400, err('time: invalid duration "soon"'))

    async def test_missing_paths(self, api: Api) -> None:
        """Patch, replace, delete of a missing path: 404 `path not found`; get conf: 404."""
        missing = err("path not found")
        assert await api.call("PATCH", "/v3/config/paths/patch/nope", {}) == (404, missing)
        assert await api.call("POST", "/v3/config/paths/replace/nope", {}) == (404, missing)
        assert await api.call("DELETE", "/v3/config/paths/delete/nope") == (404, missing)
        assert await api.call("GET", "/v3/config/paths/get/nope") == (
            404,
            err("path configuration not found"),
        )
        assert await api.call("GET", "/v3/paths/get/nope") == (404, missing)

    async def test_patch_replace_delete(self, api: Api) -> None:
        """Patch merges, replace resets to defaults, delete removes the path."""
        await api.call("POST", "/v3/config/paths/add/camera0", {"runOnDemandCloseAfter": "3s"})
        await api.call("PATCH", "/v3/config/paths/patch/camera0", {"record": True})
        _, conf = await api.call("GET", "/v3/config/paths/get/camera0")
        assert (conf["record"], conf["runOnDemandCloseAfter"]) == (True, "3s")
        await api.call("POST", "/v3/config/paths/replace/camera0", {"record": False})
        _, conf = await api.call("GET", "/v3/config/paths/get/camera0")
        assert (conf["record"], conf["runOnDemandCloseAfter"]) == (False, "10s")
        assert await api.call("DELETE", "/v3/config/paths/delete/camera0") == (200, OK)
        _, paths = await api.call("GET", "/v3/paths/list")
        assert paths == {"itemCount": 0, "pageCount": 0, "items": []}

    async def test_unknown_route(self, api: Api) -> None:
        """A route MediaMTX does not have: gin's plain 404."""
        response = await api.http.get("/v3/nothing")
        assert (response.status_code, response.text) == (404, "404 page not found")


class TestPagination:
    @pytest.fixture
    async def three(self, api: Api) -> Api:
        """Three configured paths."""
        for n in range(3):
            await api.call("POST", f"/v3/config/paths/add/camera{n}", {})
        return api

    async def test_pages(self, three: Api) -> None:
        """itemsPerPage=2: two pages; page 1 holds the last item; itemCount is the total."""
        status, data = await three.call("GET", "/v3/config/paths/list?itemsPerPage=2&page=1")
        assert status == 200
        assert (data["itemCount"], data["pageCount"]) == (3, 2)
        assert [i["name"] for i in data["items"]] == ["camera2"]
        _, data = await three.call("GET", "/v3/paths/list?itemsPerPage=2&page=5")
        assert (data["itemCount"], data["pageCount"], data["items"]) == (3, 2, [])

    @pytest.mark.parametrize(
        ("query", "message"),
        [
            ("itemsPerPage=0", "invalid items per page"),
            ("itemsPerPage=abc", 'strconv.ParseUint: parsing "abc": invalid syntax'),
            ("page=-1", 'strconv.ParseUint: parsing "-1": invalid syntax'),
            (
                "itemsPerPage=9999999999",
                'strconv.ParseUint: parsing "9999999999": value out of range',
            ),
        ],
    )
    async def test_bad_parameters(self, three: Api, query: str, message: str) -> None:
        """Bad pagination parameters: 400 with strconv's or MediaMTX's message."""
        for url in ("/v3/config/paths/list", "/v3/paths/list", "/v3/recordings/list"):
            response = await three.http.get(f"{url}?{query}")
            assert response.status_code == 400
            assert response.json() == err(message)


class TestRecordingsApi:
    async def test_empty(self, api: Api) -> None:
        """No segments: an empty list; get of an unconfigured path: 400."""
        assert await api.call("GET", "/v3/recordings/list") == (
            200,
            {"itemCount": 0, "pageCount": 0, "items": []},
        )
        status, data = await api.call("GET", "/v3/recordings/get/nope")
        assert (status, data) == (400, err("path 'nope' is not configured"))

    async def test_delete_segment_bad_start(self, api: Api) -> None:
        """deletesegment with a start that is not RFC 3339: 400."""
        await api.call("POST", "/v3/config/paths/add/camera0", {})
        status, data = await api.call(
            "DELETE", "/v3/recordings/deletesegment?path=camera0&start=yesterday"
        )
        assert status == 400 and data["error"].startswith("invalid 'start' parameter")


class TestClientAgainstStandIn:
    async def test_typed_errors(self, ports: StandInPorts) -> None:
        """The client raises the typed error for each of the stand-in's answers."""
        client = MediaMTXClient(ports.api_url)
        await client.config_path_add("camera0", PathConfPatch(record=False))
        with pytest.raises(PathAlreadyExists):
            await client.config_path_add("camera0", PathConfPatch())
        with pytest.raises(MediaMTXNotFound):
            await client.config_path_patch("camera9", PathConfPatch(record=True))
        with pytest.raises(MediaMTXNotFound):
            await client.config_path_get("camera9")
        with pytest.raises(MediaMTXBadRequest):
            await client.config_path_patch("camera0", PathConfPatch(record_path="/x"))
        conf = await client.config_path_get("camera0")
        assert conf.name == "camera0" and conf.record is False
        assert [p.name for p in await client.paths_all()] == ["camera0"]
        await client.config_path_delete("camera0")
        assert await client.config_paths_all() == []
        await client.aclose()
