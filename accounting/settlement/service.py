"""Importing a provider's settlement report, and finance resolving what it could not reconcile.

An import is one transaction, all or nothing, serialized per provider (an advisory lock): the
report is read whole first (a malformed line refuses it before anything is written); the same
report id again gives back the first import if its content is the same and is refused if not.
Each line is reconciled against the ledger item it settles (``rules.reconcile``); the report
posts one ``settlement`` entry: each payout's cash from clearing to the bank, and each matched
line's fee difference from clearing to the fee expense. Each line that does not match, and each
ledger item of the report's period, provider and currencies that no report settled, becomes a
reconciliation exception, open until finance resolves it (audited).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.ledger import idempotency
from accounting.ledger.money import format_micros
from accounting.ledger.pages import Page, newest_first
from accounting.ledger.posting import in_transaction, post_entry
from accounting.ledger.tables import AccountRow, JournalEntryRow, PostingRow
from accounting.policy import audit, separation
from accounting.purchases import reads as purchase_reads
from accounting.settlement.errors import (
    ExceptionNotFound,
    ExceptionResolved,
    InvalidResolution,
    ReportIdReused,
)
from accounting.settlement.rules import (
    BANK,
    ENTRY_KIND_OF_LINE,
    LINE_OF_ENTRY_KIND,
    ExceptionKind,
    LedgerItem,
    LineStatus,
    LineType,
    ParsedReport,
    PostedLine,
    Reconciled,
    Resolution,
    SettlementLine,
    parse_report,
    reconcile,
    settlement_entry,
    settlement_postings,
    source_account,
    write_off_entry,
)
from accounting.settlement.tables import (
    ReconciliationExceptionRow,
    SettlementLineRow,
    SettlementReportRow,
)


@dataclass(frozen=True, slots=True)
class ImportRequest:
    report_text: str
    actor: str
    """Who imports (``user:<id>`` of a finance person)."""


@dataclass(frozen=True, slots=True)
class ImportResult:
    report: SettlementReportRow
    lines: list[SettlementLineRow]
    exceptions: list[ReconciliationExceptionRow]
    """The exceptions this import raised (still open or not)."""
    replayed: bool


async def import_report(
    sessions: async_sessionmaker[AsyncSession], request: ImportRequest
) -> ImportResult:
    """Import a settlement report exactly once (see the module's docstring)."""
    parsed = parse_report(request.report_text)

    async def work(session: AsyncSession) -> ImportResult:
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"settlement:{parsed.provider}"},
        )
        existing = await session.scalar(
            select(SettlementReportRow).where(
                SettlementReportRow.provider == parsed.provider,
                SettlementReportRow.report_id == parsed.report_id,
            )
        )
        if existing is not None:
            if existing.digest != parsed.digest:
                raise ReportIdReused(
                    f"Report {parsed.report_id} of {parsed.provider} was imported before with"
                    " other content",
                    field="file",
                    report_id=parsed.report_id,
                )
            return await import_result(session, existing, replayed=True)
        return await _import(session, parsed, request.actor)

    return await in_transaction(sessions, work)


async def _import(session: AsyncSession, parsed: ParsedReport, actor: str) -> ImportResult:
    claimed: set[int] = set()
    matched: list[tuple[SettlementLine, LedgerItem | None, Reconciled]] = []
    for line in parsed.lines:
        item = await ledger_item(session, parsed.provider, line, claimed)
        if item is not None:
            claimed.add(item.entry_id)
        matched.append((line, item, reconcile(line, item)))
    entry_id = await _post(session, parsed, matched, actor)
    report = SettlementReportRow(
        provider=parsed.provider,
        report_id=parsed.report_id,
        digest=parsed.digest,
        imported_by=actor,
        period_start=parsed.period_start,
        period_end=parsed.period_end,
        line_count=len(parsed.lines),
        entry_id=entry_id,
    )
    session.add(report)
    await session.flush()
    await session.refresh(report)
    rows = [_line_row(report.id, line, item, done) for line, item, done in matched]
    session.add_all(rows)
    await session.flush()
    for row in rows:
        if row.ledger_entry_id is not None:
            await _settled_later(session, row, parsed, actor)
    raised = [_line_exception(report, row) for row in rows if row.status in _EXCEPTIONS]
    raised += await _missing_in_report(session, report, parsed)
    session.add_all(raised)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="settlement.imported",
        subject=f"settlement_report:{report.id}",
        details={"lines": len(rows), "exceptions": len(raised), "entry_id": entry_id},
    )
    return ImportResult(report, rows, raised, replayed=False)


async def _post(
    session: AsyncSession,
    parsed: ParsedReport,
    matched: list[tuple[SettlementLine, LedgerItem | None, Reconciled]],
    actor: str,
) -> int | None:
    """Post the report's one entry, if it moves anything; its id."""
    postings = settlement_postings(
        parsed.provider,
        (
            PostedLine(
                line.type, done.status, line.currency, line.net_micros, done.difference_micros
            )
            for line, _, done in matched
        ),
    )
    if not postings:
        return None
    return (await post_entry(session, settlement_entry(parsed, postings, actor=actor))).id


_EXCEPTIONS = {LineStatus.MISSING_IN_LEDGER, LineStatus.AMOUNT_MISMATCH}


async def ledger_item(
    session: AsyncSession, provider: str, line: SettlementLine, claimed: set[int]
) -> LedgerItem | None:
    """The ledger entry ``line`` settles, unless a report settled it already (or finance wrote
    it off as missing): a charge, refund or dispute is found through its purchase's provider
    reference; a dispute fee through the dispute's case id (its reference)."""
    kind = ENTRY_KIND_OF_LINE.get(line.type)
    if kind is None:
        return None
    keys = await _candidate_keys(session, provider, line, kind)
    if not keys:
        return None
    entry_ids = await session.scalars(
        select(JournalEntryRow.id)
        .where(
            JournalEntryRow.event_key.in_(keys),
            JournalEntryRow.kind == kind,
            ~exists().where(SettlementLineRow.ledger_entry_id == JournalEntryRow.id),
            ~exists().where(
                ReconciliationExceptionRow.ledger_entry_id == JournalEntryRow.id,
                ReconciliationExceptionRow.action == Resolution.WRITE_OFF,
            ),
        )
        .order_by(JournalEntryRow.id)
    )
    entry_id = next((found for found in entry_ids if found not in claimed), None)
    if entry_id is None:
        return None
    amounts = list(
        await session.scalars(
            select(PostingRow.amount)
            .join(AccountRow, AccountRow.id == PostingRow.account_id)
            .where(
                PostingRow.entry_id == entry_id,
                AccountRow.code == source_account(provider, line.currency).code,
            )
        )
    )
    fee = -sum(a for a in amounts if a < 0) if kind in ("purchase", "dispute_fee") else 0
    return LedgerItem(entry_id, kind, sum(amounts), fee)


MAX_PIECES = 100
"""A purchase's chargebacks looked at, at most (one taken back in pieces has several)."""


async def _candidate_keys(
    session: AsyncSession, provider: str, line: SettlementLine, kind: str
) -> list[str]:
    """The event keys of the entries the line may settle: a dispute fee's by its case; a
    purchase's or refund's by the purchase; each of a purchase's chargebacks (the first keyed
    ``chargeback:<purchase>``, the n-th piece ``chargeback:<purchase>:<n>``)."""
    if line.type is LineType.DISPUTE_FEE:
        return [f"dispute_fee:{provider}:{line.provider_reference}"[:200]]
    if line.type is LineType.CREATOR_PAYOUT:
        reference = line.provider_reference
        return [f"payout:{reference}:paid"] if reference.isascii() and reference.isdigit() else []
    purchase_id = await purchase_reads.purchase_by_reference(
        session, provider, line.provider_reference
    )
    if purchase_id is None:
        return []
    if kind != "chargeback":
        return [f"{kind}:{purchase_id}"]
    keys = [f"chargeback:{purchase_id}"]
    for piece in range(2, MAX_PIECES + 1):
        key = f"chargeback:{purchase_id}:{piece}"
        if (
            await session.scalar(select(JournalEntryRow.id).where(JournalEntryRow.event_key == key))
            is None
        ):
            break
        keys.append(key)
    return keys


def _line_row(
    report_pk: int, line: SettlementLine, item: LedgerItem | None, done: Reconciled
) -> SettlementLineRow:
    return SettlementLineRow(
        report_id=report_pk,
        line_number=line.line_number,
        provider_reference=line.provider_reference,
        type=str(line.type),
        currency=line.currency,
        gross_micros=line.gross_micros,
        fee_micros=line.fee_micros,
        net_micros=line.net_micros,
        settled_at=line.settled_at,
        status=str(done.status),
        ledger_entry_id=None if item is None else item.entry_id,
        expected_gross_micros=None if item is None else item.gross_micros,
        expected_fee_micros=None if item is None else item.fee_micros,
        difference_micros=done.difference_micros,
    )


def _line_exception(
    report: SettlementReportRow, row: SettlementLineRow
) -> ReconciliationExceptionRow:
    if row.status == LineStatus.MISSING_IN_LEDGER:
        detail = f"line {row.line_number}: no {row.type} {row.provider_reference} in the ledger"
        if row.type == LineType.ADJUSTMENT:
            detail = f"line {row.line_number}: an adjustment by {report.provider}"
    else:
        detail = (
            f"line {row.line_number}: the ledger expected gross {row.expected_gross_micros},"
            f" the report says {row.gross_micros} (micro-{row.currency})"
        )
    return ReconciliationExceptionRow(
        report_id=report.id,
        line_id=row.id,
        kind=row.status,
        provider=report.provider,
        currency=row.currency,
        provider_reference=row.provider_reference,
        line_type=row.type,
        ledger_entry_id=row.ledger_entry_id,
        difference_micros=row.difference_micros,
        detail=detail,
        status="open",
        reason="",
        created_at=report.imported_at,
    )


async def _settled_later(
    session: AsyncSession, row: SettlementLineRow, parsed: ParsedReport, actor: str
) -> None:
    """A ledger item an earlier report missed, settled now: its exception is resolved."""
    found = await session.scalar(
        select(ReconciliationExceptionRow)
        .where(
            ReconciliationExceptionRow.kind == ExceptionKind.MISSING_IN_REPORT,
            ReconciliationExceptionRow.ledger_entry_id == row.ledger_entry_id,
            ReconciliationExceptionRow.status == "open",
        )
        .with_for_update()
    )
    if found is None:
        return
    reason = f"settled by report {parsed.report_id}, line {row.line_number}"
    resolved_at = await session.scalar(select(func.now()))
    found.status, found.action, found.reason = "resolved", str(Resolution.SETTLED_LATER), reason
    found.resolved_by, found.resolved_at = actor, resolved_at
    await audit.record(
        session,
        actor=actor,
        action="reconciliation_exception.resolved",
        subject=f"reconciliation_exception:{found.id}",
        reason=reason,
        details={"action": str(Resolution.SETTLED_LATER), "line_id": row.id},
    )


MISSING_IN_REPORT = text(
    "SELECT e.id, e.kind, a.commodity, sum(p.amount) AS clearing, e.refs"
    "  FROM journal_entry e"
    "  JOIN posting p ON p.entry_id = e.id"
    "  JOIN account a ON a.id = p.account_id"
    " WHERE e.posted_at >= :start AND e.posted_at < :end"
    "   AND e.kind = ANY(:kinds) AND (e.kind <> 'payout' OR e.refs->>'phase' = 'paid')"
    "   AND a.code = ANY(:codes)"
    "   AND NOT EXISTS (SELECT 1 FROM settlement_line l WHERE l.ledger_entry_id = e.id)"
    "   AND NOT EXISTS (SELECT 1 FROM reconciliation_exception x"
    "                    WHERE x.kind = 'missing_in_report' AND x.ledger_entry_id = e.id)"
    " GROUP BY e.id, e.kind, a.commodity, e.refs"
    " ORDER BY e.id"
    " LIMIT :limit"
)
MAX_MISSING_PER_REPORT = 10_000


async def _missing_in_report(
    session: AsyncSession, report: SettlementReportRow, parsed: ParsedReport
) -> list[ReconciliationExceptionRow]:
    """Each ledger item of the report's period, provider and currencies that no report settled
    (and none reported missing before): an exception for what it left in clearing."""
    codes = [source_account(parsed.provider, c).code for c in parsed.currencies]
    kinds = (
        ["payout"]
        if parsed.provider == BANK
        else ["purchase", "refund", "chargeback", "dispute_fee"]
    )
    rows = await session.execute(
        MISSING_IN_REPORT,
        {
            "start": parsed.period_start,
            "end": parsed.period_end,
            "codes": codes,
            "kinds": kinds,
            "limit": MAX_MISSING_PER_REPORT,
        },
    )
    found = []
    for entry_id, kind, currency, clearing, refs in rows:
        reference = await _reference_of(session, kind, refs)
        found.append(
            ReconciliationExceptionRow(
                report_id=report.id,
                line_id=None,
                kind=str(ExceptionKind.MISSING_IN_REPORT),
                provider=parsed.provider,
                currency=currency,
                provider_reference=reference,
                line_type=str(LINE_OF_ENTRY_KIND[kind]),
                ledger_entry_id=entry_id,
                difference_micros=int(clearing),
                detail=f"{kind} entry {entry_id} ({reference}) is in no report",
                status="open",
                reason="",
                created_at=report.imported_at,
            )
        )
    return found


async def _reference_of(session: AsyncSession, kind: str, refs: dict[str, object]) -> str | None:
    """The provider's reference of a ledger item: a dispute fee's case, a payout's id, else its
    purchase's."""
    if kind == "dispute_fee":
        return str(refs.get("case_id"))
    if kind == "payout":
        return str(refs.get("payout_id"))
    purchase = await purchase_reads.purchase_of(session, int(str(refs["purchase_id"])))
    return purchase.provider_reference


async def import_result(
    session: AsyncSession, report: SettlementReportRow, *, replayed: bool
) -> ImportResult:
    lines = await report_lines(session, report.id)
    raised = list(
        await session.scalars(
            select(ReconciliationExceptionRow)
            .where(ReconciliationExceptionRow.report_id == report.id)
            .order_by(ReconciliationExceptionRow.id)
        )
    )
    return ImportResult(report, lines, raised, replayed=replayed)


# --- resolving an exception ---------------------------------------------------------------------

FINANCE_ACTIONS = (Resolution.ACCEPT, Resolution.WRITE_OFF)


@dataclass(frozen=True, slots=True)
class ResolutionRequest:
    exception_id: int
    action: str
    reason: str
    actor: str
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class ResolutionResult:
    exception: ReconciliationExceptionRow
    replayed: bool


def _check_action(action: str) -> Resolution:
    try:
        chosen = Resolution(action.strip().lower())
    except ValueError:
        chosen = None
    if chosen not in FINANCE_ACTIONS:
        names = ", ".join(a.value for a in FINANCE_ACTIONS)
        raise InvalidResolution(f"An action is one of {names}", field="action")
    assert chosen is not None
    return chosen


async def resolve_exception(
    sessions: async_sessionmaker[AsyncSession], request: ResolutionRequest
) -> ResolutionResult:
    """Resolve an open exception with an action and a reason, audited: ``accept`` posts
    nothing, ``write_off`` moves its difference from clearing to the fee expense (one
    ``settlement_write_off`` entry). The exception is locked, so two resolutions queue and the
    second finds it resolved; the same actor and key again give back the resolution."""
    idempotency.check_key(request.idempotency_key)
    action = _check_action(request.action)
    reason = audit.check_reason(request.reason, required=True).strip()

    async def work(session: AsyncSession) -> ResolutionResult:
        row = await session.scalar(
            select(ReconciliationExceptionRow)
            .where(ReconciliationExceptionRow.id == request.exception_id)
            .with_for_update()
        )
        if row is None:
            raise ExceptionNotFound(
                f"No reconciliation exception {request.exception_id}", field="exceptionId"
            )
        if row.ledger_entry_id is not None:
            await separation.check_entry_not_own(
                session,
                request.actor,
                row.ledger_entry_id,
                doing="resolve an exception over your own entry",
                field="exceptionId",
            )
        if row.status == "resolved":
            if (row.resolved_by, row.resolution_key, row.action) == (
                request.actor,
                request.idempotency_key,
                action,
            ):
                return ResolutionResult(row, replayed=True)
            raise ExceptionResolved(
                f"Reconciliation exception {row.id} was already resolved ({row.action})",
                field="exceptionId",
                action=row.action,
            )
        resolved_at = await _write_off(session, row, request, reason, action)
        row.status, row.action, row.reason = "resolved", str(action), reason
        row.resolved_by, row.resolved_at = request.actor, resolved_at
        row.resolution_key = request.idempotency_key
        await session.flush()
        await audit.record(
            session,
            actor=request.actor,
            action="reconciliation_exception.resolved",
            subject=f"reconciliation_exception:{row.id}",
            reason=reason,
            details={
                "action": str(action),
                "kind": row.kind,
                "difference_micros": row.difference_micros,
                "entry_id": row.resolution_entry_id,
            },
        )
        return ResolutionResult(row, replayed=False)

    return await in_transaction(sessions, work)


async def _write_off(
    session: AsyncSession,
    row: ReconciliationExceptionRow,
    request: ResolutionRequest,
    reason: str,
    action: Resolution,
) -> datetime:
    """Post the write-off of ``row`` when that is the action; the instant of the resolution."""
    if action is not Resolution.WRITE_OFF:
        now = await session.scalar(select(func.now()))
        assert isinstance(now, datetime)
        return now
    if row.provider == BANK:
        raise InvalidResolution(
            "A bank confirmation's exception is not written off: the payout's own action"
            " (paid or failed) corrects the books; accept it once it has",
            field="action",
        )
    if not row.difference_micros:
        raise InvalidResolution(
            "This exception left nothing in clearing to write off: accept it", field="action"
        )
    entry = write_off_entry(
        row.id,
        provider=row.provider,
        line_type=row.line_type,
        currency=row.currency,
        difference_micros=row.difference_micros,
        actor=request.actor,
        reason=reason,
    )
    posted = await post_entry(session, entry)
    row.resolution_entry_id = posted.id
    return posted.posted_at


# --- reads --------------------------------------------------------------------------------------

EXCEPTION_STATUSES = ("open", "resolved")


async def reconciliation_exceptions(
    session: AsyncSession,
    *,
    status: str | None = "open",
    provider: str | None = None,
    first: int = 20,
    before_id: int | None = None,
) -> Page[ReconciliationExceptionRow]:
    """Reconciliation exceptions, newest first: the open ones by default."""
    conditions = []
    if status is not None:
        conditions.append(ReconciliationExceptionRow.status == status)
    if provider is not None:
        conditions.append(ReconciliationExceptionRow.provider == provider)
    return await newest_first(
        session,
        ReconciliationExceptionRow,
        *conditions,
        first=first,
        before_id=before_id,
        counted=True,
    )


async def settlement_reports(
    session: AsyncSession, *, first: int = 20, before_id: int | None = None
) -> Page[SettlementReportRow]:
    return await newest_first(
        session, SettlementReportRow, first=first, before_id=before_id, counted=True
    )


async def report_lines(session: AsyncSession, report_pk: int) -> list[SettlementLineRow]:
    """A report's lines, in the file's order."""
    return list(
        await session.scalars(
            select(SettlementLineRow)
            .where(SettlementLineRow.report_id == report_pk)
            .order_by(SettlementLineRow.line_number)
        )
    )


RECONCILIATION_COLUMNS = (
    "exception_id",
    "report_id",
    "provider",
    "kind",
    "provider_reference",
    "line_type",
    "ledger_entry_id",
    "currency",
    "difference",
    "detail",
    "status",
    "action",
    "reason",
    "resolved_by",
    "resolved_at",
    "created_at",
)
"""The reconciliation's export, one row per exception (``difference`` in the currency's unit)."""
MAX_EXPORT_ROWS = 100_000


async def reconciliation_rows(
    session: AsyncSession, *, status: str | None, provider: str | None
) -> list[dict[str, Any]]:
    """The reconciliation exceptions (all, or of a status, of a provider), oldest first, as
    the export's rows: at most ``MAX_EXPORT_ROWS``."""
    statement = (
        select(ReconciliationExceptionRow, SettlementReportRow.report_id)
        .join(SettlementReportRow, SettlementReportRow.id == ReconciliationExceptionRow.report_id)
        .order_by(ReconciliationExceptionRow.id)
        .limit(MAX_EXPORT_ROWS)
    )
    if status is not None:
        statement = statement.where(ReconciliationExceptionRow.status == status)
    if provider is not None:
        statement = statement.where(ReconciliationExceptionRow.provider == provider)
    return [_export_row(row, report_id) for row, report_id in await session.execute(statement)]


def _export_row(row: ReconciliationExceptionRow, report_id: str) -> dict[str, Any]:
    return {
        "exception_id": row.id,
        "report_id": report_id,
        "provider": row.provider,
        "kind": row.kind,
        "provider_reference": row.provider_reference,
        "line_type": row.line_type,
        "ledger_entry_id": row.ledger_entry_id,
        "currency": row.currency,
        "difference": format_micros(row.difference_micros, row.currency),
        "detail": row.detail,
        "status": row.status,
        "action": row.action,
        "reason": row.reason,
        "resolved_by": row.resolved_by,
        "resolved_at": None if row.resolved_at is None else row.resolved_at.isoformat(),
        "created_at": row.created_at.isoformat(),
    }
