"""Worked examples, told as a user and a finance team would tell them.

Ana buys 350 coins for $4.99 through PayPal on the web. PayPal keeps 3.49% + $0.49 (66 cents).
She then buys 500 coins for EUR 4.99 with a card while travelling; the card network keeps
2.9% + EUR 0.25 (39 cents), and the value converts to dollars at the seeded rate 1.08.
Her next card is declined: nothing happens to her wallet. Then her phone loses the connection
in the middle of buying 70 coins on the web: the provider took the money but never answered.
The purchase stays pending until the settlement job asks the provider, and then it is granted
exactly once, even though Ana retried in the meantime.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting import balances, integrity, reports
from accounting.purchases import PurchaseRequest, PurchaseService


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
