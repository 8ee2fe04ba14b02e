"""Account locks in one global order: a transaction locks every account it posts to in one
statement, in ascending id order, so two flows over the same accounts queue and never deadlock.

The first test interleaves a feature unlock and a gift batch of the same viewer on real
connections, holding the unlock between its statements with a table lock from a third
connection: a flow that locked the viewer's wallet before the platform accounts would then
hold the wallet while the batch holds the platform accounts, and PostgreSQL would report a
deadlock. The others hold every flow to the rule through the one helper that takes the locks."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from accounting.gifts.posting import GiftRequest
from accounting.gifts.service import FeatureRequest, GiftService
from accounting.ledger import chart
from accounting.ledger.locks import AccountLockOrder
from accounting.ledger.posting import LOCK_ORDER, RETRIES, in_transaction, lock_accounts
from accounting.purchases.service import PurchaseRequest, PurchaseService
from tests.gifts.support import live

_WAITING = text(
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
)
_DEADLOCKS = text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
_OTHER_BACKENDS = text(
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


async def _buy(purchases: PurchaseService, user: str, key: str) -> None:
    request = PurchaseRequest(user, key, "USD", "web", "card", "tok_success", "coins_350")
    assert (await purchases.purchase_coins(request)).purchase.status == "completed"


async def _until(engine: AsyncEngine, query: text, value: int) -> None:  # type: ignore[valid-type]
    """Wait until ``query`` (a count) reads ``value`` on a connection of its own."""
    while True:
        async with engine.connect() as connection:
            if await connection.scalar(query) == value:
                return
        await asyncio.sleep(0.02)


async def _deadlocks(engine: AsyncEngine) -> int:
    """PostgreSQL's count of deadlocks in this database, once every other backend has gone (a
    backend reports its counts when it exits)."""
    await _until(engine, _OTHER_BACKENDS, 0)
    async with engine.connect() as connection:
        return int(await connection.scalar(_DEADLOCKS) or 0)


async def test_an_unlock_and_a_gift_batch_of_one_viewer_queue_instead_of_deadlocking(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
    gifts: GiftService,
) -> None:
    # Every platform account exists before ana's wallet is opened, so her wallet's ids are
    # above them: a gift batch locks the platform accounts first, then her wallet.
    stream = await live(sessions, "bea", "interleaved")
    await _buy(purchases, "cy", "cy-buys-coins")
    await gifts.send_gift(GiftRequest("cy", "cy-sends-a-rose", stream, "rose", 1))
    await gifts.unlock_feature(FeatureRequest("cy", "cy-unlocks-stickers", "sticker_pack_cats"))
    await _buy(purchases, "ana", "ana-buys-coins")
    await engine.dispose()
    deadlocks_before = await _deadlocks(engine)
    retries_before = RETRIES["40P01"]

    async with engine.connect() as holder:
        # The unlock stops at its read of the feature, after locking what it locks first.
        await holder.execute(text("LOCK TABLE feature IN ACCESS EXCLUSIVE MODE"))
        unlock = asyncio.create_task(
            gifts.unlock_feature(FeatureRequest("ana", "ana-unlocks-stickers", "sticker_pack_cats"))
        )
        await _until(engine, _WAITING, 1)
        gift = asyncio.create_task(
            gifts.send_gift(GiftRequest("ana", "ana-sends-a-rose", stream, "rose", 1))
        )
        await _until(engine, _WAITING, 2)  # the batch waits for a lock the unlock holds
        await holder.commit()
    unlocked, sent = await asyncio.gather(unlock, gift)

    assert (unlocked.replayed, sent.replayed) == (False, False)
    assert RETRIES["40P01"] == retries_before, "PostgreSQL refused a transaction as a deadlock"
    await engine.dispose()
    assert await _deadlocks(engine) == deadlocks_before
    async with sessions() as session:
        coins = await session.scalar(
            text("SELECT balance FROM account WHERE code = 'user:ana:coins'")
        )
    # 350 bought; a rose is 1 coin, the sticker pack 10 (coins are credit-normal: negative).
    assert coins == -(350 - 1 - 10)


async def test_a_transaction_locks_its_accounts_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Naming the held accounts again is fine (read as the transaction left them), and so is
    opening a new account; naming another existing account after the first lock is refused
    before any lock is taken."""
    wallet, spent, bea = chart.user_coins("ana"), chart.coins_spent(), chart.user_coins("bea")
    async with sessions() as session, session.begin():
        await lock_accounts(session, [bea])  # bea's wallet exists from now on

    async with sessions() as session, session.begin():
        await lock_accounts(session, [wallet, spent])
        again = await lock_accounts(session, [spent])
        assert list(again) == ["platform:coins:spent"]
        opened = await lock_accounts(session, [chart.user_coins("cy")])
        assert list(opened) == ["user:cy:coins"]
        with pytest.raises(AccountLockOrder) as refused:
            await lock_accounts(session, [bea])
        assert [spec.code for spec in refused.value.accounts] == [
            "platform:coins:spent",
            "user:ana:coins",
            "user:bea:coins",
            "user:cy:coins",
        ]


async def test_a_transaction_asking_late_runs_again_with_every_account_locked_first(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The rerun's first lock holds the accounts its attempt asked for late: the work then
    runs to its end, and the rerun is counted."""
    wallet, spent = chart.user_coins("ana"), chart.coins_spent()
    async with sessions() as session, session.begin():
        await lock_accounts(session, [wallet, spent])
    attempts: list[list[str]] = []

    async def work(session: AsyncSession) -> None:
        first = await lock_accounts(session, [wallet])
        attempts.append(list(first))
        await lock_accounts(session, [spent])

    before = RETRIES[LOCK_ORDER]
    await in_transaction(sessions, work)
    assert RETRIES[LOCK_ORDER] == before + 1
    assert attempts == [["user:ana:coins"], ["user:ana:coins"]]
    RETRIES[LOCK_ORDER] = before  # counted as it should be; the suite's guard expects none


ACCOUNT_LOCK = re.compile(
    r"FROM account\b.{0,200}?FOR (UPDATE|SHARE|NO KEY)|AccountRow\b.{0,200}?with_for_update",
    re.DOTALL,
)


WRITES_POSTINGS = re.compile(r"INSERT INTO posting\b|insert\(PostingRow\)|(?<!class )PostingRow\(")


def _modules_matching(pattern: re.Pattern[str]) -> list[str]:
    root = Path(__file__).resolve().parents[2] / "accounting"
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if pattern.search(path.read_text())
    )


def test_only_the_helper_locks_account_rows() -> None:
    """Postings are written in two places only, ``posting.post_entry`` (every flow but gifts
    posts through it) and the gift batch; and account rows are locked in the same two only:
    ``posting.lock_accounts`` and the gift batch's reading statement, which records its locks
    through ``posting.locked_accounts``. So every posting path goes through the helper."""
    assert _modules_matching(WRITES_POSTINGS) == ["gifts/posting.py", "ledger/posting.py"]
    assert _modules_matching(ACCOUNT_LOCK) == ["gifts/posting.py", "ledger/posting.py"]
    root = Path(__file__).resolve().parents[2] / "accounting"
    batch = (root / "gifts" / "posting.py").read_text()
    assert "locked_accounts(session, rows, wanted)" in batch
