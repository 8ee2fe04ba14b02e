"""``coinbooks breakage``: finance's breakage run from the command line, the same service the
GraphQL mutation ``recogniseBreakage`` calls, with the same policy, checks, idempotency and audit.

- ``coinbooks breakage run --as-of DATE [--dry-run] [--by ID] [--key KEY]``: recognise the
  deferred value of every wallet unused for ``COINBOOKS_BREAKAGE_AFTER_DAYS`` days as of the end
  of DATE (UTC) as breakage revenue, one entry per wallet; ``--dry-run`` prints the same wallets
  and changes nothing. Errors are one line on standard error with the error's code, exit 1."""

from __future__ import annotations

import asyncio
import getpass
import uuid
from datetime import date, datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from accounting.breakage import service
from accounting.breakage.rules import BreakagePolicy
from accounting.ledger.errors import LedgerError
from accounting.ledger.money import format_micros
from api.console import plain_console
from api.database import create_engine, database_url_for, session_factory
from api.settings import get_settings

breakage_app = typer.Typer(
    help="Recognise the deferred value of coins left unused as breakage revenue.",
    no_args_is_help=True,
)
out = plain_console()
errors = plain_console(stderr=True)


def _recognise(request: service.BreakageRequest) -> service.BreakageRun:
    settings = get_settings()

    async def run() -> service.BreakageRun:
        with database_url_for(settings) as url:
            engine = create_engine(url, pool_size=1, max_overflow=0)
            try:
                return await service.recognise_breakage(
                    session_factory(engine),
                    request,
                    policy=BreakagePolicy(after_days=settings.breakage_after_days),
                    functional_currency=settings.functional_currency,
                )
            finally:
                await engine.dispose()

    try:
        return asyncio.run(run())
    except LedgerError as error:
        errors.print(f"[red]{error.code}[/red]: {escape(error.message)}")
        raise typer.Exit(1) from None


@breakage_app.command(name="run")
def run_breakage(
    as_of: Annotated[
        datetime,
        typer.Option("--as-of", formats=["%Y-%m-%d"], help="The run date (YYYY-MM-DD, UTC)."),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what it would post; change nothing.")
    ] = False,
    by: Annotated[
        str | None, typer.Option("--by", help="Who runs it, for the record (default: you).")
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="Idempotency key (default: a new one).")
    ] = None,
) -> None:
    """Recognise breakage as of the end of a day that has ended: each wallet unused for the
    policy's period has its deferred value moved to platform:revenue:breakage (its coins stay
    spendable), at most once per run date, audited."""
    request = service.BreakageRequest(
        as_of=date(as_of.year, as_of.month, as_of.day),
        actor=f"user:{by or getpass.getuser()}",
        idempotency_key=key or f"breakage-{uuid.uuid4()}",
        dry_run=dry_run,
    )
    done = _recognise(request)
    currency = get_settings().functional_currency
    table = Table("user", "coins", f"value ({currency})", "last moved", "entry")
    for wallet in done.wallets:
        table.add_row(
            wallet.user_id,
            str(wallet.coins),
            format_micros(wallet.value_micros, currency),
            f"{wallet.last_moved_at:%Y-%m-%d %H:%M:%S}",
            "" if wallet.entry_id is None else str(wallet.entry_id),
        )
    out.print(table)
    verb = "would recognise (dry run, nothing posted)" if done.dry_run else "recognised"
    again = " (replayed: run before under this key)" if done.replayed else ""
    out.print(
        f"Breakage as of {done.as_of} (unused for {done.after_days} days, since before "
        f"{done.cutoff:%Y-%m-%d %H:%M} UTC): {verb} {len(done.wallets)} wallet(s), "
        f"{done.coins} coins, {format_micros(done.value_micros, currency)} {currency}{again}"
    )
    if done.more:
        out.print(f"More dormant wallets remain beyond {service.MAX_WALLETS_PER_RUN}: run again.")
