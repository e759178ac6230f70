"""IMAP intake: every mail in the folder, into the hub exactly once.

    connect ──> select folder ──> UIDVALIDITY changed? ──> resync from UID 1
       ^             │                                     (idempotency keys dedupe)
       │             v
       │        fetch new UIDs with BODY.PEEK[] (marks nothing), in order:
       │          keep the raw bytes ──> parse ──> ingest (commit) ──> flag \\Seen
       │          or move ──> remember the UID
       │             │
       │             v
       │        IDLE until the server says something changed (or poll)
       └── backoff ┘ on a dropped connection

A message is flagged or moved only after the hub committed it, so a crash in
between fetches it again and the idempotency key (Message-ID, or a hash of
the raw message) stores it once. Mail a person already read elsewhere is still
taken: the intake follows UIDs, not the \\Seen flag. A message that cannot be
taken (even its sender unreadable, or a bug) is retried from its stored bytes
and quarantined after three tries, never stopping the loop.

imapclient is synchronous; each call runs in a worker thread, one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from channels.email.inbound import IntakeOutcome, take_message
from hub.context import Hub
from hub.mailboxes import get_mailbox_state, keep_raw, mark_done, mark_failed, save_mailbox_state
from hub.models import RawMessage
from hub.settings import Settings

log = logging.getLogger(__name__)

SEEN = b"\\Seen"
FETCH_BATCH = 100
IDLE_RENEW_SECONDS = 25 * 60  # RFC 2177: re-issue IDLE within 29 minutes
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


Take = Callable[[Hub, RawMessage, int], Awaitable[IntakeOutcome]]


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
            batch = sorted(uids[start : start + FETCH_BATCH])
            fetched = await asyncio.to_thread(client.fetch, batch, ["BODY.PEEK[]"])
            for uid in batch:
                await self._handle(client, uidvalidity, uid, fetched.get(uid, {}))
        return len(uids)

    async def _handle(
        self, client: IMAPClient, uidvalidity: int, uid: int, data: dict[bytes, Any]
    ) -> None:
        raw_bytes = data.get(b"BODY[]")
        if raw_bytes is None:
            return  # expunged between SEARCH and FETCH
        raw = await keep_raw(self.hub, "email", self.config.source, uidvalidity, uid, raw_bytes)
        if raw.status not in ("ingested", "quarantined"):
            await self._take(client, raw)
        await save_mailbox_state(self.hub, self.config.source, uidvalidity, uid)

    async def _take(self, client: IMAPClient, raw: RawMessage) -> None:
        for _ in range(raw.attempts, 3):
            try:
                outcome = await self.take(self.hub, raw, self.config.max_attachment_bytes)
            except Exception as error:  # any failure is recorded; the loop goes on
                log.exception("IMAP %s: UID %s failed", self.config.source, raw.uid)
                raw = await mark_failed(self.hub, raw.id, f"{type(error).__name__}: {error}")
                if raw.status == "quarantined":
                    await self._quarantine(client, raw.uid)
                    return
                continue
            await mark_done(self.hub, raw.id, "ingested", outcome.interaction_id)
            await self._mark_processed(client, raw.uid)
            return

    async def _mark_processed(self, client: IMAPClient, uid: int) -> None:
        if self.config.processed_folder:
            await self._move(client, uid, self.config.processed_folder)
        else:
            await asyncio.to_thread(client.add_flags, [uid], [SEEN])

    async def _quarantine(self, client: IMAPClient, uid: int) -> None:
        await self._move(client, uid, self.config.quarantine_folder)

    async def _move(self, client: IMAPClient, uid: int, folder: str) -> None:
        def move() -> None:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.move([uid], folder)

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
            while not stop.is_set() and waited < IDLE_RENEW_SECONDS:
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
