"""The `omnihub` command: serve, demo, migrate, agents, tokens and imports.

Settings are read once here and passed on. A wrong setting or bad input ends
the command with one line on standard error and exit status 2, not a traceback.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import uvicorn

from hub.context import Hub
from hub.errors import HubError
from hub.settings import ENV_PREFIX, Settings, SettingsError, load_settings

app = typer.Typer(
    help="omnihub: the omnichannel communication hub.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
agent_app = typer.Typer(help="Manage agents.", no_args_is_help=True)
token_app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)
import_app = typer.Typer(help="Import data.", no_args_is_help=True)
app.add_typer(agent_app, name="agent")
app.add_typer(token_app, name="token")
app.add_typer(import_app, name="import")

T = TypeVar("T")


def fail(message: str) -> typer.Exit:
    typer.echo(f"omnihub: {message}", err=True)
    return typer.Exit(2)


def settings_or_exit(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except SettingsError as error:
        raise fail(str(error)) from None


def run_with_hub(settings: Settings, action: Callable[[Hub], Awaitable[T]]) -> T:
    """Run one async action on a hub of its own; hub errors end the command in one line."""

    async def go() -> T:
        hub = Hub.create(settings)
        try:
            return await action(hub)
        finally:
            await hub.close()

    try:
        return asyncio.run(go())
    except HubError as error:
        raise fail(error.message) from None
    except OSError as error:
        raise fail(str(error)) from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 1,
) -> None:
    """Run the hub: API, console, channels and background work. Migrates the schema first."""
    settings = settings_or_exit()
    _migrate_or_exit(settings)
    _serve(settings, host, port, workers)


def _serve(settings: Settings, host: str, port: int, workers: int) -> None:
    if workers == 1:
        from hub.app import create_app

        uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
    else:
        # Each worker builds its app from the environment; they must share one secret
        # (a development hub without OMNIHUB_SECRET_KEY made one up for this run).
        os.environ.setdefault(f"{ENV_PREFIX}SECRET_KEY", settings.secret_key or "")
        uvicorn.run(
            "hub.app:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
        )


def _migrate_or_exit(settings: Settings) -> None:
    from hub.db import migrate_sync

    try:
        migrate_sync(settings.database_url)
    except Exception as error:
        raise fail(f"cannot migrate {settings.database_url}: {error}") from None


@app.command()
def migrate() -> None:
    """Apply database migrations."""
    settings = settings_or_exit()
    _migrate_or_exit(settings)
    typer.echo("database is up to date")


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    database: Annotated[Path, typer.Option(help="the demo's SQLite file, made anew")] = Path(
        "omnihub-demo.db"
    ),
) -> None:
    """Serve a fresh SQLite hub with demo customers, history, complaints and agents,
    and an embedded SMTP sink that keeps every sent mail as a file."""
    from hub.demo import seed_demo
    from hub.mail_sink import start_sink

    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    mail_folder = Path(f"{database}.mail")
    sink = start_sink(mail_folder)
    try:
        settings = settings_or_exit(
            database_url=f"sqlite+aiosqlite:///{database}",
            public_url=f"http://127.0.0.1:{port}",
            smtp_host=sink.hostname,
            smtp_port=sink.port,
            smtp_tls=False,
            mail_from="omnihub demo <service@omnihub-demo.test>",
        )
        _migrate_or_exit(settings)
        logins = run_with_hub(settings, seed_demo)
        typer.echo(f"\nomnihub demo: console at http://127.0.0.1:{port}/  (API docs at /docs)")
        typer.echo(f"  mail the hub sends is kept in {mail_folder}/")
        for login in logins:
            account = f"{login.role:<10} {login.email:<27}"
            typer.echo(f"  {account} password {login.password:<19} token {login.token}")
        typer.echo("")
        _serve(settings, "127.0.0.1", port, 1)
    finally:
        sink.stop()


@agent_app.command("add")
def agent_add(
    email: str,
    name: Annotated[str, typer.Option("--name", help="the agent's full name")],
    role: Annotated[str, typer.Option("--role", help="agent, supervisor or admin")] = "agent",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin")
    ] = False,
) -> None:
    """Create an agent; prints a generated password unless one comes on stdin."""
    from hub.agents import create_agent

    settings = settings_or_exit()
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else secrets.token_urlsafe(12)

    async def add(hub: Hub) -> Any:
        async with hub.work() as work:
            return await create_agent(work.session, email, name, role, password)

    agent = run_with_hub(settings, add)
    typer.echo(f"agent {agent.id} {agent.email} ({agent.role}) created")
    if not password_stdin:
        typer.echo(f"password: {password}")


@token_app.command("create")
def token_create(email: str) -> None:
    """Print a new API token for the agent (only its hash is stored)."""
    from hub.agents import create_token, get_agent

    settings = settings_or_exit()

    async def create(hub: Hub) -> str:
        async with hub.work() as work:
            return await create_token(work.session, await get_agent(work.session, email))

    typer.echo(run_with_hub(settings, create))


@import_app.command("customers")
def import_customers_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
) -> None:
    """Upsert customers from CSV; reports every rejected row and why."""
    from rich.progress import Progress

    from hub.importer import import_customers

    settings = settings_or_exit()

    async def load(hub: Hub) -> Any:
        with Progress(transient=True) as progress:
            task = progress.add_task("importing", total=None)
            return await import_customers(
                hub, file, lambda done, total: progress.update(task, completed=done, total=total)
            )

    report = run_with_hub(settings, load)
    typer.echo(
        f"{report.created} created, {report.updated} updated, {len(report.rejected)} rejected"
    )
    for rejected in report.rejected:
        typer.echo(f"  line {rejected.line}: {rejected.reason}")
    if report.rejected:
        raise typer.Exit(1)


def main() -> None:
    app()
