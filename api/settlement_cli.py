"""``coinbooks settlement``: finance's settlement work from the command line.

- ``coinbooks settlement import FILE [--by ACTOR]``: import a provider's settlement report (CSV,
  docs/settlement/), once per report id; prints each line's reconciliation and the exceptions
  it raised. Exit 1 if the report is refused (a malformed line names its number).
- ``coinbooks settlement exceptions [--status open|resolved|all] [--provider P]``: the
  reconciliation exceptions as CSV on standard output (default: the open ones)."""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.ledger.errors import LedgerError
from accounting.ledger.money import format_micros
from accounting.reads.export import ExportFormat, chunks, rows_of
from accounting.settlement import service
from api.console import plain_console
from api.database import create_engine, database_url_for, session_factory
from api.exports import reconciliation_filter
from api.settings import get_settings

settlement_app = typer.Typer(
    help="Import provider settlement reports and see what they did not reconcile.",
    no_args_is_help=True,
)
console = plain_console()
errors = plain_console(stderr=True)
T = TypeVar("T")


def _run(work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]) -> T:
    async def run(url: URL) -> T:
        engine = create_engine(url, pool_size=1, max_overflow=0)
        try:
            return await work(session_factory(engine))
        finally:
            await engine.dispose()

    with database_url_for(get_settings()) as url:
        return asyncio.run(run(url))


@settlement_app.command(name="import")
def import_report(
    file: Annotated[Path, typer.Argument(help="The report, CSV.", exists=True, dir_okay=False)],
    by: Annotated[
        str | None, typer.Option("--by", help="Who imports, for the record (default: you).")
    ] = None,
) -> None:
    """Import a provider's settlement report, once per report id, all or nothing."""
    actor = by or f"user:{getpass.getuser()}"
    request = service.ImportRequest(file.read_text(encoding="utf-8"), actor)
    try:
        done = _run(lambda sessions: service.import_report(sessions, request))
    except LedgerError as error:
        errors.print(f"{error.code}: {error.message}")
        raise typer.Exit(1) from None
    report = done.report
    verb = "was imported before" if done.replayed else "imported"
    console.print(
        f"Report {report.report_id} of {report.provider} {verb}: {report.line_count} line(s),"
        f" entry {report.entry_id if report.entry_id is not None else 'none'},"
        f" {len(done.exceptions)} exception(s)"
    )
    table = Table("line", "reference", "type", "net", "status", "difference")
    for line in done.lines:
        table.add_row(
            str(line.line_number),
            line.provider_reference,
            line.type,
            f"{format_micros(line.net_micros, line.currency)} {line.currency}",
            line.status,
            format_micros(line.difference_micros, line.currency),
        )
    console.print(table)


@settlement_app.command(name="exceptions")
def exceptions(
    status: Annotated[str, typer.Option(help="open, resolved or all.")] = "open",
    provider: Annotated[str | None, typer.Option(help="Only this provider's.")] = None,
) -> None:
    """The reconciliation exceptions, as CSV on standard output."""
    try:
        wanted = reconciliation_filter({"status": status, "provider": provider})
    except LedgerError as error:
        errors.print(f"--status: {error.message}")
        raise typer.Exit(2) from None

    async def read(sessions: async_sessionmaker[AsyncSession]) -> list[dict[str, Any]]:
        async with sessions() as session:
            return await service.reconciliation_rows(session, **wanted)

    rows = _run(read)

    async def write() -> None:
        async for chunk in chunks(ExportFormat.CSV, service.RECONCILIATION_COLUMNS, rows_of(rows)):
            sys.stdout.write(chunk)

    asyncio.run(write())
