"""The sweep: a person's values, found and blanked in tables erasure does not know.

Erasure knows the core's tables row by row (`hub.privacy.erasure`). Every other
table in the models, one a later feature adds included, is swept instead: each
text and JSON column is searched for the person's terms (names, addresses,
numbers, chat ids) and every occurrence becomes `[erased]`, leaving the rest of
the value (a status, an id, a template's own words) as it was. JSON is searched
both as written and with the `\\uXXXX` escapes a JSON encoder writes for
non-ASCII letters. Binary columns of unknown tables are not searched.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import JSON, ColumnElement, String, Table, Text, cast, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.privacy.subject import scrub


def is_text(column: Any) -> bool:
    return isinstance(column.type, String | JSON)


def _contains(column: Any, term: str) -> ColumnElement[bool]:
    if isinstance(column.type, JSON):
        text = func.lower(cast(column, Text))
        escaped = json.dumps(term.lower())[1:-1]
        forms = {term.lower(), escaped}
        return or_(*(text.contains(form, autoescape=True) for form in forms))
    return func.lower(column).contains(term.lower(), autoescape=True)


def mentioning(table: Table, terms: frozenset[str]) -> ColumnElement[bool] | None:
    """The rows of the table whose text or JSON holds one of the terms (None: it cannot)."""
    columns = [column for column in table.columns if is_text(column)]
    if not columns or not terms:
        return None
    return or_(*(_contains(column, term) for column in columns for term in terms))


async def sweep_table(session: AsyncSession, table: Table, terms: frozenset[str]) -> int:
    """Blank the terms in one table; returns how many rows changed."""
    keys = list(table.primary_key.columns)
    columns = [column for column in table.columns if is_text(column)]
    found = mentioning(table, terms)
    if not keys or found is None:
        return 0
    rows = (await session.execute(select(*keys, *columns).where(found))).mappings().all()
    changed = 0
    for row in rows:
        # SQL found the terms anywhere; only whole words are blanked (see `scrub`).
        scrubbed = {column.name: scrub(row[column.name], terms) for column in columns}
        values = {name: value for name, value in scrubbed.items() if value != row[name]}
        if values:
            where = [key == row[key.name] for key in keys]
            await session.execute(update(table).where(*where).values(**values))
            changed += 1
    return changed
