"""The gate: blocks and consents decide what may go out, with every reason."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event, func, select

from hub.blocks import do_add_block, do_lift_block
from hub.context import Hub
from hub.gate import Policy, Recipient, check, check_many
from hub.intake import accept_inbound
from hub.merge import do_merge
from hub.models import Complaint, Consent, OutboxMessage, utcnow
from hub.values import Inbound

POLICY = Policy()
CONFIRMED = {"confirmed_at": "2026-11-01T10:00:00+00:00", "confirmed_ip": "203.0.113.7"}


async def customer(hub: Hub, email: str = "anna@example.com") -> int:
    result = await accept_inbound(
        hub,
        Inbound(
            channel="email",
            sender_kind="email",
            sender=email,
            external_id=f"m-{email}",
            text="Hallo",
        ),
    )
    return result.customer_id


async def consent(
    hub: Hub, customer_id: int, state: str = "granted", evidence=None, channel: str = "email"
) -> None:
    async with hub.work() as work:
        work.session.add(
            Consent(
                customer_id=customer_id,
                channel=channel,
                purpose="marketing",
                state=state,
                source="webform",
                evidence=evidence or {},
            )
        )


async def block(hub: Hub, kind: str, value: str, reason: str, scope: str = "all") -> None:
    async with hub.work() as work:
        await do_add_block(work, None, kind, value, reason, "DE", scope)


async def decide(
    hub: Hub,
    customer_id: int | None,
    purpose: str,
    channel: str = "email",
    address: str = "anna@example.com",
):
    async with hub.sessions() as session:
        return await check(session, Recipient(customer_id, channel, address), purpose, POLICY)


async def test_a_service_reply_to_an_unblocked_customer_passes(hub: Hub):
    anna = await customer(hub)

    assert (await decide(hub, anna, "service")).allowed


async def test_an_all_scope_block_on_the_address_stops_even_service(hub: Hub):
    anna = await customer(hub)
    await block(hub, "email", "Anna@Example.com", "hard_bounce")

    decision = await decide(hub, anna, "service")

    assert not decision.allowed and decision.reasons == ("block:hard_bounce",)


async def test_a_customer_block_stops_every_channel(hub: Hub):
    anna = await customer(hub)
    await block(hub, "customer", str(anna), "legal")

    by_sms = await decide(hub, anna, "service", "sms", "+491512345678")

    assert by_sms.reasons == ("block:legal",)


async def test_a_marketing_block_stops_marketing_but_not_service(hub: Hub):
    anna = await customer(hub)
    await consent(hub, anna, evidence=CONFIRMED)
    await block(hub, "email", "anna@example.com", "unsubscribe", scope="marketing")

    assert (await decide(hub, anna, "marketing")).reasons == ("block:unsubscribe",)
    assert (await decide(hub, anna, "service")).allowed


async def test_marketing_needs_a_confirmed_double_opt_in(hub: Hub):
    nobody, pending, ticked, confirmed, revoked = [
        await customer(hub, f"{name}@example.com")
        for name in ("nobody", "pending", "ticked", "confirmed", "revoked")
    ]
    await consent(hub, pending, "pending_confirmation")
    await consent(hub, ticked, "granted")
    await consent(hub, confirmed, "granted", CONFIRMED)
    await consent(hub, revoked, "revoked")

    reasons = {
        name: (await decide(hub, cid, "marketing", address=f"{name}@example.com")).reasons
        for name, cid in (
            ("nobody", nobody),
            ("pending", pending),
            ("ticked", ticked),
            ("confirmed", confirmed),
            ("revoked", revoked),
        )
    }

    assert reasons == {
        "nobody": ("consent:missing",),
        "pending": ("consent:unconfirmed",),
        "ticked": ("consent:unconfirmed",),
        "confirmed": (),
        "revoked": ("consent:revoked",),
    }


async def test_no_selling_to_a_customer_whose_complaint_is_open(hub: Hub):
    anna = await customer(hub)
    await consent(hub, anna, evidence=CONFIRMED)
    async with hub.work() as work:
        work.session.add(Complaint(customer_id=anna, subject="Defekt"))

    assert (await decide(hub, anna, "marketing")).reasons == ("open_complaint",)
    assert (await decide(hub, anna, "service")).allowed
    async with hub.sessions() as session:
        relaxed = await check(
            session,
            Recipient(anna, "email", "anna@example.com"),
            "marketing",
            Policy(no_marketing_on_open_complaint=False),
        )
    assert relaxed.allowed


async def test_the_frequency_cap_stops_marketing_after_n_in_the_period(hub: Hub):
    anna = await customer(hub)
    await consent(hub, anna, evidence=CONFIRMED)
    async with hub.work() as work:
        for n, days_ago in enumerate((1, 2, 3, 40)):
            work.session.add(
                OutboxMessage(
                    idempotency_key=f"camp-{n}",
                    channel="email",
                    purpose="marketing",
                    recipient="anna@example.com",
                    customer_id=anna,
                    status="sent",
                    sent_at=utcnow() - timedelta(days=days_ago),
                )
            )

    async with hub.sessions() as session:
        recipient = Recipient(anna, "email", "anna@example.com")
        at_three = await check(session, recipient, "marketing", Policy(marketing_cap=3))
        at_four = await check(session, recipient, "marketing", Policy(marketing_cap=4))

    assert at_three.reasons == ("frequency_cap",)
    assert at_four.allowed


async def test_every_reason_is_reported_not_just_the_first(hub: Hub):
    anna = await customer(hub)
    await block(hub, "email", "anna@example.com", "unsubscribe", scope="marketing")
    async with hub.work() as work:
        work.session.add(Complaint(customer_id=anna, subject="Defekt"))

    decision = await decide(hub, anna, "marketing")

    assert set(decision.reasons) == {"block:unsubscribe", "consent:missing", "open_complaint"}


async def test_a_lifted_block_no_longer_stops_anything(hub: Hub):
    anna = await customer(hub)
    async with hub.work() as work:
        added = await do_add_block(work, None, "email", "anna@example.com", "manual", "DE")
    async with hub.work() as work:
        await do_lift_block(work, None, added.id)

    assert (await decide(hub, anna, "service")).allowed


async def test_the_gate_answers_many_recipients_with_a_fixed_number_of_queries(hub: Hub):
    ids = [await customer(hub, f"c{n}@example.com") for n in range(30)]
    for n in range(0, 30, 3):
        await block(hub, "email", f"c{n}@example.com", "hard_bounce")
    for cid in ids[1::3]:
        await consent(hub, cid, evidence=CONFIRMED)
    recipients = [Recipient(cid, "email", f"c{n}@example.com") for n, cid in enumerate(ids)]
    statements: list[str] = []

    def count(*args, **_kwargs) -> None:
        statements.append(args[2])

    event.listen(hub.engine.sync_engine, "before_cursor_execute", count)
    async with hub.sessions() as session:
        decisions = await check_many(session, recipients, "marketing", POLICY)
    event.remove(hub.engine.sync_engine, "before_cursor_execute", count)

    queries = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(queries) <= 4
    allowed = [n for n, decision in enumerate(decisions) if decision.allowed]
    assert allowed == list(range(1, 30, 3))
    assert decisions[0].reasons == ("block:hard_bounce", "consent:missing")


async def test_a_recipient_without_a_customer_is_judged_by_its_address(hub: Hub):
    await block(hub, "phone", "0151 2345678", "sms_stop")

    decision = await decide(hub, None, "service", "sms", "+491512345678")
    unknown = await decide(hub, None, "marketing", "email", "new@example.com")

    assert decision.reasons == ("block:sms_stop",)
    assert unknown.reasons == ("consent:missing",)
    async with hub.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


async def test_a_customer_block_still_holds_after_its_customer_was_merged(hub: Hub):
    survivor = await customer(hub, "anna@example.com")
    duplicate = await customer(hub, "anna.schmidt@example.com")
    await block(hub, "customer", str(duplicate), "legal")
    async with hub.work() as work:
        await do_merge(work, None, survivor, duplicate)

    decision = await decide(hub, survivor, "service")

    assert decision.reasons == ("block:legal",)
