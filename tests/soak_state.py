"""What a soak run is (`tests/soak.py`): its plan, the ledger of what it sent and what
came back, and the running soak's handles."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import httpx

from hub.context import Hub
from tests.conftest import SignedIn

DUPLICATE_SHARE = 0.1


@dataclass(frozen=True, slots=True)
class Plan:
    """How much of everything: `seconds` of traffic at `rate` inputs a second."""

    seconds: float
    rate: float = 8.0
    email_recipients: int = 200
    sms_recipients: int = 60
    campaign_rate: float = 40.0
    churn_share: float = 0.1  # of each campaign's recipients, who STOP or unsubscribe mid-send


@dataclass
class OptOut:
    channel: str
    address: str
    campaign_id: int
    answered_at: float
    taken_back_at: float = float("inf")


@dataclass
class Ledger:
    """What the soak sent, and what came back, in the order it happened."""

    stored: dict[str, set[str]] = field(default_factory=dict)  # channel -> external ids, 2xx
    answers: Counter[str] = field(default_factory=Counter)
    timeouts: Counter[str] = field(default_factory=Counter)  # retried, as clients do
    failures: list[str] = field(default_factory=list)
    duplicates: int = 0
    # channel, address, campaign, when the opt-out was answered, when it was taken back
    opt_outs: list[OptOut] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)  # reply texts answered 202 queued
    campaigns: list[int] = field(default_factory=list)
    rss: list[tuple[float, int]] = field(default_factory=list)

    def answered(self, what: str, answer: httpx.Response | int, external: tuple[str, str]) -> None:
        status = answer if isinstance(answer, int) else answer.status_code
        self.answers[f"{what} {status}"] += 1
        if 200 <= status < 300:
            self.stored.setdefault(external[0], set()).add(external[1])
        else:
            self.failures.append(f"{what} answered {status} for {external[1]}")


@dataclass
class Soak:
    plan: Plan
    base: str
    hub: Hub
    agent: SignedIn
    supervisor: SignedIn
    pid: int
    ledger: Ledger = field(default_factory=Ledger)
    random: random.Random = field(default_factory=lambda: random.Random(11))
    counter: int = 0

    def next_number(self) -> int:
        self.counter += 1
        return self.counter

    def twice(self) -> bool:
        return self.random.random() < DUPLICATE_SHARE
