"""Suppression: erased addresses, kept only as keyed hashes, never marketed to again.

An erasure removes the address itself from every table, yet the hub must still
recognise it when a CSV import or a campaign brings it back (GDPR Art. 21(3):
an objection to direct marketing outlives the data). So the erasure keeps
HMAC-SHA256(key, "kind:normalised address"), nothing else.

Why keyed, not a plain SHA-256: addresses are a small, guessable space. Every
German mobile number is a few billion SHA-256 computations, minutes on a laptop,
and lists of e-mail addresses are traded; a plain hash would keep the address
in all but name. The key is derived from OMNIHUB_SECRET_KEY and lives outside the
database, so a copy of the database alone reveals nothing. The price: an entry
only matches under the key it was made with. Each entry records its `key_id`;
`count_unmatchable` finds entries made under another SECRET_KEY (after a key
rotation, or a development hub without a fixed key), and the hub logs a warning
at start when there are any.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from collections.abc import Iterable

from sqlalchemy import ColumnElement, String, bindparam, delete, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from hub.db import insert_for
from hub.models import Suppression

KEY_LABEL = b"omnihub.suppression.v1"
KINDS = ("email", "phone")


@functools.lru_cache(maxsize=4)  # asked for every message gated (`Hub.policy`)
def derive_key(secret_key: str) -> bytes:
    """The suppression key: SECRET_KEY through HMAC, so the secret itself is never reused raw."""
    return hmac.new(secret_key.encode(), KEY_LABEL, hashlib.sha256).digest()


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def address_kind(address: str) -> str:
    return "email" if "@" in address else "phone"


def digest(key: bytes, kind: str, address: str) -> str:
    """The hash of a normalised address (e-mail case-folded, phone in E.164)."""
    return _digest(hmac.new(key, digestmod=hashlib.sha256), kind, address)


def _digest(keyed: hmac.HMAC, kind: str, address: str) -> str:
    # Copying a keyed HMAC skips deriving the key's pads again: the gate hashes
    # every recipient of a campaign.
    value = address.strip().casefold() if kind == "email" else address.strip()
    mac = keyed.copy()
    mac.update(f"{kind}:{value}".encode())
    return mac.hexdigest()


async def do_suppress(
    session: AsyncSession, key: bytes, kind: str, address: str, reason: str = "erased"
) -> None:
    """Keep the address's hash; suppressing it twice keeps one entry."""
    if kind not in KINDS:
        raise ValueError(f"only {', '.join(KINDS)} addresses are suppressed, not {kind}")
    await session.execute(
        insert_for(session)(Suppression)
        .values(digest=digest(key, kind, address), kind=kind, key_id=key_id(key), reason=reason)
        .on_conflict_do_nothing(index_elements=["digest"])
    )


async def do_lift_suppression(session: AsyncSession, key: bytes, kind: str, address: str) -> bool:
    """Forget a suppression (the person asked for marketing again); False if there was none."""
    result = await session.execute(
        delete(Suppression).where(Suppression.digest == digest(key, kind, address))
    )
    return bool(result.rowcount)


async def is_suppressed(session: AsyncSession, address: str, *, key: bytes) -> bool:
    """Was this normalised e-mail address or E.164 number erased and suppressed?"""
    kind = address_kind(address)
    return bool(await find_suppressed(session, [(kind, address)], key=key))


async def find_suppressed(
    session: AsyncSession, addresses: Iterable[tuple[str, str]], *, key: bytes
) -> set[tuple[str, str]]:
    """Which of these (kind, normalised address) pairs are suppressed, in one query."""
    keyed = hmac.new(key, digestmod=hashlib.sha256)
    by_digest = {_digest(keyed, kind, address): (kind, address) for kind, address in addresses}
    if not by_digest:
        return set()
    found = await session.scalars(
        select(Suppression.digest).where(_digest_in(session, sorted(by_digest)))
    )
    return {by_digest[value] for value in found}


def _digest_in(session: AsyncSession, digests: list[str]) -> ColumnElement[bool]:
    """`digest IN digests`, the whole list bound as one parameter (no limit on its length)."""
    if session.get_bind().dialect.name == "postgresql":
        # IN (SELECT unnest(...)), not = ANY(...): a hash join, not every row against the array.
        array = bindparam("digests", digests, type_=ARRAY(String))
        return Suppression.digest.in_(select(func.unnest(array)))
    table = func.json_each(bindparam("digests", json.dumps(digests))).table_valued("value")
    return Suppression.digest.in_(select(table.c.value))


async def count_unmatchable(session: AsyncSession, key: bytes) -> int:
    """Entries made under another key: they no longer match any address."""
    statement = select(func.count()).where(Suppression.key_id != key_id(key))
    return int(await session.scalar(statement) or 0)
