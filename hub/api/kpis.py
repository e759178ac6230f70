"""`/api/kpis`: the dashboard's figures as JSON, or as CSV to download (supervisors and admins).

    GET /api/kpis                          the areas and their figures
    GET /api/kpis/{area}                   every figure of an area
    GET /api/kpis/{area}/{figure}          one figure

each with `from`, `to` (ISO dates or datetimes; default the last 30 days),
`channel`, `tier` (A, B, C, none), `team` (a queue), `days` (how long after
a campaign message a reply counts, default 7) and `format` (`json`, the
default, or `csv`: an area in long form, one figure as its table; see
`hub.kpis.tables`). A wrong value answers 422 naming the parameter.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from hub.api.deps import get_hub, require
from hub.context import Hub
from hub.kpis.areas import AREAS, compute_area, compute_figure, get_area
from hub.kpis.query import KpiQuery, parse_query
from hub.kpis.tables import Table, render_area_csv, render_table_csv
from hub.models import Agent

router = APIRouter(prefix="/api/kpis", tags=["kpis"])
supervisor = require("supervisor")
Format = Literal["json", "csv"]


async def kpi_query(
    start: Annotated[str | None, Query(alias="from", description="ISO date or datetime")] = None,
    to: Annotated[str | None, Query(description="ISO date (whole day) or datetime")] = None,
    channel: str | None = None,
    tier: Annotated[str | None, Query(description="A, B, C or none")] = None,
    team: Annotated[str | None, Query(description="a queue")] = None,
    days: Annotated[str | None, Query(description="campaign reply window in days")] = None,
) -> KpiQuery:
    arguments = {"from": start, "to": to, "channel": channel, "tier": tier, "team": team}
    return parse_query({**arguments, "days": days})


def _csv(text: str, filename: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _filename(query: KpiQuery, *names: str) -> str:
    span = f"{query.period.start:%Y%m%d}-{query.period.end:%Y%m%d}"
    return "-".join(("kpis", *names, span)) + ".csv"


def _json(query: KpiQuery, area: str, tables: list[Table]) -> dict[str, Any]:
    return {
        "area": area,
        "query": query.as_dict(),
        "figures": {table.name: table.as_json() for table in tables},
    }


@router.get("")
async def list_areas(_agent: Agent = Depends(supervisor)) -> dict[str, list[str]]:
    """The areas and the figures each has."""
    return {area: list(figures) for area, figures in AREAS.items()}


@router.get("/{area}", response_model=None)
async def area_figures(
    area: str,
    format: Format = "json",
    _agent: Agent = Depends(supervisor),
    query: KpiQuery = Depends(kpi_query),
    hub: Hub = Depends(get_hub),
) -> dict[str, Any] | Response:
    get_area(area)
    tables = await compute_area(hub, area, query)
    if format == "csv":
        return _csv(render_area_csv(tables), _filename(query, area))
    return _json(query, area, tables)


@router.get("/{area}/{figure}", response_model=None)
async def one_figure(
    area: str,
    figure: str,
    format: Format = "json",
    _agent: Agent = Depends(supervisor),
    query: KpiQuery = Depends(kpi_query),
    hub: Hub = Depends(get_hub),
) -> dict[str, Any] | Response:
    table = await compute_figure(hub, area, figure, query)
    if format == "csv":
        return _csv(render_table_csv(table), _filename(query, area, figure))
    return {"area": area, "query": query.as_dict(), "figure": table.name, **table.as_json()}
