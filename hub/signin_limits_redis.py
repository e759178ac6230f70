"""Failed sign-ins counted in Redis, so that every hub process sees the same counts.

One sorted set per key (`<prefix>:signin:e:<e-mail>`, `...:a:<address>`), a
member per failure scored by its time (the wall clock: processes on several
machines share it), expiring a window after the last failure. A check is one
round trip for both keys (drop what left the window, count, read the
limit-th newest); so is recording a failure. Sign-in is not a hot path.

Each process also counts in its own `SigninLimits`: while Redis does not
answer, those counts decide (logged once an outage), so a process never
becomes easier to guess against than it is alone.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hub.signin_limits import (
    PER_ADDRESS,
    PER_EMAIL,
    WINDOW_SECONDS,
    SigninLimits,
    address_key,
    email_key,
)

log = logging.getLogger(__name__)


class RedisSigninLimits:
    def __init__(
        self,
        url: str,
        prefix: str,
        *,
        per_email: int = PER_EMAIL,
        per_address: int = PER_ADDRESS,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = f"{prefix}:signin:"
        self.per_email, self.per_address, self.window = per_email, per_address, window
        self._clock = clock
        self.local = SigninLimits(per_email, per_address, window)
        self._away = False

    async def retry_after(self, email: str, address: str) -> int | None:
        """Seconds until this sign-in may be tried again, or None when it may be now."""
        now = self._clock()
        keys = [(self._key(email_key(email)), self.per_email)]
        keys.append((self._key(address_key(address)), self.per_address))
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, limit in keys:
                    pipe.zremrangebyscore(key, "-inf", now - self.window)
                    pipe.zcard(key)
                    pipe.zrange(key, -limit, -limit, withscores=True)
                replies = await pipe.execute()
        except (RedisError, OSError) as error:
            self._lost(error)
            return await self.local.retry_after(email, address)
        self._back()
        longest = 0.0
        for index, (_key, limit) in enumerate(keys):
            count, oldest = replies[3 * index + 1], replies[3 * index + 2]
            if count >= limit and oldest:  # oldest: the limit-th newest failure and its time
                longest = max(longest, oldest[0][1] + self.window - now, 1.0)
        return math.ceil(longest) if longest > 0 else None

    async def record_failure(self, email: str, address: str) -> None:
        await self.local.record_failure(email, address)
        now = self._clock()
        member = f"{now:.6f}:{uuid.uuid4().hex[:8]}"
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in (self._key(email_key(email)), self._key(address_key(address))):
                    pipe.zadd(key, {member: now})
                    pipe.expire(key, math.ceil(self.window))
                await pipe.execute()
        except (RedisError, OSError) as error:
            self._lost(error)
            return
        self._back()

    async def record_success(self, email: str) -> None:
        await self.local.record_success(email)
        try:
            await self._redis.delete(self._key(email_key(email)))
        except (RedisError, OSError) as error:
            self._lost(error)
            return
        self._back()

    async def close(self) -> None:
        await self._redis.aclose()

    def _key(self, key: str) -> str:
        return self._prefix + key

    def _lost(self, error: Exception) -> None:
        if not self._away:
            log.warning("sign-in limits: Redis does not answer (%s); counting here", error)
        self._away = True

    def _back(self) -> None:
        if self._away:
            log.info("sign-in limits: counting in Redis again")
        self._away = False
