"""A Dovecot IMAP server of the test run's own, on a free loopback port.

Installed from Debian's `dovecot-imapd` when it is missing and we may (root),
started in the foreground with a generated config in a throw-away folder, and
stopped at the end of the run. Any user name logs in with the one password, and
each test takes a user of its own, so every test starts with an empty mailbox.

Dovecot refuses to run its login processes as root: they run as the
`dovenull`/`dovecot` system users, which also own the mail folder.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from imapclient import IMAPClient

from tests.peers import ensure_debian_package, missing_peer

PASSWORD = "dovecot-test-password"

CONFIG = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


@dataclass
class Dovecot:
    host: str
    port: int
    password: str
    config: Path

    def kick(self, user: str) -> None:
        """Drop every connection of the user, as a server restart or a network cut would."""
        subprocess.run(
            [shutil.which("doveadm") or "/usr/bin/doveadm", "-c", str(self.config), "kick", user],
            check=True,
            capture_output=True,
            timeout=20,
        )

    def new_user(self) -> str:
        return f"hub-{uuid.uuid4().hex[:10]}@test.local"

    def client(self, user: str) -> IMAPClient:
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        client.login(user, self.password)
        return client

    def append(self, user: str, raw: bytes, folder: str = "INBOX", flags: tuple = ()) -> None:
        client = self.client(user)
        try:
            client.append(folder, raw, flags=flags)
        finally:
            client.logout()


def ensure_dovecot() -> str | None:
    return ensure_debian_package("dovecot-imapd", find_dovecot)


def find_dovecot() -> str | None:
    return shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dovecot exited: {log.read_text() if log.exists() else ''}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("dovecot did not start listening within 20 s")


@contextmanager
def running_dovecot(binary: str) -> Iterator[Dovecot]:
    """A Dovecot of our own until the block ends (the fixture's, and the benchmark's)."""
    # Not under pytest's tmp folder: that is 0700, and Dovecot's mail processes
    # run as the dovecot user.
    root = Path(tempfile.mkdtemp(prefix="omnihub-dovecot-"))
    for folder in ("run", "state", "mail"):
        (root / folder).mkdir()
    mail_owner = pwd.getpwnam("dovecot")
    os.chown(root / "mail", mail_owner.pw_uid, mail_owner.pw_gid)
    root.chmod(0o755)
    port = free_port()
    config = root / "dovecot.conf"
    config.write_text(CONFIG.format(root=root, port=port, password=PASSWORD))
    process = subprocess.Popen(
        [binary, "-F", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until_listening(port, process, root / "dovecot.log")
        yield Dovecot("127.0.0.1", port, PASSWORD, config)
    finally:
        process.terminate()
        process.wait(timeout=20)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    binary = ensure_dovecot()
    if binary is None:
        missing_peer("Dovecot is not installed (Debian package dovecot-imapd)")
    with running_dovecot(binary) as server:
        yield server
