"""The hub's campaign job: runs every campaign that is sending and that nobody holds.

Inside `omnihub serve` it looks every `poll_seconds` for campaigns in status
`sending` whose hold is free or expired (a sender that died) and whose time
has come, and runs a `CampaignSender` for each; several hub processes share
the work because a hold is taken by one of them only. `omnihub campaign send
ID` runs the same sender in the foreground; the job leaves a held campaign
alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import or_, select

from hub.campaigns.sending import CampaignSender
from hub.context import Hub
from hub.delivery import Sender
from hub.errors import ConflictError
from hub.models import Campaign, utcnow

log = logging.getLogger(__name__)


class CampaignJob:
    def __init__(
        self, hub: Hub, senders: dict[str, Sequence[Sender]], poll_seconds: float = 1.0
    ) -> None:
        self.hub = hub
        self.senders = senders
        self.poll_seconds = poll_seconds
        self.running: dict[int, tuple[CampaignSender, asyncio.Task[None]]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self.start_due()
                except Exception:
                    log.exception("looking for campaigns to send failed; trying again")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.poll_seconds)
        finally:
            for sender, _task in self.running.values():
                sender.stop.set()
            await asyncio.gather(*(task for _s, task in self.running.values()))

    async def start_due(self) -> list[int]:
        """Start a sender for every due campaign nobody holds; returns their ids."""
        self.running = {k: v for k, v in self.running.items() if not v[1].done()}
        now = utcnow()
        soon = now + timedelta(seconds=self.poll_seconds)
        statement = select(Campaign.id, Campaign.channel).where(
            Campaign.status == "sending",
            or_(Campaign.holder.is_(None), Campaign.holder_until < now),
            or_(Campaign.scheduled_at.is_(None), Campaign.scheduled_at <= soon),
        )
        async with self.hub.sessions() as session:
            due = [(i, ch) for i, ch in await session.execute(statement) if i not in self.running]
        started = []
        for campaign_id, channel in due:
            senders = self.senders.get(channel)
            if not senders:
                continue  # the channel is not configured; the campaign waits for it
            sender = CampaignSender(self.hub, senders)
            task = asyncio.create_task(
                self._run(sender, campaign_id), name=f"campaign {campaign_id}"
            )
            self.running[campaign_id] = (sender, task)
            started.append(campaign_id)
        return started

    async def _run(self, sender: CampaignSender, campaign_id: int) -> None:
        try:
            await sender.run(campaign_id)
        except ConflictError as error:
            log.info("campaign %s: %s", campaign_id, error.message)
        except Exception:
            log.exception(
                "campaign %s stopped with an error; another round resumes it", campaign_id
            )
