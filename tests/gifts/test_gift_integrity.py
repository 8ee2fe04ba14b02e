"""The integrity check's gift, unlock and hold checks, each shown both ways: silent on real
books, and naming exactly what is wrong once the books are corrupted.

The corruptions are what only a table owner can do (switch the guard triggers off with
``ALTER TABLE ... DISABLE TRIGGER USER``, edit, switch them back on) or entries forged through
the ledger around the gift service: both leave the books in a state no flow produces, and the
integrity check re-derives every gift invariant from the raw rows to find it.

The books of every test (micro-units: 1 USD = 1,000,000):

- Ana buys 350 coins for $4.99 through PayPal; Bo buys 70 coins for $1.09 by card.
- Bo, Cy and Dee go live. Ana sends Bo five roses and Hand Hearts (100 coins); Bo sends Cy two
  Finger Hearts (10 coins). Those gifts have no hold.
- Ana sends Dee Perfume (20 coins), unlocks the cat sticker pack (10 coins) and gifts Dee her
  last 215 coins as roses: her wallet is empty. Dee's gifts are held for an hour.
- The hold-release job runs: Bo's 105 diamonds and Cy's 10 become available, one entry each;
  Dee's 235 stay pending.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import pytest
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.gifts.holds import release_due
from accounting.gifts.posting import GiftRequest, SentGift
from accounting.gifts.service import FeatureRequest, GiftService
from accounting.gifts.streams import start_stream
from accounting.gifts.tables import FeatureUnlockRow, GiftRow, StreamRow
from accounting.integrity import CHECKS
from accounting.ledger import chart
from accounting.ledger.balances import wallet
from accounting.ledger.entries import Entry, EntryKind, Posting
from accounting.ledger.posting import PostedEntry, in_transaction, post_entry
from accounting.purchases.service import PurchaseRequest, PurchaseService
from accounting.purchases.tables import PurchaseRow
from api.database import libpq_url
from tests.ledger.test_database_invariants import corrupt, found, integrity

GIFT_CHECKS = [
    "gift_has_its_entry",
    "gift_entry_moved_what_the_gift_says",
    "gift_entry_belongs_to_a_gift",
    "released_gift_points_to_its_creators_release",
    "gift_released_after_its_hold",
    "hold_release_moved_its_gifts_diamonds",
    "creator_pending_is_unreleased_gifts",
    "creator_released_is_available_reserved_or_redeemed",
    "feature_unlock_has_its_entry",
    "feature_entry_moved_what_the_unlock_says",
    "feature_entry_belongs_to_an_unlock",
    "empty_wallet_has_no_deferred_value",
]


@dataclass(frozen=True)
class Books:
    ana_bought: PurchaseRow
    roses: SentGift
    hearts: SentGift
    bo_to_cy: SentGift
    perfume: SentGift
    last_roses: SentGift
    sticker: FeatureUnlockRow
    bo_release: int
    cy_release: int


async def buy(
    purchases: PurchaseService, user: str, key: str, package: str, provider: str
) -> PurchaseRow:
    result = await purchases.purchase_coins(
        PurchaseRequest(user, key, "USD", "web", provider, "tok_success", package_code=package)
    )
    assert result.purchase.status == "completed"
    return result.purchase


async def go_live(sessions: async_sessionmaker[AsyncSession], creator: str) -> StreamRow:
    return await in_transaction(sessions, lambda s: start_stream(s, creator, f"{creator} live"))


async def send(
    service: GiftService, sender: str, key: str, stream: StreamRow, gift: str, quantity: int = 1
) -> SentGift:
    result = await service.send_gift(GiftRequest(sender, key, stream.id, gift, quantity))
    assert not result.replayed
    return result.gift


@pytest.fixture
async def books(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService, gifts: GiftService
) -> Books:
    held = GiftService(sessions, functional_currency="USD", hold=timedelta(hours=1))
    ana_bought = await buy(purchases, "ana", "ana-buys-350", "coins_350", "paypal")
    await buy(purchases, "bo", "bo-buys-70-coins", "coins_70", "card")
    bo, cy, dee = [await go_live(sessions, creator) for creator in ("bo", "cy", "dee")]

    roses = await send(gifts, "ana", "ana-roses-for-bo", bo, "rose", 5)
    hearts = await send(gifts, "ana", "ana-hearts-for-bo", bo, "hand_hearts")
    bo_to_cy = await send(gifts, "bo", "bo-hearts-for-cy", cy, "finger_heart", 2)
    perfume = await send(held, "ana", "ana-perfume-for-dee", dee, "perfume")
    sticker = (
        await gifts.unlock_feature(FeatureRequest("ana", "ana-sticker-pack", "sticker_pack_cats"))
    ).unlock
    last_roses = await send(held, "ana", "ana-last-roses-dee", dee, "rose", 215)

    assert await release_due(sessions) == 3
    return Books(
        ana_bought,
        roses,
        hearts,
        bo_to_cy,
        perfume,
        last_roses,
        sticker,
        bo_release=await release_of(sessions, roses.id),
        cy_release=await release_of(sessions, bo_to_cy.id),
    )


async def release_of(sessions: async_sessionmaker[AsyncSession], gift_id: int) -> int:
    async with sessions() as session:
        gift = await session.get(GiftRow, gift_id)
    assert gift is not None and gift.release_entry_id is not None
    return gift.release_entry_id


@pytest.fixture
async def raw(db_url: URL) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(libpq_url(db_url))
    try:
        yield connection
    finally:
        await connection.close()


async def forge(sessions: async_sessionmaker[AsyncSession], entry: Entry) -> PostedEntry:
    """Post an entry through the ledger, around the gift service."""
    return await in_transaction(sessions, lambda session: post_entry(session, entry))


def entry(kind: EntryKind, key: str, *postings: tuple[chart.AccountSpec, int]) -> Entry:
    return Entry(
        kind=kind,
        event_key=key,
        postings=tuple(Posting(account, amount) for account, amount in postings),
        actor="test:forger",
    )


# ---------------------------------------------------------------------------------------------
# Clean books
# ---------------------------------------------------------------------------------------------


async def test_real_gift_books_pass_every_check(
    books: Books, raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession]
) -> None:
    report = await integrity(sessions)
    assert report.violations == []
    names = [name for _, name, _ in CHECKS]
    start = names.index(GIFT_CHECKS[0])
    assert names[start : start + len(GIFT_CHECKS)] == GIFT_CHECKS
    assert report.checks == [name for _, name, _ in CHECKS]
    # what the checks looked at: released and held gifts, an unlock, an emptied wallet
    assert await raw.fetchval("SELECT count(*) FROM gift WHERE release_entry_id IS NULL") == 2
    assert await raw.fetchval("SELECT count(*) FROM journal_entry WHERE kind = 'hold_release'") == 2
    assert await balance(raw, "user:ana:coins") == 0
    assert await balance(raw, "user:ana:coins_value") == 0
    assert await balance(raw, "creator:dee:diamonds:pending") == 235
    assert await balance(raw, "creator:bo:diamonds:available") == 105


async def balance(raw: asyncpg.Connection, code: str) -> int:
    """An account's natural balance, summed from its postings."""
    found_: int = await raw.fetchval(
        "SELECT coalesce(sum(p.amount), 0) * a.normal_sign FROM account a"
        " LEFT JOIN posting p ON p.account_id = a.id WHERE a.code = $1 GROUP BY a.id",
        code,
    )
    return found_


# ---------------------------------------------------------------------------------------------
# A gift and its entry
# ---------------------------------------------------------------------------------------------


async def test_a_gift_under_another_key_than_its_entry_is_found(
    books: Books, raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession]
) -> None:
    gift = books.hearts
    await corrupt(
        raw, "gift", "UPDATE gift SET idempotency_key = 'rewritten-key' WHERE id = $1", gift.id
    )
    assert found(await integrity(sessions)) == {
        "gift_has_its_entry": [
            f"gift {gift.id} has entry {gift.entry_id} (gift, keyed gift:ana:ana-hearts-for-bo),"
            " not the gift entry keyed gift:ana:rewritten-key"
        ]
    }


async def test_a_gift_pointing_at_another_entry_is_found(
    books: Books, raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The Perfume now claims Ana's purchase as its entry: its own entry has no gift, and the
    purchase did not move what the gift says."""
    gift, purchase = books.perfume, books.ana_bought
    await corrupt(
        raw, "gift", "UPDATE gift SET entry_id = $1 WHERE id = $2", purchase.entry_id, gift.id
    )
    assert found(await integrity(sessions)) == {
        "gift_has_its_entry": [
            f"gift {gift.id} has entry {purchase.entry_id} (purchase, keyed purchase:"
            f"{purchase.id}), not the gift entry keyed gift:ana:ana-perfume-for-dee"
        ],
        # the purchase put 350 coins and $4.99 into the wallet: -350 and -4,990,000 out of it
        "gift_entry_moved_what_the_gift_says": [
            f"gift {gift.id} is 20 coins, {gift.value_micros} of value, 20 diamonds, 100000"
            f" payable; its entry {purchase.entry_id} moved -350, -4990000, 0, 0"
        ],
        "gift_entry_belongs_to_a_gift": [
            f"entry {gift.entry_id} (gift:ana:ana-perfume-for-dee) has no gift"
        ],
    }


async def test_a_gift_that_claims_more_value_than_its_entry_released_is_found(
    books: Books, raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession]
) -> None:
    gift = books.roses
    # 5 of 350 coins worth $4.99: round(4,990,000 x 5 / 350) = round(71,285.71) = 71,286
    assert (gift.coins, gift.value_micros, gift.diamonds, gift.payable_micros) == (
        5,
        71_286,
        5,
        25_000,
    )
    await corrupt(
        raw, "gift", "UPDATE gift SET value_micros = value_micros + 1 WHERE id = $1", gift.id
    )
    assert found(await integrity(sessions)) == {
        "gift_entry_moved_what_the_gift_says": [
            f"gift {gift.id} is 5 coins, 71287 of value, 5 diamonds, 25000 payable;"
            f" its entry {gift.entry_id} moved 5, 71286, 5, 25000"
        ]
    }


async def test_a_gift_entry_credited_to_another_creator_is_found(
    books: Books, raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The Perfume's diamonds posted to Cy's pending account instead of Dee's: the entry still
    balances and every stored balance is rewritten to match, yet the gift says Dee."""
    gift = books.perfume
    await corrupt(
        raw,
        "posting",
        "UPDATE posting SET account_seq = -id,"
        "       account_id = (SELECT id FROM account WHERE code = $1)"
        " WHERE entry_id = $2"
        "   AND account_id = (SELECT id FROM account WHERE code = $3)",
        "creator:cy:diamonds:pending",
        gift.entry_id,
        "creator:dee:diamonds:pending",
    )
    await rebuild_stored_balances(raw)
    assert found(await integrity(sessions)) == {
        "gift_entry_moved_what_the_gift_says": [
            f"gift {gift.id} is 20 coins, {gift.value_micros} of value, 20 diamonds, 100000"
            f" payable; its entry {gift.entry_id} moved 20, {gift.value_micros}, 0, 100000"
        ],
        "creator_pending_is_unreleased_gifts": [
            "creator cy has 20 diamonds pending; their unreleased gifts hold 0",
            "creator dee has 215 diamonds pending; their unreleased gifts hold 235",
        ],
    }


async def rebuild_stored_balances(raw: asyncpg.Connection) -> None:
    """Rewrite every stored balance and running balance from the postings, so that only the
    gift checks can tell what was changed."""
    await corrupt(
        raw,
        "account",
        "UPDATE account a SET balance = s.balance, posting_count = s.n"
        "  FROM (SELECT a2.id, coalesce(sum(p.amount), 0) AS balance, count(p.id) AS n"
        "          FROM account a2 LEFT JOIN posting p ON p.account_id = a2.id GROUP BY a2.id) s"
        " WHERE s.id = a.id",
    )
    await corrupt(raw, "posting", "UPDATE posting SET account_seq = -id")  # out of the way
    await corrupt(
        raw,
        "posting",
        "UPDATE posting p SET account_seq = s.seq, balance_after = s.running"
        "  FROM (SELECT id, row_number() OVER w AS seq, sum(amount) OVER w AS running"
        "          FROM posting WINDOW w AS (PARTITION BY account_id ORDER BY id)) s"
        " WHERE s.id = p.id",
    )


async def test_a_gift_entry_without_its_gift_is_found(
    books: Books, raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The Perfume's row deleted: its entry is left without a gift, and Dee's pending diamonds
    are 20 more than her remaining gifts hold."""
    gift = books.perfume
    await corrupt(raw, "gift", "DELETE FROM gift WHERE id = $1", gift.id)
    assert found(await integrity(sessions)) == {
        "gift_entry_belongs_to_a_gift": [
            f"entry {gift.entry_id} (gift:ana:ana-perfume-for-dee) has no gift"
        ],
        "creator_pending_is_unreleased_gifts": [
            "creator dee has 235 diamonds pending; their unreleased gifts hold 215"
        ],
    }


async def test_a_gift_entry_forged_through_the_ledger_is_found(
    books: Books, sessions: async_sessionmaker[AsyncSession]
) -> None:
    forged = await forge(
        sessions,
        entry(
            EntryKind.GIFT,
            "gift:bo:never-sent-gift",
            (chart.user_coins("bo"), 10),
            (chart.coins_spent(), -10),
        ),
    )
    assert found(await integrity(sessions)) == {
        "gift_entry_belongs_to_a_gift": [f"entry {forged.id} (gift:bo:never-sent-gift) has no gift"]
    }


# ---------------------------------------------------------------------------------------------
# Holds
# ---------------------------------------------------------------------------------------------


async def test_a_gift_marked_released_by_another_creators_release_is_found(
    books: Books, raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Bo's Hand Hearts (100 diamonds) now say Cy's release entry released them."""
    gift = books.hearts
    await corrupt(
        raw,
        "gift",
        "UPDATE gift SET release_entry_id = $1 WHERE id = $2",
        books.cy_release,
        gift.id,
    )
    assert found(await integrity(sessions)) == {
        "released_gift_points_to_its_creators_release": [
            f"gift {gift.id} to bo is marked released by entry {books.cy_release} (hold_release),"
            " which releases none of their pending diamonds"
        ],
        "hold_release_moved_its_gifts_diamonds": [
            f"hold release {books.bo_release} moved 105 diamonds out of pending and 105 into"
            " available; the 1 gift(s) it released hold 5",
            f"hold release {books.cy_release} moved 10 diamonds out of pending and 10 into"
            " available; the 2 gift(s) it released hold 110",
        ],
    }


async def test_a_gift_marked_released_by_an_entry_that_released_nothing_is_found(
    books: Books, raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Dee's held Perfume marked released by Ana's purchase: not a release, dated before the
    hold ended, and Dee's diamonds no longer agree with her gifts in either state."""
    gift, purchase_entry = books.perfume, books.ana_bought.entry_id
    await corrupt(
        raw, "gift", "UPDATE gift SET release_entry_id = $1 WHERE id = $2", purchase_entry, gift.id
    )
    assert found(await integrity(sessions)) == {
        "released_gift_points_to_its_creators_release": [
            f"gift {gift.id} to dee is marked released by entry {purchase_entry} (purchase),"
            " which releases none of their pending diamonds"
        ],
        "gift_released_after_its_hold": [
            f"gift {gift.id} was released by entry {purchase_entry} before its hold ended"
        ],
        "creator_pending_is_unreleased_gifts": [
            "creator dee has 235 diamonds pending; their unreleased gifts hold 215"
        ],
        "creator_released_is_available_reserved_or_redeemed": [
            "creator dee has 0 diamonds available or reserved and 0 redeemed;"
            " their released gifts hold 20"
        ],
    }


async def test_a_gift_released_before_its_hold_ended_is_found(
    books: Books, raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession]
) -> None:
    gift = books.roses
    await corrupt(
        raw,
        "gift",
        "UPDATE gift SET release_at = release_at + interval '7 days' WHERE id = $1",
        gift.id,
    )
    assert found(await integrity(sessions)) == {
        "gift_released_after_its_hold": [
            f"gift {gift.id} was released by entry {books.bo_release} before its hold ended"
        ]
    }


async def test_a_released_gift_marked_unreleased_again_is_found(
    books: Books, raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Bo's roses unmarked: a release job would pay their 5 diamonds out a second time."""
    gift = books.roses
    await corrupt(raw, "gift", "UPDATE gift SET release_entry_id = NULL WHERE id = $1", gift.id)
    assert found(await integrity(sessions)) == {
        "hold_release_moved_its_gifts_diamonds": [
            f"hold release {books.bo_release} moved 105 diamonds out of pending and 105 into"
            " available; the 1 gift(s) it released hold 100"
        ],
        "creator_pending_is_unreleased_gifts": [
            "creator bo has 0 diamonds pending; their unreleased gifts hold 5"
        ],
        "creator_released_is_available_reserved_or_redeemed": [
            "creator bo has 105 diamonds available or reserved and 0 redeemed;"
            " their released gifts hold 100"
        ],
    }


async def test_a_release_entry_that_released_no_gift_is_found(
    books: Books, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A hold release forged through the ledger: it moves 5 of Dee's pending diamonds though
    none of her gifts is released."""
    forged = await forge(
        sessions,
        entry(
            EntryKind.HOLD_RELEASE,
            "hold_release:dee:forged",
            (chart.creator_diamonds("dee", "pending"), 5),
            (chart.creator_diamonds("dee", "available"), -5),
        ),
    )
    assert found(await integrity(sessions)) == {
        "hold_release_moved_its_gifts_diamonds": [
            f"hold release {forged.id} moved 5 diamonds out of pending and 5 into available;"
            " the 0 gift(s) it released hold 0"
        ],
        "creator_pending_is_unreleased_gifts": [
            "creator dee has 230 diamonds pending; their unreleased gifts hold 235"
        ],
        "creator_released_is_available_reserved_or_redeemed": [
            "creator dee has 5 diamonds available or reserved and 0 redeemed;"
            " their released gifts hold 0"
        ],
    }


async def test_diamonds_issued_to_a_creator_without_a_gift_are_found(
    books: Books, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await forge(
        sessions,
        entry(
            EntryKind.TRANSFER,
            "transfer:diamonds-to-dee",
            (chart.diamonds_issued(), 7),
            (chart.creator_diamonds("dee", "pending"), -7),
        ),
    )
    await forge(
        sessions,
        entry(
            EntryKind.TRANSFER,
            "transfer:diamonds-to-bo",
            (chart.diamonds_issued(), 3),
            (chart.creator_diamonds("bo", "available"), -3),
        ),
    )
    assert found(await integrity(sessions)) == {
        "creator_pending_is_unreleased_gifts": [
            "creator dee has 242 diamonds pending; their unreleased gifts hold 235"
        ],
        "creator_released_is_available_reserved_or_redeemed": [
            "creator bo has 108 diamonds available or reserved and 0 redeemed;"
            " their released gifts hold 105"
        ],
    }


# ---------------------------------------------------------------------------------------------
# Feature unlocks
# ---------------------------------------------------------------------------------------------


async def test_an_unlock_under_another_key_than_its_entry_is_found(
    books: Books, raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession]
) -> None:
    unlock = books.sticker
    await corrupt(
        raw,
        "feature_unlock",
        "UPDATE feature_unlock SET idempotency_key = 'rewritten-key' WHERE id = $1",
        unlock.id,
    )
    assert found(await integrity(sessions)) == {
        "feature_unlock_has_its_entry": [
            f"unlock {unlock.id} has entry {unlock.entry_id} (feature, keyed"
            " feature:ana:ana-sticker-pack), not the feature entry keyed"
            " feature:ana:rewritten-key"
        ]
    }


async def test_an_unlock_that_claims_other_coins_than_its_entry_is_found(
    books: Books, raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession]
) -> None:
    unlock = books.sticker
    value = unlock.value_micros
    await corrupt(
        raw, "feature_unlock", "UPDATE feature_unlock SET coins = 11 WHERE id = $1", unlock.id
    )
    assert found(await integrity(sessions)) == {
        "feature_entry_moved_what_the_unlock_says": [
            f"unlock {unlock.id} is 11 coins and {value} of value; its entry {unlock.entry_id}"
            f" moved 10 and {value}, {value} to feature revenue"
        ]
    }


async def test_a_feature_entry_without_its_unlock_is_found(
    books: Books, raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession]
) -> None:
    unlock = books.sticker
    await corrupt(raw, "feature_unlock", "DELETE FROM feature_unlock WHERE id = $1", unlock.id)
    assert found(await integrity(sessions)) == {
        "feature_entry_belongs_to_an_unlock": [
            f"entry {unlock.entry_id} (feature:ana:ana-sticker-pack) has no feature unlock"
        ]
    }


# ---------------------------------------------------------------------------------------------
# The weighted average leaves nothing behind
# ---------------------------------------------------------------------------------------------


async def test_an_empty_wallet_left_with_value_is_found(
    books: Books, raw: asyncpg.Connection, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Ana's last roses released one micro-dollar too little (and gift revenue got it): her
    wallet is empty, yet still holds deferred value."""
    last = books.last_roses
    await corrupt(
        raw,
        "posting",
        "UPDATE posting SET amount = amount + $3 WHERE entry_id = $1"
        " AND account_id = (SELECT id FROM account WHERE code = $2)",
        last.entry_id,
        "user:ana:coins_value",
        -1,
    )
    await corrupt(
        raw,
        "posting",
        "UPDATE posting SET amount = amount + $3 WHERE entry_id = $1"
        " AND account_id = (SELECT id FROM account WHERE code = $2)",
        last.entry_id,
        "platform:revenue:gifts",
        1,
    )
    await rebuild_stored_balances(raw)
    assert found(await integrity(sessions)) == {
        "gift_entry_moved_what_the_gift_says": [
            f"gift {last.id} is 215 coins, {last.value_micros} of value, 215 diamonds, 1075000"
            f" payable; its entry {last.entry_id} moved 215, {last.value_micros - 1}, 215,"
            " 1075000"
        ],
        "empty_wallet_has_no_deferred_value": ["user ana holds 0 coins and 1 of deferred value"],
    }


async def test_value_credited_to_an_empty_wallet_is_found_unless_coins_moved_without_value(
    books: Books, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Value put back into Ana's empty wallet without coins is found. A raw ``transfer`` entry
    (no flow posts one; tests and tools do) moves coins without their value by definition, so a
    wallet it touched is not held to the weighted average, and is not reported."""
    revenue = chart.revenue("gifts", "USD")
    await forge(
        sessions,
        entry(
            EntryKind.DISPUTE_FEE,  # a kind no record is tied to, so no other check minds it
            "dispute_fee:value-without-coins",
            (revenue, 3),
            (chart.user_coins_value("ana", "USD"), -3),
        ),
    )
    assert found(await integrity(sessions)) == {
        "empty_wallet_has_no_deferred_value": ["user ana holds 0 coins and 3 of deferred value"]
    }

    # Bo (coins and value) empties his wallet by transfers: coins only.
    async with sessions() as session:
        bo = await balances_of(session, "bo")
    assert bo[0] == 60 and bo[1] > 0
    await forge(
        sessions,
        entry(
            EntryKind.TRANSFER,
            "transfer:bo-coins-away",
            (chart.user_coins("bo"), 60),
            (chart.coins_spent(), -60),
        ),
    )
    assert found(await integrity(sessions)) == {
        "empty_wallet_has_no_deferred_value": ["user ana holds 0 coins and 3 of deferred value"]
    }


async def balances_of(session: AsyncSession, user: str) -> tuple[int, int]:
    held = await wallet(session, user, "USD")
    return held.coins, held.coins_value_micros
