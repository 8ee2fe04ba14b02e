"""The journal as finance reads it, over a small book made by the real flows.

The book, entry by entry (amounts in micro-units: 1 USD = 1,000,000):

1. Ana buys 350 coins for $4.99 by card. The card network keeps 2.9% + 30c of $4.99 =
   14.471c + 30c = 44.471c, so 44c: clearing is debited 4,990,000, then credited 440,000 for
   the fee.
2. Bo buys 350 coins on iOS for $5.49; Apple keeps 30% = $1.647, so $1.65.
3. Cy buys 500 coins for EUR 4.99 through PayPal (worth $5.3892 at 1.08).
4. Ana sends Bo five roses (1 coin each) in his stream: 5 of her 350 coins release
   5 x 4,990,000 / 350 = 71,285.7, so 71,286; Bo earns 5 diamonds worth half a cent each,
   25,000 payable; the rest, 71,286 - 25,000 = 46,286, is gift revenue.
5. The hold on Bo's 5 diamonds ends (no hold here): pending to available.
6. Support (Sue) refunds Cy's purchase: all 500 coins, $5.3892 of value.
7. Finance (Fin) moves $4.55 (4.99 - 0.44) from card clearing to the bank, with the provider's
   settlement reference po_card_0001.
8. Fin reverses entry 7.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.gifts.holds import release_due
from accounting.gifts.posting import GiftRequest
from accounting.gifts.service import GiftService
from accounting.gifts.streams import start_stream
from accounting.ledger import chart
from accounting.ledger.entries import Entry, EntryKind, Posting
from accounting.ledger.posting import in_transaction, post_entry, reverse_entry
from accounting.ledger.tables import JournalEntryRow
from accounting.purchases.service import PurchaseRequest, PurchaseService
from accounting.reads.journal import (
    InvalidJournalFilter,
    JournalFilter,
    JournalPosting,
    journal_entry,
    journal_page,
)
from accounting.refunds.service import RefundPolicy, RefundRequest, refund_purchase


@dataclass(frozen=True, slots=True)
class Book:
    card_reference: str
    """The card provider's reference of Ana's purchase (the sandbox makes one up)."""


async def small_book(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService, gifts: GiftService
) -> Book:
    """The book of the module docstring: entries 1 to 8, in that order."""
    ana = await purchases.purchase_coins(
        PurchaseRequest("ana", "journal-ana-0001", "USD", "web", "card", "tok_success", "coins_350")
    )
    await purchases.purchase_coins(
        PurchaseRequest("bo", "journal-bo-00001", "USD", "ios", "apple", "tok_success", "coins_350")
    )
    cy = await purchases.purchase_coins(
        PurchaseRequest(
            "cy", "journal-cy-00001", "EUR", "web", "paypal", "tok_success", "coins_500"
        )
    )
    stream = await in_transaction(sessions, lambda s: start_stream(s, "bo", "Bo plays piano"))
    await gifts.send_gift(GiftRequest("ana", "journal-roses-01", stream.id, "rose", 5))
    assert await release_due(sessions) == 1
    await refund_purchase(
        sessions,
        RefundRequest(cy.purchase.id, "journal-refund-1", "user:sue", "changed her mind"),
        policy=RefundPolicy(window=timedelta(days=14)),
        functional_currency="USD",
    )
    settlement = Entry(
        kind=EntryKind.TRANSFER,
        event_key="settlement:card:po_card_0001",
        postings=(
            Posting(chart.bank("USD"), 4_550_000),
            Posting(chart.provider_clearing("card", "USD"), -4_550_000),
        ),
        actor="user:fin",
        refs={"provider_reference": "po_card_0001"},
        memo="card settlement",
    )
    posted = await in_transaction(sessions, lambda s: post_entry(s, settlement))
    await in_transaction(
        sessions,
        lambda s: reverse_entry(s, posted.id, actor="user:fin", reason="booked twice"),
    )
    assert ana.purchase.provider_reference is not None
    return Book(card_reference=ana.purchase.provider_reference)


@pytest.fixture
async def book(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService, gifts: GiftService
) -> Book:
    return await small_book(sessions, purchases, gifts)


async def ids(
    sessions: async_sessionmaker[AsyncSession], wanted: JournalFilter, *, newest_first: bool = False
) -> list[int]:
    async with sessions() as session:
        page = await journal_page(session, wanted, first=100, newest_first=newest_first)
    assert not page.has_next
    return [line.id for line in page.items]


async def test_every_entry_oldest_or_newest_first_with_its_postings_rates_and_refs(
    sessions: async_sessionmaker[AsyncSession], book: Book
) -> None:
    assert await ids(sessions, JournalFilter()) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert await ids(sessions, JournalFilter(), newest_first=True) == [8, 7, 6, 5, 4, 3, 2, 1]
    async with sessions() as session:
        first = await journal_page(session, JournalFilter(), first=100, newest_first=False)
    kinds = [(line.kind, line.event_key, line.actor) for line in first.items]
    assert kinds == [
        ("purchase", "purchase:1", "user:ana"),
        ("purchase", "purchase:2", "user:bo"),
        ("purchase", "purchase:3", "user:cy"),
        ("gift", "gift:ana:journal-roses-01", "user:ana"),
        ("hold_release", kinds[4][1], "system:hold-release"),
        ("refund", "refund:3", "user:sue"),
        ("transfer", "settlement:card:po_card_0001", "user:fin"),
        ("reversal", "reversal:7", "user:fin"),
    ]
    purchase = first.items[0]
    assert purchase.memo == "350 coins bought through card"
    assert purchase.rates == {"price": "499 minor units of USD for 350 coins"}
    assert purchase.refs == {
        "purchase_id": 1,
        "user_id": "ana",
        "provider": "card",
        "provider_reference": book.card_reference,
        "package": "coins_350",
    }
    assert purchase.postings == [
        JournalPosting("platform:coins:issued", "COIN", 350),
        JournalPosting("user:ana:coins", "COIN", -350),
        JournalPosting("platform:clearing:card:USD", "USD", 4_990_000),
        JournalPosting("user:ana:coins_value", "USD", -4_990_000),
        JournalPosting("platform:expense:processor_fees:USD", "USD", 440_000),
        JournalPosting("platform:clearing:card:USD", "USD", -440_000),
    ]
    shown = [(p.side, p.amount) for p in purchase.postings]
    assert shown == [
        ("DEBIT", "350"),
        ("CREDIT", "350"),
        ("DEBIT", "4.99"),
        ("CREDIT", "4.99"),
        ("DEBIT", "0.44"),
        ("CREDIT", "0.44"),
    ]
    gift = first.items[3]
    assert sorted((p.account_code, p.units) for p in gift.postings) == [
        ("creator:bo:diamonds:pending", -5),
        ("creator:bo:payable", -25_000),
        ("platform:coins:spent", -5),
        ("platform:diamonds:issued", 5),
        ("platform:revenue:gifts", -46_286),
        ("user:ana:coins", 5),
        ("user:ana:coins_value", 71_286),
    ]
    assert [p.amount for p in gift.postings if p.commodity == "USD"] == [
        "0.025",
        "0.046286",
        "0.071286",
    ]


async def test_reversal_links_go_both_ways(
    sessions: async_sessionmaker[AsyncSession], book: Book
) -> None:
    async with sessions() as session:
        settlement = await journal_entry(session, 7)
        reversal = await journal_entry(session, 8)
        gift = await journal_entry(session, 4)
        absent = await journal_entry(session, 99)
    assert settlement is not None and reversal is not None and gift is not None
    assert (settlement.reverses_entry_id, settlement.reversed_by_entry_id) == (None, 8)
    assert (reversal.reverses_entry_id, reversal.reversed_by_entry_id) == (7, None)
    assert (gift.reverses_entry_id, gift.reversed_by_entry_id) == (None, None)
    assert reversal.memo == "booked twice"
    assert reversal.postings == [
        JournalPosting("platform:bank:USD", "USD", -4_550_000),
        JournalPosting("platform:clearing:card:USD", "USD", 4_550_000),
    ]
    assert absent is None


async def test_filters_by_kind_account_prefix_user_and_actor(
    sessions: async_sessionmaker[AsyncSession], book: Book
) -> None:
    assert await ids(sessions, JournalFilter(kind="gift")) == [4]
    assert await ids(sessions, JournalFilter(kind="purchase")) == [1, 2, 3]
    assert await ids(sessions, JournalFilter(account="creator:bo:payable")) == [4]
    assert await ids(sessions, JournalFilter(account="creator:bo:")) == [4, 5]
    assert await ids(sessions, JournalFilter(account="user:bo:")) == [2]
    # an exact code matches only itself: "creator:bo" (no colon) is no account
    assert await ids(sessions, JournalFilter(account="creator:bo")) == []
    # '_' and '%' are letters in a prefix, not wildcards
    assert await ids(sessions, JournalFilter(account="user:b_:")) == []
    assert await ids(sessions, JournalFilter(account="platform:clearing:card:USD")) == [1, 7, 8]
    # Bo as a viewer (his coins) and as a creator (his diamonds and payable)
    assert await ids(sessions, JournalFilter(user_id="bo")) == [2, 4, 5]
    assert await ids(sessions, JournalFilter(user_id="cy")) == [3, 6]
    assert await ids(sessions, JournalFilter(actor="user:sue")) == [6]
    assert await ids(sessions, JournalFilter(actor="user:fin"), newest_first=True) == [8, 7]
    assert await ids(sessions, JournalFilter(user_id="bo", kind="gift")) == [4]
    assert await ids(sessions, JournalFilter(user_id="bo", actor="user:sue")) == []


async def test_filters_by_business_reference(
    sessions: async_sessionmaker[AsyncSession], book: Book
) -> None:
    # Cy's purchase and its refund, which carries the purchase's id
    assert await ids(sessions, JournalFilter(purchase_id=3)) == [3, 6]
    assert await ids(sessions, JournalFilter(purchase_id=1)) == [1]
    # the gift and the release of its hold
    assert await ids(sessions, JournalFilter(gift_id=1)) == [4, 5]
    assert await ids(sessions, JournalFilter(gift_id=2)) == []
    assert await ids(sessions, JournalFilter(refund_id=1)) == [6]
    assert await ids(sessions, JournalFilter(chargeback_id=1)) == []
    assert await ids(sessions, JournalFilter(payout_id=1)) == []
    assert await ids(sessions, JournalFilter(provider_reference=book.card_reference)) == [1]
    # a reversal keeps the references of what it reverses
    assert await ids(sessions, JournalFilter(provider_reference="po_card_0001")) == [7, 8]
    assert await ids(sessions, JournalFilter(purchase_id=3, refund_id=1)) == [6]


async def test_filters_by_period_from_inclusive_to_exclusive(
    sessions: async_sessionmaker[AsyncSession], book: Book
) -> None:
    async with sessions() as session:
        gift = await session.get(JournalEntryRow, 4)
        refund = await session.get(JournalEntryRow, 6)
    assert gift is not None and refund is not None
    assert await ids(sessions, JournalFilter(start=gift.posted_at)) == [4, 5, 6, 7, 8]
    assert await ids(sessions, JournalFilter(end=gift.posted_at)) == [1, 2, 3]
    assert await ids(sessions, JournalFilter(start=gift.posted_at, end=refund.posted_at)) == [4, 5]
    later = refund.posted_at + timedelta(days=1)
    assert await ids(sessions, JournalFilter(start=later)) == []


async def test_keyset_pages_cover_every_entry_once_either_way(
    sessions: async_sessionmaker[AsyncSession], book: Book
) -> None:
    for newest_first, expected in (
        (True, [8, 7, 6, 5, 4, 3, 2, 1]),
        (False, [1, 2, 3, 4, 5, 6, 7, 8]),
    ):
        seen: list[list[int]] = []
        after = None
        while True:
            async with sessions() as session:
                page = await journal_page(
                    session, JournalFilter(), first=3, after=after, newest_first=newest_first
                )
            seen.append([line.id for line in page.items])
            if not page.has_next:
                break
            last = page.items[-1]
            after = (last.posted_at, last.id)
        assert seen == [expected[0:3], expected[3:6], expected[6:8]]


async def test_a_filter_that_cannot_hold_is_refused(
    sessions: async_sessionmaker[AsyncSession], book: Book
) -> None:
    async with sessions() as session:
        entry = await session.get(JournalEntryRow, 4)
        assert entry is not None
        with pytest.raises(InvalidJournalFilter, match="Unknown entry kind"):
            await journal_page(session, JournalFilter(kind="bonus"))
        with pytest.raises(InvalidJournalFilter, match="'to' must be after 'from'"):
            await journal_page(session, JournalFilter(start=entry.posted_at, end=entry.posted_at))
        with pytest.raises(InvalidJournalFilter, match="account is 1-200"):
            await journal_page(session, JournalFilter(account="x" * 201))
