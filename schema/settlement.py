"""Provider settlement for finance: importSettlementReport (a provider's CSV report, imported once
per report id), the reconciliation it makes (settlementReports, settlementReport with its lines,
reconciliationExceptions), and resolveReconciliationException. Finance role only; the domain
(accounting/settlement) does the work."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry

from accounting.ledger.errors import (
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
    InvalidReason,
    LedgerError,
    Overdraft,
)
from accounting.policy.separation import SelfApprovalForbidden
from accounting.settlement import service
from accounting.settlement.errors import (
    ExceptionNotFound,
    ExceptionResolved,
    InvalidResolution,
    MalformedReport,
    ReportIdReused,
)
from accounting.settlement.tables import (
    ReconciliationExceptionRow,
    SettlementLineRow,
    SettlementReportRow,
)
from schema.authorization import (
    RECONCILIATION_EXCEPTIONS,
    SETTLEMENT_REPORTS,
    look_up,
    require_finance,
)
from schema.context import Info
from schema.errors import MutationError, error_type, errors_in_payload
from schema.nodes import Node, global_id, pk_of
from schema.pagination import Connection, connection, page_start
from schema.payloads import null_on_error, replayed_field
from schema.scalars import Money


def _id(value: int | None) -> strawberry.ID | None:
    return None if value is None else strawberry.ID(str(value))


def _money(micros: int | None, currency: str) -> Money | None:
    return None if micros is None else Money.of(micros, currency)


@strawberry.enum(description="How a settlement report's line reconciled with the ledger.")
class SettlementLineStatus(Enum):
    MATCHED = "matched"
    MISSING_IN_LEDGER = "missing_in_ledger"
    AMOUNT_MISMATCH = "amount_mismatch"
    BANK_TRANSFER = "bank_transfer"


@strawberry.enum(description="What a report and the ledger disagree on.")
class ReconciliationExceptionKind(Enum):
    MISSING_IN_LEDGER = "missing_in_ledger"
    MISSING_IN_REPORT = "missing_in_report"
    AMOUNT_MISMATCH = "amount_mismatch"


@strawberry.enum(description="Whether finance has resolved a reconciliation exception.")
class ReconciliationExceptionStatus(Enum):
    OPEN = "open"
    RESOLVED = "resolved"


@strawberry.enum(description="How a reconciliation exception was resolved.")
class ReconciliationAction(Enum):
    ACCEPT = "accept"
    WRITE_OFF = "write_off"
    SETTLED_LATER = "settled_later"


@strawberry.enum(description="What finance may do with an open reconciliation exception.")
class ResolutionAction(Enum):
    ACCEPT = "accept"
    WRITE_OFF = "write_off"


@strawberry.type(description="One line of a settlement report, as it reconciled.")
class SettlementLine:
    line_number: int = strawberry.field(description="Its line in the file (the header is 1).")
    provider_reference: str
    type: str = strawberry.field(
        description="charge, refund, dispute, dispute_fee, adjustment or payout."
    )
    gross: Money
    fee: Money
    net: Money = strawberry.field(
        description="Gross less fee: what it adds to the provider's balance."
    )
    settled_at: datetime
    status: SettlementLineStatus
    ledger_entry_id: strawberry.ID | None = strawberry.field(
        description="The ledger entry it settles, if one was found."
    )
    expected_gross: Money | None = strawberry.field(description="What the ledger booked.")
    expected_fee: Money | None = strawberry.field(description="The fee the ledger expected.")
    difference: Money = strawberry.field(
        description="The ledger's clearing less the line's net: the fee difference posted when "
        "matched, else what the exception leaves in clearing."
    )


def line_of(row: SettlementLineRow) -> SettlementLine:
    currency = row.currency
    return SettlementLine(
        line_number=row.line_number,
        provider_reference=row.provider_reference,
        type=row.type,
        gross=Money.of(row.gross_micros, currency),
        fee=Money.of(row.fee_micros, currency),
        net=Money.of(row.net_micros, currency),
        settled_at=row.settled_at,
        status=SettlementLineStatus(row.status),
        ledger_entry_id=_id(row.ledger_entry_id),
        expected_gross=_money(row.expected_gross_micros, currency),
        expected_fee=_money(row.expected_fee_micros, currency),
        difference=Money.of(row.difference_micros, currency),
    )


@strawberry.type(description="A provider's settlement report, imported once per report id.")
class SettlementReport(Node):
    provider: str
    report_id: str = strawberry.field(description="The provider's id of the report.")
    imported_by: str
    imported_at: datetime
    period_start: datetime = strawberry.field(
        description="The report's period, [start, end): the UTC days its lines were settled."
    )
    period_end: datetime
    line_count: int
    entry_id: strawberry.ID | None = strawberry.field(
        description="The settlement entry it posted, if it moved anything."
    )
    lines: list[SettlementLine] | None = strawberry.field(
        description="Its lines in the file's order (on importSettlementReport and "
        "settlementReport; null in lists)."
    )


def report_of(row: SettlementReportRow, lines: list[SettlementLineRow] | None) -> SettlementReport:
    return SettlementReport(
        id=global_id("SettlementReport", row.id),
        provider=row.provider,
        report_id=row.report_id,
        imported_by=row.imported_by,
        imported_at=row.imported_at,
        period_start=row.period_start,
        period_end=row.period_end,
        line_count=row.line_count,
        entry_id=_id(row.entry_id),
        lines=None if lines is None else [line_of(line) for line in lines],
    )


@strawberry.type(
    description="What a settlement report and the ledger disagree on, open until finance "
    "resolves it."
)
class ReconciliationException(Node):
    report_id: strawberry.ID = strawberry.field(description="The settlement report that found it.")
    kind: ReconciliationExceptionKind
    provider: str
    provider_reference: str | None
    line_type: str
    ledger_entry_id: strawberry.ID | None
    difference: Money = strawberry.field(
        description="What clearing keeps for it that the provider will not pay (negative: "
        "paid without the ledger knowing); a write-off moves it to the fee expense."
    )
    detail: str
    status: ReconciliationExceptionStatus
    action: ReconciliationAction | None
    reason: str
    resolved_by: str | None
    resolved_at: datetime | None
    resolution_entry_id: strawberry.ID | None = strawberry.field(
        description="The write-off entry, if it was written off."
    )
    created_at: datetime


def exception_of(row: ReconciliationExceptionRow) -> ReconciliationException:
    return ReconciliationException(
        id=global_id("ReconciliationException", row.id),
        report_id=strawberry.ID(str(row.report_id)),
        kind=ReconciliationExceptionKind(row.kind),
        provider=row.provider,
        provider_reference=row.provider_reference,
        line_type=row.line_type,
        ledger_entry_id=_id(row.ledger_entry_id),
        difference=Money.of(row.difference_micros, row.currency),
        detail=row.detail,
        status=ReconciliationExceptionStatus(row.status),
        action=None if row.action is None else ReconciliationAction(row.action),
        reason=row.reason,
        resolved_by=row.resolved_by,
        resolved_at=row.resolved_at,
        resolution_entry_id=_id(row.resolution_entry_id),
        created_at=row.created_at,
    )


# --- importSettlementReport ---------------------------------------------------------------------


@strawberry.input
class ImportSettlementReportInput:
    report: str = strawberry.field(
        description="The report's CSV (docs/settlement/): report_id, provider, "
        "provider_reference, type, gross, fee, net, currency, settled_at. Its report id is the "
        "import's idempotency key."
    )


@error_type(MalformedReport, ReportIdReused, Overdraft)
class ImportSettlementReportError(MutationError):
    line: int | None = strawberry.field(
        description="With MALFORMED_SETTLEMENT_REPORT: the file's line at fault (the header is 1)."
    )

    @classmethod
    def details_of(cls, error: LedgerError) -> dict[str, Any]:
        return {"line": error.facts.get("line") if isinstance(error, MalformedReport) else None}


@strawberry.type
class ImportSettlementReportPayload:
    report: SettlementReport | None = null_on_error()
    exceptions: list[ReconciliationException] | None = null_on_error(
        "The exceptions the report raised (when replayed: as they stand now)."
    )
    replayed: bool = replayed_field()
    errors: list[ImportSettlementReportError]


# --- resolveReconciliationException -------------------------------------------------------------


@strawberry.input
class ResolveReconciliationExceptionInput:
    exception_id: strawberry.ID
    action: ResolutionAction
    reason: str = strawberry.field(description="Why, for the record: 1-500 characters.")
    idempotency_key: str = strawberry.field(
        description="8-128 printable characters, unique per resolution (a UUID)."
    )


@error_type(
    ExceptionNotFound,
    SelfApprovalForbidden,
    ExceptionResolved,
    InvalidResolution,
    InvalidReason,
    InvalidIdempotencyKey,
    IdempotencyKeyReused,
    Overdraft,
)
class ResolveReconciliationExceptionError(MutationError):
    pass


@strawberry.type
class ResolveReconciliationExceptionPayload:
    exception: ReconciliationException | None = null_on_error()
    replayed: bool = replayed_field()
    errors: list[ResolveReconciliationExceptionError]


def exception_id_of(id: strawberry.ID) -> int:
    parsed = pk_of(id, "ReconciliationException")
    if parsed is None:
        raise ExceptionNotFound(f"No reconciliation exception {id}", field="exceptionId")
    return parsed


@strawberry.type
class SettlementMutations:
    @strawberry.mutation(
        description="Import a provider's settlement report (finance role), all or nothing: it "
        "posts each payout's cash from clearing to the bank and each matched line's fee "
        "difference to the fee expense, and reconciles every line against the ledger. The same "
        "report again gives back the first import; other content under its id is refused."
    )
    @errors_in_payload(ImportSettlementReportPayload, ImportSettlementReportError)
    async def import_settlement_report(
        self, info: Info, input: ImportSettlementReportInput
    ) -> ImportSettlementReportPayload:
        principal = require_finance(info, "import settlement reports")
        result = await service.import_report(
            info.context.services.sessions, service.ImportRequest(input.report, principal.actor)
        )
        return ImportSettlementReportPayload(
            report=report_of(result.report, result.lines),
            exceptions=[exception_of(row) for row in result.exceptions],
            replayed=result.replayed,
            errors=[],
        )

    @strawberry.mutation(
        description="Resolve an open reconciliation exception with an action and a reason "
        "(finance role, audited): ACCEPT posts nothing, WRITE_OFF moves its difference from "
        "clearing to the fee expense."
    )
    @errors_in_payload(ResolveReconciliationExceptionPayload, ResolveReconciliationExceptionError)
    async def resolve_reconciliation_exception(
        self, info: Info, input: ResolveReconciliationExceptionInput
    ) -> ResolveReconciliationExceptionPayload:
        principal = require_finance(info, "resolve reconciliation exceptions")
        result = await service.resolve_exception(
            info.context.services.sessions,
            service.ResolutionRequest(
                exception_id=exception_id_of(input.exception_id),
                action=input.action.value,
                reason=input.reason,
                actor=principal.actor,
                idempotency_key=input.idempotency_key,
            ),
        )
        return ResolveReconciliationExceptionPayload(
            exception=exception_of(result.exception), replayed=result.replayed, errors=[]
        )


@strawberry.type
class SettlementQueries:
    @strawberry.field(
        description="Reconciliation exceptions, newest first: the open ones by default, or "
        "those of a status, of one provider (finance role)."
    )
    async def reconciliation_exceptions(
        self,
        info: Info,
        status: ReconciliationExceptionStatus | None = ReconciliationExceptionStatus.OPEN,
        provider: str | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> Connection[ReconciliationException]:
        RECONCILIATION_EXCEPTIONS.caller(info)
        before = page_start("reconciliation_exception", first, after)
        async with info.context.services.sessions() as session:
            page = await service.reconciliation_exceptions(
                session,
                status=None if status is None else status.value,
                provider=provider,
                first=first,
                before_id=before,
            )
        items = [(row.id, exception_of(row)) for row in page.items]
        return connection("reconciliation_exception", items, page.has_next, page.total)

    @strawberry.field(description="Settlement reports imported, newest first (finance role).")
    async def settlement_reports(
        self, info: Info, first: int = 20, after: str | None = None
    ) -> Connection[SettlementReport]:
        SETTLEMENT_REPORTS.caller(info)
        before = page_start("settlement_report", first, after)
        async with info.context.services.sessions() as session:
            page = await service.settlement_reports(session, first=first, before_id=before)
        items = [(row.id, report_of(row, None)) for row in page.items]
        return connection("settlement_report", items, page.has_next, page.total)

    @strawberry.field(
        description="A settlement report with its lines as they reconciled (finance role); "
        "null if there is none."
    )
    async def settlement_report(self, info: Info, id: strawberry.ID) -> SettlementReport | None:
        return await look_up(info, id, "SettlementReport", load_settlement_report)


async def load_reconciliation_exception(info: Info, pk: int) -> ReconciliationException | None:
    """Reconciliation exception ``pk`` for finance (FORBIDDEN to other roles, as
    reconciliationExceptions is); None when there is none. ``node(id:)`` answers with it."""
    RECONCILIATION_EXCEPTIONS.caller(info)
    async with info.context.services.sessions() as session:
        row = await session.get(ReconciliationExceptionRow, pk)
    return None if row is None else exception_of(row)


async def load_settlement_report(info: Info, pk: int) -> SettlementReport | None:
    """Settlement report ``pk`` with its lines, for finance; None when there is none."""
    SETTLEMENT_REPORTS.caller(info)
    async with info.context.services.sessions() as session:
        row = await session.get(SettlementReportRow, pk)
        if row is None:
            return None
        lines = await service.report_lines(session, row.id)
    return report_of(row, lines)
