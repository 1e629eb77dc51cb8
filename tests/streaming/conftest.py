"""Fixtures for streaming tests: an in-process MediaMTX stand-in and a contract-checked client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from camsvc.streaming.standin import StandIn, StandInPorts
from tests.streaming.contract import check_request, check_response


class Api:
    """Raw HTTP to the stand-in; every request and response is held to the OpenAPI file."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def call(
        self, method: str, url: str, body: Any = None, *, content: bytes | None = None
    ) -> tuple[int, Any]:
        """(status, decoded JSON body) of one request."""
        with trio.fail_after(10):
            response = await self.http.request(method, url, json=body, content=content)
        request = response.request
        if content is None:
            check_request(method, str(request.url), request.content)
        data = check_response(method, str(request.url), response.status_code, response.content)
        return response.status_code, data


@pytest.fixture
async def standin(nursery: trio.Nursery, tmp_path: Path) -> StandIn:
    """A stand-in on loopback ports, recordings under tmp_path/recordings."""
    server = StandIn(recordings=str(tmp_path / "recordings"))
    await nursery.start(server.run)
    return server


@pytest.fixture
def ports(standin: StandIn) -> StandInPorts:
    """The stand-in's ports."""
    return standin.ports


@pytest.fixture
async def api(ports: StandInPorts) -> AsyncIterator[Api]:
    """A contract-checking HTTP client of the stand-in."""
    async with httpx.AsyncClient(base_url=ports.api_url) as http:
        yield Api(http)
