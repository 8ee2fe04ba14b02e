"""Gifts group-committed: many gifts in one transaction, each still checked on its own.

Gifts sent at once through one service share batches; through several services (as several
server processes would), their batches race for the same accounts on real connections."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import asyncpg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.gifts.errors import StreamNotLive
from accounting.gifts.posting import GiftRequest, GiftResult
from accounting.gifts.service import GiftService
from accounting.gifts.streams import end_stream
from accounting.gifts.tables import GiftRow
from accounting.integrity import check_integrity
from accounting.ledger.balances import creator_balances, wallet
from accounting.ledger.errors import InsufficientCoins, LedgerError
from accounting.ledger.posting import in_transaction
from accounting.ledger.tables import JournalEntryRow
from accounting.purchases.service import PurchaseRequest, PurchaseService
from api.database import create_engine, libpq_url, session_factory
from tests.gifts.support import live, sent_at_once


def gift(sender: str, stream_id: int, code: str = "rose", key: str | None = None) -> GiftRequest:
    return GiftRequest(sender, key or uuid.uuid4().hex, stream_id, code, 1)


async def fund(purchases: PurchaseService, user: str, coins: int) -> None:
    result = await purchases.purchase_coins(
        PurchaseRequest(user, uuid.uuid4().hex, "USD", "web", "card", "tok_success",
                        custom_coins=coins)
    )  # fmt: skip
    assert result.purchase.status == "completed"


async def take_event_key(db_url: URL, event_key: str) -> None:
    """Write a balanced entry under ``event_key`` behind the ledger's back (raw SQL), so that
    a gift that would take that key is refused by the database."""
    raw = await asyncpg.connect(libpq_url(db_url))
    try:
        async with raw.transaction():
            entry = await raw.fetchrow(
                "INSERT INTO journal_entry (kind, event_key, fingerprint, posted_at, actor)"
                " VALUES ('transfer', $1, 'raw', clock_timestamp(), 'test')"
                " RETURNING id, posted_at",
                event_key,
            )
            assert entry is not None
            await raw.execute(
                "INSERT INTO posting (entry_id, posted_at, account_id, commodity, amount,"
                " account_seq, balance_after)"
                " SELECT $1, $2, a.id, a.commodity, x.amount, a.posting_count + 1,"
                "        a.balance + x.amount"
                "   FROM (VALUES ('platform:coins:issued', 1), ('platform:coins:spent', -1))"
                "        AS x(code, amount) JOIN account a ON a.code = x.code",
                entry["id"],
                entry["posted_at"],
            )
    finally:
        await raw.close()


async def problems(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessions() as session, session.begin():
        report = await check_integrity(session)
    return [f"{v.check}: {v.detail}" for v in report.violations]


async def gift_entries(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        counted = await session.scalar(
            select(func.count()).select_from(JournalEntryRow).where(JournalEntryRow.kind == "gift")
        )
    return int(counted or 0)


async def test_gifts_sent_at_once_share_batches_and_a_broke_sender_fails_alone(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService, gifts: GiftService
) -> None:
    """Twenty viewers with 100 coins each and one with none send a Rose each, at once, to Bo.
    The gifts go in far fewer transactions than twenty-one; the penniless viewer is refused
    with INSUFFICIENT_COINS and nobody else notices."""
    viewers = [f"fan{i}" for i in range(20)]
    for viewer in viewers:
        await fund(purchases, viewer, 100)
    stream = await live(sessions, "bo", "batches")

    results = await sent_at_once(
        gifts, [gift(v, stream) for v in [*viewers[:10], "zed", *viewers[10:]]]
    )

    refused = [r for r in results if isinstance(r, LedgerError)]
    assert len(refused) == 1 and isinstance(refused[0], InsufficientCoins)
    assert refused[0].facts == {"held": 0, "needed": 1}
    sent = [r for r in results if isinstance(r, GiftResult)]
    assert len(sent) == 20 and not any(r.replayed for r in sent)
    assert len({r.gift.id for r in sent}) == 20
    assert gifts.batches.batches_written < 21
    async with sessions() as session:
        assert (await creator_balances(session, "bo", "USD")).diamonds_pending == 20
        for viewer in viewers:
            assert (await wallet(session, viewer, "USD")).coins == 99
    assert await gift_entries(sessions) == 20
    assert await problems(sessions) == []


async def test_one_senders_gifts_in_one_batch_spend_the_wallet_in_turn(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService, gifts: GiftService
) -> None:
    """Ana holds 70 coins and sends four Doughnuts (30 coins) at once: they are checked one
    after another against what the ones before left, so two go through and two are refused;
    the two that went released 60/70 of what she paid, at her weighted average."""
    await fund(purchases, "ana", 70)  # custom amounts start at 30 coins
    async with sessions() as session:
        paid = (await wallet(session, "ana", "USD")).coins_value_micros
    stream = await live(sessions, "bo", "batches")

    results = await sent_at_once(gifts, [gift("ana", stream, "doughnut") for _ in range(4)])

    sent = [r for r in results if isinstance(r, GiftResult)]
    refused = [r for r in results if isinstance(r, InsufficientCoins)]
    assert (len(sent), len(refused)) == (2, 2)
    assert gifts.batches.batches_written == 1
    async with sessions() as session:
        held = await wallet(session, "ana", "USD")
    assert held.coins == 10
    assert sum(r.gift.value_micros for r in sent) + held.coins_value_micros == paid
    assert held.coins_value_micros == round(paid * 10 / 70)
    assert await problems(sessions) == []


async def test_the_same_key_twice_at_once_sends_one_gift(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService, gifts: GiftService
) -> None:
    await fund(purchases, "ana", 50)
    stream = await live(sessions, "bo", "batches")
    request = gift("ana", stream, key="ana-gift-0001")

    first, second = await sent_at_once(gifts, [request, request])

    assert isinstance(first, GiftResult) and isinstance(second, GiftResult)
    assert first.gift.id == second.gift.id
    assert sorted([first.replayed, second.replayed]) == [False, True]
    assert gifts.batches.batches_written == 2  # a key never shares a batch with itself
    assert await gift_entries(sessions) == 1


async def test_a_batch_the_database_refuses_is_written_gift_by_gift(
    db_url: URL,
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
    gifts: GiftService,
) -> None:
    """An entry already holds the event key one gift of the batch would take (written behind
    the ledger's back). The batch's statement fails as a whole; the gifts are then written
    one by one, so only that gift fails and its neighbours are sent."""
    for viewer in ("ana", "cy", "di"):
        await fund(purchases, viewer, 30)
    stream = await live(sessions, "bo", "batches")
    await take_event_key(db_url, "gift:cy:taken-key-01")

    results = await asyncio.gather(
        gifts.send_gift(gift("ana", stream)),
        gifts.send_gift(gift("cy", stream, key="taken-key-01")),
        gifts.send_gift(gift("di", stream)),
        return_exceptions=True,
    )

    assert isinstance(results[0], GiftResult) and isinstance(results[2], GiftResult)
    assert not isinstance(results[1], GiftResult | LedgerError)  # the database's refusal
    assert await gift_entries(sessions) == 2
    async with sessions() as session:
        assert (await wallet(session, "cy", "USD")).coins == 30
    assert await problems(sessions) == []


async def test_several_servers_gifting_one_creator_at_once_credit_every_gift(
    db_url: URL, sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """Four services, each with its own connections (four server processes), send 400 gifts
    at once from 40 viewers into Bo's stream. Their batches race for Bo's accounts and the
    platform's; every gift is credited once and the books hold."""
    viewers = [f"fan{i}" for i in range(40)]
    for viewer in viewers:
        await fund(purchases, viewer, 1_000)
    stream = await live(sessions, "bo", "batches")
    engines = [create_engine(db_url, pool_size=2, max_overflow=0) for _ in range(4)]
    servers = [
        GiftService(session_factory(engine), functional_currency="USD", hold=timedelta(0))
        for engine in engines
    ]
    try:
        requests = [gift(viewers[i % 40], stream, "finger_heart") for i in range(400)]
        results = await asyncio.gather(
            *(servers[i % 4].send_gift(request) for i, request in enumerate(requests))
        )
    finally:
        for engine in engines:
            await engine.dispose()

    assert all(not r.replayed for r in results)
    assert len({r.gift.id for r in results}) == 400
    assert sum(server.batches.batches_written for server in servers) < 400
    async with sessions() as session:
        assert (await creator_balances(session, "bo", "USD")).diamonds_pending == 2_000
        assert (await wallet(session, "fan0", "USD")).coins == 1_000 - 10 * 5
    assert await gift_entries(sessions) == 400
    assert await problems(sessions) == []


async def test_gifts_queued_behind_a_stream_ending_find_it_ended(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService, gifts: GiftService
) -> None:
    await fund(purchases, "ana", 100)
    stream = await live(sessions, "bo", "batches")
    assert isinstance(await gifts.send_gift(gift("ana", stream)), GiftResult)
    await in_transaction(sessions, lambda s: end_stream(s, "bo", stream))

    results = await sent_at_once(gifts, [gift("ana", stream) for _ in range(3)])

    assert all(isinstance(r, StreamNotLive) for r in results)
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(GiftRow)) == 1
        held = await session.scalar(
            text("SELECT -balance FROM account WHERE code = 'user:ana:coins'")
        )
    assert held == 99


@pytest.mark.parametrize("max_batch", [1, 3])
async def test_small_batches_post_the_same_books(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService, max_batch: int
) -> None:
    service = GiftService(
        sessions, functional_currency="USD", hold=timedelta(0), max_batch=max_batch
    )
    await fund(purchases, "ana", 40)
    stream = await live(sessions, "bo", "batches")

    results = await sent_at_once(service, [gift("ana", stream, "finger_heart") for _ in range(9)])

    assert sum(isinstance(r, GiftResult) for r in results) == 8
    assert sum(isinstance(r, InsufficientCoins) for r in results) == 1
    assert service.batches.batches_written >= 9 // max_batch
    async with sessions() as session:
        held = await wallet(session, "ana", "USD")
    assert (held.coins, held.coins_value_micros) == (0, 0)
    assert await problems(sessions) == []
