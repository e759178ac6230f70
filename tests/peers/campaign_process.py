"""A campaign sender in a process of its own: the crash tests kill it mid-campaign.

Run as `python -m tests.peers.campaign_process CAMPAIGN_ID SMTP_PORT CONNECTIONS`
with OMNIHUB_DATABASE_URL and OMNIHUB_SECRET_KEY set. It sends the campaign
over CONNECTIONS plain SMTP connections to 127.0.0.1:SMTP_PORT, as
`omnihub campaign send` would, until it is killed.

With `--forks` it is a fork server for tests that kill many senders in a row
(imports cost seconds; a fork, milliseconds): it prints `ready`, then reads
commands on its standard input, one a line, and answers each on stdout:

    go          fork a sender (a fresh process with its own connections, as
                above); answers its pid
    reap PID    wait until that sender has ended (the test SIGKILLs it by
                pid); answers `reaped`

Nothing has an event loop, a thread or a connection when it forks.
"""

from __future__ import annotations

import asyncio
import os
import sys
import traceback
from typing import NoReturn

import asyncpg  # noqa: F401 - imported before forking, not in every sender
import sqlalchemy.dialects.postgresql.asyncpg  # noqa: F401 - likewise

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


def run_forked(campaign_id: int, port: int, connections: int) -> NoReturn:
    """The sender's life in a forked child: it never returns into the server's loop."""
    code = 0
    try:
        asyncio.run(main(campaign_id, port, connections))
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
        os._exit(code)


def serve_forks(campaign_id: int, port: int, connections: int) -> None:
    print("ready", flush=True)
    for line in sys.stdin:
        command, *argument = line.split()
        if command == "go":
            pid = os.fork()
            if pid == 0:
                run_forked(campaign_id, port, connections)
            print(pid, flush=True)
        elif command == "reap":
            os.waitpid(int(argument[0]), 0)
            print("reaped", flush=True)


if __name__ == "__main__":
    arguments = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
    if "--forks" in sys.argv[4:]:
        serve_forks(*arguments)
    else:
        asyncio.run(main(*arguments))
