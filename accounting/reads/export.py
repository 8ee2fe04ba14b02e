"""Streaming exports: rows written as CSV or JSON lines, a chunk at a time, so an export of any
size holds one chunk in memory. Any report that yields its rows as mappings can use the
writers here; a report that is one query over many rows (the journal) has PostgreSQL write
the file itself with ``COPY ... TO STDOUT`` (:func:`copied`), which costs the exporting
process almost nothing per row.

CSV is the standard library's ``csv`` (RFC 4180 quoting, ``\\r\\n`` line ends): every value is
written as the text it is given, so an amount stays the exact decimal string the report made
(a spreadsheet reads ``4.99`` as a number; no float ever touches it). JSON lines are one
object per line, in the same column order, for tools that read records."""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import json
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import suppress
from enum import StrEnum
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.compiler import SQLCompiler

ROWS_PER_CHUNK = 1000
COPIED_CHUNK_BYTES = 256 * 1024
"""What :func:`copied` gathers before it hands a chunk on."""
COPIED_CHUNKS_AHEAD = 8
"""Pieces of ``COPY`` output held before the server is made to wait: memory stays flat."""
_JSON_LINES_OPTIONS = {"format": "csv", "delimiter": "\x02", "quote": "\x01"}
"""JSON lines through ``COPY``'s CSV format: one column of JSON text per row, with a delimiter
and a quote character that JSON text never holds unescaped, so nothing is quoted or escaped
(the text format would double every backslash)."""


class ExportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"
    """JSON lines: one object per line."""

    @property
    def media_type(self) -> str:
        return "text/csv; charset=utf-8" if self is ExportFormat.CSV else "application/x-ndjson"

    @property
    def extension(self) -> str:
        return "csv" if self is ExportFormat.CSV else "jsonl"


async def csv_chunks(
    columns: Sequence[str],
    rows: AsyncIterable[Mapping[str, Any]],
    *,
    rows_per_chunk: int = ROWS_PER_CHUNK,
) -> AsyncIterator[str]:
    """A header line, then the rows, ``rows_per_chunk`` to a chunk. A value that is not text
    (refs, a mapping) is written as compact JSON; ``None`` as an empty cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    count = 0
    async for row in rows:
        writer.writerow([_cell(row[column]) for column in columns])
        count += 1
        if count % rows_per_chunk == 0:
            yield _drain(buffer)
    rest = _drain(buffer)
    if rest:
        yield rest


async def json_line_chunks(
    columns: Sequence[str],
    rows: AsyncIterable[Mapping[str, Any]],
    *,
    rows_per_chunk: int = ROWS_PER_CHUNK,
) -> AsyncIterator[str]:
    """One JSON object per row and line, its keys in ``columns`` order."""
    lines: list[str] = []
    async for row in rows:
        lines.append(json.dumps({c: row[c] for c in columns}, ensure_ascii=False) + "\n")
        if len(lines) == rows_per_chunk:
            yield "".join(lines)
            lines = []
    if lines:
        yield "".join(lines)


def chunks(
    export_format: ExportFormat,
    columns: Sequence[str],
    rows: AsyncIterable[Mapping[str, Any]],
    *,
    rows_per_chunk: int = ROWS_PER_CHUNK,
) -> AsyncIterator[str]:
    if export_format is ExportFormat.CSV:
        return csv_chunks(columns, rows, rows_per_chunk=rows_per_chunk)
    return json_line_chunks(columns, rows, rows_per_chunk=rows_per_chunk)


async def rows_of(rows: Iterable[Mapping[str, Any]]) -> AsyncIterator[Mapping[str, Any]]:
    """Rows already in memory (a small report's), as the writers read them."""
    for row in rows:
        yield row


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


async def copied(
    session: AsyncSession,
    statement: Select[Any],
    export_format: ExportFormat,
    *,
    on_rows: Callable[[int], None] | None = None,
) -> AsyncGenerator[str, None]:
    """The rows of ``statement`` as the export file, written by PostgreSQL (``COPY (query) TO
    STDOUT``) inside the session's transaction, in chunks of about
    :data:`COPIED_CHUNK_BYTES`. For CSV the statement's columns are the file's (their labels
    the header; lines end with ``\\n``); for JSON lines it must select one column, each row's
    JSON text. ``on_rows`` is told of the rows as they go (lines, as they stream); once the copy has
    ended, its count adds up to the rows ``COPY`` wrote, header excluded."""
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None, "the session's connection is open"
    compiled = statement.compile(
        dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
    )
    args = _driver_args(compiled, connection.dialect)
    options = (
        {"format": "csv", "header": True}
        if export_format is ExportFormat.CSV
        else _JSON_LINES_OPTIONS
    )
    pieces: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=COPIED_CHUNKS_AHEAD)

    async def copy() -> str:
        try:
            status: str = await driver.copy_from_query(
                compiled.string, *args, output=pieces.put, **options
            )
            return status
        finally:
            await pieces.put(None)

    task = asyncio.create_task(copy())
    try:
        counted = 0
        async for chunk in _gathered(pieces):
            if on_rows is not None:
                lines = chunk.count("\n")
                counted += lines
                on_rows(lines)
            yield chunk
        status = await task
        if on_rows is not None:
            on_rows(int(status.split()[-1]) - counted)
    finally:
        if not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            await connection.invalidate()
            """A copy cut short leaves its connection mid-protocol: it is closed, not pooled."""


def _driver_args(compiled: SQLCompiler, dialect: Dialect) -> list[Any]:
    """The statement's parameters in their order, each through its type's bind processor, as
    an execution through SQLAlchemy sends them to the driver (a JSONB value as its JSON text:
    a journal filter on ``refs``)."""
    args: list[Any] = []
    for name in compiled.positiontup or ():
        value, bind = compiled.params[name], compiled.binds.get(name)
        process = None if bind is None else bind.type.dialect_impl(dialect).bind_processor(dialect)
        args.append(value if process is None else process(value))
    return args


async def _gathered(pieces: asyncio.Queue[bytes | None]) -> AsyncIterator[str]:
    """The queued pieces as text, gathered into chunks; a character split between two pieces
    is decoded whole."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    gathered: list[bytes] = []
    size = 0
    while (piece := await pieces.get()) is not None:
        gathered.append(piece)
        size += len(piece)
        if size >= COPIED_CHUNK_BYTES:
            yield decoder.decode(b"".join(gathered))
            gathered, size = [], 0
    rest = decoder.decode(b"".join(gathered), final=True)
    if rest:
        yield rest
