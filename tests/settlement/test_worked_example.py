"""A month settled, told as finance would tell it (every figure worked out here, to the micro-unit).

Ana buys 7,000 coins for $94.99 by card. The ledger expects the card network to keep 2.9% of
9,499 cents = 275.471, rounded to 275 cents, plus 30: $3.05; so ``platform:clearing:card:USD``
holds 94.99 - 3.05 = $91.94 and the processor fees $3.05. She sends Bo four Galaxies (4,000
coins): Bo earns 4,000 diamonds, worth 4,000 x $0.005 = $20.00.

Cy buys 500 coins for EUR 4.99 by card: 2.9% of 499 = 14.471 -> 14 cents, plus EUR 0.25 =
EUR 0.39; the card's EUR clearing holds 4.99 - 0.39 = EUR 4.60.

Dee buys 350 coins for $4.99 by card (fee 44 cents: clearing + 4.55) and is refunded: the ledger
takes the $4.99 back from clearing (the provider keeps its fee). The card's USD clearing holds
91.94 + 4.55 - 4.99 = $91.50, and the bank nothing: had Bo been paid now, the bank would stand
at -$10.00.

The card's USD report: Ana's charge, fee $3.06 (a cent more than expected), net 91.93; Dee's
charge 4.99 - 0.44 = 4.55; Dee's refund -4.99; and a payout of 91.93 + 4.55 - 4.99 = $91.49 to
the bank. Every line matches; the cent goes to fees (3.05 + 0.44 + 0.01 = $3.50); clearing is
91.50 - 0.01 - 91.49 = 0; the bank holds $91.49. The EUR report: Cy's charge (net 4.60) and a
payout of EUR 4.60: the EUR bank holds 4.60, the EUR clearing 0.

Bo then asks for 2,000 diamonds: 2,000 x $0.005 = $10.00. Finance sends it (Bo's payable to
payouts in transit) and the bank pays it (in transit to the bank): the bank holds 91.49 - 10.00
= $81.49. The bank's confirmation of that payout matches its paid entry and posts nothing. The
bank never went below zero; no exception is open; the integrity check finds nothing."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.ledger import chart
from accounting.payouts.rules import PayoutPhase
from accounting.purchases.service import PurchaseService
from accounting.purchases.tables import PurchaseRow
from accounting.refunds.service import RefundPolicy, RefundRequest, refund_purchase
from accounting.settlement import reads, service
from accounting.settlement.service import ImportRequest, ImportResult
from tests.payouts.support import advance, earn, make_ready, payout_service
from tests.settlement.support import FINANCE, balance, buy, check_books, report

CLEARING_USD = chart.provider_clearing("card", "USD").code
CLEARING_EUR = chart.provider_clearing("card", "EUR").code
BANK_USD = chart.bank("USD").code
BANK_EUR = chart.bank("EUR").code
FEES_USD = chart.fee_expense("card", "USD").code
IN_TRANSIT = chart.payouts_in_transit("USD").code


async def settle(sessions: async_sessionmaker[AsyncSession], text: str) -> ImportResult:
    return await service.import_report(sessions, ImportRequest(text, FINANCE))


async def reference_of(sessions: async_sessionmaker[AsyncSession], user: str) -> str:
    async with sessions() as session:
        found = await session.scalar(
            select(PurchaseRow.provider_reference).where(PurchaseRow.user_id == user)
        )
    assert found is not None
    return found


async def test_a_month_of_sales_refunds_and_a_payout_settles_and_the_bank_never_goes_negative(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    bank_seen: list[int] = []

    async def bank_now() -> int:
        bank_seen.append(await balance(sessions, BANK_USD))
        return bank_seen[-1]

    await earn(sessions, purchases, "bo", 4, viewer="ana")
    ana = await reference_of(sessions, "ana")
    cy = await buy(purchases, "cy", "coins_500", currency="EUR")
    dee = await buy(purchases, "dee", "coins_350")
    await refund_purchase(
        sessions,
        RefundRequest(dee.purchase_id, "refund-dee-000001", "user:sam", "bought by mistake"),
        policy=RefundPolicy(),
        functional_currency="USD",
    )
    assert await balance(sessions, CLEARING_USD) == 91_500_000
    assert await balance(sessions, CLEARING_EUR) == 4_600_000
    assert await balance(sessions, FEES_USD) == 3_490_000  # 3.05 + 0.44
    assert await bank_now() == 0

    usd = await settle(
        sessions,
        report(
            "card-2026-11-usd",
            "card",
            (ana, "charge", "94.99", "3.06", "91.93", "USD"),
            (dee.reference, "charge", "4.99", "0.44", "4.55", "USD"),
            (dee.reference, "refund", "-4.99", "0.00", "-4.99", "USD"),
            ("po_nov_usd", "payout", "-91.49", "0.00", "-91.49", "USD"),
        ),
    )
    assert [(x.status, x.difference_micros) for x in usd.lines] == [
        ("matched", 10_000),
        ("matched", 0),
        ("matched", 0),
        ("bank_transfer", 0),
    ]
    eur = await settle(
        sessions,
        report(
            "card-2026-11-eur",
            "card",
            (cy.reference, "charge", "4.99", "0.39", "4.60", "EUR"),
            ("po_nov_eur", "payout", "-4.60", "0.00", "-4.60", "EUR"),
        ),
    )
    assert usd.exceptions == [] and eur.exceptions == []
    assert await balance(sessions, CLEARING_USD) == 0
    assert await balance(sessions, FEES_USD) == 3_500_000
    assert await bank_now() == 91_490_000
    assert (await balance(sessions, CLEARING_EUR), await balance(sessions, BANK_EUR)) == (
        0,
        4_600_000,
    )

    bo = await make_ready(sessions, "bo")
    payouts = payout_service(sessions)
    payout = (await payouts.request_payout(bo.request("bo-november-payout", 2_000))).payout
    assert payout.amount_micros == 10_000_000
    assert await advance(payouts, payout.id, PayoutPhase.SENT) == "sent"
    assert await balance(sessions, IN_TRANSIT) == 10_000_000  # owed until the bank pays it
    assert await bank_now() == 91_490_000
    assert await advance(payouts, payout.id, PayoutPhase.PAID) == "paid"
    assert await bank_now() == 81_490_000

    confirmed = await settle(
        sessions,
        report(
            "bank-2026-11-usd",
            "bank",
            (str(payout.id), "creator_payout", "-10.00", "0.00", "-10.00", "USD"),
        ),
    )
    assert [(x.status, x.difference_micros) for x in confirmed.lines] == [("matched", 0)]
    assert confirmed.exceptions == [] and confirmed.report.entry_id is None
    assert await bank_now() == 81_490_000

    assert min(bank_seen) == 0 and bank_seen[-1] == 81_490_000
    async with sessions() as session:
        assert await reads.open_exception_count(session) == 0
    await check_books(sessions)
