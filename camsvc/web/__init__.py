"""The built-in web dashboard (docs/dashboard.md): plain HTML, CSS and ES modules shipped as
package data, served from memory on the main listener at `/` and `/ui/...`.

The dashboard is an ordinary client: it talks to the WebSocket JSON-RPC API and fetches
downloads over HTTP with the signed-in credential, like any other program. This module only
loads the files once, at start, into `Asset`s keyed by URL path, so a request is answered by
a dictionary look-up and never turns request text into a file-system path.
"""

from __future__ import annotations

import hashlib
import html
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Final

import msgspec

__all__ = ["ASSET_PREFIX", "CONTENT_SECURITY_POLICY", "Asset", "load_assets"]

#: URL prefix of every file but the page itself (served at `/`).
ASSET_PREFIX: Final = "/ui/"

_CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}

#: Only this origin: scripts, styles, fetches and the WebSocket (CSP3 'self' covers ws: of the
#: same host). `blob:` images and media are downloads the page fetched with its credential.
CONTENT_SECURITY_POLICY: Final = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)

#: The placeholder in index.html that becomes the configured WebSocket path.
_WS_PATH_MARK: Final = "{{WS_PATH}}"


class Asset(msgspec.Struct, frozen=True):
    """One file of the dashboard, ready to send."""

    body: bytes
    content_type: str
    etag: str  # strong, quoted: a digest of the body


def _asset(body: bytes, suffix: str) -> Asset:
    digest = hashlib.sha256(body).hexdigest()[:32]
    return Asset(body, _CONTENT_TYPES[suffix], f'"{digest}"')


def _walk(folder: Traversable, prefix: str) -> dict[str, Traversable]:
    found: dict[str, Traversable] = {}
    for entry in folder.iterdir():
        if entry.is_dir():
            found |= _walk(entry, f"{prefix}{entry.name}/")
        elif "." + entry.name.rpartition(".")[2] in _CONTENT_TYPES:
            found[prefix + entry.name] = entry
    return found


def load_assets(ws_path: str) -> dict[str, Asset]:
    """Every dashboard file by URL path: `/` for the page, `/ui/<relative path>` for the rest.

    `ws_path` (server.websocket_path) is written into the page, where the client reads it.
    """
    files = _walk(resources.files(__name__), "")
    page = files.pop("index.html").read_text(encoding="utf-8")
    page = page.replace(_WS_PATH_MARK, html.escape(ws_path, quote=True))
    assets = {"/": _asset(page.encode("utf-8"), ".html")}
    for name, entry in sorted(files.items()):
        assets[ASSET_PREFIX + name] = _asset(entry.read_bytes(), "." + name.rpartition(".")[2])
    return assets
