"""The dashboard's HTTP routes: `/` and `/ui/...` from memory, with types, validators and a
Content-Security-Policy that allows this origin only; nothing else is reachable."""

from __future__ import annotations

import re

import pytest

from camsvc.web import ASSET_PREFIX, load_assets
from tests.fixtures.http import http_request
from tests.fixtures.service import Service

TYPES = {
    "/": "text/html; charset=utf-8",
    "/ui/style.css": "text/css; charset=utf-8",
    "/ui/js/main.js": "text/javascript; charset=utf-8",
    "/ui/icon.svg": "image/svg+xml",
}


@pytest.mark.parametrize(("path", "content_type"), TYPES.items())
async def test_served_with_type_and_headers(service: Service, path: str, content_type: str) -> None:
    """Each file has its type, a strong ETag, no-cache, nosniff and the CSP."""
    reply = await http_request(service.ports.main, path)
    assert reply.status == 200
    assert reply.headers["content-type"] == content_type
    assert re.fullmatch(r'"[0-9a-f]{32}"', reply.headers["etag"])
    assert reply.headers["cache-control"] == "no-cache"
    assert reply.headers["x-content-type-options"] == "nosniff"
    csp = reply.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp
    # No origin but this one, and no inline script or style.
    assert "http" not in csp and "unsafe" not in csp and "*" not in csp
    assert int(reply.headers["content-length"]) == len(reply.body) > 0


async def test_page_names_the_websocket_path(start_service) -> None:
    """The configured server.websocket_path is written into the page."""
    svc = await start_service(server={"websocket_path": "/rpc"})
    reply = await http_request(svc.ports.main, "/")
    assert b'<meta name="camsvc-ws-path" content="/rpc">' in reply.body
    assert b"{{WS_PATH}}" not in reply.body


async def test_not_modified_and_head(service: Service) -> None:
    """If-None-Match with the ETag is 304 without a body; HEAD has the headers only."""
    first = await http_request(service.ports.main, "/ui/js/rpc.js")
    etag = first.headers["etag"]
    again = await http_request(service.ports.main, "/ui/js/rpc.js", headers={"If-None-Match": etag})
    assert again.status == 304 and again.body == b"" and again.headers["etag"] == etag
    other = await http_request(
        service.ports.main, "/ui/js/rpc.js", headers={"If-None-Match": '"x"'}
    )
    assert other.status == 200
    head = await http_request(service.ports.main, "/ui/js/rpc.js", "HEAD")
    assert head.status == 200 and head.body == b""
    assert head.headers["content-length"] == first.headers["content-length"]


@pytest.mark.parametrize(
    "target",
    [
        "/ui/",
        "/ui",
        "/ui/js/",
        "/ui/../camsvc.db",
        "/ui/%2e%2e/__init__.py",
        "/ui/js/../../web/__init__.py",
        "/ui/__init__.py",
        "/ui/js/missing.js",
        "/index.html",
        "/ui//style.css",
    ],
)
async def test_only_the_shipped_files(service: Service, target: str) -> None:
    """Any path that is not exactly a shipped file is 404: nothing is looked up on disk."""
    reply = await http_request(service.ports.main, target)
    assert reply.status == 404, target


async def test_other_methods_405(service: Service) -> None:
    """The page takes GET and HEAD only, like every route."""
    reply = await http_request(service.ports.main, "/", "POST", body=b"x")
    assert reply.status == 405 and reply.headers["allow"] == "GET, HEAD"


def test_every_module_is_shipped() -> None:
    """Every `import ... from "./x.js"` in the modules names a shipped file."""
    assets = load_assets("/ws")
    modules = [path for path in assets if path.endswith(".js")]
    assert f"{ASSET_PREFIX}js/main.js" in modules
    for path in modules:
        for name in re.findall(rb'from "\./([a-z]+\.js)"', assets[path].body):
            assert f"{ASSET_PREFIX}js/{name.decode()}" in assets, (path, name)
