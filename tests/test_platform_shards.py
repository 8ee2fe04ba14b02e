"""The hot platform accounts split into sub-accounts (COINBOOKS_PLATFORM_SHARDS), told as a
worked example, once with the accounts whole and once split in four: every report reads the
same figures, and only the breakdown differs.

Which sub-account an owner's postings use is the BLAKE2b hash (8 bytes, big-endian) of the
owner's id modulo the count: among four, Ana's and Bo's is 0 (the account itself), Eve's is 2
and Di's is 3. Coins spent go to the sender's sub-account; diamonds issued, gift revenue and
promotions to the creator's; feature revenue to the unlocking user's.

Ana and Eve each buy 350 coins for $4.99 through PayPal (4,990,000 micro-dollars each; PayPal
keeps 660,000 of each). Bo and Di go live.

Ana sends Bo five roses (1 coin each): 5 x 4,990,000 / 350 = 71,285.71, so 71,286; then Hand
Hearts (100 coins): 100 x 4,918,714 / 345 = 1,425,714.20, so 1,425,714. She keeps 245 coins
worth 3,493,000. Bo earns 105 diamonds, payable 105 x 5,000 = 525,000; gift revenue from his
stream is 71,286 + 1,425,714 - 525,000 = 972,000.

Eve sends Di Hand Hearts: 100 x 4,990,000 / 350 = 1,425,714.29, so 1,425,714; she keeps 250
coins worth 3,564,286. Di earns 100 diamonds, payable 500,000; gift revenue 925,714. Eve then
unlocks the cat sticker pack (10 coins): 10 x 3,564,286 / 250 = 142,571.44, so 142,571 of
feature revenue; she keeps 240 coins worth 3,421,715.

The platform's accounts, summed: gift revenue 972,000 + 925,714 = 1,897,714; feature revenue
142,571; coins spent 105 + 110 = 215 (credited); diamonds issued 105 + 100 = 205 (debited).
Every dollar is accounted for: 3,493,000 + 3,421,715 deferred + 1,897,714 + 142,571 revenue +
525,000 + 500,000 payable = 9,980,000, what Ana and Eve paid.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting import integrity
from accounting.chargebacks.rules import (
    ChargebackFacts,
    CreatorClawback,
    LossPolicy,
    chargeback_amounts,
    chargeback_entry,
)
from accounting.gifts.posting import GiftRequest
from accounting.gifts.service import FeatureRequest, GiftService
from accounting.gifts.streams import start_stream
from accounting.gifts.tables import StreamRow
from accounting.ledger import balances, chart
from accounting.ledger.posting import in_transaction
from accounting.purchases.service import PurchaseRequest, PurchaseService
from accounting.reads import financials, journal, reports, statements

SUB_ACCOUNTS_OF_FOUR = {
    # code: balance in the account's natural reading
    "platform:coins:spent": -105,  # Ana's spending (shard 0: the account itself)
    "platform:coins:spent#2": -110,  # Eve's
    "platform:diamonds:issued": 105,  # Bo's
    "platform:diamonds:issued#3": 100,  # Di's
    "platform:revenue:gifts": 972_000,  # Bo's stream
    "platform:revenue:gifts#3": 925_714,  # Di's stream
    "platform:revenue:features#2": 142_571,  # Eve's unlock
}
WHOLE = {
    "platform:coins:spent": -215,
    "platform:diamonds:issued": 205,
    "platform:revenue:gifts": 1_897_714,
    "platform:revenue:features": 142_571,
}


@pytest.fixture(params=[1, 4], ids=["whole", "four_shards"])
def shards(request: pytest.FixtureRequest) -> Iterator[int]:
    before = chart.configure_platform_shards(request.param)
    yield request.param
    chart.configure_platform_shards(before)


async def _tell_the_story(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    gifts = GiftService(sessions, functional_currency="USD")
    for buyer in ("ana", "eve"):
        bought = await purchases.purchase_coins(
            PurchaseRequest(
                buyer, f"{buyer}-buys", "USD", "web", "paypal", "tok_success", "coins_350"
            )
        )
        assert bought.purchase.status == "completed"
    streams: dict[str, StreamRow] = {}
    for creator in ("bo", "di"):

        async def go_live(session: AsyncSession, creator: str = creator) -> StreamRow:
            return await start_stream(session, creator, f"{creator} live")

        streams[creator] = await in_transaction(sessions, go_live)
    sent = [
        await gifts.send_gift(GiftRequest("ana", "ana-roses", streams["bo"].id, "rose", 5)),
        await gifts.send_gift(GiftRequest("ana", "ana-hearts", streams["bo"].id, "hand_hearts", 1)),
        await gifts.send_gift(GiftRequest("eve", "eve-hearts", streams["di"].id, "hand_hearts", 1)),
    ]
    assert [(g.gift.coins, g.gift.value_micros, g.gift.diamonds) for g in sent] == [
        (5, 71_286, 5),
        (100, 1_425_714, 100),
        (100, 1_425_714, 100),
    ]
    unlocked = await gifts.unlock_feature(FeatureRequest("eve", "eve-sticker", "sticker_pack_cats"))
    assert unlocked.unlock.value_micros == 142_571


async def _balance(sessions: async_sessionmaker[AsyncSession], code: str) -> int | None:
    async with sessions() as session:
        found = await balances.account_balance(session, code)
    return None if found is None else found.balance


async def test_every_report_sums_the_sub_accounts_to_the_same_figures(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService, shards: int
) -> None:
    start = datetime.now(UTC) - timedelta(minutes=1)
    await _tell_the_story(sessions, purchases)
    end = datetime.now(UTC) + timedelta(minutes=1)

    # The breakdown: the accounts the postings landed on.
    async with sessions() as session:
        rows = await session.execute(
            text(
                "SELECT code, balance * normal_sign FROM account WHERE code ~ :hot AND balance <> 0"
            ),
            {
                "hot": "^platform:(coins:spent|diamonds:issued|revenue:(gifts|features)"
                "|expense:promotions)"
            },
        )
        held = {code: int(balance) for code, balance in rows}
    assert held == (SUB_ACCOUNTS_OF_FOUR if shards == 4 else WHOLE)

    # accountBalance of a platform code: the sum of its sub-accounts.
    assert await _balance(sessions, "platform:revenue:gifts") == 972_000 + 925_714
    assert await _balance(sessions, "platform:revenue:features") == 142_571
    assert await _balance(sessions, "platform:coins:spent") == -(105 + 110)
    assert await _balance(sessions, "platform:diamonds:issued") == 105 + 100
    assert await _balance(sessions, "platform:expense:promotions") == 0

    async with sessions() as session:
        trial = await reports.trial_balance(session)
    assert trial.balanced
    platform = {
        line.code: (line.debit, line.credit)
        for line in trial.lines
        if line.code.startswith("platform:")
    }
    assert platform == {
        "platform:clearing:paypal:USD": (2 * (4_990_000 - 660_000), 0),
        "platform:expense:processor_fees:USD": (2 * 660_000, 0),
        "platform:coins:issued": (700, 0),
        "platform:coins:spent": (0, 105 + 110),
        "platform:diamonds:issued": (105 + 100, 0),
        "platform:revenue:gifts": (0, 1_897_714),
        "platform:revenue:features": (0, 142_571),
    }
    assert {t.commodity: (t.debit, t.credit) for t in trial.totals} == {
        "COIN": (700, 245 + 240 + 215),
        "DIAMOND": (205, 105 + 100),
        "USD": (9_980_000, 3_493_000 + 3_421_715 + 1_897_714 + 142_571 + 525_000 + 500_000),
    }

    async with sessions() as session:
        sheet = await financials.balance_sheet(session, "USD")
        income = await financials.income_statement(session, "USD", start, end)
        rolled = await financials.roll_forwards(session, "USD", start, end)
    async with sessions() as session:
        report = await integrity.check_integrity(session)
    assert {(line.code, line.amount) for line in income.revenue} == {
        ("revenue:gifts", 1_897_714),
        ("revenue:features", 142_571),
    }
    assert [(line.code, line.amount) for line in income.expenses] == [
        ("expenses:processor_fees", 2 * 660_000)
    ]
    result = 1_897_714 + 142_571 - 2 * 660_000
    assert [(line.code, line.amount) for line in income.result] == [("result:to_date", result)]
    memo = {line.code: line.amount for line in sheet.lines if line.code.startswith("memo:")}
    assert memo["memo:coins_spent"] == -215
    assert memo["memo:diamonds_issued"] == 205
    sources = {source for line in sheet.lines for source in line.sources}
    assert not [source for source in sources if "#" in source]  # no sub-account shows alone
    deferred = next(r for r in rolled if r.code == "deferred_revenue")
    assert (deferred.opening, deferred.closing) == (0, 3_493_000 + 3_421_715)
    assert report.ok, report.violations

    # The journal filtered by a platform account finds the postings on all its sub-accounts,
    # each named as posted (the breakdown).
    async with sessions() as session:
        page = await journal.journal_page(
            session, journal.JournalFilter(account="platform:revenue:gifts"), newest_first=False
        )
    moved = [
        (line.kind, posting.account_code, -posting.units)
        for line in page.items
        for posting in line.postings
        if posting.account_code.startswith("platform:revenue:gifts")
    ]
    di_gifts = "platform:revenue:gifts#3" if shards == 4 else "platform:revenue:gifts"
    assert moved == [
        ("gift", "platform:revenue:gifts", 71_286 - 25_000),
        ("gift", "platform:revenue:gifts", 1_425_714 - 500_000),
        ("gift", di_gifts, 1_425_714 - 500_000),
    ]

    # The statement of a platform account: its sub-accounts as one, in time order, the running
    # balance the whole account's, paged after the last movement's posting.
    async with sessions() as session:
        found = await statements.account_statement(
            session, "platform:revenue:gifts", start, end, first=2
        )
        assert found is not None
        rest = await statements.later_movements(
            session, "platform:revenue:gifts", start, end, after=found.movements.items[-1].cursor
        )
    assert (found.opening, found.closing, found.total_in, found.total_out) == (
        0,
        1_897_714,
        1_897_714,
        0,
    )
    assert found.movement_count == 3 and found.movements.has_next and not rest.has_next
    assert [(m.amount, m.balance_after) for m in found.movements.items + rest.items] == [
        (46_286, 46_286),
        (925_714, 972_000),
        (925_714, 1_897_714),
    ]


def test_the_sub_account_is_a_stable_hash_of_the_owner() -> None:
    """The same owner, the same sub-account, in every process (BLAKE2b, not Python's ``hash``,
    which changes per process); every count spreads owners over all its sub-accounts."""
    assert [chart.shard_of(owner, 4) for owner in ("ana", "bo", "di", "eve")] == [0, 0, 3, 2]
    assert {chart.shard_of(f"user-{n}", 8) for n in range(200)} == set(range(8))
    assert {chart.shard_of(f"user-{n}", 1) for n in range(200)} == {0}
    before = chart.configure_platform_shards(4)
    try:
        assert chart.coins_spent("eve").code == "platform:coins:spent#2"
        assert chart.coins_spent("ana").code == "platform:coins:spent"
        assert chart.coins_spent("eve").normal_sign == chart.coins_spent().normal_sign
        assert chart.parent_code("platform:coins:spent#2") == "platform:coins:spent"
    finally:
        chart.configure_platform_shards(before)
    with pytest.raises(ValueError):
        chart.configure_platform_shards(0)


async def test_the_integrity_check_finds_a_sub_account_unlike_its_platform_account(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A report sums a sub-account into its platform account by code alone: one of another
    type or commodity, or of no platform account, would be summed wrongly, and is reported."""
    async with sessions.begin() as session:
        await session.execute(
            text(
                "INSERT INTO account (code, commodity, type, contra, no_overdraft, normal_sign)"
                " VALUES ('platform:revenue:gifts#5', 'USD', 'expense', false, false, 1),"
                "        ('platform:coins:spent#2', 'COIN', 'equity', true, false, 1),"
                "        ('platform:nothing#1', 'USD', 'revenue', false, false, -1)"
            )
        )
    async with sessions() as session:
        report = await integrity.check_integrity(session)
    found = [v for v in report.violations if v.check == "sub_account_is_its_platform_accounts_twin"]
    assert sorted(v.detail for v in found) == [
        "sub-account platform:nothing#1 is not a twin of platform:nothing",
        "sub-account platform:revenue:gifts#5 is not a twin of platform:revenue:gifts",
    ]


def test_a_chargeback_claws_diamonds_back_to_each_creators_sub_account() -> None:
    """Ana's charged-back purchase funded gifts still pending at Bo (100 diamonds), Di (50) and
    Gus (30). Split in four, Bo's diamonds return to sub-account 0 (the account itself), Di's
    and Gus's both to sub-account 3: one posting each, 100 and 50 + 30 = 80, and the entry's
    diamonds balance (180 back from the creators' pending accounts)."""
    clawbacks = (
        CreatorClawback("bo", 100, 500_000),
        CreatorClawback("di", 50, 250_000),
        CreatorClawback("gus", 30, 150_000),
    )
    amounts = chargeback_amounts(
        coins=1_000,
        value_paid_micros=10_000_000,
        wallet_coins=200,
        wallet_value_micros=2_000_000,
        payable_clawed_micros=900_000,
    )
    facts = ChargebackFacts(
        1, "ana", "card", "USD", 10_000_000, 10_000_000, "USD", amounts, clawbacks,
        LossPolicy.FRAUD_LOSS, "dispute dp_1",
    )  # fmt: skip
    before = chart.configure_platform_shards(4)
    try:
        entry = chargeback_entry(facts, actor="system:webhooks")
    finally:
        chart.configure_platform_shards(before)
    diamonds = {
        p.account.code: p.amount for p in entry.postings if p.account.commodity == "DIAMOND"
    }
    assert diamonds == {
        "creator:bo:diamonds:pending": 100,
        "creator:di:diamonds:pending": 50,
        "creator:gus:diamonds:pending": 30,
        "platform:diamonds:issued": -100,
        "platform:diamonds:issued#3": -80,
    }
