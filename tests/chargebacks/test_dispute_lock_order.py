"""A dispute and a hold release over the same gift: a dispute won locks its clawed-back gifts,
and a chargeback the gifts it may trace, before its accounts, as the hold release does
(docs/accounting.md, "Lock order").

Mallory holds 250 coins from before, buys 1,000 with a card and gifts a money gun (500 coins) to
Shady, keeping 750. A dispute takes the purchase back: 750 of its coins come back from her
wallet, the other 250 are traced to the gift, so 250 of its 500 diamonds are clawed back and
250 are left in the hold, due at once. The hold release locks the due gift, then Shady's
diamonds; a dispute won that locked Shady's diamonds and then the gift would wait for the
release while it waits for the dispute: a deadlock PostgreSQL breaks by aborting one of them.
The same race with the dispute opening (the chargeback locks the gifts it may trace), the order
in each one's statement log, and the short list of code that locks gift rows at all.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from accounting.chargebacks.rules import LossPolicy
from accounting.chargebacks.service import (
    ChargebackClaim,
    ChargebackKind,
    ChargebackResult,
    Outcome,
    charge_back,
    resolve_dispute,
)
from accounting.gifts.holds import release_due, release_due_in
from accounting.gifts.posting import GiftRequest
from accounting.gifts.service import GiftService
from accounting.gifts.streams import start_stream
from accounting.ledger import chart
from accounting.ledger.balances import creator_balances, wallet
from accounting.ledger.posting import RETRIES, in_transaction
from accounting.purchases.service import PurchaseRequest, PurchaseService

_WAITING = text(
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
)
_DEADLOCKS = text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
_OTHER_BACKENDS = text(
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
)
FEE_MINOR = 1_500
"""The dispute's fee: 15.00 USD, booked when it opens (once per case)."""


async def _waiting(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(_WAITING) or 0)


async def _deadlocks(engine: AsyncEngine) -> int:
    """PostgreSQL's count of deadlocks in this database, once every other backend has gone (a
    backend reports its counts when it exits)."""
    await engine.dispose()
    while True:
        async with engine.connect() as connection:
            if await connection.scalar(_OTHER_BACKENDS) == 0:
                return int(await connection.scalar(_DEADLOCKS) or 0)
        await asyncio.sleep(0.02)


def _claim(purchase_id: int) -> ChargebackClaim:
    return ChargebackClaim(
        purchase_id, ChargebackKind.DISPUTE, "dp_race", "fraudulent", "provider:card",
        fee_minor=FEE_MINOR,
    )  # fmt: skip


async def _stolen_purchase(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> int:
    """Mallory's 250 coins from before, her stolen purchase of 1,000 and her money gun to Shady,
    in its hold but due at once: the stolen purchase's id."""
    bought = []
    for coins in (250, 1_000):
        request = PurchaseRequest(
            "mallory", uuid.uuid4().hex, "USD", "web", "card", "tok_success", custom_coins=coins
        )
        bought.append((await purchases.purchase_coins(request)).purchase)
    stream = await in_transaction(sessions, lambda s: start_stream(s, "shady", "live"))
    gifts = GiftService(sessions, hold=timedelta(0))
    await gifts.send_gift(GiftRequest("mallory", uuid.uuid4().hex, stream.id, "money_gun", 1))
    return bought[1].id


async def _disputed_gift(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> int:
    """The stolen purchase, disputed: half its money gun's diamonds clawed back, the other half
    due; the purchase's id."""
    stolen = await _stolen_purchase(sessions, purchases)
    opened = await in_transaction(sessions, lambda s: _dispute(s, stolen, won=None))
    assert opened.outcome is Outcome.CHARGED_BACK, opened.detail
    assert opened.chargeback is not None
    assert (opened.chargeback.coins_clawed, opened.chargeback.diamonds_clawed) == (750, 250)
    return stolen


async def _dispute(
    session: AsyncSession, purchase_id: int, *, won: bool | None
) -> ChargebackResult:
    """The dispute opened (``won`` None) or decided."""
    if won is None:
        return await charge_back(
            session, _claim(purchase_id), functional_currency="USD",
            loss_policy=LossPolicy.FRAUD_LOSS,
        )  # fmt: skip
    return await resolve_dispute(
        session, _claim(purchase_id), won=won, functional_currency="USD",
        loss_policy=LossPolicy.FRAUD_LOSS,
    )  # fmt: skip


async def _until_waiting(
    engine: AsyncEngine, count: int, task: asyncio.Task[Any] | None = None
) -> None:
    """Until ``count`` transactions wait for locks, or ``task`` ended without waiting."""
    while True:
        if (task is not None and task.done()) or await _waiting(engine) >= count:
            return
        await asyncio.sleep(0.02)


async def test_a_dispute_won_and_a_hold_release_of_its_gift_queue_instead_of_deadlocking(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    stolen = await _disputed_gift(sessions, purchases)
    deadlocks_before = await _deadlocks(engine)
    retries_before = RETRIES["40P01"]

    async with engine.connect() as holder:
        # The dispute won stops at its look for its fee's entry, after its first locks.
        await holder.execute(text("LOCK TABLE journal_entry IN ACCESS EXCLUSIVE MODE"))
        won = asyncio.create_task(in_transaction(sessions, lambda s: _dispute(s, stolen, won=True)))
        await _until_waiting(engine, 1)
        release = asyncio.create_task(
            in_transaction(sessions, lambda s: release_due_in(s, creator_id="shady"))
        )
        await _until_waiting(engine, 2, release)
        await holder.commit()
    result, _ = await asyncio.gather(won, release)

    assert result.outcome is Outcome.DISPUTE_WON, result.detail
    assert RETRIES["40P01"] == retries_before, "PostgreSQL refused a transaction as a deadlock"
    assert await _deadlocks(engine) == deadlocks_before
    await release_due(sessions)  # whatever the release left to the dispute won
    async with sessions() as session:
        shady = await creator_balances(session, "shady", "USD")
        mallory = await wallet(session, "mallory", "USD")
        fees = await session.scalar(
            text("SELECT balance FROM account WHERE code = :code"),
            {"code": chart.dispute_fees("USD").code},
        )
    # Undone: all 500 of the gift's diamonds reach available, with their 500 × 5,000 micro-USD
    # payable; Mallory keeps 250 + 1,000 − 500 = 750 coins; the 15.00 USD fee stays, booked once.
    assert (shady.diamonds_pending, shady.diamonds_available) == (0, 500)
    assert shady.payable_micros == 500 * 5_000
    assert mallory.coins == 750
    assert fees == 15_000_000


_LOCKS = re.compile(r"\bFROM (purchase|gift|account)\b.*\bFOR (?:NO KEY )?UPDATE\b", re.DOTALL)


async def test_a_dispute_won_locks_its_purchase_then_its_gifts_then_its_accounts(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """The statement log of a dispute won: the purchase, the clawed-back gifts (in id order, in
    one statement), the accounts (in one statement), and no lock of another table after them."""
    stolen = await _disputed_gift(sessions, purchases)
    locked: list[str] = []

    def log(_c: object, _cur: object, statement: str, *_args: object) -> None:
        found = _LOCKS.search(statement)
        if found is not None:
            locked.append(found.group(1))

    event.listen(engine.sync_engine, "before_cursor_execute", log)
    try:
        result = await in_transaction(sessions, lambda s: _dispute(s, stolen, won=True))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", log)
    assert result.outcome is Outcome.DISPUTE_WON, result.detail
    # The purchase, then the gift, then the accounts; after them, posting the entry locks its
    # accounts again, which the transaction holds (accounting/ledger/locks.py refuses others).
    assert locked[:3] == ["purchase", "gift", "account"]
    assert set(locked[3:]) <= {"account"}


async def test_a_dispute_opened_and_a_hold_release_of_its_gift_queue_instead_of_deadlocking(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """The same race when the dispute opens: the chargeback locks the buyer's gifts in their
    hold before its accounts, so the release skips the gift it is about to trace."""
    stolen = await _stolen_purchase(sessions, purchases)
    deadlocks_before = await _deadlocks(engine)
    retries_before = RETRIES["40P01"]

    async with engine.connect() as holder:
        # The chargeback stops at its look for a refund of the purchase, after its first locks.
        await holder.execute(text("LOCK TABLE refund IN ACCESS EXCLUSIVE MODE"))
        opened = asyncio.create_task(
            in_transaction(sessions, lambda s: _dispute(s, stolen, won=None))
        )
        await _until_waiting(engine, 1)
        release = asyncio.create_task(
            in_transaction(sessions, lambda s: release_due_in(s, creator_id="shady"))
        )
        await _until_waiting(engine, 2, release)
        await holder.commit()
    result, _ = await asyncio.gather(opened, release)

    assert result.outcome is Outcome.CHARGED_BACK, result.detail
    assert RETRIES["40P01"] == retries_before, "PostgreSQL refused a transaction as a deadlock"
    assert await _deadlocks(engine) == deadlocks_before
    assert result.chargeback is not None
    # 1,000 coins taken back: 750 from the wallet (1,250 − 500), 250 traced to the money gun,
    # whose 500 diamonds are still pending: 500 × 250 / 500 = 250 clawed back.
    assert (result.chargeback.coins_clawed, result.chargeback.diamonds_clawed) == (750, 250)
    await release_due(sessions)
    async with sessions() as session:
        shady = await creator_balances(session, "shady", "USD")
    assert (shady.diamonds_pending, shady.diamonds_available) == (0, 250)


async def test_a_dispute_opened_locks_its_purchase_then_its_gifts_then_its_accounts(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """The statement log of a chargeback: the purchase, the buyer's gifts in their hold since
    it (in id order, in one statement), the accounts (in one statement), and no lock of another
    table after them."""
    stolen = await _stolen_purchase(sessions, purchases)
    locked: list[str] = []

    def log(_c: object, _cur: object, statement: str, *_args: object) -> None:
        found = _LOCKS.search(statement)
        if found is not None:
            locked.append(found.group(1))

    event.listen(engine.sync_engine, "before_cursor_execute", log)
    try:
        result = await in_transaction(sessions, lambda s: _dispute(s, stolen, won=None))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", log)
    assert result.outcome is Outcome.CHARGED_BACK, result.detail
    assert locked[:3] == ["purchase", "gift", "account"]
    assert set(locked[3:]) <= {"account"}


GIFT_LOCK = re.compile(
    r"FROM gift\b.{0,200}?FOR (UPDATE|SHARE|NO KEY)|GiftRow\b.{0,300}?with_for_update\(([^)]*)\)",
    re.DOTALL,
)


def test_gift_rows_are_locked_by_the_hold_release_and_the_named_reads_only() -> None:
    """The lock order above holds for every locker of gift rows: the hold release, which skips
    locked gifts (so never waits for one), and ``gifts.reads`` (``lock_gifts``,
    ``gifts_in_hold``), whose callers the statement logs above pin."""
    root = Path(__file__).resolve().parents[2] / "accounting"
    found = {
        str(path.relative_to(root)): [m.group(0) for m in GIFT_LOCK.finditer(path.read_text())]
        for path in root.rglob("*.py")
    }
    lockers = {module: locks for module, locks in found.items() if locks}
    assert sorted(lockers) == ["gifts/holds.py", "gifts/reads.py"]
    assert [
        lock.endswith("with_for_update(skip_locked=True)") for lock in lockers["gifts/holds.py"]
    ] == [True]
    callers = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if re.search(r"\b(lock_gifts|gifts_in_hold)\(", path.read_text())
        and path.name != "reads.py"
    )
    assert callers == ["chargebacks/service.py", "chargebacks/tracing.py"]
