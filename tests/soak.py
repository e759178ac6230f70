"""The soak run (issue 11): mixed traffic into a real hub process, then the invariants.

`python -m tests.soak --minutes 15` (the full form; `--seconds 15` is what CI
runs through `tests/test_soak.py`) starts one `omnihub serve` on a fresh
PostgreSQL database, aiosmtpd as the mail sink and the Twilio stand-in, and
for the given time sends, at a steady rate:

    web form posts (JSON, each visitor from an address of its own), SMS
    webhooks (signed), chat messages over the customer websocket, agent
    replies through the API (to the sink, through the outbox) and lookups;
    every tenth delivery of any of these is delivered a second time;
    campaigns, one after the other, by e-mail and by SMS, while recipients of
    them send STOP or use the one-click unsubscribe (RFC 8058).

Afterwards (`tests.soak_checks`): every input answered 2xx is stored once;
every answer that was not 2xx is listed (a visible failure); no outbox key
twice and nothing reached the sink or the Twilio stand-in twice; nothing
reached a recipient after the answer to their STOP or unsubscribe (the
commit came before that answer); no outbox row is left claimed, and every
failed or unknown one says why; the hub's resident memory, sampled every
second, grew by at most `RSS_TOLERANCE` from the first third of the run to
the last. The report says what was sent and what was found.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
from websockets.asyncio.client import connect

from hub.agents import create_agent, create_token
from hub.campaigns.unsubscribe import make_token
from hub.context import Hub
from hub.models import Interaction
from hub.settings import load_settings
from tests.campaign_steps import add_customer
from tests.conftest import SECRET, SignedIn
from tests.peers import smtp, twilio
from tests.peers.databases import PostgresDatabases
from tests.peers.hub_processes import hub_environment, hub_processes
from tests.soak_checks import check, held_rows
from tests.soak_state import OptOut, Plan, Soak

T = TypeVar("T")
PUBLIC_URL = "https://hub.example.com"
ATTEMPTS = 3  # a request that times out is sent again, twice at most
FORM = "/channels/webform"
# The command keeps the hub's log here (the CI form uses pytest's temporary folder).
ARTIFACTS = Path(os.environ.get("OMNIHUB_ARTIFACTS", "artifacts")) / "soak"
EMAIL_TEXT = "Hi {{ customer.name }}\n{{ unsubscribe_url }}"
TEMPLATE_EMAIL = {"variants": {"en": {"subject": "News {{ campaign.name }}", "text": EMAIL_TEXT}}}
TEMPLATE_SMS = {
    "variants": {"en": {"text": "Hi {{ customer.first_name }}, news {{ campaign.name }}"}}
}


# The traffic, one kind per function; each sends one input (and maybe its duplicate).


async def send_webform(soak: Soak, http: httpx.AsyncClient) -> None:
    n = soak.next_number()
    body = {
        "name": f"Besucher {n}",
        "email": f"besucher{n}@example.org",
        "subject": f"Frage {n}",
        "message": f"Wo bleibt Bestellung {n}?",
        "topic": "inquiry",
        "submission_id": f"soak-{n}",
    }
    headers = {"X-Forwarded-For": f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"}
    repeats = 2 if soak.twice() else 1
    for _ in range(repeats):
        answer = await retrying(soak, lambda: http.post(FORM, json=body, headers=headers))
        soak.ledger.answered("webform", answer, ("webform", f"api:soak-{n}"))
    soak.ledger.duplicates += repeats - 1


async def send_sms(soak: Soak, http: httpx.AsyncClient, body: str | None = None) -> None:
    n = soak.next_number()
    number = f"+4915201{n % 500:05d}"
    sid = f"SM{n:032x}"
    fields = twilio.incoming_sms(number, body or f"Frage per SMS {n}", sid=sid)
    await post_twilio(soak, http, "sms", fields, sid)


async def post_twilio(
    soak: Soak, http: httpx.AsyncClient, what: str, fields: list[tuple[str, str]], sid: str
) -> float:
    repeats = 2 if soak.twice() else 1
    answered_at = 0.0
    for _ in range(repeats):
        answer = await retrying(
            soak,
            lambda: twilio.post_signed(http, "/channels/sms/twilio", fields, public_url=PUBLIC_URL),
        )
        answered_at = time.monotonic()
        soak.ledger.answered(what, answer, ("sms", sid))
    soak.ledger.duplicates += repeats - 1
    return answered_at


async def send_chat(soak: Soak, http: httpx.AsyncClient) -> None:
    n = soak.next_number()
    url = soak.base.replace("http://", "ws://") + "/channels/chat/ws"
    async with await retrying(soak, lambda: connect(url, open_timeout=10, close_timeout=2)) as ws:
        await ws.send(json.dumps({"type": "hello", "name": f"Chat {n}"}))
        welcome = await next_frame(ws, "welcome")
        for index in range(1 + n % 2):
            client_id = f"c{index}"
            external = ("chat", f"{welcome['session']}:{client_id}")
            repeats = 2 if soak.twice() else 1
            soak.ledger.duplicates += repeats - 1
            for _ in range(repeats):
                frame = {"type": "message", "client_id": client_id, "text": f"Chat {n}.{index}"}
                answer = await retrying(soak, lambda frame=frame: say(ws, frame))
                soak.ledger.answered("chat", 200 if answer["type"] == "ack" else 599, external)


async def say(ws: Any, frame: dict[str, Any]) -> dict[str, Any]:
    """Send a message frame and read its answer (the widget resends it, same client_id)."""
    await ws.send(json.dumps(frame))
    return await next_frame(ws, "ack", "error")


async def retrying(soak: Soak, attempt: Callable[[], Awaitable[T]]) -> T:
    """As a real client does: after a timeout, the same request again (it is idempotent)."""
    for _ in range(ATTEMPTS - 1):
        try:
            return await attempt()
        except (TimeoutError, httpx.TimeoutException) as error:
            soak.ledger.timeouts[type(error).__name__] += 1
    return await attempt()


async def next_frame(ws: Any, *kinds: str, seconds: float = 20.0) -> dict[str, Any]:
    async with asyncio.timeout(seconds):
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("type") in kinds:
                return frame


async def send_reply(soak: Soak, http: httpx.AsyncClient) -> None:
    """An agent answers the newest web form contact by e-mail (a retry: the same client_id)."""
    async with soak.hub.sessions() as session:
        conversation_id = await session.scalar(
            Interaction.__table__.select()
            .with_only_columns(Interaction.conversation_id)
            .where(Interaction.channel == "webform")
            .order_by(Interaction.id.desc())
            .limit(1)
        )
    if conversation_id is None:
        return
    n = soak.next_number()
    body = {"text": f"Antwort {n}", "channel": "email", "client_id": f"reply-{n}"}
    path = f"/api/conversations/{conversation_id}/reply"
    repeats = 2 if soak.twice() else 1
    soak.ledger.duplicates += repeats - 1
    for _ in range(repeats):
        answer = await retrying(
            soak, lambda: http.post(path, json=body, headers=soak.agent.headers)
        )
        soak.ledger.answers[f"reply {answer.status_code}"] += 1
        if answer.status_code != 202:
            soak.ledger.failures.append(f"reply answered {answer.status_code}: {answer.text}")
    soak.ledger.replies.append(f"Antwort {n}")


async def send_lookup(soak: Soak, http: httpx.AsyncClient) -> None:
    n = soak.random.randrange(soak.plan.email_recipients)
    answer = await http.get(
        "/api/customers/lookup",
        params={"email": f"soak{n}@example.com"},
        headers=soak.agent.headers,
    )
    soak.ledger.answers[f"lookup {answer.status_code}"] += 1
    if answer.status_code != 200:
        soak.ledger.failures.append(f"lookup answered {answer.status_code}")


TRAFFIC: list[tuple[float, Callable[[Soak, httpx.AsyncClient], Awaitable[None]]]] = [
    (0.3, send_webform),
    (0.3, send_sms),
    (0.2, send_chat),
    (0.1, send_reply),
    (0.1, send_lookup),
]


async def drive_traffic(soak: Soak, http: httpx.AsyncClient, until: float) -> None:
    """Inputs at the plan's rate, each in a task of its own so a slow one delays nothing."""
    tasks: set[asyncio.Task[None]] = set()
    weights = [weight for weight, _ in TRAFFIC]
    while time.monotonic() < until:
        (kind,) = soak.random.choices([send for _, send in TRAFFIC], weights)
        task = asyncio.create_task(guarded(soak, kind.__name__, kind(soak, http)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        await asyncio.sleep(1 / soak.plan.rate)
    await asyncio.gather(*tasks)


async def guarded(soak: Soak, what: str, work: Awaitable[None]) -> None:
    try:
        await work
    except Exception as error:  # a failure of the run itself is a visible finding too
        soak.ledger.failures.append(f"{what} raised {type(error).__name__}: {error}")


# Campaigns, and the recipients who opt out while they send.


async def drive_campaigns(soak: Soak, http: httpx.AsyncClient, until: float) -> None:
    while time.monotonic() < until:
        email = await start_campaign(soak, http, "email", TEMPLATE_EMAIL)
        sms = await start_campaign(soak, http, "sms", TEMPLATE_SMS)
        await asyncio.gather(
            churn(soak, http, email, "email", soak.plan.email_recipients),
            churn(soak, http, sms, "sms", soak.plan.sms_recipients),
        )
        await asyncio.gather(wait_done(soak, http, email), wait_done(soak, http, sms))
        await take_back_opt_outs(soak, http)  # so that the population lasts the whole run


async def start_campaign(
    soak: Soak, http: httpx.AsyncClient, channel: str, template: dict[str, Any]
) -> int:
    name = f"soak-{channel}-{len(soak.ledger.campaigns)}"
    body = {"name": name, "channel": channel, "segment": {"tags": [channel]}, "template": template}
    author, approver = soak.agent.headers, soak.supervisor.headers
    created = await http.post("/api/campaigns", json=body, headers=author)
    created.raise_for_status()
    path = f"/api/campaigns/{created.json()['id']}"
    for step, headers in (("preview", author), ("submit", author), ("approve", approver)):
        (await http.post(f"{path}/{step}", headers=headers)).raise_for_status()
    (await http.post(f"{path}/send", headers=approver)).raise_for_status()
    soak.ledger.campaigns.append(created.json()["id"])
    return int(created.json()["id"])


async def churn(soak: Soak, http: httpx.AsyncClient, campaign_id: int, channel: str, size: int):
    """Some recipients opt out while the campaign sends: unsubscribe links, or STOP."""
    leaving = [address_of(channel, n) for n in range(size)]
    soak.random.shuffle(leaving)
    for address in leaving[: max(1, int(size * soak.plan.churn_share))]:
        await asyncio.sleep(soak.random.uniform(0.05, 0.4))
        if channel == "email":
            answered_at = await unsubscribe(soak, http, address, campaign_id)
        else:
            sid = f"SM{soak.next_number():032x}"
            fields = twilio.incoming_sms(address, "STOP", sid=sid)
            answered_at = await post_twilio(soak, http, "stop", fields, sid)
        soak.ledger.opt_outs.append(OptOut(channel, address, campaign_id, answered_at))


async def take_back_opt_outs(soak: Soak, http: httpx.AsyncClient) -> None:
    """Everyone who opted out in this round opts in again (undo link, START) before the next."""
    for opt_out in [o for o in soak.ledger.opt_outs if o.taken_back_at == float("inf")]:
        opt_out.taken_back_at = time.monotonic()
        if opt_out.channel == "email":
            token = make_token(SECRET, "email", opt_out.address, opt_out.campaign_id)
            answer = await retrying(
                soak, lambda token=token: http.post(f"/unsubscribe/{token}/undo")
            )
            soak.ledger.answers[f"undo {answer.status_code}"] += 1
        else:
            sid = f"SM{soak.next_number():032x}"
            fields = twilio.incoming_sms(opt_out.address, "START", sid=sid)
            await post_twilio(soak, http, "start", fields, sid)


async def unsubscribe(soak: Soak, http: httpx.AsyncClient, address: str, campaign_id: int) -> float:
    token = make_token(SECRET, "email", address, campaign_id)
    repeats = 2 if soak.twice() else 1
    for _ in range(repeats):
        answer = await http.post(
            f"/unsubscribe/{token}",
            content=urlencode({"List-Unsubscribe": "One-Click"}),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        soak.ledger.answers[f"unsubscribe {answer.status_code}"] += 1
        if answer.status_code != 200:
            soak.ledger.failures.append(f"unsubscribe answered {answer.status_code}")
    soak.ledger.duplicates += repeats - 1
    return time.monotonic()


async def wait_done(soak: Soak, http: httpx.AsyncClient, campaign_id: int) -> None:
    async with asyncio.timeout(600):
        while True:
            answer = await http.get(f"/api/campaigns/{campaign_id}", headers=soak.agent.headers)
            if answer.json()["status"] == "done":
                return
            await asyncio.sleep(0.5)


def address_of(channel: str, n: int) -> str:
    return f"soak{n}@example.com" if channel == "email" else f"+4915300{n:05d}"


# Memory.


def read_rss(pid: int) -> int:
    """Resident set size of the process in bytes (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def sample_rss(soak: Soak, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            soak.ledger.rss.append((time.monotonic(), read_rss(soak.pid)))
        except FileNotFoundError:  # the hub is gone: the checks will say so
            soak.ledger.failures.append("the hub process ended during the soak")
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


# Setting up, running, and the command.


async def make_people(hub: Hub, plan: Plan) -> tuple[SignedIn, SignedIn]:
    for n in range(plan.email_recipients):
        await add_customer(hub, f"Soak {n}", address_of("email", n), tags=["email"])
    for n in range(plan.sms_recipients):
        await add_customer(hub, f"Sms {n}", phone=address_of("sms", n), channel="sms", tags=["sms"])
    people = []
    async with hub.work() as work:
        for role in ("agent", "supervisor"):
            made = await create_agent(
                work.session, f"{role}@soak.test", role, role, "horse battery"
            )
            people.append(SignedIn(made.id, made.email, await create_token(work.session, made)))
    return people[0], people[1]


def hub_env(database_url: str, sink: smtp.SmtpServer, api: twilio.TwilioApi, plan: Plan):
    return hub_environment(
        database_url=database_url,
        secret_key=SECRET,
        public_url=PUBLIC_URL,
        smtp_host=sink.host,
        smtp_port=str(sink.port),
        smtp_tls="false",
        mail_from="service@omnihub.test",
        twilio_account_sid=twilio.ACCOUNT_SID,
        twilio_auth_token=twilio.AUTH_TOKEN,
        twilio_from_number=twilio.OUR_NUMBER,
        twilio_api_base_url=api.url,
        campaign_rate=str(plan.campaign_rate),
        marketing_cap="100000",
    )


async def run_soak(plan: Plan, database_url: str, folder: Path) -> Any:
    hub = Hub.create(load_settings(_env_file=None, database_url=database_url, secret_key=SECRET))
    try:
        agent, supervisor = await make_people(hub, plan)
        with smtp.serving() as sink, twilio.serving() as api:
            receipts = timestamp(sink, api)
            env = hub_env(database_url, sink, api, plan)
            with hub_processes(env, 1, folder) as (process,):
                soak = Soak(plan, process.base, hub, agent, supervisor, process.process.pid)
                await drive(soak, time.monotonic() + plan.seconds)
                log = process.log
            return await check(soak, sink, api, receipts, log.read_text(errors="replace"))
    finally:
        await hub.close()


def timestamp(sink: smtp.SmtpServer, api: twilio.TwilioApi) -> dict[int, float]:
    """When each message reached the sink or the stand-in (keyed by the object's id)."""
    receipts: dict[int, float] = {}

    def stamped(record: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def recording(item: Any) -> Any:
            result = record(item)
            receipts[id(result if result is not None else item)] = time.monotonic()
            return result

        return recording

    sink.record = stamped(sink.record)  # type: ignore[method-assign]
    api.record = stamped(api.record)  # type: ignore[method-assign]
    return receipts


async def drive(soak: Soak, until: float) -> None:
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(soak, stop))
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(base_url=soak.base, timeout=30, limits=limits) as http:
        await asyncio.gather(drive_traffic(soak, http, until), drive_campaigns(soak, http, until))
        await drain(soak)
    stop.set()
    await sampler


async def drain(soak: Soak, seconds: float = 120) -> None:
    """Wait until the outbox has nothing queued or claimed; what is left, the checks report."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while await held_rows(soak.hub):  # noqa: ASYNC110 - polling the database
                await asyncio.sleep(0.5)


async def fresh_database() -> tuple[PostgresDatabases, str, Any]:
    databases = PostgresDatabases()
    await databases.prepare()
    fresh = databases.fresh()
    return databases, await anext(fresh), fresh


async def main_async(plan: Plan) -> int:
    databases, url, fresh = await fresh_database()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        report = await run_soak(plan, url, ARTIFACTS)
    finally:
        with contextlib.suppress(StopAsyncIteration):
            await anext(fresh)
        await databases.drop_all()
    print(report.render())
    return 0 if report.ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--minutes", type=float, help="the full form: 15")
    parser.add_argument("--seconds", type=float, help="or this many seconds (CI: 15)")
    options = parser.parse_args()
    seconds = options.seconds or (options.minutes or 15) * 60
    sys.exit(asyncio.run(main_async(Plan(seconds=seconds))))


if __name__ == "__main__":
    main()
