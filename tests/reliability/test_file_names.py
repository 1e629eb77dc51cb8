"""File safety (API.md §1.1, §8.5, §10.3): a corpus of hostile names against every filename
parameter and both download routes, generated names against the pure dispatcher, and
symlinks placed in the media folders. Nothing outside the media roots is ever served,
changed or deleted; every answer is -32602 `invalid_filename`, -32010 or HTTP 400/404.

tests/media/test_files.py and tests/server/test_downloads.py hold the hand-picked cases; this
module sweeps the whole corpus over every entry point at once.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from camsvc.app import App
from tests.fixtures.http import HttpConnection
from tests.reliability.spec import admin_connection, check_reply, make_app
from tests.reliability.strategies import HOSTILE_NAMES

FILE_METHODS = ["get_snapshot_info", "get_recording_info", "delete_snapshot", "delete_recording"]
SECRET = b"outside-the-roots"


def corpus() -> list[str]:
    """HOSTILE_NAMES, plus their percent-encoded and double-encoded forms as literal names."""
    names = list(HOSTILE_NAMES)
    for name in HOSTILE_NAMES:
        names.append(quote(name, safe=""))
        names.append(quote(quote(name, safe=""), safe=""))
    names += ["..%2f..%2f", "%2e%2e/", "%c0%ae%c0%ae%2f", "....//", "..;/", "%00.jpg"]
    return list(dict.fromkeys(names))


CORPUS = corpus()


def snapshot_tree(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under `root`, symlinks not followed."""
    out: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.relpath(os.path.join(dirpath, name), root)] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Files outside the media roots that names might try to reach."""
    out = tmp_path / "outside"
    out.mkdir()
    for name in ("x.jpg", "passwd", "secret.jpg", "secret.mp4"):
        (out / name).write_bytes(SECRET)
    (tmp_path / "x.jpg").write_bytes(SECRET)
    (tmp_path / "passwd").write_bytes(SECRET)
    return out


@pytest.fixture
async def media_svc(start_service, tmp_path: Path, outside: Path) -> Any:
    """The service with one real snapshot and recording, and symlinks to `outside` placed in
    both roots: file links in a device folder and a whole device folder linked."""
    for root, name in (("snapshots", "real.jpg"), ("recordings", "real.mp4")):
        device = tmp_path / root / "camera0"
        device.mkdir(parents=True)
        (device / name).write_bytes(b"real")
        (device / f"link{Path(name).suffix}").symlink_to(outside / f"secret{Path(name).suffix}")
        (tmp_path / root / "camera9").symlink_to(outside, target_is_directory=True)
        (tmp_path / root / "camera8").mkdir()
        (tmp_path / root / "camera8" / "up.jpg").symlink_to("../../outside/secret.jpg")
    return await start_service(
        security={"auth_failure_limit": 1000, "rate_limit_rps": 1e6, "rate_limit_burst": 10**6}
    )


class TestRpcNames:
    """The corpus against get_/delete_ snapshot/recording info and take_snapshot."""

    async def test_file_methods(self, media_svc, connect, tmp_path, outside):
        """Every corpus name on every filename method: -32602 invalid_filename or -32010;
        nothing outside the roots changes; the real files are untouched."""
        before = snapshot_tree(tmp_path / "outside")
        client = await connect(media_svc, "operator")
        answered = 0
        names = [*CORPUS, "link.jpg", "link.mp4", "secret.jpg", "secret.mp4", "up.jpg"]
        for name in names:
            for method in FILE_METHODS:
                error = await client.error(method, {"filename": name})
                assert (error["code"], error["data"]["reason"]) in (
                    (-32602, "invalid_filename"),
                    (-32010, "file_not_found"),
                ), (method, name, error)
                answered += 1
        assert answered == 4 * len(names) > 400
        assert snapshot_tree(tmp_path / "outside") == before
        assert (tmp_path / "x.jpg").read_bytes() == SECRET
        assert (await client.call("get_snapshot_info", {"filename": "real.jpg"}))["file_size"] == 4
        assert (await client.call("list_snapshots"))["total"] == 1
        assert (await client.call("list_recordings"))["total"] == 1

    async def test_take_snapshot_names(self, media_svc, connect, tmp_path):
        """take_snapshot with any corpus name is refused before a file is made (-32602 for
        names the client-name rule rejects, -32010 for the absent camera otherwise)."""
        before = snapshot_tree(tmp_path)
        client = await connect(media_svc, "operator")
        for name in CORPUS:
            error = await client.error("take_snapshot", {"device": "camera0", "filename": name})
            assert error["code"] in (-32602, -32010), (name, error)
            if error["code"] == -32602:
                assert error["data"]["reason"] == "invalid_filename", (name, error)
        after = snapshot_tree(tmp_path)
        # The catalogue's files change with every query, and the MediaMTX control socket
        # may appear after the service answers; neither is a file take_snapshot made.
        service_files = ("-wal", "-shm", ".db", "camsvc.sock")
        assert {k: v for k, v in after.items() if not k.endswith(service_files)} == {
            k: v for k, v in before.items() if not k.endswith(service_files)
        }


class TestDownloadNames:
    """The corpus against both download routes, raw, encoded and double-encoded."""

    async def test_download_routes(self, media_svc):
        """Every form is 400 or 404, never the content of a file outside the roots."""
        http = await HttpConnection.open(media_svc.ports.main)
        headers = {"Authorization": f"Bearer {media_svc.token('viewer')}"}
        statuses: dict[int, int] = {}
        try:
            for prefix in ("/files/snapshots/", "/files/recordings/"):
                for name in [*CORPUS, "link.jpg", "link.mp4", "up.jpg", "secret.jpg"]:
                    forms = {quote(name, safe=""), quote(quote(name, safe=""), safe="")}
                    if name.isascii() and name.isprintable() and " " not in name and name:
                        forms.add(name)  # as is, when h11 lets it be a request-target
                    forms.add(quote(name, safe="/"))
                    for form in forms:
                        reply = await http.request("GET", prefix + form, headers)
                        assert reply.status in (400, 404), (prefix, form, reply.status)
                        assert SECRET not in reply.body
                        statuses[reply.status] = statuses.get(reply.status, 0) + 1
                        if reply.headers.get("connection") == "close":
                            await http.aclose()
                            http = await HttpConnection.open(media_svc.ports.main)
        finally:
            await http.aclose()
        assert sum(statuses.values()) > 400, statuses
        for prefix, name in (("/files/snapshots/", "real.jpg"), ("/files/recordings/", "real.mp4")):
            http = await HttpConnection.open(media_svc.ports.main)
            reply = await http.request("GET", prefix + name, headers)
            await http.aclose()
            assert (reply.status, reply.body) == (200, b"real")


class TestSymlinks:
    """Links in the media folders are never served or deleted through, whenever they appear."""

    async def test_links_never_listed(self, media_svc, connect):
        """File links, a linked device folder and `..` links: no catalogue entry."""
        client = await connect(media_svc, "viewer")
        snaps = await client.call("list_snapshots")
        recs = await client.call("list_recordings")
        assert [f["filename"] for f in snaps["files"]] == ["real.jpg"]
        assert [f["filename"] for f in recs["files"]] == ["real.mp4"]

    async def test_links_added_while_running(self, media_svc, connect, tmp_path, outside):
        """Links made after start (seen by the watch) are ignored the same way."""
        device = tmp_path / "snapshots" / "camera0"
        (device / "late.jpg").symlink_to(outside / "secret.jpg")
        (tmp_path / "snapshots" / "camera7").symlink_to(outside, target_is_directory=True)
        (device / "marker.jpg").write_bytes(b"m")
        with trio.fail_after(10):
            while media_svc.app.catalog.get("snapshot", "marker.jpg") is None:
                await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        client = await connect(media_svc, "operator")
        for name in ("late.jpg", "secret.jpg", "x.jpg"):
            error = await client.error("delete_snapshot", {"filename": name})
            assert error["code"] == -32010, (name, error)
        assert (outside / "secret.jpg").read_bytes() == SECRET

    async def test_catalogued_folder_swapped_for_link(self, media_svc, connect, tmp_path, outside):
        """A catalogued file whose device folder is replaced by a link to a folder holding a
        file of the same name: neither served nor deleted through the link."""
        (outside / "real.jpg").write_bytes(SECRET)
        device = tmp_path / "snapshots" / "camera0"
        moved = tmp_path / "snapshots-moved"
        device.rename(moved)
        device.symlink_to(outside, target_is_directory=True)
        http = await HttpConnection.open(media_svc.ports.main)
        headers = {"Authorization": f"Bearer {media_svc.token('viewer')}"}
        reply = await http.request("GET", "/files/snapshots/real.jpg", headers)
        await http.aclose()
        assert reply.status == 404 and SECRET not in reply.body
        client = await connect(media_svc, "operator")
        reply = await client.request("delete_snapshot", {"filename": "real.jpg"})
        assert (outside / "real.jpg").read_bytes() == SECRET, reply
        assert (moved / "real.jpg").read_bytes() == b"real"  # not at its catalogued path

    async def test_retention_through_swapped_folder(self, media_svc, connect, tmp_path, outside):
        """Retention deleting a catalogued file whose folder became a link deletes nothing
        outside the roots."""
        (outside / "real.jpg").write_bytes(SECRET)
        (outside / "real.mp4").write_bytes(SECRET)
        for root in ("snapshots", "recordings"):
            device = tmp_path / root / "camera0"
            device.rename(tmp_path / f"{root}-moved")
            device.symlink_to(outside, target_is_directory=True)
        client = await connect(media_svc, "admin")
        policy = {"policy_type": "size", "enabled": True, "max_size_gb": 1e-9}
        await client.call("set_retention_policy", policy)
        await client.call("cleanup_old_files")
        assert (outside / "real.jpg").read_bytes() == SECRET
        assert (outside / "real.mp4").read_bytes() == SECRET


@pytest.fixture(scope="module")
def pure_app() -> Iterator[tuple[App, Path]]:
    """An App (never started) with one file per root and a sentinel outside them."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        app = make_app(root / "app")
        (root / "outside.jpg").write_bytes(SECRET)
        yield app, root
        app.catalog.close()


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(FILE_METHODS),
    name=st.text(max_size=40)
    | st.sampled_from(CORPUS)
    | st.lists(
        st.sampled_from(["..", "/", "\\", ".", "%2f", "\u2215", "\x00", "a"]), max_size=8
    ).map("".join),
)
def test_generated_names(pure_app, method, name):
    """Generated names on every filename method (pure dispatcher): a spec-valid error, never
    -32603, and the sentinel outside the roots stays."""
    app, root = pure_app
    message = {"jsonrpc": "2.0", "method": method, "params": {"filename": name}, "id": 1}

    async def run() -> Any:
        with admin_connection(app) as conn:
            return app.dispatcher.handle(conn, json.dumps(message))

    [reply] = check_reply(message, trio.run(run))
    assert reply["error"]["code"] in (-32602, -32010), reply
    assert (root / "outside.jpg").read_bytes() == SECRET
