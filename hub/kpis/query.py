"""What a dashboard asks for: a period, filters, and how long a campaign reply may take.

A period is half-open, `[start, end)`, in UTC. `from` and `to` are ISO dates
or datetimes; a bare date as `to` means the whole of that day, so
`from=2026-11-01&to=2026-11-30` is November. Without them the period is the
last 30 days up to now. The filters narrow what a figure counts:

    channel   the conversation's, the contact's or the campaign's channel
    tier      the customer's tier now: A, B, C, or `none` (no tier)
    team      a queue (agents' teams are named by the queues they work);
              for the agents' figures, the agents in that team

A filter that does not apply to a figure is ignored, and the figure says
which filters it applied (`Table.applied`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from hub.errors import InvalidInputError
from hub.models import utcnow
from hub.values import CHANNELS

TIERS = ("A", "B", "C", "none")
DEFAULT_DAYS = 30
MAX_DAYS = 3660
DEFAULT_REPLY_DAYS = 7
MAX_REPLY_DAYS = 90


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class Filters:
    channel: str | None = None
    tier: str | None = None
    team: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"channel": self.channel, "tier": self.tier, "team": self.team}


@dataclass(frozen=True, slots=True)
class KpiQuery:
    """One dashboard request; `now` is fixed once, so every figure sees the same moment."""

    period: Period
    filters: Filters = field(default_factory=Filters)
    reply_days: int = DEFAULT_REPLY_DAYS
    now: datetime = field(default_factory=utcnow)

    def as_dict(self) -> dict[str, object]:
        return {
            "from": self.period.start.isoformat(),
            "to": self.period.end.isoformat(),
            **self.filters.as_dict(),
            "reply_days": self.reply_days,
            "now": self.now.isoformat(),
        }


def parse_moment(text: str, name: str, end_of_day: bool = False) -> datetime:
    """An ISO date or datetime as aware UTC; a bare date `end_of_day` is the next midnight."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time(), UTC)
            return moment + timedelta(days=1) if end_of_day else moment
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(
            f"{name} must be an ISO date (2026-11-30) or datetime", field=name
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def check_choice(value: str | None, allowed: tuple[str, ...], name: str) -> str | None:
    if value in (None, ""):
        return None
    if value not in allowed:
        raise InvalidInputError(f"{name} must be one of {', '.join(allowed)}", field=name)
    return value


def parse_period(start: str | None, end: str | None, now: datetime) -> Period:
    until = parse_moment(end, "to", end_of_day=True) if end else now
    since = parse_moment(start, "from") if start else until - timedelta(days=DEFAULT_DAYS)
    if since >= until:
        raise InvalidInputError("from must be before to", field="from")
    if until - since > timedelta(days=MAX_DAYS):
        raise InvalidInputError(f"a period spans at most {MAX_DAYS} days", field="from")
    return Period(since, until)


def parse_reply_days(text: str | None) -> int:
    if text in (None, ""):
        return DEFAULT_REPLY_DAYS
    if not text.isdigit() or not 1 <= int(text) <= MAX_REPLY_DAYS:
        raise InvalidInputError(
            f"days must be a whole number from 1 to {MAX_REPLY_DAYS}", field="days"
        )
    return int(text)


def parse_query(arguments: Mapping[str, str | None], now: datetime | None = None) -> KpiQuery:
    """The request's `from`, `to`, `channel`, `tier`, `team` and `days`, checked."""
    moment = now or utcnow()
    team = (arguments.get("team") or "").strip() or None
    if team is not None and len(team) > 50:
        raise InvalidInputError("team is a queue name of at most 50 characters", field="team")
    filters = Filters(
        channel=check_choice(arguments.get("channel"), CHANNELS, "channel"),
        tier=check_choice(arguments.get("tier"), TIERS, "tier"),
        team=team,
    )
    return KpiQuery(
        period=parse_period(arguments.get("from"), arguments.get("to"), moment),
        filters=filters,
        reply_days=parse_reply_days(arguments.get("days")),
        now=moment,
    )
