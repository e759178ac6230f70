"""Blocks: reasons never to contact an address, a number, or a whole customer.

A block on an address or number holds whoever owns it now or later; a block on
a customer holds on every channel. Scope `all` stops every message, scope
`marketing` only marketing. Blocks are never deleted: lifting one stamps who
and when, and is audited, so the history of a block stays provable.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import record
from hub.context import Work
from hub.errors import ConflictError, InvalidInputError, NotFoundError
from hub.gate import ADDRESS_KIND
from hub.identity import normalise_identity
from hub.models import Block, Customer, utcnow

REASONS = ("unsubscribe", "hard_bounce", "sms_stop", "legal", "do_not_contact", "manual")
SCOPES = ("marketing", "all")
KINDS = ("email", "phone", "customer")


def block_view(block: Block) -> dict[str, Any]:
    return {
        "id": block.id,
        "kind": block.kind,
        "value": block.value,
        "customer_id": block.customer_id,
        "reason": block.reason,
        "scope": block.scope,
        "note": block.note,
        "created_by_agent_id": block.created_by_agent_id,
        "created_at": block.created_at,
        "lifted_at": block.lifted_at,
        "lifted_by_agent_id": block.lifted_by_agent_id,
    }


async def check_block_target(session: AsyncSession, kind: str, value: str, region: str) -> str:
    """The normalised address, number or customer id a block is for; raises when invalid."""
    if kind not in KINDS:
        raise InvalidInputError(f"kind must be one of {', '.join(KINDS)}", field="kind")
    if kind != "customer":
        return normalise_identity(kind, value, region)
    if not value.isdigit() or await session.get(Customer, int(value)) is None:
        raise InvalidInputError(f"no customer {value}", field="value")
    return value


async def do_add_block(
    work: Work,
    actor_id: int | None,
    kind: str,
    value: str,
    reason: str,
    region: str,
    scope: str = "all",
    note: str | None = None,
) -> Block:
    """Block a target; an identical active block is returned instead of a second one."""
    if reason not in REASONS:
        raise InvalidInputError(f"reason must be one of {', '.join(REASONS)}", field="reason")
    if scope not in SCOPES:
        raise InvalidInputError(f"scope must be one of {', '.join(SCOPES)}", field="scope")
    target = await check_block_target(work.session, kind, value, region)
    existing = await find_active_block(work.session, kind, target, reason, scope)
    if existing is not None:
        return existing
    block = Block(
        kind=kind,
        value=target,
        reason=reason,
        scope=scope,
        note=note,
        customer_id=int(target) if kind == "customer" else None,
        created_by_agent_id=actor_id,
    )
    work.session.add(block)
    await work.session.flush()
    record(
        work.session,
        actor_id,
        "block.added",
        "block",
        block.id,
        kind=kind,
        value=target,
        reason=reason,
        scope=scope,
    )
    work.emit("block.added", block_id=block.id, kind=kind, reason=reason, scope=scope)
    return block


async def block_refused_recipient(
    work: Work, channel: str, recipient: str, reason: str, region: str, error: str | None
) -> None:
    """Block a recipient a provider refused to deliver to (Twilio's 21610, a mailbox that
    does not exist), in the transaction that records the refusal."""
    if channel not in ADDRESS_KIND:
        return
    await do_add_block(
        work,
        None,
        ADDRESS_KIND[channel],
        recipient,
        reason,
        region,
        note=f"refused by the provider: {error}",
    )


async def find_active_block(
    session: AsyncSession, kind: str, value: str, reason: str, scope: str
) -> Block | None:
    statement = select(Block).where(
        Block.kind == kind,
        Block.value == value,
        Block.lifted_at.is_(None),
        Block.reason == reason,
        Block.scope == scope,
    )
    return (await session.scalars(statement)).first()


async def do_lift_block(work: Work, actor_id: int | None, block_id: int) -> Block:
    block = await work.session.get(Block, block_id)
    if block is None:
        raise NotFoundError(f"no block {block_id}")
    if block.lifted_at is not None:
        raise ConflictError(f"block {block_id} was lifted already")
    block.lifted_at = utcnow()
    block.lifted_by_agent_id = actor_id
    record(
        work.session,
        actor_id,
        "block.lifted",
        "block",
        block.id,
        kind=block.kind,
        value=block.value,
        reason=block.reason,
    )
    work.emit("block.lifted", block_id=block.id, kind=block.kind, reason=block.reason)
    return block


async def list_blocks(
    session: AsyncSession,
    limit: int,
    before: int | None = None,
    kind: str | None = None,
    value: str | None = None,
    customer_id: int | None = None,
    active: bool = True,
) -> tuple[list[Block], int | None]:
    statement = select(Block)
    if kind is not None:
        statement = statement.where(Block.kind == kind)
    if value is not None:
        statement = statement.where(Block.value == value)
    if customer_id is not None:
        statement = statement.where(Block.customer_id == customer_id)
    if active:
        statement = statement.where(Block.lifted_at.is_(None))
    if before is not None:
        statement = statement.where(Block.id < before)
    rows = list(await session.scalars(statement.order_by(Block.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    return rows[:limit], rows[limit - 1].id if more else None
