"""The dashboard's figures, computed on a generated history whose true values are known.

Each test stores the same drawn history (tests/kpi_history.py) on SQLite and
on PostgreSQL, computes a figure as the dashboard does, and compares it with
the value recomputed from the drawn rows by plain Python loops (tests/kpi_truth.py).
"""

from __future__ import annotations

from collections import Counter

import pytest

from hub.context import Hub
from hub.kpis.areas import compute_area, compute_figure
from hub.kpis.query import Filters
from hub.kpis.sql import AGE_NAMES
from hub.kpis.tables import Table
from tests import kpi_truth as truth
from tests.kpi_history import History, generate, query, store


@pytest.fixture
async def history(hub: Hub) -> History:
    drawn = generate()
    await store(hub, drawn)
    return drawn


def by_group(table: Table) -> dict[tuple[str, str], dict]:
    return {(row["by"], row["group"]): row for row in table.records()}


async def test_first_response_median_and_p90_by_channel_tier_and_team_are_the_true_ones(
    hub: Hub, history: History
):
    table = await compute_figure(hub, "service", "first_response", query())

    expected = truth.expected_first_response(history)
    got = {
        group: (r["conversations"], r["answered"], r["median_seconds"], r["p90_seconds"])
        for group, r in by_group(table).items()
    }
    assert got == expected
    assert {by for by, _group in got} == {"all", "channel", "tier", "team"}
    assert got[("all", "all")][1] > 50  # enough answered to make the percentiles mean something


async def test_filters_narrow_first_response_to_one_channel_tier_and_team(
    hub: Hub, history: History
):
    filters = Filters(channel="email", tier="B", team="standard")
    table = await compute_figure(hub, "service", "first_response", query(**filters.as_dict()))

    expected = truth.expected_first_response(history, filters)
    got = {
        group: (r["conversations"], r["answered"], r["median_seconds"], r["p90_seconds"])
        for group, r in by_group(table).items()
    }
    assert got == expected
    assert table.applied == ("channel", "tier", "team")


async def test_resolution_time_counts_the_conversations_closed_in_the_period(
    hub: Hub, history: History
):
    table = await compute_figure(hub, "service", "resolution", query())

    got = {
        g: (r["closed"], r["median_seconds"], r["p90_seconds"]) for g, r in by_group(table).items()
    }
    assert got == truth.expected_resolution(history)


async def test_sla_attainment_is_the_share_answered_by_the_target_of_those_decided(
    hub: Hub, history: History
):
    table = await compute_figure(hub, "service", "sla", query())

    expected = truth.expected_sla(history)
    for group, row in by_group(table).items():
        outcomes = expected[group]
        decided = outcomes["met"] + outcomes["missed"]
        assert (row["met"], row["missed"], row["pending"]) == (
            outcomes["met"],
            outcomes["missed"],
            outcomes["pending"],
        ), group
        assert row["with_target"] == sum(outcomes.values())
        assert row["attainment"] == (round(outcomes["met"] / decided, 4) if decided else None)
    assert set(by_group(table)) == set(expected)


async def test_open_conversations_pile_up_by_age_per_queue_and_per_assignee(
    hub: Hub, history: History
):
    queues = await compute_figure(hub, "service", "open_by_queue", query())
    assignees = await compute_figure(hub, "service", "open_by_assignee", query())

    for table, key, column in ((queues, "queue", "queue"), (assignees, "assignee_id", "agent_id")):
        expected = truth.expected_open_by(history, key)
        got = {r[column]: Counter({a: r[a] for a in AGE_NAMES if r[a]}) for r in table.records()}
        assert got == expected
        assert all(r["total"] == sum(r[a] for a in AGE_NAMES) for r in table.records())
    assert assignees.find(agent_id=101)["agent"] == "Agent 101"


async def test_the_team_filter_keeps_one_queues_open_conversations(hub: Hub, history: History):
    table = await compute_figure(hub, "service", "open_by_assignee", query(team="pool"))

    expected = truth.expected_open_by(history, "assignee_id", Filters(team="pool"))
    got = {r["agent_id"]: Counter({a: r[a] for a in AGE_NAMES if r[a]}) for r in table.records()}
    assert got == expected


async def test_complaints_opened_resolved_open_and_their_throughput_time(
    hub: Hub, history: History
):
    summary = await compute_figure(hub, "service", "complaints", query())
    ages = await compute_figure(hub, "service", "open_complaints", query())

    row = summary.records()[0]
    assert tuple(row.values()) == truth.expected_complaints(history)
    expected_ages = Counter(
        truth.age_of(c["opened_at"]) for c in history.complaints if c["status"] != "resolved"
    )
    assert {r["age"]: r["complaints"] for r in ages.records()} == {
        name: expected_ages[name] for name in AGE_NAMES
    }


async def test_contacts_per_customer_show_who_contacts_us_most_and_on_which_channels(
    hub: Hub, history: History
):
    tables = {t.name: t for t in await compute_area(hub, "service", query())}

    per_customer = truth.expected_contacts(history)
    assert tables["contacts"].records()[0] == {
        "contacts": sum(per_customer.values()),
        "customers": len(per_customer),
        "contacts_per_customer": round(sum(per_customer.values()) / len(per_customer), 2),
    }
    buckets = Counter(
        "1" if n == 1 else "2" if n == 2 else "3-5" if n <= 5 else "6-10" if n <= 10 else "11+"
        for n in per_customer.values()
    )
    assert {r["contacts"]: r["customers"] for r in tables["contacts_per_customer"].records()} == {
        label: buckets[label] for label in ("1", "2", "3-5", "6-10", "11+")
    }
    leaders = sorted(per_customer.items(), key=lambda item: (-item[1], item[0]))[:10]
    top = tables["top_contacts"].records()
    assert [(r["customer_id"], r["contacts"]) for r in top] == leaders
    channels = Counter(
        c["channel"]
        for c in history.contacts
        if c["customer_id"] == leaders[0][0]
        and c["direction"] == "inbound"
        and truth.inside(c["occurred_at"])
    )
    assert {ch: top[0].get(ch, 0) for ch in channels} == dict(channels)
    assert sum(top[0][ch] for ch in tables["top_contacts"].columns[3:]) == leaders[0][1]


async def test_contacts_filtered_by_channel_and_tier(hub: Hub, history: History):
    table = await compute_figure(hub, "service", "contacts", query(channel="sms", tier="A"))

    per_customer = truth.expected_contacts(history, channel="sms", tier="A")
    row = table.records()[0]
    assert (row["contacts"], row["customers"]) == (sum(per_customer.values()), len(per_customer))
    assert table.applied == ("channel", "tier")


async def test_agents_presence_time_and_conversations_handled_are_the_true_ones(
    hub: Hub, history: History
):
    rows = await compute_figure(hub, "agents", "agents", query())
    summary = await compute_figure(hub, "agents", "agent_summary", query())

    handled = truth.expected_handled(history)
    for agent in history.agents:
        row = rows.find(agent_id=agent["id"])
        online, away = truth.expected_presence(history, agent["id"])
        assert (row["online_seconds"], row["away_seconds"]) == (online, away)
        assert row["handled"] == handled[agent["id"]]
        assert row["account"] == ("active" if agent["is_active"] else "deactivated")
        assert row["active_in_period"] == bool(online or away or handled[agent["id"]])
    active = [r for r in rows.records() if r["account"] == "active"]
    assert summary.records()[0] == {
        "accounts_active": 3,
        "accounts_deactivated": 1,
        "active_in_period": sum(1 for r in active if r["active_in_period"]),
        "inactive_in_period": sum(1 for r in active if not r["active_in_period"]),
    }


async def test_the_team_filter_keeps_the_agents_of_that_team(hub: Hub, history: History):
    rows = await compute_figure(hub, "agents", "agents", query(team="pool"))

    assert [r["agent_id"] for r in rows.records()] == [102, 104]


async def test_campaign_figures_count_sent_blocked_bounced_unsubscribed_and_replies(
    hub: Hub, history: History
):
    table = await compute_figure(hub, "campaigns", "campaigns", query())
    blocks = await compute_figure(hub, "campaigns", "campaign_blocks", query())

    assert [r["campaign_id"] for r in table.records()] == [1, 2]  # 3 started before the period
    for row in table.records():
        expected = truth.expected_campaign(history, row["campaign_id"])
        assert {key: row[key] for key in expected} == expected
        assert row["reply_rate"] == round(expected["replied"] / expected["sent"], 4)
        assert expected["replied"] > 0 and expected["bounced"] + expected["unsubscribed"] > 0
    reasons = Counter(
        (r["campaign_id"], reason)
        for r in history.outbox
        if r["status"] == "blocked" and r["campaign_id"] in (1, 2)
        for reason in r["blocked_reasons"]
    )
    assert {(r["campaign_id"], r["reason"]): r["messages"] for r in blocks.records()} == dict(
        reasons
    )


async def test_the_channel_filter_picks_the_campaigns_of_that_channel(hub: Hub, history: History):
    table = await compute_figure(hub, "campaigns", "campaigns", query(channel="sms"))

    assert [r["campaign_id"] for r in table.records()] == [2]


async def test_a_reply_window_counts_replies_up_to_its_last_second_and_not_after(
    hub: Hub, history: History
):
    """The drawn replies fall 2 days, exactly 7 days, 7 days and 1 s, and 12 days after sending."""
    for days in (1, 2, 7, 12):
        ask = query()
        ask = type(ask)(ask.period, ask.filters, days, ask.now)
        table = await compute_figure(hub, "campaigns", "campaigns", ask)

        for row in table.records():
            expected = truth.expected_campaign(history, row["campaign_id"], days)
            assert row["replied"] == expected["replied"], (days, row["campaign_id"])


async def test_data_quality_counts_gaps_duplicate_suspects_and_consents_without_evidence(
    hub: Hub, history: History
):
    tables = {t.name: t for t in await compute_area(hub, "quality", query())}

    counted = truth.counted_customers(history)
    ids = {c["id"] for c in counted}
    kinds = {(i["customer_id"], i["kind"]) for i in history.identities}
    row = tables["data_quality"].records()[0]
    assert row["customers"] == len(counted)
    assert row["without_email"] == sum(1 for c in ids if (c, "email") not in kinds)
    assert row["without_phone"] == sum(1 for c in ids if (c, "phone") not in kinds)
    assert row["without_tier"] == sum(1 for c in counted if c["tier"] is None)
    names = Counter((c["name"].lower(), (c["company"] or "").lower()) for c in counted)
    name_groups = {key for key, n in names.items() if n > 1}
    suspects = tables["duplicate_suspects"].records()
    assert {r["key"] for r in suspects if r["kind"] == "name_company"} == {
        f"{name} / {company}" if company else name for name, company in name_groups
    }
    assert [r["customer_ids"] for r in suspects if r["kind"] == "similar_email"] == ["1 2 3"]
    assert row["duplicate_groups"] == len(name_groups) + 1
    without = [c for c in history.consents if not c["evidence"] and c["customer_id"] in ids]
    assert row["consents_without_evidence"] == sum(1 for c in without if c["state"] != "revoked")
    assert {
        (r["channel"], r["purpose"], r["state"]): r["records"]
        for r in tables["consents_without_evidence"].records()
    } == dict(Counter((c["channel"], c["purpose"], c["state"]) for c in without))


async def test_data_quality_narrowed_to_a_tier(hub: Hub, history: History):
    table = await compute_figure(hub, "quality", "data_quality", query(tier="none"))

    counted = [c for c in truth.counted_customers(history) if c["tier"] is None]
    assert table.records()[0]["customers"] == table.records()[0]["without_tier"] == len(counted)
