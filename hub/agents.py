"""Agents, their passwords and API tokens.

Passwords are hashed with argon2. An API token is 32 random bytes shown once;
only its SHA-256 is stored (a token has far more entropy than a password, so a
fast hash is safe and keeps the lookup an index hit).
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.context import Hub
from hub.errors import ConflictError, InvalidInputError, NotFoundError
from hub.identity import normalise_email
from hub.models import Agent, ApiToken, utcnow

Role = Literal["agent", "supervisor", "admin"]
ROLES: tuple[str, ...] = ("agent", "supervisor", "admin")
PRESENCES: tuple[str, ...] = ("online", "away", "offline")
TOKEN_PREFIX = "ohk_"  # noqa: S105 - a marker, not a secret
MIN_PASSWORD = 10

# Module-level so that tests can swap in cheaper parameters.
password_hasher = PasswordHasher()
# Verifying against this keeps an unknown e-mail as slow as a wrong password.
_DUMMY_HASH = password_hasher.hash("omnihub-timing-equaliser")


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidInputError(
            f"a password has at least {MIN_PASSWORD} characters", field="password"
        )
    return password_hasher.hash(password)


def is_password_correct(password_hash: str | None, password: str) -> bool:
    try:
        return password_hasher.verify(password_hash or _DUMMY_HASH, password) and bool(
            password_hash
        )
    except (VerificationError, InvalidHashError):
        return False


def has_role(agent: Agent, needed: Role) -> bool:
    return ROLES.index(agent.role) >= ROLES.index(needed)


async def find_agent_by_email(session: AsyncSession, email: str) -> Agent | None:
    statement = select(Agent).where(Agent.email == email.strip().casefold())
    return (await session.scalars(statement)).first()


async def get_agent(session: AsyncSession, email: str) -> Agent:
    agent = await find_agent_by_email(session, email)
    if agent is None:
        raise NotFoundError(f"no agent with e-mail {email}")
    return agent


async def create_agent(
    session: AsyncSession,
    email: str,
    name: str,
    role: str,
    password: str,
    language: str = "en",
) -> Agent:
    if role not in ROLES:
        raise InvalidInputError(f"role must be one of {', '.join(ROLES)}", field="role")
    if not name.strip():
        raise InvalidInputError("an agent needs a name", field="name")
    address = normalise_email(email)
    if await find_agent_by_email(session, address) is not None:
        raise ConflictError(f"an agent with e-mail {address} exists already", field="email")
    agent = Agent(
        email=address,
        name=name.strip(),
        role=role,
        password_hash=hash_password(password),
        language=language,
    )
    session.add(agent)
    await session.flush()
    return agent


async def authenticate(session: AsyncSession, email: str, password: str) -> Agent | None:
    agent = await find_agent_by_email(session, email)
    valid = is_password_correct(agent.password_hash if agent else None, password)
    return agent if valid and agent is not None and agent.is_active else None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(session: AsyncSession, agent: Agent) -> str:
    """A new API token for the agent; the plain token is returned once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(agent_id=agent.id, token_hash=hash_token(token), prefix=token[:12]))
    await session.flush()
    return token


async def find_agent_by_token(session: AsyncSession, token: str) -> Agent | None:
    statement = select(ApiToken).where(
        ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None)
    )
    api_token = (await session.scalars(statement)).first()
    if api_token is None or not api_token.agent.is_active:
        return None
    return api_token.agent


async def end_sessions(session: AsyncSession, agent: Agent) -> int:
    """End every session and API token of the agent; how many tokens were revoked.

    Sessions end because their cookie carries an older epoch (`hub.session_guard`)."""
    agent.session_epoch = (agent.session_epoch or 0) + 1
    now = utcnow()
    tokens = await session.scalars(
        select(ApiToken).where(ApiToken.agent_id == agent.id, ApiToken.revoked_at.is_(None))
    )
    revoked = 0
    for token in tokens:
        token.revoked_at = now
        revoked += 1
    await session.flush()
    return revoked


async def do_change_password(session: AsyncSession, agent: Agent, password: str) -> int:
    """Set a new password and end the agent's other sessions and tokens (count revoked)."""
    agent.password_hash = hash_password(password)
    return await end_sessions(session, agent)


async def do_deactivate(session: AsyncSession, agent: Agent) -> int:
    """Deactivate the agent: no sign-in, no session, no token works any more."""
    agent.is_active = False
    agent.presence = "offline"
    agent.presence_changed_at = utcnow()
    return await end_sessions(session, agent)


def stamp_presence(agent: Agent, status: str) -> None:
    if status not in PRESENCES:
        raise InvalidInputError(f"status must be one of {', '.join(PRESENCES)}", field="status")
    agent.presence = status
    agent.presence_changed_at = utcnow()


async def has_agents_online(hub: Hub) -> bool:
    """Whether any active agent is online now (the chat widget's "leave a message" switch)."""
    statement = select(exists().where(Agent.presence == "online", Agent.is_active.is_(True)))
    async with hub.sessions() as session:
        return bool(await session.scalar(statement))
