"""Sending e-mail: `SmtpSender` delivers an `Outbound` through the SMTP relay in settings.

The message is built by `channels.email.composition` (every header value
made safe there).

One connection is opened lazily and reused for every message, one message at
a time (a lock). It is dropped after any error that leaves its state in
doubt and opened again for the next message; a reused connection found dead
before anything was sent (the server closed it while idle) is replaced once,
at once. TLS as configured, never falling back to plain text:

    smtp_tls  smtp_port  connection
    false     any        plain (a relay on the same host, the tests)
    true      465        implicit TLS (RFC 8314)
    true      any other  STARTTLS, required (RFC 3207)

and AUTH (RFC 4954) when smtp_user is set. The EHLO names the domain of
mail_from. Every network step has a timeout (`timeout`, 30 s by default).

Failures map onto the hub's delivery errors (reply codes per RFC 5321):

    connect, TLS, EHLO or AUTH failed      ──> TransientDeliveryError
    connection lost or timed out before
      the end of the content was sent      ──> TransientDeliveryError
    MAIL FROM, RCPT TO, DATA or the reply
      after the content answered   4xx     ──> TransientDeliveryError
                                   5xx     ──> PermanentDeliveryError  (code and text kept)
    connection lost or timed out after the
      end of the content, before the reply ──> UnknownDeliveryError    (it may have gone out)
    a recipient SMTP cannot carry          ──> PermanentDeliveryError

aiosmtplib's `sendmail` cannot tell the last two connection losses apart, and
its `data()` writes the content and its end together, so the transaction is
driven here step by step with its protocol's `write` and `read_response`:

    MAIL FROM, RCPT TO, DATA  (354)
    the content, dot-stuffed, ending in CRLF, flushed to the socket
    the caller's commit point (`send_staged`), its COMMIT on the wire
    the end of data, CRLF.CRLF (written at once: nothing may come between)
    the reply (250), then the commit's answer

Without a commit point (`send`), the content and its end go in one write: each
write wakes the server, and under load a third of a hub's busy time was spent
in writes (bench/README.md, bench.intake).

A server accepts a message only with the end of data: one whose DATA ends
because the connection did (the sender crashed, or dropped the connection
because its commit failed) is discarded, with no reply, as if the transaction
had not been (RFC 5321 section 3.3: the end of mail data "confirms the mail
transaction and tells the SMTP server to now process" it; section 3.8: a
connection closed mid-transaction counts as a 451; section 6.1: the server
takes responsibility with its 250). aiosmtpd does so (its DATA loop is
cancelled by the end of the connection; tests/test_email_end_of_data.py). So
until the end of data is written the message can be sent again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Literal

from aiosmtplib import (
    SMTP,
    SMTPDataError,
    SMTPException,
    SMTPRecipientRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)
from aiosmtplib.protocol import SMTPProtocol

from channels.email.composition import check_recipient, parse_mail_from, render_message
from channels.email.message_ids import make_message_id, make_reply_address
from hub.delivery import (
    DeliveryError,
    PermanentDeliveryError,
    Receipt,
    TransientDeliveryError,
    UnknownDeliveryError,
)
from hub.settings import ENV_PREFIX, Settings, SettingsError
from hub.transports import drained
from hub.values import Outbound

log = logging.getLogger(__name__)

TlsMode = Literal["plain", "starttls", "implicit"]

SUBMISSIONS_PORT = 465  # implicit TLS, RFC 8314
TIMEOUT_SECONDS = 30.0
QUIT_SECONDS = 5.0
START_MAIL_INPUT = 354
COMPLETED = 250
END_OF_DATA = b".\r\n"  # after content that ends in CRLF: the CRLF.CRLF of RFC 5321
_LINE_END = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"(?m)^\.")
_STEPS: dict[type[SMTPResponseException], str] = {
    SMTPSenderRefused: "MAIL FROM",
    SMTPRecipientRefused: "RCPT TO",
    SMTPDataError: "DATA",
}


# The caller's commit point: what it returns, if anything, is the commit's answer still
# to come, awaited once the end of data is written and its reply read (`send_staged`).
Hook = Callable[[], Awaitable[Awaitable[None] | None]]


class _LostBeforeContentError(TransientDeliveryError):
    """The connection died before any of the message was sent: safe to try again."""


class SmtpSender:
    """Delivers outbound e-mail through one SMTP relay, over one reused connection."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        mail_from: str,
        secret_key: str,
        tls: TlsMode = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = TIMEOUT_SECONDS,
        tls_context: ssl.SSLContext | None = None,
        reply_addresses: bool = True,
    ) -> None:
        """Raises ValueError when mail_from is not one address with a domain."""
        self.host = host
        self.port = port
        self.mail_from = mail_from
        self.sender = parse_mail_from(mail_from)
        self.secret_key = secret_key
        self.tls = tls
        self.username = username
        self.password = password
        self.timeout = timeout
        self.tls_context = tls_context
        self.reply_addresses = reply_addresses
        self._smtp: SMTP | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout: float = TIMEOUT_SECONDS) -> SmtpSender:
        if not settings.smtp_host:
            raise SettingsError(f"{ENV_PREFIX}SMTP_HOST: required to send e-mail")
        assert settings.secret_key is not None  # Settings always fills it in
        try:
            return cls(
                settings.smtp_host,
                settings.smtp_port,
                mail_from=settings.mail_from,
                secret_key=settings.secret_key,
                tls=choose_tls(settings.smtp_tls, settings.smtp_port),
                username=settings.smtp_user,
                password=settings.smtp_password,
                timeout=timeout,
                reply_addresses=settings.mail_reply_addresses,
            )
        except ValueError as error:
            raise SettingsError(f"{ENV_PREFIX}MAIL_FROM: {error}") from None

    async def send(self, outbound: Outbound) -> Receipt:
        return await self.send_staged(outbound, None)

    async def send_staged(self, outbound: Outbound, before_end: Hook | None) -> Receipt:
        """`send`, calling `before_end` once the whole content is on the wire but its end
        (CRLF.CRLF) is not: the caller's commit point (a campaign marks the message
        handed over there), after which the end of data is written at once. If it
        raises, the connection is dropped, so the server discards the unfinished
        message, and its exception propagates. If it returns an awaitable (its
        COMMIT sent, the answer not yet read), that is awaited after the end of
        data is written and the server's reply read, so the COMMIT and the end of
        data are on the wire within microseconds of each other."""
        recipient = check_recipient(outbound.recipient)
        message_id = self.make_message_id(outbound)
        reply_to = self.make_reply_address(outbound)
        content = self.render(outbound, message_id, reply_to)
        async with self._lock:
            try:
                await self._deliver(recipient, content, before_end)
            except asyncio.CancelledError:
                self._drop()  # cut off mid-command: the connection's state is unknown
                raise
        return Receipt(provider_id=message_id)

    def render(self, outbound: Outbound, message_id: str, reply_to: str | None = None) -> bytes:
        """The message as bytes (`channels.email.bulk` renders campaigns faster)."""
        return render_message(outbound, self.sender, message_id, reply_to).as_bytes()

    def make_reply_address(self, outbound: Outbound) -> str | None:
        """Our address with the conversation in it, for replies; None outside a conversation."""
        conversation_id = outbound.metadata.get("conversation_id")
        if not (self.reply_addresses and conversation_id):
            return None
        return make_reply_address(
            self.secret_key, self.sender.username, self.sender.domain, int(conversation_id)
        )

    def make_message_id(self, outbound: Outbound) -> str:
        conversation_id = outbound.metadata.get("conversation_id") or 0
        outbox_id = outbound.metadata.get("outbox_id") or 0
        return make_message_id(self.secret_key, self.sender.domain, conversation_id, outbox_id)

    async def close(self) -> None:
        """Say QUIT and close the connection, if one is open."""
        async with self._lock:
            smtp, self._smtp = self._smtp, None
            if smtp is None:
                return
            try:
                if smtp.is_connected:
                    await smtp.quit(timeout=min(self.timeout, QUIT_SECONDS))
            except (SMTPException, OSError):
                pass  # it is closed below either way
            finally:
                smtp.close()

    async def __aenter__(self) -> SmtpSender:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _deliver(self, recipient: str, content: bytes, before_end: Hook | None) -> None:
        reused = self._smtp is not None and self._smtp.is_connected
        try:
            await self._transact(await self._connection(), recipient, content, before_end)
        except _LostBeforeContentError as error:
            if not reused:
                raise
            log.info("SMTP connection to %s had gone (%s); opening a new one", self.host, error)
            await self._transact(await self._connection(), recipient, content, before_end)

    async def _connection(self) -> SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        self._drop()
        smtp = SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            local_hostname=self.sender.domain,
            timeout=self.timeout,
            use_tls=self.tls == "implicit",
            start_tls=self.tls == "starttls",
            tls_context=self.tls_context if self.tls != "plain" else None,
        )
        try:
            await smtp.connect()  # closes itself when it fails
        except (SMTPException, OSError) as error:
            raise TransientDeliveryError(
                f"cannot open an SMTP connection to {self.host}:{self.port}: {describe(error)}"
            ) from error
        self._smtp = smtp
        return smtp

    async def _transact(
        self, smtp: SMTP, recipient: str, content: bytes, before_end: Hook | None
    ) -> None:
        await self._start(smtp, recipient)
        if before_end is None:
            # No commit point to come between: the content and its end in one write.
            await self._read_reply(await self._send_content(smtp, content, with_end=True))
            return
        protocol = await self._send_content(smtp, content)
        try:
            answer = await before_end()
        except BaseException:
            self._drop()  # the DATA is left unfinished: the server discards it
            raise
        # The commit point above has returned: nothing may come between it and this
        # write (no await), since a crash in between loses the message.
        try:
            self._end_data(protocol)
            # Read at once: aiosmtplib drops a reply that comes while nobody reads.
            await self._read_reply(protocol)
        finally:
            if answer is not None:
                await answer

    async def _start(self, smtp: SMTP, recipient: str) -> None:
        """MAIL FROM, RCPT TO and DATA, up to the server's go-ahead for the content."""
        try:
            await smtp.mail(self.sender.addr_spec)
            await smtp.rcpt(recipient)
            reply = await smtp.execute_command(b"DATA")
            if reply.code != START_MAIL_INPUT:
                raise SMTPDataError(reply.code, reply.message)
        except SMTPResponseException as error:
            await self._reset(smtp)
            raise refused(error) from error
        except ConnectionError as error:  # SMTPServerDisconnected is one
            self._drop()
            raise _LostBeforeContentError(
                f"SMTP connection lost before the message was sent: {describe(error)}"
            ) from error
        except (SMTPException, OSError) as error:
            self._drop()
            raise TransientDeliveryError(
                f"SMTP failed before the message was sent: {describe(error)}"
            ) from error

    async def _send_content(
        self, smtp: SMTP, content: bytes, *, with_end: bool = False
    ) -> SMTPProtocol:
        """The content without its end, flushed to the socket: the server holds it, and
        drops it if the connection ends before the end of data (safe to send again).
        `with_end`: the end too, in the same write, from where a lost connection may
        have delivered (`_read_reply`)."""
        protocol = smtp.protocol
        try:
            if protocol is None:
                raise SMTPServerDisconnected("Connection lost")
            protocol.write(stuff_content(content) + (END_OF_DATA if with_end else b""))
            if not with_end:
                await self._flushed(protocol)
        except (SMTPException, OSError) as error:
            self._drop()
            raise _LostBeforeContentError(
                f"SMTP connection lost before the message was sent: {describe(error)}"
            ) from error
        return protocol

    async def _flushed(self, protocol: SMTPProtocol) -> None:
        """Wait until the transport has handed everything to the kernel, so that the end
        of data goes out with the write that follows the commit, not later."""
        transport = protocol.transport
        if (
            transport is not None
            and not await drained(transport, self.timeout)
            and not transport.is_closing()
        ):
            raise SMTPTimeoutError("timed out sending the message content")
        if protocol.transport is None or protocol.transport.is_closing():
            raise SMTPServerDisconnected("Connection lost")

    def _end_data(self, protocol: SMTPProtocol) -> None:
        try:
            protocol.write(END_OF_DATA)
        except SMTPServerDisconnected as error:
            # The end of data never left: the server drops the message (not sent).
            self._drop()
            raise TransientDeliveryError(
                f"SMTP connection lost before the end of the message: {describe(error)}"
            ) from error

    async def _read_reply(self, protocol: SMTPProtocol) -> None:
        """The reply to the end of data: from here a lost connection may have delivered."""
        try:
            reply = await protocol.read_response(timeout=self.timeout)
        except (SMTPException, OSError) as error:
            self._drop()
            raise UnknownDeliveryError(
                "SMTP connection lost after the message was sent, before the server's "
                f"answer; it may have been delivered: {describe(error)}"
            ) from error
        if reply.code != COMPLETED:
            if not 400 <= reply.code <= 599:
                self._drop()  # an answer that makes no sense here: the session is confused
            raise refused(SMTPDataError(reply.code, reply.message))

    async def _reset(self, smtp: SMTP) -> None:
        """RSET after a refusal keeps the connection for the next message, if it still works."""
        try:
            await smtp.rset()
        except (SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None


def choose_tls(tls: bool, port: int) -> TlsMode:
    if not tls:
        return "plain"
    return "implicit" if port == SUBMISSIONS_PORT else "starttls"


def stuff_content(content: bytes) -> bytes:
    """The message as DATA carries it before its end: CRLF lines, leading dots doubled,
    the last line ended (RFC 5321 section 4.5.2, transparency). END_OF_DATA follows."""
    lines = _LINE_END.sub(b"\r\n", content)
    if not lines.endswith(b"\r\n"):
        lines += b"\r\n"
    return _LEADING_DOT.sub(b"..", lines)


def refused(error: SMTPResponseException) -> DeliveryError:
    """4xx is worth another try, 5xx never will be; anything else is a confused server."""
    step = _STEPS.get(type(error), "SMTP")
    text = f"{step} refused: {error.code} {error.message}"
    if 500 <= error.code <= 599:
        return PermanentDeliveryError(text)
    return TransientDeliveryError(text)


def describe(error: BaseException) -> str:
    if isinstance(error, SMTPResponseException):
        return f"{error.code} {error.message}"
    if isinstance(error, SMTPException):
        return error.message or type(error).__name__
    return str(error) or type(error).__name__
