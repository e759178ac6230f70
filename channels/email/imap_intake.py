"""IMAP intake: every mail in the folder, into the hub exactly once.

Two loops share the work, so that reading the mailbox never waits for the
slower parsing and threading, and a flood of mail leaves the server at the
speed of FETCH:

    reading:  connect ──> select folder ──> UIDVALIDITY changed? ──> resync from UID 1
       ^          │                                     (idempotency keys dedupe)
       │          v
       │     fetch new UIDs with BODY.PEEK[] (marks nothing), in batches of 100,
       │       the next batch fetched while this one is stored: its raw bytes and
       │       the folder's last UID in one commit ──> wake the taking loop
       │          │
       │          v
       │     acknowledge what the taking loop settled: flag \\Seen or move what
       │       the hub committed, move the quarantined; mark them acknowledged
       │          │
       │          v
       │     IDLE until the server says something changed, the taking loop
       │       settled something, or a while passed (or poll without IDLE)
       └── backoff ┘ on a dropped connection

    taking:   the kept messages still waiting, oldest first: parse, ingest and
              mark the raw row ingested in one commit; a failure is retried from
              the stored bytes and quarantined after three tries, never stopping
              the loop ──> wake the reading loop to acknowledge

A message is flagged or moved only after the hub committed its contact, so a
crash anywhere leaves it unflagged, and its raw row (kept before anything
parsed it) says where it stands: waiting, taken but not acknowledged, or done.
The idempotency key (Message-ID, or a hash of the raw message) would store it
once anyway. Mail a person already read elsewhere is still taken: the intake
follows UIDs, not the \\Seen flag.

imapclient is synchronous; each call runs in a worker thread, one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from sqlalchemy.exc import InterfaceError, SQLAlchemyError

from channels.email.inbound import IntakeOutcome, take_message
from hub.context import Hub
from hub.mailboxes import (
    MAX_ATTEMPTS,
    get_mailbox_state,
    keep_raw_batch,
    mark_acknowledged,
    mark_failed,
    settled_unacknowledged,
    waiting_raw,
)
from hub.models import RawMessage
from hub.settings import Settings

log = logging.getLogger(__name__)

SEEN = b"\\Seen"
FETCH_BATCH = 100
FETCH_AHEAD = 8  # batches fetched and not yet stored, at most
TAKE_BATCH = 100
# Leave IDLE and sync at least this often (RFC 2177 asks for a new IDLE within
# 29 minutes): a safety net for a change that went unreported, and how soon
# another process's settled messages are acknowledged.
IDLE_RESYNC_SECONDS = 30.0
IDLE_CHECK_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class ImapConfig:
    host: str
    port: int
    user: str
    password: str
    folder: str = "INBOX"
    tls: bool = True
    processed_folder: str | None = None
    quarantine_folder: str = "Quarantine"
    max_attachment_bytes: int = 10 * 1024 * 1024
    poll_seconds: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ImapConfig:
        return cls(
            host=settings.imap_host or "",
            port=settings.imap_port,
            user=settings.imap_user or "",
            password=settings.imap_password or "",
            folder=settings.imap_folder,
            tls=settings.imap_tls,
            processed_folder=settings.imap_processed_folder,
            quarantine_folder=settings.imap_quarantine_folder,
            max_attachment_bytes=settings.mail_max_attachment_bytes,
            poll_seconds=settings.imap_poll_seconds,
        )

    @property
    def source(self) -> str:
        return f"imap://{self.user}@{self.host}:{self.port}/{self.folder}"


# Takes a kept raw message; when it returns, the hub committed the message and
# its raw row's status `ingested` together. Raises when the message cannot be taken.
Take = Callable[[Hub, RawMessage, int], Awaitable[IntakeOutcome]]


class ImapIntake:
    def __init__(self, hub: Hub, config: ImapConfig, take: Take = take_message) -> None:
        self.hub = hub
        self.config = config
        self.take = take
        self._kept = asyncio.Event()  # raw messages wait to be taken
        self._settled = asyncio.Event()  # taken messages wait to be acknowledged
        self._uidvalidity: int | None = None  # of the folder as last selected

    async def run(self, stop: asyncio.Event) -> None:
        """Read the folder and take what was kept, until `stop` is set."""
        await asyncio.gather(self._keep_reading(stop), self._keep_taking(stop))

    async def sync(self, client: IMAPClient) -> int:
        """Read, take and acknowledge once, in order; returns how many new UIDs were read."""
        read = await self.read_new(client)
        await self.take_waiting()
        await self.acknowledge(client)
        return read

    # --- reading ----------------------------------------------------------------

    async def _keep_reading(self, stop: asyncio.Event) -> None:
        backoff = 1.0
        while not stop.is_set():
            try:
                await self._session(stop)
                backoff = 1.0
            except (IMAPClientError, OSError, SQLAlchemyError) as error:
                # The server or the database went away: start again from the stored
                # position, which only ever moves in the commit that keeps the mail.
                log.warning(
                    "IMAP %s: %s; reconnecting in %.0f s", self.config.source, error, backoff
                )
                await _sleep(stop, backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def _session(self, stop: asyncio.Event) -> None:
        client = await asyncio.to_thread(self._connect)
        try:
            while not stop.is_set():
                self._settled.clear()
                await self.read_new(client)
                await self.acknowledge(client)
                await self._wait_for_news(client, stop)
        finally:
            await asyncio.to_thread(_close, client)

    def _connect(self) -> IMAPClient:
        client = IMAPClient(
            self.config.host, port=self.config.port, ssl=self.config.tls, timeout=30
        )
        client.login(self.config.user, self.config.password)
        return client

    async def read_new(self, client: IMAPClient) -> int:
        """Keep every message past the last UID kept; returns how many UIDs were new."""
        selected = await asyncio.to_thread(client.select_folder, self.config.folder)
        uidvalidity = self._uidvalidity = int(selected[b"UIDVALIDITY"])
        state = await get_mailbox_state(self.hub, self.config.source)
        last_uid = state[1] if state and state[0] == uidvalidity else 0
        if state and state[0] != uidvalidity:
            log.warning("IMAP %s: UIDVALIDITY changed, resyncing", self.config.source)
        found = await asyncio.to_thread(client.search, ["UID", f"{last_uid + 1}:*"])
        uids = sorted(u for u in found if u > last_uid)
        batches = [uids[start : start + FETCH_BATCH] for start in range(0, len(uids), FETCH_BATCH)]
        await self._keep_batches(client, uidvalidity, batches)
        return len(uids)

    async def _keep_batches(
        self, client: IMAPClient, uidvalidity: int, batches: list[list[int]]
    ) -> None:
        """Fetch the batches one after another while storing what came, in order.

        One worker thread FETCHes batch after batch without waiting for the
        event loop in between, as a bare FETCH loop would; storing takes
        whatever batches were fetched meanwhile in one transaction, with the
        folder's new last UID, so the hub keeps pace with FETCH instead of
        paying one commit per batch. At most `FETCH_AHEAD` batches wait.
        """
        fetched: queue.Queue[tuple[int, dict[int, bytes]] | None] = queue.Queue(FETCH_AHEAD)
        stopped = threading.Event()
        fetching = asyncio.ensure_future(
            asyncio.to_thread(_fetch_all, client, batches, fetched, stopped)
        )
        try:
            while (waiting := [await asyncio.to_thread(fetched.get)])[-1] is not None:
                while waiting[-1] is not None and not fetched.empty():
                    waiting.append(fetched.get_nowait())
                ready = [item for item in waiting if item is not None]
                contents = {uid: body for _, batch in ready for uid, body in batch.items()}
                await keep_raw_batch(
                    self.hub, "email", self.config.source, uidvalidity, contents, ready[-1][0]
                )
                self._kept.set()
                if waiting[-1] is None:
                    break
        finally:
            stopped.set()
            while not fetching.done():  # let the fetcher finish its call and see `stopped`
                with contextlib.suppress(queue.Empty):
                    while True:
                        fetched.get_nowait()
                await asyncio.wait({fetching}, timeout=0.05)
            with contextlib.suppress(queue.Full):  # frees a get left waiting by a cancellation
                fetched.put_nowait(None)
        await fetching  # the fetcher's own error, if it had one

    async def acknowledge(self, client: IMAPClient) -> int:
        """Flag (or move) the committed messages and move the quarantined; returns how many."""
        if self._uidvalidity is None:
            return 0
        settled = await settled_unacknowledged(self.hub, self.config.source, self._uidvalidity)
        processed = sorted(uid for _, uid, status in settled if status == "ingested")
        quarantined = sorted(uid for _, uid, status in settled if status == "quarantined")
        if processed:
            if self.config.processed_folder:
                await self._move(client, processed, self.config.processed_folder)
            else:
                await asyncio.to_thread(client.add_flags, processed, [SEEN])
        if quarantined:
            await self._move(client, quarantined, self.config.quarantine_folder)
        await mark_acknowledged(self.hub, [raw_id for raw_id, _, _ in settled])
        return len(settled)

    async def _move(self, client: IMAPClient, uids: list[int], folder: str) -> None:
        def move() -> None:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.move(uids, folder)

        await asyncio.to_thread(move)

    async def _wait_for_news(self, client: IMAPClient, stop: asyncio.Event) -> None:
        capabilities = await asyncio.to_thread(client.capabilities)
        if b"IDLE" not in capabilities:
            await _wait_for_any(stop, self._settled, self.config.poll_seconds)
            await asyncio.to_thread(client.noop)
            return
        await asyncio.to_thread(client.idle)
        try:
            waited = 0.0
            while not (stop.is_set() or self._settled.is_set()) and waited < IDLE_RESYNC_SECONDS:
                if _has_buffered_response(client):
                    return
                if await asyncio.to_thread(client.idle_check, IDLE_CHECK_SECONDS):
                    return
                waited += IDLE_CHECK_SECONDS
        finally:
            await asyncio.to_thread(client.idle_done)

    # --- taking -----------------------------------------------------------------

    async def _keep_taking(self, stop: asyncio.Event) -> None:
        backoff = 1.0
        while not stop.is_set():
            self._kept.clear()
            try:
                if await self.take_waiting():
                    self._settled.set()
                backoff = 1.0
            except (SQLAlchemyError, OSError) as error:
                log.warning(
                    "IMAP %s: taking kept mail failed: %s; again in %.0f s",
                    self.config.source,
                    error,
                    backoff,
                )
                await _sleep(stop, backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            await _wait_for_any(stop, self._kept, self.config.poll_seconds)

    async def take_waiting(self) -> int:
        """Take every kept message still waiting, oldest first; returns how many were tried."""
        tried: set[int] = set()
        while batch := [
            raw
            for raw in await waiting_raw(self.hub, self.config.source, TAKE_BATCH)
            if raw.id not in tried
        ]:
            for raw in batch:
                tried.add(raw.id)
                await self._take(raw)
        return len(tried)

    async def _take(self, raw: RawMessage) -> str:
        """Try a message up to its third attempt; returns its status afterwards."""
        for _ in range(raw.attempts, MAX_ATTEMPTS):
            try:
                await self.take(self.hub, raw, self.config.max_attachment_bytes)
            except Exception as error:  # any failure is recorded; the loop goes on
                if is_outage(error):
                    raise  # not the message's fault: the taking loop waits and tries again
                log.exception("IMAP %s: UID %s failed", self.config.source, raw.uid)
                failed = await mark_failed(self.hub, raw.id, f"{type(error).__name__}: {error}")
                raw.attempts, raw.status = failed.attempts, failed.status
                if raw.status == "quarantined":
                    return raw.status
                continue
            return "ingested"
        return raw.status


def is_outage(error: BaseException) -> bool:
    """Whether the database or the network went away (as opposed to the message failing)."""
    return isinstance(error, OSError | InterfaceError) or bool(
        getattr(error, "connection_invalidated", False)
    )


def _fetch_all(
    client: IMAPClient,
    batches: list[list[int]],
    fetched: queue.Queue[tuple[int, dict[int, bytes]] | None],
    stopped: threading.Event,
) -> None:
    """FETCH every batch in turn (in a worker thread), handing each over with its last UID."""
    try:
        for batch in batches:
            if stopped.is_set():
                return
            fetched.put((batch[-1], _fetch(client, batch)))
    finally:
        fetched.put(None)


def _fetch(client: IMAPClient, uids: list[int]) -> dict[int, bytes]:
    fetched = client.fetch(uids, ["BODY.PEEK[]"])
    return {
        uid: fetched[uid][b"BODY[]"]
        for uid in uids
        if b"BODY[]" in fetched.get(uid, {})  # else expunged between SEARCH and FETCH
    }


def _has_buffered_response(client: IMAPClient) -> bool:
    """Whether imaplib already read a server response that idle_check cannot see.

    A change the server reports in the same packet as its "+ idling" lands in
    imaplib's buffered reader together with that line; imapclient's idle_check
    polls the socket, which is empty by then, so the change would wait for the
    next one. Peeking the buffer without blocking finds it.
    """
    reader = getattr(getattr(client, "_imap", None), "file", None)
    if reader is None or not hasattr(reader, "peek"):
        return False
    sock = client.socket()
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return bool(reader.peek(1))
    except OSError:
        return False
    finally:
        sock.settimeout(timeout)


def _close(client: IMAPClient) -> None:
    """Log out, or at least close the socket of a connection the server dropped."""
    try:
        client.logout()
    except Exception:
        with contextlib.suppress(Exception):
            client.shutdown()


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _wait_for_any(stop: asyncio.Event, news: asyncio.Event, seconds: float) -> None:
    """Wait until `stop` or `news` is set, or `seconds` passed."""
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(news.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
