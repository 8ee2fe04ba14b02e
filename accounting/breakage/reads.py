"""What other flows may read of breakage: the wallets a run recognised, from its entries' refs."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.ledger.tables import JournalEntryRow


@dataclass(frozen=True, slots=True)
class BrokenWallet:
    """A wallet a run recognised (or, in a dry run, would recognise) as breakage."""

    user_id: str
    coins: int
    """Coins unused: they stay in the wallet, spendable, now with no deferred value."""
    value_micros: int
    """The deferred value moved to breakage revenue."""
    last_moved_at: datetime
    entry_id: int | None = None
    """The breakage entry; none in a dry run."""


async def recognised_wallets(
    session: AsyncSession, entry_ids: Collection[int]
) -> list[BrokenWallet]:
    """The wallets of the breakage entries ``entry_ids``, in the order given."""
    if not entry_ids:
        return []
    rows = await session.scalars(
        select(JournalEntryRow).where(
            JournalEntryRow.id.in_(entry_ids), JournalEntryRow.kind == "breakage"
        )
    )
    by_id = {row.id: row for row in rows}
    return [
        BrokenWallet(
            user_id=by_id[entry_id].refs["user_id"],
            coins=int(by_id[entry_id].refs["coins_unused"]),
            value_micros=int(by_id[entry_id].refs["value_micros"]),
            last_moved_at=datetime.fromisoformat(by_id[entry_id].refs["last_moved_at"]),
            entry_id=entry_id,
        )
        for entry_id in entry_ids
        if entry_id in by_id
    ]
