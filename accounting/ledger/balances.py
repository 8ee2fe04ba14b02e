"""Balances: current ones in constant time (kept on the account row), past ones from the
running balance stored on each posting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.ledger import chart
from accounting.ledger.tables import AccountRow, PostingRow


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
    """The balance of account ``code`` now, or as of ``as_of``; ``None`` if it was never opened.
    A platform account's is the sum of its sub-accounts'."""
    accounts = (
        await session.scalars(
            select(AccountRow).where(AccountRow.code.in_(chart.with_sub_accounts(code)))
        )
    ).all()
    if not accounts:
        return None
    balance = count = 0
    for account in accounts:
        one_balance, one_count = account.balance, account.posting_count
        if as_of is not None:
            one_balance, one_count = await _balance_as_of(session, account.id, as_of)
        balance += one_balance * account.normal_sign
        count += one_count
    return AccountBalance(code, accounts[0].commodity, balance, count)


async def _balance_as_of(
    session: AsyncSession, account_id: int, as_of: datetime
) -> tuple[int, int]:
    """An account's running balance (debit-positive) and posting count at ``as_of``."""
    row = (
        await session.execute(
            select(PostingRow.balance_after, PostingRow.account_seq)
            .where(PostingRow.account_id == account_id, PostingRow.posted_at <= as_of)
            .order_by(PostingRow.posted_at.desc(), PostingRow.account_seq.desc())
            .limit(1)
        )
    ).first()
    return (row[0], row[1]) if row else (0, 0)


_BALANCES_NOW = text(
    "SELECT code, balance * normal_sign AS balance FROM account"
    " WHERE code = ANY(CAST(:codes AS text[]))"
)
_BALANCES_AS_OF = text(
    "SELECT a.code, coalesce(p.balance_after, 0) * a.normal_sign AS balance"
    "  FROM account a"
    "  LEFT JOIN LATERAL (SELECT balance_after FROM posting"
    "                      WHERE account_id = a.id AND posted_at <= :as_of"
    "                      ORDER BY posted_at DESC, account_seq DESC LIMIT 1) p ON true"
    " WHERE a.code = ANY(CAST(:codes AS text[]))"
)


async def balances_of(
    session: AsyncSession, codes: list[str], as_of: datetime | None = None
) -> dict[str, int]:
    """The balances of accounts ``codes`` in their natural reading, now or as of ``as_of``, in
    one statement (so from one instant); an account never opened holds zero."""
    if as_of is None:
        rows = await session.execute(_BALANCES_NOW, {"codes": codes})
    else:
        rows = await session.execute(_BALANCES_AS_OF, {"codes": codes, "as_of": as_of})
    found = {row.code: int(row.balance) for row in rows}
    return {code: found.get(code, 0) for code in codes}


async def wallet(
    session: AsyncSession,
    user_id: str,
    functional_currency: str,
    as_of: datetime | None = None,
) -> Wallet:
    """A user's coins and their value, both read in one statement: never one from before a gift
    and the other from after it."""
    coins = chart.user_coins(user_id).code
    value = chart.user_coins_value(user_id, functional_currency).code
    held = await balances_of(session, [coins, value], as_of)
    return Wallet(
        user_id=user_id,
        coins=held[coins],
        coins_value_micros=held[value],
        currency=functional_currency,
        as_of=as_of,
    )


@dataclass(frozen=True, slots=True)
class CreatorBalances:
    creator_id: str
    diamonds_pending: int
    diamonds_available: int
    diamonds_reserved: int
    payable_micros: int
    """Cash owed for the diamonds in every state."""
    currency: str

    @property
    def diamonds(self) -> int:
        return self.diamonds_pending + self.diamonds_available + self.diamonds_reserved

    def cash_value_micros(self, diamonds: int) -> int:
        """The cash value of ``diamonds`` at the creator's weighted average per diamond."""
        if not self.diamonds:
            return 0
        return round(Fraction(self.payable_micros * diamonds, self.diamonds))


async def creator_balances(
    session: AsyncSession, creator_id: str, functional_currency: str
) -> CreatorBalances:
    """All four balances in one statement, so a hold release committing meanwhile can neither
    count the same diamonds twice nor miss them."""
    accounts = {
        chart.creator_diamonds(creator_id, state).code: state
        for state in chart.CREATOR_DIAMOND_STATES
    }
    payable_code = chart.creator_payable(creator_id, functional_currency).code
    rows = (
        await session.execute(
            select(AccountRow.code, AccountRow.balance * AccountRow.normal_sign).where(
                AccountRow.code.in_([*accounts, payable_code])
            )
        )
    ).all()
    found = {code: int(balance) for code, balance in rows}
    states = {state: found.get(code, 0) for code, state in accounts.items()}
    return CreatorBalances(
        creator_id=creator_id,
        diamonds_pending=states["pending"],
        diamonds_available=states["available"],
        diamonds_reserved=states["reserved"],
        payable_micros=found.get(payable_code, 0),
        currency=functional_currency,
    )
