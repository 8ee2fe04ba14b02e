"""Wallets over GraphQL: what a user holds now and at any past instant, who may read it, and the
history of its movements in keyset pages, through the real ASGI app over HTTP."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest

from schema.nodes import pk_of
from tests.conftest import GraphQLClient

PURCHASE_COINS = """
mutation PurchaseCoins($input: PurchaseCoinsInput!) {
  purchaseCoins(input: $input) {
    purchase { id status entryId settledAt }
    errors { code }
  }
}
"""

WALLET = """
query Wallet($userId: String, $asOf: DateTime) {
  wallet(userId: $userId, asOf: $asOf) { userId coins coinsValue { amount currency } asOf }
}
"""

TRANSACTIONS = """
query Transactions($userId: String, $first: Int!, $after: String) {
  transactions(userId: $userId, first: $first, after: $after) {
    edges {
      cursor
      node {
        entryId kind postedAt coins coinsAfter
        value { amount currency }
        memo purchaseId
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""

_keys = itertools.count(1)


async def purchase_coins(
    gql: GraphQLClient,
    user: str = "ana",
    package: str = "coins_350",
    currency: str = "USD",
    payment_token: str = "tok_success",
) -> dict[str, Any]:
    variables = {
        "input": {
            "idempotencyKey": f"wallet-key-{next(_keys):06d}",
            "currency": currency,
            "channel": "WEB",
            "provider": "CARD",
            "paymentToken": payment_token,
            "packageCode": package,
        }
    }
    reply = await gql(PURCHASE_COINS, variables, user=user)
    assert "errors" not in reply, reply
    payload: dict[str, Any] = reply["data"]["purchaseCoins"]
    return payload["purchase"]  # type: ignore[no-any-return]


async def read_wallet(
    gql: GraphQLClient,
    user: str = "ana",
    roles: tuple[str, ...] = ("viewer",),
    **variables: Any,
) -> dict[str, Any]:
    reply = await gql(WALLET, variables, user=user, roles=roles)
    assert "errors" not in reply, reply
    found: dict[str, Any] = reply["data"]["wallet"]
    return found


def the_only_error(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["data"] is None, reply
    assert len(reply["errors"]) == 1, reply
    error: dict[str, Any] = reply["errors"][0]
    return error


def usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


# --- wallet ---------------------------------------------------------------------------------------


async def test_a_new_user_holds_no_coins_and_no_value(gql: GraphQLClient) -> None:
    assert await read_wallet(gql) == {
        "userId": "ana",
        "coins": "0",
        "coinsValue": usd("0.00"),
        "asOf": None,
    }


async def test_ana_reads_her_own_wallet_after_buying_in_dollars_and_euros(
    gql: GraphQLClient,
) -> None:
    await purchase_coins(gql, package="coins_350")
    await purchase_coins(gql, package="coins_500", currency="EUR")
    await purchase_coins(gql, package="coins_700", payment_token="tok_declined")

    # 350 + 500 coins; $4.99 + EUR 4.99 x 1.08 = $10.3792; the declined purchase adds nothing.
    assert await read_wallet(gql) == {
        "userId": "ana",
        "coins": "850",
        "coinsValue": usd("10.3792"),
        "asOf": None,
    }
    assert await read_wallet(gql, userId="ana") == await read_wallet(gql)


async def test_a_wallet_as_of_a_past_instant_shows_the_balance_then(gql: GraphQLClient) -> None:
    first = await purchase_coins(gql, package="coins_350")
    await purchase_coins(gql, package="coins_700")
    first_settled = datetime.fromisoformat(first["settledAt"])

    at_first = await read_wallet(gql, asOf=first["settledAt"])
    just_before = await read_wallet(
        gql, asOf=(first_settled - timedelta(microseconds=1)).isoformat()
    )
    long_ago = await read_wallet(gql, asOf="2026-01-01T00:00:00Z")
    now = await read_wallet(gql)

    assert (at_first["coins"], at_first["coinsValue"]) == ("350", usd("4.99"))
    assert datetime.fromisoformat(at_first["asOf"]) == first_settled
    assert (just_before["coins"], just_before["coinsValue"]) == ("0", usd("0.00"))
    assert (long_ago["coins"], long_ago["coinsValue"]) == ("0", usd("0.00"))
    assert (now["coins"], now["coinsValue"], now["asOf"]) == ("1050", usd("14.88"), None)


@pytest.mark.parametrize("role", ["support", "finance"])
async def test_support_and_finance_read_another_users_wallet(gql: GraphQLClient, role: str) -> None:
    await purchase_coins(gql, user="ana")

    found = await read_wallet(gql, user="staff", roles=(role,), userId="ana")

    assert found == {"userId": "ana", "coins": "350", "coinsValue": usd("4.99"), "asOf": None}


@pytest.mark.parametrize("roles", [("viewer",), ("creator",), ("viewer", "creator", "admin")])
async def test_a_viewer_or_creator_reading_another_users_wallet_is_forbidden(
    gql: GraphQLClient, roles: tuple[str, ...]
) -> None:
    await purchase_coins(gql, user="ana")

    reply = await gql(WALLET, {"userId": "ana"}, user="bo", roles=roles)

    error = the_only_error(reply)
    assert error["extensions"] == {"code": "FORBIDDEN"}
    assert error["message"] == "You may not read another user's wallet"
    assert error["path"] == ["wallet"]


async def test_a_caller_without_a_spending_role_holds_no_wallet_of_their_own(
    gql: GraphQLClient,
) -> None:
    reply = await gql(WALLET, {}, user="adm", roles=("admin",))

    error = the_only_error(reply)
    assert error["extensions"] == {"code": "FORBIDDEN"}
    assert error["message"] == "You may not hold a wallet without the viewer or creator role"


@pytest.mark.parametrize("user_id", ["not a user", "", "x" * 65, "ana;drop"])
async def test_a_malformed_user_id_is_bad_user_input(gql: GraphQLClient, user_id: str) -> None:
    reply = await gql(WALLET, {"userId": user_id}, user="sue", roles=("support",))

    error = the_only_error(reply)
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert "user id" in error["message"]


async def test_an_as_of_that_is_not_a_date_time_is_refused_without_masking(
    gql: GraphQLClient,
) -> None:
    reply = await gql(WALLET, {"asOf": "yesterday"}, user="ana")

    error = the_only_error(reply)
    assert "DateTime" in error["message"]
    assert error.get("extensions", {}).get("code") != "INTERNAL_ERROR"


# --- transactions ------------------------------------------------------------------------------


async def all_movements(
    gql: GraphQLClient, first: int, user: str = "ana", **extra: Any
) -> tuple[list[dict[str, Any]], list[int]]:
    """Every movement, walking the pages; and the size of each page."""
    movements: list[dict[str, Any]] = []
    sizes: list[int] = []
    after = None
    while True:
        reply = await gql(TRANSACTIONS, {"first": first, "after": after, **extra}, user=user)
        assert "errors" not in reply, reply
        page = reply["data"]["transactions"]
        sizes.append(len(page["edges"]))
        movements += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            assert page["pageInfo"]["endCursor"] == (
                page["edges"][-1]["cursor"] if page["edges"] else None
            )
            return movements, sizes
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        after = page["pageInfo"]["endCursor"]


async def test_transactions_page_by_keyset_newest_first_each_movement_exactly_once(
    gql: GraphQLClient,
) -> None:
    packages = ["coins_70", "coins_350", "coins_700", "coins_1400", "coins_70", "coins_350"]
    bought = [await purchase_coins(gql, package=p) for p in packages]
    await purchase_coins(gql, package="coins_700", payment_token="tok_declined")
    await purchase_coins(gql, user="bo")

    movements, sizes = await all_movements(gql, first=4)

    assert sizes == [4, 2]
    # A movement's purchaseId is a reference field: the row id this release.
    rows = [str(pk_of(p["id"], "Purchase")) for p in reversed(bought)]
    assert [m["purchaseId"] for m in movements] == rows
    assert [m["entryId"] for m in movements] == [p["entryId"] for p in reversed(bought)]
    assert [m["coins"] for m in movements] == ["350", "70", "1400", "700", "350", "70"]
    assert {m["kind"] for m in movements} == {"purchase"}
    assert movements[0]["memo"] == "350 coins bought through card"
    # Running balance: each movement's coinsAfter is the one before it plus its coins.
    after = [int(m["coinsAfter"]) for m in reversed(movements)]
    coins = [int(m["coins"]) for m in reversed(movements)]
    assert after == list(itertools.accumulate(coins))
    assert after[-1] == 2940
    posted = [datetime.fromisoformat(m["postedAt"]) for m in movements]
    assert posted == sorted(posted, reverse=True)


async def test_a_page_as_large_as_the_history_has_no_next_page(gql: GraphQLClient) -> None:
    for _ in range(3):
        await purchase_coins(gql)

    movements, sizes = await all_movements(gql, first=3)

    assert sizes == [3]
    assert len(movements) == 3


async def test_a_movement_in_euros_shows_its_value_in_dollars(gql: GraphQLClient) -> None:
    await purchase_coins(gql, package="coins_500", currency="EUR")

    movements, _ = await all_movements(gql, first=10)

    assert len(movements) == 1
    assert (movements[0]["coins"], movements[0]["coinsAfter"]) == ("500", "500")
    assert movements[0]["value"] == usd("5.3892")


async def test_an_empty_history_is_an_empty_page(gql: GraphQLClient) -> None:
    reply = await gql(TRANSACTIONS, {"first": 20}, user="ana")

    assert reply == {
        "data": {
            "transactions": {
                "edges": [],
                "pageInfo": {"hasNextPage": False, "endCursor": None},
            }
        }
    }


async def test_support_reads_another_users_transactions_and_a_viewer_may_not(
    gql: GraphQLClient,
) -> None:
    await purchase_coins(gql, user="ana")
    query = 'query { transactions(userId: "ana") { edges { node { coins } } } }'

    by_support = await gql(query, user="sue", roles=("support",))
    by_bo = await gql(query, user="bo")

    assert by_support == {"data": {"transactions": {"edges": [{"node": {"coins": "350"}}]}}}
    error = the_only_error(by_bo)
    assert error["extensions"] == {"code": "FORBIDDEN"}
    assert error["path"] == ["transactions"]


@pytest.mark.parametrize(
    ("first", "after", "message_part"),
    [
        (101, None, "'first' is 1 to 100"),
        (0, None, "'first' is 1 to 100"),
        (20, "garbage", "not a cursor"),
        (20, "cHVyY2hhc2U6MQ==", "not a cursor"),  # purchase:1, a cursor of another list
        (20, "bW92ZW1lbnQ6OTk5OTk5OTk5OTk5OTk5OTk5OTk5", "not a cursor"),  # beyond a bigint
    ],
)
async def test_transactions_refuse_a_bad_page_size_or_cursor_as_bad_user_input(
    gql: GraphQLClient, first: int, after: str | None, message_part: str
) -> None:
    await purchase_coins(gql)

    reply = await gql(TRANSACTIONS, {"first": first, "after": after}, user="ana")

    error = the_only_error(reply)
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert message_part in error["message"]
    assert error["path"] == ["transactions"]


async def test_a_page_of_100_movements_is_allowed(gql: GraphQLClient) -> None:
    await purchase_coins(gql)

    reply = await gql(TRANSACTIONS, {"first": 100}, user="ana")

    assert "errors" not in reply, reply
    assert len(reply["data"]["transactions"]["edges"]) == 1
