"""The trial balance at any instant: per commodity, debits equal credits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.ledger.chart import PARENT_CODE_SQL
from accounting.ledger.tables import AccountRow, PostingRow


@dataclass(frozen=True, slots=True)
class TrialBalanceLine:
    code: str
    commodity: str
    type: str
    debit: int
    credit: int


@dataclass(frozen=True, slots=True)
class CommodityTotals:
    commodity: str
    debit: int
    credit: int

    @property
    def balanced(self) -> bool:
        return self.debit == self.credit


@dataclass(frozen=True, slots=True)
class TrialBalance:
    as_of: datetime
    lines: list[TrialBalanceLine]
    totals: list[CommodityTotals]

    @property
    def balanced(self) -> bool:
        return all(total.balanced for total in self.totals)


async def trial_balance(session: AsyncSession, as_of: datetime | None = None) -> TrialBalance:
    """Every account's balance from its postings up to ``as_of`` (default: now); a platform
    account's is the sum of its sub-accounts'."""
    at = as_of or await session.scalar(select(func.clock_timestamp()))
    assert at is not None
    sums = (
        select(PostingRow.account_id, func.sum(PostingRow.amount).label("balance"))
        .where(PostingRow.posted_at <= at)
        .group_by(PostingRow.account_id)
        .subquery()
    )
    code = literal_column(PARENT_CODE_SQL.format(code="account.code"), String).label("code")
    balance = func.sum(sums.c.balance)
    rows = (
        await session.execute(
            select(code, AccountRow.commodity, AccountRow.type, balance)
            .join(sums, sums.c.account_id == AccountRow.id)
            .group_by(code, AccountRow.commodity, AccountRow.type)
            .having(balance != 0)
            .order_by(AccountRow.commodity, code)
        )
    ).all()
    lines = [
        TrialBalanceLine(code, commodity, type_, max(int(b), 0), max(-int(b), 0))
        for code, commodity, type_, b in rows
    ]
    totals: dict[str, list[int]] = {}
    for line in lines:
        pair = totals.setdefault(line.commodity, [0, 0])
        pair[0] += line.debit
        pair[1] += line.credit
    return TrialBalance(
        as_of=at,
        lines=lines,
        totals=[CommodityTotals(c, d, cr) for c, (d, cr) in sorted(totals.items())],
    )
