"""The end of data is the moment an SMTP server takes a message (RFC 5321 section 3.3).

A campaign commits its hand-off once the whole content is on the wire and
before the end of data (`SmtpSender.send_staged`): this holds only because a
server drops a DATA that its connection's end cuts off, and takes one whose
end of data arrived, however soon the client is gone after it. Both are
proven here against aiosmtpd, byte by byte on a raw socket and through the
sender.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from channels.email.sending import END_OF_DATA, SmtpSender, stuff_content
from hub.values import Outbound
from tests.conftest import SECRET

if TYPE_CHECKING:
    from tests.peers.smtp import SmtpServer

SETTLE_SECONDS = 5.0
CONTENT = (
    b"Subject: Neuigkeiten\r\n\r\nHallo Anna,\r\n.punkt am Anfang\r\n" + (b"x" * 70 + b"\r\n") * 40
)


def news(recipient: str = "anna@example.com") -> Outbound:
    return Outbound(
        channel="email",
        recipient=recipient,
        text="Hallo Anna,\n.punkt am Anfang einer Zeile\n" + "Neuigkeiten. " * 300,
        idempotency_key=f"campaign:1:{recipient}",
        subject="Neuigkeiten",
        metadata={"outbox_id": 1, "purpose": "marketing"},
    )


def make_sender(server: SmtpServer) -> SmtpSender:
    return SmtpSender(
        server.host,
        server.port,
        mail_from="news@hub.example",
        secret_key=SECRET,
        tls="plain",
        timeout=5.0,
    )


async def until(condition: Callable[[], object]) -> None:
    async with asyncio.timeout(SETTLE_SECONDS):
        while not condition():  # noqa: ASYNC110 - the server thread fills a list
            await asyncio.sleep(0.01)


async def send_raw(server: SmtpServer, content: bytes) -> None:
    """A client that reads every reply up to the 354, writes `content` and is gone at
    once, as a killed sender is (nothing unread: its socket ends with FIN, not RST)."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    await reader.readline()  # the greeting
    for command in (b"HELO client.test", b"MAIL FROM:<news@hub.example>"):
        writer.write(command + b"\r\n")
        assert (await reader.readline()).startswith(b"250")
    for command, code in ((b"RCPT TO:<anna@example.com>", b"250"), (b"DATA", b"354")):
        writer.write(command + b"\r\n")
        assert (await reader.readline()).startswith(code)
    writer.write(content)
    writer.close()
    await writer.wait_closed()


async def test_a_data_cut_off_before_its_end_by_the_clients_hang_up_is_discarded(
    smtp_server: SmtpServer,
):
    await send_raw(smtp_server, stuff_content(CONTENT))

    await until(lambda: smtp_server.discarded)
    assert smtp_server.messages == []
    (discarded,) = smtp_server.discarded
    assert discarded.rcpt_tos == ("anna@example.com",)
    assert discarded.content_bytes >= len(CONTENT)


async def test_a_data_whose_end_arrived_is_taken_though_the_client_hung_up_at_once(
    smtp_server: SmtpServer,
):
    await send_raw(smtp_server, stuff_content(CONTENT) + END_OF_DATA)

    await until(lambda: smtp_server.messages)
    assert smtp_server.messages[0].raw.startswith(b"Subject: Neuigkeiten")
    assert b"\r\n.punkt am Anfang\r\n" in smtp_server.messages[0].raw
    assert smtp_server.discarded == []


async def test_the_commit_point_comes_with_the_whole_content_sent_and_nothing_taken_yet(
    smtp_server: SmtpServer,
):
    seen_at_commit: list[int] = []

    async def commit() -> None:
        # Whatever the server does with the content, it cannot take it without its end.
        await asyncio.sleep(0.2)
        seen_at_commit.append(len(smtp_server.messages))

    async with make_sender(smtp_server) as sender:
        await sender.send_staged(news(), commit)

    assert seen_at_commit == [0]
    (received,) = smtp_server.messages
    assert received.message.get_content().startswith("Hallo Anna,\n.punkt am Anfang")


async def test_the_end_of_data_leaves_before_the_commits_answer_is_awaited(
    smtp_server: SmtpServer,
):
    taken_before_the_answer: list[int] = []

    async def the_answer() -> None:
        # Only the end of data lets the server take the message: were it written after
        # this, the wait would run out.
        await until(lambda: smtp_server.messages)
        taken_before_the_answer.append(len(smtp_server.messages))

    async def commit() -> Awaitable[None]:
        return the_answer()  # the COMMIT sent, its answer still to come

    async with make_sender(smtp_server) as sender:
        await sender.send_staged(news(), commit)

    assert taken_before_the_answer == [1]


async def test_a_failed_commit_leaves_the_data_unfinished_so_the_server_drops_it(
    smtp_server: SmtpServer,
):
    async def commit() -> None:
        raise RuntimeError("the database went away")

    async with make_sender(smtp_server) as sender:
        try:
            await sender.send_staged(news(), commit)
        except RuntimeError:
            pass
        else:
            raise AssertionError("the commit's failure must reach the caller")
        await until(lambda: smtp_server.discarded)
        assert smtp_server.messages == []
        await sender.send_staged(news("bert@example.com"), None)  # on a new connection

    (discarded,) = smtp_server.discarded
    assert discarded.rcpt_tos == ("anna@example.com",)
    assert discarded.content_bytes > 4000  # the whole content had gone out
    assert [m.rcpt_tos for m in smtp_server.messages] == [("bert@example.com",)]
