"""The dashboard end to end in headless Chromium (Playwright), against camsvc with two
emulated cameras and the MediaMTX stand-in (tests/web/conftest.py).

Every wait is a Playwright expectation with a timeout; screenshots of each view go to
.cache/test-artefacts/web/.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from camsvc.auth import Role
from camsvc.auth.keys import KeyStore
from tests.web.conftest import Guard, Stack, screenshot, sign_in

OpenPage = Callable[..., Page]

#: The issue's bound from unplug to the card saying so.
DISCONNECT_SHOWN_S = 1.0


def card(page: Page, device: str):
    return page.locator(f'article.camera[data-device="{device}"]')


def test_sign_in_shows_both_cameras(stack: Stack, open_page: OpenPage) -> None:
    """Sign in with a JWT: two CONNECTED cameras with stream URLs; the token stays in
    session storage only."""
    page = open_page()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    token = stack.token("admin")
    sign_in(page, token)
    expect(page.locator("article.camera")).to_have_count(2)
    for device in ("camera0", "camera1"):
        expect(card(page, device).locator('[data-field="status"]')).to_have_text("CONNECTED")
        rtsp = card(page, device).locator('input[data-stream="rtsp"]')
        expect(rtsp).to_have_value(re.compile(rf"^rtsp://127\.0\.0\.1:\d+/{device}$"))
    expect(page.locator("#who")).to_have_text("web-admin · admin")
    assert page.evaluate("sessionStorage.getItem('camsvc.credential')") == token
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []
    card(page, "camera0").locator("summary").click()  # the stream URLs, in the screenshot
    screenshot(page, "cameras")


def test_other_origins_blocked(open_page: OpenPage, guard: Guard) -> None:
    """The page's Content-Security-Policy stops a fetch and an image from another origin
    (another loopback address) before they reach the network."""
    page = open_page()
    fetched = page.evaluate("fetch('http://127.0.0.2:9/x').then(() => 'fetched', () => 'blocked')")
    assert fetched == "blocked"
    loaded = page.evaluate(
        """() => new Promise((resolve) => {
            const img = new Image();
            img.onload = () => resolve("loaded");
            img.onerror = () => resolve("blocked");
            img.src = "http://127.0.0.2:9/x.png";
        })"""
    )
    assert loaded == "blocked"
    blocked = " ".join(guard.outside)
    assert "127.0.0.2:9/x" in blocked and '"connect-src' in blocked, guard.outside
    assert "127.0.0.2:9/x.png" in blocked and '"img-src' in blocked, guard.outside
    guard.outside.clear()  # seen, and wanted here


def test_wrong_token_is_refused(open_page: OpenPage) -> None:
    """A token the server rejects leaves the user on the sign-in form with the reason."""
    page = open_page()
    page.get_by_label("Token or API key").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_have_text(re.compile("not accepted"))
    expect(page.locator("#nav")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0


def test_snapshot_appears(stack: Stack, open_page: OpenPage) -> None:
    """Snapshot on camera0: the frame shows on the card and the file in the files view,
    with its thumbnail."""
    page = open_page()
    sign_in(page, stack.token("operator"))
    cam = card(page, "camera0")
    cam.get_by_role("button", name="Snapshot").click()
    frame = cam.locator("figure.frame img")
    expect(frame).to_have_attribute("data-filename", re.compile(r"^camera0_.*\.jpg$"))
    expect(frame).to_have_attribute("src", re.compile("^blob:"))
    filename = frame.get_attribute("data-filename")
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=frame.element_handle()
    )
    page.get_by_role("link", name="Files").click()
    row = page.locator(f'article.file[data-filename="{filename}"]')
    expect(row).to_be_visible()
    expect(row.locator('[data-field="size"]')).to_have_text(re.compile(r"KiB|MiB"))
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0",
        arg=row.locator(".thumb img").element_handle(),
    )
    screenshot(page, "files-snapshots")


def test_files_pagination(stack: Stack, open_page: OpenPage) -> None:
    """More snapshots than a page holds: 12 a page, Next and Previous move between pages
    of different files, and each is disabled at its end."""
    page = open_page()
    sign_in(page, stack.token("operator"))
    page.evaluate(
        """async () => {
            for (let i = 0; i < 13; i++) {
                await window.camsvcDashboard.call("take_snapshot", {device: "camera0"});
            }
        }"""
    )
    page.get_by_role("link", name="Files").click()
    counter = page.locator("#files-page")
    expect(counter).to_have_text(re.compile(r"^Page 1 of \d+ · \d+ snapshots$"))
    pages, total = map(int, re.findall(r"of (\d+) · (\d+)", counter.inner_text())[0])
    assert total >= 13 and pages == -(-total // 12)
    rows = page.locator("article.file")
    expect(rows).to_have_count(12)
    first_page = set(rows.evaluate_all("rows => rows.map(r => r.dataset.filename)"))
    previous, following = page.locator("#files-prev"), page.locator("#files-next")
    expect(previous).to_be_disabled()
    following.click()
    expect(counter).to_have_text(re.compile(rf"^Page 2 of {pages} "))
    expect(rows).to_have_count(min(12, total - 12))
    second_page = set(rows.evaluate_all("rows => rows.map(r => r.dataset.filename)"))
    assert first_page.isdisjoint(second_page)
    if pages == 2:
        expect(following).to_be_disabled()
    previous.click()
    expect(counter).to_have_text(re.compile(rf"^Page 1 of {pages} "))
    expect(previous).to_be_disabled()


def test_record_download_delete(stack: Stack, open_page: OpenPage, tmp_path: Path) -> None:
    """Record 3 s on camera0: the REC indicator counts, the file is listed with its
    duration, downloads as fMP4, and an admin deletes it."""
    page = open_page()
    sign_in(page, stack.token("admin"))
    cam = card(page, "camera0")
    cam.get_by_label("Recording duration of camera0 in seconds").fill("3")
    cam.get_by_role("button", name="Record").click()
    rec = cam.locator('[data-field="recording"]')
    expect(rec).to_have_text(re.compile(r"REC 0:0[0-3] / 0:03"))
    expect(cam.get_by_role("button", name="Stop recording")).to_be_visible()
    screenshot(page, "cameras-recording")
    # The service stops it after 3 s; the indicator goes with the STOPPED notification.
    expect(rec).to_be_hidden(timeout=15_000)

    page.get_by_role("link", name="Files").click()
    page.get_by_role("button", name="Recordings").click()
    row = page.locator("article.file", has_text="camera0_")
    expect(row).to_have_count(1)
    expect(row.locator('[data-field="duration"]')).to_have_text(re.compile(r"0:0[234]"))
    filename = row.get_attribute("data-filename")
    assert filename and filename.endswith(".mp4")
    screenshot(page, "files-recordings")

    with page.expect_download() as info:
        row.get_by_role("button", name="Download").click()
    download = info.value
    assert download.suggested_filename == filename
    saved = tmp_path / filename
    download.save_as(saved)
    data = saved.read_bytes()
    assert data[4:8] == b"ftyp" and len(data) > 10_000

    delete = row.get_by_role("button", name=f"Delete {filename}")
    delete.click()
    expect(delete).to_have_text("Confirm delete")
    delete.click()
    expect(page.locator(f'article.file[data-filename="{filename}"]')).to_have_count(0)
    expect(page.locator("#files-empty")).to_be_visible()


def test_stream_live_and_copy(stack: Stack, open_page: OpenPage) -> None:
    """Start and stop a stream on camera1; Live mode replaces its frame with new ones and
    deletes the one it replaced; Copy puts the RTSP URL on the clipboard."""
    page = open_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, stack.token("operator"))
    cam = card(page, "camera1")
    cam.get_by_role("button", name="Start stream").click()
    expect(cam).to_have_attribute("data-streaming", "true", timeout=15_000)
    expect(cam.get_by_role("button", name="Stop stream")).to_be_enabled()
    cam.get_by_role("button", name="Stop stream").click()
    expect(cam).to_have_attribute("data-streaming", "false")
    expect(cam.get_by_role("button", name="Start stream")).to_be_enabled()

    frame = cam.locator("figure.frame img")
    cam.get_by_label("Live").check()
    expect(frame).to_have_attribute("data-filename", re.compile(r"^camera1_live_\d+\.jpg$"))
    first = frame.get_attribute("data-filename")
    expect(frame).not_to_have_attribute("data-filename", first or "", timeout=10_000)
    cam.get_by_label("Live").uncheck()
    page.get_by_role("link", name="Files").click()
    page.locator("#files-device").select_option("camera1")
    expect(page.locator('article.file[data-filename^="camera1_live_"]').first).to_be_visible()
    # The frame that was replaced has gone; the newest one stays.
    expect(page.locator(f'article.file[data-filename="{first}"]')).to_have_count(0)

    page.get_by_role("link", name="Cameras").click()
    cam.locator("summary").click()
    cam.get_by_role("button", name="Copy RTSP URL of camera1").click()
    expect(page.locator(".toast")).to_contain_text("RTSP URL copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == cam.locator('input[data-stream="rtsp"]').input_value()


def test_reconnects_after_connection_loss(stack: Stack, open_page: OpenPage) -> None:
    """When the WebSocket closes under it, the page says so, opens a new one, signs in again
    with the same credential, and its buttons work."""
    page = open_page()
    sign_in(page, stack.token("operator"))
    expect(page.locator("article.camera")).to_have_count(2)
    page.evaluate(
        """() => {
            const app = window.camsvcDashboard;
            window.lostBannerSeen = false;
            new MutationObserver(() => {
                if (!document.getElementById("connection").hidden) window.lostBannerSeen = true;
            }).observe(document.getElementById("connection"), { attributes: true });
            window.firstRpc = app.rpc;
            app.rpc.socket.close();
        }"""
    )
    page.wait_for_function(
        "() => { const rpc = window.camsvcDashboard.rpc;"
        " return rpc && rpc !== window.firstRpc && rpc.socket.readyState === WebSocket.OPEN; }"
    )
    assert page.evaluate("window.lostBannerSeen")
    expect(page.locator("#connection")).to_be_hidden()
    cam = card(page, "camera0")
    cam.get_by_role("button", name="Snapshot").click()
    expect(page.locator(".toast.error")).to_have_count(0)
    expect(cam.locator("figure.frame img")).to_have_attribute(
        "data-filename", re.compile(r"^camera0_(?!live)")
    )


def test_expired_token_signs_out(stack: Stack, open_page: OpenPage) -> None:
    """A token that expires while the page is open sends the user back to sign-in, saying
    why, and forgets it."""
    page = open_page()
    # Long enough to sign in on a loaded machine; expiry is seen at the next poll after it.
    sign_in(page, stack.token("admin", ttl_s=5))
    page.get_by_role("link", name="System").click()  # polls every 2 s
    expect(page.locator("#signin-error")).to_have_text("Session expired", timeout=15_000)
    expect(page.locator("#nav")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0


def test_api_key_sign_in_and_revocation(stack: Stack, open_page: OpenPage) -> None:
    """An API key signs in (and fetches frames); once revoked, the page's next call sends
    the user back to sign-in."""
    store = KeyStore(stack.tmp / "api_keys.json")  # the file camsvc reads
    key, plaintext = store.create(Role.OPERATOR, description="dashboard test")
    page = open_page()
    sign_in(page, plaintext)
    expect(page.locator("#who")).to_have_text(f"key:{key.id} · operator")
    cam = card(page, "camera1")
    cam.get_by_role("button", name="Snapshot").click()
    expect(cam.locator("figure.frame img")).to_have_attribute("src", re.compile("^blob:"))
    store.revoke(key.id)
    page.get_by_role("link", name="Files").click()
    expect(page.locator("#signin-error")).to_have_text("The credential is no longer accepted.")
    expect(page.locator("#nav")).to_be_hidden()
    expect(page.locator(".toast.error")).to_have_count(0)
    assert page.evaluate("sessionStorage.length") == 0


def test_viewer_has_no_controls(stack: Stack, open_page: OpenPage) -> None:
    """A viewer sees cameras and files but no snapshot, record, stream or delete button, no
    admin panels; the server refuses the calls the UI hides; a recording someone else starts
    shows on the viewer's card from notifications."""
    page = open_page()
    sign_in(page, stack.token("viewer"))
    expect(page.locator("article.camera")).to_have_count(2)
    expect(card(page, "camera0").locator('[data-field="status"]')).to_have_text("CONNECTED")
    expect(page.locator("#view-cameras [data-action]")).to_have_count(0)
    expect(page.locator("#view-cameras input[data-field='duration']")).to_have_count(0)
    denied = page.evaluate(
        "window.camsvcDashboard.call('take_snapshot', {device: 'camera0'})"
        ".then(() => 'allowed', (e) => e.code)"
    )
    assert denied == -32002

    operator = open_page()
    sign_in(operator, stack.token("operator"))
    op_cam = card(operator, "camera0")
    op_cam.get_by_label("Recording duration of camera0 in seconds").fill("2")
    op_cam.get_by_role("button", name="Record").click()
    rec = card(page, "camera0").locator('[data-field="recording"]')
    # Shown for the 2 s it lasts: wider than the gap between two of expect's polls (1 s).
    expect(rec).to_have_text(re.compile(r"REC 0:0[0-2] / 0:02"))
    expect(rec).to_be_hidden(timeout=15_000)
    screenshot(page, "cameras-viewer")

    page.get_by_role("link", name="Files").click()
    page.get_by_role("button", name="Recordings").click()
    rows = page.locator("article.file")
    expect(rows.first).to_be_visible()
    expect(rows.first.get_by_role("button", name=re.compile("^Download"))).to_be_visible()
    expect(page.locator("#view-files [data-action='delete']")).to_have_count(0)
    page.get_by_role("link", name="System").click()
    expect(page.locator("#components li")).not_to_have_count(0)
    expect(page.locator("#metrics-panel")).to_be_hidden()
    expect(page.locator("#storage-panel")).to_be_hidden()


def test_system_view(stack: Stack, open_page: OpenPage) -> None:
    """Health, components, storage and live charts for an admin."""
    page = open_page()
    sign_in(page, stack.token("admin"))
    page.get_by_role("link", name="System").click()
    expect(page.locator('[data-field="health"]')).to_have_text(re.compile("healthy|degraded"))
    for name in ("websocket_server", "camera_monitor", "mediamtx", "storage"):
        expect(page.locator(f'#components li[data-component="{name}"]')).to_be_visible()
    expect(page.locator("#storage meter")).to_be_visible()
    expect(page.locator("#firing li")).not_to_have_count(0)
    # Two polls give the request-rate chart its first point; every chart then has a line.
    requests = page.locator('figure.chart[data-metric="Requests/s"] polyline')
    expect(requests).to_have_attribute("points", re.compile(r"\d"))
    expect(page.locator('figure.chart[data-metric="Host CPU"] .value')).to_have_text(
        re.compile(r"\d+\.\d %")
    )
    screenshot(page, "system")


def tab_to(page: Page, name: str, limit: int = 20) -> None:
    """Press Tab until the element named `name` has the focus (at most `limit` times)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == name:
            return
    raise AssertionError(f"{name!r} not reached with {limit} Tab presses")


def fits_width(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_phone_size_and_keyboard(stack: Stack, open_page: OpenPage) -> None:
    """At 390 px wide no view scrolls sideways; sign-in and moving between views work from
    the keyboard alone, with the focus visible."""
    page = open_page(390, 844)
    expect(page.get_by_label("Token or API key")).to_be_focused()
    page.keyboard.type(stack.token("admin"))
    page.keyboard.press("Enter")
    expect(page.locator("article.camera")).to_have_count(2)
    assert fits_width(page)
    screenshot(page, "cameras-phone")
    tab_to(page, "Files")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none"), outline
    page.keyboard.press("Enter")
    expect(page.locator("#view-files")).to_be_visible()
    expect(page.get_by_role("link", name="Files")).to_have_attribute("aria-current", "page")
    assert fits_width(page)
    screenshot(page, "files-phone")
    tab_to(page, "System")
    page.keyboard.press("Enter")
    expect(page.locator("#view-system")).to_be_visible()
    expect(page.locator("figure.chart").first).to_be_visible()
    assert fits_width(page)
    screenshot(page, "system-phone")


def test_unplugged_camera_shows_disconnected(stack: Stack, open_page: OpenPage) -> None:
    """Unplugging camera1 turns its card DISCONNECTED within 1 s; plugging it back in
    turns it CONNECTED again."""
    page = open_page()
    sign_in(page, stack.token("operator"))
    status = card(page, "camera1").locator('[data-field="status"]')
    expect(status).to_have_text("CONNECTED")
    stack.cams[1].unplug()
    try:
        expect(status).to_have_text("DISCONNECTED", timeout=DISCONNECT_SHOWN_S * 1000)
        expect(card(page, "camera1").get_by_role("button", name="Snapshot")).to_be_disabled()
        screenshot(page, "cameras-disconnected")
    finally:
        stack.cams[1].plug()
    expect(status).to_have_text("CONNECTED", timeout=10_000)
