"""The truth about a generated history (`tests/kpi_history.py`): each figure recomputed
from the drawn values with plain loops (nearest-rank percentiles by their definition),
never with the SQL under test."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from hub.kpis.query import Filters
from tests.kpi_history import AGE_LIMITS, NOW, PERIOD, History


def rank(values: list[int], numerator: int, denominator: int) -> int | None:
    """Nearest rank: the value at position ceil(n * numerator / denominator), 1-based."""
    if not values:
        return None
    ordered = sorted(values)
    position = -(-len(ordered) * numerator // denominator)
    return ordered[position - 1]


def seconds(later: datetime, earlier: datetime) -> int:
    return round((later - earlier).total_seconds())


def inside(moment_: datetime | None) -> bool:
    return moment_ is not None and PERIOD.start <= moment_ < PERIOD.end


def conversation_groups(history: History, conversation: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("all", "all"),
        ("channel", conversation["channel"]),
        ("tier", history.tier(conversation["customer_id"])),
        ("team", conversation["queue"] or "none"),
    ]


def passes(history: History, conversation: dict[str, Any], filters: Filters) -> bool:
    return (
        (filters.channel is None or conversation["channel"] == filters.channel)
        and (filters.tier is None or history.tier(conversation["customer_id"]) == filters.tier)
        and (filters.team is None or conversation["queue"] == filters.team)
    )


def expected_first_response(
    history: History, filters: Filters = Filters()
) -> dict[tuple[str, str], tuple]:
    rows: dict[tuple[str, str], list[int | None]] = defaultdict(list)
    for c in history.conversations:
        if inside(c["created_at"]) and passes(history, c, filters):
            value = (
                seconds(c["first_response_at"], c["created_at"]) if c["first_response_at"] else None
            )
            for group in conversation_groups(history, c):
                rows[group].append(value)
    return {
        group: (
            len(values),
            len(measured := [v for v in values if v is not None]),
            rank(measured, 1, 2),
            rank(measured, 9, 10),
        )
        for group, values in rows.items()
    }


def expected_resolution(history: History) -> dict[tuple[str, str], tuple]:
    rows: dict[tuple[str, str], list[int]] = defaultdict(list)
    for c in history.conversations:
        if c["status"] == "closed" and inside(c["closed_at"]):
            for group in conversation_groups(history, c):
                rows[group].append(seconds(c["closed_at"], c["created_at"]))
    return {group: (len(v), rank(v, 1, 2), rank(v, 9, 10)) for group, v in rows.items()}


def sla_outcome(c: dict[str, Any]) -> str:
    answered, due = c["first_response_at"], c["sla_due_at"]
    if answered is not None:
        return "met" if answered <= due else "missed"
    return "missed" if due <= NOW else "pending"


def expected_sla(history: History) -> dict[tuple[str, str], Counter[str]]:
    rows: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for c in history.conversations:
        if inside(c["created_at"]) and c["sla_due_at"] is not None:
            for group in conversation_groups(history, c):
                rows[group][sla_outcome(c)] += 1
    return rows


def age_of(started: datetime) -> str:
    for name, limit in AGE_LIMITS:
        if NOW - started < limit:
            return name
    return "over_7d"


def expected_open_by(
    history: History, key: str, filters: Filters = Filters()
) -> dict[Any, Counter[str]]:
    rows: dict[Any, Counter[str]] = defaultdict(Counter)
    for c in history.conversations:
        if c["status"] == "open" and passes(history, c, filters):
            name = c[key] if key != "queue" else (c["queue"] or "none")
            rows[name][age_of(c["created_at"])] += 1
    return rows


def expected_complaints(history: History) -> tuple:
    opened = sum(1 for c in history.complaints if inside(c["opened_at"]))
    times = [
        seconds(c["resolved_at"], c["opened_at"])
        for c in history.complaints
        if c["status"] == "resolved" and inside(c["resolved_at"])
    ]
    open_now = sum(1 for c in history.complaints if c["status"] != "resolved")
    return (opened, len(times), open_now, rank(times, 1, 2), rank(times, 9, 10))


def expected_contacts(
    history: History, channel: str | None = None, tier: str | None = None
) -> Counter[int]:
    per_customer: Counter[int] = Counter()
    for contact in history.contacts:
        if contact["direction"] != "inbound" or not inside(contact["occurred_at"]):
            continue
        if channel and contact["channel"] != channel:
            continue
        if tier and history.tier(contact["customer_id"]) != tier:
            continue
        per_customer[contact["customer_id"]] += 1
    return per_customer


def expected_presence(history: History, agent_id: int) -> tuple[int, int]:
    """Seconds online and away in the period, by walking it minute by minute."""
    changes = sorted((c["at"], c["status"]) for c in history.presence if c["agent_id"] == agent_id)
    online = away = 0
    status, index = None, 0
    minute = PERIOD.start
    while minute < PERIOD.end:
        while index < len(changes) and changes[index][0] <= minute:
            status = changes[index][1]
            index += 1
        online += 60 if status == "online" else 0
        away += 60 if status == "away" else 0
        minute += timedelta(minutes=1)
    return online, away


def expected_handled(history: History) -> Counter[int]:
    return Counter(
        c["assignee_id"]
        for c in history.conversations
        if c["status"] == "closed" and c["assignee_id"] and inside(c["closed_at"])
    )


def expected_campaign(history: History, campaign_id: int, days: int = 7) -> dict[str, int]:
    rows = [r for r in history.outbox if r["campaign_id"] == campaign_id]
    sent = [r for r in rows if r["sent_at"] is not None]

    def later_block(row: dict[str, Any], reasons: tuple[str, ...]) -> bool:
        return any(
            b["value"] == row["recipient"]
            and b["reason"] in reasons
            and b["created_at"] >= row["created_at"]
            for b in history.blocks
        )

    def replied(row: dict[str, Any]) -> bool:
        return any(
            c["customer_id"] == row["customer_id"]
            and c["direction"] == "inbound"
            and row["sent_at"] < c["occurred_at"] <= row["sent_at"] + timedelta(days=days)
            for c in history.contacts
        )

    return {
        "messages": len(rows),
        "sent": len(sent),
        "blocked": sum(1 for r in rows if r["status"] == "blocked"),
        "failed": sum(1 for r in rows if r["status"] == "failed"),
        "bounced": sum(1 for r in sent if later_block(r, ("hard_bounce",))),
        "unsubscribed": sum(1 for r in sent if later_block(r, ("unsubscribe", "sms_stop"))),
        "replied": sum(1 for r in sent if replied(r)),
    }


def counted_customers(history: History) -> list[dict[str, Any]]:
    return [c for c in history.customers if c["id"] not in history.erased | history.merged]
