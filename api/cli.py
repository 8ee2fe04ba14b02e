"""The ``coinbooks`` command: serve, migrate, tokens, the finance checks, the postings' totals."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.progress import Progress
from rich.table import Table
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession

from accounting import integrity
from accounting.gifts import holds
from accounting.policy.access import Role
from accounting.reads import period_totals, reports
from api.auth import TokenKeyError, issue_token, token_keys
from api.breakage_cli import breakage_app
from api.cli_output import integrity_json, progress_bar, trial_balance_json
from api.close_cli import register as register_close_commands
from api.console import plain_console
from api.corrections_cli import corrections_app
from api.database import (
    create_engine,
    database_url_for,
    migrate,
    migration_status,
    purchase_service,
    session_factory,
)
from api.export_cli import export_app
from api.logs import configure_logging, log_format_of
from api.refusals import RefusingGroup, refuse
from api.settings import Settings, get_settings
from api.settlement_cli import settlement_app

app = typer.Typer(
    cls=RefusingGroup,
    help="Coinbooks: the ledger of coins, diamonds and cash.",
    no_args_is_help=True,
)
app.add_typer(export_app, name="export")
app.add_typer(corrections_app, name="corrections")
app.add_typer(settlement_app, name="settlement")
app.add_typer(breakage_app, name="breakage")
register_close_commands(app)
console = plain_console()
T = TypeVar("T")


def _with_session(url: URL, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def run() -> T:
        engine = create_engine(url, pool_size=1, max_overflow=0)
        try:
            async with session_factory(engine)() as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _where(url: URL) -> str:
    host = url.query.get("host") or url.host or "localhost"
    return f"database {url.database} at {host}"


def _require_migrated(url: URL) -> None:
    """One line and exit 2 unless the database is migrated to this version's head."""
    current, head = migration_status(url)
    if current != head:
        raise refuse(
            f"{_where(url)} is at migration {current or 'none'}, not the head {head}:"
            " run `coinbooks migrate`"
        )


JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON on standard output instead of a table.")
]


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    ready_file: Annotated[
        Path | None,
        typer.Option(
            help="Once serving, write the address (http://host:port) to this file; "
            "with --port 0 the port the system chose. Removed on exit."
        ),
    ] = None,
) -> None:
    """Migrate the database and serve GraphQL (embedded PostgreSQL unless DATABASE_URL is set)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from api.serving import ReadyServer, address_of, bind_quietly

    settings = get_settings()
    _exit_on_key_error(lambda: token_keys(settings))
    if ready_file is not None and (workers or settings.workers) > 1:
        raise refuse("--ready-file: serve with one worker (COINBOOKS_WORKERS=1)")
    configure_logging(log_format_of(settings.log_format, settings.development))
    config = uvicorn.Config(
        "api.app:app_from_environment",
        factory=True,
        host=host or settings.host,
        port=settings.port if port is None else port,
        workers=workers or settings.workers,
        log_level="info",
        log_config=None,  # uvicorn's loggers go through ours (api/logs.py)
    )
    listening = bind_quietly(config)  # a taken address ends it here, before anything started
    with database_url_for(settings) as url:
        migrate(url)
        os.environ["DATABASE_URL"] = url.render_as_string(hide_password=False)
        _banner(settings, url, f"{address_of(listening)}/graphql")
        if config.workers > 1:
            Multiprocess(config, sockets=[listening]).run()
        else:
            ReadyServer(config, ready_file).run(sockets=[listening])


def _banner(settings: Settings, url: URL, address: str) -> None:
    """Printed once the address is bound and the database migrated: it serves from here on."""
    console.print(f"[bold]Coinbooks[/bold] GraphQL at [cyan]{address}[/cyan]")
    if settings.database_url:
        console.print(f"Data: {_where(url)} (DATABASE_URL)")
    else:
        console.print(
            f"Data: embedded PostgreSQL in {settings.data_dir / 'pgdata'} ({_where(url)})"
        )
    console.print("A token to try it: [green]coinbooks token --user ana --role viewer[/green]")


@app.command(name="migrate")
def migrate_command(
    status: Annotated[
        bool,
        typer.Option(
            "--status",
            help="Only show the database's migration and the head; exit 1 if it is behind.",
        ),
    ] = False,
) -> None:
    """Apply the database migrations and stop (several at once take turns)."""
    settings = get_settings()
    with database_url_for(settings) as url:
        if not status:
            migrate(url)
            console.print(f"Migrated {_where(url)}")
            return
        current, head = migration_status(url)
    console.print(f"{_where(url)}: current {current or 'none'}, head {head}")
    if current != head:
        console.print("Behind the head: run `coinbooks migrate`")
        raise typer.Exit(1)


@app.command()
def token(
    user: Annotated[str, typer.Option(help="The user id (the token's subject).")],
    role: Annotated[list[Role], typer.Option(help="A role; repeat for several.")],
    ttl_minutes: Annotated[int | None, typer.Option(help="Lifetime in minutes.")] = None,
) -> None:
    """Print a bearer token signed with the configured key (HS256), or with
    COINBOOKS_JWT_PRIVATE_KEY_FILE (RS256, ES256, EdDSA; without it, refused)."""
    settings = get_settings()
    ttl = timedelta(minutes=ttl_minutes) if ttl_minutes else None
    print(_exit_on_key_error(lambda: issue_token(settings, user, role, ttl)))


def _exit_on_key_error(work: Callable[[], T]) -> T:
    """``work()``, or one line naming the token setting to fix and exit 2."""
    try:
        return work()
    except TokenKeyError as error:
        raise refuse(str(error)) from None


@app.command()
def check(as_json: JsonOption = False) -> None:
    """Re-derive every invariant from the raw postings. Exit 0 if none is violated, 1 if any
    is, 2 if it could not run (the database unreachable or not migrated)."""
    settings = get_settings()
    with database_url_for(settings) as url, progress_bar() as progress:
        _require_migrated(url)
        step = progress.add_task("Checking", total=len(integrity.CHECKS))
        report = _with_session(
            url,
            lambda s: integrity.check_integrity(s, lambda _: progress.advance(step)),
        )
    if as_json:
        print(json.dumps(integrity_json(report), indent=2))
        raise typer.Exit(0 if report.ok else 1)
    console.print(
        f"Checked {report.entries} entries, {report.postings} postings, "
        f"{report.accounts} accounts, {len(report.checks)} checks "
        f"at {report.checked_at:%Y-%m-%d %H:%M:%S %Z}"
    )
    if report.ok:
        console.print("[green]No violations.[/green]")
        return
    table = Table("invariant", "check", "detail")
    for violation in report.violations:
        table.add_row(str(violation.invariant), violation.check, violation.detail)
    console.print(table)
    raise typer.Exit(1)


@app.command(name="trial-balance")
def trial_balance(
    as_of: Annotated[datetime | None, typer.Option(help="Instant (ISO 8601); default now.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Print the trial balance. Exit 0 if every commodity balances, 1 if one does not, 2 if
    it could not run (the database unreachable or not migrated)."""
    settings = get_settings()
    with database_url_for(settings) as url:
        _require_migrated(url)
        found = _with_session(url, lambda s: reports.trial_balance(s, as_of))
    if as_json:
        print(json.dumps(trial_balance_json(found), indent=2))
        raise typer.Exit(0 if found.balanced else 1)
    table = Table(
        "account", "commodity", "debit", "credit", title=f"Trial balance at {found.as_of}"
    )
    for line in found.lines:
        table.add_row(line.code, line.commodity, str(line.debit or ""), str(line.credit or ""))
    for total in found.totals:
        table.add_row(
            f"[bold]total {total.commodity}[/bold]",
            total.commodity,
            str(total.debit),
            str(total.credit),
        )
    console.print(table)
    if not found.balanced:
        raise typer.Exit(1)


@app.command(name="settle-purchases")
def settle_purchases() -> None:
    """Ask the payment provider about every pending purchase and settle those it answers."""
    settings = get_settings()

    async def run(url: URL, progress: Progress) -> dict[str, int]:
        engine = create_engine(url, pool_size=2, max_overflow=0)
        step = progress.add_task("Settling pending purchases", total=None)
        try:
            sessions = session_factory(engine)
            return await purchase_service(settings, sessions).settle_pending(
                on_settled=lambda _: progress.advance(step)
            )
        finally:
            await engine.dispose()

    with database_url_for(settings) as url, progress_bar() as progress:
        counts = asyncio.run(run(url, progress))
    console.print(", ".join(f"{n} {status}" for status, n in counts.items()))


@app.command(name="release-holds")
def release_holds(
    creator: Annotated[
        str | None, typer.Option(help="Only this creator's gifts; default every creator's.")
    ] = None,
) -> None:
    """Release the diamonds of every gift whose hold has passed, pending to available.

    Safe to run repeatedly and from several places at once: no gift is released twice."""
    settings = get_settings()

    async def run(url: URL, progress: Progress) -> int:
        engine = create_engine(url, pool_size=1, max_overflow=0)
        step = progress.add_task("Releasing gifts from hold", total=None)
        try:
            return await holds.release_due(
                session_factory(engine),
                creator_id=creator,
                on_batch=lambda released: progress.advance(step, released),
            )
        finally:
            await engine.dispose()

    with database_url_for(settings) as url, progress_bar() as progress:
        released = asyncio.run(run(url, progress))
    console.print(f"Released {released} gift(s) from hold")


@app.command(name="summarize-totals")
def summarize_totals(
    wait_seconds: Annotated[
        float, typer.Option(help="How long to wait for transactions in flight.")
    ] = period_totals.WAIT_SECONDS,
) -> None:
    """Bring the postings' totals per hour up to the hour begun two minutes ago (the finance
    reports read whole hours from them). Safe to run repeatedly and from several places at
    once: each hour is written once. Exit 1 if transactions in flight outlasted the wait."""
    settings = get_settings()
    with database_url_for(settings) as url:
        done = _with_session(url, lambda s: period_totals.summarize(s, wait_seconds=wait_seconds))
    if done.waited_out:
        console.print(f"Transactions in flight outlasted {wait_seconds} s: nothing summarized")
        raise typer.Exit(1)
    console.print(
        f"Summarized {done.hours} hour(s) into {done.rows} row(s):"
        f" totals from {done.summarized_from} until {done.summarized_until}"
    )


@app.command(name="export-schema")
def export_schema(
    check_only: Annotated[
        bool, typer.Option("--check", help="Exit 1 if the committed SDL file differs.")
    ] = False,
) -> None:
    """Write the GraphQL SDL to schema/schema.graphql."""
    from schema import SDL_PATH, sdl

    current = sdl()
    if check_only:
        if not SDL_PATH.exists() or SDL_PATH.read_text() != current:
            console.print(f"{SDL_PATH} is out of date: run `coinbooks export-schema`")
            raise typer.Exit(1)
        console.print(f"{SDL_PATH} is up to date")
        return
    SDL_PATH.write_text(current)
    console.print(f"Wrote {SDL_PATH}")


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
