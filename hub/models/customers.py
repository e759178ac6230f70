"""Customers and what is known of them: identities, merges, consents, blocks,
suppressions after erasure, and the figures' rollup of each customer."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.models.base import Base, Id, utcnow


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    company: Mapped[str | None] = mapped_column(String(200))
    tier: Mapped[str | None] = mapped_column(String(1), index=True)
    tier_manual: Mapped[bool] = mapped_column(Boolean, default=False)
    key_account_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL"), index=True
    )
    language: Mapped[str | None] = mapped_column(String(8))
    birthday: Mapped[date | None] = mapped_column(Date)
    revenue: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    is_prospect: Mapped[bool] = mapped_column(Boolean, default=False)
    tags: Mapped[list[str]] = mapped_column(default=list)
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    identities: Mapped[list[Identity]] = relationship(
        back_populates="customer", order_by="Identity.id"
    )


class Identity(Base):
    """An address a customer is reached at: e-mail, phone (E.164) or chat id."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(10))
    value: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="identities")


class CustomerMerge(Base):
    """What a merge moved, row by row, so that it can be undone exactly."""

    __tablename__ = "customer_merges"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    survivor_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    merged_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    moved: Mapped[dict[str, Any]] = mapped_column(default=dict)
    merged_by_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )
    merged_at: Mapped[datetime] = mapped_column(default=utcnow)
    undone_at: Mapped[datetime | None]
    undone_by_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )


class Consent(Base):
    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("customer_id", "channel", "purpose"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(10))
    purpose: Mapped[str] = mapped_column(String(12))
    state: Mapped[str] = mapped_column(String(24))
    source: Mapped[str | None] = mapped_column(String(100))
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Block(Base):
    """A reason never to contact an address, a number or a whole customer."""

    __tablename__ = "blocks"
    __table_args__ = (
        Index(None, "kind", "value", "lifted_at"),
        Index(None, "customer_id", "lifted_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    value: Mapped[str] = mapped_column(String(320))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(20))
    scope: Mapped[str] = mapped_column(String(10), default="all")
    note: Mapped[str | None] = mapped_column(String(500))
    created_by_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    lifted_at: Mapped[datetime | None]
    lifted_by_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )


class Suppression(Base):
    """An erased address, kept only as a keyed hash, so it is never marketed to again.

    `digest`: HMAC-SHA256 of `kind:normalised address` under a key derived from
    SECRET_KEY; `key_id` names that key, so entries made under an earlier
    SECRET_KEY can be told apart (they no longer match).
    """

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    key_id: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Erasure(Base):
    """That a customer's personal data was erased, when and by whom, and how much."""

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), unique=True
    )
    erased_at: Mapped[datetime] = mapped_column(default=utcnow)
    erased_by_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)


# --- Campaigns (`hub.campaigns`): saved segments and outbound campaigns ---
# No personal data here: recipients are customer ids, and the addresses live in
# the outbox rows and history entries, which the GDPR erasure covers.


class KpiCustomer(Base):
    """A counted customer (not merged away, not erased) as the data-quality figures see them.

    A rollup kept by database triggers (migration 0012) in the transaction of every change
    to a customer, their identities or an erasure, so the figures read one narrow row per
    customer instead of joining the identities; `hub.kpis.rollup` recomputes it from the
    raw tables, and the tests prove the two equal.
    """

    __tablename__ = "kpi_customers"
    __table_args__ = (
        Index(None, "name_key", "company_key", "tier", "id"),
        Index(None, "marked_email", "id"),
    )

    # The customer's own id: the rollup extends the customer's row, one to one.
    id: Mapped[int] = mapped_column(
        Id, ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    tier: Mapped[str | None] = mapped_column(String(1))
    has_email: Mapped[bool] = mapped_column(Boolean)
    has_phone: Mapped[bool] = mapped_column(Boolean)
    # An e-mail address with a dot or a +tag in its local part, or a capital: one that may
    # reach the same mailbox as another customer's (`hub.kpis.quality`).
    marked_email: Mapped[bool] = mapped_column(Boolean)
    name_key: Mapped[str] = mapped_column(String(200))  # lower(trim(name))
    company_key: Mapped[str] = mapped_column(String(200))  # lower(trim(company)), or ''
