"""A firing alert shows in the dashboard: a banner on every view and the alerts panel.

A service of its own, whose memory alert fires at once (any RSS is over 1 byte), so the
other browser tests keep a healthy service.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.web.conftest import Stack, screenshot, sign_in


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = {
        "CAMERA_SERVICE_ALERTS_INTERVAL": "0.5",
        "CAMERA_SERVICE_ALERTS_MEMORY_BYTES": "1",
        "CAMERA_SERVICE_ALERTS_MEMORY_FOR": "0",
    }
    with Stack(tmp_path_factory.mktemp("web-alerts"), settings).running() as running:
        yield running


def test_firing_alert_shown(stack: Stack, open_page: Callable[..., Page]) -> None:
    """memory_high fires: the banner names it on the camera view, the system view lists it
    with its severity and the alerts component is degraded."""
    page = open_page()
    sign_in(page, stack.token("viewer"))
    banner = page.locator("#alerts")
    expect(banner).to_have_text(re.compile(r"memory_high \(warning\)"))
    page.get_by_role("link", name="System").click()
    expect(page.locator("#firing li.sev-warning")).to_contain_text("memory_high")
    alerts = page.locator('#components li[data-component="alerts"] .badge')
    expect(alerts).to_have_text("degraded")
    screenshot(page, "system-alert")
