"""The API's request bodies: checked at the edge, so bad input is a 422 naming the field."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from hub.values import Channel

Short = Field(default=None, max_length=200)


def _in_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("needs a time zone, e.g. 2026-11-22T10:00:00+01:00")
    return value.astimezone(UTC)


# Times cross the API with a zone and are kept in UTC.
UtcTime = Annotated[datetime, AfterValidator(_in_utc)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CustomerIn(Body):
    name: str | None = Short
    company: str | None = Short
    tier: Literal["A", "B", "C"] | None = None
    key_account_agent_id: int | None = None
    language: str | None = Field(default=None, max_length=8)
    birthday: date | None = None
    revenue: Decimal | None = Field(default=None, ge=0, max_digits=14, decimal_places=2)
    tags: list[str] | None = Field(default=None, max_length=50)
    emails: list[str] = Field(default_factory=list, max_length=20)
    phones: list[str] = Field(default_factory=list, max_length=20)


class MergeIn(Body):
    other_id: int


class InteractionIn(Body):
    channel: Channel
    direction: Literal["inbound", "outbound"] = "inbound"
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=50)
    name: str | None = Short
    subject: str | None = Field(default=None, max_length=500)
    text: str = Field(max_length=100_000)
    external_id: str = Field(min_length=1, max_length=500)
    occurred_at: UtcTime | None = None
    complaint: bool = False

    @model_validator(mode="after")
    def _one_identity(self) -> InteractionIn:
        if not self.email and not self.phone:
            raise ValueError("give the customer's email or phone")
        return self


class ComplaintIn(Body):
    customer_id: int
    subject: str = Field(min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=100_000)
    severity: Literal["low", "normal", "high", "critical"] = "normal"
    due_at: UtcTime | None = None
    conversation_ids: list[int] = Field(default_factory=list, max_length=100)


class ComplaintPatch(Body):
    subject: str | None = Field(default=None, min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=100_000)
    status: Literal["open", "in_progress", "resolved"] | None = None
    severity: Literal["low", "normal", "high", "critical"] | None = None
    due_at: UtcTime | None = None
    conversation_ids: list[int] | None = Field(default=None, max_length=100)


class PresenceIn(Body):
    status: Literal["online", "away", "offline"]


Capacity = Annotated[int, Field(ge=0, le=1000)]


class AgentRoutingIn(Body):
    """An agent's routing profile; `tiers` empty means every tier."""

    teams: list[Annotated[str, Field(min_length=1, max_length=50)]] | None = Field(
        default=None, max_length=50
    )
    languages: list[Annotated[str, Field(min_length=2, max_length=8)]] | None = Field(
        default=None, max_length=20
    )
    tiers: list[Literal["A", "B", "C"]] | None = None
    capacity: dict[Annotated[str, Field(min_length=1, max_length=20)], Capacity] | None = Field(
        default=None, max_length=20
    )
    deputy_agent_id: int | None = None


class NoteIn(Body):
    text: str = Field(min_length=1, max_length=100_000)


class AssignIn(Body):
    assignee_id: int | None = None
    queue: str | None = Field(default=None, max_length=50)
    # A supervisor may give a conversation to an agent who is offline, full or
    # not serving the tier; the audit log keeps what was overridden.
    force: bool = False


class StatusIn(Body):
    status: Literal["open", "closed"] = "closed"


class BlockIn(Body):
    kind: Literal["email", "phone", "customer"]
    value: str = Field(min_length=1, max_length=320)
    reason: Literal["unsubscribe", "hard_bounce", "sms_stop", "legal", "do_not_contact", "manual"]
    scope: Literal["marketing", "all"] = "all"
    note: str | None = Field(default=None, max_length=500)


class ConsentIn(Body):
    channel: Literal["email", "sms", "phone"]
    purpose: Literal["service", "marketing"]
    state: Literal["granted", "revoked"]
    source: str = Field(min_length=1, max_length=100)
    text_shown: str | None = Field(default=None, max_length=5000)


class ReplyIn(Body):
    text: str = Field(min_length=1, max_length=100_000)
    channel: Literal["email", "sms", "chat"] | None = None
    client_id: str | None = Field(default=None, max_length=100)
    # The newest message the agent had seen when the draft began (see hub.replies).
    seen_interaction_id: int | None = None


class ReplyCheckIn(Body):
    channel: Literal["email", "sms", "chat"] | None = None
