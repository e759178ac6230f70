"""Fixtures and helpers that start or reach the real peers the tests talk to."""

import fcntl
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")
APT_LOCK = Path("/tmp/omnihub-apt.lock")  # noqa: S108 (one lock for every test run on the machine)


def peers_required() -> bool:
    return os.environ.get("OMNIHUB_REQUIRE_PEERS") == "1"


def missing_peer(reason: str) -> None:
    """Skip the test for a missing peer, or fail it when peers are required (CI)."""
    if peers_required():
        pytest.fail(f"required peer missing: {reason}", pytrace=False)
    pytest.skip(reason)


def ensure_debian_package(package: str, find: Callable[[], T | None]) -> T | None:
    """What `find` finds, after installing the Debian package when it finds nothing
    and we may (root, apt-get); None when it cannot be had.

    Test processes running side by side (pytest-xdist workers, two runs) take a
    file lock, so one installs and the others then find the package."""
    if (found := find()) is not None or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with APT_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (found := find()) is not None:
            return found
        for command in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "-o", "DPkg::Lock::Timeout=600", package],
        ):
            subprocess.run(command, check=False, env=env, timeout=900, capture_output=True)
    return find()
