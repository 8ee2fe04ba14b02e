"""A whole month of the books, settled, recognised and closed, told as finance would tell it.

Every instant below is a fixed one inside last month ("M", in UTC); the database's clock is
set to it before each step (``clock`` below), so the services date their entries exactly
there. Money is in micro-units (1 USD = 1,000,000); debit positive.

**Sales.** On M's 2nd Ana buys 7,000 coins for $94.99 by card. The ledger expects the card
network to keep 2.9% of 9,499 cents = 275.471, so 275 cents, plus 30: $3.05; card clearing
(USD) takes 94.99 - 3.05 = $91.94. On the 3rd Cy buys 500 coins for EUR 4.99 by card: 2.9% of
499 = 14.471, so 14 cents, plus EUR 0.25 = EUR 0.39 of fees; card clearing (EUR) takes EUR 4.60;
the value converts at the seeded 1.08: 4,990,000 x 1.08 = 5,389,200 micro-dollars, through the
trading accounts (``fx:EUR`` credited 4,990,000 EUR, ``fx:USD`` debited 5,389,200 USD). On the
4th Dee buys 350 coins for $4.99 (fee 14 + 30 = 44 cents; clearing 4.55) and on the 5th she is
refunded: the $4.99 leaves clearing, her whole 4,990,000 of value is released, so the refunds'
contra revenue takes 4.99 - 4.99 = 0. On the 7th Fay and on the 8th Eve buy 350 coins for
$4.99 each (each: clearing 4.55, fees 0.44).

Card clearing (USD) then holds 91.94 + 4.55 - 4.99 + 4.55 + 4.55 = $100.60, the card's USD fees
3.05 + 3 x 0.44 = $4.37, and the bank nothing.

**Gifts.** On the 6th Bo goes live and Ana sends him four Galaxies (4,000 coins; no hold):
4,000 of her 7,000 coins release 94,990,000 x 4,000 / 7,000 = 54,280,000 exactly; Bo earns
4,000 diamonds worth 4,000 x 5,000 = 20,000,000 payable; the platform keeps 54,280,000 -
20,000,000 = 34,280,000 of gift revenue. Ana keeps 3,000 coins worth 94,990,000 - 54,280,000 =
40,710,000.

**Settlement.** On the 10th finance imports the card's USD report, its lines settled on the
3rd to the 9th (so its period runs from the 3rd 00:00 to the 10th 00:00):

    Ana's charge    94.99  fee 3.06  net 91.93  matched, a cent more fee: 91.94 - 91.93 = 0.01
    Dee's charge     4.99  fee 0.44  net  4.55  matched
    Dee's refund    -4.99  fee 0.00  net -4.99  matched
    Eve's charge     4.49  fee 0.44  net  4.05  AMOUNT MISMATCH: the ledger's gross is 4.99;
                                                clearing holds 4.55 - 4.05 = 0.50 unpaid
    ch_ghost         2.00  fee 0.36  net  1.64  MISSING IN LEDGER: -1.64 (paid, unknown to us)
    payout to bank -97.18                       91.93 + 4.55 - 4.99 + 4.05 + 1.64 = 97.18

and Fay's purchase (the 7th, inside the period, card, USD) is in no line: MISSING IN REPORT, for
the 4.55 it left in clearing. The import posts one entry: the bank +97.18 from clearing, and
the matched cent of fee. Clearing: 100.60 - 97.18 - 0.01 = $3.41 (= Fay's 4.55 + Eve's 0.50 -
the ghost's 1.64); fees 4.37 + 0.01 = $4.38; the bank $97.18.

**Payouts.** Bo (verified, a second factor, a bank account) is paid 2,000 diamonds, $10.00,
twice: the first requested and sent on the 11th, paid on the 12th (bank 97.18 - 10.00 =
$87.18); the second requested and sent on the 13th, paid on the 14th (bank $77.18); on the 20th
the bank returns the second: the bank $87.18 again, Bo owed 20.00 - 10.00 - 10.00 + 10.00 =
$10.00 and holding 2,000 available diamonds; 2,000 redeemed (the first payout's).

**A partial dispute.** On the 16th the card network disputes $2.00 of Eve's $4.99 (200 of 499
cents) with a $15.00 fee. The share, rounded against Eve: coins ceil(350 x 200 / 499) =
ceil(140.28) = 141; value ceil(4,990,000 x 200 / 499) = 2,000,000 exactly. Her wallet holds all
350 coins, so the 141 come back from it with its weighted average, 4,990,000 x 141 / 350 =
2,010,257.14, so 2,010,257; nothing was spent, no diamond is clawed. The rest balances the
entry as chargebacks' contra revenue: 2,000,000 - 2,010,257 = -10,257 (a credit). Cash:
2,000,000 and the 15,000,000 fee leave card clearing: 3.41 - 2.00 - 15.00 = -$13.59 (the
network will net it from its next payout). Eve keeps 209 coins worth 4,990,000 - 2,010,257 =
2,979,743.

**Breakage.** On the 28th finance runs breakage as of the 27th under a 22-day policy: the
cut-off is the 28th 00:00 less 22 days, the 6th 00:00. Cy's wallet last moved on the 3rd: its
5,389,200 moves to breakage revenue. Ana's moved on the 6th 20:00, Fay's on the 7th, Eve's on
the 16th: not dormant; Dee's holds no value.

**The close.** On the 1st of the next month (N) finance closes M: refused, three exceptions are
open. Finance accepts the ghost (chased with the network) and Fay's missing line (in its next
report), and writes off Eve's $0.50 (clearing to the card's fees): that write-off is dated in N,
so M's figures below do not hold it. The close then seals the journal and the chain verifies.
On N's 3rd Fay's whole purchase is disputed (with a $15.00 fee): the chargeback posts in N,
referencing her purchase of M's 7th, and M's books are what they were."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg
import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.breakage.rules import BreakagePolicy
from accounting.breakage.service import BreakageRequest, recognise_breakage
from accounting.close import reads as close_reads
from accounting.close.errors import UnresolvedExceptions
from accounting.close.service import CloseRequest, close_period
from accounting.gifts.holds import release_due
from accounting.gifts.posting import GiftRequest
from accounting.gifts.service import GiftService
from accounting.gifts.streams import start_stream
from accounting.ledger import balances, chart
from accounting.ledger.balances import creator_balances
from accounting.ledger.posting import in_transaction
from accounting.ledger.tables import JournalEntryRow
from accounting.payouts.rules import PayoutPhase
from accounting.purchases.service import PurchaseService
from accounting.reads import financials, reports
from accounting.refunds.service import RefundPolicy, RefundRequest, refund_purchase
from accounting.settlement import service as settlement
from accounting.settlement.rules import COLUMNS
from accounting.settlement.service import ResolutionRequest
from accounting.settlement.tables import ReconciliationExceptionRow
from api.database import libpq_url
from tests.chargebacks.deliveries import deliver, dispute
from tests.close.support import FINANCE, months_ago, name
from tests.conftest import GraphQLClient, drop_database, new_database, run_sync
from tests.payouts.support import advance, check_books, make_ready, payout_service
from tests.settlement.support import Bought, balance, buy

M = months_ago(1)
N = months_ago(0)
BANK = chart.bank("USD").code
CLEARING = chart.provider_clearing("card", "USD").code
CLEARING_EUR = chart.provider_clearing("card", "EUR").code
FEES = chart.fee_expense("card", "USD").code
IN_TRANSIT = chart.payouts_in_transit("USD").code


def on(day: int, hour: int, month: datetime = M) -> datetime:
    """``hour``:00 UTC on the ``day``-th of ``month``."""
    return month + timedelta(days=day - 1, hours=hour)


CLOCK = (
    "CREATE SCHEMA test_clock",
    "CREATE TABLE test_clock.instant (at timestamptz NOT NULL)",
    "INSERT INTO test_clock.instant VALUES ('{at}')",
    "CREATE FUNCTION test_clock.clock_timestamp() RETURNS timestamptz LANGUAGE sql VOLATILE"
    " AS 'SELECT at FROM test_clock.instant'",
    "CREATE FUNCTION test_clock.now() RETURNS timestamptz LANGUAGE sql STABLE"
    " AS 'SELECT at FROM test_clock.instant'",
    'ALTER DATABASE "{database}" SET search_path = test_clock, public, pg_catalog',
)
"""The database's clock, made settable: ``now()`` and ``clock_timestamp()`` ahead of
PostgreSQL's own on every connection's search path, reading one instant the test sets."""
DEFAULTS_NOW = (
    "SELECT c.relname, a.attname FROM pg_attrdef d"
    " JOIN pg_class c ON c.oid = d.adrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'"
    " JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum"
    " WHERE pg_get_expr(d.adbin, d.adrelid) IN ('now()', 'clock_timestamp()')"
)
"""The columns whose default is the time (bound to PostgreSQL's own clock when the table was
made): they default to the test's clock instead."""


async def install_clock(url: URL) -> None:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        for statement in CLOCK:
            await conn.execute(statement.format(at=on(1, 0).isoformat(), database=url.database))
        for table, column in await conn.fetch(DEFAULTS_NOW):
            await conn.execute(
                f'ALTER TABLE "{table}" ALTER COLUMN "{column}" SET DEFAULT test_clock.now()'
            )
    finally:
        await conn.close()


@pytest.fixture
def db_url(server_url: URL, template_url: URL) -> Iterator[URL]:
    """This test's database, its clock at M's 1st 00:00 before anything connects to it."""
    url = new_database(server_url, template_url)
    run_sync(lambda: install_clock(url))
    yield url
    drop_database(server_url, url)


@dataclass
class Clock:
    conn: asyncpg.Connection

    async def set(self, at: datetime) -> None:
        await self.conn.execute("UPDATE test_clock.instant SET at = $1", at)


@pytest.fixture
async def clock(db_url: URL) -> AsyncIterator[Clock]:
    conn = await asyncpg.connect(libpq_url(db_url))
    try:
        yield Clock(conn)
    finally:
        await conn.close()


async def refund(sessions: async_sessionmaker[AsyncSession], bought: Bought) -> None:
    """Support refunds ``bought`` (unspent, inside the window): the whole price back."""
    await refund_purchase(
        sessions,
        RefundRequest(bought.purchase_id, "refund-dee-0001", "user:sam", "bought by mistake"),
        policy=RefundPolicy(),
        functional_currency="USD",
    )


async def entry_keyed(sessions: async_sessionmaker[AsyncSession], key: str) -> JournalEntryRow:
    async with sessions() as session:
        row = await session.scalar(select(JournalEntryRow).where(JournalEntryRow.event_key == key))
    assert row is not None, key
    return row


def settlement_report(report_id: str, *lines: tuple[str, ...]) -> str:
    """A card report: the header, then one line per ``(reference, type, gross, fee, net,
    currency, settled_at)``."""
    rows = [",".join(COLUMNS)] + [",".join((report_id, "card", *line)) for line in lines]
    return "\n".join(rows) + "\n"


@dataclass
class Month:
    """The month's actors and what finance has seen of the bank after each cash step."""

    sessions: async_sessionmaker[AsyncSession]
    purchases: PurchaseService
    client: httpx.AsyncClient
    clock: Clock
    bank_seen: list[int] = field(default_factory=list)

    async def at(self, instant: datetime) -> None:
        await self.clock.set(instant)

    async def bank(self) -> int:
        """The bank after a cash step: never below zero."""
        seen = await balance(self.sessions, BANK)
        self.bank_seen.append(seen)
        assert seen >= 0, self.bank_seen
        return seen


@dataclass(frozen=True)
class Buyers:
    ana: Bought
    dee: Bought
    fay: Bought
    eve: Bought


async def sell_and_give(month: Month) -> Buyers:
    """M's 2nd to 8th: the purchases, Dee's refund, Ana's Galaxies to Bo (see the story)."""
    sessions, purchases = month.sessions, month.purchases
    await month.at(on(2, 10))
    ana = await buy(purchases, "ana", "coins_7000")
    assert await month.bank() == 0
    await month.at(on(3, 11))
    await buy(purchases, "cy", "coins_500", currency="EUR")
    await month.at(on(4, 12))
    dee = await buy(purchases, "dee", "coins_350")
    await month.at(on(5, 9))
    await refund(sessions, dee)
    assert await month.bank() == 0
    await month.at(on(6, 20))
    gifts = GiftService(sessions, functional_currency="USD", hold=timedelta(0))
    stream = await in_transaction(sessions, lambda s: start_stream(s, "bo", "Bo plays piano"))
    sent = (await gifts.send_gift(GiftRequest("ana", "ana-galaxies", stream.id, "galaxy", 4))).gift
    assert (sent.value_micros, sent.payable_micros) == (54_280_000, 20_000_000)
    assert await release_due(sessions, creator_id="bo") == 1
    await month.at(on(7, 15))
    fay = await buy(purchases, "fay", "coins_350")
    await month.at(on(8, 9))
    eve = await buy(purchases, "eve", "coins_350")
    # 91.94 + 4.55 - 4.99 + 4.55 + 4.55 = 100.60; fees 3.05 + 3 x 0.44 = 4.37
    assert await balance(sessions, CLEARING) == 100_600_000
    assert await balance(sessions, FEES) == 4_370_000
    assert (await balance(sessions, CLEARING_EUR), await month.bank()) == (4_600_000, 0)
    return Buyers(ana, dee, fay, eve)


async def settle(month: Month, buyers: Buyers) -> list[ReconciliationExceptionRow]:
    """M's 10th: the card's USD report, one of each exception; the bank is paid 97.18."""
    await month.at(on(10, 8))
    day = {d: on(d, 12).isoformat() for d in (3, 5, 6, 9)}
    text = settlement_report(
        f"card-{name(M)}-usd",
        (buyers.ana.reference, "charge", "94.99", "3.06", "91.93", "USD", day[3]),
        (buyers.dee.reference, "charge", "4.99", "0.44", "4.55", "USD", day[5]),
        (buyers.dee.reference, "refund", "-4.99", "0.00", "-4.99", "USD", day[6]),
        (buyers.eve.reference, "charge", "4.49", "0.44", "4.05", "USD", day[9]),
        ("ch_ghost", "charge", "2.00", "0.36", "1.64", "USD", day[9]),
        (f"po_{name(M)}_usd", "payout", "-97.18", "0.00", "-97.18", "USD", day[9]),
    )
    imported = await settlement.import_report(
        month.sessions, settlement.ImportRequest(text, FINANCE)
    )
    assert (imported.report.period_start, imported.report.period_end) == (on(3, 0), on(10, 0))
    assert [(x.status, x.difference_micros) for x in imported.lines] == [
        ("matched", 10_000),  # 91.94 expected in clearing, 91.93 paid: a cent more fee
        ("matched", 0),
        ("matched", 0),
        ("amount_mismatch", 500_000),  # 4.55 in clearing, 4.05 paid
        ("missing_in_ledger", -1_640_000),  # paid 1.64 the ledger never had
        ("bank_transfer", 0),
    ]
    fay_entry = await entry_keyed(month.sessions, f"purchase:{buyers.fay.purchase_id}")
    assert [
        (x.kind, x.provider_reference, x.ledger_entry_id, x.difference_micros)
        for x in imported.exceptions
    ] == [
        ("amount_mismatch", buyers.eve.reference, imported.lines[3].ledger_entry_id, 500_000),
        ("missing_in_ledger", "ch_ghost", None, -1_640_000),
        ("missing_in_report", buyers.fay.reference, fay_entry.id, 4_550_000),
    ]
    # clearing 100.60 - 97.18 - 0.01 = 3.41; fees 4.37 + 0.01 = 4.38; the bank 97.18
    assert await balance(month.sessions, CLEARING) == 3_410_000
    assert await balance(month.sessions, FEES) == 4_380_000
    assert await month.bank() == 97_180_000
    return imported.exceptions


async def pay_bo(month: Month) -> None:
    """Bo is paid $10.00 twice (the 11th/12th, the 13th/14th); the bank returns the second on
    the 20th."""
    await month.at(on(11, 9))
    bo = await make_ready(month.sessions, "bo")
    payouts = payout_service(month.sessions)
    paid: list[int] = []
    for n, (requested, cleared) in enumerate(((11, 12), (13, 14)), start=1):
        await month.at(on(requested, 10))
        payout = (await payouts.request_payout(bo.request(f"bo-payout-{n}", 2_000))).payout
        assert payout.amount_micros == 10_000_000  # 2,000 x $0.005
        await month.at(on(requested, 11))
        assert await advance(payouts, payout.id, PayoutPhase.SENT) == "sent"
        assert await balance(month.sessions, IN_TRANSIT) == 10_000_000
        await month.at(on(cleared, 10))
        assert await advance(payouts, payout.id, PayoutPhase.PAID) == "paid"
        assert await month.bank() == 97_180_000 - n * 10_000_000  # 87.18, then 77.18
        paid.append(payout.id)
    await month.at(on(20, 10))
    returned = await advance(payouts, paid[1], PayoutPhase.RETURNED, "account closed")
    assert returned == "returned"
    assert await month.bank() == 87_180_000  # 77.18 + 10.00
    async with month.sessions() as session:
        bo_now = await creator_balances(session, "bo", "USD")
    assert (bo_now.diamonds_available, bo_now.diamonds_reserved, bo_now.payable_micros) == (
        2_000,
        0,
        10_000_000,
    )


async def dispute_eve(month: Month, eve: Bought) -> None:
    """M's 16th: $2.00 of Eve's $4.99 disputed, with a $15.00 fee (see the story)."""
    await month.at(on(16, 14))
    reply = await deliver(month.client, "card", dispute(eve.reference, amount=200, fee=1_500))
    assert reply.json()["outcome"] == "charged_back", reply.text
    async with month.sessions() as session:
        wallet = await balances.wallet(session, "eve", "USD")
    assert (wallet.coins, wallet.coins_value_micros) == (209, 2_979_743)
    # 3.41 - 2.00 - 15.00: the network nets it from its next payout
    assert await balance(month.sessions, CLEARING) == -13_590_000
    assert await month.bank() == 87_180_000


async def break_cy(month: Month) -> None:
    """M's 28th: breakage as of the 27th, 22 days unused: Cy's wallet alone."""
    await month.at(on(28, 2))
    done = await recognise_breakage(
        month.sessions,
        BreakageRequest(on(27, 0).date(), FINANCE, f"breakage-{name(M)}"),
        policy=BreakagePolicy(after_days=22),
        functional_currency="USD",
    )
    assert done.cutoff == on(6, 0)
    assert [(w.user_id, w.value_micros) for w in done.wallets] == [("cy", 5_389_200)]


async def m_books(sessions: async_sessionmaker[AsyncSession]) -> dict[str, object]:
    """M's books as finance reads them: the trial balance at M's last microsecond (debit and
    credit totals per commodity), the balance sheet then, M's income statement and the
    roll-forwards of M, each as plain figures."""
    last = N - timedelta(microseconds=1)
    async with sessions() as session:
        trial = await reports.trial_balance(session, as_of=last)
        sheet = await financials.balance_sheet(session, "USD", as_of=last)
        income = await financials.income_statement(session, "USD", M, N)
        rolled = await financials.roll_forwards(session, "USD", M, N)
    assert trial.balanced and sheet.balanced

    def lines(found: list[financials.ReportLine]) -> dict[tuple[str, str], int]:
        return {(line.code, line.commodity): line.amount for line in found}

    return {
        "trial": {t.commodity: (t.debit, t.credit) for t in trial.totals},
        "sheet": lines(sheet.lines),
        "result": lines(sheet.result),
        "revenue": lines(income.revenue),
        "expenses": lines(income.expenses),
        "income": lines(income.result),
        "roll": {
            r.code: (r.opening, {line.code: line.amount for line in r.lines}, r.closing)
            for r in rolled
        },
        "unexplained": [r.not_explained for r in rolled],
    }


async def resolve(
    month: Month, exception: ReconciliationExceptionRow, action: str, why: str
) -> None:
    await settlement.resolve_exception(
        month.sessions,
        ResolutionRequest(exception.id, action, why, FINANCE, f"resolve-{exception.id}"),
    )


OPEN_EXCEPTIONS = "{ reconciliationExceptions { edges { node { kind providerReference } } } }"
CLOSE = """
mutation($input: ClosePeriodInput!) {
  closePeriod(input: $input) { closedPeriod { month } errors { code field } }
}"""


async def finance_sees_and_is_refused(month: Month, gql: GraphQLClient, buyers: Buyers) -> None:
    """N's 1st: finance reads M's three open exceptions (newest first) and asks to close M
    over GraphQL: refused, in the payload, nothing closed."""
    await month.at(on(1, 8, N))
    reply = await gql(OPEN_EXCEPTIONS, user="fiona", roles=("finance",))
    edges = reply["data"]["reconciliationExceptions"]["edges"]
    assert [(e["node"]["kind"], e["node"]["providerReference"]) for e in edges] == [
        ("MISSING_IN_REPORT", buyers.fay.reference),
        ("MISSING_IN_LEDGER", "ch_ghost"),
        ("AMOUNT_MISMATCH", buyers.eve.reference),
    ]
    reply = await gql(
        CLOSE,
        {"input": {"month": name(M), "reason": "month-end"}},
        user="fiona",
        roles=("finance",),
    )
    assert reply["data"]["closePeriod"] == {
        "closedPeriod": None,
        "errors": [{"code": "UNRESOLVED_RECONCILIATION_EXCEPTIONS", "field": "month"}],
    }
    async with month.sessions() as session:
        assert await close_reads.closed_periods(session) == []


async def close_m(month: Month, exceptions: list[ReconciliationExceptionRow]) -> int:
    """N's 1st: the close of M is refused while an exception is open (three, then one); the
    ghost and Fay's line are accepted, Eve's 0.50 written off (dated in N); then M closes,
    sealed, and the chain verifies. The id of the head it records."""
    await month.at(on(1, 9, N))
    close = CloseRequest(name(M), FINANCE, f"{name(M)} settled and reconciled")
    with pytest.raises(UnresolvedExceptions, match=r"^3 reconciliation exception"):
        await close_period(month.sessions, close)
    mismatch, ghost, missing = exceptions
    await resolve(month, ghost, "accept", "a test charge: the network reverses it next report")
    await resolve(month, missing, "accept", "settled on the next report")
    with pytest.raises(UnresolvedExceptions, match=r"^1 reconciliation exception"):
        await close_period(month.sessions, close)
    await resolve(month, mismatch, "write_off", "the network will not pay the 0.50")
    # the write-off: 0.50 from clearing to the card's fees, dated now, in N
    assert await balance(month.sessions, CLEARING) == -14_090_000  # -13.59 - 0.50
    assert await balance(month.sessions, FEES) == 4_880_000  # 4.38 + 0.50
    write_off = await entry_keyed(month.sessions, f"settlement_exception:{mismatch.id}:write_off")
    assert write_off.posted_at == on(1, 9, N)
    closed = await close_period(month.sessions, close)
    assert (closed.month, closed.period_end, closed.open_exceptions) == (M, N, 0)
    assert closed.head_entry_id == write_off.id
    async with month.sessions() as session:
        verified = await close_reads.verify_chain(session)
    # 5 purchases, a refund, a gift, its hold release, the settlement, 7 payout phases (two
    # requested, sent, paid; one returned), the dispute and its fee, breakage, the write-off
    assert (verified.intact, verified.entries_checked, verified.sealed) == (True, 20, 20)
    assert verified.head.entry_id == write_off.id
    return write_off.id


async def late_chargeback(month: Month, fay: Bought) -> None:
    """N's 3rd: Fay's whole $4.99 disputed, a $15.00 fee. Her purchase is in closed M: the
    chargeback posts in N, referencing it; her 350 coins come back with their 4,990,000."""
    await month.at(on(3, 10, N))
    late = dispute(fay.reference, amount=499, fee=1_500, dispute_id="dp_fay")
    reply = await deliver(month.client, "card", late)
    assert reply.json()["outcome"] == "charged_back", reply.text
    purchase = await entry_keyed(month.sessions, f"purchase:{fay.purchase_id}")
    chargeback = await entry_keyed(month.sessions, f"chargeback:{fay.purchase_id}")
    assert purchase.posted_at == on(7, 15) < N
    assert chargeback.posted_at == on(3, 10, N)
    assert chargeback.refs["purchase_id"] == fay.purchase_id
    async with month.sessions() as session:
        wallet = await balances.wallet(session, "fay", "USD")
    assert (wallet.coins, wallet.coins_value_micros) == (0, 0)
    # -14.09 - 4.99 - 15.00
    assert await balance(month.sessions, CLEARING) == -34_080_000


FIGURES_OF_M = {
    # Debits and credits per commodity at M's last microsecond.
    # COIN: issued is debited 7,000 + 500 + 350 + 350 + 350 = 8,550, less Dee's 350 refunded
    # and Eve's 141 clawed back: 8,059; credited are the spent 4,000 and the wallets
    # 3,000 (Ana) + 500 (Cy) + 350 (Fay) + 209 (Eve) = 4,059.
    # DIAMOND: issued debited 4,000; Bo's available 2,000 and redeemed 2,000 credited.
    # EUR: clearing 4,600,000 + fees 390,000 against fx:EUR 4,990,000.
    # USD debits: bank 87,180,000 + card fees 4,380,000 + dispute fees 15,000,000 + fx:USD
    # 5,389,200 = 111,949,200; credits: clearing 13,590,000 + deferred revenue 48,679,743
    # (below) + Bo's payable 10,000,000 + gifts 34,280,000 + breakage 5,389,200 + chargebacks'
    # contra revenue 10,257 = 111,949,200.
    "trial": {
        "COIN": (8_059, 8_059),
        "DIAMOND": (4_000, 4_000),
        "EUR": (4_990_000, 4_990_000),
        "USD": (111_949_200, 111_949_200),
    },
    # The balance sheet: assets debit-positive, liabilities and equity credit-positive, memo
    # lines read naturally (the offsets issued debit-normal, spent and redeemed credited); the
    # lines at zero (pending and reserved diamonds, payouts in transit) are not shown.
    # Deferred revenue: Ana 94,990,000 - 54,280,000 = 40,710,000, Fay 4,990,000, Eve
    # 2,979,743, Cy 0 (breakage), Dee 0 (refunded): 48,679,743.
    "sheet": {
        ("assets:bank", "USD"): 87_180_000,
        ("assets:clearing:card", "EUR"): 4_600_000,
        ("assets:clearing:card", "USD"): -13_590_000,
        ("equity:fx_trading", "EUR"): 4_990_000,
        ("equity:fx_trading", "USD"): -5_389_200,
        ("liabilities:creator_payable", "USD"): 10_000_000,
        ("liabilities:deferred_revenue", "USD"): 48_679_743,
        ("memo:coins_issued", "COIN"): 8_059,
        ("memo:coins_outstanding", "COIN"): 4_059,
        ("memo:coins_spent", "COIN"): -4_000,
        ("memo:diamonds_available", "DIAMOND"): 2_000,
        ("memo:diamonds_issued", "DIAMOND"): 4_000,
        ("memo:diamonds_redeemed", "DIAMOND"): -2_000,
    },
    # Result to date = M's result (the books began in M): 34,280,000 + 5,389,200 + 10,257 -
    # 4,380,000 - 15,000,000 = 20,299,457 USD, and -390,000 EUR of fees. The identity holds:
    # USD assets 87,180,000 - 13,590,000 = 73,590,000 = 58,679,743 - 5,389,200 + 20,299,457;
    # EUR 4,600,000 = 4,990,000 - 390,000.
    "result": {("result:to_date", "EUR"): -390_000, ("result:to_date", "USD"): 20_299_457},
    "revenue": {
        ("revenue:breakage", "USD"): 5_389_200,
        ("revenue:gifts", "USD"): 34_280_000,
        ("revenue:less_chargebacks", "USD"): 10_257,  # Eve's averaging difference, a credit
    },
    "expenses": {
        ("expenses:dispute_fees", "USD"): 15_000_000,
        ("expenses:processor_fees", "EUR"): 390_000,
        ("expenses:processor_fees", "USD"): 4_380_000,  # 3.05 + 3 x 0.44 + the cent
    },
    "income": {("result:to_date", "EUR"): -390_000, ("result:to_date", "USD"): 20_299_457},
    "roll": {
        # purchases 94,990,000 + 5,389,200 + 3 x 4,990,000 = 115,349,200; - 54,280,000 (the
        # Galaxies) - 4,990,000 (Dee) - 2,010,257 (Eve) - 5,389,200 (Cy) = 48,679,743
        "deferred_revenue": (
            0,
            {
                "purchases": 115_349_200,
                "released_by_gifts": -54_280_000,
                "released_by_features": 0,
                "refunds": -4_990_000,
                "chargebacks": -2_010_257,
                "disputes_won": 0,
                "breakage": -5_389_200,
            },
            48_679_743,
        ),
        # earned 20,000,000, two payouts of 10,000,000 sent, one returned: 10,000,000
        "creator_payable": (
            0,
            {
                "earned": 20_000_000,
                "paid_out": -20_000_000,
                "failed_payouts": 0,
                "returned_payouts": 10_000_000,
                "clawed_back": 0,
                "disputes_won": 0,
            },
            10_000_000,
        ),
        # 8,550 bought, 4,000 spent on the Galaxies, 350 refunded, 141 charged back: 4,059
        "coins_outstanding": (
            0,
            {
                "purchased": 8_550,
                "spent_on_gifts": -4_000,
                "spent_on_features": 0,
                "refunded": -350,
                "charged_back": -141,
                "disputes_won": 0,
            },
            4_059,
        ),
        # 4,000 earned, 2 x 2,000 redeemed, 2,000 back from the returned payout: 2,000
        "diamonds_outstanding": (
            0,
            {
                "earned": 4_000,
                "redeemed": -4_000,
                "failed_payouts": 0,
                "returned_payouts": 2_000,
                "clawed_back": 0,
                "disputes_won": 0,
            },
            2_000,
        ),
    },
    "unexplained": [0, 0, 0, 0],
}


async def test_a_month_sells_gives_settles_pays_out_breaks_and_closes(
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
    client: httpx.AsyncClient,
    gql: GraphQLClient,
    clock: Clock,
) -> None:
    month = Month(sessions, purchases, client, clock)
    buyers = await sell_and_give(month)
    exceptions = await settle(month, buyers)
    await pay_bo(month)
    await dispute_eve(month, buyers.eve)
    await break_cy(month)
    assert await m_books(sessions) == FIGURES_OF_M
    # the bank after each cash step: never below zero, 87.18 at the end
    assert month.bank_seen == [0, 0, 0, 97_180_000, 87_180_000, 77_180_000, 87_180_000, 87_180_000]

    await finance_sees_and_is_refused(month, gql, buyers)
    await close_m(month, exceptions)
    await late_chargeback(month, buyers.fay)
    assert await m_books(sessions) == FIGURES_OF_M  # M is closed: its books are what they were
    await check_books(sessions)
