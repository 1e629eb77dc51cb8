"""File downloads (API.md §10.3) over real loopback sockets: names, credentials, ranges,
validators, headers and streaming of large files.

Media files are written under `<snapshots.path>/camera0/` and `<recording.path>/camera0/`
before the service starts (its start-up reconcile catalogues them), or after it with
`wait_catalogued` (the inotify watch picks them up).
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import os
import socket
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path

import h11
import psutil
import pytest
import trio
import trio.testing

from camsvc.auth import KeyStore, Role, mint_token
from camsvc.media.catalog import Kind
from camsvc.server.files import (
    UNSATISFIABLE,
    ByteRange,
    FileRoute,
    add_file_routes,
    content_type,
    filename_of,
    select_range,
)
from camsvc.server.http import (
    FILE_CHUNK_BYTES,
    FileBody,
    HttpRequest,
    HttpResponse,
    Router,
    serve_http_connection,
)
from tests.fixtures.http import HttpConnection, HttpReply, http_request
from tests.fixtures.service import Service

SNAP = bytes(range(256)) * 40  # 10240 bytes, every offset distinguishable mod 256
REC = bytes(reversed(range(256))) * 64  # 16384 bytes
SIZE = len(SNAP)
BIG_BYTES = 32 * 1024 * 1024
DEVICE = "camera0"

StartDownloads = Callable[..., Awaitable[Service]]


def _write(root: Path, name: str, data: bytes) -> Path:
    path = root / DEVICE / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def snapshots_dir(tmp_path: Path) -> Path:
    """`snapshots.path` of the test service (see tests/fixtures/service.py)."""
    return tmp_path / "snapshots"


@pytest.fixture
def recordings_dir(tmp_path: Path) -> Path:
    """`recording.path` of the test service."""
    return tmp_path / "recordings"


@pytest.fixture
def start_downloads(
    start_service: Callable[..., Awaitable[Service]], snapshots_dir: Path, recordings_dir: Path
) -> StartDownloads:
    """Write the standard media files, then start the service (so they are catalogued)."""

    async def start(**sections: dict) -> Service:
        _write(snapshots_dir, "cam.jpg", SNAP)
        _write(snapshots_dir, "cam.jpeg", SNAP[:100])
        _write(snapshots_dir, "cam.png", SNAP[:200])
        _write(snapshots_dir, "\u2025x.jpg", SNAP[:10])  # a non-ASCII (but bare) name
        _write(recordings_dir, "rec.mp4", REC)
        _write(recordings_dir, "rec.mkv", REC[:300])
        return await start_service(**sections)

    return start


@pytest.fixture
async def svc(start_downloads: StartDownloads) -> Service:
    """The service with the standard media files, auth on."""
    return await start_downloads()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def get(
    svc: Service,
    target: str,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    role: str | None = "viewer",
    **kw: bool,
) -> HttpReply:
    """One request with a JWT of `role` (none when None; `headers` may override it)."""
    all_headers = dict(_bearer(svc.token(role)) if role else {})
    all_headers.update(headers or {})
    return await http_request(svc.ports.main, target, method, all_headers, **kw)


@pytest.fixture
def serve_router(nursery: trio.Nursery) -> Callable[[Router], Awaitable[int]]:
    """Serve a bare Router on a loopback port (for routes outside the App); returns the port."""

    async def serve(router: Router) -> int:
        listeners = await nursery.start(
            functools.partial(
                trio.serve_tcp,
                functools.partial(serve_http_connection, router=router, read_timeout_s=5),
                0,
                host="127.0.0.1",
            )
        )
        return listeners[0].socket.getsockname()[1]

    return serve


async def wait_catalogued(svc: Service, kind: Kind, name: str) -> None:
    """Wait until the inotify watch has catalogued `name`."""
    with trio.fail_after(10):
        while svc.app.catalog.get(kind, name) is None:
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)


class TestHeaderLogic:
    """The pure parts: Range selection, name decoding, Content-Type."""

    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            ("bytes=0-9", ByteRange(0, 9, 100)),
            ("bytes=-5", ByteRange(95, 99, 100)),
            ("bytes=5-", ByteRange(5, 99, 100)),
            ("bytes=90-500", ByteRange(90, 99, 100)),
            ("bytes=-500", ByteRange(0, 99, 100)),
            ("Bytes = 2-4 ,", ByteRange(2, 4, 100)),
            ("bytes=100-", UNSATISFIABLE),
            ("bytes=-0", UNSATISFIABLE),
            ("bytes=0-1,5-6", None),
            ("bytes=9-3", None),
            ("bytes=abc", None),
            ("bytes=-", None),
            ("bytes=\u00b2-3", None),
            ("items=0-1", None),
            ("bytes", None),
        ],
    )
    def test_select_range(self, header, expected):
        """One range is selected; malformed, several or other units mean the whole file."""
        assert select_range(header, 100) == expected

    def test_empty_file_ranges(self):
        """An empty file satisfies no int-range; a suffix range gets the (empty) whole."""
        assert select_range("bytes=0-", 0) == UNSATISFIABLE
        assert select_range("bytes=-5", 0) is None

    @pytest.mark.parametrize(
        ("raw", "name"),
        [("a.jpg", "a.jpg"), ("%252F", "%2F"), ("a%20b.jpg", "a b.jpg"), ("%E2%80%A5", "\u2025")],
    )
    def test_filename_decoded_once(self, raw, name):
        """Percent-decoding happens exactly once."""
        assert filename_of(raw) == name

    @pytest.mark.parametrize(
        ("name", "ctype"),
        [
            ("a.jpg", "image/jpeg"),
            ("a.JPEG", "image/jpeg"),
            ("a.png", "image/png"),
            ("a.mp4", "video/mp4"),
            ("a.mkv", "video/x-matroska"),
            ("a.bin", "application/octet-stream"),
            ("noext", "application/octet-stream"),
        ],
    )
    def test_content_type(self, name, ctype):
        """Content-Type follows the extension, case-insensitively."""
        assert content_type(name) == ctype


class TestDownload:
    """Whole-file downloads and their headers."""

    async def test_snapshot_full(self, svc, snapshots_dir):
        """A snapshot comes whole with every header of §10.3."""
        reply = await get(svc, "/files/snapshots/cam.jpg")
        assert reply.status == 200
        assert reply.body == SNAP
        st = (snapshots_dir / DEVICE / "cam.jpg").stat()
        assert reply.headers == {
            **reply.headers,
            "content-type": "image/jpeg",
            "content-length": str(SIZE),
            "accept-ranges": "bytes",
            "content-disposition": 'attachment; filename="cam.jpg"',
            "cache-control": "private, no-cache",
            "etag": f'"{st.st_size:x}-{st.st_mtime_ns:x}"',
            "last-modified": email.utils.formatdate(st.st_mtime, usegmt=True),
        }
        assert "content-range" not in reply.headers

    @pytest.mark.parametrize(
        ("target", "ctype", "data"),
        [
            ("/files/snapshots/cam.jpeg", "image/jpeg", SNAP[:100]),
            ("/files/snapshots/cam.png", "image/png", SNAP[:200]),
            ("/files/recordings/rec.mp4", "video/mp4", REC),
            ("/files/recordings/rec.mkv", "video/x-matroska", REC[:300]),
        ],
    )
    async def test_content_type_per_extension(self, svc, target, ctype, data):
        """Each media extension gets its Content-Type and its exact bytes."""
        reply = await get(svc, target)
        assert (reply.status, reply.headers["content-type"], reply.body) == (200, ctype, data)

    async def test_non_ascii_name(self, svc):
        """A non-ASCII name gets an ASCII fallback and its exact UTF-8 form (RFC 8187)."""
        reply = await get(svc, "/files/snapshots/%E2%80%A5x.jpg")
        assert reply.status == 200 and reply.body == SNAP[:10]
        assert reply.headers["content-disposition"] == (
            "attachment; filename=\"_x.jpg\"; filename*=UTF-8''%E2%80%A5x.jpg"
        )

    async def test_head(self, svc):
        """HEAD has the GET headers (full Content-Length) and no body; Range is ignored."""
        full = await get(svc, "/files/snapshots/cam.jpg")
        for extra in ({}, {"Range": "bytes=0-9"}):
            reply = await get(svc, "/files/snapshots/cam.jpg", extra, method="HEAD")
            assert reply.status == 200 and reply.size == 0
            assert reply.headers == full.headers

    async def test_kinds_are_separate(self, svc):
        """A snapshot is not found under /files/recordings/ and vice versa."""
        assert (await get(svc, "/files/recordings/cam.jpg")).status == 404
        assert (await get(svc, "/files/snapshots/rec.mp4")).status == 404

    async def test_unknown_file_404(self, svc):
        """A well-formed name that is not catalogued is 404 with the error body."""
        reply = await get(svc, "/files/snapshots/nope.jpg")
        assert reply.status == 404
        assert reply.body == b'{"error":"Not Found","status":404}'

    async def test_post_405(self, svc):
        """Other methods get 405 with Allow."""
        reply = await get(svc, "/files/snapshots/cam.jpg", method="POST")
        assert reply.status == 405 and reply.headers["allow"] == "GET, HEAD"

    async def test_file_added_after_start(self, svc, recordings_dir):
        """A file written after start is downloadable once the watch catalogues it."""
        _write(recordings_dir, "late.mp4", b"late-bytes")
        await wait_catalogued(svc, "recording", "late.mp4")
        reply = await get(svc, "/files/recordings/late.mp4")
        assert (reply.status, reply.body) == (200, b"late-bytes")

    async def test_keep_alive_across_downloads(self, svc):
        """One connection serves a range, a whole file, a HEAD and a 404 in a row."""
        conn = await HttpConnection.open(svc.ports.main)
        auth = _bearer(svc.token("viewer"))
        try:
            r1 = await conn.request(
                "GET", "/files/snapshots/cam.jpg", {**auth, "Range": "bytes=1-3"}
            )
            r2 = await conn.request("GET", "/files/recordings/rec.mp4", auth)
            r3 = await conn.request("HEAD", "/files/snapshots/cam.jpg", auth)
            r4 = await conn.request("GET", "/files/snapshots/nope.jpg", auth)
        finally:
            await conn.aclose()
        assert (r1.status, r1.body) == (206, SNAP[1:4])
        assert (r2.status, r2.body) == (200, REC)
        assert (r3.status, r3.size) == (200, 0)
        assert r4.status == 404


class TestRange:
    """Range requests (RFC 9110 §14)."""

    async def test_first_bytes(self, svc):
        """bytes=0-99 gives exactly those bytes with Content-Range."""
        reply = await get(svc, "/files/snapshots/cam.jpg", {"Range": "bytes=0-99"})
        assert reply.status == 206
        assert reply.body == SNAP[:100]
        assert reply.headers["content-range"] == f"bytes 0-99/{SIZE}"
        assert reply.headers["content-length"] == "100"
        assert reply.headers["content-type"] == "image/jpeg"

    async def test_middle(self, svc):
        """A middle range is exact."""
        reply = await get(svc, "/files/snapshots/cam.jpg", {"Range": "bytes=1000-1999"})
        assert (reply.status, reply.body) == (206, SNAP[1000:2000])
        assert reply.headers["content-range"] == f"bytes 1000-1999/{SIZE}"

    async def test_suffix(self, svc):
        """bytes=-500 gives the last 500 bytes."""
        reply = await get(svc, "/files/snapshots/cam.jpg", {"Range": "bytes=-500"})
        assert (reply.status, reply.body) == (206, SNAP[-500:])
        assert reply.headers["content-range"] == f"bytes {SIZE - 500}-{SIZE - 1}/{SIZE}"

    async def test_open_ended(self, svc):
        """bytes=100- gives everything from byte 100."""
        reply = await get(svc, "/files/snapshots/cam.jpg", {"Range": "bytes=100-"})
        assert (reply.status, reply.body) == (206, SNAP[100:])
        assert reply.headers["content-range"] == f"bytes 100-{SIZE - 1}/{SIZE}"

    async def test_end_past_size_is_clamped(self, svc):
        """A last-pos past the end stops at the last byte."""
        reply = await get(svc, "/files/snapshots/cam.jpg", {"Range": "bytes=10000-99999"})
        assert (reply.status, reply.body) == (206, SNAP[10000:])
        assert reply.headers["content-range"] == f"bytes 10000-{SIZE - 1}/{SIZE}"

    async def test_several_ranges_give_200(self, svc):
        """Several ranges get the whole file with 200."""
        reply = await get(svc, "/files/snapshots/cam.jpg", {"Range": "bytes=0-9,20-29"})
        assert (reply.status, reply.body) == (200, SNAP)
        assert "content-range" not in reply.headers

    @pytest.mark.parametrize(
        "header", [f"bytes={SIZE}-", f"bytes={SIZE + 5}-{SIZE + 9}", "bytes=-0"]
    )
    async def test_unsatisfiable_416(self, svc, header):
        """A range past the end is 416 with `Content-Range: bytes */size`."""
        reply = await get(svc, "/files/snapshots/cam.jpg", {"Range": header})
        assert reply.status == 416
        assert reply.headers["content-range"] == f"bytes */{SIZE}"
        assert reply.body == b'{"error":"Range Not Satisfiable","status":416}'

    @pytest.mark.parametrize("header", ["bytes=abc", "bytes=5-2", "lines=0-3", "bytes"])
    async def test_malformed_range_ignored(self, svc, header):
        """A malformed Range header (or another unit) is ignored: 200 and the whole file."""
        reply = await get(svc, "/files/snapshots/cam.jpg", {"Range": header})
        assert (reply.status, reply.body) == (200, SNAP)

    async def test_if_range(self, svc):
        """If-Range with the current ETag honours Range; a stale one sends the whole file."""
        etag = (await get(svc, "/files/snapshots/cam.jpg")).headers["etag"]
        fresh = await get(svc, "/files/snapshots/cam.jpg", {"Range": "bytes=0-3", "If-Range": etag})
        stale = await get(
            svc, "/files/snapshots/cam.jpg", {"Range": "bytes=0-3", "If-Range": '"0-0"'}
        )
        assert (fresh.status, fresh.body) == (206, SNAP[:4])
        assert (stale.status, stale.body) == (200, SNAP)


class TestValidators:
    """ETag / Last-Modified and conditional requests."""

    @pytest.fixture
    async def validators(self, svc) -> tuple[str, str]:
        reply = await get(svc, "/files/snapshots/cam.jpg")
        return reply.headers["etag"], reply.headers["last-modified"]

    async def test_etag_changes_with_content(self, svc, snapshots_dir, validators):
        """Rewriting the file with another size changes the ETag."""
        etag, _ = validators
        path = snapshots_dir / DEVICE / "cam.jpg"
        path.write_bytes(SNAP[:50])
        st = path.stat()
        reply = await get(svc, "/files/snapshots/cam.jpg")
        assert reply.headers["etag"] != etag
        assert reply.headers["etag"] == f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
        assert reply.body == SNAP[:50]

    @pytest.mark.parametrize("form", ["{etag}", "*", '"other", {etag}', "W/{etag}"])
    async def test_if_none_match_304(self, svc, validators, form):
        """A matching If-None-Match (exact, `*`, in a list, weak) gets 304 with no body."""
        etag, last_modified = validators
        reply = await get(
            svc, "/files/snapshots/cam.jpg", {"If-None-Match": form.format(etag=etag)}
        )
        assert reply.status == 304 and reply.size == 0
        assert reply.headers["etag"] == etag
        assert reply.headers["last-modified"] == last_modified
        assert reply.headers["cache-control"] == "private, no-cache"

    async def test_if_none_match_other_200(self, svc, validators):
        """A non-matching If-None-Match gets the file."""
        reply = await get(svc, "/files/snapshots/cam.jpg", {"If-None-Match": '"nope"'})
        assert (reply.status, reply.body) == (200, SNAP)

    async def test_if_modified_since_304(self, svc, validators):
        """If-Modified-Since at Last-Modified (or later) gets 304; HEAD too."""
        _, last_modified = validators
        for method in ("GET", "HEAD"):
            reply = await get(
                svc, "/files/snapshots/cam.jpg", {"If-Modified-Since": last_modified}, method
            )
            assert reply.status == 304 and reply.size == 0

    @pytest.mark.parametrize("since", ["Thu, 01 Jan 1998 00:00:00 GMT", "not a date"])
    async def test_if_modified_since_older_or_invalid_200(self, svc, validators, since):
        """An older or unparsable If-Modified-Since gets the file."""
        reply = await get(svc, "/files/snapshots/cam.jpg", {"If-Modified-Since": since})
        assert (reply.status, reply.body) == (200, SNAP)

    async def test_if_none_match_wins(self, svc, validators):
        """With If-None-Match present, If-Modified-Since is not looked at."""
        _, last_modified = validators
        headers = {"If-None-Match": '"nope"', "If-Modified-Since": last_modified}
        reply = await get(svc, "/files/snapshots/cam.jpg", headers)
        assert reply.status == 200

    async def test_range_with_validators(self, svc, validators):
        """A 206 carries the same validators."""
        etag, last_modified = validators
        reply = await get(svc, "/files/snapshots/cam.jpg", {"Range": "bytes=0-0"})
        assert reply.status == 206
        assert (reply.headers["etag"], reply.headers["last-modified"]) == (etag, last_modified)


class TestCredentials:
    """Credentials of §5.1 on the download routes."""

    async def _status(self, svc: Service, headers: dict[str, str]) -> HttpReply:
        return await get(svc, "/files/snapshots/cam.jpg", headers, role=None)

    async def test_no_credentials_401(self, svc):
        """Without credentials: 401 with the Bearer challenge and the error body."""
        reply = await self._status(svc, {})
        assert reply.status == 401
        assert reply.headers["www-authenticate"] == 'Bearer realm="camsvc"'
        assert b'"status":401' in reply.body

    async def test_head_without_credentials_401(self, svc):
        """HEAD is checked as well."""
        reply = await get(svc, "/files/recordings/rec.mp4", method="HEAD", role=None)
        assert reply.status == 401 and reply.size == 0

    @pytest.mark.parametrize(
        "headers",
        [
            {"Authorization": "Bearer not-a-jwt"},
            {"Authorization": "Bearer"},
            {"Authorization": "Basic dXNlcjpwYXNz"},
            {"Authorization": "Bearer " + mint_token("another-secret" * 3, "u", Role.ADMIN, 60)},
            {"X-API-Key": "csk_short"},
            {"X-API-Key": "csk_" + "A" * 43},
            {"Authorization": "Bearer csk_" + "A" * 43},
        ],
        ids=[
            "garbage",
            "empty",
            "basic",
            "wrong-secret",
            "bad-key",
            "unknown-key",
            "unknown-key-bearer",
        ],
    )
    async def test_invalid_401(self, svc, headers):
        """Malformed, foreign or unknown credentials are 401 with the challenge."""
        reply = await self._status(svc, headers)
        assert reply.status == 401
        assert reply.headers["www-authenticate"] == 'Bearer realm="camsvc"'

    async def test_expired_jwt_401(self, svc):
        """A JWT past its exp is 401."""
        reply = await self._status(svc, _bearer(svc.token("admin", ttl_s=-10)))
        assert reply.status == 401
        assert reply.headers["www-authenticate"] == 'Bearer realm="camsvc"'

    async def test_jwt_in_api_key_header_401(self, svc):
        """X-API-Key only takes API keys."""
        reply = await self._status(svc, {"X-API-Key": svc.token("admin")})
        assert reply.status == 401

    async def test_revoked_and_expired_keys_401(self, svc):
        """A revoked or expired key is 401 via X-API-Key and via Bearer."""
        store = KeyStore(svc.app.config.security.api_keys_path)
        revoked, revoked_plain = store.create(Role.VIEWER)
        store.revoke(revoked.id)
        _, expired_plain = store.create(Role.ADMIN, expires_s=-1)
        for plain in (revoked_plain, expired_plain):
            assert (await self._status(svc, {"X-API-Key": plain})).status == 401
            assert (await self._status(svc, _bearer(plain))).status == 401

    async def test_revocation_takes_effect(self, svc):
        """A key that worked is refused after it is revoked."""
        store = KeyStore(svc.app.config.security.api_keys_path)
        key, plain = store.create(Role.VIEWER)
        assert (await self._status(svc, {"X-API-Key": plain})).status == 200
        # The key store reloads on a changed mtime: make sure the revocation has a new one.
        before = os.stat(store.path).st_mtime_ns
        store.revoke(key.id)
        st = os.stat(store.path)
        if st.st_mtime_ns == before:
            os.utime(store.path, ns=(st.st_atime_ns, before + 1))
        assert (await self._status(svc, {"X-API-Key": plain})).status == 401

    @pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
    async def test_jwt_roles_200(self, svc, role):
        """A valid JWT of any role (all ≥ viewer) downloads."""
        reply = await self._status(svc, _bearer(svc.token(role)))
        assert (reply.status, reply.body) == (200, SNAP)

    async def test_bearer_scheme_case_insensitive(self, svc):
        """The auth scheme is case-insensitive."""
        reply = await self._status(svc, {"Authorization": f"bearer {svc.token('viewer')}"})
        assert reply.status == 200

    async def test_viewer_key_200_both_headers(self, svc):
        """A valid viewer API key downloads via X-API-Key and via Bearer."""
        store = KeyStore(svc.app.config.security.api_keys_path)
        _, plain = store.create(Role.VIEWER)
        assert (await self._status(svc, {"X-API-Key": plain})).body == SNAP
        assert (await self._status(svc, _bearer(plain))).body == SNAP

    async def test_auth_disabled_skips_check(self, start_downloads):
        """With auth_disabled no credentials are needed (and bad ones are not looked at)."""
        svc = await start_downloads(security={"auth_disabled": True})
        assert (await self._status(svc, {})).body == SNAP
        assert (await self._status(svc, {"Authorization": "Bearer junk"})).status == 200

    async def test_role_too_low_403(self, svc, serve_router):
        """A route declaring a higher minimum role answers 403 to a lower one (401 without)."""
        router = Router()
        admin_only = (FileRoute("/files/snapshots/", "snapshot", Role.ADMIN),)
        add_file_routes(router, svc.app.library, svc.app.authenticator, admin_only)
        port = await serve_router(router)
        target = "/files/snapshots/cam.jpg"
        for role in ("viewer", "operator"):
            reply = await http_request(port, target, headers=_bearer(svc.token(role)))
            assert reply.status == 403
            assert reply.body == b'{"error":"Forbidden","status":403}'
        assert (await http_request(port, target)).status == 401
        reply = await http_request(port, target, headers=_bearer(svc.token("admin")))
        assert (reply.status, reply.body) == (200, SNAP)


class TestTraversal:
    """Names that are not bare are 400; bare look-alikes are just names (404)."""

    @pytest.mark.parametrize(
        "rest",
        [
            "..",
            "../snapshots/cam.jpg",
            "%2e%2e",
            "%2E%2E%2Fcam.jpg",
            "..%2F..%2Fetc%2Fpasswd",
            "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
            "camera0%2Fcam.jpg",
            "%2Fetc%2Fpasswd",
            "/etc/passwd",
            "camera0/cam.jpg",
            "%00",
            "cam.jpg%00.png",
            "..%5C..%5Cetc%5Cpasswd",
            "..\\..\\etc\\passwd",
            "%01cam.jpg",
            "cam%7F.jpg",
            "%ff.jpg",
            "",
            "a" * 252 + ".jpg",
        ],
    )
    async def test_not_bare_400(self, svc, rest):
        """Anything that is not a bare §1.1 name after one percent-decoding is 400."""
        for prefix in ("/files/snapshots/", "/files/recordings/"):
            reply = await get(svc, prefix + rest)
            assert reply.status == 400, (prefix + rest, reply)
            assert reply.body == b'{"error":"Invalid filename","status":400}'

    @pytest.mark.parametrize(
        "rest",
        [
            "%252F",
            "%252e%252e%252fetc%252fpasswd",
            "%E2%80%A5",  # ‥ (two dot leader)
            "%E2%80%A5%EF%BC%8Fetc%EF%BC%8Fpasswd",  # U+2025, then U+FF0F (fullwidth solidus)
            "%EF%BC%8Fetc%EF%BC%8Fpasswd",
            "passwd",
        ],
    )
    async def test_bare_look_alikes_404(self, svc, rest):
        """Double-encoded separators and Unicode look-alikes are plain names: 404."""
        reply = await get(svc, "/files/snapshots/" + rest)
        assert reply.status == 404, (rest, reply)

    async def test_symlink_to_outside_404(self, svc, tmp_path, snapshots_dir):
        """A symlink in the media folder is never served, even once catalogue scans ran."""
        secret = tmp_path / "outside" / "secret.jpg"
        secret.parent.mkdir()
        secret.write_bytes(b"secret")
        (snapshots_dir / DEVICE / "evil.jpg").symlink_to(secret)
        (snapshots_dir / DEVICE / "touch.jpg").write_bytes(b"t")  # a change the watch sees
        await wait_catalogued(svc, "snapshot", "touch.jpg")
        assert svc.app.catalog.get("snapshot", "evil.jpg") is None
        reply = await get(svc, "/files/snapshots/evil.jpg")
        assert reply.status == 404 and b"secret" not in reply.body

    async def test_catalogued_file_swapped_for_symlink_404(self, svc, tmp_path, snapshots_dir):
        """A catalogued file replaced by a symlink to outside is 404, not the target."""
        secret = tmp_path / "outside.jpg"
        secret.write_bytes(b"secret")
        path = snapshots_dir / DEVICE / "cam.png"
        path.unlink()
        path.symlink_to(secret)
        reply = await get(svc, "/files/snapshots/cam.png")
        assert reply.status == 404 and b"secret" not in reply.body

    async def test_other_prefixes_404(self, svc):
        """Only the two roots are routed."""
        assert (await get(svc, "/files/snapshots")).status == 404
        assert (await get(svc, "/files/other/cam.jpg")).status == 404
        assert (await get(svc, "/files/")).status == 404


class TestLargeFiles:
    """Multi-megabyte files are streamed in chunks, never held whole."""

    @pytest.fixture
    async def big(self, start_downloads, recordings_dir) -> Service:
        path = recordings_dir / DEVICE / "big.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.truncate(BIG_BYTES)  # sparse: no disk, all zeros
            f.seek(BIG_BYTES - 4)
            f.write(b"TAIL")
        return await start_downloads()

    async def test_streamed_with_bounded_memory(self, big):
        """A 32 MiB file arrives whole while Python allocations peak far below its size."""
        rss_before = psutil.Process().memory_info().rss
        tracemalloc.start()
        try:
            reply = await get(big, "/files/recordings/big.mp4", keep_body=False)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        rss_growth = psutil.Process().memory_info().rss - rss_before
        assert reply.status == 200
        assert reply.size == BIG_BYTES == int(reply.headers["content-length"])
        print(f"traced peak {peak} B, rss growth {rss_growth} B")
        # Chunks are FILE_CHUNK_BYTES; a whole-file read would show up in both figures.
        assert FILE_CHUNK_BYTES <= 1024 * 1024
        assert peak < BIG_BYTES // 8, peak
        assert rss_growth < BIG_BYTES // 2, rss_growth

    async def test_range_in_large_file(self, big):
        """A range at the end of a large file is exact."""
        reply = await get(big, "/files/recordings/big.mp4", {"Range": f"bytes={BIG_BYTES - 6}-"})
        assert (reply.status, reply.body) == (206, b"\0\0TAIL")

    async def test_client_disconnect_ends_task(self, big):
        """A client that goes away mid-download ends the handler, which closes the file."""
        root = os.path.realpath(big.app.config.recording.path)
        conn = await HttpConnection.open(big.ports.main)
        await conn.send_request("GET", "/files/recordings/big.mp4", _bearer(big.token("viewer")))
        with trio.fail_after(10):
            head = await conn.receive_head()
            assert head.status_code == 200
            await conn.stream.receive_some(65536)

        def big_file_open() -> bool:
            return any(f.path.startswith(root) for f in psutil.Process().open_files())

        assert big_file_open()  # mid-download: the handler holds the file
        await conn.aclose()

        with trio.fail_after(10):
            while big_file_open():
                await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        # The service still serves.
        assert (await get(big, "/files/snapshots/cam.jpg")).status == 200

    async def test_never_reading_client_dropped_after_write_timeout(
        self, start_downloads, recordings_dir
    ):
        """A client that asks for a large file and never reads is dropped once a write has
        waited write_timeout: the handler ends and closes the file; others are served."""
        path = recordings_dir / DEVICE / "big.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.truncate(BIG_BYTES)
        svc = await start_downloads(server={"write_timeout": 0.5})
        root = os.path.realpath(svc.app.config.recording.path)
        sock = trio.socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await sock.connect(("127.0.0.1", svc.ports.main))
        silent = HttpConnection(trio.SocketStream(sock))
        await silent.send_request("GET", "/files/recordings/big.mp4", _bearer(svc.token("viewer")))

        def big_file_open() -> bool:
            return any(f.path.startswith(root) for f in psutil.Process().open_files())

        with trio.fail_after(10):
            while not big_file_open():
                await trio.testing.wait_all_tasks_blocked(cushion=0.05)
            while big_file_open():
                # Others are served meanwhile (each request is answered within the bound).
                assert (await get(svc, "/files/snapshots/cam.jpg")).status == 200
                await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        received = 0
        with trio.fail_after(10), contextlib.suppress(trio.BrokenResourceError):
            while chunk := await silent.stream.receive_some(65536):
                received += len(chunk)
        assert received < BIG_BYTES  # cut off, not sent whole
        await silent.aclose()


class TestFileSender:
    """The sender of FileBody responses (camsvc/server/http.py), under a bare route."""

    @staticmethod
    def _router(body: FileBody) -> Router:
        async def route(req: HttpRequest) -> HttpResponse:
            return HttpResponse(200, headers=[("Content-Type", "x/y")], file=body)

        router = Router()
        router.add("/f", route)
        return router

    async def test_slice_and_keep_alive(self, tmp_path, serve_router):
        """Offset and length select the bytes; the connection stays usable afterwards."""
        path = tmp_path / "data"
        path.write_bytes(SNAP)
        port = await serve_router(self._router(FileBody(path, 300, 5000)))
        conn = await HttpConnection.open(port)
        try:
            first = await conn.request("GET", "/f")
            second = await conn.request("GET", "/f")
            head = await conn.request("HEAD", "/f")
        finally:
            await conn.aclose()
        assert first.body == second.body == SNAP[300:5300]
        assert first.headers["content-length"] == head.headers["content-length"] == "5000"
        assert head.size == 0

    async def test_file_shrunk_closes_connection(self, tmp_path, serve_router):
        """A file shorter than the promised length ends the connection mid-body."""
        path = tmp_path / "data"
        path.write_bytes(SNAP[:1000])
        port = await serve_router(self._router(FileBody(path, 0, 2000)))
        conn = await HttpConnection.open(port)
        try:
            await conn.send_request("GET", "/f")
            received = b""
            with trio.fail_after(10), pytest.raises(h11.RemoteProtocolError):
                head = await conn.receive_head()
                while True:  # h11 refuses the EOF before Content-Length is reached
                    event = await conn.next_event()
                    assert isinstance(event, h11.Data), event
                    received += event.data
        finally:
            await conn.aclose()
        assert dict(head.headers)[b"content-length"] == b"2000"
        assert received == SNAP[:1000]

    @pytest.mark.parametrize("kind", ["fifo", "symlink", "missing"])
    async def test_not_a_regular_file_404(self, tmp_path, serve_router, kind):
        """A path that is (by now) a FIFO, a symlink or gone is 404, without blocking."""
        path = tmp_path / "swapped"
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "symlink":
            (tmp_path / "target").write_bytes(b"secret")
            path.symlink_to(tmp_path / "target")
        port = await serve_router(self._router(FileBody(path, 0, 6)))
        reply = await http_request(port, "/f")
        assert (reply.status, reply.body) == (404, b'{"error":"Not Found","status":404}')
