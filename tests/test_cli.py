"""The `omnihub` command as a user runs it: real processes, a real server on loopback.

Every process gets an environment without the caller's `OMNIHUB_*` variables,
a SQLite file of its own, and a working directory without a `.env`.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest

OMNIHUB = shutil.which("omnihub", path=str(Path(sys.executable).parent))
COMMAND_SECONDS = 60
START_SECONDS = 60
STOP_SECONDS = 15
PASSWORD = "correct horse battery"


@pytest.fixture
def omnihub() -> str:
    assert OMNIHUB is not None, "the omnihub console script is not installed beside python"
    return OMNIHUB


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {name: value for name, value in os.environ.items() if not name.startswith("OMNIHUB_")}
    clean["OMNIHUB_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    return clean


def run(
    omnihub: str, args: list[str], env: dict[str, str], cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [omnihub, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=COMMAND_SECONDS,
        check=False,
    )


def succeed(
    omnihub: str, args: list[str], env: dict[str, str], cwd: Path, stdin: str | None = None
) -> str:
    done = run(omnihub, args, env, cwd, stdin)
    assert done.returncode == 0, f"omnihub {' '.join(args)}: {done.stderr}"
    return done.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str
    lines: queue.Queue[str | None]
    log: Path

    def read_until(self, pattern: str) -> list[str]:
        """Standard output up to and including the first line matching the pattern."""
        seen: list[str] = []
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                pytest.fail(f"omnihub ended early:\n{''.join(seen)}\n{self.log.read_text()}")
            seen.append(line)
            if re.search(pattern, line):
                return seen
        pytest.fail(f"no line matching {pattern!r} in time:\n{''.join(seen)}")

    def wait_until_healthy(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"omnihub exited with {self.process.returncode}:\n{self.log.read_text()}"
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"/healthz did not answer in time:\n{self.log.read_text()}")


def pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


@contextmanager
def serving(omnihub: str, args: list[str], env: dict[str, str], cwd: Path) -> Iterator[Server]:
    """Start `omnihub ARGS --port P` on loopback; stopped with SIGTERM when the block ends."""
    port = free_port()
    log = cwd / "server.log"
    with (
        log.open("w") as errors,
        subprocess.Popen(
            [omnihub, *args, "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=env,
            cwd=cwd,
        ) as process,
    ):
        lines: queue.Queue[str | None] = queue.Queue()
        assert process.stdout is not None
        reader = threading.Thread(target=pump, args=(process.stdout, lines), daemon=True)
        reader.start()
        try:
            yield Server(process, f"http://127.0.0.1:{port}", lines, log)
        finally:
            stop(process)
            reader.join(timeout=STOP_SECONDS)


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_SECONDS)


def test_a_supervisor_added_with_a_password_on_stdin_gets_a_token_the_api_accepts(
    omnihub: str, env: dict[str, str], tmp_path: Path
) -> None:
    assert "database is up to date" in succeed(omnihub, ["migrate"], env, tmp_path)
    added = succeed(
        omnihub,
        ["agent", "add", "Lena.Vogel@omnihub.test", "--name", "Lena Vogel", "--role",
         "supervisor", "--password-stdin"],
        env,
        tmp_path,
        stdin=f"{PASSWORD}\n",
    )  # fmt: skip
    token = succeed(omnihub, ["token", "create", "lena.vogel@omnihub.test"], env, tmp_path).strip()

    assert "lena.vogel@omnihub.test (supervisor) created" in added
    assert "password" not in added
    assert re.fullmatch(r"ohk_\S{20,}", token)
    with serving(omnihub, ["serve", "--host", "127.0.0.1"], env, tmp_path) as server:
        server.wait_until_healthy()
        headers = {"Authorization": f"Bearer {token}"}
        me = httpx.get(f"{server.url}/api/agents/me", headers=headers, timeout=10)
        refused = httpx.get(
            f"{server.url}/api/agents/me", headers={"Authorization": "Bearer ohk_wrong"}, timeout=10
        )
        login = httpx.post(
            f"{server.url}/login",
            json={"email": "lena.vogel@omnihub.test", "password": PASSWORD},
            timeout=10,
        )
    assert me.status_code == 200
    assert (me.json()["email"], me.json()["role"]) == ("lena.vogel@omnihub.test", "supervisor")
    assert refused.status_code == 401
    assert login.status_code == 200


def test_an_agent_added_without_a_password_gets_a_generated_one_that_signs_in(
    omnihub: str, env: dict[str, str], tmp_path: Path
) -> None:
    succeed(omnihub, ["migrate"], env, tmp_path)
    added = succeed(
        omnihub, ["agent", "add", "jonas@omnihub.test", "--name", "Jonas Fischer"], env, tmp_path
    )

    found = re.search(r"^password: (\S+)$", added, re.MULTILINE)
    assert found is not None, added
    assert len(found[1]) >= 10
    with serving(omnihub, ["serve", "--host", "127.0.0.1"], env, tmp_path) as server:
        server.wait_until_healthy()
        login = httpx.post(
            f"{server.url}/login",
            json={"email": "jonas@omnihub.test", "password": found[1]},
            timeout=10,
        )
    assert login.status_code == 200
    assert login.json()["role"] == "agent"


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ({"OMNIHUB_DATABASE_URL": "mysql://x"}, "OMNIHUB_DATABASE_URL"),
        ({"OMNIHUB_ENVIRONMENT": "production"}, "OMNIHUB_SECRET_KEY"),
        ({"OMNIHUB_SECRET_KEY": "short"}, "OMNIHUB_SECRET_KEY"),
        ({"OMNIHUB_DEFAULT_REGION": "XX"}, "OMNIHUB_DEFAULT_REGION"),
    ],
)
def test_a_bad_setting_stops_serve_with_status_2_and_one_line_naming_it(
    omnihub: str, env: dict[str, str], tmp_path: Path, setting: dict[str, str], named: str
) -> None:
    done = run(omnihub, ["serve", "--port", str(free_port())], {**env, **setting}, tmp_path)

    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert named in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_import_customers_prints_what_it_created_updated_and_rejected(
    omnihub: str, env: dict[str, str], tmp_path: Path
) -> None:
    succeed(omnihub, ["migrate"], env, tmp_path)
    first = tmp_path / "first.csv"
    first.write_text(
        "name;email;phone;tier\n"
        "Anna Schäfer;anna@example.com;0179 2223344;C\n"
        "Bad Tier;bad@example.com;;Z\n"
        "Peter Lehmann;peter@example.com;;C\n",
        encoding="utf-8-sig",
    )
    again = tmp_path / "again.csv"
    again.write_text("phone,tier\n+49 179 2223344,B\n", encoding="utf-8")

    rejected = run(omnihub, ["import", "customers", str(first)], env, tmp_path)
    updated = run(omnihub, ["import", "customers", str(again)], env, tmp_path)

    assert rejected.returncode == 1, rejected.stderr
    assert rejected.stdout.splitlines() == [
        "2 created, 0 updated, 1 rejected",
        "  line 3: unknown tier 'Z': use A, B, C or leave it empty",
    ]
    assert updated.returncode == 0, updated.stderr
    assert updated.stdout.splitlines() == ["0 created, 1 updated, 0 rejected"]


def test_import_of_a_file_with_an_unknown_column_stops_with_status_2_and_one_line(
    omnihub: str, env: dict[str, str], tmp_path: Path
) -> None:
    succeed(omnihub, ["migrate"], env, tmp_path)
    path = tmp_path / "fax.csv"
    path.write_text("name,email,fax\nAnna,anna@example.com,0211 123\n", encoding="utf-8")

    done = run(omnihub, ["import", "customers", str(path)], env, tmp_path)

    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "omnihub: unknown column 'fax'; the columns are name, company, email, phone, tier, "
        "revenue, language, birthday, key_account, tags"
    ]


def test_the_demo_serves_a_customer_found_by_phone_in_local_notation(
    omnihub: str, tmp_path: Path
) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("OMNIHUB_")}
    args = ["demo", "--database", str(tmp_path / "demo.db")]

    with serving(omnihub, args, env, tmp_path) as server:
        printed = server.read_until(r"token ohk_")
        server.wait_until_healthy()
        token = re.findall(r"token (ohk_\S+)", "".join(printed))[0]
        found = httpx.get(
            f"{server.url}/api/customers/lookup",
            params={"phone": "0151 2345678"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )

    assert found.status_code == 200, found.text
    card = found.json()
    assert "+491512345678" in card["phones"]
    assert card["tier"] == "A"
    assert card["history"], "the demo customer has a history"


def test_a_reply_sent_in_the_demo_lands_in_its_embedded_smtp_sink(
    omnihub: str, tmp_path: Path
) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("OMNIHUB_")}
    args = ["demo", "--database", str(tmp_path / "demo.db")]
    mail_folder = tmp_path / "demo.db.mail"

    with serving(omnihub, args, env, tmp_path) as server:
        printed = server.read_until(r"token ohk_")
        server.wait_until_healthy()
        token = re.findall(r"token (ohk_\S+)", "".join(printed))[0]
        headers = {"Authorization": f"Bearer {token}"}
        open_mail = httpx.get(
            f"{server.url}/api/conversations",
            headers=headers,
            timeout=10,
            params={"status": "open"},
        ).json()["conversations"]
        conversation = next(c for c in open_mail if c["channel"] == "email")
        answer = httpx.post(
            f"{server.url}/api/conversations/{conversation['id']}/reply",
            headers=headers,
            json={"text": "Vielen Dank, wir melden uns."},
            timeout=10,
        )
        deadline = time.monotonic() + 15
        while not list(mail_folder.glob("*.eml")) and time.monotonic() < deadline:
            time.sleep(0.1)
        kept = sorted(mail_folder.glob("*.eml"))

    assert answer.json()["status"] == "queued", answer.text
    assert "mail the hub sends is kept in" in "".join(printed)
    assert len(kept) == 1
    assert b"Vielen Dank, wir melden uns." in kept[0].read_bytes()
