"""Fixtures and helpers that start or reach the real peers the tests talk to."""

import os

import pytest


def peers_required() -> bool:
    return os.environ.get("OMNIHUB_REQUIRE_PEERS") == "1"


def missing_peer(reason: str) -> None:
    """Skip the test for a missing peer, or fail it when peers are required (CI)."""
    if peers_required():
        pytest.fail(f"required peer missing: {reason}", pytrace=False)
    pytest.skip(reason)
