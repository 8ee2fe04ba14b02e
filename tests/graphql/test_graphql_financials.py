"""The balance sheet, the income statement and the roll-forwards over HTTP: for finance, and
for nobody else.

The books used below: Ana buys 350 coins for $4.99 by card (the network keeps 2.9% + 30c =
44.471c, so 44 cents) and 500 coins for EUR 4.99 by card (2.9% + 25c = 39.471 euro cents, so
39; worth 4.99 x 1.08 = $5.3892). In USD: card clearing 4.99 - 0.44 = 4.55; deferred revenue
4.99 + 5.3892 = 10.3792; FX trading USD -5.3892 (its debit); result -0.44; and
10.3792 - 5.3892 - 0.44 = 4.55. In EUR: clearing 4.60 = FX trading's 4.99 less 0.39 of fees.
Coins outstanding 850."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.conftest import GraphQLClient
from tests.graphql.test_graphql_finance import finance, purchase_coins, the_only_error

LINE = "code label commodity amount decimal accounts entryKinds"

BALANCE_SHEET = f"""
query BalanceSheet($asOf: DateTime) {{
  balanceSheet(asOf: $asOf) {{
    asOf functionalCurrency balanced
    lines {{ {LINE} }}
    result {{ {LINE} }}
    checks {{ commodity assets liabilities equity result holds }}
  }}
}}
"""

INCOME_STATEMENT = f"""
query IncomeStatement($from: DateTime!, $to: DateTime!) {{
  incomeStatement(from: $from, to: $to) {{
    from to functionalCurrency
    revenue {{ {LINE} }}
    expenses {{ {LINE} }}
    result {{ {LINE} }}
  }}
}}
"""

ROLL_FORWARDS = f"""
query RollForwards($from: DateTime!, $to: DateTime!) {{
  rollForwards(from: $from, to: $to) {{
    code label commodity opening openingDecimal notExplained closing closingDecimal
    lines {{ {LINE} }}
  }}
}}
"""


async def the_books(gql: GraphQLClient) -> tuple[str, str]:
    """The purchases of the module docstring; an instant before them and one after."""
    first = await purchase_coins(gql, "ana")
    await purchase_coins(gql, "ana", currency="EUR", packageCode="coins_500")
    before = datetime.fromisoformat(first["purchase"]["settledAt"]) - timedelta(seconds=1)
    after = datetime.now().astimezone() + timedelta(seconds=1)
    return before.isoformat(), after.isoformat()


def decimals(lines: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    return {(line["code"], line["commodity"]): line["decimal"] for line in lines}


async def test_the_balance_sheet_groups_the_books_and_balances_per_commodity(
    gql: GraphQLClient,
) -> None:
    await the_books(gql)

    found = (await finance(gql, BALANCE_SHEET))["balanceSheet"]

    assert decimals(found["lines"]) == {
        ("assets:clearing:card", "EUR"): "4.60",
        ("assets:clearing:card", "USD"): "4.55",
        ("liabilities:deferred_revenue", "USD"): "10.3792",
        ("equity:fx_trading", "EUR"): "4.99",
        ("equity:fx_trading", "USD"): "-5.3892",
        ("memo:coins_outstanding", "COIN"): "850",
        ("memo:coins_issued", "COIN"): "850",
    }
    deferred = next(line for line in found["lines"] if line["code"].endswith("deferred_revenue"))
    assert deferred == {
        "code": "liabilities:deferred_revenue",
        "label": "Deferred revenue (users' coins)",
        "commodity": "USD",
        "amount": "10379200",
        "decimal": "10.3792",
        "accounts": ["user:*:coins_value"],
        "entryKinds": [],
    }
    assert decimals(found["result"]) == {
        ("result:to_date", "EUR"): "-0.39",
        ("result:to_date", "USD"): "-0.44",
    }
    usd = next(check for check in found["checks"] if check["commodity"] == "USD")
    assert usd == {
        "commodity": "USD",
        "assets": "4550000",
        "liabilities": "10379200",
        "equity": "-5389200",
        "result": "-440000",
        "holds": True,
    }
    assert (found["functionalCurrency"], found["balanced"]) == ("USD", True)


async def test_the_balance_sheet_as_of_an_instant_before_the_books_is_empty(
    gql: GraphQLClient,
) -> None:
    before, _ = await the_books(gql)

    found = (await finance(gql, BALANCE_SHEET, asOf=before))["balanceSheet"]

    assert (found["lines"], found["result"], found["checks"]) == ([], [], [])
    assert found["balanced"] is True


async def test_the_income_statement_shows_the_periods_fees(gql: GraphQLClient) -> None:
    before, after = await the_books(gql)

    found = await finance(gql, INCOME_STATEMENT, **{"from": before, "to": after})
    statement = found["incomeStatement"]

    assert statement["revenue"] == []
    assert decimals(statement["expenses"]) == {
        ("expenses:processor_fees", "EUR"): "0.39",
        ("expenses:processor_fees", "USD"): "0.44",
    }
    assert decimals(statement["result"]) == {
        ("result:to_date", "EUR"): "-0.39",
        ("result:to_date", "USD"): "-0.44",
    }
    assert statement["expenses"][1]["accounts"] == ["platform:expense:processor_fees:USD"]


async def test_the_roll_forwards_trace_each_line_to_its_entry_kinds(gql: GraphQLClient) -> None:
    before, after = await the_books(gql)

    found = (await finance(gql, ROLL_FORWARDS, **{"from": before, "to": after}))["rollForwards"]

    assert [report["code"] for report in found] == [
        "deferred_revenue",
        "creator_payable",
        "coins_outstanding",
        "diamonds_outstanding",
    ]
    deferred = found[0]
    assert (deferred["openingDecimal"], deferred["closingDecimal"]) == ("0.00", "10.3792")
    assert deferred["notExplained"] == "0"
    assert deferred["lines"][0] == {
        "code": "purchases",
        "label": "Purchases",
        "commodity": "USD",
        "amount": "10379200",
        "decimal": "10.3792",
        "accounts": [],
        "entryKinds": ["purchase"],
    }
    coins = found[2]
    assert (coins["opening"], coins["closing"], coins["lines"][0]["amount"]) == ("0", "850", "850")


@pytest.mark.parametrize("query", [INCOME_STATEMENT, ROLL_FORWARDS])
async def test_a_period_that_ends_before_it_starts_is_refused(
    gql: GraphQLClient, query: str
) -> None:
    reply = await gql(
        query,
        {"from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"},
        user="fin",
        roles=("finance",),
    )

    error = the_only_error(reply)
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert error["message"] == "'from' must not be after 'to'"


PERIOD = {"from": "2026-12-01T00:00:00Z", "to": "2026-12-02T00:00:00Z"}
REPORTS = [
    (BALANCE_SHEET, {}, "balanceSheet"),
    (INCOME_STATEMENT, PERIOD, "incomeStatement"),
    (ROLL_FORWARDS, PERIOD, "rollForwards"),
]


@pytest.mark.parametrize(("query", "variables", "field"), REPORTS, ids=lambda x: str(x)[:20])
@pytest.mark.parametrize(
    "roles", [("viewer",), ("creator",), ("support",), ("admin",)], ids=lambda r: r[0]
)
async def test_the_statements_are_for_finance_only(
    gql: GraphQLClient,
    query: str,
    variables: dict[str, Any],
    field: str,
    roles: tuple[str, ...],
) -> None:
    await purchase_coins(gql, "ana")

    reply = await gql(query, variables, user="ana", roles=roles)

    error = the_only_error(reply)
    assert error["extensions"] == {"code": "FORBIDDEN"}
    assert error["message"] == "You may not read the books without the finance role"
    assert error["path"] == [field]


@pytest.mark.parametrize(("query", "variables", "field"), REPORTS, ids=lambda x: str(x)[:20])
async def test_the_statements_need_a_signed_in_caller(
    gql: GraphQLClient, query: str, variables: dict[str, Any], field: str
) -> None:
    reply = await gql(query, variables)

    error = the_only_error(reply)
    assert error["extensions"] == {"code": "UNAUTHENTICATED"}
    assert error["path"] == [field]
