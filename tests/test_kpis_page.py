"""The figures page `/console/kpis`: supervisors only, charts drawn as SVG, German and English."""

from __future__ import annotations

import re

import httpx

from agent_ui.kpi_charts import Bars, render_grouped_bars, render_stacked_bars
from agent_ui.kpi_labels import KPI_LABELS
from agent_ui.kpi_pages import cell, duration
from hub.context import Hub
from hub.kpis.areas import AREAS
from hub.kpis.tables import Table
from hub.models import Agent
from tests.conftest import SignedIn
from tests.kpi_history import generate, store

PASSWORD = "correct horse battery"


async def sign_in(client: httpx.AsyncClient, agent: SignedIn) -> None:
    answer = await client.post("/login", data={"email": agent.email, "password": PASSWORD})
    assert answer.status_code == 303


def test_every_label_is_there_in_german_and_english_and_every_figure_has_a_title():
    assert set(KPI_LABELS["de"]) == set(KPI_LABELS["en"])
    figures = {name for area in AREAS.values() for name in area}
    assert {f"fig_{name}" for name in figures} <= set(KPI_LABELS["en"])
    assert {f"area_{name}" for name in AREAS} <= set(KPI_LABELS["en"])


def test_every_column_of_every_figure_has_a_label():
    columns = {
        "by", "group", "conversations", "answered", "median_seconds", "p90_seconds", "closed",
        "with_target", "met", "missed", "pending", "attainment", "queue", "agent_id", "agent",
        "total", "opened", "resolved", "open_now", "age", "complaints", "contacts", "customers",
        "contacts_per_customer", "customer_id", "customer", "role", "account", "presence_now",
        "online_seconds", "away_seconds", "handled", "active_in_period", "accounts_active",
        "accounts_deactivated", "inactive_in_period", "campaign_id", "campaign", "channel",
        "status", "started_at", "messages", "sent", "blocked", "failed", "bounced",
        "unsubscribed", "replied", "reply_rate", "reason", "without_email",
        "without_email_share", "without_phone", "without_phone_share", "without_tier",
        "without_tier_share", "duplicate_groups", "duplicate_customers",
        "consents_without_evidence", "kind", "key", "customer_ids", "purpose", "state", "records",
    }  # fmt: skip
    assert {f"col_{c}" for c in columns} <= set(KPI_LABELS["de"])


def test_durations_and_shares_are_written_for_people():
    words = KPI_LABELS["de"]

    assert duration(45, words) == "45 s"
    assert duration(90, words) == "1.5 Min."
    assert duration(3 * 3600, words) == "3 Std."
    assert duration(3 * 86400, words) == "3 Tage"
    assert duration(None, words) == "–"
    assert cell("attainment", 0.8125, words) == "81.2 %"
    assert cell("active_in_period", True, words) == "ja"


def test_a_chart_escapes_every_text_it_is_given():
    hostile = '<script>alert("x")</script>'
    grouped = render_grouped_bars(Bars(hostile, [hostile], [(hostile, [3.0])]), str)
    stacked = render_stacked_bars(Bars("t", ["a", "b"], [(hostile, [1, 2])]))

    for chart in (grouped, stacked):
        assert "<script>" not in chart
        assert "&lt;script&gt;" in chart
        assert chart.startswith("<svg")


def test_bars_are_drawn_in_proportion_to_their_values():
    chart = render_stacked_bars(Bars("t", ["a"], [("x", [10]), ("y", [5])]))

    widths = [float(w) for w in re.findall(r'<rect x="150\.0" y="[\d.]+" width="([\d.]+)"', chart)]
    assert widths[-2] == 2 * widths[-1]


async def test_a_supervisor_sees_every_figure_with_charts_and_csv_links(
    hub: Hub, client: httpx.AsyncClient, supervisor: SignedIn
):
    await store(hub, generate())
    await sign_in(client, supervisor)

    page = await client.get("/console/kpis", params={"from": "2026-10-21", "to": "2026-11-20"})

    assert page.status_code == 200
    for area, figures in AREAS.items():
        assert f'id="area-{area}"' in page.text
        for name in figures:
            assert f'data-figure="{name}"' in page.text
            assert (
                f"/api/kpis/{area}/{name}?from=2026-10-21&amp;to=2026-11-20&amp;format=csv"
                in page.text
            )
    assert page.text.count("<svg") >= 10
    assert "script-src 'self'" in page.headers["content-security-policy"]
    csv = await client.get("/api/kpis/service/sla?from=2026-10-21&to=2026-11-20&format=csv")
    assert csv.status_code == 200 and csv.text.startswith("by,group,with_target")


async def test_the_page_speaks_german_to_a_german_supervisor(
    hub: Hub, client: httpx.AsyncClient, supervisor: SignedIn
):
    async with hub.work() as work:
        (await work.session.get(Agent, supervisor.id)).language = "de"
    await sign_in(client, supervisor)

    page = await client.get("/console/kpis")

    assert "<h1>Kennzahlen</h1>" in page.text
    assert "Erste Antwortzeit" in page.text and "Datenqualität" in page.text
    assert "First response time" not in page.text


async def test_an_agent_is_told_the_figures_are_for_supervisors(
    client: httpx.AsyncClient, agent: SignedIn
):
    await sign_in(client, agent)

    page = await client.get("/console/kpis")

    assert page.status_code == 403
    assert "supervisors" in page.text
    assert "data-figure" not in page.text


async def test_a_wrong_filter_shows_the_page_with_the_error(
    client: httpx.AsyncClient, supervisor: SignedIn
):
    await sign_in(client, supervisor)

    page = await client.get("/console/kpis", params={"tier": "Z"})

    assert page.status_code == 422
    assert "tier must be one of" in page.text
    assert 'data-figure="first_response"' in page.text


async def test_without_signing_in_the_page_sends_to_sign_in(client: httpx.AsyncClient):
    page = await client.get("/console/kpis")

    assert page.status_code == 303 and page.headers["location"] == "/"


def test_a_figure_without_rows_draws_no_chart():
    from agent_ui.kpi_pages import CHARTS

    empty = Table("sla", ("by", "group", "with_target", "met", "missed", "pending", "attainment"))
    assert CHARTS["sla"](empty, KPI_LABELS["en"], "t") is None
