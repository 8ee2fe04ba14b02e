"""A purchase holds no ledger lock while it waits for its payment provider: the purchase is
recorded and committed before the charge, and its entry is posted in a transaction of its own
after the answer. A provider that takes its time (300 ms in the field, here until the test
says) delays that purchase alone: every account it will post to stays free meanwhile, and
other purchases of the same buyer, through the same provider, post to the same accounts."""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.ledger.balances import wallet
from accounting.purchases.payments import ChargeResult
from accounting.purchases.payments.sandbox import SandboxGateway
from accounting.purchases.service import PurchaseRequest, PurchaseService
from api.database import libpq_url


class SlowProvider(SandboxGateway):
    """The sandbox, but each charge waits until ``answer`` is set before it is made."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(sessions)
        self.waiting = asyncio.Event()
        self.answer = asyncio.Event()

    async def charge(self, **charge: object) -> ChargeResult:
        self.waiting.set()
        await self.answer.wait()
        return await super().charge(**charge)  # type: ignore[arg-type]


def buy(key: str) -> PurchaseRequest:
    return PurchaseRequest("ana", key, "USD", "web", "card", "tok_success", package_code="coins_70")


async def test_no_ledger_lock_is_held_while_the_provider_is_awaited(
    sessions: async_sessionmaker[AsyncSession], db_url: URL
) -> None:
    slow = SlowProvider(sessions)
    waiting = asyncio.create_task(
        PurchaseService(sessions, slow).purchase_coins(buy("slow-charge-1"))
    )
    asked = asyncio.create_task(slow.waiting.wait())
    await asyncio.wait({waiting, asked}, return_when=asyncio.FIRST_COMPLETED)
    assert asked.done() and not waiting.done(), waiting.result()  # raises what stopped it

    # While the provider has the charge: no session of the service is inside a transaction,
    # and every account of the books can be locked at once by another connection (NOWAIT:
    # refused at once, not waited for, were any row held).
    conn = await asyncpg.connect(libpq_url(db_url))
    try:
        in_transaction = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            "   AND state LIKE 'idle in transaction%'"
        )
        assert in_transaction == 0
        async with conn.transaction():
            locked = await conn.fetch("SELECT code FROM account FOR UPDATE NOWAIT")
        assert {"platform:coins:issued", "platform:clearing:card:USD"} <= {
            row["code"] for row in locked
        }
    finally:
        await conn.close()

    # Another purchase by the same buyer, through the same provider, posts to the same accounts
    # (her wallet, coins issued, the card clearing account, fees) and completes meanwhile.
    other = await PurchaseService(sessions, SandboxGateway(sessions)).purchase_coins(
        buy("fast-charge-1")
    )
    assert other.purchase.status == "completed"
    assert not waiting.done()
    async with sessions() as session:
        assert (await wallet(session, "ana", "USD")).coins == 70  # the fast purchase's 70

    slow.answer.set()
    first = await waiting
    assert first.purchase.status == "completed"
    async with sessions() as session:
        assert (await wallet(session, "ana", "USD")).coins == 140  # 70 + 70
