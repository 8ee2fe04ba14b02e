"""The journal export, as finance gets it over HTTP and from ``coinbooks export journal``.

The book: Ana buys 350 coins for $4.99 by card (entry 1); the card network keeps 2.9% + 30c =
14.471c + 30c, so 44c (0.44). Then finance moves 4.99 - 0.44 = $4.55 from card clearing to
the bank (entry 2), with a memo a spreadsheet must get back whole: a comma and quotes in it.
One row per posting: 6 for the purchase, 2 for the transfer; amounts unsigned, in the
commodity's unit, with the side in its own column; instants in UTC to the microsecond; the
references as PostgreSQL writes a JSON object (shorter keys first)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
from collections.abc import Callable
from contextlib import aclosing
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.ledger import chart
from accounting.ledger.entries import Entry, EntryKind, Posting
from accounting.ledger.posting import in_transaction, post_entry
from accounting.ledger.tables import JournalEntryRow
from accounting.purchases.service import PurchaseRequest, PurchaseService
from accounting.reads import export
from accounting.reads.journal import EXPORT_COLUMNS, JournalFilter, amount_text, export_statement
from api.database import libpq_url
from api.exports import BadExportRequest, journal_chunks, journal_filter
from bench.history import HistorySeeder
from schema.nodes import global_id

COINBOOKS = Path(sys.executable).parent / "coinbooks"
MEMO = 'card settlement, "batch 1"'


def settlement(n: int, micros: int, memo: str = MEMO) -> Entry:
    return Entry(
        kind=EntryKind.TRANSFER,
        event_key=f"settlement:card:{n:06d}",
        postings=(
            Posting(chart.bank("USD"), micros),
            Posting(chart.provider_clearing("card", "USD"), -micros),
        ),
        actor="user:fin",
        refs={"provider_reference": f"po_{n}"},
        memo=memo,
    )


async def book(sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService) -> str:
    """The module's book; the CSV it must export, exactly."""
    bought = await purchases.purchase_coins(
        PurchaseRequest("ana", "export-ana-00001", "USD", "web", "card", "tok_success", "coins_350")
    )
    await in_transaction(sessions, lambda s: post_entry(s, settlement(1, 4_550_000)))
    async with sessions() as session:
        first = await session.get(JournalEntryRow, 1)
        second = await session.get(JournalEntryRow, 2)
    assert first is not None and second is not None
    at1, at2 = (utc_text(row.posted_at) for row in (first, second))
    reference = bought.purchase.provider_reference
    refs = (
        '"{""package"": ""coins_350"", ""user_id"": ""ana"", ""provider"": ""card"", '
        f'""purchase_id"": 1, ""provider_reference"": ""{reference}""}}"'
    )
    head = f"1,{at1},purchase,purchase:1,user:ana"
    memo = "350 coins bought through card"
    tail = f"2,{at2},transfer,settlement:card:000001,user:fin"
    return (
        "entry_id,posted_at,kind,event_key,actor,account_code,commodity,side,amount,memo,refs\n"
        f"{head},platform:coins:issued,COIN,DEBIT,350,{memo},{refs}\n"
        f"{head},user:ana:coins,COIN,CREDIT,350,{memo},{refs}\n"
        f"{head},platform:clearing:card:USD,USD,DEBIT,4.99,{memo},{refs}\n"
        f"{head},user:ana:coins_value,USD,CREDIT,4.99,{memo},{refs}\n"
        f"{head},platform:expense:processor_fees:USD,USD,DEBIT,0.44,{memo},{refs}\n"
        f"{head},platform:clearing:card:USD,USD,CREDIT,0.44,{memo},{refs}\n"
        f'{tail},platform:bank:USD,USD,DEBIT,4.55,"card settlement, ""batch 1""",'
        '"{""provider_reference"": ""po_1""}"\n'
        f'{tail},platform:clearing:card:USD,USD,CREDIT,4.55,"card settlement, ""batch 1""",'
        '"{""provider_reference"": ""po_1""}"\n'
    )


def utc_text(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


async def exported(
    client: httpx.AsyncClient, token: Callable[..., str], role: str = "finance", **params: str
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token('fin', role)}"}
    return await client.get("/exports/journal", params=params, headers=headers)


async def test_finance_exports_the_journal_as_csv_over_http(
    client: httpx.AsyncClient,
    token: Callable[..., str],
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
) -> None:
    expected = await book(sessions, purchases)
    response = await exported(client, token)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="journal.csv"'
    assert response.text == expected
    # what a spreadsheet reads back: the memo and references whole, the amounts as numbers
    rows = list(csv.DictReader(io.StringIO(response.text)))
    amounts = ["350", "350", "4.99", "4.99", "0.44", "0.44", "4.55", "4.55"]
    assert [row["amount"] for row in rows] == amounts
    assert rows[6]["memo"] == MEMO
    assert json.loads(rows[6]["refs"]) == {"provider_reference": "po_1"}


async def test_the_export_takes_the_journal_filters(
    client: httpx.AsyncClient,
    token: Callable[..., str],
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
) -> None:
    lines = (await book(sessions, purchases)).splitlines(keepends=True)
    transfer = await exported(client, token, kind="transfer")
    assert transfer.text == "".join([lines[0], *lines[7:]])
    ana = await exported(client, token, userId="ana")
    assert ana.text == "".join(lines[:7])
    # an entry comes whole: the bank's and the clearing account's side of the transfer
    bank = await exported(client, token, account="platform:bank:")
    assert bank.text == transfer.text
    future = await exported(client, token, **{"from": "2999-01-01T00:00:00"})
    assert future.text == lines[0]


async def test_finance_exports_json_lines_over_http(
    client: httpx.AsyncClient,
    token: Callable[..., str],
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
) -> None:
    as_csv = await book(sessions, purchases)
    response = await exported(client, token, format="json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    records = [json.loads(line) for line in response.text.splitlines()]
    assert [list(record) for record in records] == [list(EXPORT_COLUMNS)] * 8
    # the same rows as the CSV, with numbers and references as JSON values
    rows = list(csv.DictReader(io.StringIO(as_csv)))
    for record, row in zip(records, rows, strict=True):
        assert record == {**row, "entry_id": int(row["entry_id"]), "refs": json.loads(row["refs"])}
    assert records[7] == {
        **records[7],
        "account_code": "platform:clearing:card:USD",
        "side": "CREDIT",
        "amount": "4.55",
        "memo": MEMO,
        "refs": {"provider_reference": "po_1"},
    }


@pytest.mark.parametrize("role", ["viewer", "creator", "support", "admin"])
async def test_only_finance_may_export(
    client: httpx.AsyncClient, token: Callable[..., str], role: str
) -> None:
    response = await exported(client, token, role)
    assert response.status_code == 403
    assert response.json() == {
        "error": {
            "code": "FORBIDDEN",
            "message": "You may not export the books without the finance role",
        }
    }


async def test_signed_out_callers_are_refused_with_401(client: httpx.AsyncClient) -> None:
    anonymous = await client.get("/exports/journal")
    bad = await client.get("/exports/journal", headers={"Authorization": "Bearer nope"})
    for response in (anonymous, bad):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "UNAUTHENTICATED"
    assert anonymous.json()["error"]["message"] == "Sign in: send 'Authorization: Bearer <token>'"


async def test_the_export_takes_an_id_as_its_global_id_or_its_row_id(
    client: httpx.AsyncClient,
    token: Callable[..., str],
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
) -> None:
    """Purchase 1's rows are the header and the purchase's 6 postings, whichever id names it."""
    lines = (await book(sessions, purchases)).splitlines(keepends=True)
    by_global_id = await exported(client, token, purchaseId=global_id("Purchase", 1))
    assert by_global_id.text == "".join(lines[:7])
    assert (await exported(client, token, purchaseId="1")).text == by_global_id.text


@pytest.mark.parametrize(
    ("name", "field", "type_name"),
    [
        ("purchaseId", "purchase_id", "Purchase"),
        ("giftId", "gift_id", "Gift"),
        ("payoutId", "payout_id", "Payout"),
        ("refundId", "refund_id", "Refund"),
        ("chargebackId", "chargeback_id", "Chargeback"),
    ],
)
def test_each_id_filter_takes_the_global_id_or_the_row_id_as_the_journal_query_does(
    name: str, field: str, type_name: str
) -> None:
    by_global_id = journal_filter({name: global_id(type_name, 7)})
    assert getattr(by_global_id, field) == 7
    assert journal_filter({name: "7"}) == by_global_id
    with pytest.raises(BadExportRequest, match=f"^{name} is not an id$"):
        journal_filter({name: global_id("Stream", 7)})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"format": "xml"}, "format is csv or json"),
        ({"kind": "bonus"}, "Unknown entry kind"),
        ({"from": "yesterday"}, "from is not an ISO 8601 instant"),
        ({"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "'to' must be after"),
        ({"purchaseId": "1; drop"}, "purchaseId is not an id"),
        ({"refundId": global_id("Chargeback", 1)}, "refundId is not an id"),
    ],
)
async def test_a_bad_parameter_is_refused_with_400(
    client: httpx.AsyncClient, token: Callable[..., str], params: dict[str, str], message: str
) -> None:
    response = await exported(client, token, **params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "BAD_USER_INPUT"
    assert message in error["message"]


async def run_cli(db_url: URL, *args: str) -> tuple[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": db_url.render_as_string(hide_password=False),
        "COINBOOKS_ENVIRONMENT": "development",
    }
    process = await asyncio.create_subprocess_exec(
        str(COINBOOKS),
        "export",
        "journal",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode(), err.decode()


async def test_the_cli_exports_the_same_file(
    db_url: URL,
    tmp_path: Path,
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
) -> None:
    expected = await book(sessions, purchases)
    target = tmp_path / "journal.csv"
    _, progress = await run_cli(db_url, "--from", "2000-01-01", "--output", str(target))
    assert target.read_bytes() == expected.encode()
    assert f"Exported 8 posting(s) to {target}\n" in progress
    assert "Journal 8 postings" in progress
    out, _ = await run_cli(db_url, "--format", "json", "--kind", "transfer")
    assert [json.loads(line)["account_code"] for line in out.splitlines()] == [
        "platform:bank:USD",
        "platform:clearing:card:USD",
    ]


@pytest.mark.parametrize(
    ("micros", "commodity", "expected"),
    [
        (4_990_000, "USD", "4.99"),
        (5_000_000, "USD", "5.00"),
        (14_257, "USD", "0.014257"),
        (10_000, "USD", "0.01"),
        (123_456_789_000_000, "USD", "123456789.00"),
        (1_500_000, "JPY", "1.5"),
        (100_000_000, "JPY", "100"),
        (100_500_000, "JPY", "100.5"),
    ],
)
async def test_amounts_are_written_as_the_journal_query_writes_them(
    sessions: async_sessionmaker[AsyncSession], micros: int, commodity: str, expected: str
) -> None:
    """PostgreSQL writes the export's amounts; they are the journal query's decimal strings
    (``amount_text``): at least the minor unit's digits (none for yen), more only when needed."""
    assert amount_text(micros, commodity) == expected
    await in_transaction(
        sessions,
        lambda s: post_entry(
            s,
            Entry(
                kind=EntryKind.TRANSFER,
                event_key=f"amounts:{commodity}:{micros}",
                postings=(
                    Posting(chart.bank(commodity), micros),
                    Posting(chart.provider_clearing("card", commodity), -micros),
                ),
                actor="user:fin",
            ),
        ),
    )
    async with sessions() as session, session.begin():
        statement = export_statement(JournalFilter(), export.ExportFormat.CSV)
        text_ = "".join(
            [c async for c in export.copied(session, statement, export.ExportFormat.CSV)]
        )
    rows = list(csv.DictReader(io.StringIO(text_)))
    assert [(row["side"], row["amount"]) for row in rows] == [
        ("DEBIT", expected),
        ("CREDIT", expected),
    ]


async def test_the_export_streams_rather_than_reading_everything_first(
    db_url: URL, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A history of 120,000 postings (about 17 MB of CSV, more than the connection's buffers
    hold): the first chunk reaches the reader while PostgreSQL is still writing the file, its
    ``COPY`` waiting on the reader; the whole export still has every posting and a header, and
    the count it reports is the postings'."""
    conn = await asyncpg.connect(libpq_url(db_url))
    try:
        seeder = HistorySeeder(conn, users=200, readers=3, chunk_postings=40_000)
        await seeder.open_wallets(120_000)
        postings = (await seeder.grow_to(120_000)).postings
    finally:
        await conn.close()
    counted: list[int] = []
    async with asyncio.timeout(120), sessions() as session, session.begin():
        statement = export_statement(JournalFilter(), export.ExportFormat.CSV)
        copied = export.copied(session, statement, export.ExportFormat.CSV, on_rows=counted.append)
        async with aclosing(copied) as chunks:
            first = await anext(chunks)
            copying = await copies_running(sessions)
            rest = [chunk async for chunk in chunks]
    assert copying == 1
    assert first.startswith("entry_id,posted_at,")
    assert len(first) < 2 * export.COPIED_CHUNK_BYTES
    assert first.count("\n") + sum(chunk.count("\n") for chunk in rest) == postings + 1
    assert sum(counted) == postings
    assert await copies_running(sessions) == 0


async def copies_running(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as other:
        found = await other.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE query LIKE 'COPY (SELECT journal_entry.id%' AND state = 'active'"
                " AND backend_type = 'client backend'"
            )
        )
    return int(found or 0)


async def test_a_reader_that_stops_early_ends_the_copy_and_frees_its_connection(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A client that goes away after the first chunk: the copy is cancelled, its transaction
    rolled back, and the next export on the same pool runs whole."""

    async def many(session: AsyncSession) -> None:
        for n in range(1, 2001):
            await post_entry(session, settlement(n, 10_000, memo="x" * 200))

    await in_transaction(sessions, many)
    async with asyncio.timeout(60):
        cut_short = journal_chunks(sessions, JournalFilter(), export.ExportFormat.CSV)
        async with aclosing(cut_short) as chunks:
            await anext(chunks)
        assert await copies_running(sessions) == 0
        whole = journal_chunks(sessions, JournalFilter(), export.ExportFormat.JSON)
        lines = "".join([chunk async for chunk in whole])
    assert lines.count("\n") == 4000
    assert json.loads(lines.splitlines()[-1])["memo"] == "x" * 200
