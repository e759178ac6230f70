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
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
import uvicorn

from hub.context import Hub
from hub.errors import HubError
from hub.settings import ENV_PREFIX, Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from rich.progress import Progress

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
campaign_app = typer.Typer(help="Outbound campaigns.", no_args_is_help=True)
app.add_typer(campaign_app, name="campaign")
tiers_app = typer.Typer(help="Customer tiers (A, B, C).", no_args_is_help=True)
app.add_typer(tiers_app, name="tiers")
retention_app = typer.Typer(help="Retention of the history.", no_args_is_help=True)
app.add_typer(retention_app, name="retention")

T = TypeVar("T")


def fail(message: str) -> typer.Exit:
    typer.echo(f"omnihub: {message}", err=True)
    return typer.Exit(2)


def progress_bar(**options: Any) -> Progress:
    """rich's progress bar on a terminal; none where the output goes to a file or a
    pipe, which would get its frames, or an empty line for a transient one."""
    from rich.progress import Progress  # only the commands that show one pay its import

    return Progress(disable=not sys.stdout.isatty(), **options)


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
    _check_routing_rules_or_exit(settings)
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


def _check_routing_rules_or_exit(settings: Settings) -> None:
    """A wrong rules file stops the start with its file, line and problem."""
    from routing.rules import RulesError, load_rules

    try:
        load_rules(settings.routing_rules)
    except RulesError as error:
        raise fail(str(error)) from None


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
        _check_routing_rules_or_exit(settings)
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


@agent_app.command("password")
def agent_password(email: str) -> None:
    """Set an agent's password from the first line of stdin; ends their sessions and tokens."""
    from hub.agents import do_change_password, get_agent

    settings = settings_or_exit()
    password = sys.stdin.readline().rstrip("\r\n")

    async def change(hub: Hub) -> int:
        async with hub.work() as work:
            agent = await get_agent(work.session, email)
            return await do_change_password(work.session, agent, password)

    revoked = run_with_hub(settings, change)
    typer.echo(f"password of {email} changed; sessions ended, {revoked} API tokens revoked")


@agent_app.command("deactivate")
def agent_deactivate(email: str) -> None:
    """Deactivate an agent: sign-in refused, sessions and API tokens end at once."""
    from hub.agents import do_deactivate, get_agent

    settings = settings_or_exit()

    async def deactivate(hub: Hub) -> int:
        async with hub.work() as work:
            return await do_deactivate(work.session, await get_agent(work.session, email))

    revoked = run_with_hub(settings, deactivate)
    typer.echo(f"agent {email} deactivated; sessions ended, {revoked} API tokens revoked")


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
    from hub.importer import import_customers

    settings = settings_or_exit()

    async def load(hub: Hub) -> Any:
        with progress_bar(transient=True) as progress:
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
    if report.suppressed:
        lines = ", ".join(str(line) for line in report.suppressed)
        typer.echo(f"  erased on request earlier, imported with marketing blocked: line {lines}")
    if report.rejected:
        raise typer.Exit(1)


@retention_app.command("purge")
def retention_purge(
    days: Annotated[
        int | None,
        typer.Option(min=1, help="purge history older than this (default OMNIHUB_RETENTION_DAYS)"),
    ] = None,
) -> None:
    """Delete the history older than the retention period now (`hub.privacy.retention`)."""
    from hub.privacy.retention import purge_history

    settings = settings_or_exit()
    keep = days or settings.retention_days
    if keep is None:
        raise fail(f"give --days N or set {ENV_PREFIX}RETENTION_DAYS; nothing was purged")
    counts = run_with_hub(settings, lambda hub: purge_history(hub, keep))
    typer.echo(f"purged history older than {keep} days:")
    for name, count in counts.items():
        typer.echo(f"  {name}: {count}")


@tiers_app.command("recompute")
def tiers_recompute(
    shares: Annotated[
        str, typer.Option(help="cumulative revenue shares of A, B and C, in percent")
    ] = "80/15/5",
) -> None:
    """ABC analysis of revenue: store every customer's tier and report who moved.

    A tier set by hand stays as it is."""
    from routing.tiers import parse_shares, recompute_tiers

    settings = settings_or_exit()
    try:
        split = parse_shares(shares)
    except HubError as error:
        raise fail(error.message) from None
    report = run_with_hub(settings, lambda hub: recompute_tiers(hub, split))
    counts = ", ".join(f"{tier} {report.counts[tier]}" for tier in ("A", "B", "C"))
    typer.echo(
        f"{report.customers} customers: {counts}; {len(report.moves)} moved, "
        f"{report.kept_manual} set by hand kept"
    )
    for move in report.moves:
        typer.echo(f"  {move.customer_id} {move.name}: {move.old or '-'} -> {move.new}")


@campaign_app.command("send")
def campaign_send(campaign_id: int) -> None:
    """Send an approved campaign (or resume one that is sending), with a progress bar."""
    from hub.app import campaign_senders, wire_channels
    from hub.campaigns.command import send_with_progress

    settings = settings_or_exit()

    async def send(hub: Hub) -> Any:
        wiring = wire_channels(settings, hub)
        senders = campaign_senders(settings, wiring, given=False)
        try:
            with progress_bar() as progress:
                task = progress.add_task(f"campaign {campaign_id}", total=None)
                return await send_with_progress(
                    hub,
                    campaign_id,
                    senders,
                    lambda done, total: progress.update(task, completed=done, total=total),
                )
        finally:
            for close in wiring.closers:
                await close()

    counts = run_with_hub(settings, send)
    names = ("sent", "blocked", "failed", "unknown", "cancelled", "queued")
    typer.echo(", ".join(f"{counts[name]} {name}" for name in names))
    if counts["queued"]:
        raise typer.Exit(1)


def main() -> None:
    app()
