"""Purchases whose charges succeed at the same time are completed together: one transaction
posts all their entries, so the platform accounts every purchase posts to (coins issued, the
provider's clearing account, fees) are locked and moved once per batch rather than once per
purchase. Each buyer still gets exactly their coins, and the books check out."""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.integrity import check_integrity
from accounting.ledger.balances import wallet
from accounting.ledger.tables import JournalEntryRow
from accounting.purchases.payments import ChargeResult
from accounting.purchases.payments.sandbox import SandboxGateway
from accounting.purchases.service import PurchaseRequest, PurchaseService

BUYERS = 16


class AnswersTogether(SandboxGateway):
    """The sandbox, but each charge's answer is held until ``BUYERS`` charges were made: then
    all are answered at once, as a provider answering a burst would."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(sessions)
        self.charged = 0
        self.all_charged = asyncio.Event()

    async def charge(self, **charge: object) -> ChargeResult:
        result = await super().charge(**charge)  # type: ignore[arg-type]
        self.charged += 1
        if self.charged == BUYERS:
            self.all_charged.set()
        await self.all_charged.wait()
        return result


def buy(buyer: str) -> PurchaseRequest:
    return PurchaseRequest(
        buyer, f"together-{buyer}", "USD", "web", "card", "tok_success", package_code="coins_350"
    )


async def test_purchases_answered_together_are_posted_in_one_transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    service = PurchaseService(sessions, AnswersTogether(sessions))
    buyers = [f"buyer-{n}" for n in range(BUYERS)]
    results = await asyncio.gather(*(service.purchase_coins(buy(b)) for b in buyers))

    assert [r.purchase.status for r in results] == ["completed"] * BUYERS
    assert service.completions.batches_written == 1
    assert service.completions.requests_written == BUYERS
    async with sessions() as session:
        entries = (
            await session.execute(
                select(JournalEntryRow.id, JournalEntryRow.created_txid).where(
                    JournalEntryRow.kind == "purchase"
                )
            )
        ).all()
        assert {r.purchase.entry_id for r in results} == {entry.id for entry in entries}
        assert len({entry.created_txid for entry in entries}) == 1  # one transaction wrote all
        for buyer in buyers:  # coins_350: 350 coins, no bonus
            assert (await wallet(session, buyer, "USD")).coins == 350
    async with sessions() as session, session.begin():
        assert (await check_integrity(session)).ok
