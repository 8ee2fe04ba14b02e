"""Streaming exports: rows written as CSV or JSON lines, a chunk at a time, so an export of any
size holds one chunk in memory. Any report that yields its rows as mappings can use it.

CSV is the standard library's ``csv`` (RFC 4180 quoting, ``\\r\\n`` line ends): every value is
written as the text it is given, so an amount stays the exact decimal string the report made
(a spreadsheet reads ``4.99`` as a number; no float ever touches it). JSON lines are one
object per line, in the same column order, for tools that read records."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any

ROWS_PER_CHUNK = 1000


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
