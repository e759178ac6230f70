"""GDPR: the export holds everything; after erasure no personal value is left anywhere.

The fixture puts one person into every table that can hold personal data, by
the hub's own paths: two records (e-mail and a merged second address), mail
kept as raw bytes with an attachment, a dead letter, SMS with a complaint, a
call, a web form, a chat with its session log, consents with evidence (a
confirmed double opt-in), blocks, replies and a campaign message in the
outbox, and the audit entries all of that wrote. The scan afterwards reads
every column of every table the database has (found by reflection, so tables
added later are covered) for each personal value.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import (
    JSON,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    func,
    select,
    update,
)

from hub.context import Hub
from hub.gate import Recipient, check
from hub.importer import import_customers
from hub.models import (
    AuditEntry,
    Block,
    Consent,
    Customer,
    Interaction,
    RawMessage,
    Suppression,
    utcnow,
)
from hub.privacy.retention import purge_history, retention_job
from hub.privacy.suppression import count_unmatchable, derive_key, do_suppress, is_suppressed
from hub.privacy.sweep import sweep_table
from hub.settings import load_settings
from tests.conftest import MakeAgent, SignedIn
from tests.privacy_person import (
    EMAIL,
    IP,
    NAME,
    OTHER_EMAIL,
    PERSONAL,
    PHONE,
    SECTIONS,
    USER_AGENT,
    Person,
    a_person_in_every_table,
    exported_keys,
    exported_text,
    figures,
    scan_database,
)
from tests.test_cli import OMNIHUB

# -- the tests -----------------------------------------------------------------


@pytest.fixture
async def admin(make_agent: MakeAgent) -> SignedIn:
    return await make_agent("admin")


@pytest.fixture
async def person(hub: Hub, client: httpx.AsyncClient, supervisor: SignedIn) -> Person:
    return await a_person_in_every_table(hub, client, supervisor)


async def test_the_fixture_puts_every_personal_value_into_the_database(hub: Hub, person: Person):
    found = await scan_database(hub, PERSONAL)

    assert [value for value, places in found.items() if not places] == []
    tables = {table for places in found.values() for table, _ in places}
    assert set(SECTIONS) <= tables


async def test_the_export_holds_every_row_and_every_value_the_database_holds_about_her(
    hub: Hub, client: httpx.AsyncClient, person: Person, supervisor: SignedIn
):
    found = await scan_database(hub, PERSONAL)
    async with hub.work() as work:
        # Someone else's address that merely contains hers: not hers to see.
        stranger = AuditEntry(action="block.added", entity="block", details={"value": f"x{EMAIL}"})
        work.session.add(stranger)

    answer = await client.get(
        f"/api/customers/{person.customer_id}/export", headers=supervisor.headers
    )

    assert answer.status_code == 200, answer.text
    assert "attachment" in answer.headers["content-disposition"]
    document = answer.json()
    missing = {place for places in found.values() for place in places} - exported_keys(document)
    assert missing == set()
    text = exported_text(document).casefold()
    assert [value for value in PERSONAL if value.casefold() not in text] == []
    assert {row["id"] for row in document["customers"]} == {person.customer_id, person.merged_id}
    evidence = {c["channel"]: c["evidence"] for c in document["consents"]}
    assert evidence["email"]["confirmed_ip"] == IP
    assert evidence["email"]["confirmed_user_agent"] == USER_AGENT
    assert evidence["sms"]["source"] == "phone call"
    assert {row["purpose"] for row in document["outbox"]} == {"service", "marketing"}
    assert stranger.id not in {row["id"] for row in document["audit_log"]}


async def test_after_erasure_no_personal_value_is_left_in_any_table(
    hub: Hub, client: httpx.AsyncClient, person: Person, admin: SignedIn
):
    answer = await client.post(f"/api/customers/{person.customer_id}/erase", headers=admin.headers)

    assert answer.status_code == 200, answer.text
    found = await scan_database(hub, PERSONAL)
    assert {value: sorted(places) for value, places in found.items() if places} == {}


async def test_erasure_keeps_the_figures_counts_per_channel_times_complaints_and_statuses(
    hub: Hub, client: httpx.AsyncClient, person: Person, admin: SignedIn
):
    before = await figures(hub, person.customer_id)

    answer = await client.post(f"/api/customers/{person.customer_id}/erase", headers=admin.headers)

    after = await figures(hub, person.customer_id)
    assert after["by_channel"] == before["by_channel"]
    assert set(before["by_channel"]) >= {"email", "sms", "voice", "webform", "chat"}
    assert after["times"] == before["times"]
    assert after["complaints"] == before["complaints"] == 1
    # What was still queued will never go out now; every other status is kept.
    assert after["outbox"] == {
        key: "blocked" if status == "queued" else status for key, status in before["outbox"].items()
    }
    assert "sent" in after["outbox"].values()
    counts = answer.json()["counts"]
    assert counts["interactions_by_channel"] == before["by_channel"]
    async with hub.sessions() as session:
        customer = await session.get(Customer, person.customer_id)
        assert customer is not None and customer.name == "" and customer.birthday is None


async def test_erasure_is_audited_without_personal_values_and_the_export_is_audited_too(
    hub: Hub, client: httpx.AsyncClient, person: Person, admin: SignedIn, supervisor: SignedIn
):
    await client.get(f"/api/customers/{person.customer_id}/export", headers=supervisor.headers)
    await client.post(f"/api/customers/{person.customer_id}/erase", headers=admin.headers)

    async with hub.sessions() as session:
        entries = list(
            await session.scalars(
                select(AuditEntry).where(
                    AuditEntry.entity == "customer", AuditEntry.entity_id == person.customer_id
                )
            )
        )
    actions = [(entry.action, entry.actor_agent_id) for entry in entries]
    assert ("customer.exported", supervisor.id) in actions
    assert ("customer.erased", admin.id) in actions
    # Consent changes were audited when they happened (and kept, without the IP).
    assert {"consent.set", "consent.confirmed"} <= {action for action, _ in actions}
    erased = next(entry for entry in entries if entry.action == "customer.erased")
    assert erased.details["counts"]["identities"] == 4
    assert "Mustermann" not in json.dumps(erased.details, ensure_ascii=False)


async def test_an_erased_address_is_suppressed_from_marketing_but_a_service_reply_may_go(
    hub: Hub, client: httpx.AsyncClient, person: Person, admin: SignedIn
):
    await client.post(f"/api/customers/{person.customer_id}/erase", headers=admin.headers)
    key = hub.policy.suppression_key or b""

    async with hub.sessions() as session:
        assert await is_suppressed(session, EMAIL, key=key)
        assert await is_suppressed(session, EMAIL.upper(), key=key)
        assert await is_suppressed(session, PHONE, key=key)
        assert await is_suppressed(session, OTHER_EMAIL, key=key)
        assert not await is_suppressed(session, "someone.else@example.org", key=key)
        marketing = await check(session, Recipient(None, "email", EMAIL), "marketing", hub.policy)
        service = await check(session, Recipient(None, "email", EMAIL), "service", hub.policy)
        digests = list(await session.scalars(select(Suppression.digest)))
    assert "suppressed" in marketing.reasons
    assert service.allowed
    assert len(digests) == 3 and all(len(digest) == 64 for digest in digests)


async def test_a_re_imported_erased_address_is_imported_with_marketing_blocked(
    hub: Hub, client: httpx.AsyncClient, person: Person, admin: SignedIn, tmp_path: Path
):
    await client.post(f"/api/customers/{person.customer_id}/erase", headers=admin.headers)
    path = tmp_path / "customers.csv"
    path.write_text(f"name,email\n{NAME},{EMAIL.upper()}\nMax Muster,max@example.org\n")

    report = await import_customers(hub, path, lambda done, total: None)

    assert (report.created, report.rejected, report.suppressed) == (2, [], [2])
    async with hub.sessions() as session:
        blocks = list(
            await session.scalars(
                select(Block).where(Block.value == EMAIL, Block.lifted_at.is_(None))
            )
        )
        consents = await session.scalar(select(func.count()).where(Consent.state == "granted"))
        other = await session.scalar(select(func.count()).where(Block.value == "max@example.org"))
    assert [(b.kind, b.reason, b.scope) for b in blocks] == [("email", "legal", "marketing")]
    assert consents == 0
    assert other == 0


async def test_erasing_twice_answers_the_first_erasure(
    hub: Hub, client: httpx.AsyncClient, person: Person, admin: SignedIn
):
    first = await client.post(f"/api/customers/{person.customer_id}/erase", headers=admin.headers)
    again = await client.post(f"/api/customers/{person.customer_id}/erase", headers=admin.headers)

    assert again.status_code == 200
    assert again.json()["already_erased"] is True
    assert again.json()["erased_at"] == first.json()["erased_at"]


async def test_a_record_merged_into_another_is_erased_through_the_one_that_holds_it(
    hub: Hub, client: httpx.AsyncClient, person: Person, admin: SignedIn
):
    answer = await client.post(f"/api/customers/{person.merged_id}/erase", headers=admin.headers)

    assert answer.status_code == 409
    assert str(person.customer_id) in answer.json()["detail"]


async def test_export_needs_a_supervisor_and_erasure_an_admin(
    client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    export = await client.get("/api/customers/1/export", headers=agent.headers)
    erase = await client.post("/api/customers/1/erase", headers=supervisor.headers)
    missing = await client.get("/api/customers/999/export", headers=supervisor.headers)

    assert (export.status_code, erase.status_code, missing.status_code) == (403, 403, 404)


async def test_retention_purges_history_older_than_the_setting_and_keeps_newer(
    hub: Hub, person: Person
):
    async with hub.work() as work:
        newest = await work.session.scalar(select(func.max(Interaction.id)))
        await work.session.execute(
            update(Interaction)
            .where(Interaction.id != newest)
            .values(occurred_at=utcnow() - timedelta(days=400))
        )
        await work.session.execute(
            update(RawMessage).values(created_at=utcnow() - timedelta(days=400))
        )

    counts = await purge_history(hub, 365)

    async with hub.sessions() as session:
        left = list(await session.scalars(select(Interaction.id)))
        raw = await session.scalar(select(func.count()).select_from(RawMessage))
        audited = await session.scalar(
            select(func.count()).where(AuditEntry.action == "retention.purged")
        )
    assert left == [newest]
    assert counts["interactions"] > 0 and counts["raw_messages"] == 2
    assert raw == 0 and audited == 1


def test_retention_is_read_from_omnihub_retention_days_and_unset_keeps_forever(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("OMNIHUB_RETENTION_DAYS", "730")
    assert load_settings(_env_file=None).retention_days == 730
    monkeypatch.delenv("OMNIHUB_RETENTION_DAYS")
    assert load_settings(_env_file=None).retention_days is None


async def test_suppressions_made_under_another_secret_key_are_counted_as_unmatchable(
    hub: Hub, client: httpx.AsyncClient, person: Person, admin: SignedIn
):
    await client.post(f"/api/customers/{person.customer_id}/erase", headers=admin.headers)

    async with hub.sessions() as session:
        same = await count_unmatchable(session, hub.policy.suppression_key or b"")
        other = await count_unmatchable(session, derive_key("another-secret-key-" + "x" * 20))
        found = await is_suppressed(session, EMAIL, key=derive_key("another-secret-" + "y" * 20))
    assert (same, other, found) == (0, 3, False)


async def test_the_privacy_job_purges_once_a_day_when_retention_is_set(hub: Hub, person: Person):
    async with hub.work() as work:
        await work.session.execute(
            update(Interaction).values(occurred_at=utcnow() - timedelta(days=40))
        )
    hub.settings.retention_days = 30
    stop = asyncio.Event()

    async with hub.bus.subscribe() as events:
        task = asyncio.create_task(retention_job(hub)(stop))
        purged = await asyncio.wait_for(events.get(), 30)
        stop.set()
        await task

    assert purged.type == "retention.purged"
    assert purged.data["counts"]["interactions"] > 0

    async with hub.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Interaction)) == 0


async def test_the_sweep_blanks_her_values_in_a_table_a_later_feature_adds(hub: Hub):
    later = Table(
        "later_feature_notes",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("note", String(200)),
        Column("data", JSON),
        Column("status", String(20)),
    )
    async with hub.engine.begin() as connection:
        await connection.run_sync(later.create)
        await connection.execute(
            later.insert(),
            [
                {"id": 1, "note": f"For {NAME.upper()}", "data": {"to": [EMAIL]}, "status": "sent"},
                {
                    "id": 2,
                    "note": "Frau Müller-Lüdenscheidt",
                    "data": {"n": "Müller-Lüdenscheidt"},
                    "status": None,
                },
                {"id": 3, "note": "nothing personal", "data": {}, "status": "draft"},
                {"id": 4, "note": f"{NAME}sdorf", "data": {"n": f"x{EMAIL}"}, "status": None},
            ],
        )
    terms = frozenset({NAME, EMAIL, "Müller-Lüdenscheidt"})

    async with hub.work() as work:
        changed = await sweep_table(work.session, later, terms)

    async with hub.engine.connect() as connection:
        rows = [tuple(row) for row in await connection.execute(select(later).order_by(later.c.id))]
    assert changed == 2
    assert rows == [
        (1, "For [erased]", {"to": ["[erased]"]}, "sent"),
        (2, "Frau [erased]", {"n": "[erased]"}, None),
        (3, "nothing personal", {}, "draft"),
        # Inside a longer word or address it is someone else's: left alone.
        (4, f"{NAME}sdorf", {"n": f"x{EMAIL}"}, None),
    ]


def _omnihub(args: list[str], tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    assert OMNIHUB is not None, "the omnihub console script is not installed beside python"
    env = {name: value for name, value in os.environ.items() if not name.startswith("OMNIHUB_")}
    env["OMNIHUB_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    env.update(variables)
    return subprocess.run(
        [OMNIHUB, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


def test_omnihub_retention_purge_runs_with_days_and_refuses_without_any(tmp_path: Path):
    assert _omnihub(["migrate"], tmp_path).returncode == 0

    refused = _omnihub(["retention", "purge"], tmp_path)
    by_option = _omnihub(["retention", "purge", "--days", "30"], tmp_path)
    by_setting = _omnihub(["retention", "purge"], tmp_path, OMNIHUB_RETENTION_DAYS="90")

    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "omnihub: give --days N or set OMNIHUB_RETENTION_DAYS; nothing was purged"
    )
    assert by_option.returncode == 0, by_option.stderr
    assert by_option.stdout.splitlines()[0] == "purged history older than 30 days:"
    assert "  interactions: 0" in by_option.stdout.splitlines()
    assert by_setting.stdout.splitlines()[0] == "purged history older than 90 days:"


async def test_an_admin_lifts_a_suppression_when_she_asks_for_marketing_again(
    hub: Hub, client: httpx.AsyncClient, person: Person, admin: SignedIn, supervisor: SignedIn
):
    await client.post(f"/api/customers/{person.customer_id}/erase", headers=admin.headers)
    asked = {"address": "ERIKA.Mustermann@Example.org"}

    before = await client.post("/api/suppressions/check", json=asked, headers=supervisor.headers)
    refused = await client.post("/api/suppressions/lift", json=asked, headers=supervisor.headers)
    lifted = await client.post("/api/suppressions/lift", json=asked, headers=admin.headers)
    after = await client.post("/api/suppressions/check", json=asked, headers=supervisor.headers)
    phone = await client.post(
        "/api/suppressions/check", json={"address": "0151 23456789"}, headers=supervisor.headers
    )

    assert before.json() == {"kind": "email", "suppressed": True}
    assert refused.status_code == 403
    assert lifted.json() == {"kind": "email", "lifted": True}
    assert after.json() == {"kind": "email", "suppressed": False}
    assert phone.json() == {"kind": "phone", "suppressed": True}
    async with hub.sessions() as session:
        decision = await check(session, Recipient(None, "email", EMAIL), "marketing", hub.policy)
        entry = (
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == "suppression.lifted")
            )
        ).one()
    assert "suppressed" not in decision.reasons
    assert (entry.actor_agent_id, entry.details) == (admin.id, {"kind": "email"})


async def test_the_hub_warns_at_start_about_suppressions_hashed_under_another_secret_key(
    hub: Hub, caplog: pytest.LogCaptureFixture
):
    async with hub.work() as work:
        await do_suppress(
            work.session, derive_key("an-earlier-secret-key-" + "z" * 20), "email", EMAIL
        )

    with caplog.at_level(logging.WARNING, logger="hub.privacy.retention"):
        await retention_job(hub)(asyncio.Event())

    assert [record.getMessage() for record in caplog.records] == [
        "1 suppressed addresses were hashed under another OMNIHUB_SECRET_KEY and no longer "
        "match: erased addresses they stand for may be marketed to again"
    ]
