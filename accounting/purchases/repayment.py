"""A receivable repaid first: when a user who owes a receivable (``user:U:receivable``, what a
chargeback booked to them for coins already spent) completes a later purchase, the purchase's
cash repays it first, in the purchase's own entry, and the coins granted shrink in proportion:

    repaid  = min(owed, V)
    granted = ⌊N × (V − repaid) / V⌋

where N is the purchase's coins (bonus included) and V what it paid in the functional currency
(the price at the purchase's own rate for another currency, as the entry values it). The floor
means no coin is granted that was not paid for; a purchase the debt takes whole grants none.
``COINBOOKS_RECEIVABLE_POLICY=none`` turns it off: every purchase grants all its coins."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.ledger import chart
from accounting.ledger.entries import Entry
from accounting.ledger.posting import lock_accounts
from accounting.ledger.tables import AccountRow


class ReceivablePolicy(StrEnum):
    """What a later purchase does with what its buyer owes."""

    REPAY_FIRST = "repay_first"
    """The purchase's cash repays the receivable first; the coins granted shrink in proportion."""
    NONE = "none"
    """Purchases leave receivables alone (finance claims or writes them off)."""


@dataclass(frozen=True, slots=True)
class Repayment:
    repaid_micros: int
    """What of the purchase's value repaid the receivable (functional currency)."""
    coins_withheld: int
    """Coins of the purchase not granted for it: ``N − granted``."""


NO_REPAYMENT = Repayment(0, 0)


def repayment_of(owed_micros: int, value_micros: int, total_coins: int) -> Repayment:
    """What a purchase of ``total_coins`` worth ``value_micros`` repays of ``owed_micros``, and
    the coins it withholds for that (never more than the debt, never more than the purchase)."""
    if value_micros <= 0 or total_coins <= 0:
        raise ValueError("a purchase has a value and coins")
    repaid = min(max(owed_micros, 0), value_micros)
    granted = total_coins * (value_micros - repaid) // value_micros
    return Repayment(repaid, total_coins - granted)


_BALANCE = select(AccountRow.balance).where(AccountRow.code == bindparam("code"))


async def owed(session: AsyncSession, user_id: str, functional_currency: str) -> int:
    """What the user owes now, read without a lock (zero when they never owed anything)."""
    code = chart.user_receivable(user_id, functional_currency).code
    balance = await session.scalar(_BALANCE, {"code": code})
    return int(balance or 0)


async def repay_first(
    session: AsyncSession,
    entry: Entry,
    *,
    user_id: str,
    functional_currency: str,
    value_micros: int,
    total_coins: int,
    policy: ReceivablePolicy,
) -> Repayment:
    """What the purchase whose entry (before repayment) is ``entry`` repays. A buyer who owes
    anything has the entry's accounts and the receivable locked here, in one call (ascending id
    order, as every poster locks), and the debt read again under the lock: two purchases of the
    same debtor queue, and the second sees what the first repaid. A buyer owing nothing has no
    receivable opened for them."""
    if policy is ReceivablePolicy.NONE or await owed(session, user_id, functional_currency) <= 0:
        return NO_REPAYMENT
    receivable = chart.user_receivable(user_id, functional_currency)
    locked = await lock_accounts(session, [p.account for p in entry.postings] + [receivable])
    return repayment_of(locked[receivable.code].balance, value_micros, total_coins)
