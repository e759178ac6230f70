"""`/api/kpis`: the same figures as JSON and CSV, for supervisors only, with clear refusals."""

from __future__ import annotations

import csv
import io

import httpx
from sqlalchemy import select

from hub.context import Hub
from hub.kpis.areas import AREAS, compute_area
from hub.kpis.query import parse_query
from hub.kpis.tables import Table, render_area_csv, render_table_csv
from hub.models import PresenceChange
from tests.conftest import MakeAgent, SignedIn
from tests.kpi_history import PERIOD, generate, store

PERIOD_ARGUMENTS = {"from": PERIOD.start.isoformat(), "to": PERIOD.end.isoformat()}


async def test_a_supervisor_gets_every_areas_figures_as_json_equal_to_the_computed_ones(
    hub: Hub, client: httpx.AsyncClient, supervisor: SignedIn
):
    await store(hub, generate())

    for area, figures in AREAS.items():
        answer = await client.get(
            f"/api/kpis/{area}", params=PERIOD_ARGUMENTS, headers=supervisor.headers
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        query = parse_query({**PERIOD_ARGUMENTS}, now=parse_query({}).now)
        expected = await compute_area(hub, area, query)
        assert list(body["figures"]) == list(figures)
        for table in expected:
            if area == "agents":
                continue  # presence time runs on with the clock between the two computations
            assert body["figures"][table.name]["rows"] == table.records(), (area, table.name)


async def test_one_figure_downloads_as_csv_with_its_columns(
    hub: Hub, client: httpx.AsyncClient, supervisor: SignedIn
):
    await store(hub, generate())

    answer = await client.get(
        "/api/kpis/service/sla",
        params={**PERIOD_ARGUMENTS, "format": "csv", "channel": "email"},
        headers=supervisor.headers,
    )

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    json_rows = (
        await client.get(
            "/api/kpis/service/sla",
            params={**PERIOD_ARGUMENTS, "channel": "email"},
            headers=supervisor.headers,
        )
    ).json()["rows"]
    assert [r["group"] for r in rows] == [r["group"] for r in json_rows]
    assert [int(r["met"]) for r in rows] == [r["met"] for r in json_rows]
    assert {r["group"] for r in rows if r["by"] == "channel"} == {"email"}


async def test_an_area_downloads_as_one_long_csv_with_every_figure(
    hub: Hub, client: httpx.AsyncClient, supervisor: SignedIn
):
    await store(hub, generate())

    answer = await client.get(
        "/api/kpis/quality", params={"format": "csv"}, headers=supervisor.headers
    )

    lines = list(csv.reader(io.StringIO(answer.text)))
    assert lines[0] == ["figure", "row", "column", "value"]
    assert {line[0] for line in lines[1:]} == {
        "data_quality",
        "duplicate_suspects",
        "consents_without_evidence",
    }
    customers = [line[3] for line in lines if line[0] == "data_quality" and line[2] == "customers"]
    json_body = (await client.get("/api/kpis/quality", headers=supervisor.headers)).json()
    assert customers == [str(json_body["figures"]["data_quality"]["rows"][0]["customers"])]


async def test_an_agent_may_not_see_the_figures(client: httpx.AsyncClient, agent: SignedIn):
    answer = await client.get("/api/kpis/service", headers=agent.headers)

    assert answer.status_code == 403


async def test_wrong_parameters_are_refused_naming_the_parameter(
    client: httpx.AsyncClient, supervisor: SignedIn
):
    cases = {
        "tier": {"tier": "D"},
        "channel": {"channel": "pigeon"},
        "from": {"from": "2026-11-30", "to": "2026-11-01"},
        "to": {"to": "yesterday"},
        "days": {"days": "0"},
    }
    for field, params in cases.items():
        answer = await client.get("/api/kpis/service", params=params, headers=supervisor.headers)
        assert answer.status_code == 422, (field, answer.text)
        assert answer.json().get("field") == field, answer.json()
    unknown = await client.get("/api/kpis/weather", headers=supervisor.headers)
    assert unknown.status_code == 404
    figure = await client.get("/api/kpis/service/weather", headers=supervisor.headers)
    assert figure.status_code == 404


async def test_a_bare_date_as_to_means_the_whole_of_that_day(
    client: httpx.AsyncClient, supervisor: SignedIn
):
    answer = await client.get(
        "/api/kpis/service/contacts",
        params={"from": "2026-11-01", "to": "2026-11-30"},
        headers=supervisor.headers,
    )

    assert answer.json()["query"]["from"] == "2026-11-01T00:00:00+00:00"
    assert answer.json()["query"]["to"] == "2026-12-01T00:00:00+00:00"


async def test_the_list_of_areas_names_every_figure(
    client: httpx.AsyncClient, supervisor: SignedIn
):
    answer = await client.get("/api/kpis", headers=supervisor.headers)

    assert answer.json() == {area: list(figures) for area, figures in AREAS.items()}


async def test_every_presence_change_is_logged_for_presence_time(
    hub: Hub, client: httpx.AsyncClient, make_agent: MakeAgent
):
    pia = await make_agent("agent", "Pia")

    for status in ("online", "away", "offline"):
        answer = await client.put(
            "/api/agents/me/presence", json={"status": status}, headers=pia.headers
        )
        assert answer.status_code in (200, 204), answer.text

    async with hub.sessions() as session:
        logged = (
            await session.scalars(
                select(PresenceChange.status)
                .where(PresenceChange.agent_id == pia.id)
                .order_by(PresenceChange.id)
            )
        ).all()
    assert list(logged) == ["online", "away", "offline"]


def test_a_csv_cell_that_a_spreadsheet_would_run_as_a_formula_is_kept_as_text():
    table = Table("t", ("name", "n"), [('=HYPERLINK("x")', -3), ("@SUM(A1)", 1.5)])

    lines = list(csv.reader(io.StringIO(render_table_csv(table))))
    long_lines = list(csv.reader(io.StringIO(render_area_csv([table]))))

    assert lines[1:] == [['\'=HYPERLINK("x")', "-3"], ["'@SUM(A1)", "1.5"]]
    assert long_lines[1] == ["t", "1", "name", '\'=HYPERLINK("x")']
