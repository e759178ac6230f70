"""How a call is answered: an ordered table of named rules; the first that applies wins.

Routing (`hub.assignment`, later the `routing` package) decides who takes the
conversation; this table only decides how the phone call reaches them, so the
two change independently. It is a pure function of a `CallSituation`:

    rule              applies when                           the call is
    assignee_online   the conversation's assignee is online  dialled to the assignee's client
                      (and was not dialled already)
    someone_online    another agent is online                enqueued to the conversation's queue
    nobody_free       always                                 sent to voicemail, callback promised

The caller is greeted in German when the customer's language is German and in
British English otherwise. A plan is stored with the call as a plain dict
(`as_dict`/`from_dict`), so a retried webhook answers exactly as the first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

Action = Literal["dial", "enqueue", "voicemail"]

DEFAULT_QUEUE = "pool"
GERMAN = "de-DE"
ENGLISH = "en-GB"


@dataclass(frozen=True, slots=True)
class CallSituation:
    """What the plan depends on.

    `others_online`: an agent other than the assignee is online (with no
    assignee: any agent); `assignee_tried`: a dial to the assignee went unanswered.
    """

    language: str | None
    assignee_id: int | None
    assignee_presence: str | None
    others_online: bool
    queue: str | None
    assignee_tried: bool = False


@dataclass(frozen=True, slots=True)
class CallPlan:
    """How to answer a call; `rule` names the rule that decided."""

    rule: str
    action: Action
    language: str
    agent_id: int | None = None
    queue: str | None = None

    @property
    def client(self) -> str | None:
        """The Twilio Client identity the agent's console registers as."""
        return f"agent-{self.agent_id}" if self.agent_id is not None else None

    @property
    def target(self) -> str:
        if self.action == "dial":
            return self.client or ""
        return f"queue:{self.queue}" if self.action == "enqueue" else "voicemail"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "target": self.target}

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> CallPlan:
        return cls(
            rule=stored["rule"],
            action=stored["action"],
            language=stored["language"],
            agent_id=stored.get("agent_id"),
            queue=stored.get("queue"),
        )


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    applies: Callable[[CallSituation], bool]
    action: Action


def _assignee_online(situation: CallSituation) -> bool:
    return (
        situation.assignee_id is not None
        and situation.assignee_presence == "online"
        and not situation.assignee_tried
    )


def _someone_online(situation: CallSituation) -> bool:
    return situation.others_online


def _always(situation: CallSituation) -> bool:
    return True


RULES: tuple[Rule, ...] = (
    Rule("assignee_online", _assignee_online, "dial"),
    Rule("someone_online", _someone_online, "enqueue"),
    Rule("nobody_free", _always, "voicemail"),
)


def language_for(customer_language: str | None) -> str:
    """The language the caller is spoken to in: German for German speakers, else English."""
    primary = (customer_language or "").replace("_", "-").split("-")[0].strip().lower()
    return GERMAN if primary == "de" else ENGLISH


def plan_call(situation: CallSituation) -> CallPlan:
    """The plan of the first rule that applies (the last one always does)."""
    rule = next(rule for rule in RULES if rule.applies(situation))
    return CallPlan(
        rule=rule.name,
        action=rule.action,
        language=language_for(situation.language),
        agent_id=situation.assignee_id if rule.action == "dial" else None,
        queue=(situation.queue or DEFAULT_QUEUE) if rule.action == "enqueue" else None,
    )
