"""Importing customers from CSV: upsert every row, and say why a row was refused.

The file is UTF-8, with or without a byte-order mark, and has a header row;
its delimiter is `,` or `;` (German Excel writes `;`), told apart by the header,
whose column names contain neither. Column names are case-insensitive and are
checked before anything is written: an unknown one stops the whole import.

Each row is its own transaction, so a bad row is never half-written and never
stops the rows after it. A row matches an existing customer by its e-mail
identity, else by its phone identity (E.164 in the settings' default region),
and otherwise creates one. A row needs an e-mail or a phone; one whose e-mail
and phone belong to two different customers is refused (merge them first).
An empty cell leaves that field as it is. An address that was erased on request
is imported, with marketing to it blocked (`hub.privacy.reimport`).

The file is read twice and never held in memory: once to check its header and
encoding and to count the rows for the progress total, once to import them.
Line numbers are the file's own (the header is line 1), so a row whose quoted
cell spans lines is reported at the line it starts on.
"""

from __future__ import annotations

import asyncio
import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.agents import find_agent_by_email
from hub.context import Hub
from hub.customers import create_customer, update_customer
from hub.errors import ConflictError, HubError, InvalidInputError
from hub.identity import find_customer_by_identity, normalise_email, normalise_phone
from hub.models import Customer
from hub.privacy.reimport import do_block_suppressed

Progress = Callable[[int, int], None]

MAX_TEXT = 200
MAX_INTEGER_DIGITS = 12  # revenue is NUMERIC(14, 2)
# Grouped thousands with one separator, or bare digits; then at most two decimals.
# Revenue has at most two decimals, so a lone separator before three digits
# (`1.234`, `1,234`) can only group thousands.
REVENUE = re.compile(
    r"(?P<whole>\d{1,3}(?:(?P<group>[.,])\d{3})(?:(?P=group)\d{3})*|\d+)"
    r"(?:(?P<point>[.,])(?P<fraction>\d{1,2}))?"
)
LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{2,4})?")
TAG_SEPARATORS = re.compile(r"[;|]")


@dataclass(frozen=True, slots=True)
class RejectedRow:
    line: int
    reason: str


@dataclass(slots=True)
class ImportReport:
    created: int = 0
    updated: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    # Lines whose address was erased earlier: imported, marketing blocked (`hub.privacy`).
    suppressed: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Row:
    """One data row, parsed and checked as far as that is possible without the database."""

    fields: dict[str, Any]
    email: str | None
    phone: str | None
    key_account: str | None


@dataclass(frozen=True, slots=True)
class Layout:
    delimiter: str
    columns: tuple[str, ...]
    rows: int


async def import_customers(hub: Hub, path: Path, progress: Progress) -> ImportReport:
    """Upsert every row of the CSV file; calls `progress(done, total)` after each row."""
    layout = await asyncio.to_thread(read_layout, path)
    report = ImportReport()
    progress(0, layout.rows)
    for done, (line, cells) in enumerate(data_rows(path, layout), start=1):
        await import_row(hub, report, line, layout.columns, cells)
        progress(done, layout.rows)
    return report


async def import_row(
    hub: Hub, report: ImportReport, line: int, columns: tuple[str, ...], cells: list[str]
) -> None:
    """Upsert one row in a transaction of its own, counting it in the report."""
    region = hub.settings.default_region
    try:
        row = parse_row(columns, cells, region)
        async with hub.work() as work:
            customer, created = await upsert(work.session, row, region)
            event = "customer.created" if created else "customer.updated"
            work.emit(event, customer_id=customer.id)
            addresses = [("email", row.email), ("phone", row.phone)]
            key = hub.policy.suppression_key or b""
            blocked = await do_block_suppressed(
                work, key, [(kind, value) for kind, value in addresses if value], region
            )
    except HubError as error:
        report.rejected.append(RejectedRow(line, error.message))
    except IntegrityError:
        reason = "changed by someone else during the import; import it again"
        report.rejected.append(RejectedRow(line, reason))
    else:
        if blocked:
            report.suppressed.append(line)
        if created:
            report.created += 1
        else:
            report.updated += 1


# -- reading the file ------------------------------------------------------


def read_layout(path: Path) -> Layout:
    """Check the header and the encoding, and count the data rows (one pass, nothing kept)."""
    delimiter = sniff_delimiter(path)
    records = read_records(path, delimiter)
    header = next(records, None)
    if header is None:
        raise InvalidInputError(f"{path.name} is empty; it needs a header row", field="file")
    columns = check_header(header[1])
    rows = sum(1 for _ in records)
    return Layout(delimiter, columns, rows)


def sniff_delimiter(path: Path) -> str:
    """`;` when the header holds more semicolons than commas, else `,`."""
    with path.open("rb") as file:
        header = next(decode_lines(path, file), "")
    return ";" if header.count(";") > header.count(",") else ","


def read_records(path: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Each non-blank record with the line it starts on, streamed from the file."""
    with path.open("rb") as file:
        reader = csv.reader(decode_lines(path, file), delimiter=delimiter)
        line = 1
        try:
            for cells in reader:
                if any(cell.strip() for cell in cells):
                    yield line, cells
                line = reader.line_num + 1
        except csv.Error as error:
            raise InvalidInputError(f"line {line}: {error}", field="file") from None


def decode_lines(path: Path, file: BinaryIO) -> Iterator[str]:
    """The file's lines as text, line by line, so that a wrong encoding names its line."""
    for number, raw in enumerate(file, start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise InvalidInputError(
                f"{path.name} is not UTF-8 text (line {number}); save it as 'CSV UTF-8'",
                field="file",
            ) from None


def check_header(header: list[str]) -> tuple[str, ...]:
    """The header's column names, normalised; unknown, unnamed or repeated ones are errors."""
    columns = tuple(_column_name(cell) for cell in header)
    for position, column in enumerate(columns, start=1):
        if not column:
            raise InvalidInputError(f"column {position} of the header has no name", field="file")
    unknown = [column for column in columns if column not in COLUMNS]
    if unknown:
        raise InvalidInputError(
            f"unknown column {', '.join(map(repr, unknown))}; the columns are {', '.join(COLUMNS)}",
            field="file",
        )
    repeated = sorted({column for column in columns if columns.count(column) > 1})
    if repeated:
        raise InvalidInputError(f"column {repeated[0]!r} appears twice", field="file")
    if "email" not in columns and "phone" not in columns:
        raise InvalidInputError("the file needs an email or a phone column", field="file")
    return columns


def _column_name(cell: str) -> str:
    return re.sub(r"[\s-]+", "_", cell.strip().casefold())


def data_rows(path: Path, layout: Layout) -> Iterator[tuple[int, list[str]]]:
    """Each data row's cells with the line it starts on."""
    records = read_records(path, layout.delimiter)
    next(records, None)  # the header, checked by read_layout
    return records


# -- parsing a row -----------------------------------------------------------


def parse_row(columns: tuple[str, ...], cells: list[str], region: str) -> Row:
    """Parse every non-empty cell; all problems of the row are reported together."""
    if len(cells) > len(columns):
        raise InvalidInputError(f"the row has {len(cells)} cells, the header {len(columns)}")
    values: dict[str, Any] = {}
    problems: list[str] = []
    for column, cell in zip(columns, cells, strict=False):
        if cell.strip():
            try:
                values[column] = PARSERS[column](cell.strip(), region)
            except InvalidInputError as error:
                problems.append(error.message)
    if "email" not in values and "phone" not in values and not problems:
        problems.append("a row needs an e-mail or a phone")
    if problems:
        raise InvalidInputError("; ".join(problems))
    return Row(
        fields={name: value for name, value in values.items() if name in PROFILE_COLUMNS},
        email=values.get("email"),
        phone=values.get("phone"),
        key_account=values.get("key_account"),
    )


def parse_text(column: str) -> Callable[[str, str], str]:
    def parse(cell: str, _region: str) -> str:
        if len(cell) > MAX_TEXT:
            raise InvalidInputError(f"{column} is longer than {MAX_TEXT} characters")
        return cell

    return parse


def parse_tier(cell: str, _region: str) -> str:
    tier = cell.upper()
    if tier not in ("A", "B", "C"):
        raise InvalidInputError(f"unknown tier {cell!r}: use A, B, C or leave it empty")
    return tier


def parse_revenue(cell: str, _region: str) -> Decimal:
    """`1234.50`, `1.234,50`, `1,234.50`, `1234,5` or `1.234`; a trailing `€` is allowed."""
    compact = re.sub(r"\s", "", cell).removesuffix("€").removesuffix("EUR")
    match = REVENUE.fullmatch(compact)
    if match is None or (match["group"] and match["group"] == match["point"]):
        raise InvalidInputError(f"bad revenue {cell!r}: write 1234.50 or 1.234,50")
    whole = match["whole"].replace(".", "").replace(",", "")
    if len(whole.lstrip("0")) > MAX_INTEGER_DIGITS:
        raise InvalidInputError(f"bad revenue {cell!r}: too large")
    return Decimal(f"{whole}.{(match['fraction'] or '').ljust(2, '0')}")


def parse_language(cell: str, _region: str) -> str:
    language = cell.casefold().replace("_", "-")
    if LANGUAGE.fullmatch(language) is None:
        raise InvalidInputError(f"unknown language {cell!r}: use a code such as de or en")
    return language


def parse_birthday(cell: str, _region: str) -> date:
    try:
        birthday = date.fromisoformat(cell)
    except ValueError:
        raise InvalidInputError(f"bad date {cell!r}: write the birthday as 1980-12-31") from None
    if birthday > date.today():
        raise InvalidInputError(f"bad date {cell!r}: a birthday cannot be in the future")
    return birthday


def parse_tags(cell: str, _region: str) -> list[str]:
    tags = (tag.strip() for tag in TAG_SEPARATORS.split(cell))
    return list(dict.fromkeys(tag for tag in tags if tag))


def parse_email(cell: str, _region: str) -> str:
    return normalise_email(cell)


def parse_key_account(cell: str, _region: str) -> str:
    return cell.casefold()


PARSERS: dict[str, Callable[[str, str], Any]] = {
    "name": parse_text("name"),
    "company": parse_text("company"),
    "email": parse_email,
    "phone": normalise_phone,
    "tier": parse_tier,
    "revenue": parse_revenue,
    "language": parse_language,
    "birthday": parse_birthday,
    "key_account": parse_key_account,
    "tags": parse_tags,
}
COLUMNS: tuple[str, ...] = tuple(PARSERS)
PROFILE_COLUMNS = ("name", "company", "tier", "revenue", "language", "birthday", "tags")


# -- writing a row -----------------------------------------------------------


async def upsert(session: AsyncSession, row: Row, region: str) -> tuple[Customer, bool]:
    """Create or update the row's customer; returns it, and whether it is new."""
    fields = dict(row.fields)
    if row.key_account is not None:
        fields["key_account_agent_id"] = await get_key_account_id(session, row.key_account)
    by_email = await _owner(session, "email", row.email)
    by_phone = await _owner(session, "phone", row.phone)
    check_same_customer(row, by_email, by_phone)
    customer = by_email or by_phone
    emails = [row.email] if row.email and by_email is None else []
    phones = [row.phone] if row.phone and by_phone is None else []
    if customer is None:
        return await create_customer(session, None, region, fields, emails, phones), True
    await update_customer(session, None, region, customer, fields, emails, phones)
    return customer, False


async def get_key_account_id(session: AsyncSession, email: str) -> int:
    agent = await find_agent_by_email(session, email)
    if agent is None or not agent.is_active:
        raise InvalidInputError(f"unknown key account {email!r}: no active agent has that e-mail")
    return agent.id


async def _owner(session: AsyncSession, kind: str, value: str | None) -> Customer | None:
    return None if value is None else await find_customer_by_identity(session, kind, value)


def check_same_customer(row: Row, by_email: Customer | None, by_phone: Customer | None) -> None:
    if by_email is not None and by_phone is not None and by_email.id != by_phone.id:
        raise ConflictError(
            f"e-mail {row.email} belongs to customer {by_email.id} and phone {row.phone} "
            f"to customer {by_phone.id}; merge the two first"
        )
