"""The figures page in real Chromium: a supervisor picks a period and a channel, sees charts.

Saves `artifacts/screenshots/kpi-dashboard-<engine>.png` (the README shows it).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from hub.context import Hub
from tests.conftest import SignedIn
from tests.kpi_history import generate, store

PASSWORD = "correct horse battery"
ARTIFACTS = Path(os.environ.get("OMNIHUB_ARTIFACTS", "artifacts")) / "screenshots"


async def test_a_supervisor_picks_a_period_and_a_channel_and_sees_the_charts(
    hub: Hub, live_url: str, page: Page, supervisor: SignedIn, request: pytest.FixtureRequest
):
    await store(hub, generate())
    await page.set_viewport_size({"width": 1400, "height": 1000})
    await page.goto(live_url + "/")
    await page.get_by_label("E-mail").fill(supervisor.email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(live_url + "/console")

    await page.goto(live_url + "/console/kpis")
    await page.get_by_label("From").fill("2026-10-21")
    await page.get_by_label("To (inclusive)").fill("2026-11-20")
    await page.get_by_role("button", name="Show").click()
    await page.wait_for_url("**/console/kpis?from=2026-10-21&to=2026-11-20*")

    first_response = page.locator('[data-figure="first_response"]')
    await expect(first_response.locator("svg.chart")).to_be_visible()
    await expect(first_response.locator("tbody tr").first).to_contain_text("Total")
    await expect(page.locator("svg.chart")).to_have_count(11)
    engine = request.node.callspec.params.get("database_url", "")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"kpi-dashboard-{engine}.png"))
    await page.screenshot(path=str(ARTIFACTS / f"kpi-dashboard-full-{engine}.png"), full_page=True)

    await page.get_by_label("Channel").select_option("email")
    await page.get_by_role("button", name="Show").click()
    await page.wait_for_url("**channel=email*")
    channel_rows = first_response.locator("tbody tr", has_text="by channel")
    await expect(channel_rows).to_have_count(1)
    await expect(channel_rows).to_contain_text("email")
    async with page.expect_download() as download:
        await page.locator('[data-figure="sla"] a', has_text="CSV").click()
    saved = await (await download.value).path()
    header = await asyncio.to_thread(Path(saved).read_text)
    assert header.startswith("by,group,with_target,met,missed,pending,attainment")
