"""``coinbooks export``: reports as files. ``coinbooks export journal --from T --to T --format
csv|json [--output FILE]`` writes the journal one posting a line (JSON lines for ``json``), to
the file or to standard output, streamed in constant memory, with a progress bar on
standard error."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import URL

from accounting.ledger.errors import LedgerError
from accounting.reads.export import ExportFormat
from accounting.reads.journal import JournalFilter
from api.database import create_engine, database_url_for, session_factory
from api.exports import journal_chunks, journal_filter
from api.settings import get_settings

export_app = typer.Typer(help="Export reports as CSV or JSON lines.", no_args_is_help=True)
errors = Console(stderr=True)


async def _write_journal(
    url: URL, wanted: JournalFilter, chosen: ExportFormat, out: TextIO, progress: Progress
) -> int:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    task = progress.add_task("Journal", total=None)
    written = 0

    def advance(rows: int) -> None:
        nonlocal written
        written += rows
        progress.update(task, advance=rows)

    try:
        async for chunk in journal_chunks(
            session_factory(engine), wanted, chosen, progress=advance
        ):
            out.write(chunk)
    finally:
        await engine.dispose()
    return written


def _export(wanted: JournalFilter, chosen: ExportFormat, output: Path | None) -> int:
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,.0f} postings"),
        TimeElapsedColumn(),
        console=errors,
    )
    with database_url_for(get_settings()) as url, progress:
        if output is None:
            return asyncio.run(_write_journal(url, wanted, chosen, sys.stdout, progress))
        with output.open("w", encoding="utf-8", newline="") as out:
            return asyncio.run(_write_journal(url, wanted, chosen, out, progress))


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
    written = _export(wanted, format, output)
    where = output if output is not None else "standard output"
    errors.print(f"Exported {written} posting(s) to {where}", soft_wrap=True)
