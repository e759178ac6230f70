"""The soak's invariants, checked against the database, the sink and the Twilio stand-in.

Each check returns the violations it found as sentences; `Report.ok` is true
when there are none. See `tests.soak` for what the run sends.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from statistics import mean
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from hub.context import Hub
from hub.models import Campaign, Interaction, OutboxMessage
from tests.peers import smtp, twilio

if TYPE_CHECKING:
    from tests.soak_state import Soak


# Resident memory may grow this much from the first third of the run to the last:
# allocator and cache warm-up, not a leak. A leak of a few KiB per input exceeds
# it within the 15-minute run.
RSS_TOLERANCE = 0.10
RSS_SLACK_BYTES = 8 * 2**20
HELD = ("queued", "sending", "handed")
ERROR_LINE = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b")


@dataclass
class Report:
    figures: dict[str, Any] = field(default_factory=dict)
    violations: dict[str, list[str]] = field(default_factory=dict)  # invariant -> breaches

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())

    def render(self) -> str:
        lines = [f"{name}: {value}" for name, value in self.figures.items()]
        for invariant, breaches in self.violations.items():
            lines += [f"VIOLATION ({invariant}): {breach}" for breach in breaches]
        return "\n".join(lines if not self.ok else [*lines, "every invariant held"])


async def check(
    soak: Soak,
    sink: smtp.SmtpServer,
    api: twilio.TwilioApi,
    receipts: dict[int, float],
    log: str,
) -> Report:
    report = Report()
    ledger = soak.ledger
    report.figures.update(
        seconds=soak.plan.seconds,
        answers=dict(sorted(ledger.answers.items())),
        duplicates_sent=ledger.duplicates,
        timeouts_retried=dict(ledger.timeouts),
        campaigns=len(ledger.campaigns),
        opt_outs=len(ledger.opt_outs),
        mails_at_sink=len(sink.messages),
        sms_at_twilio=len(api.messages),
    )
    report.violations = {
        "every failure visible": ledger.failures,
        "stored once": await stored_once(soak),
        "outbox settled": await outbox_settled(soak, report),
        "sent at most once": sent_at_most_once(sink, api, ledger.replies),
        "nothing after an opt-out": nothing_after_opt_out(soak, sink, api, receipts, report),
        "memory flat": memory_flat(ledger.rss, report),
        "no error in the hub's log": [line for line in log.splitlines() if ERROR_LINE.search(line)],
    }
    return report


async def stored_once(soak: Soak) -> list[str]:
    found: list[str] = []
    async with soak.hub.sessions() as session:
        for channel, external_ids in soak.ledger.stored.items():
            rows = Counter()
            ids = sorted(external_ids)
            for start in range(0, len(ids), 1000):
                chunk = ids[start : start + 1000]
                statement = select(Interaction.external_id).where(
                    Interaction.channel == channel, Interaction.external_id.in_(chunk)
                )
                rows.update(await session.scalars(statement))
            found += [f"{channel} {e} answered 2xx but not stored" for e in ids if not rows[e]]
            found += [f"{channel} {e} stored {n} times" for e, n in rows.items() if n > 1]
    return found


async def outbox_settled(soak: Soak, report: Report) -> list[str]:
    found: list[str] = []
    async with soak.hub.sessions() as session:
        twice = await session.execute(
            select(OutboxMessage.idempotency_key, func.count())
            .group_by(OutboxMessage.idempotency_key)
            .having(func.count() > 1)
        )
        found += [f"outbox key {key} on {n} rows" for key, n in twice]
        counted = await session.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        )
        statuses = {status: number for status, number in counted}
        report.figures["outbox"] = statuses
        reasons = await session.scalars(
            select(OutboxMessage.blocked_reasons).where(OutboxMessage.status == "blocked")
        )
        report.figures["blocked_by"] = dict(Counter(r for row in reasons for r in row or ()))
        found += [f"outbox row left: {row}" for row in await held_rows(soak.hub)]
        silent = await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(
                OutboxMessage.status.in_(("failed", "unknown")), OutboxMessage.last_error.is_(None)
            )
        )
        if silent:
            found.append(f"{silent} failed or unknown outbox rows without a reason")
        unfinished = await session.scalars(
            select(Campaign.id).where(
                Campaign.id.in_(soak.ledger.campaigns), Campaign.status != "done"
            )
        )
        found += [f"campaign {c} not done" for c in unfinished]
    return found


def sent_at_most_once(
    sink: smtp.SmtpServer, api: twilio.TwilioApi, replies: list[str]
) -> list[str]:
    found: list[str] = []
    mails = Counter()
    texts = Counter()
    for received in sink.messages:
        message = received.message
        for rcpt in received.rcpt_tos:
            mails[(rcpt, message["Message-ID"])] += 1
            if message["List-Unsubscribe"]:  # a campaign's: one per recipient and campaign
                mails[(rcpt, message["Subject"])] += 1
        texts[message.get_body(("plain",)).get_content().strip()] += 1
    found += [f"mail {key} reached the sink {n} times" for key, n in mails.items() if n > 1]
    found += [f"reply {t!r} reached the sink {texts[t]} times" for t in replies if texts[t] != 1]
    sms = Counter((m.to, m.body) for m in api.messages)
    found += [f"SMS {key} reached Twilio {n} times" for key, n in sms.items() if n > 1]
    return found


def nothing_after_opt_out(
    soak: Soak,
    sink: smtp.SmtpServer,
    api: twilio.TwilioApi,
    receipts: dict[int, float],
    report: Report,
) -> list[str]:
    found: list[str] = []
    mails = [(rcpt, receipts.get(id(r), 0.0)) for r in sink.messages for rcpt in r.rcpt_tos]
    texts = [(m.to, receipts.get(id(m), 0.0)) for m in api.messages]
    late_by: list[float] = []
    for opt_out in soak.ledger.opt_outs:
        channel, address, committed = opt_out.channel, opt_out.address, opt_out.answered_at
        arrivals = mails if channel == "email" else texts
        window = (committed, opt_out.taken_back_at)
        late = [
            at - committed for to, at in arrivals if to == address and window[0] < at < window[1]
        ]
        late_by += late
        found += [f"{channel} to {address} {d * 1000:.0f} ms after the opt-out" for d in late]
    report.figures["late_after_opt_out"] = len(late_by)
    return found


def memory_flat(samples: list[tuple[float, int]], report: Report) -> list[str]:
    if len(samples) < 6:
        return [f"only {len(samples)} memory samples"]
    third = len(samples) // 3
    first = mean(rss for _, rss in samples[:third])
    last = mean(rss for _, rss in samples[-third:])
    allowed = first * (1 + RSS_TOLERANCE) + RSS_SLACK_BYTES
    report.figures["rss_mib"] = f"first third {first / 2**20:.1f}, last third {last / 2**20:.1f}"
    if last > allowed:
        return [f"memory grew from {first / 2**20:.1f} MiB to {last / 2**20:.1f} MiB"]
    return []


async def held_rows(hub: Hub) -> list[dict[str, Any]]:
    """Outbox rows still queued or claimed, with what says why."""
    async with hub.sessions() as session:
        rows = await session.execute(
            select(
                OutboxMessage.id,
                OutboxMessage.purpose,
                OutboxMessage.channel,
                OutboxMessage.status,
                OutboxMessage.attempts,
                OutboxMessage.last_error,
                OutboxMessage.next_attempt_at,
            ).where(OutboxMessage.status.in_(HELD))
        )
        return [dict(row._mapping) for row in rows]
