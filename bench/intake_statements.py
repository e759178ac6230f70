"""Statements per contact on the intake path: a web-form post and SMS webhooks.

`python -m bench.intake_statements` migrates a scratch PostgreSQL database,
serves the hub's app in this process (httpx's ASGI transport), and counts
the SQL statements the engine sends for: a web-form post from a new sender
(with its confirmation e-mail), an SMS webhook from a new sender, and one
from a sender whose SMS conversation is open. BEGIN/COMMIT (and a ping of a
connection idle long, `hub.db`) are counted apart, per transaction. `--show` prints the statements.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import Awaitable, Callable

import httpx
from sqlalchemy import event
from twilio.request_validator import RequestValidator

from bench.harness import counting_statements, scratch_database
from hub.app import create_app
from hub.context import Hub
from hub.db import migrate
from hub.settings import load_settings

TOKEN = "statements-token"  # noqa: S105 - a scratch hub's
BASE = "http://hub.bench.example"


async def count(
    hub_: Hub, send: Callable[[], Awaitable[httpx.Response]], show: bool
) -> tuple[int, int]:
    """(statements, transactions begun) while `send` runs; raises on a failed answer."""
    begun = 0

    def on_begin(_connection: object) -> None:
        nonlocal begun
        begun += 1

    event.listen(hub_.engine.sync_engine, "begin", on_begin)
    try:
        with counting_statements(hub_.engine) as sent:
            (await send()).raise_for_status()
    finally:
        event.remove(hub_.engine.sync_engine, "begin", on_begin)
    for statement in sent if show else []:
        print("      " + " ".join(statement.split())[:150])
    return len(sent), begun


async def run(show: bool) -> None:
    async with scratch_database(None, True) as url:
        await migrate(url)
        settings = load_settings(
            _env_file=None,
            database_url=url,
            secret_key="s" * 40,
            public_url=BASE,
            twilio_auth_token=TOKEN,
        )
        hub_ = Hub.create(settings)
        validator = RequestValidator(TOKEN)
        transport = httpx.ASGITransport(app=create_app(settings, hub_))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:

            def form(n: int) -> Callable[[], Awaitable[httpx.Response]]:
                body = {"name": "Kunde", "email": f"k{n}@bench.example", "message": "Hallo"}
                return lambda: client.post("/channels/webform", json=body)

            def sms(number: str) -> Callable[[], Awaitable[httpx.Response]]:
                fields = {"MessageSid": f"SM{uuid.uuid4().hex}", "From": number, "Body": "Hi"}
                signature = validator.compute_signature(f"{BASE}/channels/sms/twilio", fields)
                headers = {"X-Twilio-Signature": signature}
                return lambda: client.post("/channels/sms/twilio", data=fields, headers=headers)

            await count(hub_, form(0), False)  # the first of each compiles and caches
            await count(hub_, sms("+4915100000000"), False)
            cases = (
                ("web-form post, new sender", form(1)),
                ("SMS webhook, new sender", sms("+4915100000001")),
                ("SMS webhook, open conversation", sms("+4915100000001")),
            )
            for label, send in cases:
                statements, begun = await count(hub_, send, show)
                print(f"  {label:<32} {statements:>3} statements in {begun} transaction(s)")
        await hub_.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.intake_statements", description=__doc__)
    parser.add_argument("--show", action="store_true", help="print the statements")
    asyncio.run(run(parser.parse_args().show))


if __name__ == "__main__":
    main()
