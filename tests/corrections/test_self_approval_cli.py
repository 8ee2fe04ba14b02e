"""The command line is held to the rule the API is: nobody acts with a staff role on their own
account. Fin-a, in finance, holds 350 coins of her own; ``coinbooks corrections propose --by
fin-a`` of 10 coins more for her wallet exits 1 with ``SELF_APPROVAL_FORBIDDEN`` and keeps no
proposal; the same proposal by fin-b is kept."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.corrections.tables import AdjustmentProposalRow
from accounting.purchases.service import PurchaseService
from tests.breakage.support import buy
from tests.corrections.test_corrections_cli import corrections

TEN_COINS_FOR_FIN_A = (
    "--line",
    "user:fin-a:coins COIN -10",
    "--line",
    "platform:coins:issued COIN 10",
    "--reason",
    "goodwill for an outage",
)


async def proposals(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(
            await session.scalar(select(func.count()).select_from(AdjustmentProposalRow)) or 0
        )


async def test_a_finance_person_may_not_propose_an_adjustment_of_their_own_wallet(
    db_url: URL, sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    await buy(purchases, "fin-a", "fin-a-buys-0001")

    code, out, err = await corrections(
        db_url, "propose", *TEN_COINS_FOR_FIN_A, "--by", "fin-a", "--key", "adjust-own-01"
    )

    assert (code, out) == (1, "")
    assert err.startswith("SELF_APPROVAL_FORBIDDEN: You may not propose an adjustment to your own")
    assert await proposals(sessions) == 0
    done = await corrections(
        db_url, "propose", *TEN_COINS_FOR_FIN_A, "--by", "fin-b", "--key", "adjust-own-02"
    )
    assert done == (0, "Proposal 1: proposed\n", "")
    assert await proposals(sessions) == 1
