"""The dashboard in real headless Chromium (Debian's, driven by Playwright; no browser
download) against a real query side with real data."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from tests.support.query_side import Fleet
from tests.support.synthetic_agent import snapshot

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
UI_BUILD = ROOT / "ui" / "build"
SCREENSHOTS = Path(os.environ.get("VPSMON_SCREENSHOT_DIR", "/tmp/vpsmon-screenshots"))

pytestmark = pytest.mark.skipif(
    not (UI_BUILD / "index.html").is_file(),
    reason="the UI is not built: scripts/test.sh builds it (npm --prefix ui run build)",
)


@pytest.fixture(scope="module", autouse=True)
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        await browser.close()


_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}


def human_values(text: str) -> list[float]:
    """The byte amounts in a cell such as '1.00 GiB / 4.00 GiB' or '10 B/s / 1.95 KiB/s'."""
    return [
        float(number) * _UNITS[unit]
        for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*(TiB|GiB|MiB|KiB|B)\b", text)
    ]


def record_csp_violations(page: Page, found: list[str]) -> None:
    """Collect Chromium's console reports of anything the Content-Security-Policy blocked."""

    def note(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            found.append(message.text)

    page.on("console", note)


async def logged_in(
    browser: Browser, fleet: Fleet, user: str, violations: list[str] | None = None
) -> Page:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    if violations is not None:
        record_csp_violations(page, violations)
    await page.goto(f"{fleet.base_url}/login")
    await page.get_by_test_id("username").fill(user)
    await page.get_by_test_id("password").fill(fleet.passwords[user])
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("vps-row").first).to_be_visible(timeout=10_000)
    return page


async def test_login_overview_detail_live_and_ranges(browser: Browser, fleet: Fleet) -> None:
    now = time.time_ns() // 1_000_000
    history = [snapshot(now - 3_600_000 + i * 20_000, cpu=20 + (i % 30)) for i in range(180)]
    await fleet.ingest("web-1", history)
    await fleet.ingest("web-2", [snapshot(now - 1000, cpu=55.5)])

    violations: list[str] = []
    page = await logged_in(browser, fleet, "alice", violations)
    rows = page.get_by_test_id("vps-row")
    await expect(rows).to_have_count(2)
    async with fleet.client("alice") as client:
        listing = (await client.get("/api/vps")).json()
    for item in listing:
        row = page.locator(f'[data-testid="vps-row"][data-vps-id="{item["id"]}"]')
        await expect(row).to_contain_text(item["name"])
        latest = item["latest"]
        cpu = f"{latest['cpu_usage_percent']:.1f}"
        await expect(row.get_by_test_id("cpu")).to_contain_text(cpu)
        for cell, keys in (
            ("memory", ("memory_usage_bytes", "memory_total_bytes")),
            ("disk", ("disk_io_read_bps", "disk_io_write_bps")),
            ("network", ("network_rx_bps", "network_tx_bps")),
        ):
            shown = human_values(await row.get_by_test_id(cell).inner_text())
            assert len(shown) == 2, shown
            for value, key in zip(shown, keys, strict=True):
                assert abs(value - latest[key]) <= max(1.0, latest[key] * 0.01), (cell, shown)
    await page.screenshot(path=str(SCREENSHOTS / "overview.png"), full_page=True)

    web1 = fleet.vps["web-1"]
    await page.goto(f"{fleet.base_url}/vps/{web1}")
    for chart in ("chart-cpu", "chart-memory", "chart-disk", "chart-network"):
        await expect(page.get_by_test_id(chart).locator("canvas").first).to_be_visible(
            timeout=10_000
        )
    interval = page.get_by_test_id("interval")
    await expect(interval).to_contain_text("1m")

    # A new snapshot through the command side changes the live value, no reload.
    await fleet.ingest("web-1", [snapshot(cpu=87.3)])
    await expect(page.get_by_test_id("live-cpu")).to_contain_text("87.3", timeout=5_000)
    await page.screenshot(path=str(SCREENSHOTS / "detail.png"), full_page=True)

    await page.get_by_test_id("range-24h").click()
    await expect(interval).to_contain_text(re.compile(r"\b5m\b"))
    # The served Content-Security-Policy blocked nothing the dashboard needs.
    assert violations == []
    await page.close()


async def test_another_users_vps_page_is_not_found(browser: Browser, fleet: Fleet) -> None:
    page = await logged_in(browser, fleet, "alice")
    await page.goto(f"{fleet.base_url}/vps/{fleet.vps['db-1']}")
    await expect(page.get_by_test_id("not-found")).to_be_visible(timeout=10_000)
    await expect(page.locator("body")).not_to_contain_text("db-1")
    await page.close()


async def test_wrong_password_shows_an_error(browser: Browser, fleet: Fleet) -> None:
    page = await browser.new_page()
    await page.goto(f"{fleet.base_url}/vps/1")  # a deep link without a session
    await expect(page).to_have_url(re.compile(r"/login"), timeout=10_000)
    await page.get_by_test_id("username").fill("alice")
    await page.get_by_test_id("password").fill("not-the-password")
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("login-error")).to_be_visible()
    await page.close()
