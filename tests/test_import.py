"""The customer import: upserts by e-mail and by phone, German Excel files, rejected rows."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from hub.agents import create_agent
from hub.context import Hub
from hub.customers import create_customer, get_card
from hub.errors import InvalidInputError
from hub.identity import find_customer_by_identity, normalise_identity
from hub.importer import ImportReport, import_customers, parse_revenue
from hub.models import Customer

KEY_ACCOUNT = "katrin.wagner@omnihub.test"


def write_csv(folder: Path, text: str, name: str = "customers.csv", bom: bool = False) -> Path:
    path = folder / name
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    return path


async def run_import(hub: Hub, path: Path) -> tuple[ImportReport, list[tuple[int, int]]]:
    calls: list[tuple[int, int]] = []
    report = await import_customers(hub, path, lambda done, total: calls.append((done, total)))
    return report, calls


async def card_of(hub: Hub, kind: str, raw: str) -> dict[str, Any]:
    async with hub.sessions() as session:
        value = normalise_identity(kind, raw, hub.settings.default_region)
        customer = await find_customer_by_identity(session, kind, value)
        assert customer is not None, f"no customer with {kind} {raw}"
        return await get_card(session, customer.id, 20)


async def count_customers(hub: Hub) -> int:
    async with hub.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Customer)) or 0)


async def add_customer(hub: Hub, name: str, emails: list[str], phones: list[str]) -> int:
    async with hub.work() as work:
        customer = await create_customer(
            work.session, None, hub.settings.default_region, {"name": name}, emails, phones
        )
        return customer.id


async def add_key_account(hub: Hub) -> int:
    async with hub.work() as work:
        agent = await create_agent(
            work.session, KEY_ACCOUNT, "Katrin Wagner", "agent", "correct horse battery"
        )
        return agent.id


async def test_a_row_with_a_new_e_mail_creates_a_customer_with_every_column(
    hub: Hub, tmp_path: Path
) -> None:
    agent_id = await add_key_account(hub)
    path = write_csv(
        tmp_path,
        "Name,Company,Email,Phone,Tier,Revenue,Language,Birthday,Key Account,Tags\n"
        "Martina Hoffmann,Hoffmann GmbH,M.Hoffmann@Example.com,0151 2345678,a,1234.50,DE,"
        f"1968-04-12,{KEY_ACCOUNT.upper()},Maschinenbau; VIP | VIP\n",
    )

    report, calls = await run_import(hub, path)

    assert (report.created, report.updated, report.rejected) == (1, 0, [])
    assert calls == [(0, 1), (1, 1)]
    card = await card_of(hub, "email", "m.hoffmann@example.com")
    assert card["name"] == "Martina Hoffmann"
    assert card["company"] == "Hoffmann GmbH"
    assert card["emails"] == ["m.hoffmann@example.com"]
    assert card["phones"] == ["+491512345678"]
    assert (card["tier"], card["revenue"], card["language"]) == ("A", Decimal("1234.50"), "de")
    assert card["birthday"] == date(1968, 4, 12)
    assert card["key_account_agent_id"] == agent_id
    assert card["tags"] == ["Maschinenbau", "VIP"]
    assert card["is_prospect"] is False


async def test_a_row_with_a_known_e_mail_updates_that_customer_and_keeps_empty_cells(
    hub: Hub, tmp_path: Path
) -> None:
    customer_id = await add_customer(hub, "Stefan Becker", ["s.becker@example.com"], [])
    path = write_csv(
        tmp_path,
        "email,name,company,tier\nS.Becker@EXAMPLE.com,,Becker Logistik AG,B\n",
    )

    report, _ = await run_import(hub, path)

    assert (report.created, report.updated, report.rejected) == (0, 1, [])
    card = await card_of(hub, "email", "s.becker@example.com")
    assert card["id"] == customer_id
    assert (card["name"], card["company"], card["tier"]) == (
        "Stefan Becker",
        "Becker Logistik AG",
        "B",
    )
    assert await count_customers(hub) == 1


async def test_a_row_with_a_phone_in_another_notation_updates_the_existing_customer(
    hub: Hub, tmp_path: Path
) -> None:
    customer_id = await add_customer(hub, "Markus Weber", [], ["+49 172 9876543"])
    path = write_csv(
        tmp_path,
        "name,email,phone\nMarkus Weber,info@weber-elektro.example,0049-172-9876543\n",
    )

    report, _ = await run_import(hub, path)

    assert (report.created, report.updated, report.rejected) == (0, 1, [])
    card = await card_of(hub, "email", "info@weber-elektro.example")
    assert card["id"] == customer_id
    assert card["phones"] == ["+491729876543"]
    assert card["emails"] == ["info@weber-elektro.example"]
    assert await count_customers(hub) == 1


async def test_a_german_excel_file_with_bom_semicolons_and_decimal_commas_is_read(
    hub: Hub, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path,
        "NAME;Company;Email;Phone;Revenue;Tags\r\n"
        'Ayşe Yılmaz;"Yılmaz Feinkost; Lebensmittel";a.yilmaz@example.com;0176 55512345;'
        "1.234,50;Einzelhandel|Newsletter\r\n"
        "Jürgen Groß;;j.gross@example.com;;12,5;\r\n",
        bom=True,
    )

    report, _ = await run_import(hub, path)

    assert (report.created, report.updated, report.rejected) == (2, 0, [])
    first = await card_of(hub, "phone", "+49 176 55512345")
    assert first["name"] == "Ayşe Yılmaz"
    assert first["company"] == "Yılmaz Feinkost; Lebensmittel"
    assert first["revenue"] == Decimal("1234.50")
    assert first["tags"] == ["Einzelhandel", "Newsletter"]
    second = await card_of(hub, "email", "j.gross@example.com")
    assert (second["name"], second["revenue"]) == ("Jürgen Groß", Decimal("12.50"))


async def test_every_broken_row_is_rejected_with_its_line_and_reason_while_good_rows_land(
    hub: Hub, tmp_path: Path
) -> None:
    await add_key_account(hub)
    first = await add_customer(hub, "Owner Of Mail", ["taken@example.com"], [])
    second = await add_customer(hub, "Owner Of Phone", [], ["0160 1234567"])
    path = write_csv(
        tmp_path,
        "name,email,phone,tier,revenue,birthday,key_account\n"
        f"Good One,good1@example.com,,A,100,1980-01-02,{KEY_ACCOUNT}\n"  # 2
        "Bad Mail,not-an-address,,,,,\n"  # 3
        "Bad Phone,badphone@example.com,12,,,,\n"  # 4
        "Bad Tier,badtier@example.com,,D,,,\n"  # 5
        "Bad Revenue,badrevenue@example.com,,,12x,,\n"  # 6
        "Bad Date,baddate@example.com,,,,31.12.1980,\n"  # 7
        "Bad Key Account,badkam@example.com,,,,,nobody@omnihub.test\n"  # 8
        "No Address,,,B,,,\n"  # 9
        "Two Owners,taken@example.com,+49 160 1234567,,,,\n"  # 10
        "Too Many,toomany@example.com,,,,,,extra\n"  # 11
        '"Good\nTwo",good2@example.com,,,,,\n'  # 12 and 13
        "\n"  # 14: blank, skipped
        "Future,future@example.com,,,,2999-01-01,\n",  # 15
    )

    report, calls = await run_import(hub, path)

    reasons = {rejected.line: rejected.reason for rejected in report.rejected}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 9, 10, 11, 15]
    assert "invalid e-mail address 'not-an-address'" in reasons[3]
    assert "invalid phone number '12'" in reasons[4]
    assert "unknown tier 'D'" in reasons[5]
    assert "bad revenue '12x'" in reasons[6]
    assert "bad date '31.12.1980'" in reasons[7]
    assert "unknown key account 'nobody@omnihub.test'" in reasons[8]
    assert "needs an e-mail or a phone" in reasons[9]
    assert f"customer {first}" in reasons[10] and f"customer {second}" in reasons[10]
    assert "8 cells" in reasons[11]
    assert "bad date '2999-01-01'" in reasons[15]
    assert (report.created, report.updated) == (2, 0)
    assert calls[-1] == (12, 12)
    assert (await card_of(hub, "email", "good2@example.com"))["name"] == "Good\nTwo"
    assert (await card_of(hub, "email", "taken@example.com"))["name"] == "Owner Of Mail"
    assert (await card_of(hub, "phone", "0160 1234567"))["name"] == "Owner Of Phone"
    assert await count_customers(hub) == 4


async def test_a_row_with_several_problems_names_them_all(hub: Hub, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "email,tier,revenue\nnobody,Z,1.2.3\n")

    report, _ = await run_import(hub, path)

    [rejected] = report.rejected
    assert rejected.line == 2
    for part in ("invalid e-mail address", "unknown tier 'Z'", "bad revenue '1.2.3'"):
        assert part in rejected.reason


async def test_an_unknown_column_is_refused_before_anything_is_written(
    hub: Hub, tmp_path: Path
) -> None:
    path = write_csv(tmp_path, "name,email,fax\nGood,good@example.com,0211 123\n")

    with pytest.raises(InvalidInputError, match="unknown column 'fax'"):
        await run_import(hub, path)

    assert await count_customers(hub) == 0


async def test_a_file_that_is_not_utf8_is_refused_before_anything_is_written(
    hub: Hub, tmp_path: Path
) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("name;email\nAnna;anna@example.com\nMüller;m@example.com\n".encode("cp1252"))

    with pytest.raises(InvalidInputError, match=r"not UTF-8 text \(line 3\)"):
        await run_import(hub, path)

    assert await count_customers(hub) == 0


async def test_a_file_without_an_email_or_phone_column_is_refused(hub: Hub, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "name,company\nAnna,Acme\n")

    with pytest.raises(InvalidInputError, match="needs an email or a phone column"):
        await run_import(hub, path)


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("1234.50", "1234.50"),
        ("1.234,50", "1234.50"),
        ("1,234.50", "1234.50"),
        ("1234,5", "1234.50"),
        ("1.234", "1234.00"),
        ("1.234.567,89 €", "1234567.89"),
        ("0,99", "0.99"),
    ],
)
def test_revenue_is_read_in_english_and_german_notation(cell: str, value: str) -> None:
    assert parse_revenue(cell, "DE") == Decimal(value)


@pytest.mark.parametrize("cell", ["1.234.50", "1,2345", "-5", "12x", "1234567890123"])
def test_revenue_that_is_not_a_sum_of_money_is_refused(cell: str) -> None:
    with pytest.raises(InvalidInputError, match="bad revenue"):
        parse_revenue(cell, "DE")
