"""A figure is a table: named columns and rows of plain values, as JSON or as CSV.

JSON gives each row as an object keyed by column; CSV gives one figure as it
is (a header line, then the rows), or a whole area in long form, one line per
figure, row and column (`figure,row,column,value`), so an area is one
rectangular file however many figures it has. Durations are whole seconds;
shares are fractions from 0 to 1; a figure with nothing to measure is empty
(`null` in JSON, an empty cell in CSV), never zero.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

Value = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[str, ...]
    rows: list[tuple[Value, ...]] = field(default_factory=list)
    # The filters this figure honoured (the others do not apply to it).
    applied: tuple[str, ...] = ()

    def records(self) -> list[dict[str, Value]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def as_json(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "rows": self.records(),
            "filters": list(self.applied),
        }

    def find(self, **match: Value) -> dict[str, Value] | None:
        """The first row whose columns equal `match` (the page and the tests pick rows so)."""
        for record in self.records():
            if all(record.get(key) == value for key, value in match.items()):
                return record
        return None


def share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _cell(value: Value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _guard(text: str) -> str:
    # A cell that a spreadsheet would run as a formula (CSV injection) is quoted as text.
    return (
        "'" + text
        if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(text)
        else text
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _write(rows: Iterable[Sequence[Value]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow([_guard(_cell(value)) for value in row])
    return buffer.getvalue()


def render_table_csv(table: Table) -> str:
    return _write([table.columns, *table.rows])


def render_area_csv(tables: Sequence[Table]) -> str:
    lines: list[Sequence[Value]] = [("figure", "row", "column", "value")]
    for table in tables:
        for number, row in enumerate(table.rows, start=1):
            lines += [
                (table.name, number, column, value)
                for column, value in zip(table.columns, row, strict=True)
            ]
    return _write(lines)
