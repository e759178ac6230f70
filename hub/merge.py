"""Merging two records of one customer, and undoing a wrong merge.

A merge moves every identity, conversation, interaction, complaint, block and
outbox row of the other customer onto the survivor, fills the survivor's empty
profile fields from the other, and keeps the other customer as a tombstone
(`merged_into_id`). It records exactly which rows it moved and which fields it
changed, so that `do_undo_merge` can put everything back; rows that arrived
after the merge stay with the survivor. Consents are per person: where both
have one for the same channel and purpose, the stricter state wins, and the
survivor's replaced state is recorded for the undo.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import record
from hub.context import Work
from hub.customers import get_customer
from hub.errors import ConflictError, InvalidInputError, NotFoundError
from hub.models import (
    Block,
    Complaint,
    Consent,
    Conversation,
    Customer,
    CustomerMerge,
    Identity,
    Interaction,
    OutboxMessage,
    utcnow,
)

MOVABLE = {
    "identities": Identity,
    "conversations": Conversation,
    "interactions": Interaction,
    "complaints": Complaint,
    "blocks": Block,
    "outbox": OutboxMessage,
}
FILLABLE = ("name", "company", "tier", "key_account_agent_id", "language", "birthday")
# The stricter a consent state, the higher its rank.
CONSENT_RANK = {"granted": 0, "pending_confirmation": 1, "revoked": 2}


async def do_merge(
    work: Work, actor_id: int | None, survivor_id: int, other_id: int
) -> CustomerMerge:
    if survivor_id == other_id:
        raise InvalidInputError("a customer cannot be merged with itself", field="other_id")
    survivor = await get_customer(work.session, survivor_id)
    other = await _get_other(work.session, other_id)
    if survivor.merged_into_id is not None:
        raise ConflictError(f"customer {survivor_id} was merged into {survivor.merged_into_id}")
    moved = {
        name: await _move_rows(work.session, model, other_id, survivor_id)
        for name, model in MOVABLE.items()
    }
    moved["consents"], moved["replaced_consents"] = await _merge_consents(
        work.session, other_id, survivor_id
    )
    moved["fields"] = _fill_profile(survivor, other)
    other.merged_into_id = survivor.id
    merge = CustomerMerge(
        survivor_id=survivor.id, merged_id=other.id, moved=moved, merged_by_agent_id=actor_id
    )
    work.session.add(merge)
    await work.session.flush()
    record(
        work.session,
        actor_id,
        "customer.merged",
        "customer",
        survivor.id,
        other_id=other.id,
        merge_id=merge.id,
        moved={name: len(ids) for name, ids in moved.items() if isinstance(ids, list)},
    )
    work.emit("customer.merged", customer_id=survivor.id, other_id=other.id, merge_id=merge.id)
    return merge


async def _get_other(session: AsyncSession, other_id: int) -> Customer:
    other = await session.get(Customer, other_id)
    if other is None:
        raise NotFoundError(f"no customer {other_id}", field="other_id")
    if other.merged_into_id is not None:
        raise ConflictError(f"customer {other_id} was merged into {other.merged_into_id} already")
    return other


async def _move_rows(session: AsyncSession, model: Any, from_id: int, to_id: int) -> list[int]:
    ids = list(await session.scalars(select(model.id).where(model.customer_id == from_id)))
    await _reassign(session, model, ids, from_id, to_id)
    return ids


async def _reassign(
    session: AsyncSession, model: Any, ids: list[int], from_id: int, to_id: int
) -> None:
    """Move rows to another customer; a move is not an edit, so `updated_at` stays."""
    if not ids:
        return
    # A Core UPDATE of the table: the ORM's would stamp `updated_at` anew.
    table = model.__table__
    values: dict[str, Any] = {"customer_id": to_id}
    if "updated_at" in table.c:
        values["updated_at"] = table.c.updated_at
    await session.execute(
        update(table).where(table.c.id.in_(ids), table.c.customer_id == from_id).values(**values)
    )


async def _merge_consents(
    session: AsyncSession, other_id: int, survivor_id: int
) -> tuple[list[int], list[dict[str, Any]]]:
    theirs = list(await session.scalars(select(Consent).where(Consent.customer_id == other_id)))
    ours = {
        (c.channel, c.purpose): c
        for c in await session.scalars(select(Consent).where(Consent.customer_id == survivor_id))
    }
    moved, replaced = [], []
    for consent in theirs:
        mine = ours.get((consent.channel, consent.purpose))
        if mine is None:
            moved.append(consent.id)
        elif CONSENT_RANK.get(consent.state, 0) > CONSENT_RANK.get(mine.state, 0):
            replaced.append(_consent_state(mine))
            mine.state, mine.source, mine.evidence = consent.state, consent.source, consent.evidence
    await _reassign(session, Consent, moved, other_id, survivor_id)
    return moved, replaced


def _consent_state(consent: Consent) -> dict[str, Any]:
    return {
        "id": consent.id,
        "state": consent.state,
        "source": consent.source,
        "evidence": consent.evidence,
        "updated_at": consent.updated_at.isoformat(),
    }


def _fill_profile(survivor: Customer, other: Customer) -> dict[str, Any]:
    """Fill the survivor's empty fields from the other; returns the old values."""
    before: dict[str, Any] = {}
    for name in FILLABLE:
        if getattr(survivor, name) in (None, "") and getattr(other, name) not in (None, ""):
            before[name] = _jsonable(getattr(survivor, name))
            setattr(survivor, name, getattr(other, name))
    if other.tags:
        before["tags"] = list(survivor.tags)
        survivor.tags = sorted(set(survivor.tags) | set(other.tags))
    if other.revenue:
        before["revenue"] = str(survivor.revenue)
        survivor.revenue = survivor.revenue + other.revenue
    if survivor.is_prospect and not other.is_prospect:
        before["is_prospect"] = True
        survivor.is_prospect = False
    return before


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


async def do_undo_merge(work: Work, actor_id: int | None, merge_id: int) -> CustomerMerge:
    merge = await work.session.get(CustomerMerge, merge_id)
    if merge is None:
        raise NotFoundError(f"no merge {merge_id}")
    if merge.undone_at is not None:
        raise ConflictError(f"merge {merge_id} was undone already")
    survivor = await get_customer(work.session, merge.survivor_id)
    other = await get_customer(work.session, merge.merged_id)
    for name, model in (*MOVABLE.items(), ("consents", Consent)):
        await _reassign(work.session, model, merge.moved.get(name, []), survivor.id, other.id)
    await _restore_consents(work.session, merge.moved.get("replaced_consents", []))
    _restore_profile(survivor, other, merge.moved.get("fields", {}))
    other.merged_into_id = None
    merge.undone_at = utcnow()
    merge.undone_by_agent_id = actor_id
    record(
        work.session,
        actor_id,
        "customer.merge_undone",
        "customer",
        survivor.id,
        other_id=other.id,
        merge_id=merge.id,
    )
    work.emit("customer.unmerged", customer_id=survivor.id, other_id=other.id, merge_id=merge.id)
    return merge


async def _restore_consents(session: AsyncSession, replaced: list[dict[str, Any]]) -> None:
    for old in replaced:
        consent = await session.get(Consent, old["id"])
        if consent is not None:
            consent.state, consent.source, consent.evidence = (
                old["state"],
                old["source"],
                old["evidence"],
            )
            consent.updated_at = datetime.fromisoformat(old["updated_at"])


def _restore_profile(survivor: Customer, other: Customer, before: dict[str, Any]) -> None:
    for name, value in before.items():
        if name == "birthday" and value is not None:
            value = date.fromisoformat(value)
        elif name == "revenue":
            value = Decimal(value)
        setattr(survivor, name, value)
