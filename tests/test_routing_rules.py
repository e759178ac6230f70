"""Routing's rules: the decision table, and the rules file's validation.

The table runs `routing.decision.decide` on the shipped default rules over
tier × presence × capacity × complaint × language, and checks whom each
decision picks and the explanation it records, line by line.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from routing.decision import Candidate, Situation, decide
from routing.rules import RulesError, load_rules, parse_rules

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
RULES = load_rules()


def agent(agent_id: int, name: str, presence: str = "online", **fields: Any) -> Candidate:
    return Candidate(
        id=agent_id,
        name=name,
        presence=presence,
        load=fields.get("load", 0),
        capacity=fields.get("capacity", 3),
        idle_since=NOW - timedelta(minutes=fields.get("idle", 10)),
        tiers=frozenset(fields.get("tiers", ())),
        languages=frozenset(fields.get("languages", ("en",))),
        teams=frozenset(fields.get("teams", ())),
    )


def kim(presence: str = "online", **fields: Any) -> Candidate:
    return agent(1, "Kim", presence, **fields)


def dev(presence: str = "online", **fields: Any) -> Candidate:
    return agent(2, "Dev", presence, **fields)


def ada(**fields: Any) -> Candidate:
    return agent(3, "Ada", teams=("key_accounts",), **fields)


def sam(**fields: Any) -> Candidate:
    return agent(4, "Sam", teams=("service",), **fields)


def bea(**fields: Any) -> Candidate:
    return agent(5, "Bea", teams=("standard",), **fields)


def cy(**fields: Any) -> Candidate:
    return agent(6, "Cy", teams=("pool",), **fields)


def cat(**fields: Any) -> Candidate:
    return agent(7, "Cat", teams=("pool",), **fields)


TIER_A = "rule 'tier A': tier A, chat"
TIER_C = "rule 'tier C': tier C, chat"

# (situation, assignee, queue, priority, wait before the next step, explanation)
TABLE = [
    pytest.param(
        Situation("A", False, "chat", key_account=kim(), deputy=dev()),
        1,
        "key_accounts",
        5,
        None,
        (TIER_A, "to the key-account agent Kim (0/3 chat)"),
        id="A: key account online and free takes it",
    ),
    pytest.param(
        Situation("A", False, "chat", key_account=kim(load=3), deputy=dev()),
        None,
        "key_accounts",
        5,
        timedelta(minutes=2),
        (
            TIER_A,
            "key-account agent Kim: full (3/3 chat)",
            "waits 2m for the key-account agent before the deputy",
        ),
        id="A: key account full holds the deputy back for the wait",
    ),
    pytest.param(
        Situation("A", False, "chat", key_account=kim("away"), deputy=dev()),
        None,
        "key_accounts",
        5,
        timedelta(minutes=2),
        (
            TIER_A,
            "key-account agent Kim: away",
            "waits 2m for the key-account agent before the deputy",
        ),
        id="A: key account away holds the deputy back for the wait",
    ),
    pytest.param(
        Situation("A", False, "chat", key_account=kim(load=3), deputy=dev(), opened=1),
        2,
        "key_accounts",
        5,
        None,
        (TIER_A, "key-account agent Kim: full (3/3 chat)", "to the deputy Dev (0/3 chat)"),
        id="A: after the wait the deputy takes it",
    ),
    pytest.param(
        Situation("A", False, "chat", key_account=kim("offline"), deputy=dev()),
        2,
        "key_accounts",
        5,
        None,
        (TIER_A, "key-account agent Kim: offline", "to the deputy Dev (0/3 chat)"),
        id="A: key account offline goes to the deputy at once",
    ),
    pytest.param(
        Situation(
            "A", False, "chat", key_account=kim("offline"), deputy=dev("away"), members=(ada(),)
        ),
        None,
        "key_accounts",
        5,
        timedelta(minutes=5),
        (
            TIER_A,
            "key-account agent Kim: offline",
            "deputy Dev: away",
            "waits 5m for the deputy before the team key_accounts",
        ),
        id="A: deputy away holds the team back for its wait",
    ),
    pytest.param(
        Situation(
            "A", False, "chat", key_account=kim("offline"), deputy=dev("offline"), members=(ada(),)
        ),
        3,
        "key_accounts",
        5,
        None,
        (
            TIER_A,
            "key-account agent Kim: offline",
            "deputy Dev: offline",
            "team key_accounts: 1 free, Ada idle longest",
            "to Ada in key_accounts (0/3 chat)",
        ),
        id="A: both offline goes to the key-account team",
    ),
    pytest.param(
        Situation("A", False, "chat", members=(ada(load=3),)),
        None,
        "key_accounts",
        5,
        None,
        (
            TIER_A,
            "no key-account agent",
            "team key_accounts: Ada full (3/3 chat)",
            "waits in key_accounts: nobody free",
        ),
        id="A: no key account and a full team waits in the queue",
    ),
    pytest.param(
        Situation("A", True, "chat", key_account=kim(), members=(sam(),)),
        1,
        "key_accounts",
        20,
        None,
        (
            "rule 'key account complaint': tier A, chat, open complaint",
            "to the key-account agent Kim (0/3 chat)",
        ),
        id="A with a complaint: the key account, with priority",
    ),
    pytest.param(
        Situation("B", True, "chat", members=(sam(), bea())),
        4,
        "service",
        10,
        None,
        (
            "rule 'open complaint': tier B, chat, open complaint",
            "team service: 1 free, Sam idle longest",
            "to Sam in service (0/3 chat)",
        ),
        id="B with a complaint: the service team, with priority",
    ),
    pytest.param(
        Situation("B", False, "chat", members=(sam(), bea())),
        5,
        "standard",
        0,
        None,
        (
            "rule 'tier B': tier B, chat",
            "team standard: 1 free, Bea idle longest",
            "to Bea in standard (0/3 chat)",
        ),
        id="B: the standard team",
    ),
    pytest.param(
        Situation("B", False, "chat", members=(bea(tiers=("A",)),)),
        None,
        "standard",
        0,
        None,
        (
            "rule 'tier B': tier B, chat",
            "team standard: Bea does not serve tier B",
            "waits in standard: nobody free",
        ),
        id="B: an agent who does not serve the tier is passed over",
    ),
    pytest.param(
        Situation("C", False, "chat", members=(cy(idle=5), cat(idle=30))),
        7,
        "pool",
        0,
        None,
        (TIER_C, "team pool: 2 free, Cat idle longest", "to Cat in pool (0/3 chat)"),
        id="C: the pool, longest idle first",
    ),
    pytest.param(
        Situation("C", False, "chat", members=(cy(presence="away"),)),
        None,
        "pool",
        0,
        None,
        (TIER_C, "team pool: Cy away", "waits in pool: nobody free"),
        id="C: nobody online waits in the pool",
    ),
    pytest.param(
        Situation("C", False, "voice", members=(cy(load=1, capacity=1), cat(capacity=1))),
        7,
        "pool",
        0,
        None,
        (
            "rule 'tier C': tier C, voice",
            "team pool: 1 free, Cat idle longest",
            "to Cat in pool (0/1 voice)",
        ),
        id="C: capacity counts per channel (one call at a time)",
    ),
    pytest.param(
        Situation("C", False, "chat", "de", members=(cy(languages=("de",), load=3), cat(idle=60))),
        None,
        "pool",
        0,
        None,
        (
            "rule 'tier C': tier C, chat, language de",
            "language de: 1 speaker(s) online in pool",
            "team pool: Cy full (3/3 chat), Cat does not speak it",
            "waits in pool for a speaker of de: none free",
        ),
        id="language: an online speaker, though busy, is waited for",
    ),
    pytest.param(
        Situation(
            "C", False, "chat", "de-AT", members=(cy(languages=("de",), idle=1), cat(idle=60))
        ),
        6,
        "pool",
        0,
        None,
        (
            "rule 'tier C': tier C, chat, language de-AT",
            "language de-AT: 1 speaker(s) online in pool",
            "team pool: 1 free, Cy idle longest",
            "to Cy in pool (0/3 chat)",
        ),
        id="language: a free speaker beats a longer idle colleague",
    ),
    pytest.param(
        Situation("C", False, "chat", "de", members=(cat(),)),
        7,
        "pool",
        0,
        None,
        (
            "rule 'tier C': tier C, chat, language de",
            "team pool: 1 free, Cat idle longest",
            "to Cat in pool (0/3 chat)",
        ),
        id="language: with no speaker online anyone may take it",
    ),
]


@pytest.mark.parametrize(
    ("situation", "assignee", "queue", "priority", "wait", "explanation"), TABLE
)
def test_the_decision_table(
    situation: Situation,
    assignee: int | None,
    queue: str,
    priority: int,
    wait: timedelta | None,
    explanation: tuple[str, ...],
):
    decision = decide(RULES, situation, NOW)

    assert (decision.assignee_id, decision.queue, decision.priority) == (assignee, queue, priority)
    assert decision.widen_at == (NOW + wait if wait else None)
    assert decision.explanation == explanation
    assert decision.reason == f"{decision.rule}: {explanation[-1]}"


def test_an_excluded_agent_is_not_chosen_even_when_free():
    situation = Situation("C", False, "chat", members=(cy(), cat()), exclude=frozenset({7}))

    assert decide(RULES, situation, NOW).assignee_id == 6


def test_the_shipped_rules_have_sla_targets_per_tier_and_channel():
    assert RULES.sla_for("A", "email") == timedelta(hours=1)
    assert RULES.sla_for("C", "email") == timedelta(hours=24)
    assert RULES.sla_for("B", "fax") == timedelta(hours=8)  # the tier's default
    assert RULES.capacity_for("voice") == 1 and RULES.capacity_for("chat") == 3


BAD_FILES = [
    ("rules: [\n", "line 2: not valid YAML"),
    ("capacity: {chat: 3}\n", "line 1: the rules file needs a `rules` list"),
    (
        "rules:\n  - name: all\n    queue: pool\n    colour: red\n",
        "line 4: a rule: unknown key 'colour'",
    ),
    (
        "rules:\n  - name: a\n    when: {tier: D}\n    queue: x\n  - name: rest\n    queue: pool\n",
        "line 3: when.tier must be one or a list of A, B, C",
    ),
    (
        "rules:\n  - name: a\n    when: {tier: A}\n    queue: x\n",
        "line 2: the last rule has no `when`: it catches the rest",
    ),
    (
        "rules:\n  - name: all\n    queue: pool\n    steps: [team, key_account]\n",
        "line 4: rule 'all': steps: the last step, and only it, is `team`",
    ),
    (
        "rules:\n  - name: all\n    queue: pool\n    steps: [key_account, team after soon]\n",
        "line 4: rule 'all': 'soon' is not a duration",
    ),
    (
        "capacity:\n  chat: 0\nrules:\n  - name: all\n    queue: pool\n",
        "line 2: capacity.chat must be a whole number of at least 1",
    ),
    (
        "rules:\n  - name: all\n    queue: pool\n"
        "sla:\n  first_response:\n    A: {email: soonish}\n",
        "line 6: sla.first_response.A.email: 'soonish' is not a duration",
    ),
    (
        "rules:\n  - name: all\n    queue: pool\nsla:\n  on_breach: panic\n",
        "line 5: sla.on_breach must be notify or reroute",
    ),
]


@pytest.mark.parametrize(("text", "problem"), BAD_FILES)
def test_a_wrong_rules_file_is_refused_naming_file_line_and_problem(
    tmp_path: Path, text: str, problem: str
):
    path = tmp_path / "my-rules.yaml"
    path.write_text(text)

    with pytest.raises(RulesError) as refused:
        load_rules(path)

    assert str(refused.value).startswith(f"{path}, {problem}")


def test_a_missing_rules_file_is_refused_by_name(tmp_path: Path):
    with pytest.raises(RulesError, match=r"nowhere\.yaml: cannot read the rules file"):
        load_rules(tmp_path / "nowhere.yaml")


def test_a_minimal_rules_file_routes_everyone_to_one_queue():
    rules = parse_rules("rules:\n  - name: everyone\n    queue: desk\n")

    decision = decide(
        rules, Situation("A", True, "email", members=(agent(9, "Al", teams=("desk",)),)), NOW
    )

    assert (decision.assignee_id, decision.queue, decision.rule) == (9, "desk", "everyone")
    assert rules.sla_for("A", "email") is None
