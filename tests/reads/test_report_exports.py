"""Every report but the journal exported: the account statement, the balance sheet, the
income statement and the roll-forwards, as ``coinbooks export`` writes them (the HTTP exports
write the same files: tests/graphql/test_http_report_exports.py).

The book, in micro-units (1 USD = 1,000,000), coins and diamonds:

- Before t0 nothing. **Entry 1**: Ana buys 350 coins for $4.99 by card; the network keeps
  2.9% + 30c = 14.471c + 30c = 44.471c, rounded to 44c: card clearing holds 4,990,000 -
  440,000 = 4,550,000 ($4.55), Ana's coins are worth 4,990,000 (deferred revenue), and 440,000
  is a processor fee. Then t1.
- **Entry 2**: Ana sends Bo Hand Hearts (100 coins), releasing 100 x 4,990,000 / 350 =
  1,425,714.29, so 1,425,714 ($1.425714); Bo earns 100 diamonds worth 100 x 5,000 = 500,000
  ($0.50) on his payable; 1,425,714 - 500,000 = 925,714 is gift revenue. Ana holds 250 coins
  worth 4,990,000 - 1,425,714 = 3,564,286.
- **Entry 3**: she unlocks the cat sticker pack for 10 coins: 10 x 3,564,286 / 250 =
  142,571.44, so 142,571 of feature revenue; she holds 240 coins worth 3,564,286 - 142,571 =
  3,421,715. Then t2.

At t2: assets $4.55 (card clearing) = liabilities 500,000 + 3,421,715 = 3,921,715 + result
925,714 + 142,571 - 440,000 = 628,285; and 3,921,715 + 628,285 = 4,550,000. Coins: 350
issued, 100 + 10 = 110 spent, 240 outstanding; diamonds: 100 issued, 100 pending.

Amounts are decimal strings in the commodity's unit: money with at least its cents (``0.50``,
``0.00``), more digits only when the micro-units need them (``1.425714``); coins and diamonds
whole.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.gifts.posting import GiftRequest
from accounting.gifts.service import FeatureRequest, GiftService
from accounting.gifts.streams import start_stream
from accounting.ledger import chart
from accounting.ledger.entries import Entry, EntryKind, Posting
from accounting.ledger.posting import in_transaction, post_entry
from accounting.ledger.tables import JournalEntryRow
from accounting.purchases.service import PurchaseRequest, PurchaseService
from accounting.reads.export import ExportFormat
from api.exports import StatementRequest, statement_chunks

COINBOOKS = Path(sys.executable).parent / "coinbooks"
PURCHASE_OTHERS = (
    "platform:clearing:card:USD platform:coins:issued platform:expense:processor_fees:USD "
    "user:ana:coins_value"
)
GIFT_OTHERS = (
    "creator:bo:diamonds:pending creator:bo:payable platform:coins:spent "
    "platform:diamonds:issued platform:revenue:gifts user:ana:coins_value"
)
FEATURE_OTHERS = "platform:coins:spent platform:revenue:features user:ana:coins_value"


@dataclass(frozen=True, slots=True)
class Book:
    t0: str
    t1: str
    t2: str
    posted: tuple[str, str, str]
    """When entries 1, 2 and 3 were posted."""


async def clock(sessions: async_sessionmaker[AsyncSession]) -> str:
    async with sessions() as session:
        found: datetime | None = await session.scalar(select(func.clock_timestamp()))
    assert found is not None
    return found.isoformat()


async def book(sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService) -> Book:
    """The module's book, posted through the purchase, gift and feature flows."""
    t0 = await clock(sessions)
    bought = await purchases.purchase_coins(
        PurchaseRequest("ana", "report-ana-00001", "USD", "web", "card", "tok_success", "coins_350")
    )
    assert bought.purchase.status == "completed"
    t1 = await clock(sessions)
    gifts = GiftService(sessions, functional_currency="USD")
    stream = await in_transaction(sessions, lambda s: start_stream(s, "bo", "Bo plays piano"))
    await gifts.send_gift(GiftRequest("ana", "ana-hearts-0001", stream.id, "hand_hearts", 1))
    await gifts.unlock_feature(FeatureRequest("ana", "ana-sticker-001", "sticker_pack_cats"))
    t2 = await clock(sessions)
    async with sessions() as session:
        entries = (await session.scalars(select(JournalEntryRow).order_by("id"))).all()
    assert [e.kind for e in entries] == ["purchase", "gift", "feature"]
    first, second, third = (e.posted_at.isoformat() for e in entries)
    return Book(t0, t1, t2, (first, second, third))


def coins_statement(b: Book) -> str:
    """Ana's coins from t0 to t2: 0, +350, -100, -10; in 350, out 110, closing 240."""
    a, g, f = b.posted
    row = "user:ana:coins,COIN"
    return (
        "account_code,commodity,line,posted_at,entry_id,kind,amount,balance,counterparties,memo\r\n"
        f"{row},opening,{b.t0},,,,0,,\r\n"
        f"{row},movement,{a},1,purchase,350,350,{PURCHASE_OTHERS},350 coins bought through card\r\n"
        f"{row},movement,{g},2,gift,-100,250,{GIFT_OTHERS}"
        ",100 coins gifted to bo\r\n"
        f"{row},movement,{f},3,feature,-10,240,{FEATURE_OTHERS}"
        ",sticker_pack_cats unlocked for 10 coins\r\n"
        f"{row},total_in,,,,350,,,\r\n"
        f"{row},total_out,,,,-110,,,\r\n"
        f"{row},closing,{b.t2},,,,240,,\r\n"
    )


def balance_sheet(b: Book) -> str:
    """At t2, as the module's docstring adds it up."""
    return "".join(
        f"{b.t2},{line}\r\n"
        for line in (
            "assets,assets:clearing:card,Clearing: card,USD,4.55,platform:clearing:card:USD",
            "liabilities,liabilities:creator_payable,Creator payable,USD,0.50,creator:*:payable",
            "liabilities,liabilities:deferred_revenue,Deferred revenue (users' coins),USD,"
            "3.421715,user:*:coins_value",
            "memo,memo:coins_issued,Coins issued (offset),COIN,350,platform:coins:issued",
            "memo,memo:coins_outstanding,Coins outstanding,COIN,240,user:*:coins",
            "memo,memo:coins_spent,Coins spent (offset),COIN,-110,platform:coins:spent",
            "memo,memo:diamonds_issued,Diamonds issued (offset),DIAMOND,100,"
            "platform:diamonds:issued",
            'memo,memo:diamonds_pending,"Diamonds outstanding, pending",DIAMOND,100,'
            "creator:*:diamonds:pending",
            "result,result:to_date,Result to date,USD,0.628285,"
            "platform:expense:processor_fees:USD platform:revenue:features platform:revenue:gifts",
        )
    )


def income_statement(b: Book) -> str:
    """From t0 to t2: gifts 925,714 and features 142,571 less fees 440,000 = 628,285."""
    return "from,to,section,line,label,commodity,amount,sources\r\n" + "".join(
        f"{b.t0},{b.t2},{line}\r\n"
        for line in (
            "revenue,revenue:features,Revenue: features,USD,0.142571,platform:revenue:features",
            "revenue,revenue:gifts,Revenue: gifts,USD,0.925714,platform:revenue:gifts",
            "expenses,expenses:processor_fees,Expense: processor fees,USD,0.44,"
            "platform:expense:processor_fees:USD",
            "result,result:period,Result of the period,USD,0.628285,"
            "platform:expense:processor_fees:USD platform:revenue:features platform:revenue:gifts",
        )
    )


ROLL_FORWARDS = {
    # deferred revenue from t1 to t2: 4,990,000 - 1,425,714 - 142,571 = 3,421,715
    "deferred_revenue": [
        ("opening", "Deferred revenue: opening", "4.99", ""),
        ("purchases", "Purchases", "0.00", "purchase"),
        ("released_by_gifts", "Released by gifts", "-1.425714", "gift"),
        ("released_by_features", "Released by features", "-0.142571", "feature"),
        ("refunds", "Refunds", "0.00", "refund"),
        ("chargebacks", "Chargebacks", "0.00", "chargeback"),
        ("disputes_won", "Chargebacks undone (disputes won)", "0.00", "chargeback_won"),
        ("breakage", "Breakage", "0.00", "breakage"),
        ("not_explained", "Not explained by the period's entries", "0.00", ""),
        ("closing", "Deferred revenue: closing", "3.421715", ""),
    ],
    # creator payable: 0 + 500,000 earned
    "creator_payable": [
        ("opening", "Creator payable: opening", "0.00", ""),
        ("earned", "Earned by gifts", "0.50", "gift"),
        ("paid_out", "Paid out (payouts sent)", "0.00", "payout:sent"),
        ("failed_payouts", "Failed payouts returned", "0.00", "payout:failed"),
        ("returned_payouts", "Paid payouts the bank returned", "0.00", "payout:returned"),
        ("clawed_back", "Clawed back by chargebacks", "0.00", "chargeback"),
        ("disputes_won", "Claw-backs undone (disputes won)", "0.00", "chargeback_won"),
        ("not_explained", "Not explained by the period's entries", "0.00", ""),
        ("closing", "Creator payable: closing", "0.50", ""),
    ],
    # coins: 350 - 100 - 10 = 240
    "coins_outstanding": [
        ("opening", "Coins outstanding: opening", "350", ""),
        ("purchased", "Purchased (bonus included)", "0", "purchase"),
        ("spent_on_gifts", "Spent on gifts", "-100", "gift"),
        ("spent_on_features", "Spent on features", "-10", "feature"),
        ("refunded", "Refunded", "0", "refund"),
        ("charged_back", "Charged back", "0", "chargeback"),
        ("disputes_won", "Returned (disputes won)", "0", "chargeback_won"),
        ("not_explained", "Not explained by the period's entries", "0", ""),
        ("closing", "Coins outstanding: closing", "240", ""),
    ],
    # diamonds: 0 + 100 earned
    "diamonds_outstanding": [
        ("opening", "Diamonds outstanding: opening", "0", ""),
        ("earned", "Earned by gifts", "100", "gift"),
        ("redeemed", "Redeemed (payouts sent)", "0", "payout:sent"),
        ("failed_payouts", "Returned by failed payouts", "0", "payout:failed"),
        (
            "returned_payouts",
            "Returned by paid payouts the bank returned",
            "0",
            "payout:returned",
        ),
        ("clawed_back", "Clawed back by chargebacks", "0", "chargeback"),
        ("disputes_won", "Returned (disputes won)", "0", "chargeback_won"),
        ("not_explained", "Not explained by the period's entries", "0", ""),
        ("closing", "Diamonds outstanding: closing", "100", ""),
    ],
}
COMMODITY = {"coins_outstanding": "COIN", "diamonds_outstanding": "DIAMOND"}


def roll_forwards(b: Book) -> list[dict[str, str]]:
    """From t1 to t2, as JSON lines' records."""
    return [
        {
            "from": b.t1,
            "to": b.t2,
            "subject": subject,
            "line": line,
            "label": label,
            "commodity": COMMODITY.get(subject, "USD"),
            "amount": amount,
            "sources": sources,
        }
        for subject, lines in ROLL_FORWARDS.items()
        for line, label, amount, sources in lines
    ]


async def run_cli(db_url: URL, *args: str, expect: int = 0) -> tuple[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": db_url.render_as_string(hide_password=False),
        "COINBOOKS_ENVIRONMENT": "development",
    }
    process = await asyncio.create_subprocess_exec(
        str(COINBOOKS),
        "export",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == expect, err.decode()
    return out.decode(), err.decode()


async def test_the_cli_exports_an_account_statement_as_csv(
    db_url: URL,
    tmp_path: Path,
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
) -> None:
    b = await book(sessions, purchases)
    target = tmp_path / "statement.csv"
    args = ("--account", "user:ana:coins", "--from", b.t0, "--to", b.t2, "-o", str(target))
    _, progress = await run_cli(db_url, "statement", *args)
    assert target.read_bytes() == coins_statement(b).encode()
    assert f"Exported 7 row(s) to {target}\n" in progress
    assert "Statement of user:ana:coins 7 rows" in progress


async def test_a_statement_in_money_as_json_lines(
    db_url: URL, sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """Ana's coins' value from t1 to t2: 4,990,000 - 1,425,714 = 3,564,286, less 142,571 =
    3,421,715; nothing in ($0.00), 1,568,285 out."""
    b = await book(sessions, purchases)
    args = ("--account", "user:ana:coins_value", "--from", b.t1, "--to", b.t2)
    out, _ = await run_cli(db_url, "statement", *args, "--format", "json")
    empty = dict.fromkeys(("posted_at", "entry_id", "kind", "amount", "balance"))
    head = {"account_code": "user:ana:coins_value", "commodity": "USD"}
    blank = {**head, **empty, "counterparties": None, "memo": None}
    gift_others = GIFT_OTHERS.replace("user:ana:coins_value", "user:ana:coins")
    feature_others = FEATURE_OTHERS.replace("user:ana:coins_value", "user:ana:coins")
    assert [json.loads(line) for line in out.splitlines()] == [
        {**blank, "line": "opening", "posted_at": b.t1, "balance": "4.99"},
        {**head, "line": "movement", "posted_at": b.posted[1], "entry_id": 2, "kind": "gift",
         "amount": "-1.425714", "balance": "3.564286", "counterparties": gift_others,
         "memo": "100 coins gifted to bo"},
        {**head, "line": "movement", "posted_at": b.posted[2], "entry_id": 3, "kind": "feature",
         "amount": "-0.142571", "balance": "3.421715", "counterparties": feature_others,
         "memo": "sticker_pack_cats unlocked for 10 coins"},
        {**blank, "line": "total_in", "amount": "0.00"},
        {**blank, "line": "total_out", "amount": "-1.568285"},
        {**blank, "line": "closing", "posted_at": b.t2, "balance": "3.421715"},
    ]  # fmt: skip


def settlement(n: int) -> Entry:
    """A cent moved from card clearing to the bank."""
    return Entry(
        kind=EntryKind.TRANSFER,
        event_key=f"settlement:card:{n:06d}",
        postings=(
            Posting(chart.bank("USD"), 10_000),
            Posting(chart.provider_clearing("card", "USD"), -10_000),
        ),
        actor="user:fin",
        memo=f"cent {n}",
    )


async def test_a_long_statement_is_read_page_by_page(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """250 settlements of one cent each: the bank's statement reads its 250 movements in
    three pages (100, 100, 50), each one once and in order, the balance after the n-th n
    cents; in 250 x 1c = $2.50, out $0.00, closing $2.50."""
    start = await clock(sessions)

    async def many(session: AsyncSession) -> None:
        for n in range(1, 251):
            await post_entry(session, settlement(n))

    await in_transaction(sessions, many)
    end = await clock(sessions)
    wanted = StatementRequest("platform:bank:USD", datetime.fromisoformat(start),
                              datetime.fromisoformat(end))  # fmt: skip
    text = "".join([chunk async for chunk in statement_chunks(sessions, wanted, ExportFormat.CSV)])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["line"] for row in rows] == ["opening"] + ["movement"] * 250 + [
        "total_in",
        "total_out",
        "closing",
    ]
    movements = rows[1:251]
    assert [row["memo"] for row in movements] == [f"cent {n}" for n in range(1, 251)]
    assert [row["entry_id"] for row in movements] == [str(n) for n in range(1, 251)]
    assert [row["balance"] for row in movements] == [f"{n // 100}.{n % 100:02d}" for n in
                                                     range(1, 251)]  # fmt: skip
    assert {row["amount"] for row in movements} == {"0.01"}
    assert [(row["amount"], row["balance"]) for row in rows[251:]] == [
        ("2.50", ""),
        ("0.00", ""),
        ("", "2.50"),
    ]


async def test_the_cli_exports_the_balance_sheet(
    db_url: URL, sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    b = await book(sessions, purchases)
    out, progress = await run_cli(db_url, "balance-sheet", "--as-of", b.t2)
    assert out == "as_of,section,line,label,commodity,amount,sources\r\n" + balance_sheet(b)
    assert "Exported 9 row(s) to standard output" in progress
    # now: the same lines, as of the instant it was read
    now, _ = await run_cli(db_url, "balance-sheet", "--format", "json")
    records = [json.loads(line) for line in now.splitlines()]
    as_csv = list(csv.DictReader(io.StringIO(out)))
    assert [{**r, "as_of": b.t2} for r in records] == as_csv
    assert records[0]["as_of"] > b.t2


async def test_the_cli_exports_the_income_statement(
    db_url: URL, sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    b = await book(sessions, purchases)
    out, _ = await run_cli(db_url, "income-statement", "--from", b.t0, "--to", b.t2)
    assert out == income_statement(b)


async def test_the_cli_exports_the_roll_forwards(
    db_url: URL, sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    b = await book(sessions, purchases)
    args = ("--from", b.t1, "--to", b.t2, "--format", "json")
    out, progress = await run_cli(db_url, "roll-forwards", *args)
    assert [json.loads(line) for line in out.splitlines()] == roll_forwards(b)
    assert "Exported 37 row(s) to standard output" in progress


async def test_the_cli_refuses_what_it_cannot_export(db_url: URL) -> None:
    period = ("--from", "2026-01-01T00:00:00Z", "--to", "2026-02-01T00:00:00Z")
    _, unknown = await run_cli(db_url, "statement", "--account", "user:zed:coins", *period,
                               expect=1)  # fmt: skip
    assert "No account user:zed:coins" in unknown
    backwards = ("--from", "2026-02-01T00:00:00Z", "--to", "2026-01-01T00:00:00Z")
    _, late = await run_cli(db_url, "statement", "--account", "user:zed:coins", *backwards,
                            expect=2)  # fmt: skip
    assert "'to' must be after 'from'" in late
    _, reversed_period = await run_cli(db_url, "income-statement", *backwards, expect=2)
    assert "'from' must not be after 'to'" in reversed_period
    _, bad = await run_cli(db_url, "balance-sheet", "--as-of", "yesterday", expect=2)
    assert "--as-of is not an ISO 8601 instant" in bad


async def test_the_statement_help_says_how_its_rows_read(db_url: URL) -> None:
    out, _ = await run_cli(db_url, "statement", "--help")
    assert "opening + total_in + total_out = closing" in " ".join(out.split()).replace("│", "")
