"""Period close for finance: closePeriod (a month, once, in order, after it ended), closedPeriods,
and verifyChain (every entry's seal recomputed from the journal, naming the first that differs).
Finance role only; the domain (accounting/close) does the work."""

from __future__ import annotations

from datetime import datetime

import strawberry

from accounting.close import reads, service
from accounting.close.errors import (
    InvalidMonth,
    PeriodAlreadyClosed,
    PeriodNotEnded,
    PeriodOutOfOrder,
    TransactionsInFlight,
    UnresolvedExceptions,
)
from accounting.close.rules import month_name
from accounting.close.tables import ClosedPeriodRow
from accounting.ledger.errors import InvalidReason
from schema.authorization import require_finance
from schema.context import Info
from schema.errors import MutationError, error_type, errors_in_payload
from schema.payloads import null_on_error


def _id(value: int | None) -> strawberry.ID | None:
    return None if value is None else strawberry.ID(str(value))


@strawberry.type(description="A month finance closed: no entry may be dated into it since.")
class ClosedPeriod:
    month: str = strawberry.field(description="YYYY-MM, in UTC.")
    period_start: datetime
    period_end: datetime = strawberry.field(description="The next month's first instant.")
    closed_by: str
    closed_at: datetime
    reason: str
    override: bool = strawberry.field(
        description="Closed although reconciliation exceptions of it were open."
    )
    override_reason: str | None
    open_exceptions: int = strawberry.field(
        description="Reconciliation exceptions still open when it closed."
    )
    head_entry_id: strawberry.ID | None = strawberry.field(
        description="The chain's head when it closed: the last entry sealed (null: none)."
    )
    head_hash: str | None = strawberry.field(description="That entry's seal (sha256, hex).")


def closed_period_of(row: ClosedPeriodRow) -> ClosedPeriod:
    return ClosedPeriod(
        month=month_name(row.month),
        period_start=row.month,
        period_end=row.period_end,
        closed_by=row.closed_by,
        closed_at=row.closed_at,
        reason=row.reason,
        override=row.override,
        override_reason=row.override_reason,
        open_exceptions=row.open_exceptions,
        head_entry_id=_id(row.head_entry_id),
        head_hash=row.head_hash,
    )


@strawberry.type(description="The journal's chain recomputed from its data.")
class ChainVerification:
    intact: bool
    entries_checked: int
    sealed: int = strawberry.field(description="Entries with a seal (the rest await sealing).")
    head_entry_id: strawberry.ID | None = strawberry.field(description="The last entry sealed.")
    head_hash: str
    first_difference: strawberry.ID | None = strawberry.field(
        description="The first entry whose seal its data and predecessors do not give."
    )
    detail: str = strawberry.field(description="What differs there; empty when intact.")


@strawberry.input
class ClosePeriodInput:
    month: str = strawberry.field(description="YYYY-MM, in UTC: ended, the next to close.")
    reason: str = strawberry.field(description="Why, for the record: 1-500 characters.")
    override: bool = strawberry.field(
        default=False, description="Close although reconciliation exceptions of it are open."
    )
    override_reason: str = strawberry.field(
        default="", description="Why the override: required with it."
    )


@error_type(
    InvalidMonth,
    PeriodNotEnded,
    PeriodOutOfOrder,
    PeriodAlreadyClosed,
    UnresolvedExceptions,
    InvalidReason,
    TransactionsInFlight,
)
class ClosePeriodError(MutationError):
    pass


@strawberry.type
class ClosePeriodPayload:
    closed_period: ClosedPeriod | None = null_on_error()
    errors: list[ClosePeriodError]


@strawberry.type
class CloseMutations:
    @strawberry.mutation(
        description="Close a month (finance role, audited): from then on no entry may be dated "
        "into it. Months close once, in order, after they ended; refused while reconciliation "
        "exceptions of it are open unless overridden with a reason. Seals the journal first "
        "and records the chain's head."
    )
    @errors_in_payload(ClosePeriodPayload, ClosePeriodError)
    async def close_period(self, info: Info, input: ClosePeriodInput) -> ClosePeriodPayload:
        principal = require_finance(info, "close periods")
        row = await service.close_period(
            info.context.services.sessions,
            service.CloseRequest(
                month=input.month,
                actor=principal.actor,
                reason=input.reason,
                override=input.override,
                override_reason=input.override_reason,
            ),
        )
        return ClosePeriodPayload(closed_period=closed_period_of(row), errors=[])


@strawberry.type
class CloseQueries:
    @strawberry.field(description="The months closed, newest first (finance role).")
    async def closed_periods(self, info: Info) -> list[ClosedPeriod]:
        require_finance(info, "read closed periods")
        async with info.context.services.sessions() as session:
            rows = await reads.closed_periods(session)
        return [closed_period_of(row) for row in rows]

    @strawberry.field(
        description="Recompute every entry's seal from the journal (finance role): intact, or "
        "the first entry that differs. Reads the whole journal."
    )
    async def verify_chain(self, info: Info) -> ChainVerification:
        require_finance(info, "verify the chain")
        async with info.context.services.sessions() as session:
            result = await reads.verify_chain(session)
        return ChainVerification(
            intact=result.intact,
            entries_checked=result.entries_checked,
            sealed=result.sealed,
            head_entry_id=_id(result.head.entry_id),
            head_hash=result.head.hash,
            first_difference=_id(result.first_difference),
            detail=result.detail,
        )
