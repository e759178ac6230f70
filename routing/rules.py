"""The routing rules file: read, validated, and turned into `Rules`.

The file is YAML (`routing/rules.yaml` is the shipped default and documents
every key). It is read once at start-up; anything wrong stops the start with
`RulesError`, whose message names the file, the line and the problem, e.g.

    rules.yaml, line 27: steps: the last step must be `team`

Validation walks YAML's node tree rather than the loaded values, because only
the nodes remember the line they came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

DEFAULT_RULES = Path(__file__).with_name("rules.yaml")
TIERS = ("A", "B", "C")
STEP_TARGETS = ("key_account", "deputy", "team")
ON_BREACH = ("notify", "reroute")
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_STEP = re.compile(r"^\s*(\w+)(?:\s+after\s+(\S+))?\s*$")

StepTarget = Literal["key_account", "deputy", "team"]


class RulesError(Exception):
    """The rules file is wrong; the message names the file, the line and the problem."""


@dataclass(frozen=True, slots=True)
class Step:
    """Who is offered the conversation; `after`: the wait before this step opens."""

    to: StepTarget
    after: timedelta = timedelta(0)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    queue: str
    steps: tuple[Step, ...]
    priority: int = 0
    tiers: frozenset[str] | None = None
    complaint: bool | None = None
    channels: frozenset[str] | None = None

    def matches(self, tier: str, complaint: bool, channel: str) -> bool:
        return (
            (self.tiers is None or tier in self.tiers)
            and (self.complaint is None or self.complaint == complaint)
            and (self.channels is None or channel in self.channels)
        )


@dataclass(frozen=True, slots=True)
class Rules:
    rules: tuple[Rule, ...]
    capacity: dict[str, int]
    sla: dict[str, dict[str, timedelta]]
    on_breach: str = "reroute"
    breach_priority: int = 30
    language_match: bool = True
    source: str = field(default="rules.yaml", compare=False)

    def match(self, tier: str, complaint: bool, channel: str) -> Rule:
        """The first rule that matches; validation guarantees the last one always does."""
        for rule in self.rules:
            if rule.matches(tier, complaint, channel):
                return rule
        return self.rules[-1]

    def capacity_for(self, channel: str) -> int:
        return self.capacity.get(channel, self.capacity.get("default", 5))

    def sla_for(self, tier: str, channel: str) -> timedelta | None:
        targets = self.sla.get(tier, {})
        return targets.get(channel, targets.get("default"))

    @property
    def queues(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(rule.queue for rule in self.rules))


def load_rules(path: Path | str | None = None) -> Rules:
    """The rules in `path` (None: the shipped default); `RulesError` when they are wrong."""
    source = Path(path) if path is not None else DEFAULT_RULES
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        raise RulesError(f"{source}: cannot read the rules file: {error.strerror}") from None
    return parse_rules(text, str(source))


def parse_rules(text: str, source: str = "rules.yaml") -> Rules:
    try:
        root = yaml.compose(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        line = mark.line + 1 if mark is not None else "?"
        raise RulesError(f"{source}, line {line}: not valid YAML: {error.problem}") from None
    return _Reader(source).rules(root)


class _Reader:
    """Turns the node tree into `Rules`, failing at the first wrong node with its line."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, node: Node | None, problem: str) -> RulesError:
        line = node.start_mark.line + 1 if node is not None else 1
        return RulesError(f"{self.source}, line {line}: {problem}")

    def mapping(self, node: Node | None, what: str, keys: tuple[str, ...]) -> dict[str, Node]:
        if not isinstance(node, MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        found: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = str(self.scalar(key_node, what))
            if keys and key not in keys:
                raise self.fail(key_node, f"{what}: unknown key {key!r} (known: {', '.join(keys)})")
            if key in found:
                raise self.fail(key_node, f"{what}: {key!r} is given twice")
            found[key] = value_node
        return found

    def scalar(self, node: Node, what: str) -> Any:
        if not isinstance(node, ScalarNode):
            raise self.fail(node, f"{what} must be a single value")
        return SafeConstructor().construct_object(node, deep=True)

    def text(self, node: Node, what: str) -> str:
        value = self.scalar(node, what)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(node, f"{what} must be a non-empty text")
        return value.strip()

    def integer(self, node: Node, what: str, low: int = 0) -> int:
        value = self.scalar(node, what)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise self.fail(node, f"{what} must be a whole number of at least {low}")
        return value

    def boolean(self, node: Node, what: str) -> bool:
        value = self.scalar(node, what)
        if not isinstance(value, bool):
            raise self.fail(node, f"{what} must be true or false")
        return value

    def duration(self, node: Node, what: str) -> timedelta:
        value = self.scalar(node, what)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return timedelta(seconds=value)
        parsed = _parse_duration(str(value))
        if parsed is None:
            raise self.fail(node, f"{what}: {value!r} is not a duration such as 90s, 2m, 1h, 1d")
        return parsed

    def choices(self, node: Node, what: str, allowed: tuple[str, ...]) -> frozenset[str]:
        nodes = node.value if isinstance(node, SequenceNode) else [node]
        values = frozenset(str(self.scalar(item, what)) for item in nodes)
        wrong = sorted(values - set(allowed)) if allowed else []
        if wrong or not values:
            raise self.fail(node, f"{what} must be one or a list of {', '.join(allowed)}")
        return values

    def rules(self, root: Node | None) -> Rules:
        top = self.mapping(root, "the rules file", ("capacity", "language_match", "rules", "sla"))
        if "rules" not in top:
            raise self.fail(root, "the rules file needs a `rules` list")
        sla = self.sla(top["sla"]) if "sla" in top else ({}, "notify", 30)
        return Rules(
            rules=self.rule_list(top["rules"]),
            capacity=self.capacity(top["capacity"]) if "capacity" in top else {"default": 5},
            sla=sla[0],
            on_breach=sla[1],
            breach_priority=sla[2],
            language_match=(
                self.boolean(top["language_match"], "language_match")
                if "language_match" in top
                else True
            ),
            source=self.source,
        )

    def capacity(self, node: Node) -> dict[str, int]:
        entries = self.mapping(node, "capacity", ())
        return {name: self.integer(value, f"capacity.{name}", 1) for name, value in entries.items()}

    def rule_list(self, node: Node) -> tuple[Rule, ...]:
        if not isinstance(node, SequenceNode) or not node.value:
            raise self.fail(node, "rules must be a non-empty list")
        rules = tuple(self.rule(item) for item in node.value)
        last = rules[-1]
        if last.tiers is not None or last.complaint is not None or last.channels is not None:
            raise self.fail(node.value[-1], "the last rule has no `when`: it catches the rest")
        return rules

    def rule(self, node: Node) -> Rule:
        entries = self.mapping(node, "a rule", ("name", "when", "queue", "priority", "steps"))
        for required in ("name", "queue"):
            if required not in entries:
                raise self.fail(node, f"a rule needs `{required}`")
        name = self.text(entries["name"], "name")
        when = self.when(entries["when"]) if "when" in entries else {}
        steps_node = entries.get("steps")
        return Rule(
            name=name,
            queue=self.text(entries["queue"], f"rule {name!r}: queue"),
            steps=self.steps(steps_node, name) if steps_node else (Step("team"),),
            priority=self.integer(entries["priority"], "priority") if "priority" in entries else 0,
            **when,
        )

    def when(self, node: Node) -> dict[str, Any]:
        entries = self.mapping(node, "when", ("tier", "complaint", "channel"))
        found: dict[str, Any] = {}
        if "tier" in entries:
            found["tiers"] = self.choices(entries["tier"], "when.tier", TIERS)
        if "complaint" in entries:
            found["complaint"] = self.boolean(entries["complaint"], "when.complaint")
        if "channel" in entries:
            found["channels"] = self.choices(entries["channel"], "when.channel", ())
        return found

    def steps(self, node: Node, rule: str) -> tuple[Step, ...]:
        if not isinstance(node, SequenceNode) or not node.value:
            raise self.fail(node, f"rule {rule!r}: steps must be a non-empty list")
        steps = tuple(self.step(item, rule) for item in node.value)
        targets = [step.to for step in steps]
        if targets[-1] != "team" or targets.count("team") != 1:
            raise self.fail(node, f"rule {rule!r}: steps: the last step, and only it, is `team`")
        if len(set(targets)) != len(targets):
            raise self.fail(node, f"rule {rule!r}: steps: each step may come once")
        if "deputy" in targets and targets.index("deputy") == 0:
            raise self.fail(node, f"rule {rule!r}: steps: `deputy` stands in after `key_account`")
        return steps

    def step(self, node: Node, rule: str) -> Step:
        raw = self.text(node, f"rule {rule!r}: a step")
        found = _STEP.match(raw)
        if found is None or found.group(1) not in STEP_TARGETS:
            raise self.fail(
                node,
                f"rule {rule!r}: step {raw!r} must be key_account, deputy or team, "
                "optionally followed by `after DURATION`",
            )
        after = _parse_duration(found.group(2)) if found.group(2) else timedelta(0)
        if after is None:
            raise self.fail(node, f"rule {rule!r}: {found.group(2)!r} is not a duration (2m, 1h)")
        return Step(found.group(1), after)  # type: ignore[arg-type]

    def sla(self, node: Node) -> tuple[dict[str, dict[str, timedelta]], str, int]:
        entries = self.mapping(node, "sla", ("first_response", "on_breach", "breach_priority"))
        targets: dict[str, dict[str, timedelta]] = {}
        if "first_response" in entries:
            for tier, per_channel in self.mapping(
                entries["first_response"], "sla.first_response", TIERS
            ).items():
                channels = self.mapping(per_channel, f"sla.first_response.{tier}", ())
                targets[tier] = {
                    channel: self.duration(value, f"sla.first_response.{tier}.{channel}")
                    for channel, value in channels.items()
                }
        on_breach = "notify"
        if "on_breach" in entries:
            on_breach = self.text(entries["on_breach"], "sla.on_breach")
            if on_breach not in ON_BREACH:
                raise self.fail(entries["on_breach"], "sla.on_breach must be notify or reroute")
        priority = 30
        if "breach_priority" in entries:
            priority = self.integer(entries["breach_priority"], "sla.breach_priority")
        return targets, on_breach, priority


def _parse_duration(raw: str) -> timedelta | None:
    found = _DURATION.match(raw)
    if found is None:
        return None
    return timedelta(seconds=int(found.group(1)) * _UNITS[found.group(2)])


def describe(duration: timedelta) -> str:
    """A wait as the rules file writes it: 90s, 2m, 1h."""
    seconds = int(duration.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"
