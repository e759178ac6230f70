"""IMAP intake: every mail in the folder, into the hub exactly once.

    connect ──> select folder ──> UIDVALIDITY changed? ──> resync from UID 1
       ^             │                                     (idempotency keys dedupe)
       │             v
       │        fetch new UIDs with BODY.PEEK[] (marks nothing), per batch of 100:
       │          keep the batch's raw bytes (one commit) ──> per message: parse
       │          ──> ingest + mark it ingested (one commit) ──> then, for the
       │          batch: flag \\Seen or move what was committed (one command),
       │          quarantine the dead ──> remember the batch's last UID
       │             │
       │             v
       │        IDLE until the server says something changed (or poll)
       └── backoff ┘ on a dropped connection

A message is flagged or moved only after the hub committed it, so a crash in
between fetches it again: its raw row already says ingested, so it is only
flagged, and the idempotency key (Message-ID, or a hash of the raw message)
would store it once anyway. The last UID is remembered only after its batch
was flagged, so nothing is skipped unflagged. Mail a person already read
elsewhere is still taken: the intake follows UIDs, not the \\Seen flag. A
message that cannot be taken (even its sender unreadable, or a bug) is retried
from its stored bytes and quarantined after three tries, never stopping the
loop.

imapclient is synchronous; each call runs in a worker thread, one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from channels.email.inbound import IntakeOutcome, take_message
from hub.context import Hub
from hub.mailboxes import get_mailbox_state, keep_raw_batch, mark_failed, save_mailbox_state
from hub.models import RawMessage
from hub.settings import Settings

log = logging.getLogger(__name__)

SEEN = b"\\Seen"
FETCH_BATCH = 100
# Leave IDLE and sync at least this often. RFC 2177 asks for a new IDLE within
# 29 minutes; we go much sooner because a change the server reports in the same
# packet as its "+ idling" lands in imaplib's read buffer, where imapclient's
# idle_check (which polls the socket) never sees it: without a resync that mail
# would wait for the next change.
IDLE_RESYNC_SECONDS = 5.0
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


@dataclass
class BatchOutcome:
    """The UIDs of a batch the hub holds: to flag (or move), or to quarantine."""

    processed: list[int] = field(default_factory=list)
    quarantined: list[int] = field(default_factory=list)


class ImapIntake:
    def __init__(self, hub: Hub, config: ImapConfig, take: Take = take_message) -> None:
        self.hub = hub
        self.config = config
        self.take = take

    async def run(self, stop: asyncio.Event) -> None:
        """Read the folder until `stop` is set, reconnecting with backoff."""
        backoff = 1.0
        while not stop.is_set():
            try:
                await self._session(stop)
                backoff = 1.0
            except (IMAPClientError, OSError) as error:
                log.warning(
                    "IMAP %s: %s; reconnecting in %.0f s", self.config.source, error, backoff
                )
                await _sleep(stop, backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def _session(self, stop: asyncio.Event) -> None:
        client = await asyncio.to_thread(self._connect)
        try:
            while not stop.is_set():
                await self.sync(client)
                await self._wait_for_news(client, stop)
        finally:
            await asyncio.to_thread(_close, client)

    def _connect(self) -> IMAPClient:
        client = IMAPClient(
            self.config.host, port=self.config.port, ssl=self.config.tls, timeout=30
        )
        client.login(self.config.user, self.config.password)
        return client

    async def sync(self, client: IMAPClient) -> int:
        """Take every message past the last UID taken; returns how many were handled."""
        selected = await asyncio.to_thread(client.select_folder, self.config.folder)
        uidvalidity = int(selected[b"UIDVALIDITY"])
        state = await get_mailbox_state(self.hub, self.config.source)
        last_uid = state[1] if state and state[0] == uidvalidity else 0
        if state and state[0] != uidvalidity:
            log.warning("IMAP %s: UIDVALIDITY changed, resyncing", self.config.source)
        uids = [
            u
            for u in await asyncio.to_thread(client.search, ["UID", f"{last_uid + 1}:*"])
            if u > last_uid
        ]
        for start in range(0, len(uids), FETCH_BATCH):
            await self._batch(client, uidvalidity, sorted(uids[start : start + FETCH_BATCH]))
        return len(uids)

    async def _batch(self, client: IMAPClient, uidvalidity: int, batch: list[int]) -> None:
        """Fetch, keep and take one batch; then acknowledge it and remember its last UID."""
        fetched = await asyncio.to_thread(client.fetch, batch, ["BODY.PEEK[]"])
        contents = {
            uid: fetched[uid][b"BODY[]"]
            for uid in batch
            if b"BODY[]" in fetched.get(uid, {})  # else expunged between SEARCH and FETCH
        }
        kept = await keep_raw_batch(self.hub, "email", self.config.source, uidvalidity, contents)
        outcome = BatchOutcome()
        for uid in sorted(kept):
            await self._handle(kept[uid], outcome)
        await self._acknowledge(client, outcome)
        await save_mailbox_state(self.hub, self.config.source, uidvalidity, batch[-1])

    async def _handle(self, raw: RawMessage, outcome: BatchOutcome) -> None:
        """Take a kept message unless an earlier run did; note where it belongs."""
        status = raw.status
        if status not in ("ingested", "quarantined"):
            status = await self._take(raw)
        if status == "ingested":
            outcome.processed.append(raw.uid)
        elif status == "quarantined":
            outcome.quarantined.append(raw.uid)

    async def _take(self, raw: RawMessage) -> str:
        """Try a message up to its third attempt; returns its status afterwards."""
        for _ in range(raw.attempts, 3):
            try:
                await self.take(self.hub, raw, self.config.max_attachment_bytes)
            except Exception as error:  # any failure is recorded; the loop goes on
                log.exception("IMAP %s: UID %s failed", self.config.source, raw.uid)
                failed = await mark_failed(self.hub, raw.id, f"{type(error).__name__}: {error}")
                raw.attempts, raw.status = failed.attempts, failed.status
                if raw.status == "quarantined":
                    return raw.status
                continue
            return "ingested"
        return raw.status

    async def _acknowledge(self, client: IMAPClient, outcome: BatchOutcome) -> None:
        """Flag (or move) the batch's committed messages, and move the quarantined ones."""
        if outcome.processed:
            if self.config.processed_folder:
                await self._move(client, outcome.processed, self.config.processed_folder)
            else:
                await asyncio.to_thread(client.add_flags, outcome.processed, [SEEN])
        if outcome.quarantined:
            await self._move(client, outcome.quarantined, self.config.quarantine_folder)

    async def _move(self, client: IMAPClient, uids: list[int], folder: str) -> None:
        def move() -> None:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.move(uids, folder)

        await asyncio.to_thread(move)

    async def _wait_for_news(self, client: IMAPClient, stop: asyncio.Event) -> None:
        capabilities = await asyncio.to_thread(client.capabilities)
        if b"IDLE" not in capabilities:
            await _sleep(stop, self.config.poll_seconds)
            await asyncio.to_thread(client.noop)
            return
        await asyncio.to_thread(client.idle)
        try:
            waited = 0.0
            while not stop.is_set() and waited < IDLE_RESYNC_SECONDS:
                if await asyncio.to_thread(client.idle_check, 1.0):
                    return
                waited += 1.0
        finally:
            await asyncio.to_thread(client.idle_done)


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
