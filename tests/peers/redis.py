"""Redis: the machine's own on 127.0.0.1:6379, and private ones a test may stop.

Fixtures:

    redis_url       the shared Redis (127.0.0.1:6379), checked with a PING
    redis_stream    a stream name of the test's own, so runs never hear each other
    private_redis   a redis-server of the test's own on a free loopback port,
                    without persistence, that the test can stop and start
                    again on the same port (Debian's `redis-server`, installed
                    with apt-get when missing and we may: root)
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.peers import ensure_debian_package, missing_peer
from tests.peers.dovecot import free_port

SHARED = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(SHARED, socket_connect_timeout=2).ping()
    except (redis.RedisError, OSError) as error:
        missing_peer(f"Redis on 127.0.0.1:6379 does not answer: {error}")
    return SHARED


@pytest.fixture
def redis_stream() -> Iterator[str]:
    name = f"omnihub:test:{uuid.uuid4().hex}"
    yield name
    with contextlib.suppress(redis.RedisError, OSError):  # gone: its keys went with it
        redis.Redis.from_url(SHARED, socket_connect_timeout=2).delete(name)


class PrivateRedis:
    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="omnihub-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        arguments = [self.binary, "--bind", "127.0.0.1", "--port", str(self.port)]
        arguments += ["--save", "", "--appendonly", "no", "--dir", str(self.folder)]
        self.process = subprocess.Popen(
            arguments, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.process.poll() is not None:
                raise RuntimeError("redis-server exited at start")
            time.sleep(0.05)
        raise RuntimeError("redis-server did not listen within 20 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


def ensure_redis_server() -> str | None:
    return ensure_debian_package("redis-server", lambda: shutil.which("redis-server"))


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    binary = ensure_redis_server()
    if binary is None:
        missing_peer("redis-server is not installed (Debian package redis-server)")
    server = PrivateRedis(binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)
