"""How often one may guess a password: failed sign-ins per e-mail and per client address.

    key                 allowed failures        window
    e-mail (casefold)   PER_EMAIL  (5)          WINDOW_SECONDS (15 min)
    client address      PER_ADDRESS (30)        WINDOW_SECONDS

Only failures count; a success forgets the e-mail's failures (not the
address's: one address guessing many accounts stays slowed). Past the limit a
sign-in is refused with 429 and Retry-After before the password is even
checked, so a correct guess cannot be told apart while limited.

The counts live in the process (`SigninLimits`), or, with `OMNIHUB_REDIS_URL`
set, in Redis (`hub.signin_limits_redis`), where every hub process counts
the same failures: N processes behind a balancer allow the limit, not N
times it. While Redis is away, each process's own counts hold the line.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from fastapi import HTTPException, Request

PER_EMAIL = 5
PER_ADDRESS = 30
WINDOW_SECONDS = 15 * 60
SWEEP_AT = 100_000  # keys kept before the expired ones are swept out


@dataclass
class SigninLimits:
    per_email: int = PER_EMAIL
    per_address: int = PER_ADDRESS
    window: float = WINDOW_SECONDS
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    async def retry_after(self, email: str, address: str) -> int | None:
        """Seconds until this sign-in may be tried again, or None when it may be now."""
        now = self.clock()
        keys = ((email_key(email), self.per_email), (address_key(address), self.per_address))
        longest = max(self._wait(key, limit, now) for key, limit in keys)
        return math.ceil(longest) if longest > 0 else None

    async def record_failure(self, email: str, address: str) -> None:
        now = self.clock()
        if len(self._failures) >= SWEEP_AT:
            self._sweep(now)
        for key in (email_key(email), address_key(address)):
            self._failures.setdefault(key, deque()).append(now)

    async def record_success(self, email: str) -> None:
        self._failures.pop(email_key(email), None)

    async def close(self) -> None:
        """Nothing to let go: the counts are this process's memory."""

    def _wait(self, key: str, limit: int, now: float) -> float:
        failures = self._failures.get(key)
        if failures is None:
            return 0.0
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(failures) < limit:
            return 0.0
        return max(failures[-limit] + self.window - now, 1.0)

    def _sweep(self, now: float) -> None:
        """Forget keys whose failures are all older than the window (memory stays bounded)."""
        for key in [k for k, f in self._failures.items() if not f or f[-1] <= now - self.window]:
            del self._failures[key]


class Limits(Protocol):
    async def retry_after(self, email: str, address: str) -> int | None: ...
    async def record_failure(self, email: str, address: str) -> None: ...
    async def record_success(self, email: str) -> None: ...
    async def close(self) -> None: ...


def email_key(email: str) -> str:
    return "e:" + email.strip().casefold()


def address_key(address: str) -> str:
    return "a:" + address


def limits_of(request: Request) -> Limits:
    return request.app.state.hub.signin_limits


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def check_signin_allowed(request: Request, email: str) -> None:
    """Refuse with 429 and Retry-After while the e-mail or the address is limited."""
    wait = await limits_of(request).retry_after(email, client_address(request))
    if wait is not None:
        raise HTTPException(
            429, "too many failed sign-ins; try again later", headers={"Retry-After": str(wait)}
        )


async def record_signin(request: Request, email: str, succeeded: bool) -> None:
    limits = limits_of(request)
    if succeeded:
        await limits.record_success(email)
    else:
        await limits.record_failure(email, client_address(request))
