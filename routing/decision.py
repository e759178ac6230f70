"""The routing decision as a pure function: who takes a conversation, and why.

`decide(rules, situation, now)` reads nothing and writes nothing; the database
side (`routing.router`) gathers the `Situation` and stores the `Decision`. The
first rule that matches the conversation (tier, open complaint, channel) walks
its steps in order:

    key_account   the customer's key-account agent takes it when online, under
                  capacity on the channel and serving the tier
    deputy        the same for that agent's deputy
    team          the queue's team: a free member, longest idle first; a
                  speaker of the customer's language whenever one is online

A person who is present (online or away) but cannot take it holds the next
step back for that step's wait (`widen_at`); an offline one is skipped at once.
Nobody free at the team step: the conversation waits in the queue. Every
decision carries its explanation, one line per thing it considered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from routing.rules import Rule, Rules, describe

PERSON_LABEL = {"key_account": "key-account agent", "deputy": "deputy"}
MAX_NAMED = 5


@dataclass(frozen=True, slots=True)
class Candidate:
    """An agent as routing sees them for one channel."""

    id: int
    name: str
    presence: str
    load: int
    capacity: int
    idle_since: datetime
    tiers: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset()
    teams: frozenset[str] = frozenset()

    def serves(self, tier: str) -> bool:
        return not self.tiers or tier in self.tiers

    def speaks(self, language: str | None) -> bool:
        return language is None or primary_language(language) in self.languages

    def why_not(self, tier: str, channel: str) -> str | None:
        """Why the agent cannot take a conversation now, or None when they can."""
        if self.presence != "online":
            return self.presence
        if not self.serves(tier):
            return f"does not serve tier {tier}"
        if self.load >= self.capacity:
            return f"full ({self.load}/{self.capacity} {channel})"
        return None

    def took(self) -> Candidate:
        return replace(self, load=self.load + 1)


@dataclass(frozen=True, slots=True)
class Situation:
    """Everything a decision depends on; `members`: agents who may be in the queue's team."""

    tier: str
    complaint: bool
    channel: str
    language: str | None = None
    key_account: Candidate | None = None
    deputy: Candidate | None = None
    members: Sequence[Candidate] = ()
    opened: int = 0
    exclude: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Decision:
    rule: str
    queue: str
    priority: int
    assignee_id: int | None
    explanation: tuple[str, ...]
    outcome: str
    step: int = 0
    reserved_agent_id: int | None = None
    deputy_agent_id: int | None = None
    team_open: bool = False
    widen_at: datetime | None = None

    @property
    def reason(self) -> str:
        return f"{self.rule}: {self.outcome}"[:500]


@dataclass
class _Walk:
    rule: Rule
    situation: Situation
    lines: list[str] = field(default_factory=list)
    reserved: int | None = None
    deputy: int | None = None

    def decision(self, outcome: str, step: int, **fields: object) -> Decision:
        return Decision(
            rule=self.rule.name,
            queue=self.rule.queue,
            priority=self.rule.priority,
            explanation=(*self.lines, outcome),
            outcome=outcome,
            step=step,
            reserved_agent_id=self.reserved,
            deputy_agent_id=self.deputy,
            **fields,  # type: ignore[arg-type]
        )


def primary_language(language: str) -> str:
    return language.replace("_", "-").split("-")[0].strip().lower()


def decide(rules: Rules, situation: Situation, now: datetime) -> Decision:
    """Who takes the conversation; see the module docstring for the order."""
    rule = rules.match(situation.tier, situation.complaint, situation.channel)
    walk = _Walk(rule, situation)
    walk.lines.append(f"rule {rule.name!r}: {_describe(situation)}")
    for index, step in enumerate(rule.steps):
        if step.to == "team":
            return _team_step(rules, walk, index)
        decided = _person_step(walk, index, step.to, now)
        if decided is not None:
            return decided
    raise AssertionError("validated rules end with a team step")


def _describe(situation: Situation) -> str:
    parts = [f"tier {situation.tier}", situation.channel]
    if situation.complaint:
        parts.append("open complaint")
    if situation.language:
        parts.append(f"language {situation.language}")
    return ", ".join(parts)


def _person_step(walk: _Walk, index: int, target: str, now: datetime) -> Decision | None:
    situation = walk.situation
    person = situation.key_account if target == "key_account" else situation.deputy
    label = PERSON_LABEL[target]
    if person is None:
        if target == "key_account" or situation.key_account is not None:
            walk.lines.append(f"no {label}")
        return None
    if target == "key_account":
        walk.reserved = person.id
    else:
        walk.deputy = person.id
    why = "excluded" if person.id in situation.exclude else None
    why = why or person.why_not(situation.tier, situation.channel)
    if why is None:
        return walk.decision(
            f"to the {label} {person.name} ({person.load}/{person.capacity} {situation.channel})",
            index,
            assignee_id=person.id,
        )
    walk.lines.append(f"{label} {person.name}: {why}")
    following = walk.rule.steps[index + 1]
    holds = person.presence != "offline" and person.serves(situation.tier)
    if holds and following.after and index + 1 > situation.opened:
        return walk.decision(
            f"waits {describe(following.after)} for the {label} before the "
            f"{_step_label(following.to, walk.rule)}",
            index,
            assignee_id=None,
            widen_at=now + following.after,
        )
    return None


def _step_label(target: str, rule: Rule) -> str:
    return f"team {rule.queue}" if target == "team" else PERSON_LABEL[target]


def _team_step(rules: Rules, walk: _Walk, index: int) -> Decision:
    situation, queue = walk.situation, walk.rule.queue
    team = [m for m in situation.members if queue in m.teams and m.id not in situation.exclude]
    eligible = [m for m in team if m.why_not(situation.tier, situation.channel) is None]
    speakers = _online_speakers(rules, situation, team)
    if speakers:
        eligible = [m for m in eligible if m.speaks(situation.language)]
        walk.lines.append(
            f"language {situation.language}: {len(speakers)} speaker(s) online in {queue}"
        )
    if eligible:
        chosen = min(eligible, key=lambda m: (m.idle_since, m.id))
        walk.lines.append(f"team {queue}: {len(eligible)} free, {chosen.name} idle longest")
        return walk.decision(
            f"to {chosen.name} in {queue} ({chosen.load}/{chosen.capacity} {situation.channel})",
            index,
            assignee_id=chosen.id,
            team_open=True,
        )
    if speakers:
        outcome = f"waits in {queue} for a speaker of {situation.language}: none free"
    else:
        outcome = f"waits in {queue}: nobody free"
    walk.lines.append(f"team {queue}: {_why_none(team, situation)}")
    return walk.decision(outcome, index, assignee_id=None, team_open=True)


def _why_none(team: Sequence[Candidate], situation: Situation) -> str:
    """Why nobody of the team took it, naming the first few who are there."""
    present = [m for m in team if m.presence != "offline"]
    if not present:
        return "nobody online"
    reasons = [
        f"{m.name} {m.why_not(situation.tier, situation.channel) or 'does not speak it'}"
        for m in present[:MAX_NAMED]
    ]
    more = f" and {len(present) - MAX_NAMED} more" if len(present) > MAX_NAMED else ""
    return ", ".join(reasons) + more


def _online_speakers(
    rules: Rules, situation: Situation, team: Sequence[Candidate]
) -> list[Candidate]:
    """The team's online speakers of the customer's language, when they count."""
    if not rules.language_match or not situation.language:
        return []
    return [m for m in team if m.presence == "online" and m.speaks(situation.language)]


def may_pull(
    rules: Rules,
    agent: Candidate,
    tier: str,
    language: str | None,
    online_speakers: int,
) -> bool:
    """Whether a free agent may take a waiting conversation of this tier and language."""
    needs_speaker = bool(rules.language_match and language and online_speakers)
    return agent.serves(tier) and (not needs_speaker or agent.speaks(language))
