"""MediaMTXClient over httpx's MockTransport: requests held to the contract, errors, retries."""

from __future__ import annotations

import base64
import gc
import json
from collections.abc import Callable

import httpx
import pytest
import trio

from camsvc.errors import DependencyFailed
from camsvc.streaming.mediamtx import (
    MAX_ATTEMPTS,
    MediaMTXBadRequest,
    MediaMTXClient,
    MediaMTXNotFound,
    MediaMTXProtocolError,
    MediaMTXUnavailable,
    PathAlreadyExists,
    PathCache,
    PathConfPatch,
    map_error,
    to_camsvc_error,
)
from tests.streaming.contract import check_request

Handler = Callable[[httpx.Request], httpx.Response]


def client_with(handler: Handler, **kw: object) -> tuple[MediaMTXClient, list[httpx.Request]]:
    """A client whose requests go to `handler`, each checked against the contract."""
    seen: list[httpx.Request] = []

    def checked(request: httpx.Request) -> httpx.Response:
        check_request(request.method, str(request.url), request.content)
        seen.append(request)
        return handler(request)

    url = str(kw.pop("api_url", "http://mediamtx.test:9997"))
    return MediaMTXClient(url, transport=httpx.MockTransport(checked), **kw), seen  # type: ignore[arg-type]


def error(status: int, message: str) -> httpx.Response:
    """A MediaMTX error answer."""
    return httpx.Response(status, json={"status": "error", "error": message})


class TestErrors:
    def test_map_error_by_status_and_body(self) -> None:
        """404 → NotFound, 400 `path already exists` → PathAlreadyExists, other 400 → BadRequest."""
        assert isinstance(map_error(404, b'{"error":"path not found"}'), MediaMTXNotFound)
        exists = map_error(400, b'{"status":"error","error":"path already exists"}')
        assert isinstance(exists, PathAlreadyExists)
        assert exists.error == "path already exists"
        bad = map_error(400, b'{"error":"json: unknown field \\"x\\""}')
        assert type(bad) is MediaMTXBadRequest
        assert map_error(500, b"not json").error == "not json"

    def test_camsvc_reasons(self) -> None:
        """Unreachable → mediamtx_unavailable; an error answer → mediamtx_error; both -32050."""
        down = to_camsvc_error(MediaMTXUnavailable("x"))
        assert isinstance(down, DependencyFailed)
        assert (down.code, down.reason) == (-32050, "mediamtx_unavailable")
        assert to_camsvc_error(MediaMTXNotFound(404, "path not found")).reason == "mediamtx_error"

    async def test_error_bodies_raise_typed(self) -> None:
        """A 404 on patch raises MediaMTXNotFound carrying MediaMTX's message."""
        client, _ = client_with(lambda r: error(404, "path not found"))
        with pytest.raises(MediaMTXNotFound) as info:
            await client.config_path_patch("camera0", PathConfPatch(record=True))
        assert info.value.error == "path not found"

    async def test_undecodable_reply(self) -> None:
        """A 200 that is not the promised schema is a protocol error."""
        client, _ = client_with(lambda r: httpx.Response(200, json={"items": 3}))
        with pytest.raises(MediaMTXProtocolError):
            await client.paths_list()


class TestRequests:
    async def test_add_sends_only_set_fields(self) -> None:
        """The add body holds exactly the fields set, in MediaMTX's camelCase."""
        client, seen = client_with(lambda r: httpx.Response(200, json={"status": "ok"}))
        conf = PathConfPatch(record=False, record_path="/r/%path/%path_%Y", record_format="fmp4")
        await client.config_path_add("camera0", conf)
        assert seen[0].method == "POST"
        assert seen[0].url.path == "/v3/config/paths/add/camera0"
        assert json.loads(seen[0].content) == {
            "record": False,
            "recordPath": "/r/%path/%path_%Y",
            "recordFormat": "fmp4",
        }

    async def test_empty_ok_body_accepted(self) -> None:
        """MediaMTX before 1.12 answers writes with an empty 200."""
        client, _ = client_with(lambda r: httpx.Response(200))
        await client.config_path_delete("camera0")

    async def test_walks_pages(self) -> None:
        """paths_all asks page by page until pageCount."""

        def handler(request: httpx.Request) -> httpx.Response:
            page = int(request.url.params["page"])
            return httpx.Response(
                200,
                json={"itemCount": 2, "pageCount": 2, "items": [{"name": f"camera{page}"}]},
            )

        client, seen = client_with(handler)
        assert [p.name for p in await client.paths_all()] == ["camera0", "camera1"]
        assert len(seen) == 2

    async def test_basic_auth_from_url(self) -> None:
        """User info in api_url becomes Basic auth and leaves the URL."""
        client, seen = client_with(
            lambda r: httpx.Response(200, json={"version": "v1.20.1"}),
            api_url="http://u:p%40ss@mediamtx.test:9997",
        )
        await client.info()
        assert client.base_url == "http://mediamtx.test:9997"
        expected = "Basic " + base64.b64encode(b"u:p@ss").decode()
        assert seen[0].headers["Authorization"] == expected

    async def test_responses_freed_without_the_cyclic_collector(self) -> None:
        """A read response is freed at once, not left for the garbage collector (httpx links
        a response and its stream both ways: in the service they piled up by the thousand)."""
        client, _ = client_with(
            lambda r: (
                error(404, "path not found")
                if "get" in r.url.path
                else httpx.Response(200, json={"itemCount": 0, "pageCount": 0, "items": []})
            )
        )
        await client.paths_list()  # first use builds what lasts (the pool, its connection)
        gc.collect()
        gc.disable()  # from here, only reference counting frees anything
        try:
            for _ in range(10):
                await client.paths_list()
                with pytest.raises(MediaMTXNotFound):
                    await client.path_get("camera0")
            left = [o for o in gc.get_objects() if isinstance(o, httpx.Response)]
        finally:
            gc.enable()
        assert left == []


class TestRetries:
    async def test_connect_errors_retried_then_unavailable(self, autojump_clock: object) -> None:
        """Connection failures are retried MAX_ATTEMPTS times, then MediaMTXUnavailable."""
        calls = 0

        def refuse(request: httpx.Request) -> httpx.Response:
            nonlocal calls
            calls += 1
            raise httpx.ConnectError("refused", request=request)

        client, _ = client_with(refuse)
        with pytest.raises(MediaMTXUnavailable):
            await client.info()
        assert calls == MAX_ATTEMPTS

    async def test_connect_error_then_success(self, autojump_clock: object) -> None:
        """One refused connection, then an answer: the call succeeds."""
        calls = 0

        def flaky(request: httpx.Request) -> httpx.Response:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise httpx.ConnectError("refused", request=request)
            return httpx.Response(200, json={"version": "v1.20.1"})

        client, _ = client_with(flaky)
        assert (await client.info()).version == "v1.20.1"

    async def test_read_timeout_not_retried(self) -> None:
        """A timeout after the request was sent is not retried (it may have been applied)."""
        calls = 0

        def slow(request: httpx.Request) -> httpx.Response:
            nonlocal calls
            calls += 1
            raise httpx.ReadTimeout("slow", request=request)

        client, _ = client_with(slow)
        with pytest.raises(MediaMTXUnavailable):
            await client.config_path_add("camera0", PathConfPatch(record=True))
        assert calls == 1

    async def test_real_timeout(self) -> None:
        """request_timeout bounds a request to a server that never answers."""
        listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
        port = listener.socket.getsockname()[1]
        client = MediaMTXClient(f"http://127.0.0.1:{port}", timeout_s=0.2)
        with trio.fail_after(5), pytest.raises(MediaMTXUnavailable):
            await client.info()
        await listener.aclose()
        await client.aclose()


class TestCache:
    async def test_cache_and_health(self) -> None:
        """Healthy after a good refresh; degraded after one failure, unhealthy after two."""
        up = True

        def handler(request: httpx.Request) -> httpx.Response:
            if not up:
                raise httpx.ConnectError("refused", request=request)
            if request.url.path == "/v3/info":
                return httpx.Response(200, json={"version": "v1.20.1", "started": "x"})
            items = [{"name": "camera0", "ready": True, "source": {"type": "rtspSession"}}]
            return httpx.Response(200, json={"itemCount": 1, "pageCount": 1, "items": items})

        client, _ = client_with(handler)
        cache = PathCache(client, 5)
        assert cache.health().lifecycle == "STARTING"
        await cache.refresh()
        path = cache.get("camera0")
        assert path is not None and path.ready and path.source is not None
        assert cache.health().status == "healthy"
        assert cache.health().details["version"] == "v1.20.1"
        up = False
        with trio.fail_after(5):
            await cache.refresh()
        assert cache.health().status == "degraded"
        with trio.fail_after(5):
            await cache.refresh()
        assert cache.health().status == "unhealthy"
        assert cache.get("camera0") is not None  # the last known view stays
