"""Account statements over GraphQL, for every role.

The books are those of tests/reads/test_statements.py: Ana buys 350 coins for $4.99 through
PayPal, sends Bo five roses (5 coins, releasing $0.071286 of her wallet's value) and Hand Hearts
(100 coins, $1.425714), unlocks the cat stickers (10 coins, $0.142571), and Bo's 105 pending
diamonds are released to available. Bo earns $0.005 a diamond: $0.025 for the roses and $0.50
for the hearts, $0.525 payable.

Finance reads any account. A viewer reads their own wallet (coins and their value), a creator
their own diamonds and payable (and, holding a wallet too, their own wallet). Support reads any
user's wallet and any creator's diamonds and payable: DESIGN.md lets it "read any user's
history", and the wallet, transactions and earnings queries already show support these very
figures; a statement of the platform's own accounts is finance's alone. Anyone else's account
answers FORBIDDEN whether or not it exists, as wallet() answers for another user's wallet.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.gifts.service import GiftService
from accounting.purchases.service import PurchaseService
from tests.conftest import GraphQLClient
from tests.reads.test_statements import Day, ana_and_bo

STATEMENT = """
query Statement($code: String!, $from: DateTime!, $to: DateTime!, $first: Int! = 20,
                $after: String) {
  accountStatement(accountCode: $code, from: $from, to: $to, first: $first, after: $after) {
    accountCode commodity from to movementCount
    opening { units money { amount currency } }
    closing { units money { amount currency } }
    totalIn { units money { amount currency } }
    totalOut { units money { amount currency } }
    movements {
      edges { cursor node {
        entryId postedAt kind memo counterparties
        amount { units money { amount currency } }
        balanceAfter { units money { amount currency } }
      } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""


@pytest.fixture
async def day(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService, gifts: GiftService
) -> Day:
    return await ana_and_bo(sessions, purchases, gifts)


def period(day: Day, **extra: Any) -> dict[str, Any]:
    return {"from": day.start.isoformat(), "to": day.end.isoformat(), **extra}


async def ask(
    gql: GraphQLClient, day: Day, code: str, user: str | None, *roles: str, **extra: Any
) -> dict[str, Any]:
    return await gql(STATEMENT, period(day, code=code, **extra), user=user, roles=roles)


def ok(reply: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in reply, reply["errors"]
    found: dict[str, Any] = reply["data"]["accountStatement"]
    return found


def code_of(reply: dict[str, Any]) -> str:
    assert reply["data"] is None
    (error,) = reply["errors"]
    code: str = error["extensions"]["code"]
    return code


def amounts(found: dict[str, Any], field: str) -> list[str]:
    return [edge["node"][field]["units"] for edge in found["movements"]["edges"]]


async def test_finance_reads_ana_wallet_value_in_micro_dollars_and_as_money(
    gql: GraphQLClient, day: Day
) -> None:
    found = ok(await ask(gql, day, "user:ana:coins_value", "fin", "finance"))
    assert (found["accountCode"], found["commodity"], found["movementCount"]) == (
        "user:ana:coins_value",
        "USD",
        "4",
    )
    assert found["opening"] == {"units": "0", "money": {"amount": "0.00", "currency": "USD"}}
    assert found["closing"] == {
        "units": "3350429",
        "money": {"amount": "3.350429", "currency": "USD"},
    }
    assert found["totalIn"]["money"]["amount"] == "4.99"
    assert found["totalOut"]["money"]["amount"] == "1.639571"
    assert amounts(found, "amount") == ["4990000", "-71286", "-1425714", "-142571"]
    assert amounts(found, "balanceAfter") == ["4990000", "4918714", "3493000", "3350429"]
    first = found["movements"]["edges"][0]["node"]
    assert (first["entryId"], first["kind"]) == (str(day.entry_ids[0]), "purchase")
    assert datetime.fromisoformat(first["postedAt"]) == day.posted_at[0]
    assert "platform:clearing:paypal:USD" in first["counterparties"]


async def test_finance_reads_a_platform_account_and_a_missing_one_is_not_found(
    gql: GraphQLClient, day: Day
) -> None:
    """PayPal owes the platform $4.99 less its 66-cent fee: 4,330,000 micro-dollars. The
    purchase entry posts to the clearing account twice (the $4.99 charged, the fee kept), so
    the statement shows two movements of the one entry."""
    found = ok(await ask(gql, day, "platform:clearing:paypal:USD", "fin", "finance"))
    assert (found["opening"]["units"], found["closing"]["units"]) == ("0", "4330000")
    assert amounts(found, "amount") == ["4990000", "-660000"]
    assert amounts(found, "balanceAfter") == ["4990000", "4330000"]
    assert (found["totalIn"]["units"], found["totalOut"]["units"]) == ("4990000", "660000")
    entries = {edge["node"]["entryId"] for edge in found["movements"]["edges"]}
    assert entries == {str(day.entry_ids[0])}

    missing = await ask(gql, day, "platform:no_such_account", "fin", "finance")
    assert code_of(missing) == "NOT_FOUND"
    assert missing["errors"][0]["message"] == "No account platform:no_such_account"


async def test_a_viewer_reads_their_own_wallet_and_nobody_else_s(
    gql: GraphQLClient, day: Day
) -> None:
    coins = ok(await ask(gql, day, "user:ana:coins", "ana", "viewer"))
    assert amounts(coins, "amount") == ["350", "-5", "-100", "-10"]
    assert coins["closing"] == {"units": "235", "money": None}
    value = ok(await ask(gql, day, "user:ana:coins_value", "ana", "viewer"))
    assert value["closing"]["units"] == "3350429"

    for other in (
        "user:bo:coins",  # exists: Bo streams, holds no coins yet
        "user:zed:coins",  # no such wallet: the same answer
        "creator:bo:diamonds:pending",
        "platform:clearing:paypal:USD",
        "platform:nothing",
    ):
        reply = await ask(gql, day, other, "ana", "viewer")
        assert code_of(reply) == "FORBIDDEN", other
        assert reply["errors"][0]["message"] == f"You may not read the statement of {other}"


async def test_a_wallet_not_opened_yet_reads_empty_to_its_owner(
    gql: GraphQLClient, day: Day
) -> None:
    found = ok(await ask(gql, day, "user:cy:coins_value", "cy", "viewer"))
    assert (found["commodity"], found["movementCount"]) == ("USD", "0")
    assert found["closing"] == {"units": "0", "money": {"amount": "0.00", "currency": "USD"}}
    assert found["movements"] == {
        "edges": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
    }


async def test_a_creator_reads_their_own_diamonds_and_payable_only(
    gql: GraphQLClient, day: Day
) -> None:
    pending = ok(await ask(gql, day, "creator:bo:diamonds:pending", "bo", "creator"))
    assert amounts(pending, "amount") == ["5", "100", "-105"]
    assert [e["node"]["kind"] for e in pending["movements"]["edges"]] == [
        "gift",
        "gift",
        "hold_release",
    ]
    available = ok(await ask(gql, day, "creator:bo:diamonds:available", "bo", "creator"))
    assert available["closing"]["units"] == "105"
    reserved = ok(await ask(gql, day, "creator:bo:diamonds:reserved", "bo", "creator"))
    assert reserved["closing"]["units"] == "0"
    payable = ok(await ask(gql, day, "creator:bo:payable", "bo", "creator"))
    assert amounts(payable, "amount") == ["25000", "500000"]
    assert payable["closing"]["money"] == {"amount": "0.525", "currency": "USD"}

    for other in ("user:ana:coins", "creator:cy:diamonds:pending", "platform:revenue:gifts"):
        assert code_of(await ask(gql, day, other, "bo", "creator")) == "FORBIDDEN", other
    # a viewer is not a creator: Bo's diamonds are not Ana's to read, nor Bo's without the role
    assert code_of(await ask(gql, day, "creator:bo:payable", "bo", "viewer")) == "FORBIDDEN"


async def test_support_reads_users_and_creators_but_not_the_platform(
    gql: GraphQLClient, day: Day
) -> None:
    coins = ok(await ask(gql, day, "user:ana:coins", "sam", "support"))
    assert coins["closing"]["units"] == "235"
    payable = ok(await ask(gql, day, "creator:bo:payable", "sam", "support"))
    assert payable["closing"]["units"] == "525000"
    reply = await ask(gql, day, "platform:clearing:paypal:USD", "sam", "support")
    assert code_of(reply) == "FORBIDDEN"


@pytest.mark.parametrize(
    "code", ["user:ana:coins", "creator:bo:payable", "platform:clearing:paypal:USD"]
)
async def test_admin_is_refused_and_anonymous_must_sign_in(
    gql: GraphQLClient, day: Day, code: str
) -> None:
    assert code_of(await ask(gql, day, code, "root", "admin")) == "FORBIDDEN"
    assert code_of(await ask(gql, day, code, None)) == "UNAUTHENTICATED"


async def test_pages_over_http_add_up_to_the_period_with_the_same_totals(
    gql: GraphQLClient, day: Day
) -> None:
    whole = ok(await ask(gql, day, "user:ana:coins", "ana", "viewer"))
    edges: list[dict[str, Any]] = []
    after: str | None = None
    pages = 0
    while True:
        page = ok(await ask(gql, day, "user:ana:coins", "ana", "viewer", first=3, after=after))
        pages += 1
        edges += page["movements"]["edges"]
        for field in ("opening", "closing", "totalIn", "totalOut", "movementCount"):
            assert page[field] == whole[field], field
        if not page["movements"]["pageInfo"]["hasNextPage"]:
            break
        after = page["movements"]["pageInfo"]["endCursor"]
    assert pages == 2
    assert [e["node"] for e in edges] == [e["node"] for e in whole["movements"]["edges"]]


async def test_a_wrong_period_page_size_or_cursor_is_bad_user_input(
    gql: GraphQLClient, day: Day
) -> None:
    def asked(**variables: Any) -> dict[str, Any]:
        return {**period(day, code="user:ana:coins"), **variables}

    backwards = asked(**{"from": day.end.isoformat(), "to": day.start.isoformat()})
    empty = asked(to=day.start.isoformat())
    for variables in (backwards, empty, asked(first=0), asked(after="bm90LWEtY3Vyc29y")):
        reply = await gql(STATEMENT, variables, user="fin", roles=("finance",))
        assert code_of(reply) == "BAD_USER_INPUT", variables

    naive = asked(**{"from": day.start.replace(tzinfo=None).isoformat()})
    refused = await gql(STATEMENT, naive, user="fin", roles=("finance",))
    (error,) = refused["errors"]  # the DateTime scalar's: a request error naming the variable
    assert error["message"].startswith("Variable '$from' has invalid value")
    assert "Give its offset" in error["message"]


async def test_a_period_before_any_movement_is_empty_over_http(
    gql: GraphQLClient, day: Day
) -> None:
    earlier = {"from": (day.start - timedelta(days=1)).isoformat(), "to": day.start.isoformat()}
    reply = await gql(
        STATEMENT, {"code": "user:ana:coins", **earlier}, user="ana", roles=("viewer",)
    )
    found = ok(reply)
    assert (found["opening"]["units"], found["closing"]["units"]) == ("0", "0")
    assert found["movements"]["edges"] == []


async def test_a_cursor_of_the_previous_release_or_of_another_statement_is_refused(
    gql: GraphQLClient, day: Day
) -> None:
    """Cursors hold the movement's instant and posting: one that held its number alone
    ("statement:3"), or one of another account's statement, is BAD_USER_INPUT."""
    old = base64.urlsafe_b64encode(b"statement:3").decode()
    reply = await ask(gql, day, "user:ana:coins", "fin", "finance", first=1, after=old)
    assert code_of(reply) == "BAD_USER_INPUT"
    assert reply["errors"][0]["message"] == "'after' is not a cursor from this list"

    value = ok(await ask(gql, day, "user:ana:coins_value", "fin", "finance", first=1))
    other = value["movements"]["pageInfo"]["endCursor"]
    reply = await ask(gql, day, "user:ana:coins", "fin", "finance", first=1, after=other)
    assert code_of(reply) == "BAD_USER_INPUT"


PAGE_WITHOUT_TOTALS = """
query Page($code: String!, $from: DateTime!, $to: DateTime!, $after: String) {
  accountStatement(accountCode: $code, from: $from, to: $to, first: 2, after: $after) {
    opening { units } closing { units } movementCount
    movements { edges { node { amount { units } balanceAfter { units } } }
                pageInfo { hasNextPage endCursor } }
  }
}
"""
TOTALS_IN_A_FRAGMENT = """
query Totals($code: String!, $from: DateTime!, $to: DateTime!) {
  accountStatement(accountCode: $code, from: $from, to: $to, first: 1) { ...Totals }
}
fragment Totals on AccountStatement { ... on AccountStatement { totalIn { units } }
                                      totalOut { units } }
"""


async def test_pages_read_without_totals_and_totals_asked_in_a_fragment(
    gql: GraphQLClient, day: Day
) -> None:
    """Ana's coins: 350 in, then 5, 100 and 10 out. Pages of two that do not ask for the
    totals (the one figure that reads the whole period) give the rest as always; the totals
    asked through fragments are 350 in and 5 + 100 + 10 = 115 out."""
    variables = period(day, code="user:ana:coins")
    one = ok(await gql(PAGE_WITHOUT_TOTALS, variables, user="ana", roles=("viewer",)))
    after = one["movements"]["pageInfo"]["endCursor"]
    two = ok(await gql(PAGE_WITHOUT_TOTALS, {**variables, "after": after}, user="ana"))
    for page in (one, two):
        assert (page["opening"], page["closing"], page["movementCount"]) == (
            {"units": "0"},
            {"units": "235"},
            "4",
        )
    walked = [e["node"] for page in (one, two) for e in page["movements"]["edges"]]
    assert [(n["amount"]["units"], n["balanceAfter"]["units"]) for n in walked] == [
        ("350", "350"),
        ("-5", "345"),
        ("-100", "245"),
        ("-10", "235"),
    ]
    assert not two["movements"]["pageInfo"]["hasNextPage"]

    totals = ok(await gql(TOTALS_IN_A_FRAGMENT, variables, user="ana", roles=("viewer",)))
    assert totals == {"totalIn": {"units": "350"}, "totalOut": {"units": "115"}}
