"""The report exports over HTTP: ``GET /exports/statement``, ``/exports/balance-sheet``,
``/exports/income-statement`` and ``/exports/roll-forwards``, for finance only.

On the book of tests/reads/test_report_exports.py (whose docstring derives every figure: Ana
buys 350 coins for $4.99, sends Bo 100 of them and unlocks a 10-coin feature), each export
answers the same file the CLI writes; every other role is refused with 403, a caller without a
valid token with 401, a bad parameter with 400, an account that does not exist with 404, all
as JSON errors."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.purchases.service import PurchaseService
from tests.reads.test_report_exports import (
    balance_sheet as balance_sheet_rows,
)
from tests.reads.test_report_exports import (
    book,
    coins_statement,
    income_statement,
    roll_forwards,
)

PERIOD = {"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}
EXPORTS = {
    "statement": {"account": "user:ana:coins", **PERIOD},
    "balance-sheet": {},
    "income-statement": PERIOD,
    "roll-forwards": PERIOD,
}


async def exported(
    client: httpx.AsyncClient,
    token: Callable[..., str],
    report: str,
    role: str = "finance",
    **params: str,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token('fin', role)}"}
    return await client.get(f"/exports/{report}", params=params, headers=headers)


async def test_finance_exports_a_statement_as_csv(
    client: httpx.AsyncClient,
    token: Callable[..., str],
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
) -> None:
    b = await book(sessions, purchases)
    params = {"account": "user:ana:coins", "from": b.t0, "to": b.t2}
    response = await exported(client, token, "statement", **params)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="statement.csv"'
    assert response.text == coins_statement(b)
    # the same rows as JSON lines, the entry's id a number
    lines = await exported(client, token, "statement", format="json", **params)
    assert lines.headers["content-type"] == "application/x-ndjson"
    assert lines.headers["content-disposition"] == 'attachment; filename="statement.jsonl"'
    rows = list(csv.DictReader(io.StringIO(response.text)))
    records = [json.loads(line) for line in lines.text.splitlines()]
    assert len(records) == len(rows) == 7
    for record, row in zip(records, rows, strict=True):
        assert {k: "" if v is None else str(v) for k, v in record.items()} == row
    assert records[1]["entry_id"] == 1


async def test_finance_exports_the_financial_statements(
    client: httpx.AsyncClient,
    token: Callable[..., str],
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
) -> None:
    b = await book(sessions, purchases)
    sheet = await exported(client, token, "balance-sheet", asOf=b.t2)
    assert sheet.status_code == 200
    assert sheet.headers["content-disposition"] == 'attachment; filename="balance-sheet.csv"'
    assert sheet.text == "as_of,section,line,label,commodity,amount,sources\r\n" + (
        balance_sheet_rows(b)
    )
    income = await exported(client, token, "income-statement", **{"from": b.t0, "to": b.t2})
    assert income.text == income_statement(b)
    params = {"from": b.t1, "to": b.t2, "format": "json"}
    rolled = await exported(client, token, "roll-forwards", **params)
    assert rolled.headers["content-type"] == "application/x-ndjson"
    assert [json.loads(line) for line in rolled.text.splitlines()] == roll_forwards(b)


async def test_an_empty_book_exports_zeros_and_headers(
    client: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    """No postings: the balance sheet and income statement have no lines (a header only);
    each roll-forward still shows its every line, at zero."""
    sheet = await exported(client, token, "balance-sheet")
    assert sheet.text == "as_of,section,line,label,commodity,amount,sources\r\n"
    income = await exported(client, token, "income-statement", **PERIOD)
    assert income.text == "from,to,section,line,label,commodity,amount,sources\r\n"
    rolled = await exported(client, token, "roll-forwards", format="json", **PERIOD)
    records = [json.loads(line) for line in rolled.text.splitlines()]
    assert len(records) == 10 + 9 + 9 + 9
    assert {r["amount"] for r in records} == {"0.00", "0"}


@pytest.mark.parametrize("report", list(EXPORTS))
@pytest.mark.parametrize("role", ["viewer", "creator", "support", "admin"])
async def test_only_finance_may_export_a_report(
    client: httpx.AsyncClient, token: Callable[..., str], report: str, role: str
) -> None:
    response = await exported(client, token, report, role, **EXPORTS[report])
    assert response.status_code == 403
    assert response.json() == {
        "error": {
            "code": "FORBIDDEN",
            "message": "You may not export the books without the finance role",
        }
    }


@pytest.mark.parametrize("report", list(EXPORTS))
async def test_signed_out_callers_are_refused_with_401(
    client: httpx.AsyncClient, report: str
) -> None:
    anonymous = await client.get(f"/exports/{report}", params=EXPORTS[report])
    headers = {"Authorization": "Bearer nope"}
    bad = await client.get(f"/exports/{report}", params=EXPORTS[report], headers=headers)
    for response in (anonymous, bad):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "UNAUTHENTICATED"
    assert anonymous.json()["error"]["message"] == "Sign in: send 'Authorization: Bearer <token>'"


BACKWARDS = {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}


@pytest.mark.parametrize(
    ("report", "params", "message"),
    [
        ("statement", {**EXPORTS["statement"], "format": "xml"}, "format is csv or json"),
        ("statement", PERIOD, "account is an account's code"),
        ("statement", {"account": "user:ana:coins", "to": PERIOD["to"]}, "from is required"),
        ("statement", {"account": "user:ana:coins", "from": PERIOD["from"]}, "to is required"),
        ("statement", {"account": "user:ana:coins", **BACKWARDS}, "'to' must be after 'from'"),
        (
            "statement",
            {"account": "user:ana:coins", "from": PERIOD["from"], "to": PERIOD["from"]},
            "'to' must be after 'from'",
        ),
        ("statement", {"account": "x" * 201, **PERIOD}, "1-200 characters"),
        ("balance-sheet", {"asOf": "yesterday"}, "asOf is not an ISO 8601 instant"),
        ("balance-sheet", {"format": "pdf"}, "format is csv or json"),
        ("income-statement", {"to": PERIOD["to"]}, "from is required"),
        ("income-statement", BACKWARDS, "'from' must not be after 'to'"),
        ("roll-forwards", {"from": "soon", "to": PERIOD["to"]}, "from is not an ISO 8601"),
        ("roll-forwards", BACKWARDS, "'from' must not be after 'to'"),
    ],
)
async def test_a_bad_parameter_is_refused_with_400(
    client: httpx.AsyncClient,
    token: Callable[..., str],
    report: str,
    params: dict[str, str],
    message: str,
) -> None:
    response = await exported(client, token, report, **params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "BAD_USER_INPUT"
    assert message in error["message"]


async def test_the_statement_of_an_account_that_does_not_exist_is_404(
    client: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    response = await exported(client, token, "statement", **{**PERIOD, "account": "user:zed:coins"})
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "NOT_FOUND", "message": "No account user:zed:coins"}
    }
