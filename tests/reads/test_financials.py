"""The balance sheet, the income statement and the roll-forwards, told as a month of books.

Every figure below is in micro-units (1 USD = 1,000,000; EUR likewise), coins or diamonds.

**Before t1.** Ana buys 350 coins for $4.99 through PayPal (PayPal keeps 3.49% + $0.49 =
$0.664151, so 66 cents) and 500 coins for EUR 4.99 by card (the network keeps 2.9% + EUR 0.25 =
EUR 0.39471, so 39 euro cents), worth 4,990,000 x 1.08 = 5,389,200 at the seeded rate. She holds
850 coins worth 4,990,000 + 5,389,200 = 10,379,200. Support refunds the PayPal purchase at once:
the 350 coins go back, releasing her weighted average 350 x 10,379,200 / 850 = 4,273,788.24, so
4,273,788; PayPal is paid back the whole 4,990,000 and keeps its fee, and the difference
4,990,000 - 4,273,788 = 716,212 is contra revenue (refunds). Ana holds 500 coins worth
10,379,200 - 4,273,788 = 6,105,412.

So at t1, in USD: PayPal clearing 4,990,000 - 660,000 - 4,990,000 = -660,000 (an asset below
zero: we owe PayPal its fee back); deferred revenue 6,105,412; FX trading USD holds the
5,389,200 debit of the conversion (equity -5,389,200); the result to date is -660,000 of
processor fees - 716,212 of refunds = -1,376,212; and 6,105,412 - 5,389,200 - 1,376,212 =
-660,000 = assets. In EUR: card clearing 4,990,000 - 390,000 = 4,600,000 = FX trading EUR's
4,990,000 credit less 390,000 of fees.

**From t1 to t2.** Bo goes live (holds of zero). Ana sends him Hand Hearts (100 coins):
100 x 6,105,412 / 500 = 1,221,082.4, so 1,221,082 released; 100 diamonds worth 500,000 to Bo,
721,082 of gift revenue; Ana keeps 400 coins worth 4,884,330. She unlocks the cat sticker pack
(10 coins): 10 x 4,884,330 / 400 = 122,108.25, so 122,108 of feature revenue; she keeps 390
coins worth 4,762,222.

Eve buys 350 coins for $4.99 by card (2.9% + 30c = 44.471c, so 440,000 of fees) and sends Bo
Hand Hearts: 100 x 4,990,000 / 350 = 1,425,714.29, so 1,425,714 released, 500,000 to Bo,
925,714 of gift revenue; she keeps 250 coins worth 3,564,286. Bo's diamonds leave the hold.
Eve's card owner disputes the charge (with a $15.00 fee): the 250 coins she holds go back with
all their value 3,564,286; the 100 spent coins were a gift out of its hold, so nothing is
clawed back from Bo and the loss is 4,990,000 x 100 / 350 = 1,425,714.29, so 1,425,714, on
Eve's receivable; contra revenue 4,990,000 - 3,564,286 - 1,425,714 = 0. Card clearing pays
back 4,990,000 and the 15,000,000 fee.

Cy buys 7,000 coins for $94.99 by card (2.9% = 2.75471, rounded to 2.75, + 30c: 3,050,000 of
fees) and sends Bo two Galaxies (2,000 coins): 2,000 x 94,990,000 / 7,000 = 27,140,000
released exactly, 2,000 diamonds worth 10,000,000 to Bo, 17,140,000 of gift revenue; Cy keeps
5,000 coins worth 67,850,000. Bo's 2,200 diamonds are available, his payable 11,000,000. He is
paid out 2,000 diamonds: $10.00 sent, then paid from the bank (nothing has settled into the
bank yet, so the bank account reads -10,000,000).

**At t2**, in USD: card clearing 4,990,000 - 440,000 - 4,990,000 - 15,000,000 + 94,990,000 -
3,050,000 = 76,500,000; PayPal clearing -660,000; bank -10,000,000; receivables 1,425,714:
assets 67,265,714. Deferred revenue 4,762,222 (Ana) + 0 (Eve) + 67,850,000 (Cy) = 72,612,222;
creator payable 1,000,000: liabilities 73,612,222. Equity: FX trading -5,389,200. Revenue:
gifts 721,082 + 925,714 + 17,140,000 = 18,786,796, features 122,108, less refunds 716,212:
18,192,692; expenses: processor fees 660,000 + 440,000 + 3,050,000 = 4,150,000, dispute fees
15,000,000: 19,150,000; result to date -957,308. And 73,612,222 - 5,389,200 - 957,308 =
67,265,714. Coins outstanding: 390 + 0 + 5,000 = 5,390 (issued 350 + 500 - 350 + 350 - 250 +
7,000 = 7,600, spent 100 + 10 + 100 + 2,000 = 2,210). Diamonds: 200 available.

The roll-forwards from t1 to t2 follow below, each line with its own sum.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.gifts.holds import release_due
from accounting.gifts.posting import GiftRequest
from accounting.gifts.service import FeatureRequest, GiftService
from accounting.gifts.streams import start_stream
from accounting.ledger.posting import in_transaction
from accounting.payouts.rules import PayoutPhase
from accounting.purchases.service import PurchaseRequest, PurchaseService
from accounting.reads import financials
from accounting.reads.financials import (
    AccountFigure,
    BalanceSheet,
    IncomeStatement,
    ReportLine,
    RollForward,
)
from accounting.refunds.service import RefundPolicy, RefundRequest, refund_purchase
from tests.chargebacks.deliveries import deliver, dispute, reference_of
from tests.payouts.support import advance, earn, make_ready, payout_service

MICROSECOND = timedelta(microseconds=1)


async def clock(sessions: async_sessionmaker[AsyncSession]) -> datetime:
    async with sessions() as session:
        found: datetime | None = await session.scalar(select(func.clock_timestamp()))
    assert found is not None
    return found


async def buy(
    purchases: PurchaseService, user: str, package: str, currency: str, provider: str
) -> int:
    result = await purchases.purchase_coins(
        PurchaseRequest(user, uuid.uuid4().hex, currency, "web", provider, "tok_success",
                        package_code=package)
    )  # fmt: skip
    assert result.purchase.status == "completed"
    return result.purchase.id


def amounts(lines: list[ReportLine]) -> dict[tuple[str, str], int]:
    return {(line.code, line.commodity): line.amount for line in lines}


def flows(report: RollForward) -> dict[str, int]:
    return {line.code: line.amount for line in report.lines}


async def a_month_of_books(
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
    client: httpx.AsyncClient,
) -> tuple[datetime, datetime, datetime]:
    """The story of the module's docstring; returns t0 (before it), t1 and t2."""
    t0 = await clock(sessions)
    paypal = await buy(purchases, "ana", "coins_350", "USD", "paypal")
    await buy(purchases, "ana", "coins_500", "EUR", "card")
    await refund_purchase(
        sessions,
        RefundRequest(paypal, "refund-ana-paypal", "user:sam", "bought by mistake"),
        policy=RefundPolicy(),
        functional_currency="USD",
    )
    t1 = await clock(sessions)

    gifts = GiftService(sessions, functional_currency="USD", hold=timedelta(0))
    stream = await in_transaction(sessions, lambda s: start_stream(s, "bo", "Bo plays piano"))
    await gifts.send_gift(GiftRequest("ana", "ana-hearts-0001", stream.id, "hand_hearts", 1))
    await gifts.unlock_feature(FeatureRequest("ana", "ana-sticker-001", "sticker_pack_cats"))
    eve = await buy(purchases, "eve", "coins_350", "USD", "card")
    await gifts.send_gift(GiftRequest("eve", "eve-hearts-0001", stream.id, "hand_hearts", 1))
    await release_due(sessions, creator_id="bo")
    event = dispute(await reference_of(sessions, eve), amount=499, fee=1_500)
    response = await deliver(client, "card", event)
    assert response.json()["outcome"] == "charged_back", response.text

    await earn(sessions, purchases, "bo", 2, viewer="cy")
    bo = await make_ready(sessions, "bo")
    payouts = payout_service(sessions)
    payout = (await payouts.request_payout(bo.request("bo-payout-0001", 2_000))).payout
    assert await advance(payouts, payout.id, PayoutPhase.SENT) == "sent"
    assert await advance(payouts, payout.id, PayoutPhase.PAID) == "paid"
    t2 = await clock(sessions)
    return t0, t1, t2


def check_sheet_at_t2(sheet: BalanceSheet) -> None:
    assert amounts(sheet.lines) == {
        ("assets:clearing:card", "EUR"): 4_600_000,
        ("assets:clearing:card", "USD"): 76_500_000,
        ("assets:clearing:paypal", "USD"): -660_000,
        ("assets:bank", "USD"): -10_000_000,
        ("assets:receivables", "USD"): 1_425_714,
        ("liabilities:deferred_revenue", "USD"): 72_612_222,
        ("liabilities:creator_payable", "USD"): 1_000_000,
        ("equity:fx_trading", "EUR"): 4_990_000,
        ("equity:fx_trading", "USD"): -5_389_200,
        ("memo:coins_outstanding", "COIN"): 5_390,
        ("memo:coins_issued", "COIN"): 7_600,
        ("memo:coins_spent", "COIN"): -2_210,
        ("memo:diamonds_available", "DIAMOND"): 200,
        ("memo:diamonds_issued", "DIAMOND"): 2_200,
        ("memo:diamonds_redeemed", "DIAMOND"): -2_000,
    }
    assert amounts(sheet.result) == {
        ("result:to_date", "EUR"): -390_000,
        ("result:to_date", "USD"): -957_308,
    }
    checks = {check.commodity: check for check in sheet.checks}
    usd = checks["USD"]
    assert (usd.assets, usd.liabilities, usd.equity, usd.result) == (
        67_265_714,
        73_612_222,
        -5_389_200,
        -957_308,
    )
    eur = checks["EUR"]
    assert (eur.assets, eur.liabilities, eur.equity, eur.result) == (
        4_600_000,
        0,
        4_990_000,
        -390_000,
    )
    assert sheet.balanced and set(checks) == {"COIN", "DIAMOND", "EUR", "USD"}
    sources = {(line.code, line.commodity): line.sources for line in sheet.lines}
    assert sources[("liabilities:deferred_revenue", "USD")] == ("user:*:coins_value",)
    assert sources[("assets:clearing:card", "EUR")] == ("platform:clearing:card:EUR",)


def check_income_statement(statement: IncomeStatement) -> None:
    assert amounts(statement.revenue) == {
        ("revenue:features", "USD"): 122_108,
        ("revenue:gifts", "USD"): 18_786_796,
        ("revenue:less_refunds", "USD"): -716_212,
    }
    assert amounts(statement.expenses) == {
        ("expenses:processor_fees", "EUR"): 390_000,
        ("expenses:dispute_fees", "USD"): 15_000_000,
        ("expenses:processor_fees", "USD"): 4_150_000,
    }
    assert amounts(statement.result) == {
        ("result:to_date", "EUR"): -390_000,
        ("result:to_date", "USD"): -957_308,
    }


def check_roll_forwards(reports: list[RollForward]) -> None:
    """Deferred revenue: 6,105,412 + purchases (Eve 4,990,000 + Cy 94,990,000 = 99,980,000)
    - gifts (1,221,082 + 1,425,714 + 27,140,000 = 29,786,796) - features 122,108 - the
    chargeback's 3,564,286 = 72,612,222. Creator payable: 0 + 11,000,000 earned - 10,000,000 paid
    out = 1,000,000. Coins: 500 + 7,350 bought - 2,200 on gifts - 10 on features - 250 charged
    back = 5,390. Diamonds: 0 + 2,200 earned - 2,000 redeemed = 200 (the hold releases and the
    payout's reservation move diamonds between Bo's states: no line)."""
    by_code = {report.code: report for report in reports}
    deferred = by_code["deferred_revenue"]
    assert (deferred.commodity, deferred.opening, deferred.closing) == (
        "USD",
        6_105_412,
        72_612_222,
    )
    assert flows(deferred) == {
        "purchases": 99_980_000,
        "released_by_gifts": -29_786_796,
        "released_by_features": -122_108,
        "refunds": 0,
        "chargebacks": -3_564_286,
        "disputes_won": 0,
        "breakage": 0,
    }
    payable = by_code["creator_payable"]
    assert (payable.opening, payable.closing) == (0, 1_000_000)
    assert flows(payable) == {
        "earned": 11_000_000,
        "paid_out": -10_000_000,
        "failed_payouts": 0,
        "returned_payouts": 0,
        "clawed_back": 0,
        "disputes_won": 0,
    }
    coins = by_code["coins_outstanding"]
    assert (coins.commodity, coins.opening, coins.closing) == ("COIN", 500, 5_390)
    assert flows(coins) == {
        "purchased": 7_350,
        "spent_on_gifts": -2_200,
        "spent_on_features": -10,
        "refunded": 0,
        "charged_back": -250,
        "disputes_won": 0,
    }
    diamonds = by_code["diamonds_outstanding"]
    assert (diamonds.commodity, diamonds.opening, diamonds.closing) == ("DIAMOND", 0, 200)
    assert flows(diamonds) == {
        "earned": 2_200,
        "redeemed": -2_000,
        "failed_payouts": 0,
        "returned_payouts": 0,
        "clawed_back": 0,
        "disputes_won": 0,
    }
    assert [report.not_explained for report in reports] == [0, 0, 0, 0]
    assert by_code["deferred_revenue"].lines[0].sources == ("purchase",)
    assert by_code["creator_payable"].lines[1].sources == ("payout:sent",)


async def test_a_month_of_books_read_as_finance_reads_them(
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
    client: httpx.AsyncClient,
) -> None:
    t0, t1, t2 = await a_month_of_books(sessions, purchases, client)
    async with sessions() as session:
        at_t1 = await financials.balance_sheet(session, "USD", t1)
        at_t2 = await financials.balance_sheet(session, "USD", t2)
        whole = await financials.income_statement(session, "USD", t0, t2)
        since_t1 = await financials.income_statement(session, "USD", t1, t2)
        rolled = await financials.roll_forwards(session, "USD", t1, t2)
        just_before_t2 = await financials.balance_sheet(session, "USD", t2 - MICROSECOND)

    assert amounts(at_t1.lines) == {
        ("assets:clearing:card", "EUR"): 4_600_000,
        ("assets:clearing:paypal", "USD"): -660_000,
        ("liabilities:deferred_revenue", "USD"): 6_105_412,
        ("equity:fx_trading", "EUR"): 4_990_000,
        ("equity:fx_trading", "USD"): -5_389_200,
        ("memo:coins_outstanding", "COIN"): 500,
        ("memo:coins_issued", "COIN"): 500,
    }
    assert amounts(at_t1.result) == {
        ("result:to_date", "EUR"): -390_000,
        ("result:to_date", "USD"): -1_376_212,
    }
    assert at_t1.balanced
    check_sheet_at_t2(at_t2)
    check_income_statement(whole)
    # From t1: gifts 18,786,796 + features 122,108 = 18,908,904 of revenue; processor fees
    # 440,000 + 3,050,000 = 3,490,000 and the dispute's 15,000,000 (18,490,000 of
    # expenses): a result of 18,908,904 - 18,490,000 = 418,904.
    assert amounts(since_t1.revenue) == {
        ("revenue:features", "USD"): 122_108,
        ("revenue:gifts", "USD"): 18_786_796,
    }
    assert amounts(since_t1.result) == {("result:to_date", "USD"): 418_904}
    check_roll_forwards(rolled)
    # Every closing figure is the balance sheet's just before t2 (the period excludes t2).
    closing = amounts(just_before_t2.lines)
    assert rolled[0].closing == closing[("liabilities:deferred_revenue", "USD")]
    assert rolled[1].closing == closing[("liabilities:creator_payable", "USD")]
    assert rolled[2].closing == closing[("memo:coins_outstanding", "COIN")]
    assert rolled[3].closing == closing[("memo:diamonds_available", "DIAMOND")]


# --- the pure rules ------------------------------------------------------------------------------


def test_every_account_of_the_chart_has_its_line_and_a_stranger_is_shown_unclassified() -> None:
    cases = {
        ("platform:clearing:mobile_wallet:GBP", "asset", "GBP"): "assets:clearing:mobile_wallet",
        ("platform:bank:USD", "asset", "USD"): "assets:bank",
        ("user:a.b-c:receivable", "asset", "USD"): "assets:receivables",
        ("user:ana:coins_value", "liability", "USD"): "liabilities:deferred_revenue",
        ("creator:bo:payable", "liability", "USD"): "liabilities:creator_payable",
        ("platform:payouts_in_transit:USD", "liability", "USD"): "liabilities:payouts_in_transit",
        ("platform:fx:JPY", "equity", "JPY"): "equity:fx_trading",
        ("platform:revenue:breakage", "revenue", "USD"): "revenue:breakage",
        ("platform:contra_revenue:chargebacks", "revenue", "USD"): "revenue:less_chargebacks",
        ("platform:expense:app_store_fees:EUR", "expense", "EUR"): "expenses:app_store_fees",
        ("platform:expense:fraud_losses", "expense", "USD"): "expenses:fraud_losses",
        ("user:ana:coins", "liability", "COIN"): "memo:coins_outstanding",
        ("creator:bo:diamonds:reserved", "liability", "DIAMOND"): "memo:diamonds_reserved",
        ("platform:suspense", "asset", "USD"): "assets:unclassified",
        ("platform:odd", "liability", "USD"): "liabilities:unclassified",
        ("platform:tokens", "equity", "COIN"): "memo:unclassified",
    }
    assert {key: financials.line_of(*key).code for key in cases} == cases


def test_an_unclassified_account_keeps_the_identity_and_is_never_dropped() -> None:
    figures = [
        AccountFigure("platform:bank:USD", "USD", "asset", 1, 700),
        AccountFigure("platform:suspense", "USD", "liability", -1, -200),
        AccountFigure("user:ana:coins_value", "USD", "liability", -1, -500),
    ]
    sheet = financials.build_balance_sheet(datetime.now(), "USD", figures)
    assert amounts(sheet.lines)[("liabilities:unclassified", "USD")] == 200
    assert sheet.lines[-1].sources == ("platform:suspense",)
    assert sheet.balanced


def test_a_movement_no_expected_line_explains_is_shown_and_a_gap_is_not_explained() -> None:
    subject = financials.SUBJECTS[1]
    report = financials.build_roll_forward(
        subject, "USD", 100, 1_000, {"gift": 500, "reversal": -50, "hold_release": 0}
    )
    assert flows(report)["other:reversal"] == -50
    assert "other:hold_release" not in flows(report)
    assert report.not_explained == 1_000 - 100 - 500 + 50
