"""Exports over HTTP, for finance: each report as CSV or JSON lines (``format=csv``, the
default, or ``format=json``), streamed as it is read.

- ``GET /exports/journal``: the journal one posting a line, in constant memory whatever its
  size. Parameters (all optional): ``from`` and ``to`` (ISO 8601 instants, [from, to); without
  an offset, UTC), ``kind``, ``account`` (a code, or a prefix ending with ``:``), ``userId``,
  ``actor``, ``purchaseId``, ``giftId``, ``payoutId``, ``refundId``, ``chargebackId``,
  ``providerReference``: the journal query's filter (an id is the global id, or for this
  release the row id).
- ``GET /exports/statement?account=CODE&from=T&to=T``: one account's statement over [from, to),
  an ``opening`` row, a ``movement`` row per posting, then ``total_in``, ``total_out`` and
  ``closing`` (see :mod:`accounting.reads.report_rows`); its movements read a page at a time.
- ``GET /exports/reconciliation[?status=open|resolved|all&provider=P]``: the reconciliation
  exceptions of the settlement reports imported, one a row (default: the open ones).
- ``GET /exports/balance-sheet[?asOf=T]`` (default: now), ``GET /exports/income-statement?from=T
  &to=T`` and ``GET /exports/roll-forwards?from=T&to=T``: one row per report line.

Answers 200 with the file; 401 without a valid bearer token; 403 for any role but finance; 400
for a parameter that is not valid; 404 for a statement of an account that does not exist.
Errors are JSON: ``{"error": {"code": "FORBIDDEN", "message": "..."}}``."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from accounting.ledger.errors import LedgerError
from accounting.ledger.pages import MAX_PAGE
from accounting.ledger.tables import AccountRow
from accounting.policy.access import may_read_books
from accounting.reads import export, financials, journal, report_rows, statements
from accounting.settlement import service as settlement
from api.auth import InvalidToken, principal_from_header
from api.settings import Settings
from schema.nodes import pk_of

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
    "purchaseId": ("purchase_id", "Purchase"),
    "giftId": ("gift_id", "Gift"),
    "payoutId": ("payout_id", "Payout"),
    "refundId": ("refund_id", "Refund"),
    "chargebackId": ("chargeback_id", "Chargeback"),
}
"""Each id parameter's filter field and node type: it takes the global id, as the journal
query's filter does, and for this release the row id."""


class BadExportRequest(LedgerError):
    code = "BAD_USER_INPUT"


class UnknownAccount(LedgerError):
    code = "NOT_FOUND"


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
    for name, (field, type_name) in _ID_PARAMS.items():
        value = params.get(name)
        if value is not None:
            given[field] = pk_of(value, type_name)
            if given[field] is None:
                raise BadExportRequest(f"{name} is not an id", field=name)
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
) -> AsyncGenerator[str, None]:
    """The journal export, a chunk of text at a time, written by PostgreSQL from one
    transaction (a consistent snapshot). ``progress`` is told of the postings as they go."""
    statement = journal.export_statement(wanted, export_format)
    async with sessions() as session, session.begin():
        copied = export.copied(session, statement, export_format, on_rows=progress)
        async with aclosing(copied) as chunks:
            async for chunk in chunks:
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


@dataclass(frozen=True, slots=True)
class StatementRequest:
    account: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    end: datetime


def _required_time(params: Mapping[str, str | None], name: str) -> datetime:
    value = params.get(name)
    if value is None:
        raise BadExportRequest(f"{name} is required", field=name)
    return journal.parse_filter_time(value, field=name)


def statement_request(params: Mapping[str, str | None]) -> StatementRequest:
    """``account``, ``from`` and ``to``, all required; ``to`` after ``from``."""
    account = params.get("account")
    if account is None or not 1 <= len(account) <= journal.MAX_FILTER_TEXT:
        raise BadExportRequest(
            f"account is an account's code, 1-{journal.MAX_FILTER_TEXT} characters",
            field="account",
        )
    start, end = _required_time(params, "from"), _required_time(params, "to")
    if end <= start:
        raise BadExportRequest("'to' must be after 'from'", field="to")
    return StatementRequest(account, start, end)


def period(params: Mapping[str, str | None]) -> Period:
    """``from`` and ``to``, both required; ``from`` not after ``to``."""
    start, end = _required_time(params, "from"), _required_time(params, "to")
    if start > end:
        raise BadExportRequest("'from' must not be after 'to'", field="from")
    return Period(start, end)


def as_of(params: Mapping[str, str | None], *, name: str = "asOf") -> datetime | None:
    """``asOf`` (or ``name``), optional: the balance sheet's instant."""
    value = params.get(name)
    return None if value is None else journal.parse_filter_time(value, field=name)


async def statement_rows(
    session: AsyncSession, wanted: StatementRequest
) -> AsyncIterator[report_rows.Row]:
    """The statement's rows, its movements read a keyset page at a time: the first page with
    the whole period's figures, each next one after the last movement's cursor in the same
    snapshot (the statement's transaction is repeatable read), so a long statement costs its
    movements once."""
    found = await statements.account_statement(
        session, wanted.account, wanted.start, wanted.end, first=MAX_PAGE
    )
    if found is None:
        raise UnknownAccount(f"No account {wanted.account}", field="account")
    yield report_rows.statement_opening(found)
    page = found.movements
    for movement in page.items:
        yield report_rows.statement_movement(found, movement)
    while page.has_next:
        page = await statements.later_movements(
            session,
            found.code,
            wanted.start,
            wanted.end,
            after=page.items[-1].cursor,
            first=MAX_PAGE,
        )
        for movement in page.items:
            yield report_rows.statement_movement(found, movement)
    for row in report_rows.statement_closing(found):
        yield row


async def statement_chunks(
    sessions: async_sessionmaker[AsyncSession],
    wanted: StatementRequest,
    export_format: export.ExportFormat,
    *,
    progress: Callable[[int], None] | None = None,
) -> AsyncIterator[str]:
    """The statement export, a chunk at a time, in one transaction."""
    async with sessions() as session, session.begin():
        rows = statement_rows(session, wanted)
        counted = rows if progress is None else _counted(rows, progress)
        columns = report_rows.STATEMENT_COLUMNS
        async for chunk in export.chunks(export_format, columns, counted):
            yield chunk


async def account_exists(sessions: async_sessionmaker[AsyncSession], code: str) -> bool:
    async with sessions() as session:
        return (
            await session.scalar(select(AccountRow.id).where(AccountRow.code == code)) is not None
        )


ReadReport = Callable[[AsyncSession], Awaitable[list[report_rows.Row]]]


async def report_chunks(
    sessions: async_sessionmaker[AsyncSession],
    read: ReadReport,
    columns: Sequence[str],
    export_format: export.ExportFormat,
) -> AsyncIterator[str]:
    """A small report (a few dozen lines), read whole, then written."""
    async with sessions() as session, session.begin():
        rows = await read(session)
    async for chunk in export.chunks(export_format, columns, export.rows_of(rows)):
        yield chunk


def balance_sheet_read(currency: str, at: datetime | None) -> ReadReport:
    async def read(session: AsyncSession) -> list[report_rows.Row]:
        sheet = await financials.balance_sheet(session, currency, at)
        return report_rows.balance_sheet_rows(sheet)

    return read


def income_statement_read(currency: str, wanted: Period) -> ReadReport:
    async def read(session: AsyncSession) -> list[report_rows.Row]:
        found = await financials.income_statement(session, currency, wanted.start, wanted.end)
        return report_rows.income_statement_rows(found)

    return read


def roll_forwards_read(currency: str, wanted: Period) -> ReadReport:
    async def read(session: AsyncSession) -> list[report_rows.Row]:
        found = await financials.roll_forwards(session, currency, wanted.start, wanted.end)
        return report_rows.roll_forward_rows(found, wanted.start, wanted.end)

    return read


def reconciliation_filter(params: Mapping[str, str | None]) -> dict[str, str | None]:
    """``status`` (``open``, the default; ``resolved``; ``all``) and ``provider`` (optional)."""
    status = params.get("status") or "open"
    if status not in ("open", "resolved", "all"):
        raise BadExportRequest("status is open, resolved or all", field="status")
    return {"status": None if status == "all" else status, "provider": params.get("provider")}


# --- HTTP ---------------------------------------------------------------------------------------

Params = Mapping[str, str]
Prepared = tuple[export.ExportFormat, AsyncIterator[str]]
Prepare = Callable[[Params], Awaitable[Prepared]]
"""Checks a request's parameters (raising a :class:`LedgerError`) and gives the body."""


def _error(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def _refusal(settings: Settings, request: Request) -> Response | None:
    """401 or 403 unless the caller is finance."""
    try:
        principal = principal_from_header(settings, request.headers.get("authorization"))
    except InvalidToken as error:
        return _error(401, "UNAUTHENTICATED", error.reason)
    if principal is None:
        return _error(401, "UNAUTHENTICATED", "Sign in: send 'Authorization: Bearer <token>'")
    if not may_read_books(principal):
        return _error(403, "FORBIDDEN", "You may not export the books without the finance role")
    return None


def finance_export_endpoint(
    settings: Settings, name: str, prepare: Prepare
) -> Callable[[Request], Awaitable[Response]]:
    """An export for finance, as the file ``<name>.csv`` or ``<name>.jsonl``."""

    async def endpoint(request: Request) -> Response:
        refused = _refusal(settings, request)
        if refused is not None:
            return refused
        try:
            chosen, body = await prepare(request.query_params)
        except UnknownAccount as error:
            return _error(404, "NOT_FOUND", error.message)
        except LedgerError as error:
            return _error(400, "BAD_USER_INPUT", error.message)
        return StreamingResponse(
            body,
            media_type=chosen.media_type,
            headers={"Content-Disposition": f'attachment; filename="{name}.{chosen.extension}"'},
        )

    return endpoint


def journal_export_endpoint(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> Callable[[Request], Awaitable[Response]]:
    async def prepare(params: Params) -> Prepared:
        chosen, wanted = export_format(params.get("format")), journal_filter(params)
        return chosen, journal_chunks(sessions, wanted, chosen)

    return finance_export_endpoint(settings, "journal", prepare)


def _report_preparers(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> dict[str, Prepare]:
    currency = settings.functional_currency

    async def statement(params: Params) -> Prepared:
        chosen, wanted = export_format(params.get("format")), statement_request(params)
        if not await account_exists(sessions, wanted.account):
            raise UnknownAccount(f"No account {wanted.account}", field="account")
        return chosen, statement_chunks(sessions, wanted, chosen)

    async def balance_sheet(params: Params) -> Prepared:
        chosen, read = (
            export_format(params.get("format")),
            balance_sheet_read(currency, as_of(params)),
        )
        columns = report_rows.BALANCE_SHEET_COLUMNS
        return chosen, report_chunks(sessions, read, columns, chosen)

    async def income_statement(params: Params) -> Prepared:
        chosen, read = (
            export_format(params.get("format")),
            income_statement_read(currency, period(params)),
        )
        columns = report_rows.INCOME_STATEMENT_COLUMNS
        return chosen, report_chunks(sessions, read, columns, chosen)

    async def roll_forwards(params: Params) -> Prepared:
        chosen, read = (
            export_format(params.get("format")),
            roll_forwards_read(currency, period(params)),
        )
        columns = report_rows.ROLL_FORWARD_COLUMNS
        return chosen, report_chunks(sessions, read, columns, chosen)

    async def reconciliation(params: Params) -> Prepared:
        chosen, wanted = export_format(params.get("format")), reconciliation_filter(params)

        async def read(session: AsyncSession) -> list[report_rows.Row]:
            return await settlement.reconciliation_rows(session, **wanted)

        columns = settlement.RECONCILIATION_COLUMNS
        return chosen, report_chunks(sessions, read, columns, chosen)

    return {
        "reconciliation": reconciliation,
        "statement": statement,
        "balance-sheet": balance_sheet,
        "income-statement": income_statement,
        "roll-forwards": roll_forwards,
    }


def export_routes(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> list[Route]:
    """``/exports/journal`` and every report's export."""
    routes = [
        Route("/exports/journal", journal_export_endpoint(settings, sessions), methods=["GET"])
    ]
    for name, prepare in _report_preparers(settings, sessions).items():
        endpoint = finance_export_endpoint(settings, name, prepare)
        routes.append(Route(f"/exports/{name}", endpoint, methods=["GET"]))
    return routes
