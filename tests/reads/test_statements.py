"""Account statements, told as Ana and Bo would read theirs.

Ana buys 350 coins for $4.99 through PayPal: her wallet holds 350 coins and $4.99 of deferred
value (4,990,000 micro-dollars); PayPal keeps 3.49% + $0.49 = 66 cents. Bo goes live. Ana sends
him five roses (1 coin each): five of her 350 coins release 5 x 4,990,000 / 350 = 71,285.71
micro-dollars, rounded to 71,286, and she keeps 345 coins worth 4,918,714. Then Hand Hearts (100
coins): 100 x 4,918,714 / 345 = 1,425,714.20, so 1,425,714; she keeps 245 coins worth
3,493,000. She unlocks the cat sticker pack (10 coins): 10 x 3,493,000 / 245 = 142,571.43, so
142,571; she keeps 235 coins worth 3,350,429.

Bo earns a diamond per coin: 5, then 100, pending until the hold has passed (no hold here), when
one release moves all 105 to available.

A statement covers [from, to): a movement posted exactly at 'from' is in it, one posted exactly
at 'to' is in the next period, so one period's closing balance is the next one's opening.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.gifts.holds import release_due
from accounting.gifts.posting import GiftRequest
from accounting.gifts.service import FeatureRequest, GiftService
from accounting.gifts.streams import start_stream
from accounting.ledger.posting import in_transaction
from accounting.ledger.tables import JournalEntryRow
from accounting.purchases.service import PurchaseRequest, PurchaseService
from accounting.reads.statements import (
    AccountStatement,
    StatementCursor,
    StatementMovement,
    account_statement,
)

PURCHASE_ACCOUNTS = (
    "platform:clearing:paypal:USD",
    "platform:coins:issued",
    "platform:expense:processor_fees:USD",
)
GIFT_ACCOUNTS = (
    "creator:bo:diamonds:pending",
    "creator:bo:payable",
    "platform:coins:spent",
    "platform:diamonds:issued",
    "platform:revenue:gifts",
)
FEATURE_ACCOUNTS = ("platform:coins:spent", "platform:revenue:features")


@dataclass(frozen=True)
class Day:
    """The entries of the story, oldest first, and a period that holds them all."""

    entry_ids: list[int]
    posted_at: list[datetime]
    start: datetime
    end: datetime


async def ana_and_bo(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService, gifts: GiftService
) -> Day:
    bought = await purchases.purchase_coins(
        PurchaseRequest(
            "ana",
            "ana-statement-buy",
            "USD",
            "web",
            "paypal",
            "tok_success",
            package_code="coins_350",
        )
    )
    assert bought.purchase.status == "completed"
    stream = await in_transaction(sessions, lambda s: start_stream(s, "bo", "Bo plays piano"))
    await gifts.send_gift(GiftRequest("ana", "ana-statement-roses", stream.id, "rose", 5))
    await gifts.send_gift(GiftRequest("ana", "ana-statement-hearts", stream.id, "hand_hearts", 1))
    await gifts.unlock_feature(FeatureRequest("ana", "ana-statement-sticker", "sticker_pack_cats"))
    assert await release_due(sessions) == 2
    async with sessions() as session:
        entries = (
            await session.execute(
                select(JournalEntryRow.id, JournalEntryRow.posted_at).order_by(JournalEntryRow.id)
            )
        ).all()
    posted = [e.posted_at for e in entries]
    return Day(
        [e.id for e in entries],
        posted,
        posted[0] - timedelta(hours=1),
        posted[-1] + timedelta(hours=1),
    )


async def statement(
    sessions: async_sessionmaker[AsyncSession],
    code: str,
    start: datetime,
    end: datetime,
    *,
    first: int = 20,
    after: StatementCursor | None = None,
) -> AccountStatement:
    async with sessions() as session:
        found = await account_statement(session, code, start, end, first=first, after=after)
    assert found is not None
    return found


def lines(found: AccountStatement) -> list[tuple[str, int, int]]:
    return [(m.kind, m.amount, m.balance_after) for m in found.movements.items]


async def test_ana_reads_her_wallet_and_bo_his_pending_diamonds_for_the_day(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService, gifts: GiftService
) -> None:
    day = await ana_and_bo(sessions, purchases, gifts)
    purchase, roses, hearts, sticker, release = day.entry_ids

    coins = await statement(sessions, "user:ana:coins", day.start, day.end)
    assert (coins.commodity, coins.opening, coins.closing) == ("COIN", 0, 235)
    assert lines(coins) == [
        ("purchase", 350, 350),
        ("gift", -5, 345),
        ("gift", -100, 245),
        ("feature", -10, 235),
    ]
    assert (coins.total_in, coins.total_out, coins.movement_count) == (350, 5 + 100 + 10, 4)
    assert [m.entry_id for m in coins.movements.items] == [purchase, roses, hearts, sticker]
    assert [m.posted_at for m in coins.movements.items] == day.posted_at[:4]
    assert not coins.movements.has_next

    # The same entries, seen from her wallet's value: the weighted average releases above.
    value = await statement(sessions, "user:ana:coins_value", day.start, day.end)
    assert (value.commodity, value.opening, value.closing) == ("USD", 0, 3_350_429)
    assert lines(value) == [
        ("purchase", 4_990_000, 4_990_000),
        ("gift", -71_286, 4_918_714),
        ("gift", -1_425_714, 3_493_000),
        ("feature", -142_571, 3_350_429),
    ]
    assert value.total_in == 4_990_000
    assert value.total_out == 71_286 + 1_425_714 + 142_571 == 1_639_571
    assert value.opening + value.total_in - value.total_out == value.closing

    # Counterparties: every other account of the entry, the wallet's twin included.
    by_entry = {m.entry_id: m.counterparties for m in coins.movements.items}
    assert by_entry[purchase] == tuple(sorted((*PURCHASE_ACCOUNTS, "user:ana:coins_value")))
    assert by_entry[roses] == tuple(sorted((*GIFT_ACCOUNTS, "user:ana:coins_value")))
    assert by_entry[sticker] == tuple(sorted((*FEATURE_ACCOUNTS, "user:ana:coins_value")))

    pending = await statement(sessions, "creator:bo:diamonds:pending", day.start, day.end)
    assert (pending.commodity, pending.opening, pending.closing) == ("DIAMOND", 0, 0)
    assert lines(pending) == [("gift", 5, 5), ("gift", 100, 105), ("hold_release", -105, 0)]
    assert (pending.total_in, pending.total_out) == (105, 105)
    assert pending.movements.items[-1].entry_id == release
    assert pending.movements.items[-1].counterparties == ("creator:bo:diamonds:available",)


async def test_a_period_holds_the_movement_at_its_start_and_not_the_one_at_its_end(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService, gifts: GiftService
) -> None:
    """From the roses (posted exactly at 'from') to the sticker (exactly at 'to'): the roses and
    the hearts, from 350 coins to 245. The sticker opens the next period, at 245."""
    day = await ana_and_bo(sessions, purchases, gifts)
    _, roses_at, _, sticker_at, _ = day.posted_at

    middle = await statement(sessions, "user:ana:coins", roses_at, sticker_at)
    assert (middle.opening, middle.closing) == (350, 245)
    assert lines(middle) == [("gift", -5, 345), ("gift", -100, 245)]
    assert (middle.total_in, middle.total_out, middle.movement_count) == (0, 105, 2)

    after = await statement(sessions, "user:ana:coins", sticker_at, day.end)
    assert after.opening == middle.closing == 245
    assert lines(after) == [("feature", -10, 235)]
    assert after.closing == 235

    before = await statement(sessions, "user:ana:coins", day.start, day.posted_at[0])
    assert (before.opening, before.closing, before.movements.items) == (0, 0, [])
    assert (before.total_in, before.total_out, before.movement_count) == (0, 0, 0)


async def test_pages_put_together_are_the_whole_period_and_every_page_has_its_totals(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService, gifts: GiftService
) -> None:
    day = await ana_and_bo(sessions, purchases, gifts)
    whole = await statement(sessions, "user:ana:coins_value", day.start, day.end)

    pages: list[AccountStatement] = []
    after: StatementCursor | None = None
    while True:
        page = await statement(
            sessions, "user:ana:coins_value", day.start, day.end, first=3, after=after
        )
        pages.append(page)
        if not page.movements.has_next:
            break
        after = page.movements.items[-1].cursor
    walked: list[StatementMovement] = [m for p in pages for m in p.movements.items]

    assert [len(p.movements.items) for p in pages] == [3, 1]
    assert walked == whole.movements.items
    for page in pages:
        assert (page.opening, page.closing) == (0, 3_350_429)
        assert (page.total_in, page.total_out, page.movement_count) == (4_990_000, 1_639_571, 4)


async def test_an_account_never_opened_has_no_statement(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = datetime.now().astimezone()
    async with sessions() as session:
        found = await account_statement(session, "user:nobody:coins", now - timedelta(days=1), now)
    assert found is None
