"""What finance sees over GraphQL: the trial balance, the integrity report and any account's
balance, now and at a past instant; and that nobody else sees them.

The books used below: Ana buys 350 coins for $4.99 by card (the card network keeps 2.9% + 30c =
44c) and 500 coins for EUR 4.99 by card (2.9% + 25c = 39 euro cents; worth $5.3892 at 1.08);
her next card is declined. Bo buys 350 coins on iOS for $5.49 (Apple keeps 30% = $1.65)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.conftest import GraphQLClient

PURCHASE_COINS = """
mutation PurchaseCoins($input: PurchaseCoinsInput!) {
  purchaseCoins(input: $input) { purchase { status settledAt } errors { code } }
}
"""

TRIAL_BALANCE = """
query TrialBalance($asOf: DateTime) {
  trialBalance(asOf: $asOf) {
    asOf balanced
    totals { commodity debit credit balanced }
    lines { accountCode commodity type debit credit }
  }
}
"""

INTEGRITY_REPORT = """
query {
  integrityReport {
    checkedAt ok entries postings accounts checks
    violations { invariant check detail }
  }
}
"""

ACCOUNT_BALANCE = """
query AccountBalance($code: String!, $asOf: DateTime) {
  accountBalance(code: $code, asOf: $asOf) { code commodity balance postingCount }
}
"""

_keys = itertools.count(1)


async def purchase_coins(gql: GraphQLClient, user: str, **fields: str) -> dict[str, Any]:
    variables = {
        "input": {
            "idempotencyKey": f"finance-key-{next(_keys):06d}",
            "currency": "USD",
            "channel": "WEB",
            "provider": "CARD",
            "paymentToken": "tok_success",
            "packageCode": "coins_350",
            **fields,
        }
    }
    reply = await gql(PURCHASE_COINS, variables, user=user)
    assert "errors" not in reply, reply
    payload: dict[str, Any] = reply["data"]["purchaseCoins"]
    return payload


async def the_books(gql: GraphQLClient) -> None:
    """The purchases in the module docstring."""
    await purchase_coins(gql, "ana")
    await purchase_coins(gql, "ana", currency="EUR", packageCode="coins_500")
    declined = await purchase_coins(gql, "ana", paymentToken="tok_declined")
    assert [e["code"] for e in declined["errors"]] == ["PAYMENT_DECLINED"]
    await purchase_coins(gql, "bo", channel="IOS", provider="APPLE")


async def finance(gql: GraphQLClient, query: str, **variables: Any) -> dict[str, Any]:
    reply = await gql(query, variables, user="fin", roles=("finance",))
    assert "errors" not in reply, reply
    data: dict[str, Any] = reply["data"]
    return data


def the_only_error(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["data"] is None, reply
    assert len(reply["errors"]) == 1, reply
    error: dict[str, Any] = reply["errors"][0]
    return error


# --- trialBalance -----------------------------------------------------------------------------


async def test_the_trial_balance_shows_every_account_and_balances_per_commodity(
    gql: GraphQLClient,
) -> None:
    await the_books(gql)

    found = (await finance(gql, TRIAL_BALANCE))["trialBalance"]

    lines = {
        line["accountCode"]: (line["commodity"], line["type"], line["debit"], line["credit"])
        for line in found["lines"]
    }
    assert lines == {
        "platform:coins:issued": ("COIN", "equity", "1200", "0"),
        "user:ana:coins": ("COIN", "liability", "0", "850"),
        "user:bo:coins": ("COIN", "liability", "0", "350"),
        "platform:clearing:card:EUR": ("EUR", "asset", "4600000", "0"),
        "platform:expense:processor_fees:EUR": ("EUR", "expense", "390000", "0"),
        "platform:fx:EUR": ("EUR", "equity", "0", "4990000"),
        "platform:clearing:card:USD": ("USD", "asset", "4550000", "0"),
        "platform:clearing:apple:USD": ("USD", "asset", "3840000", "0"),
        "platform:expense:processor_fees:USD": ("USD", "expense", "440000", "0"),
        "platform:expense:app_store_fees:USD": ("USD", "expense", "1650000", "0"),
        "platform:fx:USD": ("USD", "equity", "5389200", "0"),
        "user:ana:coins_value": ("USD", "liability", "0", "10379200"),
        "user:bo:coins_value": ("USD", "liability", "0", "5490000"),
    }
    assert found["balanced"] is True
    assert found["totals"] == [
        {"commodity": "COIN", "debit": "1200", "credit": "1200", "balanced": True},
        {"commodity": "EUR", "debit": "4990000", "credit": "4990000", "balanced": True},
        {"commodity": "USD", "debit": "15869200", "credit": "15869200", "balanced": True},
    ]
    # Each total is the sum of its commodity's lines.
    for total in found["totals"]:
        mine = [line for line in found["lines"] if line["commodity"] == total["commodity"]]
        assert sum(int(line["debit"]) for line in mine) == int(total["debit"])
        assert sum(int(line["credit"]) for line in mine) == int(total["credit"])


async def test_the_trial_balance_as_of_a_past_instant_shows_the_books_then(
    gql: GraphQLClient,
) -> None:
    first = await purchase_coins(gql, "ana")
    await purchase_coins(gql, "bo", packageCode="coins_700")
    first_settled = datetime.fromisoformat(first["purchase"]["settledAt"])

    then = (await finance(gql, TRIAL_BALANCE, asOf=first_settled.isoformat()))["trialBalance"]
    before = (await finance(gql, TRIAL_BALANCE, asOf="2026-01-01T00:00:00Z"))["trialBalance"]

    assert datetime.fromisoformat(then["asOf"]) == first_settled
    assert then["totals"] == [
        {"commodity": "COIN", "debit": "350", "credit": "350", "balanced": True},
        {"commodity": "USD", "debit": "4990000", "credit": "4990000", "balanced": True},
    ]
    assert {line["accountCode"] for line in then["lines"]} == {
        "platform:coins:issued",
        "user:ana:coins",
        "platform:clearing:card:USD",
        "platform:expense:processor_fees:USD",
        "user:ana:coins_value",
    }
    assert before == {
        "asOf": "2026-01-01T00:00:00+00:00",
        "balanced": True,
        "totals": [],
        "lines": [],
    }


async def test_an_empty_ledger_has_an_empty_balanced_trial_balance_as_of_now(
    gql: GraphQLClient,
) -> None:
    started = datetime.now().astimezone()

    found = (await finance(gql, TRIAL_BALANCE))["trialBalance"]

    assert (found["balanced"], found["totals"], found["lines"]) == (True, [], [])
    assert abs(datetime.fromisoformat(found["asOf"]) - started) < timedelta(minutes=1)


# --- integrityReport -------------------------------------------------------------------------


async def test_the_integrity_report_rechecks_the_books_and_finds_them_sound(
    gql: GraphQLClient,
) -> None:
    await the_books(gql)

    report = (await finance(gql, INTEGRITY_REPORT))["integrityReport"]

    assert report["ok"] is True
    assert report["violations"] == []
    # Three completed purchases: 6 postings each, and 2 more for the euro one's FX legs.
    assert (report["entries"], report["postings"]) == ("3", "20")
    assert {
        "entry_balances_per_commodity",
        "no_overdraft_ever",
        "stored_balance_is_sum_of_postings",
        "completed_purchase_posted_once",
    } <= set(report["checks"])
    assert report["checkedAt"] is not None


async def test_a_new_buyer_opens_exactly_two_accounts(gql: GraphQLClient) -> None:
    await purchase_coins(gql, "ana")
    before = (await finance(gql, INTEGRITY_REPORT))["integrityReport"]

    await purchase_coins(gql, "bo")
    after = (await finance(gql, INTEGRITY_REPORT))["integrityReport"]

    assert int(after["accounts"]) == int(before["accounts"]) + 2  # bo:coins, bo:coins_value
    assert int(after["entries"]) == int(before["entries"]) + 1
    assert after["ok"] is True


# --- accountBalance ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "commodity", "balance", "posting_count"),
    [
        ("user:ana:coins", "COIN", "850", "2"),
        ("user:ana:coins_value", "USD", "10379200", "2"),
        ("platform:coins:issued", "COIN", "1200", "3"),
        ("platform:expense:app_store_fees:USD", "USD", "1650000", "1"),
        ("platform:clearing:card:EUR", "EUR", "4600000", "2"),
        ("platform:revenue:gifts", "USD", "0", "0"),
    ],
)
async def test_an_accounts_balance_reads_in_its_natural_sign(
    gql: GraphQLClient, code: str, commodity: str, balance: str, posting_count: str
) -> None:
    await the_books(gql)

    found = (await finance(gql, ACCOUNT_BALANCE, code=code))["accountBalance"]

    assert found == {
        "code": code,
        "commodity": commodity,
        "balance": balance,
        "postingCount": posting_count,
    }


async def test_an_accounts_balance_as_of_a_past_instant(gql: GraphQLClient) -> None:
    first = await purchase_coins(gql, "ana")
    await purchase_coins(gql, "ana", packageCode="coins_700")
    at = first["purchase"]["settledAt"]

    then = (await finance(gql, ACCOUNT_BALANCE, code="user:ana:coins", asOf=at))["accountBalance"]
    now = (await finance(gql, ACCOUNT_BALANCE, code="user:ana:coins"))["accountBalance"]

    assert (then["balance"], then["postingCount"]) == ("350", "1")
    assert (now["balance"], now["postingCount"]) == ("1050", "2")


async def test_an_account_never_opened_is_null(gql: GraphQLClient) -> None:
    reply = await gql(
        ACCOUNT_BALANCE, {"code": "user:nobody:coins"}, user="fin", roles=("finance",)
    )

    assert reply == {"data": {"accountBalance": None}}


# --- finance only ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "variables", "field"),
    [
        (TRIAL_BALANCE, {}, "trialBalance"),
        (INTEGRITY_REPORT, {}, "integrityReport"),
        (ACCOUNT_BALANCE, {"code": "user:ana:coins"}, "accountBalance"),
    ],
)
@pytest.mark.parametrize(
    "roles", [("viewer",), ("creator",), ("support",), ("admin",)], ids=lambda r: r[0]
)
async def test_the_books_are_for_finance_only(
    gql: GraphQLClient,
    query: str,
    variables: dict[str, Any],
    field: str,
    roles: tuple[str, ...],
) -> None:
    await purchase_coins(gql, "ana")

    reply = await gql(query, variables, user="ana", roles=roles)

    assert reply["data"] in (None, {field: None})  # a nullable field answers null beside its error
    [error] = reply["errors"]
    assert error["extensions"] == {"code": "FORBIDDEN"}
    assert error["message"] == "You may not read the books without the finance role"
    assert error["path"] == [field]
