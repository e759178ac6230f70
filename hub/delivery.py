"""What a channel's sender is, and how it says a delivery failed.

A sender has one method, `send(outbound) -> Receipt`. It raises

    DeliveryError
     ├── TransientDeliveryError   try again later (connection refused, 4xx SMTP, 429, 5xx)
     ├── PermanentDeliveryError   never going to work (5xx SMTP, invalid number)
     │    └── RecipientRefusedError   the recipient opted out at the provider (Twilio
     │                                21610): the hub blocks the address with that reason
     └── UnknownDeliveryError     it may have gone out (connection lost after SMTP DATA):
                                  the row becomes `unknown` for reconciliation, never re-sent

and nothing else on purpose: the dispatcher treats any other exception as
transient, so a bug in a sender delays mail instead of losing it. `RecordingSender`
is the test sender: it records what it was given, and can be told to fail.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from hub.values import Outbound


class DeliveryError(Exception):
    """A sender could not deliver."""


class TransientDeliveryError(DeliveryError):
    """Worth another try after a backoff."""


class PermanentDeliveryError(DeliveryError):
    """Will never succeed; the message is failed with this reason."""


class RecipientRefusedError(PermanentDeliveryError):
    """The provider says the recipient refuses our messages; `block_reason` names the block."""

    def __init__(self, message: str, block_reason: str) -> None:
        super().__init__(message)
        self.block_reason = block_reason


class UnknownDeliveryError(DeliveryError):
    """Whether the message went out cannot be known; sending again could duplicate it."""


@dataclass(frozen=True, slots=True)
class Receipt:
    provider_id: str


class Sender(Protocol):
    async def send(self, outbound: Outbound) -> Receipt: ...


@dataclass
class RecordingSender:
    """Records every outbound it is handed; queued errors are raised first, in order."""

    sent: list[Outbound] = field(default_factory=list)
    failures: deque[Exception] = field(default_factory=deque)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def send(self, outbound: Outbound) -> Receipt:
        if self.failures:
            raise self.failures.popleft()
        self.sent.append(outbound)
        return Receipt(f"test-{next(self._ids)}")

    def fail_next(self, *errors: Exception) -> None:
        self.failures.extend(errors)
