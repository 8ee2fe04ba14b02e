"""Exports over HTTP, for finance: ``GET /exports/journal``, the journal one posting a line as
CSV or JSON lines, streamed as it is read (constant memory, whatever its size).

Query parameters (all optional): ``format`` (``csv``, the default, or ``json`` for JSON
lines), ``from`` and ``to`` (ISO 8601 instants, [from, to); without an offset, UTC), ``kind``,
``account`` (a code, or a prefix ending with ``:``), ``userId``, ``actor``, ``purchaseId``,
``giftId``, ``payoutId``, ``refundId``, ``chargebackId``, ``providerReference``: the journal
query's filter. Answers 200 with the file; 401 without a valid bearer token; 403 for any role
but finance; 400 for a parameter that is not valid. Errors are JSON:
``{"error": {"code": "FORBIDDEN", "message": "..."}}``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from accounting.ledger.errors import LedgerError
from accounting.policy.access import may_read_books
from accounting.reads import export, journal
from api.auth import InvalidToken, principal_from_header
from api.settings import Settings

PROGRESS_EVERY = 1000
"""Rows between two reports to ``progress``."""

_TEXT_PARAMS = {
    "kind": "kind",
    "account": "account",
    "userId": "user_id",
    "actor": "actor",
    "providerReference": "provider_reference",
}
_ID_PARAMS = {
    "purchaseId": "purchase_id",
    "giftId": "gift_id",
    "payoutId": "payout_id",
    "refundId": "refund_id",
    "chargebackId": "chargeback_id",
}


class BadExportRequest(LedgerError):
    code = "BAD_USER_INPUT"


def export_format(text: str | None) -> export.ExportFormat:
    try:
        return export.ExportFormat((text or "csv").lower())
    except ValueError:
        raise BadExportRequest("format is csv or json", field="format") from None


def journal_filter(params: Mapping[str, str | None]) -> journal.JournalFilter:
    """The journal's filter from named parameters (those of the HTTP route), checked."""
    given: dict[str, object] = {}
    for name, field in _TEXT_PARAMS.items():
        if params.get(name) is not None:
            given[field] = params[name]
    for name, field in _ID_PARAMS.items():
        value = params.get(name)
        if value is not None:
            if not value.isascii() or not value.isdigit() or len(value) > 18:
                raise BadExportRequest(f"{name} is not an id", field=name)
            given[field] = int(value)
    for name, field in (("from", "start"), ("to", "end")):
        value = params.get(name)
        if value is not None:
            given[field] = journal.parse_filter_time(value, field=name)
    return journal.check_filter(journal.JournalFilter(**given))  # type: ignore[arg-type]


async def journal_chunks(
    sessions: async_sessionmaker[AsyncSession],
    wanted: journal.JournalFilter,
    export_format: export.ExportFormat,
    *,
    progress: Callable[[int], None] | None = None,
) -> AsyncIterator[str]:
    """The journal export, a chunk of text at a time, read in one transaction (a consistent
    snapshot) through a server-side cursor. ``progress`` is told of the rows as they go."""
    async with sessions() as session, session.begin():
        rows = journal.export_rows(session, wanted)
        counted = rows if progress is None else _counted(rows, progress)
        async for chunk in export.chunks(export_format, journal.EXPORT_COLUMNS, counted):
            yield chunk


async def _counted(
    rows: AsyncIterator[dict[str, object]], progress: Callable[[int], None]
) -> AsyncIterator[dict[str, object]]:
    count = 0
    async for row in rows:
        yield row
        count += 1
        if count == PROGRESS_EVERY:
            progress(count)
            count = 0
    if count:
        progress(count)


def _error(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def journal_export_endpoint(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> Callable[[Request], Awaitable[Response]]:
    async def export_journal(request: Request) -> Response:
        try:
            principal = principal_from_header(settings, request.headers.get("authorization"))
        except InvalidToken as error:
            return _error(401, "UNAUTHENTICATED", error.reason)
        if principal is None:
            return _error(401, "UNAUTHENTICATED", "Sign in: send 'Authorization: Bearer <token>'")
        if not may_read_books(principal):
            return _error(403, "FORBIDDEN", "You may not export the books without the finance role")
        params = request.query_params
        try:
            chosen = export_format(params.get("format"))
            wanted = journal_filter(params)
        except LedgerError as error:
            return _error(400, "BAD_USER_INPUT", error.message)
        return StreamingResponse(
            journal_chunks(sessions, wanted, chosen),
            media_type=chosen.media_type,
            headers={"Content-Disposition": f'attachment; filename="journal.{chosen.extension}"'},
        )

    return export_journal
