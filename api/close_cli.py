"""The close's commands, on the ``coinbooks`` command itself:

- ``coinbooks close-period YYYY-MM --reason R [--override-reason O] [--by ACTOR]``: close a month
  (finance). Exit 1 if refused (the reason is printed), 2 if it could not run.
- ``coinbooks seal``: seal the entries not yet sealed (the service does it every round too).
  Exit 1 if transactions in flight outlasted the wait.
- ``coinbooks verify-chain``: recompute every seal from the journal's data. Exit 0 when the
  chain is intact, 1 naming the first entry that differs, 2 when it could not run."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.close import reads, service
from accounting.ledger.errors import LedgerError
from api.console import plain_console
from api.database import create_engine, database_url_for, session_factory
from api.settings import get_settings

console = plain_console()
T = TypeVar("T")
COULD_NOT_RUN = 2


def _run(work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]) -> T:
    """Run ``work`` on the configured database; exit 2 when it cannot be reached or fails
    other than by a business refusal."""

    async def run(url: URL) -> T:
        engine = create_engine(url, pool_size=1, max_overflow=0)
        try:
            return await work(session_factory(engine))
        finally:
            await engine.dispose()

    try:
        with database_url_for(get_settings()) as url:
            return asyncio.run(run(url))
    except (LedgerError, typer.Exit):
        raise
    except Exception as error:
        console.print(f"Could not run: {type(error).__name__}: {error}")
        raise typer.Exit(COULD_NOT_RUN) from error


def close_period(
    month: Annotated[str, typer.Argument(help="The month, YYYY-MM (UTC).")],
    reason: Annotated[str, typer.Option(help="Why it closes now, for the record.")],
    override_reason: Annotated[
        str | None,
        typer.Option(help="Close although reconciliation exceptions are open, and why."),
    ] = None,
    by: Annotated[str | None, typer.Option(help="Who closes (default: you).")] = None,
) -> None:
    """Close a month: from then on no entry may be dated into it. Seals the journal first."""
    request = service.CloseRequest(
        month=month,
        actor=by or f"user:{getpass.getuser()}",
        reason=reason,
        override=override_reason is not None,
        override_reason=override_reason or "",
    )
    try:
        row = _run(lambda sessions: service.close_period(sessions, request))
    except LedgerError as refused:
        console.print(f"Refused ({refused.code}): {refused.message}")
        raise typer.Exit(1) from refused
    console.print(
        f"Closed {month} by {row.closed_by}; chain head: entry {row.head_entry_id}, {row.head_hash}"
    )


def seal(
    wait_seconds: Annotated[
        float, typer.Option(help="How long to wait for transactions in flight.")
    ] = service.WAIT_SECONDS,
) -> None:
    """Seal every entry not yet sealed, in id order, once the transactions in flight finish."""

    async def work(sessions: async_sessionmaker[AsyncSession]) -> service.Sealing:
        async with sessions() as session:
            return await service.seal_journal(session, wait_seconds=wait_seconds)

    done = _run(work)
    if done.waited_out:
        console.print(f"Transactions in flight outlasted {wait_seconds} s: nothing sealed")
        raise typer.Exit(1)
    console.print(
        f"Sealed {done.sealed} entries; head: entry {done.head.entry_id}, {done.head.hash}"
    )


def verify_chain() -> None:
    """Recompute every entry's seal from the journal; name the first entry that differs."""

    async def work(sessions: async_sessionmaker[AsyncSession]) -> reads.ChainVerification:
        async with sessions() as session:
            return await reads.verify_chain(session)

    result = _run(work)
    if not result.intact:
        console.print(f"The chain differs at entry {result.first_difference}: {result.detail}")
        raise typer.Exit(1)
    console.print(
        f"Intact: {result.entries_checked} entries, {result.sealed} sealed;"
        f" head: entry {result.head.entry_id}, {result.head.hash}"
    )


def register(app: typer.Typer) -> None:
    """Put the close's commands on ``app``."""
    app.command(name="close-period")(close_period)
    app.command(name="seal")(seal)
    app.command(name="verify-chain")(verify_chain)
