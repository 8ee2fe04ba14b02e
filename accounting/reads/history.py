"""Histories, newest first, read by keyset: a wallet's movements and a user's purchases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from accounting.ledger import chart
from accounting.ledger.pages import Page, newest_first, page_size
from accounting.ledger.tables import AccountRow, JournalEntryRow, PostingRow
from accounting.purchases.tables import PurchaseRow

HistoryCursor = tuple[datetime, int]
"""Where a page of a wallet's history ends: the movement's instant and sequence number, so the
next page starts with one probe of the history index ``(account_id, posted_at)``."""


@dataclass(frozen=True, slots=True)
class WalletMovement:
    seq: int
    """Position in the wallet's history."""
    entry_id: int
    kind: str
    posted_at: datetime
    coins: int
    """Coins in (positive) or out (negative)."""
    coins_after: int
    value_micros: int
    """Change in the deferred value of the wallet, in the functional currency."""
    memo: str
    refs: dict[str, Any]

    @property
    def cursor(self) -> HistoryCursor:
        """The next page starts after this movement."""
        return self.posted_at, self.seq


async def wallet_history(
    session: AsyncSession,
    user_id: str,
    functional_currency: str,
    *,
    first: int = 20,
    before: HistoryCursor | None = None,
) -> Page[WalletMovement]:
    """One page of the wallet's movements, newest first, older than ``before`` (the cursor of
    the previous page's last movement): a page reads its own movements and no others, however
    deep it is."""
    coins_account = await session.scalar(
        select(AccountRow.id).where(AccountRow.code == chart.user_coins(user_id).code)
    )
    if coins_account is None:
        return Page([], False)
    value_account = await session.scalar(
        select(AccountRow.id).where(
            AccountRow.code == chart.user_coins_value(user_id, functional_currency).code
        )
    )
    size = page_size(first)
    value = aliased(PostingRow)
    statement = (
        select(PostingRow, JournalEntryRow, value.amount)
        .join(JournalEntryRow, JournalEntryRow.id == PostingRow.entry_id)
        .outerjoin(
            value,
            and_(value.entry_id == PostingRow.entry_id, value.account_id == value_account),
        )
        .where(PostingRow.account_id == coins_account)
        # Newest first along the index (account_id, posted_at): an account's time order is its
        # sequence order, so the cursor's instant bounds the index scan and its sequence number
        # settles the movements of that one instant.
        .order_by(PostingRow.posted_at.desc(), PostingRow.account_seq.desc())
        .limit(size + 1)
    )
    if before is not None:
        at, seq = before
        statement = statement.where(
            PostingRow.posted_at <= at,
            or_(PostingRow.posted_at < at, PostingRow.account_seq < seq),
        )
    rows = (await session.execute(statement)).all()
    items = [
        WalletMovement(
            seq=posting.account_seq,
            entry_id=entry.id,
            kind=entry.kind,
            posted_at=entry.posted_at,
            coins=-posting.amount,
            coins_after=-posting.balance_after,
            value_micros=-(value_amount or 0),
            memo=entry.memo,
            refs=entry.refs,
        )
        for posting, entry, value_amount in rows[:size]
    ]
    return Page(items, len(rows) > size)


async def purchases(
    session: AsyncSession, user_id: str, *, first: int = 20, before_id: int | None = None
) -> Page[PurchaseRow]:
    return await newest_first(
        session, PurchaseRow, PurchaseRow.user_id == user_id, first=first, before_id=before_id
    )
