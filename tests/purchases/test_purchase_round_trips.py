"""What one purchase sends to PostgreSQL, statement by statement, so a round trip added to the
path shows here rather than as a slower benchmark. A purchase is three transactions: record it
pending (the buyer's lock; one read for the key, the day's coins and the buyer's standing; the
package with its price; the insert), the provider's charge (the sandbox's own record), and the
completion (the row and accounts locked, the entry posted under a savepoint)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from accounting.ledger.balances import wallet
from accounting.ledger.errors import AccountFrozen
from accounting.policy.standing import freeze_account
from accounting.purchases.payments.sandbox import SandboxGateway
from accounting.purchases.service import PurchaseRequest, PurchaseService


@contextmanager
def statements_sent(engine: AsyncEngine) -> Iterator[list[str]]:
    """The first word of every SQL statement the engine sends while the block runs (BEGIN and
    COMMIT are the driver's, not statements)."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(" ".join(statement.split()[:2]))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


def buy(user_id: str, key: str) -> PurchaseRequest:
    return PurchaseRequest(
        user_id, f"round-trips-{key}", "USD", "web", "card", "tok_success", "coins_350"
    )


def service(sessions: async_sessionmaker[AsyncSession]) -> PurchaseService:
    """With a daily limit, as the service runs: the buyer's lock is taken."""
    return PurchaseService(sessions, SandboxGateway(sessions), daily_coin_limit=100_000)


async def test_a_purchase_is_fifteen_statements(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Ana's second purchase of coins_350 (her accounts exist from the first): 15 statements,
    where it was 18 (the standing and the package's price each read alone, and the entry's key
    looked up before the insert that answers a taken key anyway)."""
    purchases = service(sessions)
    await purchases.purchase_coins(buy("ana", "first"))
    with statements_sent(engine) as sent:
        result = await purchases.purchase_coins(buy("ana", "second"))
    assert result.purchase.status == "completed"
    assert sent == [
        "SELECT pg_advisory_xact_lock(hashtextextended('purchase:'",  # the buyer's lock
        "SELECT purchase.id,",  # the key, the day's coins, the standing
        "SELECT coin_package.id,",  # the package and its price
        "INSERT INTO",  # purchase, pending
        "INSERT INTO",  # sandbox_payment: the provider's record
        "SELECT purchase.id,",  # the purchase locked
        "SELECT account.code",  # does the buyer owe?
        "SELECT id,",  # every account locked
        "SAVEPOINT sa_savepoint_1",
        "SELECT account.balance",  # what the buyer owes now
        "SELECT id,",  # the accounts' balances under the lock
        "INSERT INTO",  # journal_entry
        "INSERT INTO",  # posting
        "UPDATE purchase",  # completed
        "RELEASE SAVEPOINT",
    ]
    async with sessions() as session:  # 350 coins twice: 700
        assert (await wallet(session, "ana", "USD")).coins == 700


async def test_a_frozen_buyer_is_refused_and_a_key_recorded_before_replays(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The standing read with the key: a frozen buyer may not buy, but the purchase recorded
    under a key before the freeze is still answered (a replay, nothing new charged)."""
    purchases = service(sessions)
    first = await purchases.purchase_coins(buy("bea", "before"))
    await freeze_account(sessions, "bea", frozen=True, reason="fraud review", actor="admin:al")
    with pytest.raises(AccountFrozen):
        await purchases.purchase_coins(buy("bea", "after"))
    again = await purchases.purchase_coins(buy("bea", "before"))
    assert again.replayed and again.purchase.id == first.purchase.id
    async with sessions() as session:  # the one purchase's 350 coins
        assert (await wallet(session, "bea", "USD")).coins == 350
