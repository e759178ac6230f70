"""A real SMTP server on 127.0.0.1 for the tests: aiosmtpd, with faults a test can queue.

    server.fail_next("rcpt", 550, "5.1.1 no such user")  answer the next RCPT TO so
    server.fail_next("data", 451, "4.3.0 try later")      ... the DATA command
    server.fail_next("content", 554, "5.7.1 refused")      ... the end of the content
    server.drop_next("content")                            close the connection instead
    server.stall_next("mail")                              say nothing (the client times out)
    await server.drop_connections()                        close every open connection now
    server.stop(); server.start()                          vanish, and come back on the same port

Steps are "mail", "rcpt", "data" (the command, before the content) and
"content" (the reply after it). Queued faults are used in order, each at the
first step it names, as GNU Mailman's `testing/mta.py` does. What arrived is in
`messages` (envelope and raw bytes, parsed on demand), a DATA cut off by the
end of its connection before its end of data (dropped, as RFC 5321 wants) in
`discarded`, with how much of it had come; `connections` counts
the connections that said EHLO or HELO. aiosmtpd runs the server in a thread
of its own; `serving()` and the fixtures close every connection before they
stop it, so no transport is left for the garbage collector.

Fixtures: `smtp_server` (plain, accepts everything), `make_smtp_server(tls=...,
certificate=..., credentials=(user, password))`, `closed_port` (nothing
listens there) and `tls_certificate`.

`tls_certificate` makes a self-signed certificate for 127.0.0.1 with the
openssl command, for STARTTLS and implicit TLS servers.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal, cast

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.peers import missing_peer

HOST = "127.0.0.1"
SERVER_NAME = "smtp.peer.test"
START_SECONDS = 5.0
STALL_SECONDS = 10.0  # bounded: a stalled step answers 451 after this, if still connected
CLOSE_SECONDS = 5.0
EOF_READ_SECONDS = 0.001  # how often a session that got EOF is checked for unread lines
EOF_READ_TRIES = 1000  # then it ends anyway (a session busy elsewhere, a stalled step)

Step = Literal["mail", "rcpt", "data", "content"]
TlsMode = Literal["plain", "starttls", "implicit"]


@dataclass(frozen=True, slots=True)
class Fault:
    step: Step
    action: Literal["answer", "drop", "stall"]
    reply: str = ""


@dataclass(frozen=True, slots=True)
class Received:
    """One message the server accepted: the envelope and the bytes as they came."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    login: str | None
    tls: bool

    @property
    def message(self) -> EmailMessage:
        """Parsed with lines ending in LF, as a mail store keeps them."""
        text = self.raw.replace(b"\r\n", b"\n")
        return cast(EmailMessage, message_from_bytes(text, policy=policy.default))

    @property
    def header_lines(self) -> list[bytes]:
        """The raw header lines, folded continuations still on lines of their own."""
        head = self.raw.split(b"\r\n\r\n", 1)[0]
        return head.split(b"\r\n")

    @property
    def header_names(self) -> list[str]:
        """The name of every header field, in order, read off the raw lines."""
        return [
            line.split(b":", 1)[0].decode("ascii", "replace")
            for line in self.header_lines
            if line and line[:1] not in (b" ", b"\t")
        ]


@dataclass(frozen=True, slots=True)
class Discarded:
    """A DATA the connection's end cut off before its end: the server dropped it."""

    rcpt_tos: tuple[str, ...]
    content_bytes: int  # what had arrived of it (the DATA command's line not counted)


@dataclass(frozen=True, slots=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


class SmtpServer:
    """The server a test talks to, and the faults it has queued."""

    def __init__(
        self,
        *,
        tls: TlsMode = "plain",
        certificate: Certificate | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        if tls != "plain" and certificate is None:
            raise ValueError("a TLS server needs a certificate")
        self.host = HOST
        self.port = find_free_port()
        self.tls = tls
        self.certificate = certificate
        self.credentials = credentials
        self.messages: list[Received] = []
        self.discarded: list[Discarded] = []
        self.connections = 0
        self._faults: deque[Fault] = deque()
        self._open: set[PeerSmtp] = set()
        self._lock = threading.Lock()
        self._controller = PeerController(self)
        self._stopped = False

    def fail_next(self, step: Step, code: int, text: str) -> None:
        self._queue(Fault(step, "answer", f"{code} {text}"))

    def drop_next(self, step: Step) -> None:
        self._queue(Fault(step, "drop"))

    def stall_next(self, step: Step) -> None:
        self._queue(Fault(step, "stall"))

    async def drop_connections(self) -> None:
        """Close every connection from the server's side, as an idle timeout does."""
        await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(self._close_all(), self._controller.loop)
        )

    def start(self) -> None:
        if self._stopped:
            # A stopped controller's loop is closed: a new one brings the server back
            # on the same port (the SMTP server that vanished comes back).
            self._controller = PeerController(self)
            self._stopped = False
        self._controller.start()

    def stop(self) -> None:
        future = asyncio.run_coroutine_threadsafe(self._shut(), self._controller.loop)
        future.result(CLOSE_SECONDS)
        self._controller.stop()
        self._stopped = True

    # Called on the server's thread.

    async def until_received(self, count: int, seconds: float = 60.0) -> None:
        """Until `count` messages have arrived (TimeoutError after `seconds`)."""
        async with asyncio.timeout(seconds):
            while len(self.messages) < count:  # noqa: ASYNC110 - the server's thread fills a list
                await asyncio.sleep(0.005)

    def take_fault(self, step: Step) -> Fault | None:
        with self._lock:
            if self._faults and self._faults[0].step == step:
                return self._faults.popleft()
            return None

    def record(self, received: Received) -> None:
        with self._lock:
            self.messages.append(received)

    def discard(self, discarded: Discarded) -> None:
        with self._lock:
            self.discarded.append(discarded)

    def opened(self, smtp: PeerSmtp) -> None:
        with self._lock:
            self._open.add(smtp)

    def closed(self, smtp: PeerSmtp) -> None:
        with self._lock:
            self._open.discard(smtp)

    def greeted(self) -> None:
        with self._lock:
            self.connections += 1

    def _queue(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    async def _shut(self) -> None:
        """Stop listening, then close every connection: none is accepted in between
        (clients retrying against a server going away) and left open."""
        if self._controller.server is not None:
            self._controller.server.close()
        await self._close_all()

    async def _close_all(self) -> None:
        with self._lock:
            open_now = list(self._open)
        for smtp in open_now:
            if smtp.transport is not None:
                smtp.transport.close()
        if open_now:
            await asyncio.wait([smtp.lost for smtp in open_now], timeout=CLOSE_SECONDS)


class PeerController(Controller):
    def __init__(self, peer: SmtpServer) -> None:
        context = peer.certificate.server_context() if peer.certificate else None
        super().__init__(
            PeerHandler(peer),
            hostname=peer.host,
            port=peer.port,
            ready_timeout=START_SECONDS,
            ssl_context=context if peer.tls == "implicit" else None,
        )
        self.peer = peer
        self.tls_context = context if peer.tls == "starttls" else None

    def factory(self) -> PeerSmtp:
        options: dict[str, Any] = {}
        if self.peer.credentials is not None:
            # AUTH is offered without TLS too, so that the plain tests can log in.
            options.update(authenticator=self.check_login, auth_require_tls=False)
        if self.tls_context is not None:
            options.update(tls_context=self.tls_context, require_starttls=True)
        return PeerSmtp(self.peer, self.handler, hostname=SERVER_NAME, **options)

    def check_login(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and self.peer.credentials == (
            data.login.decode(),
            data.password.decode(),
        )
        return AuthResult(success=ok, auth_data=data if ok else None)


class PeerSmtp(SMTP):
    """aiosmtpd's SMTP session, with the queued faults at MAIL, RCPT and DATA."""

    def __init__(self, peer: SmtpServer, handler: PeerHandler, **options: Any) -> None:
        super().__init__(handler, **options)
        self.peer = peer
        self.lost: asyncio.Future[None] = self.loop.create_future()
        self._greeted = False
        self._content_bytes: int | None = None  # inside DATA: what has arrived of it

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None  # STARTTLS makes a connection a second time
        super().connection_made(transport)
        if first:
            self.peer.opened(self)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self.peer.closed(self)
        if not self.lost.done():
            self.lost.set_result(None)

    def eof_received(self) -> bool | None:
        """The client's end of stream ends the session once the session has read what
        came before it, as an MTA reading its input in order does.

        aiosmtpd cancels the session at EOF at once, dropping lines it has received
        but not yet read: a whole message with its end of data, sent just before the
        client died, would vanish, where Postfix or Exim would accept it (the
        duplicate-message case of RFC 1047). An unfinished DATA is still discarded:
        the end is passed on as soon as no complete line is left unread.
        """
        if self.session is None or self.session.ssl is not None or not self._has_unread_line():
            return super().eof_received()
        self._end_after_reading(EOF_READ_TRIES)
        return True  # keep the transport: the cancelled session closes it

    def _end_after_reading(self, tries: int) -> None:
        if tries and self.transport is not None and self._has_unread_line():
            self.loop.call_later(EOF_READ_SECONDS, self._end_after_reading, tries - 1)
            return
        super().eof_received()

    def _has_unread_line(self) -> bool:
        return b"\n" in self._reader._buffer  # type: ignore[attr-defined]

    async def smtp_EHLO(self, hostname: str) -> None:
        self._count_greeting()
        await super().smtp_EHLO(hostname)

    async def smtp_HELO(self, hostname: str) -> None:
        self._count_greeting()
        await super().smtp_HELO(hostname)

    async def smtp_MAIL(self, arg: str | None) -> None:
        if not await self.act_on_fault("mail"):
            await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str | None) -> None:
        if not await self.act_on_fault("rcpt"):
            await super().smtp_RCPT(arg)

    async def smtp_DATA(self, arg: str) -> None:
        if await self.act_on_fault("data"):
            return
        self._content_bytes = 0
        try:
            await super().smtp_DATA(arg)
        except asyncio.CancelledError:  # the connection ended before the end of data
            self.peer.discard(Discarded(tuple(self.envelope.rcpt_tos), self._content_bytes))
            raise
        finally:
            self._content_bytes = None

    def data_received(self, data: bytes) -> None:
        if self._content_bytes is not None:
            self._content_bytes += len(data)
        super().data_received(data)

    async def act_on_fault(self, step: Step) -> bool:
        fault = self.peer.take_fault(step)
        if fault is None:
            return False
        await self.push(await self.answer(fault))
        return True

    async def answer(self, fault: Fault) -> str:
        """The reply a fault asks for; a dropped or stalled step waits to be cancelled."""
        if fault.action == "answer":
            return fault.reply
        if fault.action == "drop" and self.transport is not None:
            self.transport.close()  # connection_lost then cancels this session's task
        await asyncio.sleep(STALL_SECONDS)
        return "451 4.3.0 the test server stalled"

    def _count_greeting(self) -> None:
        if not self._greeted:
            self._greeted = True
            self.peer.greeted()


class PeerHandler:
    def __init__(self, peer: SmtpServer) -> None:
        self.peer = peer

    async def handle_DATA(self, server: PeerSmtp, session: Session, envelope: Envelope) -> str:
        fault = self.peer.take_fault("content")
        if fault is not None:
            return await server.answer(fault)
        self.peer.record(
            Received(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                raw=bytes(envelope.original_content or b""),
                login=_login(session),
                tls=_is_tls(server),
            )
        )
        return "250 2.0.0 OK: queued"


def _is_tls(server: PeerSmtp) -> bool:
    return server.transport is not None and bool(server.transport.get_extra_info("ssl_object"))


def _login(session: Session) -> str | None:
    data = session.auth_data
    return data.login.decode() if isinstance(data, LoginPassword) else None


def find_free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(
    *,
    tls: TlsMode = "plain",
    certificate: Certificate | None = None,
    credentials: tuple[str, str] | None = None,
) -> Iterator[SmtpServer]:
    server = SmtpServer(tls=tls, certificate=certificate, credentials=credentials)
    server.start()
    try:
        yield server
    finally:
        server.stop()


MakeSmtpServer = Callable[..., SmtpServer]


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A plain SMTP server on 127.0.0.1 that accepts everything unless told otherwise."""
    with serving() as server:
        yield server


@pytest.fixture
def make_smtp_server() -> Iterator[MakeSmtpServer]:
    """Start servers with options (`tls`, `certificate`, `credentials`); all stop at the end."""
    with ExitStack() as servers:
        yield lambda **options: servers.enter_context(serving(**options))


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    return find_free_port()


@pytest.fixture(scope="session")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1, made once per run with openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        missing_peer("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("tls")
    certificate = Certificate(folder / "cert.pem", folder / "key.pem")
    subprocess.run(
        [
            cast(str, openssl),
            *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", f"/CN={HOST}", "-addext", f"subjectAltName=IP:{HOST}"),
            *("-keyout", str(certificate.key), "-out", str(certificate.cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return certificate
