"""A number too large for the database is bad input (422), not a server error.

The API takes ids and cursors as Python ints, which have no upper bound; the
database's BIGINT does. SQLite's driver refuses such a parameter with
`OverflowError` (bare, or wrapped in SQLAlchemy's `StatementError`), asyncpg
with a `DataError` saying "out of int64 range", wrapped too. This handler
answers those with 422 and lets every other database error stay the 500 it
is. A bare OverflowError elsewhere in a request comes from input too large as
well (a number no computation of ours makes), so it is 422 alike.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

OUT_OF_RANGE_MARKS = ("out of int64 range", "int too large to convert", "value out of range")


def is_out_of_range(error: Exception) -> bool:
    if isinstance(error, OverflowError):
        return True
    cause = getattr(error, "orig", None) or error.__cause__
    return isinstance(cause, OverflowError) or any(
        mark in str(cause) for mark in OUT_OF_RANGE_MARKS
    )


async def out_of_range_answer(_request: Request, error: Exception) -> JSONResponse:
    if not is_out_of_range(error):
        raise error
    return JSONResponse(
        {"detail": "a number is out of range (ids and numbers stay below 2**63)"}, status_code=422
    )
