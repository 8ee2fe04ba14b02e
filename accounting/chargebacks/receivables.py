"""Receivables: what a user owes after a chargeback took back coins they had already spent and
the loss was booked to them (``LossPolicy.RECEIVABLE``). Finance writes a receivable off to
fraud losses, with a reason, when it gives up claiming it: the whole balance, in one entry,
audited, once per idempotency key."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.chargebacks.errors import NothingOwed
from accounting.chargebacks.rules import receivable_write_off_entry
from accounting.ledger import chart, idempotency
from accounting.ledger.money import format_micros
from accounting.ledger.posting import (
    entry_postings,
    find_entry,
    in_transaction,
    lock_accounts,
    post_entry,
)
from accounting.policy import audit, separation


@dataclass(frozen=True, slots=True)
class WriteOffRequest:
    user_id: str
    idempotency_key: str
    actor: str
    """The finance person (``user:<id>``): recorded with ``reason``."""
    reason: str


@dataclass(frozen=True, slots=True)
class WriteOff:
    entry_id: int
    user_id: str
    amount_micros: int
    currency: str
    replayed: bool


async def write_off_receivable(
    sessions: async_sessionmaker[AsyncSession], request: WriteOffRequest, functional: str
) -> WriteOff:
    """Write off everything ``request.user_id`` owes, under the receivable's lock: a second
    write-off racing it finds nothing owed. The same key again gives back the first."""
    chart.check_user_id(request.user_id)
    separation.check_not_own(
        request.actor, request.user_id, doing="write off what you owe", field="userId"
    )
    idempotency.check_key(request.idempotency_key)
    reason = audit.check_reason(request.reason, required=True).strip()
    receivable = chart.user_receivable(request.user_id, functional)

    async def work(session: AsyncSession) -> WriteOff:
        key = f"receivable_write_off:{request.user_id}:{request.idempotency_key}"
        existing = await find_entry(session, key)
        if existing is not None:
            moved = await entry_postings(session, existing.id)
            owed = next(p.amount for p in moved if p.account.code == receivable.code)
            return WriteOff(existing.id, request.user_id, -owed, functional, replayed=True)
        locked = await lock_accounts(session, [receivable, chart.fraud_losses(functional)])
        owed = locked[receivable.code].balance
        if owed <= 0:
            raise NothingOwed(
                f"{request.user_id} owes nothing ({format_micros(owed, functional)} {functional})",
                field="userId",
            )
        entry = receivable_write_off_entry(
            request.user_id,
            owed,
            functional,
            key=request.idempotency_key,
            actor=request.actor,
            reason=reason,
        )
        posted = await post_entry(session, entry)
        await audit.record(
            session,
            actor=request.actor,
            action="receivable.written_off",
            subject=f"user:{request.user_id}",
            reason=reason,
            details={"entry_id": posted.id, "amount_micros": owed, "currency": functional},
        )
        return WriteOff(posted.id, request.user_id, owed, functional, replayed=False)

    return await in_transaction(sessions, work)
