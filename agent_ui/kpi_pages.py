"""The figures page for supervisors: `/console/kpis`, every area's figures with charts.

It takes the API's parameters (`from`, `to`, `channel`, `tier`, `team`,
`days`) from a plain GET form, so the period and filter picker works without
script, and every figure links to its CSV and JSON at `/api/kpis/...` with
the same parameters. Agents who are not supervisors get a 403 page; a wrong
parameter shows the page again with the error and the last valid defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup
from sqlalchemy import select

from agent_ui.i18n import labels, language_of
from agent_ui.kpi_charts import Bars, render_grouped_bars, render_stacked_bars
from agent_ui.kpi_labels import kpi_labels
from agent_ui.rendering import render
from hub.agents import has_role
from hub.api.deps import get_hub
from hub.context import Hub
from hub.errors import InvalidInputError
from hub.kpis.areas import compute_areas
from hub.kpis.query import TIERS, KpiQuery, parse_query
from hub.kpis.sql import AGE_NAMES
from hub.kpis.tables import Table
from hub.models import Agent, utcnow
from hub.values import CHANNELS

router = APIRouter(include_in_schema=False)
PARAMETERS = ("from", "to", "channel", "tier", "team", "days")
PRESETS = (("last_7", 7), ("last_30", 30), ("last_90", 90))
Words = dict[str, str]


def duration(seconds: float | None, words: Words) -> str:
    if seconds is None:
        return words["not_measured"]
    for unit, size in (("unit_d", 86400), ("unit_h", 3600), ("unit_min", 60)):
        if seconds >= size * (2 if unit != "unit_min" else 1):
            return f"{seconds / size:.1f} {words[unit]}".replace(".0 ", " ")
    return f"{seconds:.0f} {words['unit_s']}"


BY_LABELS = {"all": "total", "channel": "by_channel", "tier": "by_tier", "team": "by_team"}


def cell(column: str, value: Any, words: Words) -> str:
    if value is None:
        return words["not_measured"]
    if column == "age":
        return words[f"col_{value}"]
    if column == "by":
        return words[BY_LABELS[value]]
    if isinstance(value, bool):
        return words["yes"] if value else words["no"]
    if column.endswith("_seconds"):
        return duration(value, words)
    if column.endswith("_share") or column in ("attainment", "reply_rate"):
        return f"{value * 100:.1f} %"
    return str(value)


def _group_label(row: dict[str, Any], words: Words) -> str:
    by, group = row["by"], row["group"]
    if by == "all":
        return words["total"]
    return {"channel": group, "tier": f"{words['tier']} {group}", "team": f"Team {group}"}[by]


def _time_chart(table: Table, words: Words, title: str) -> Markup | None:
    records = table.records()
    if not records:
        return None
    bars = Bars(
        title,
        (words["median"], words["p90"]),
        [(_group_label(r, words), (r["median_seconds"], r["p90_seconds"])) for r in records],
    )
    return render_grouped_bars(bars, lambda value: duration(value, words))


def _stacked(
    table: Table, words: Words, title: str, key: str, series: tuple[str, ...]
) -> Markup | None:
    records = table.records()
    if not records:
        return None
    rows = [
        (str(r[key] if r[key] is not None else words["unassigned"]), [r[s] for s in series])
        for r in records
    ]
    return render_stacked_bars(Bars(title, [words.get(f"col_{s}", s) for s in series], rows))


def _single(table: Table, words: Words, title: str, key: str, value: str) -> Markup | None:
    records = table.records()
    if not records:
        return None
    rows = [(words.get(f"col_{r[key]}", str(r[key])), [r[value]]) for r in records]
    return render_grouped_bars(Bars(title, [words[f"col_{value}"]], rows), _count)


def _count(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


def _sla_chart(table: Table, words: Words, title: str) -> Markup | None:
    records = table.records()
    if not records:
        return None
    rows = [(_group_label(r, words), [r["met"], r["missed"], r["pending"]]) for r in records]
    series = (words["met"], words["missed"], words["pending"])
    return render_stacked_bars(Bars(title, series, rows))


def _top_chart(table: Table, words: Words, title: str) -> Markup | None:
    channels = table.columns[3:]
    return _stacked(table, words, title, "customer", tuple(channels)) if table.rows else None


def _presence_chart(table: Table, words: Words, title: str) -> Markup | None:
    records = table.records()
    if not records:
        return None
    series = (words["col_online_seconds"], words["col_away_seconds"])
    rows = [(str(r["agent"]), (r["online_seconds"], r["away_seconds"])) for r in records]
    return render_grouped_bars(Bars(title, series, rows), lambda value: duration(value, words))


def _campaign_chart(table: Table, words: Words, title: str) -> Markup | None:
    records = table.records()
    if not records:
        return None
    measures = ("sent", "blocked", "bounced", "unsubscribed", "replied")
    rows = [(str(r["campaign"]), [r[m] for m in measures]) for r in records]
    bars = Bars(title, [words[f"col_{m}"] for m in measures], rows)
    return render_grouped_bars(bars, _count)


def _quality_chart(table: Table, words: Words, title: str) -> Markup | None:
    (row,) = table.records()
    measures = ("without_email", "without_phone", "without_tier", "duplicate_customers")
    rows = [(words[f"col_{m}"], [row[m]]) for m in (*measures, "consents_without_evidence")]
    return render_grouped_bars(Bars(title, [words["col_customers"]], rows), _count)


Chart = Callable[[Table, Words, str], Markup | None]
CHARTS: dict[str, Chart] = {
    "first_response": _time_chart,
    "resolution": _time_chart,
    "sla": _sla_chart,
    "open_by_queue": lambda t, w, title: _stacked(t, w, title, "queue", AGE_NAMES),
    "open_by_assignee": lambda t, w, title: _stacked(t, w, title, "agent", AGE_NAMES),
    "open_complaints": lambda t, w, title: _single(t, w, title, "age", "complaints"),
    "contacts_per_customer": lambda t, w, title: _single(t, w, title, "contacts", "customers"),
    "top_contacts": _top_chart,
    "agents": _presence_chart,
    "campaigns": _campaign_chart,
    "data_quality": _quality_chart,
}


def _links(query_string: str, area: str, figure: str | None = None) -> dict[str, str]:
    path = f"/api/kpis/{area}" + (f"/{figure}" if figure else "")
    joiner = "&" if query_string else ""
    return {"csv": f"{path}?{query_string}{joiner}format=csv", "json": f"{path}?{query_string}"}


def _figure_view(area: str, table: Table, words: Words, query_string: str) -> dict[str, Any]:
    title = words[f"fig_{table.name}"]
    chart = CHARTS.get(table.name)
    return {
        "name": table.name,
        "title": title,
        "chart": chart(table, words, title) if chart else None,
        "columns": [words.get(f"col_{c}", c) for c in table.columns],
        "rows": [
            [cell(c, v, words) for c, v in zip(table.columns, row, strict=True)]
            for row in table.rows
        ],
        "links": _links(query_string, area, table.name),
    }


def _form_values(query: KpiQuery) -> dict[str, Any]:
    last_day = query.period.end - timedelta(microseconds=1)
    return {
        "from": query.period.start.date().isoformat(),
        "to": last_day.date().isoformat(),
        **{k: v or "" for k, v in query.filters.as_dict().items()},
        "days": query.reply_days,
    }


def _presets(now_query: KpiQuery) -> list[tuple[str, str]]:
    today = now_query.now.date()
    return [
        (
            key,
            "?"
            + urlencode(
                {"from": (today - timedelta(days=days - 1)).isoformat(), "to": today.isoformat()}
            ),
        )
        for key, days in PRESETS
    ]


async def _teams(hub: Hub) -> list[str]:
    async with hub.sessions() as session:
        teams = {
            team
            for (listed,) in await session.execute(select(Agent.teams))
            for team in listed or []
        }
    return sorted(teams)


async def _signed_in(request: Request, hub: Hub) -> Agent | None:
    agent_id = request.session.get("agent_id")
    async with hub.sessions() as session:
        agent = await session.get(Agent, agent_id) if isinstance(agent_id, int) else None
    return agent if agent is not None and agent.is_active else None


@router.get("/console/kpis")
async def kpi_page(request: Request, hub: Hub = Depends(get_hub)) -> Response:
    agent = await _signed_in(request, hub)
    if agent is None:
        return RedirectResponse("/", status_code=303)
    words = {**labels(agent.language), **kpi_labels(agent.language)}
    if not has_role(agent, "supervisor"):
        return render(request, "kpi_dashboard.html", agent, 403, k=words, forbidden=True)
    given = {name: request.query_params.get(name) for name in PARAMETERS}
    error, status = None, 200
    try:
        query = parse_query(given)
    except InvalidInputError as refused:
        error, status, query = refused.message, 422, parse_query({})
        given = {}
    query_string = urlencode({k: v for k, v in given.items() if v})
    areas = []
    for area, tables in (await compute_areas(hub, query)).items():
        areas.append(
            {
                "name": area,
                "title": words[f"area_{area}"],
                "links": _links(query_string, area),
                "figures": [_figure_view(area, t, words, query_string) for t in tables],
            }
        )
    return render(
        request,
        "kpi_dashboard.html",
        agent,
        status,
        language_of(agent.language),
        k=words,
        areas=areas,
        form=_form_values(query),
        presets=_presets(query),
        channels=CHANNELS,
        tiers=TIERS,
        teams=await _teams(hub),
        error=error,
        generated_at=utcnow(),
    )
