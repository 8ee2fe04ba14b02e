"""Shared set-up for settlement tests: a settlement report written as finance receives it, and
the balances and records a test reads back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting import integrity
from accounting.ledger import balances
from accounting.purchases.service import PurchaseRequest, PurchaseService
from accounting.settlement.rules import COLUMNS
from accounting.settlement.tables import (
    ReconciliationExceptionRow,
    SettlementLineRow,
    SettlementReportRow,
)

FINANCE = "user:fiona"


def report(report_id: str, provider: str, *lines: tuple[str, ...], at: str = "") -> str:
    """A settlement report: the header, then one line per ``(reference, type, gross, fee, net,
    currency)``, each settled ``at`` (default: now, so the report's period is today)."""
    settled_at = at or datetime.now(UTC).isoformat()
    rows = [",".join(COLUMNS)]
    rows += [",".join((report_id, provider, *line, settled_at)) for line in lines]
    return "\n".join(rows) + "\n"


@dataclass(frozen=True)
class Bought:
    purchase_id: int
    reference: str
    """The provider's reference of the charge (what its report names)."""


async def buy(
    purchases: PurchaseService,
    user: str,
    package: str,
    *,
    currency: str = "USD",
    provider: str = "card",
) -> Bought:
    """``user`` buys ``package`` on the web, paying in ``currency`` through ``provider``."""
    bought = await purchases.purchase_coins(
        PurchaseRequest(
            user,
            f"{user}-buys-{package}-{currency}",
            currency,
            "web",
            provider,
            "tok_success",
            package_code=package,
        )
    )
    assert bought.purchase.status == "completed"
    assert bought.purchase.provider_reference is not None
    return Bought(bought.purchase.id, bought.purchase.provider_reference)


async def balance(sessions: async_sessionmaker[AsyncSession], code: str) -> int:
    """The account's balance in its natural reading and smallest unit (0 if never used): a
    clearing account, the bank and the fee expenses are debit-normal."""
    async with sessions() as session:
        found = await balances.account_balance(session, code)
    return found.balance if found else 0


async def counts(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int, int]:
    """Reports, lines and exceptions stored."""
    async with sessions() as session:
        return (
            int(await session.scalar(select(func.count()).select_from(SettlementReportRow)) or 0),
            int(await session.scalar(select(func.count()).select_from(SettlementLineRow)) or 0),
            int(
                await session.scalar(select(func.count()).select_from(ReconciliationExceptionRow))
                or 0
            ),
        )


async def check_books(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        found = await integrity.check_integrity(session)
    assert found.violations == []
