"""The database goes away under a webhook: no 2xx before the durable write, and the retry
after it comes back stores the message once.

PostgreSQL is reached through a TCP proxy on loopback that the test can cut:
cutting closes every open connection and refuses new ones, as a database that
restarts or a network that drops does. (Status callbacks arriving reversed
and twice are tests/test_sms.py::test_status_callbacks_out_of_order_or_repeated_…)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

from hub.app import create_app
from hub.context import Hub
from hub.db import IDLE_PING_SECONDS, check_pooled_connection
from hub.models import Interaction
from hub.settings import Settings
from tests.peers.twilio import TwilioApi, incoming_sms, post_signed
from tests.sms_steps import PUBLIC_URL, WEBHOOK, twilio_settings

ANNA = "+491512345678"


class CuttableProxy:
    """Forwards 127.0.0.1:port to PostgreSQL until cut; cut drops and refuses connections."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.is_cut = False
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None
        self.refused = 0

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        self.cut()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    def cut(self) -> None:
        self.is_cut = True
        for writer in list(self.writers):
            writer.close()
        self.writers.clear()

    def restore(self) -> None:
        self.is_cut = False

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_cut:
            self.refused += 1
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self.writers |= {writer, up_writer}
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        finally:
            self.writers.discard(sink)
            sink.close()


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[CuttableProxy]:
    url = make_url(database_url)
    if not url.drivername.startswith("postgresql"):
        pytest.skip("the database going away is tested on PostgreSQL")
    running = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def proxied_hub(
    settings: Settings, proxy: CuttableProxy, twilio_api: TwilioApi
) -> AsyncIterator[Hub]:
    url = make_url(settings.database_url).set(host="127.0.0.1", port=proxy.port)
    through_proxy = settings.model_copy(
        update={"database_url": url.render_as_string(hide_password=False)}
    )
    hub = Hub.create(twilio_settings(through_proxy, twilio_api))
    yield hub
    with contextlib.suppress(Exception):
        await hub.close()


@pytest.fixture
async def http(proxied_hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(proxied_hub.settings, proxied_hub)
    # A server error must come back as Twilio sees it, a 500, not as an exception here.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
        yield http


async def stored_sms(hub: Hub, sid: str) -> list[Interaction]:
    statement = select(Interaction).where(
        Interaction.channel == "sms", Interaction.external_id.contains(sid)
    )
    async with hub.sessions() as session:
        return list(await session.scalars(statement))


async def test_a_webhook_while_the_database_is_away_gets_a_5xx_and_its_retry_is_stored_once(
    proxied_hub: Hub, proxy: CuttableProxy, http: httpx.AsyncClient
):
    fields = incoming_sms(ANNA, "Wo bleibt mein Paket?", sid="SMfault0001")
    warm = await post_signed(
        http, WEBHOOK, incoming_sms(ANNA, "hallo", sid="SMwarm0001"), public_url=PUBLIC_URL
    )
    assert warm.is_success, warm.text  # the pool holds live connections when the cut comes

    proxy.cut()
    during = [await post_signed(http, WEBHOOK, fields, public_url=PUBLIC_URL) for _ in range(2)]
    proxy.restore()
    retries = [await post_signed(http, WEBHOOK, fields, public_url=PUBLIC_URL) for _ in range(2)]

    assert [answer.status_code >= 500 for answer in during] == [True, True], [
        (answer.status_code, answer.text[:200]) for answer in during
    ]
    assert proxy.refused >= 1, "the hub really tried to reach the database"
    assert all(answer.is_success for answer in retries), [a.text for a in retries]
    stored = await stored_sms(proxied_hub, "SMfault0001")
    assert [message.text for message in stored] == ["Wo bleibt mein Paket?"]


async def test_the_database_dropping_connections_mid_traffic_loses_and_doubles_nothing(
    proxied_hub: Hub, proxy: CuttableProxy, http: httpx.AsyncClient
):
    """Twenty texts, each retried until acknowledged, the database cut after every third."""
    acknowledged: dict[str, int] = {}
    for number in range(20):
        sid = f"SMflap{number:04d}"
        fields = incoming_sms(ANNA, f"Nachricht {number}", sid=sid)
        if number % 3 == 2:
            proxy.cut()
        for attempt in range(1, 4):
            answer = await post_signed(http, WEBHOOK, fields, public_url=PUBLIC_URL)
            if answer.is_success:
                acknowledged[sid] = attempt
                break
            assert answer.status_code >= 500, answer.text
            proxy.restore()  # Twilio retries later; by then the database is back

    assert len(acknowledged) == 20
    assert any(attempts > 1 for attempts in acknowledged.values()), "some did meet the cut"
    for number in range(20):
        stored = await stored_sms(proxied_hub, f"SMflap{number:04d}")
        assert [message.text for message in stored] == [f"Nachricht {number}"], number


async def test_a_web_form_post_while_the_database_is_away_gets_a_5xx_and_its_retry_counts_once(
    proxied_hub: Hub, proxy: CuttableProxy, http: httpx.AsyncClient
):
    body = {
        "name": "Anna",
        "email": "anna@example.com",
        "message": "Die Vase war zerbrochen.",
        "submission_id": "fault-1",
    }

    proxy.cut()
    during = await http.post("/channels/webform", json=body)
    proxy.restore()
    first = await http.post("/channels/webform", json=body)
    again = await http.post("/channels/webform", json=body)

    assert during.status_code >= 500, during.text
    assert (first.status_code, again.status_code) == (201, 200), (first.text, again.text)
    assert first.json()["reference"] == again.json()["reference"]
    statement = select(Interaction).where(Interaction.channel == "webform")
    async with proxied_hub.sessions() as session:
        stored = list(await session.scalars(statement))
    assert [interaction.text for interaction in stored] == ["Die Vase war zerbrochen."]


async def test_a_restart_while_the_hub_is_idle_costs_no_request(
    proxied_hub: Hub, proxy: CuttableProxy, http: httpx.AsyncClient
):
    """The pooled connections the database closed while nobody used them are replaced
    as they leave the pool, so the first webhook after the restart is stored at once."""
    warm = await post_signed(
        http, WEBHOOK, incoming_sms(ANNA, "hallo", sid="SMidle0001"), public_url=PUBLIC_URL
    )
    assert warm.is_success, warm.text

    proxy.cut()
    await asyncio.sleep(0.2)  # the restart; the hub's idle connections see them closed
    proxy.restore()
    after = await post_signed(
        http, WEBHOOK, incoming_sms(ANNA, "Wieder da?", sid="SMidle0002"), public_url=PUBLIC_URL
    )

    assert after.is_success, after.text
    assert [message.text for message in await stored_sms(proxied_hub, "SMidle0002")] == [
        "Wieder da?"
    ]


class _Silent:
    """A connection the server dropped without a word: open here, and no answer to a ping."""

    def __init__(self) -> None:
        self.pinged = 0

    def is_closed(self) -> bool:
        return False

    def ping(self) -> None:
        self.pinged += 1
        raise ConnectionResetError("no answer")


class _Record:
    def __init__(self, connection: _Silent, idle_seconds: float) -> None:
        self.driver_connection = connection
        self.info = {"idle_since": time.monotonic() - idle_seconds}


def test_a_connection_idle_long_is_pinged_and_one_that_does_not_answer_is_refused():
    silent = _Silent()
    with pytest.raises(DisconnectionError):
        check_pooled_connection(silent, _Record(silent, IDLE_PING_SECONDS + 1), None)
    assert silent.pinged == 1


def test_a_connection_just_used_is_not_pinged():
    silent = _Silent()
    check_pooled_connection(silent, _Record(silent, 0.01), None)
    assert silent.pinged == 0


async def test_a_connection_idle_long_is_pinged_and_kept_when_it_answers(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
):
    if hub.engine.dialect.name != "postgresql":
        pytest.skip("the pool's connections are checked on PostgreSQL")
    monkeypatch.setattr("hub.db.IDLE_PING_SECONDS", 0.0)  # every checkout pings
    backends = []
    for _ in range(3):
        async with hub.engine.connect() as connection:
            backends.append(await connection.scalar(text("SELECT pg_backend_pid()")))
        await asyncio.sleep(0.01)

    assert len(set(backends)) == 1, "a ping that failed would have opened a new connection"
