"""An opt-out that commits while a campaign sends stops every message that has not left.

Found by the soak run (`tests/soak.py`): a worker asks the gate once for a
slice of the batch it claimed (`hub.campaigns.sending`: a second's worth of
rows at a set rate, the whole batch of 100 without one, the default), so an
unsubscribe or STOP committed while the slice went out did not stop the
messages after it in that slice. The hand-off, each message's commit point,
now refuses a recipient blocked since (`hub.campaigns.handover`). These tests
commit the opt-out while the first message of a two-message batch is on its
way, without a rate, and expect the second not to be sent but recorded as
blocked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from hub.blocks import do_add_block
from hub.campaigns.sending import CampaignSender
from hub.campaigns.unsubscribe import make_token
from hub.context import Hub
from hub.delivery import Receipt
from hub.values import Outbound
from tests.campaign_steps import add_customer, approved, outbox, start
from tests.conftest import SECRET, SignedIn


@dataclass
class OptOutWhileSending:
    """Records what it sends; while sending the first message, the opt-out commits."""

    opt_out: object
    sent: list[str] = field(default_factory=list)

    async def send(self, outbound: Outbound) -> Receipt:
        if not self.sent:
            await self.opt_out()  # type: ignore[operator]
        self.sent.append(outbound.recipient)
        return Receipt(f"test-{len(self.sent)}")


async def test_a_one_click_unsubscribe_during_the_batch_stops_the_message_not_yet_sent(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    await add_customer(hub, "Anna", "anna@example.com")
    await add_customer(hub, "Bert", "bert@example.com")
    campaign = await approved(client, agent, supervisor)
    await start(client, campaign["id"], agent)

    async def unsubscribe_bert() -> None:
        token = make_token(SECRET, "email", "bert@example.com", campaign["id"])
        answer = await client.post(f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click")
        assert answer.status_code == 200

    sender = OptOutWhileSending(unsubscribe_bert)
    await CampaignSender(hub, [sender], rate=0).run(campaign["id"])

    assert sender.sent == ["anna@example.com"]
    rows = {row.recipient: row for row in await outbox(hub, campaign["id"])}
    assert rows["bert@example.com"].status == "blocked"


async def test_a_stop_during_the_batch_stops_the_sms_not_yet_sent(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    await add_customer(hub, "Anna", phone="+491511111111", channel="sms")
    await add_customer(hub, "Bert", phone="+491512222222", channel="sms")
    template = {"variants": {"en": {"text": "Hi {{ customer.first_name }}, news"}}}
    campaign = await approved(client, agent, supervisor, channel="sms", template=template)
    await start(client, campaign["id"], agent)

    async def bert_texts_stop() -> None:  # what the SMS webhook commits for STOP
        async with hub.work() as work:
            await do_add_block(work, None, "phone", "+491512222222", "sms_stop", "DE", "all")

    sender = OptOutWhileSending(bert_texts_stop)
    await CampaignSender(hub, [sender], rate=0).run(campaign["id"])

    assert sender.sent == ["+491511111111"]
    rows = {row.recipient: row for row in await outbox(hub, campaign["id"])}
    assert rows["+491512222222"].status == "blocked"
    assert rows["+491512222222"].blocked_reasons == ["block:sms_stop"]
