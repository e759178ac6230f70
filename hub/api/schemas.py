"""The API's request bodies: checked at the edge, so bad input is a 422 naming the field."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.values import Channel

Short = Field(default=None, max_length=200)


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
    occurred_at: datetime | None = None
    complaint: bool = False

    @model_validator(mode="after")
    def _one_identity(self) -> InteractionIn:
        if not self.email and not self.phone:
            raise ValueError("give the customer's email or phone")
        if self.occurred_at is not None and self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at needs a time zone, e.g. 2026-11-22T10:00:00+01:00")
        return self


class ComplaintIn(Body):
    customer_id: int
    subject: str = Field(min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=100_000)
    severity: Literal["low", "normal", "high", "critical"] = "normal"
    due_at: datetime | None = None
    conversation_ids: list[int] = Field(default_factory=list, max_length=100)


class ComplaintPatch(Body):
    subject: str | None = Field(default=None, min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=100_000)
    status: Literal["open", "in_progress", "resolved"] | None = None
    severity: Literal["low", "normal", "high", "critical"] | None = None
    due_at: datetime | None = None
    conversation_ids: list[int] | None = Field(default=None, max_length=100)


class PresenceIn(Body):
    status: Literal["online", "away", "offline"]


class NoteIn(Body):
    text: str = Field(min_length=1, max_length=100_000)


class AssignIn(Body):
    assignee_id: int | None = None
    queue: str | None = Field(default=None, max_length=50)


class StatusIn(Body):
    status: Literal["open", "closed"] = "closed"
