"""Worked examples, told as a user and a finance team would tell them.

Ana buys 350 coins for $4.99 through PayPal on the web. PayPal keeps 3.49% + $0.49 (66 cents).
She then buys 500 coins for EUR 4.99 with a card while travelling; the card network keeps
2.9% + EUR 0.25 (39 cents), and the value converts to dollars at the seeded rate 1.08.
Her next card is declined: nothing happens to her wallet. Then her phone loses the connection
in the middle of buying 70 coins on the web: the provider took the money but never answered.
The purchase stays pending until the settlement job asks the provider, and then it is granted
exactly once, even though Ana retried in the meantime.

Then Ana watches Bo's stream: see the second example's story.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting import integrity
from accounting.gifts.holds import release_due
from accounting.gifts.posting import GiftRequest
from accounting.gifts.service import FeatureRequest, GiftService
from accounting.gifts.streams import start_stream
from accounting.ledger import balances
from accounting.ledger.balances import creator_balances
from accounting.ledger.posting import in_transaction
from accounting.ledger.tables import JournalEntryRow
from accounting.purchases.service import PurchaseRequest, PurchaseService
from accounting.reads import reports
from accounting.reads.earnings import stream_totals


async def balance(sessions: async_sessionmaker[AsyncSession], code: str) -> int:
    async with sessions() as session:
        found = await balances.account_balance(session, code)
    return found.balance if found else 0


async def test_ana_buys_coins_in_two_currencies_and_survives_a_decline_and_a_timeout(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    paypal = await purchases.purchase_coins(
        PurchaseRequest(
            "ana",
            "ana-first-purchase",
            "USD",
            "web",
            "paypal",
            "tok_success",
            package_code="coins_350",
        )
    )
    assert paypal.purchase.status == "completed"

    card_in_euros = await purchases.purchase_coins(
        PurchaseRequest(
            "ana",
            "ana-euro-purchase",
            "EUR",
            "web",
            "card",
            "tok_success",
            package_code="coins_500",
        )
    )
    assert card_in_euros.purchase.status == "completed"

    declined = await purchases.purchase_coins(
        PurchaseRequest(
            "ana",
            "ana-declined-card",
            "USD",
            "web",
            "card",
            "tok_declined",
            package_code="coins_700",
        )
    )
    assert declined.purchase.status == "failed"
    assert declined.purchase.failure_code == "card_declined"
    assert declined.purchase.entry_id is None

    lost_connection = PurchaseRequest(
        "ana", "ana-on-the-train", "USD", "web", "card", "tok_timeout", package_code="coins_70"
    )
    pending = await purchases.purchase_coins(lost_connection)
    assert pending.purchase.status == "pending"

    async with sessions() as session:
        wallet = await balances.wallet(session, "ana", "USD")
    assert wallet.coins == 350 + 500
    assert wallet.coins_value_micros == 4_990_000 + 5_389_200

    # The settlement job asks the provider; Ana's retry arrives at the same time.
    settled = await purchases.settle_pending()
    retry = await purchases.purchase_coins(lost_connection)
    assert settled == {"completed": 1, "failed": 0, "pending": 0}
    assert retry.replayed and retry.purchase.status == "completed"
    assert retry.purchase.id == pending.purchase.id

    async with sessions() as session:
        wallet = await balances.wallet(session, "ana", "USD")
    assert wallet.coins == 350 + 500 + 70
    assert wallet.coins_value_micros == 4_990_000 + 5_389_200 + 1_090_000

    # The books, as finance reads them (micro-units: 1 USD = 1,000,000).
    assert await balance(sessions, "platform:clearing:paypal:USD") == 4_990_000 - 660_000
    assert await balance(sessions, "platform:expense:processor_fees:USD") == 660_000 + 330_000
    assert await balance(sessions, "platform:clearing:card:EUR") == 4_990_000 - 390_000
    assert await balance(sessions, "platform:expense:processor_fees:EUR") == 390_000
    assert await balance(sessions, "platform:clearing:card:USD") == 1_090_000 - 330_000
    # The trading accounts carry the conversion: EUR in, USD out, each commodity balanced.
    assert await balance(sessions, "platform:fx:EUR") == 4_990_000
    assert await balance(sessions, "platform:fx:USD") == -5_389_200
    assert await balance(sessions, "platform:coins:issued") == 920

    async with sessions() as session:
        trial = await reports.trial_balance(session)
    assert trial.balanced
    assert {t.commodity: t.debit for t in trial.totals} == {
        "COIN": 920,
        "EUR": 4_990_000,
        "USD": 5_389_200 + (4_990_000 - 660_000) + 990_000 + 760_000,
    }
    async with sessions() as session:
        report = await integrity.check_integrity(session)
    assert report.ok, report.violations
    assert report.entries == 3


async def test_ana_gifts_bo_roses_and_hand_hearts_in_his_stream_and_unlocks_a_sticker(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """Ana buys 350 coins for $4.99 through PayPal: each coin is worth 4.99 / 350 =
    $0.0142857... to her, and she holds $4.99 of deferred value (4,990,000 micro-dollars).

    Bo goes live. Ana sends him five roses (1 coin each). Five of her 350 coins release
    5 x 4,990,000 / 350 = 71,285.71 micro-dollars, rounded to 71,286; she keeps 345 coins worth
    4,918,714. Then Hand Hearts (100 coins): 100 x 4,918,714 / 345 = 1,425,714.20, so 1,425,714
    (the same as 100 coins' share of her purchase, 1,425,714.29, rounded: the weighted average
    carries no drift). She keeps 245 coins worth 3,493,000.

    Bo earns a diamond per coin, 105 diamonds, each worth half a cent to him: $0.525 payable
    (525,000). The platform keeps the rest of what Ana's coins were worth:
    71,286 + 1,425,714 - 525,000 = 972,000 of gift revenue.

    Ana unlocks the cat sticker pack (10 coins): 10 x 3,493,000 / 245 = 142,571.43, so 142,571
    of feature revenue. She keeps 235 coins worth 3,350,429 (235 coins' share of $4.99 is
    3,350,428.57: within a micro-dollar, and her last coin will release exactly what is left).

    Bo's diamonds are pending for the hold (two seconds here; seven days by default). Once it
    has passed, Bo looks at his earnings and his 105 diamonds are available.

    Every dollar Ana paid is accounted for: 3,350,429 still deferred + 972,000 gift revenue +
    142,571 feature revenue + 525,000 owed to Bo = 4,990,000; PayPal owes the platform
    $4.99 less its 66-cent fee.
    """
    gifts = GiftService(sessions, functional_currency="USD", hold=timedelta(seconds=2))
    bought = await purchases.purchase_coins(
        PurchaseRequest(
            "ana",
            "ana-buys-for-bo",
            "USD",
            "web",
            "paypal",
            "tok_success",
            package_code="coins_350",
        )
    )
    assert bought.purchase.status == "completed"
    stream = await in_transaction(
        sessions, lambda session: start_stream(session, "bo", "Bo plays piano")
    )

    roses = (await gifts.send_gift(GiftRequest("ana", "ana-roses-0001", stream.id, "rose", 5))).gift
    hearts = (
        await gifts.send_gift(GiftRequest("ana", "ana-hearts-0001", stream.id, "hand_hearts", 1))
    ).gift
    sticker = (
        await gifts.unlock_feature(FeatureRequest("ana", "ana-sticker-001", "sticker_pack_cats"))
    ).unlock

    assert (roses.coins, roses.value_micros, roses.diamonds, roses.payable_micros) == (
        5,
        71_286,
        5,
        25_000,
    )
    assert (hearts.coins, hearts.value_micros, hearts.diamonds, hearts.payable_micros) == (
        100,
        1_425_714,
        100,
        500_000,
    )
    assert (sticker.coins, sticker.value_micros) == (10, 142_571)
    async with sessions() as session:
        wallet = await balances.wallet(session, "ana", "USD")
        hearts_entry = await session.get(JournalEntryRow, hearts.entry_id)
    assert (wallet.coins, wallet.coins_value_micros) == (235, 3_350_429)
    # the entry records the rates it used, so a later rate change cannot rewrite it
    assert hearts_entry is not None
    assert hearts_entry.rates == {
        "diamonds_per_coin": "1",
        "diamond_value": "5000 micro-USD",
        "weighted_average": "1425714 of 4918714 micro-USD for 100 of 345 coins",
    }

    # During the hold, nothing is released: not by the job, not by Bo looking.
    assert await release_due(sessions) == 0
    assert await release_due(sessions, creator_id="bo") == 0
    assert await balance(sessions, "creator:bo:diamonds:pending") == 105
    assert await balance(sessions, "creator:bo:diamonds:available") == 0

    # After the hold, Bo looks at his earnings: what is due is released as he reads.
    async with sessions() as session:
        wait_s = await session.scalar(
            text(
                "SELECT greatest(0, extract(epoch FROM max(release_at) - clock_timestamp()))"
                " FROM gift"
            )
        )
    await asyncio.sleep(float(wait_s) + 0.05)
    assert await release_due(sessions, creator_id="bo") == 2
    async with sessions() as session:
        bo = await creator_balances(session, "bo", "USD")
        totals = await stream_totals(session, stream.id)
    assert (bo.diamonds_pending, bo.diamonds_available, bo.diamonds_reserved) == (0, 105, 0)
    assert bo.payable_micros == 525_000
    assert (totals.gift_count, totals.coins, totals.diamonds, totals.gifters) == (2, 105, 105, 1)
    assert await release_due(sessions) == 0  # the job finds nothing left to release

    # The books, as finance reads them (micro-units: 1 USD = 1,000,000).
    assert await balance(sessions, "user:ana:coins_value") == 3_350_429
    assert await balance(sessions, "platform:revenue:gifts") == 972_000
    assert await balance(sessions, "platform:revenue:features") == 142_571
    assert await balance(sessions, "creator:bo:payable") == 525_000
    assert await balance(sessions, "platform:expense:promotions") == 0
    assert 3_350_429 + 972_000 + 142_571 + 525_000 == 4_990_000
    assert await balance(sessions, "platform:clearing:paypal:USD") == 4_990_000 - 660_000
    # coins:spent is credited with what is spent: it offsets coins:issued (350 debited), and
    # the two net to the 235 coins still in wallets
    assert await balance(sessions, "platform:coins:spent") == -115
    assert await balance(sessions, "platform:diamonds:issued") == 105

    async with sessions() as session:
        trial = await reports.trial_balance(session)
        kinds = (await session.scalars(select(JournalEntryRow.kind).order_by("id"))).all()
    assert trial.balanced
    assert {t.commodity: (t.debit, t.credit) for t in trial.totals} == {
        "COIN": (350, 235 + 115),
        "DIAMOND": (105, 105),
        "USD": (4_330_000 + 660_000, 3_350_429 + 972_000 + 142_571 + 525_000),
    }
    assert kinds == ["purchase", "gift", "gift", "feature", "hold_release"]
    async with sessions() as session:
        report = await integrity.check_integrity(session)
    assert report.ok, report.violations
