"""Spam defences without third-party services: an ordered table of named rules.

A submission that passed the field checks is asked each rule in turn; the
first rule that refuses it names the reason (see `rejections`). Only the last
rule, the rate limit, changes anything: it counts the submission.

    rule          refuses when
    honeypot      the field hidden from people and screen readers is filled in
    form_token    a form post has no genuine form token (JSON clients need none,
                  but one they send must be genuine)
    expired       the form was served more than FORM_MAX_AGE_SECONDS ago
    too_fast      it came less than MIN_FILL_SECONDS after the form was served
    rate_limited  RATE_LIMIT other submissions came from the same IP address
                  within RATE_WINDOW_SECONDS (a repeat of a counted one passes)

The limits are module constants until the settings carry them. The rate
limit's window lives in this process: with several hub processes each counts
on its own, so the effective limit is multiplied by their number (a shared
window belongs in Redis).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from channels.webform.rejections import RejectedError
from channels.webform.submission import Submission
from channels.webform.tokens import FormClaim

MIN_FILL_SECONDS = 3.0
FORM_MAX_AGE_SECONDS = 24 * 3600.0
RATE_LIMIT = 5
RATE_WINDOW_SECONDS = 600.0
MAX_TRACKED_ADDRESSES = 10_000


@dataclass
class SlidingWindow:
    """Distinct items per key within the last `seconds`; expired entries are dropped as we go."""

    hits: dict[str, deque[tuple[float, str]]] = field(default_factory=dict)

    def hit(self, key: str, item: str, now: float, limit: int, seconds: float) -> bool:
        """Count `item` for `key` unless the key is full; whether it is allowed."""
        recent = self._recent(key, now, seconds)
        if any(seen == item for _, seen in recent):
            return True
        if len(recent) >= limit:
            return False
        recent.append((now, item))
        return True

    def wait_seconds(self, key: str, now: float, seconds: float) -> float:
        """How long until the key's oldest counted item leaves the window."""
        recent = self._recent(key, now, seconds)
        return max(0.0, recent[0][0] + seconds - now) if recent else 0.0

    def _recent(self, key: str, now: float, seconds: float) -> deque[tuple[float, str]]:
        if key not in self.hits and len(self.hits) >= MAX_TRACKED_ADDRESSES:
            self._sweep(now, seconds)
        recent = self.hits.setdefault(key, deque())
        while recent and recent[0][0] <= now - seconds:
            recent.popleft()
        return recent

    def _sweep(self, now: float, seconds: float) -> None:
        """Forget keys with nothing in the window; in a flood of keys, the older half too."""
        for key in [key for key, recent in self.hits.items() if _last(recent) <= now - seconds]:
            del self.hits[key]
        if len(self.hits) >= MAX_TRACKED_ADDRESSES:
            oldest = sorted(self.hits, key=lambda key: _last(self.hits[key]))
            for key in oldest[: len(oldest) // 2 + 1]:
                del self.hits[key]


def _last(recent: deque[tuple[float, str]]) -> float:
    return recent[-1][0] if recent else float("-inf")


@dataclass(frozen=True, slots=True)
class Attempt:
    """One submission as the rules see it."""

    submission: Submission
    claim: FormClaim | None
    external_id: str
    ip: str
    now: float
    window: SlidingWindow


def _is_honeypot_filled(attempt: Attempt) -> bool:
    return bool(attempt.submission.honeypot.strip())


def _lacks_genuine_token(attempt: Attempt) -> bool:
    expected = attempt.submission.kind == "form" or attempt.submission.form_token is not None
    return expected and attempt.claim is None


def _is_stale(attempt: Attempt) -> bool:
    claim = attempt.claim
    return claim is not None and attempt.now - claim.issued_at > FORM_MAX_AGE_SECONDS


def _is_too_fast(attempt: Attempt) -> bool:
    claim = attempt.claim
    return claim is not None and attempt.now - claim.issued_at < MIN_FILL_SECONDS


def _is_over_rate(attempt: Attempt) -> bool:
    allowed = attempt.window.hit(
        attempt.ip, attempt.external_id, attempt.now, RATE_LIMIT, RATE_WINDOW_SECONDS
    )
    return not allowed


Rule = Callable[[Attempt], bool]

# In order; the first rule that refuses names the reason.
RULES: tuple[tuple[str, Rule], ...] = (
    ("honeypot", _is_honeypot_filled),
    ("form_token", _lacks_genuine_token),
    ("expired", _is_stale),
    ("too_fast", _is_too_fast),
    ("rate_limited", _is_over_rate),
)


def check_spam(attempt: Attempt) -> None:
    """Raises `RejectedError` naming the first rule that refuses the attempt."""
    for reason, refuses in RULES:
        if refuses(attempt):
            retry_after = None
            if reason == "rate_limited":
                retry_after = attempt.window.wait_seconds(
                    attempt.ip, attempt.now, RATE_WINDOW_SECONDS
                )
            raise RejectedError(reason, retry_after)
