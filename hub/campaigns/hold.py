"""The hold on a campaign: one sender at a time sends it.

`holder` and `holder_until` on the campaign row: taken only when free,
expired, or already this sender's; renewed while it runs (every third of
OUTBOX_LEASE_SECONDS); released when it stops, and the campaign is done
when nothing of it is left to send. A sender that cannot renew (another
took over after its hold ran out, or the campaign was cancelled) stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from sqlalchemy import func, or_, select, update

from hub.audit import record
from hub.context import Hub
from hub.errors import ConflictError, NotFoundError
from hub.models import Campaign, OutboxMessage, utcnow


class HoldLostError(Exception):
    """Another sender holds the campaign now, or it was cancelled: stop at once."""


class CampaignHold:
    def __init__(self, hub: Hub, holder: str, lease: timedelta) -> None:
        self.hub = hub
        self.holder = holder
        self.lease = lease

    async def take(self, campaign_id: int) -> Campaign:
        """The campaign, now held by us; ConflictError when it is not sending or held elsewhere."""
        now = utcnow()
        async with self.hub.work() as work:
            taken = await work.session.execute(
                update(Campaign)
                .where(
                    Campaign.id == campaign_id,
                    Campaign.status == "sending",
                    or_(
                        Campaign.holder.is_(None),
                        Campaign.holder_until < now,
                        Campaign.holder == self.holder,
                    ),
                )
                .values(holder=self.holder, holder_until=now + self.lease)
                .execution_options(synchronize_session=False)
            )
            campaign = await work.session.get(Campaign, campaign_id, populate_existing=True)
        if campaign is None:
            raise NotFoundError(f"no campaign {campaign_id}")
        if taken.rowcount != 1:
            if campaign.status != "sending":
                raise ConflictError(f"campaign {campaign_id} is {campaign.status}, not sending")
            raise ConflictError(f"campaign {campaign_id} is being sent by {campaign.holder}")
        return campaign

    async def keep(self, campaign_id: int, stop: asyncio.Event) -> None:
        """Renew the hold until `stop`; set `stop` when it is lost."""
        while not stop.is_set():
            await asyncio.sleep(self.lease.total_seconds() / 3)
            if not await self.renew(campaign_id):
                stop.set()
                return

    async def renew(self, campaign_id: int) -> bool:
        async with self.hub.work() as work:
            renewed = await work.session.execute(
                update(Campaign)
                .where(
                    Campaign.id == campaign_id,
                    Campaign.holder == self.holder,
                    Campaign.status == "sending",
                )
                .values(holder_until=utcnow() + self.lease)
                .execution_options(synchronize_session=False)
            )
        return renewed.rowcount == 1

    async def wait_for_schedule(self, campaign: Campaign, stop: asyncio.Event) -> None:
        """Hold the campaign until its scheduled time; HoldLostError when stopped or lost."""
        while campaign.scheduled_at is not None and campaign.scheduled_at > utcnow():
            wait = (campaign.scheduled_at - utcnow()).total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(wait, self.lease.total_seconds() / 3))
            if stop.is_set() or not await self.renew(campaign.id):
                raise HoldLostError

    async def release(self, campaign_id: int) -> None:
        """Let the campaign go; it is done when nothing of it is left to send."""
        async with self.hub.work() as work:
            left = await work.session.scalar(
                select(func.count()).where(
                    OutboxMessage.campaign_id == campaign_id,
                    OutboxMessage.status.in_(("queued", "sending", "handed")),
                )
            )
            campaign = await work.session.get(Campaign, campaign_id, populate_existing=True)
            if campaign is None or campaign.holder != self.holder:
                return
            campaign.holder, campaign.holder_until = None, None
            if campaign.status == "sending" and campaign.enqueue_done and not left:
                campaign.status = "done"
                campaign.finished_at = utcnow()
                record(work.session, None, "campaign.done", "campaign", campaign_id)
                work.emit("campaign.changed", campaign_id=campaign_id, status="done")
