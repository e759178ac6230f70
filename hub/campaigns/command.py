"""`omnihub campaign send ID`: send a campaign in the foreground, with a progress bar.

An approved campaign is started (as `POST /api/campaigns/{id}/send` does, the
approval checked again); one that is already sending is resumed, if no other
sender holds it. The bar follows the campaign's outbox rows, which are its
progress, so a resumed campaign starts where it stood.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from hub.campaigns.approval import do_start_sending
from hub.campaigns.progress import campaign_progress
from hub.campaigns.sending import CampaignSender
from hub.context import Hub
from hub.delivery import Sender
from hub.errors import ConflictError, NotFoundError
from hub.models import Campaign

POLL_SECONDS = 0.5
Report = Callable[[int, int | None], None]


async def start_campaign(hub: Hub, campaign_id: int) -> Campaign:
    """The campaign, sending; ConflictError when it cannot be sent (and why)."""
    async with hub.work() as work:
        campaign = await work.session.get(Campaign, campaign_id)
        if campaign is None:
            raise NotFoundError(f"no campaign {campaign_id}")
        voided = await do_start_sending(hub, work, None, campaign)
    if voided is not None:
        raise ConflictError(f"{voided}; preview and approve the campaign again")
    return campaign


async def send_with_progress(
    hub: Hub,
    campaign_id: int,
    senders: dict[str, Sequence[Sender]],
    report: Report,
) -> dict[str, Any]:
    """Start or resume the campaign, send it to the end, and return its progress."""
    campaign = await start_campaign(hub, campaign_id)
    chosen = senders.get(campaign.channel)
    if not chosen:
        raise ConflictError(f"no sender is configured for {campaign.channel}")
    expected = (campaign.preview.get("figures") or {}).get("members")
    sending = asyncio.create_task(CampaignSender(hub, chosen).run(campaign_id))
    try:
        while not sending.done():
            await _report(hub, campaign_id, expected, report)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(sending), POLL_SECONDS)
        await sending
    finally:
        if not sending.done():
            sending.cancel()
    return await _report(hub, campaign_id, expected, report)


async def _report(
    hub: Hub, campaign_id: int, expected: int | None, report: Report
) -> dict[str, Any]:
    async with hub.sessions() as session:
        progress = await campaign_progress(session, campaign_id)
    total = max(progress["total"], expected or 0) or None
    report(progress["done"], total)
    return progress
