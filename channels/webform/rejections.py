"""Refused submissions: the reason, its HTTP status, and a count per reason in /metrics.

A refusal is raised as `RejectedError(reason)` by whichever step refuses (the
body reader or a spam rule); the reason is the name of that step, and the
label of `omnihub_webform_rejected_total`.

    reason          status  refused because
    unsupported     415     neither form-encoded, multipart nor JSON
    too_large       413     the whole request is over the size limit
    unreadable      400     the body cannot be parsed
    honeypot        422     the field people never see was filled in
    form_token      400     the form token is missing, forged or garbled
    expired         400     the form was served too long ago
    too_fast        422     sent sooner after the form was served than a person can
    rate_limited    429     too many submissions from one address in the window
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

from prometheus_client import Counter

from hub.metrics import Metrics

STATUS = {
    "unsupported": 415,
    "too_large": 413,
    "unreadable": 400,
    "honeypot": 422,
    "form_token": 400,
    "expired": 400,
    "too_fast": 422,
    "rate_limited": 429,
}

# One counter per app: the hub's metrics live in a registry of their own per app.
_counters: WeakKeyDictionary[Metrics, Counter] = WeakKeyDictionary()


class RejectedError(Exception):
    """The submission is refused for `reason` (a key of `STATUS`)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after

    @property
    def status_code(self) -> int:
        return STATUS[self.reason]


def rejected_counter(metrics: Metrics) -> Counter:
    """`omnihub_webform_rejected_total{reason}` in this app's registry, made on first use."""
    counter = _counters.get(metrics)
    if counter is None:
        counter = Counter(
            "omnihub_webform_rejected",
            "Web form submissions refused, by reason",
            ["reason"],
            registry=metrics.registry,
        )
        for reason in STATUS:  # every reason shows in /metrics from the start, at 0
            counter.labels(reason)
        _counters[metrics] = counter
    return counter
