"""One money format over HTTP: every cash amount is a Money {amount, currency, micros}, exact to
the micro-unit, beside the finance reports' figures in smallest units; coins and diamonds stay
counts (their Money is null).

The books: Ana buys 350 coins for $4.99 by card (the card network keeps 2.9% + 30c = 44c, so
$4.55 waits in clearing) and 500 coins for EUR 4.99 by card (2.9% + 25c = 39 euro cents, EUR
4.60 in clearing; worth $5.3892 at 1.08). Her deferred value is $4.99 + $5.3892 = $10.3792:
10,379,200 micro-dollars."""

from __future__ import annotations

from typing import Any

from tests.conftest import GraphQLClient
from tests.graphql.test_graphql_finance import purchase_coins

MONEY = "{ amount currency micros }"
BOOKS = f"""
query {{
  trialBalance {{
    lines {{ accountCode debit credit debitMoney {MONEY} creditMoney {MONEY} }}
    totals {{ commodity debit debitMoney {MONEY} creditMoney {MONEY} }}
  }}
  ana: accountBalance(code: "user:ana:coins_value") {{ balance balanceMoney {MONEY} }}
  coins: accountBalance(code: "user:ana:coins") {{ balance balanceMoney {MONEY} }}
  balanceSheet {{
    lines {{ code commodity amount money {MONEY} }}
    checks {{ commodity assets assetsMoney {MONEY} liabilitiesMoney {MONEY} }}
  }}
}}
"""
WALLET = f"query {{ wallet {{ coins coinsValue {MONEY} }} }}"
POSTINGS = f"""
query {{ journal(first: 1, order: OLDEST_FIRST) {{
  edges {{ node {{ postings {{ accountCode units money {MONEY} }} }} }}
}} }}
"""


def money(amount: str, currency: str, micros: str) -> dict[str, str]:
    return {"amount": amount, "currency": currency, "micros": micros}


async def the_books(gql: GraphQLClient) -> None:
    await purchase_coins(gql, "ana")
    await purchase_coins(gql, "ana", currency="EUR", packageCode="coins_500")


async def finance(gql: GraphQLClient, query: str) -> dict[str, Any]:
    reply = await gql(query, user="fin", roles=("finance",))
    assert "errors" not in reply, reply
    found: dict[str, Any] = reply["data"]
    return found


async def test_the_reports_give_every_cash_figure_as_money_exact_to_the_micro_unit(
    gql: GraphQLClient,
) -> None:
    await the_books(gql)

    found = await finance(gql, BOOKS)

    lines = {line["accountCode"]: line for line in found["trialBalance"]["lines"]}
    assert lines["user:ana:coins_value"]["creditMoney"] == money("10.3792", "USD", "10379200")
    assert lines["user:ana:coins_value"]["debitMoney"] == money("0.00", "USD", "0")
    assert lines["platform:clearing:card:EUR"]["debitMoney"] == money("4.60", "EUR", "4600000")
    assert lines["user:ana:coins"]["credit"] == "850"  # 350 + 500 coins: a count
    assert lines["user:ana:coins"]["creditMoney"] is None
    totals = {total["commodity"]: total for total in found["trialBalance"]["totals"]}
    assert totals["COIN"]["debitMoney"] is None
    # USD debits: clearing 4.55 + fees 0.44 + the FX account's 5.3892 = 10.3792.
    assert totals["USD"]["debitMoney"] == money("10.3792", "USD", "10379200")
    assert found["ana"] == {
        "balance": "10379200",
        "balanceMoney": money("10.3792", "USD", "10379200"),
    }
    assert found["coins"] == {"balance": "850", "balanceMoney": None}
    for line in found["balanceSheet"]["lines"]:
        if line["commodity"] in ("COIN", "DIAMOND"):
            assert line["money"] is None, line
        else:
            assert line["money"]["micros"] == line["amount"], line
            assert line["money"]["currency"] == line["commodity"], line
    usd = next(c for c in found["balanceSheet"]["checks"] if c["commodity"] == "USD")
    assert usd["assetsMoney"]["micros"] == usd["assets"]


async def test_money_outside_finance_carries_its_micros_too(gql: GraphQLClient) -> None:
    await the_books(gql)

    wallet = (await gql(WALLET, user="ana"))["data"]["wallet"]
    postings = (await finance(gql, POSTINGS))["journal"]["edges"][0]["node"]["postings"]

    assert wallet == {"coins": "850", "coinsValue": money("10.3792", "USD", "10379200")}

    def of(account: str) -> list[Any]:
        return sorted((p["money"] for p in postings if p["accountCode"] == account), key=str)

    # The first purchase: clearing debited 4.99 and credited the 0.44 fee, the wallet's value
    # credited 4.99 (signed units, debit positive); its 350 coins are a count.
    assert of("platform:clearing:card:USD") == [
        money("-0.44", "USD", "-440000"),
        money("4.99", "USD", "4990000"),
    ]
    assert of("user:ana:coins_value") == [money("-4.99", "USD", "-4990000")]
    assert of("user:ana:coins") == [None]
