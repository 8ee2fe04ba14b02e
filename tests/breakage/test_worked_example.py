"""Breakage, worked through to the micro-dollar, as finance would tell it.

Ana buys 350 coins for $4.99 (4,990,000 micro-dollars of deferred value) on day T. Bo goes live
and she sends him five roses (1 coin each): 5 x 4,990,000 / 350 = 71,285.71, so 71,286 is
released; she keeps 345 coins worth 4,990,000 - 71,286 = 4,918,714. Bo earns 5 diamonds worth
5 x $0.005 = 25,000 payable, and the platform keeps 71,286 - 25,000 = 46,286 of gift revenue.

Then Ana goes quiet. Two years on, finance runs breakage as of T + 730 (the policy: 730 whole
days unused): her wallet last moved on day T, before the cut-off (midnight starting T + 1), so
its whole deferred value, 4,918,714, moves from user:ana:coins_value to
platform:revenue:breakage. Her 345 coins stay in her wallet, now worth nothing on the books.

Ana comes back and sends Bo Hand Hearts (100 coins). Her wallet's value is 0, so the gift
releases 100 x 0 / 345 = 0. Bo still earns 100 diamonds, 100 x 5,000 = 500,000 payable; with no
value released there is no gift revenue, and the 500,000 is promotional expense, exactly as for
bonus coins. The gift's entry, posting by posting (debit positive):

    user:ana:coins                 +100       platform:coins:spent            -100
    platform:expense:promotions    +500,000   creator:bo:payable          -500,000
    platform:diamonds:issued       +100       creator:bo:diamonds:pending     -100

and no posting on user:ana:coins_value. Ana keeps 345 - 100 = 245 coins, worth 0.

The deferred revenue roll-forward of the whole story: opening 0 + purchases 4,990,000 - released
by gifts 71,286 (the roses; the hearts released nothing) - breakage 4,918,714 = closing 0, with
nothing unexplained. Every dollar Ana paid is accounted for: 46,286 gift revenue + 25,000 owed
to Bo for the roses + 4,918,714 breakage = 4,990,000. The hearts' 500,000 owed to Bo is paid
for by the promotions expense; Bo is owed 25,000 + 500,000 = 525,000 in all."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting import integrity
from accounting.gifts.posting import GiftRequest
from accounting.gifts.service import GiftService
from accounting.gifts.streams import start_stream
from accounting.ledger.posting import entry_postings, in_transaction
from accounting.purchases.service import PurchaseService
from accounting.reads import financials
from tests.breakage.support import balance, buy, last_moved_on, run, wallet


async def test_ana_goes_quiet_for_two_years_then_gifts_coins_that_are_breakage(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService, gifts: GiftService
) -> None:
    async with sessions() as session:
        start = await session.scalar(select(func.now() - timedelta(minutes=1)))
    assert start is not None
    await buy(purchases, "ana", "ana-buys-0001")
    stream = await in_transaction(sessions, lambda s: start_stream(s, "bo", "Bo plays piano"))
    roses = (await gifts.send_gift(GiftRequest("ana", "ana-roses-0001", stream.id, "rose", 5))).gift
    assert (roses.value_micros, roses.payable_micros) == (71_286, 25_000)
    assert await wallet(sessions, "ana") == (345, 4_918_714)

    day_t = await last_moved_on(sessions, "ana")
    done = await run(sessions, day_t + timedelta(days=730))
    assert [(w.user_id, w.coins, w.value_micros) for w in done.wallets] == [("ana", 345, 4_918_714)]
    assert await wallet(sessions, "ana") == (345, 0)
    assert await balance(sessions, "platform:revenue:breakage") == 4_918_714

    hearts = (
        await gifts.send_gift(GiftRequest("ana", "ana-hearts-0001", stream.id, "hand_hearts", 1))
    ).gift
    assert (hearts.coins, hearts.value_micros, hearts.diamonds, hearts.payable_micros) == (
        100,
        0,
        100,
        500_000,
    )
    async with sessions() as session:
        postings = await entry_postings(session, hearts.entry_id)
    assert {p.account.code: p.amount for p in postings} == {
        "user:ana:coins": 100,
        "platform:coins:spent": -100,
        "platform:expense:promotions": 500_000,
        "creator:bo:payable": -500_000,
        "platform:diamonds:issued": 100,
        "creator:bo:diamonds:pending": -100,
    }
    assert await wallet(sessions, "ana") == (245, 0)

    # The books, as finance reads them.
    assert await balance(sessions, "platform:revenue:gifts") == 46_286
    assert await balance(sessions, "platform:expense:promotions") == 500_000
    assert await balance(sessions, "creator:bo:payable") == 25_000 + 500_000
    assert 46_286 + 25_000 + 4_918_714 == 4_990_000

    async with sessions() as session:
        end = await session.scalar(select(func.now() + timedelta(minutes=1)))
        assert end is not None
        forwards = {f.code: f for f in await financials.roll_forwards(session, "USD", start, end)}
    async with sessions() as session:
        report = await integrity.check_integrity(session)
    deferred = forwards["deferred_revenue"]
    lines = {line.code: line.amount for line in deferred.lines}
    assert (deferred.opening, deferred.closing, deferred.not_explained) == (0, 0, 0)
    assert lines["purchases"] == 4_990_000
    assert lines["released_by_gifts"] == -71_286
    assert lines["breakage"] == -4_918_714
    assert 0 + 4_990_000 - 71_286 - 4_918_714 == 0
    assert all(f.not_explained == 0 for f in forwards.values())
    coins = forwards["coins_outstanding"]
    assert (coins.opening, coins.closing) == (0, 245)  # breakage moves no coins
    assert report.ok, report.violations
