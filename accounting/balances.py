"""Balances: current ones in constant time (kept on the account row), past ones from the
running balance stored on each posting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from accounting import chart
from accounting.tables import AccountRow, PostingRow


@dataclass(frozen=True, slots=True)
class AccountBalance:
    code: str
    commodity: str
    balance: int
    """In the account's natural reading: what a user holds, what the platform owes or earned."""
    posting_count: int


@dataclass(frozen=True, slots=True)
class Wallet:
    user_id: str
    coins: int
    coins_value_micros: int
    """Deferred revenue: what the user paid for the coins they still hold."""
    currency: str
    as_of: datetime | None


async def account_balance(
    session: AsyncSession, code: str, as_of: datetime | None = None
) -> AccountBalance | None:
    """The balance of account ``code`` now, or as of ``as_of``; ``None`` if it was never opened."""
    account = await session.scalar(select(AccountRow).where(AccountRow.code == code))
    if account is None:
        return None
    if as_of is None:
        return AccountBalance(
            code, account.commodity, account.balance * account.normal_sign, account.posting_count
        )
    row = (
        await session.execute(
            select(PostingRow.balance_after, PostingRow.account_seq)
            .where(PostingRow.account_id == account.id, PostingRow.posted_at <= as_of)
            .order_by(PostingRow.posted_at.desc(), PostingRow.account_seq.desc())
            .limit(1)
        )
    ).first()
    balance, count = (row[0], row[1]) if row else (0, 0)
    return AccountBalance(code, account.commodity, balance * account.normal_sign, count)


async def wallet(
    session: AsyncSession,
    user_id: str,
    functional_currency: str,
    as_of: datetime | None = None,
) -> Wallet:
    coins = await account_balance(session, chart.user_coins(user_id).code, as_of)
    value = await account_balance(
        session, chart.user_coins_value(user_id, functional_currency).code, as_of
    )
    return Wallet(
        user_id=user_id,
        coins=coins.balance if coins else 0,
        coins_value_micros=value.balance if value else 0,
        currency=functional_currency,
        as_of=as_of,
    )
