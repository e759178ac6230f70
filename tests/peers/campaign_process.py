"""A campaign sender in a process of its own: the crash test kills it mid-campaign.

Run as `python -m tests.peers.campaign_process CAMPAIGN_ID SMTP_PORT CONNECTIONS`
with OMNIHUB_DATABASE_URL and OMNIHUB_SECRET_KEY set. It sends the campaign
over CONNECTIONS plain SMTP connections to 127.0.0.1:SMTP_PORT, as
`omnihub campaign send` would, until it is killed.
"""

from __future__ import annotations

import asyncio
import sys

from channels.email.bulk import BulkSmtpSender
from hub.campaigns.sending import CampaignSender
from hub.context import Hub
from hub.settings import load_settings


async def main(campaign_id: int, port: int, connections: int) -> None:
    settings = load_settings()
    hub = Hub.create(settings)
    senders = [
        BulkSmtpSender(
            "127.0.0.1",
            port,
            mail_from="news@omnihub.test",
            secret_key=settings.secret_key or "",
            tls="plain",
        )
        for _ in range(connections)
    ]
    await CampaignSender(hub, senders).run(campaign_id)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
