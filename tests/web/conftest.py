"""Fixtures for the dashboard's browser tests: camsvc and the MediaMTX stand-in as
subprocesses on loopback with two emulated cameras, and Debian's Chromium driven by
Playwright's sync API (docs/testing.md, "Dashboard tests").

The browser tests are plain sync tests, so pytest-trio never runs an event loop beside
Playwright's; the service runs in its own process, as a user would run it, and the test
process only plugs and unplugs emulated nodes (files in a directory both can see).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect, sync_playwright

from camsvc.auth import Role, mint_token
from tests.emulator.control import EmulatedCamera, emulator_library

ROOT: Final = Path(__file__).resolve().parents[2]
#: Screenshots of each view, kept after the run (not committed: .cache/ is ignored).
ARTEFACTS: Final = ROOT / ".cache" / "test-artefacts" / "web"
CHROMIUM: Final = Path("/usr/bin/chromium")
#: As the machine notes prescribe: no background traffic on a closed network.
CHROMIUM_ARGS: Final = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SECRET: Final = "web-test-secret-0123456789abcdef0123456789"
#: Bound on one expectation or browser action unless a test says otherwise (a loaded box).
WAIT_MS: Final = 10_000
HOST: Final = "127.0.0.1"
#: Bound on starting a subprocess and on it becoming ready (a loaded 2-core box).
START_LIMIT_S: Final = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _deadline_passed(deadline: float, what: str, log: Path | None = None) -> None:
    if time.monotonic() > deadline:
        tail = log.read_text(errors="replace")[-3000:] if log else ""
        raise RuntimeError(f"{what} not ready within {START_LIMIT_S} s\n{tail}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Stack:
    """camsvc on the emulated cameras, the stand-in, and how a test reaches them."""

    def __init__(self, tmp: Path, settings: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.settings = settings or {}  # more CAMERA_SERVICE_* variables for camsvc
        self.emu_dir = tmp / "emu"
        self.emu_dir.mkdir()
        self.port = _free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.log = tmp / "camsvc.log"
        self.cams = [EmulatedCamera(self.emu_dir, n) for n in (0, 1)]

    def token(self, role: str, ttl_s: float = 3600) -> str:
        """A JWT for `role` (user `web-<role>`)."""
        return mint_token(SECRET, f"web-{role}", Role.parse(role), ttl_s)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("CAMSVC_CONFIG", None)
        env.pop("LD_PRELOAD", None)
        return env

    def _start_standin(self) -> dict[str, int]:
        """Start the stand-in on free ports; its ports are the JSON line it prints."""
        log = self.tmp / "standin.log"
        with log.open("ab") as out:
            self.standin = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "camsvc.streaming.standin",
                    "--api-port=0",
                    "--rtsp-port=0",
                    f"--recordings={self.tmp / 'recordings'}",
                ],
                env=self._env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_LIMIT_S
        while True:
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith("{"):
                    return json.loads(line)
            if self.standin.poll() is not None:
                raise RuntimeError(f"the stand-in exited with {self.standin.returncode}")
            _deadline_passed(deadline, "the stand-in", log)
            time.sleep(0.05)  # a subprocess's readiness can only be asked for

    def _start_camsvc(self, standin: dict[str, int]) -> None:
        env = self._env()
        env.update(
            {
                "LD_PRELOAD": str(emulator_library()),
                "CAMSVC_EMU_DIR": str(self.emu_dir),
                "CAMERA_SERVICE_JWT_SECRET": SECRET,
                "CAMERA_SERVICE_SERVER_HOST": HOST,
                "CAMERA_SERVICE_SERVER_PORT": str(self.port),
                "CAMERA_SERVICE_HEALTH_ENABLED": "false",
                "CAMERA_SERVICE_SECURITY_API_KEYS_PATH": str(self.tmp / "api_keys.json"),
                "CAMERA_SERVICE_SNAPSHOTS_PATH": str(self.tmp / "snapshots"),
                "CAMERA_SERVICE_RECORDING_PATH": str(self.tmp / "recordings"),
                "CAMERA_SERVICE_STORAGE_DB_PATH": str(self.tmp / "camsvc.db"),
                "CAMERA_SERVICE_LOGGING_LEVEL": "warning",
                "CAMERA_SERVICE_CAMERA_DEVICE_DIR": str(self.emu_dir),
                # Hot-plug is seen through inotify; the slow poll must not be what passes.
                "CAMERA_SERVICE_CAMERA_POLL_INTERVAL": "30",
                "CAMERA_SERVICE_MEDIAMTX_SPAWN": "never",
                "CAMERA_SERVICE_MEDIAMTX_API_URL": f"http://{HOST}:{standin['api']}",
                "CAMERA_SERVICE_MEDIAMTX_RTSP_PORT": str(standin["rtsp"]),
                "CAMERA_SERVICE_MEDIAMTX_HEALTH_CHECK_INTERVAL": "0.5",
                **self.settings,
            }
        )
        with self.log.open("ab") as out:
            self.camsvc = subprocess.Popen(
                [sys.executable, "-m", "camsvc", "serve"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_LIMIT_S
        while not self._ready():
            if self.camsvc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"camsvc exited with {self.camsvc.returncode}\n{tail}")
            _deadline_passed(deadline, "camsvc", self.log)
            time.sleep(0.05)  # a subprocess's readiness can only be asked for

    def _ready(self) -> bool:
        with contextlib.suppress(OSError):
            conn = http.client.HTTPConnection(HOST, self.port, timeout=1)
            try:
                conn.request("GET", "/health/ready")
                return conn.getresponse().status == 200
            finally:
                conn.close()
        return False

    @contextlib.contextmanager
    def running(self) -> Iterator[Stack]:
        for cam in self.cams:
            cam.plug()
        try:
            ports = self._start_standin()
            try:
                self._start_camsvc(ports)
                try:
                    yield self
                finally:
                    _stop(self.camsvc)
            finally:
                _stop(self.standin)
        finally:
            for cam in self.cams:
                cam.unplug()


expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """camsvc with cameras camera0 and camera1, shared by a module's tests."""
    with Stack(tmp_path_factory.mktemp("web")).running() as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, through Playwright's own driver (no browser download)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install.sh (apt-get install chromium)")
    # The driver and the browser must not inherit the emulated device of this process.
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("LD_PRELOAD", raising=False)
        playwright = sync_playwright().start()
    try:
        # Playwright gives every launch a new, empty --user-data-dir of its own.
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


class Guard:
    """What a page did that it must not: requests off this service, uncaught errors."""

    def __init__(self) -> None:
        self.outside: list[str] = []
        self.errors: list[str] = []


@pytest.fixture
def guard() -> Guard:
    """The test's record of requests off the service and script errors (see open_page)."""
    return Guard()


@pytest.fixture
def open_page(browser: Browser, stack: Stack, guard: Guard) -> Iterator[Callable[..., Page]]:
    """Open a page of the dashboard (desktop size unless told), in a fresh browser context.

    Any request to another origin is refused and recorded, as is anything the page's
    Content-Security-Policy blocked and any uncaught script error; each fails the test at
    teardown.
    """
    contexts: list[BrowserContext] = []
    own = re.compile(rf"^{re.escape(stack.base_url)}/")

    def refuse(route: Route) -> None:
        guard.outside.append(route.request.url)
        route.abort()

    def open_one(width: int = 1280, height: int = 900) -> Page:
        context = browser.new_context(
            base_url=stack.base_url,
            viewport={"width": width, "height": height},
            accept_downloads=True,
        )
        context.set_default_timeout(WAIT_MS)
        context.route(lambda url: not own.match(url), refuse)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: guard.errors.append(str(exc)))
        # What the policy blocks never reaches the network (or `refuse`), only the console.
        page.on(
            "console",
            lambda msg: (
                guard.outside.append(msg.text)
                if msg.type == "error" and "Content Security Policy" in msg.text
                else None
            ),
        )
        page.goto("/")
        return page

    yield open_one
    for context in contexts:
        context.close()
    assert guard.outside == [], f"requests to other origins: {guard.outside}"
    assert guard.errors == [], f"uncaught script errors: {guard.errors}"


def sign_in(page: Page, token: str) -> None:
    """Sign in through the form and wait for the camera view."""
    page.get_by_label("Token or API key").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#view-cameras")).to_be_visible()


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as a test artefact."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
