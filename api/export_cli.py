"""``coinbooks export``: reports as files, CSV or JSON lines (``--format csv|json``), to
``--output FILE`` or to standard output, with a progress bar on standard error.

- ``coinbooks export journal --from T --to T``: the journal one posting a line, streamed in
  constant memory.
- ``coinbooks export statement --account CODE --from T --to T``: one account's statement,
  streamed a page of movements at a time.
- ``coinbooks export balance-sheet [--as-of T]``, ``income-statement --from T --to T``,
  ``roll-forwards --from T --to T``: one row per report line."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Annotated, TextIO, TypeVar

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.ledger.errors import LedgerError
from accounting.reads import report_rows
from accounting.reads.export import ExportFormat
from api.console import plain_console
from api.database import create_engine, database_url_for, session_factory
from api.exports import (
    ReadReport,
    UnknownAccount,
    as_of,
    balance_sheet_read,
    income_statement_read,
    journal_chunks,
    journal_filter,
    period,
    report_chunks,
    roll_forwards_read,
    statement_chunks,
    statement_request,
)
from api.settings import get_settings

export_app = typer.Typer(help="Export reports as CSV or JSON lines.", no_args_is_help=True)
errors = plain_console(stderr=True)
T = TypeVar("T")


Chunks = Callable[[async_sessionmaker[AsyncSession], Callable[[int], None]], AsyncIterator[str]]
"""An export's text, from a session factory, telling a callback of the rows as they go."""


async def _write(url: URL, chunks: Chunks, out: TextIO, progress: Progress, label: str) -> int:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    task = progress.add_task(label, total=None)
    written = 0

    def advance(rows: int) -> None:
        nonlocal written
        written += rows
        progress.update(task, advance=rows)

    try:
        async for chunk in chunks(session_factory(engine), advance):
            out.write(chunk)
    finally:
        await engine.dispose()
    return written


def _export(chunks: Chunks, output: Path | None, label: str, unit: str) -> int:
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn(f"{{task.completed:,.0f}} {unit}"),
        TimeElapsedColumn(),
        console=errors,
    )
    with database_url_for(get_settings()) as url, progress:
        if output is None:
            return asyncio.run(_write(url, chunks, sys.stdout, progress, label))
        with output.open("w", encoding="utf-8", newline="") as out:
            return asyncio.run(_write(url, chunks, out, progress, label))


def _checked(make: Callable[[], T]) -> T:
    """Parameters checked as the HTTP export checks them; a bad one exits 2 with its reason."""
    try:
        return make()
    except LedgerError as error:
        errors.print(f"[red]{error.message}[/red]")
        raise typer.Exit(2) from None


def _done(written: int, unit: str, output: Path | None) -> None:
    where = output if output is not None else "standard output"
    errors.print(f"Exported {written} {unit} to {where}", soft_wrap=True)


def _report(read: ReadReport, columns: Sequence[str], chosen: ExportFormat) -> Chunks:
    def chunks(
        sessions: async_sessionmaker[AsyncSession], progress: Callable[[int], None]
    ) -> AsyncIterator[str]:
        return _counting_chunks(report_chunks(sessions, read, columns, chosen), progress, chosen)

    return chunks


async def _counting_chunks(
    chunks: AsyncIterator[str], progress: Callable[[int], None], chosen: ExportFormat
) -> AsyncIterator[str]:
    """A small report's chunks, its rows counted from its lines (a CSV's header left out)."""
    header = chosen is ExportFormat.CSV
    async for chunk in chunks:
        lines = chunk.count("\n") - (1 if header else 0)
        header = False
        progress(lines)
        yield chunk


FromOption = Annotated[
    str, typer.Option("--from", help="From this instant (ISO 8601; UTC if no offset).")
]
ToOption = Annotated[str, typer.Option("--to", help="Until this instant, excluded (ISO 8601).")]
FormatOption = Annotated[ExportFormat, typer.Option(help="csv, or json for JSON lines.")]
OutputOption = Annotated[
    Path | None, typer.Option("--output", "-o", help="The file (default: standard output).")
]


@export_app.command()
def journal(
    from_: Annotated[
        str | None, typer.Option("--from", help="Posted at or after (ISO 8601; UTC if no offset).")
    ] = None,
    to: Annotated[str | None, typer.Option(help="Posted before (ISO 8601).")] = None,
    format: Annotated[ExportFormat, typer.Option(help="csv, or json for JSON lines.")] = (
        ExportFormat.CSV
    ),
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="The file (default: standard output).")
    ] = None,
    kind: Annotated[str | None, typer.Option(help="Only entries of this kind.")] = None,
    account: Annotated[
        str | None, typer.Option(help="An account code, or a prefix ending with ':'.")
    ] = None,
    user: Annotated[str | None, typer.Option(help="Entries touching this user's accounts.")] = None,
    actor: Annotated[str | None, typer.Option(help="Entries this actor caused.")] = None,
) -> None:
    """The journal, one posting a line: entry, time, kind, event, actor, account, commodity,
    side, amount (a decimal string in the commodity's unit), memo and references."""
    params = {"from": from_, "to": to, "kind": kind, "account": account}
    try:
        wanted = journal_filter({**params, "userId": user, "actor": actor})
    except LedgerError as error:
        errors.print(f"[red]{error.message}[/red]")
        raise typer.Exit(2) from None

    def chunks(
        sessions: async_sessionmaker[AsyncSession], progress: Callable[[int], None]
    ) -> AsyncIterator[str]:
        return journal_chunks(sessions, wanted, format, progress=progress)

    _done(_export(chunks, output, "Journal", "postings"), "posting(s)", output)


@export_app.command()
def statement(
    account: Annotated[str, typer.Option(help="The account's code (user:ana:coins).")],
    from_: FromOption,
    to: ToOption,
    format: FormatOption = ExportFormat.CSV,
    output: OutputOption = None,
) -> None:
    """One account's statement over [from, to), one row per line, the 'line' column saying
    which: 'opening' (the balance before 'from', in 'balance'), then a 'movement' per posting
    (time, entry, kind, amount signed as it moved the account, balance after it, the entry's
    other accounts, memo), then 'total_in', 'total_out' (negative) and 'closing' (the balance
    before 'to'): opening + total_in + total_out = closing. Amounts are decimal strings in the
    account's commodity, named in its own column."""
    wanted = _checked(lambda: statement_request({"account": account, "from": from_, "to": to}))

    def chunks(
        sessions: async_sessionmaker[AsyncSession], progress: Callable[[int], None]
    ) -> AsyncIterator[str]:
        return statement_chunks(sessions, wanted, format, progress=progress)

    try:
        written = _export(chunks, output, f"Statement of {wanted.account}", "rows")
    except UnknownAccount as error:
        errors.print(f"[red]{error.message}[/red]")
        raise typer.Exit(1) from None
    _done(written, "row(s)", output)


@export_app.command(name="balance-sheet")
def balance_sheet(
    as_of_: Annotated[
        str | None, typer.Option("--as-of", help="After the postings at or before (default: now).")
    ] = None,
    format: FormatOption = ExportFormat.CSV,
    output: OutputOption = None,
) -> None:
    """The balance sheet, one row per line and commodity: as_of, section (assets, liabilities,
    equity, memo, then result: revenue less expenses to date), line, label, commodity, amount
    (a decimal string in the commodity's unit) and the accounts behind it."""
    at = _checked(lambda: as_of({"--as-of": as_of_}, name="--as-of"))
    read = balance_sheet_read(get_settings().functional_currency, at)
    chunks = _report(read, report_rows.BALANCE_SHEET_COLUMNS, format)
    _done(_export(chunks, output, "Balance sheet", "rows"), "row(s)", output)


@export_app.command(name="income-statement")
def income_statement(
    from_: FromOption,
    to: ToOption,
    format: FormatOption = ExportFormat.CSV,
    output: OutputOption = None,
) -> None:
    """The income statement of [from, to), one row per line and commodity: the period, section
    (revenue, expenses, result), line, label, commodity, amount (a decimal string in the
    commodity's unit; refunds and chargebacks negative) and the accounts behind it."""
    wanted = _checked(lambda: period({"from": from_, "to": to}))
    read = income_statement_read(get_settings().functional_currency, wanted)
    chunks = _report(read, report_rows.INCOME_STATEMENT_COLUMNS, format)
    _done(_export(chunks, output, "Income statement", "rows"), "row(s)", output)


@export_app.command(name="roll-forwards")
def roll_forwards(
    from_: FromOption,
    to: ToOption,
    format: FormatOption = ExportFormat.CSV,
    output: OutputOption = None,
) -> None:
    """Roll-forwards of deferred revenue, creator payable, coins and diamonds outstanding over
    [from, to): per subject an 'opening' row, a row per line (signed as it moved the balance;
    the entry kinds behind it), 'not_explained' (zero unless something moved the balance that
    no entry of the period explains) and 'closing'."""
    wanted = _checked(lambda: period({"from": from_, "to": to}))
    read = roll_forwards_read(get_settings().functional_currency, wanted)
    chunks = _report(read, report_rows.ROLL_FORWARD_COLUMNS, format)
    _done(_export(chunks, output, "Roll-forwards", "rows"), "row(s)", output)
