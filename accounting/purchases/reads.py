"""What other flows may read of purchases: named reads of a purchase's facts (a refund or a
chargeback finds the purchase it undoes, and the value it put on the wallet). Other flows import
this module, never the purchase service or its tables."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.ledger import chart
from accounting.ledger.tables import AccountRow, PostingRow
from accounting.purchases.errors import PurchaseNotFound
from accounting.purchases.tables import PurchaseRow

Purchase = PurchaseRow
"""A purchase's record, as other flows see it (read it, never write it)."""


async def purchase_of(session: AsyncSession, purchase_id: int, *, lock: bool = False) -> Purchase:
    """The purchase, locked ``FOR UPDATE`` when ``lock`` (a refund or chargeback of it queues on
    that lock); ``PurchaseNotFound`` if there is none."""
    found = await session.get(PurchaseRow, purchase_id, with_for_update=lock)
    if found is None:
        raise PurchaseNotFound(f"No purchase {purchase_id}", field="purchaseId")
    return found


async def purchase_by_reference(
    session: AsyncSession, provider: str, reference: str | None
) -> int | None:
    """The id of the purchase a provider knows by ``reference``, if any."""
    return await session.scalar(
        select(PurchaseRow.id).where(
            PurchaseRow.provider == provider, PurchaseRow.provider_reference == reference
        )
    )


async def value_paid(session: AsyncSession, purchase: Purchase, functional_currency: str) -> int:
    """What the purchase put on the wallet's deferred value, as its entry posted it."""
    credited = await session.scalar(
        select(PostingRow.amount)
        .join(AccountRow, AccountRow.id == PostingRow.account_id)
        .where(
            PostingRow.entry_id == purchase.entry_id,
            AccountRow.code == chart.user_coins_value(purchase.user_id, functional_currency).code,
        )
    )
    return -int(credited or 0)
