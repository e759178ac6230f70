"""Agents, their API tokens, routing profiles and presence, the audit trail, and
the leases of background work."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.models.base import Base, Id, utcnow


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8), default="en")
    languages: Mapped[list[str]] = mapped_column(default=list)
    teams: Mapped[list[str]] = mapped_column(default=list)
    presence: Mapped[str] = mapped_column(String(10), default="offline")
    presence_changed_at: Mapped[datetime | None]
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Raised when the password changes or the agent is deactivated: a session
    # cookie carries the epoch it was signed in under (hub.session_guard).
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    agent: Mapped[Agent] = relationship(lazy="joined")


class AgentRouting(Base):
    """What routing knows of an agent beyond the core's columns.

    `tiers`: the customer tiers the agent serves (empty: all); `capacity`:
    conversations at once per channel, over the rules file's defaults; `deputy`:
    who stands in for the agent's key accounts. No row means all defaults.
    """

    __tablename__ = "agent_routing"

    agent_id: Mapped[int] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    tiers: Mapped[list[str]] = mapped_column(default=list)
    capacity: Mapped[dict[str, Any]] = mapped_column(default=dict)
    deputy_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )
    last_assigned_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PresenceChange(Base):
    """An agent's presence from `at` on, one row per change (presence time is summed from it)."""

    __tablename__ = "presence_changes"
    __table_args__ = (Index(None, "agent_id", "at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(10))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "entity", "entity_id", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(50))
    entity: Mapped[str] = mapped_column(String(30))
    entity_id: Mapped[int | None] = mapped_column(BigInteger)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Lease(Base):
    """Who runs the background work `name`, until when (renewed while it runs)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime]


# --- Figures (`hub.kpis`): the presence log, and the indexes the dashboard's aggregates use ---
