"""Buying coins over GraphQL: the purchaseCoins mutation, coinPackages, purchases and purchase(id),
through the real ASGI app over HTTP. Every payload's error count and code is asserted, and every
refused or declined purchase is shown to leave the wallet and the books as they were."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.ledger.money import FIAT_CODES
from accounting.ledger.tables import FxRateRow
from accounting.policy import standing
from tests.conftest import GraphQLClient

PURCHASE_COINS = """
mutation PurchaseCoins($input: PurchaseCoinsInput!) {
  purchaseCoins(input: $input) {
    purchase {
      id userId status packageCode coins bonusCoins channel provider
      price { amount currency }
      failureCode failureMessage providerReference entryId createdAt settledAt
    }
    wallet { userId coins coinsValue { amount currency } }
    replayed
    errors { code message field }
  }
}
"""

WALLET = "query { wallet { coins coinsValue { amount currency } } }"

PURCHASE_IDS = """
query Purchases($first: Int!, $after: String) {
  purchases(first: $first, after: $after) {
    edges { cursor node { id status } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

MOVEMENT_COUNT = "query { transactions(first: 100) { edges { node { entryId } } } }"

_keys = itertools.count(1)


def new_key() -> str:
    return f"purchase-key-{next(_keys):06d}"


def purchase_input(key: str | None = None, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "idempotencyKey": key or new_key(),
        "currency": "USD",
        "channel": "WEB",
        "provider": "CARD",
        "paymentToken": "tok_success",
        "packageCode": "coins_350",
    }
    fields.update(overrides)
    return {"input": fields}


async def purchase_coins(
    gql: GraphQLClient, user: str = "ana", key: str | None = None, **overrides: Any
) -> dict[str, Any]:
    """The purchaseCoins payload; the request itself must raise no top-level error."""
    reply = await gql(PURCHASE_COINS, purchase_input(key, **overrides), user=user)
    assert "errors" not in reply, reply
    payload: dict[str, Any] = reply["data"]["purchaseCoins"]
    return payload


async def wallet(gql: GraphQLClient, user: str = "ana") -> dict[str, Any]:
    reply = await gql(WALLET, user=user)
    assert "errors" not in reply, reply
    found: dict[str, Any] = reply["data"]["wallet"]
    return found


async def books_seen_by(gql: GraphQLClient, user: str = "ana") -> tuple[Any, ...]:
    """What a refused purchase must not change: the wallet, the purchases, the movements."""
    purchases = await gql(PURCHASE_IDS, {"first": 100}, user=user)
    movements = await gql(MOVEMENT_COUNT, user=user)
    assert "errors" not in purchases and "errors" not in movements
    return (
        await wallet(gql, user),
        [edge["node"] for edge in purchases["data"]["purchases"]["edges"]],
        len(movements["data"]["transactions"]["edges"]),
    )


def the_only_error(reply: dict[str, Any]) -> dict[str, Any]:
    """A top-level error: exactly one, and no data."""
    assert reply["data"] is None, reply
    assert len(reply["errors"]) == 1, reply
    error: dict[str, Any] = reply["errors"][0]
    return error


# --- purchaseCoins: coins granted -------------------------------------------------------------


async def test_ana_buys_the_350_coin_package_on_the_web_and_holds_350_coins_worth_4_99(
    gql: GraphQLClient,
) -> None:
    payload = await purchase_coins(gql, key="ana-first-purchase")

    assert payload["errors"] == []
    assert payload["replayed"] is False
    purchase = payload["purchase"]
    assert purchase["userId"] == "ana"
    assert purchase["status"] == "COMPLETED"
    assert purchase["packageCode"] == "coins_350"
    assert (purchase["coins"], purchase["bonusCoins"]) == ("350", "0")
    assert (purchase["channel"], purchase["provider"]) == ("WEB", "CARD")
    assert purchase["price"] == {"amount": "4.99", "currency": "USD"}
    assert purchase["failureCode"] is None and purchase["failureMessage"] is None
    assert purchase["providerReference"].startswith("sbx_card_")
    assert purchase["entryId"] is not None
    assert purchase["settledAt"] is not None
    assert payload["wallet"] == {
        "userId": "ana",
        "coins": "350",
        "coinsValue": {"amount": "4.99", "currency": "USD"},
    }
    assert await wallet(gql) == {
        "coins": "350",
        "coinsValue": {"amount": "4.99", "currency": "USD"},
    }


async def test_the_17500_coin_package_grants_its_875_bonus_coins_too(gql: GraphQLClient) -> None:
    payload = await purchase_coins(gql, packageCode="coins_17500")

    assert payload["errors"] == []
    assert (payload["purchase"]["coins"], payload["purchase"]["bonusCoins"]) == ("17500", "875")
    assert payload["wallet"]["coins"] == "18375"
    assert payload["wallet"]["coinsValue"] == {"amount": "234.99", "currency": "USD"}


async def test_a_custom_amount_on_the_web_is_priced_per_coin_and_rounded_up_to_a_cent(
    gql: GraphQLClient,
) -> None:
    # 101 coins at $0.0143 = $1.4443, charged as $1.45: cash is whole cents.
    payload = await purchase_coins(gql, packageCode=None, customCoins="101")

    assert payload["errors"] == []
    purchase = payload["purchase"]
    assert purchase["status"] == "COMPLETED"
    assert purchase["packageCode"] is None
    assert (purchase["coins"], purchase["bonusCoins"]) == ("101", "0")
    assert purchase["price"] == {"amount": "1.45", "currency": "USD"}
    assert payload["wallet"]["coins"] == "101"
    assert payload["wallet"]["coinsValue"] == {"amount": "1.45", "currency": "USD"}


async def test_a_euro_purchase_converts_into_dollars_at_the_seeded_rate_1_08(
    gql: GraphQLClient,
) -> None:
    payload = await purchase_coins(gql, currency="EUR", packageCode="coins_500")

    assert payload["errors"] == []
    assert payload["purchase"]["price"] == {"amount": "4.99", "currency": "EUR"}
    # EUR 4.99 x 1.08 = USD 5.3892: deferred value is kept in micro-units, not rounded to cents.
    assert payload["wallet"] == {
        "userId": "ana",
        "coins": "500",
        "coinsValue": {"amount": "5.3892", "currency": "USD"},
    }


async def test_a_yen_purchase_has_no_decimals_and_converts_at_0_0067(gql: GraphQLClient) -> None:
    payload = await purchase_coins(gql, currency="JPY", packageCode="coins_350")

    assert payload["errors"] == []
    assert payload["purchase"]["price"] == {"amount": "800", "currency": "JPY"}
    assert payload["wallet"]["coinsValue"] == {"amount": "5.36", "currency": "USD"}


async def test_on_ios_apple_takes_the_payment_at_the_higher_app_store_price(
    gql: GraphQLClient,
) -> None:
    payload = await purchase_coins(gql, channel="IOS", provider="APPLE")

    assert payload["errors"] == []
    assert payload["purchase"]["status"] == "COMPLETED"
    assert payload["purchase"]["price"] == {"amount": "5.49", "currency": "USD"}
    assert payload["purchase"]["providerReference"].startswith("sbx_apple_")
    assert payload["wallet"]["coins"] == "350"


async def test_the_same_idempotency_key_is_a_different_purchase_for_another_user(
    gql: GraphQLClient,
) -> None:
    ana = await purchase_coins(gql, user="ana", key="shared-key-0001")
    bo = await purchase_coins(gql, user="bo", key="shared-key-0001")

    assert ana["errors"] == [] and bo["errors"] == []
    assert ana["replayed"] is False and bo["replayed"] is False
    assert ana["purchase"]["id"] != bo["purchase"]["id"]
    assert (await wallet(gql, "ana"))["coins"] == "350"
    assert (await wallet(gql, "bo"))["coins"] == "350"


# --- purchaseCoins: refused before any charge ---------------------------------------------------

REFUSALS: list[tuple[str, dict[str, Any], str, str]] = [
    ("INVALID_IDEMPOTENCY_KEY", {"idempotencyKey": "short"}, "idempotencyKey", "8-128"),
    ("INVALID_IDEMPOTENCY_KEY", {"idempotencyKey": "has a space"}, "idempotencyKey", "8-128"),
    ("PACKAGE_NOT_FOUND", {"packageCode": "coins_999"}, "packageCode", "coins_999"),
    ("PRICE_NOT_AVAILABLE", {"currency": "EUR", "packageCode": "coins_70"}, "currency", "EUR"),
    (
        "PRICE_NOT_AVAILABLE",
        {"channel": "ANDROID", "provider": "GOOGLE", "packageCode": None, "customCoins": "100"},
        "channel",
        "web only",
    ),
    ("PRICE_NOT_AVAILABLE", {"currency": "CAD"}, "currency", "CAD"),
    (
        "CUSTOM_AMOUNT_OUT_OF_RANGE",
        {"packageCode": None, "customCoins": "29"},
        "customCoins",
        "30 to 2500000",
    ),
    (
        "CUSTOM_AMOUNT_OUT_OF_RANGE",
        {"packageCode": None, "customCoins": 2_500_001},
        "customCoins",
        "30 to 2500000",
    ),
    ("INVALID_AMOUNT", {"packageCode": None, "customCoins": "0"}, "customCoins", "out of range"),
    ("INVALID_AMOUNT", {"customCoins": "100"}, "packageCode", "either"),
    ("INVALID_AMOUNT", {"packageCode": None}, "packageCode", "either"),
    ("INVALID_AMOUNT", {"paymentToken": ""}, "paymentToken", "1-200"),
    ("PROVIDER_NOT_AVAILABLE", {"channel": "IOS", "provider": "CARD"}, "provider", "card"),
    ("PROVIDER_NOT_AVAILABLE", {"channel": "ANDROID", "provider": "APPLE"}, "provider", "apple"),
    ("PROVIDER_NOT_AVAILABLE", {"channel": "WEB", "provider": "GOOGLE"}, "provider", "google"),
]


@pytest.mark.parametrize(
    ("code", "overrides", "field", "message_part"),
    REFUSALS,
    ids=[f"{code}-{i}" for i, (code, *_) in enumerate(REFUSALS)],
)
async def test_a_refused_purchase_names_its_code_and_field_and_changes_nothing(
    gql: GraphQLClient, code: str, overrides: dict[str, Any], field: str, message_part: str
) -> None:
    await purchase_coins(gql)  # Ana already holds 350 coins: they must stay exactly so.
    before = await books_seen_by(gql)

    payload = await purchase_coins(gql, **overrides)

    assert len(payload["errors"]) == 1, payload
    assert payload["errors"][0]["code"] == code
    assert payload["errors"][0]["field"] == field
    assert message_part in payload["errors"][0]["message"]
    assert payload["purchase"] is None
    assert payload["wallet"] is None
    assert payload["replayed"] is False
    assert await books_seen_by(gql) == before


async def test_without_an_exchange_rate_in_force_a_euro_purchase_is_refused_with_fx_rate_missing(
    gql: GraphQLClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as session, session.begin():
        await session.execute(
            update(FxRateRow)
            .where(FxRateRow.base == "EUR")
            .values(valid_from=FxRateRow.valid_from + timedelta(days=36500))
        )
    before = await books_seen_by(gql)

    payload = await purchase_coins(gql, currency="EUR", packageCode="coins_500")

    assert len(payload["errors"]) == 1, payload
    assert payload["errors"][0]["code"] == "FX_RATE_MISSING"
    assert payload["errors"][0]["field"] == "currency"
    assert "EUR/USD" in payload["errors"][0]["message"]
    assert payload["purchase"] is None
    assert await books_seen_by(gql) == before


async def test_a_frozen_account_cannot_buy_coins(
    gql: GraphQLClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as session, session.begin():
        await standing.set_frozen(
            session, "ana", frozen=True, reason="chargeback under review", actor="user:sam"
        )
    before = await books_seen_by(gql)

    payload = await purchase_coins(gql)

    assert len(payload["errors"]) == 1, payload
    assert payload["errors"][0]["code"] == "ACCOUNT_FROZEN"
    assert "frozen" in payload["errors"][0]["message"]
    assert payload["purchase"] is None
    assert await books_seen_by(gql) == before


# --- purchaseCoins: declined by the provider ----------------------------------------------------


@pytest.mark.parametrize(
    ("payment_token", "failure_code"),
    [
        ("tok_declined", "card_declined"),
        ("tok_insufficient_funds", "insufficient_funds"),
        ("tok_expired_card", "expired_card"),
        ("tok_not_a_sandbox_token", "invalid_token"),
    ],
)
async def test_a_declined_payment_fails_the_purchase_and_grants_nothing(
    gql: GraphQLClient, payment_token: str, failure_code: str
) -> None:
    await purchase_coins(gql)
    before_wallet = await wallet(gql)

    payload = await purchase_coins(gql, paymentToken=payment_token, packageCode="coins_700")

    assert len(payload["errors"]) == 1, payload
    assert payload["errors"][0]["code"] == "PAYMENT_DECLINED"
    assert payload["errors"][0]["field"] == "paymentToken"
    assert failure_code in payload["errors"][0]["message"]
    purchase = payload["purchase"]
    assert purchase["status"] == "FAILED"
    assert purchase["failureCode"] == failure_code
    assert purchase["entryId"] is None
    assert purchase["settledAt"] is not None
    assert payload["replayed"] is False
    assert payload["wallet"]["coins"] == "350"
    assert before_wallet == {"coins": "350", "coinsValue": {"amount": "4.99", "currency": "USD"}}
    assert await wallet(gql) == before_wallet


async def test_retrying_a_declined_purchase_with_its_key_shows_the_same_failure_again(
    gql: GraphQLClient,
) -> None:
    first = await purchase_coins(gql, key="ana-declined-01", paymentToken="tok_declined")
    again = await purchase_coins(gql, key="ana-declined-01", paymentToken="tok_declined")

    assert [e["code"] for e in first["errors"]] == ["PAYMENT_DECLINED"]
    assert [e["code"] for e in again["errors"]] == ["PAYMENT_DECLINED"]
    assert again["replayed"] is True
    assert again["purchase"]["id"] == first["purchase"]["id"]
    assert again["purchase"]["status"] == "FAILED"
    assert (await wallet(gql))["coins"] == "0"


# --- purchaseCoins: no answer from the provider -------------------------------------------------


async def test_a_timeout_leaves_the_purchase_pending_and_the_retry_grants_the_coins_once(
    gql: GraphQLClient,
) -> None:
    pending = await purchase_coins(gql, key="ana-timeout-0001", paymentToken="tok_timeout")

    assert pending["errors"] == []
    assert pending["replayed"] is False
    assert pending["purchase"]["status"] == "PENDING"
    assert pending["purchase"]["entryId"] is None
    assert pending["purchase"]["settledAt"] is None
    assert pending["wallet"]["coins"] == "0"

    retried = await purchase_coins(gql, key="ana-timeout-0001", paymentToken="tok_timeout")

    assert retried["errors"] == []
    assert retried["replayed"] is True
    assert retried["purchase"]["id"] == pending["purchase"]["id"]
    assert retried["purchase"]["status"] == "COMPLETED"
    assert retried["purchase"]["entryId"] is not None
    assert retried["wallet"]["coins"] == "350"

    once_more = await purchase_coins(gql, key="ana-timeout-0001", paymentToken="tok_timeout")

    assert once_more["purchase"]["entryId"] == retried["purchase"]["entryId"]
    assert await wallet(gql) == {
        "coins": "350",
        "coinsValue": {"amount": "4.99", "currency": "USD"},
    }
    _, purchases, movements = await books_seen_by(gql)
    assert purchases == [{"id": pending["purchase"]["id"], "status": "COMPLETED"}]
    assert movements == 1


@pytest.mark.parametrize(
    ("payment_token", "failure_code"),
    [("tok_timeout_declined", "card_declined"), ("tok_timeout_lost", "not_charged")],
)
async def test_a_timeout_the_provider_declined_or_never_received_fails_on_retry(
    gql: GraphQLClient, payment_token: str, failure_code: str
) -> None:
    pending = await purchase_coins(gql, key="ana-timeout-0002", paymentToken=payment_token)
    assert pending["errors"] == []
    assert pending["purchase"]["status"] == "PENDING"

    retried = await purchase_coins(gql, key="ana-timeout-0002", paymentToken=payment_token)

    assert [e["code"] for e in retried["errors"]] == ["PAYMENT_DECLINED"]
    assert retried["replayed"] is True
    assert retried["purchase"]["status"] == "FAILED"
    assert retried["purchase"]["failureCode"] == failure_code
    assert retried["purchase"]["entryId"] is None
    assert await wallet(gql) == {"coins": "0", "coinsValue": {"amount": "0.00", "currency": "USD"}}


# --- purchaseCoins: idempotency -----------------------------------------------------------------


async def test_the_same_key_and_request_replays_the_first_purchase_and_grants_nothing_new(
    gql: GraphQLClient,
) -> None:
    first = await purchase_coins(gql, key="ana-replay-0001")
    again = await purchase_coins(gql, key="ana-replay-0001")

    assert first["replayed"] is False
    assert again["replayed"] is True
    assert again["errors"] == []
    assert again["purchase"] == first["purchase"]
    assert again["wallet"] == first["wallet"]
    assert (await wallet(gql))["coins"] == "350"
    _, purchases, movements = await books_seen_by(gql)
    assert len(purchases) == 1 and movements == 1


async def test_the_same_key_with_a_different_request_is_refused_as_idempotency_key_reused(
    gql: GraphQLClient,
) -> None:
    await purchase_coins(gql, key="ana-reused-00001")
    before = await books_seen_by(gql)

    payload = await purchase_coins(gql, key="ana-reused-00001", packageCode="coins_700")

    assert len(payload["errors"]) == 1, payload
    assert payload["errors"][0]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert payload["errors"][0]["field"] == "idempotencyKey"
    assert payload["purchase"] is None
    assert payload["replayed"] is False
    assert await books_seen_by(gql) == before


async def test_five_concurrent_requests_with_one_key_buy_the_coins_once(gql: GraphQLClient) -> None:
    variables = purchase_input("ana-concurrent-01")
    replies = await asyncio.gather(*(gql(PURCHASE_COINS, variables, user="ana") for _ in range(5)))

    payloads = [reply["data"]["purchaseCoins"] for reply in replies]
    assert all(p["errors"] == [] for p in payloads), payloads
    assert sorted(p["replayed"] for p in payloads) == [False, True, True, True, True]
    assert len({p["purchase"]["id"] for p in payloads}) == 1
    assert {p["purchase"]["status"] for p in payloads} == {"COMPLETED"}
    assert (await wallet(gql))["coins"] == "350"


async def test_every_purchase_coins_error_code_is_exercised_here(gql: GraphQLClient) -> None:
    reply = await gql('{ __type(name: "PurchaseCoinsErrorCode") { enumValues { name } } }')
    assert "errors" not in reply, reply
    declared = {value["name"] for value in reply["data"]["__type"]["enumValues"]}
    exercised = {code for code, *_ in REFUSALS} | {
        "IDEMPOTENCY_KEY_REUSED",
        "FX_RATE_MISSING",
        "PAYMENT_DECLINED",
        "ACCOUNT_FROZEN",
        "PURCHASE_LIMIT_EXCEEDED",  # tests/graphql/test_graphql_limits.py
    }
    assert declared == exercised


# --- coinPackages ---------------------------------------------------------------------------------

COIN_PACKAGES = """
query CoinPackages($currency: Currency!, $channel: Channel!) {
  coinPackages(currency: $currency, channel: $channel) {
    code coins bonusCoins totalCoins channel
    price { amount currency }
    costPerCoin { amount currency }
  }
}
"""


async def coin_packages(gql: GraphQLClient, currency: str, channel: str) -> list[dict[str, Any]]:
    reply = await gql(COIN_PACKAGES, {"currency": currency, "channel": channel}, user="ana")
    assert "errors" not in reply, reply
    found: list[dict[str, Any]] = reply["data"]["coinPackages"]
    return found


async def test_coin_packages_are_ranked_by_cost_per_coin_best_value_first(
    gql: GraphQLClient,
) -> None:
    packages = await coin_packages(gql, "USD", "WEB")

    assert [p["code"] for p in packages] == [
        "coins_17500",
        "coins_7000",
        "coins_3500",
        "coins_1400",
        "coins_700",
        "coins_350",
        "coins_70",
    ]
    costs = [Decimal(p["costPerCoin"]["amount"]) for p in packages]
    assert costs == sorted(costs)
    assert packages[0]["costPerCoin"] == {"amount": "0.012789", "currency": "USD"}
    assert packages[0]["totalCoins"] == "18375"
    assert all(p["channel"] == "WEB" for p in packages)
    assert all(p["price"]["currency"] == "USD" for p in packages)
    assert {p["code"]: p["price"]["amount"] for p in packages}["coins_350"] == "4.99"


@pytest.mark.parametrize("app_store", ["IOS", "ANDROID"])
async def test_app_store_prices_are_higher_than_web_prices_for_every_package(
    gql: GraphQLClient, app_store: str
) -> None:
    web = {p["code"]: p["price"]["amount"] for p in await coin_packages(gql, "USD", "WEB")}
    store = {p["code"]: p["price"]["amount"] for p in await coin_packages(gql, "USD", app_store)}

    assert store.keys() == web.keys()
    assert store["coins_350"] == "5.49"
    for code, web_price in web.items():
        assert Decimal(store[code]) > Decimal(web_price), code


async def test_coin_packages_in_euros_list_only_packages_with_a_euro_price(
    gql: GraphQLClient,
) -> None:
    packages = await coin_packages(gql, "EUR", "WEB")

    assert {p["code"] for p in packages} == {
        "coins_100",
        "coins_500",
        "coins_1000",
        "coins_3500",
        "coins_7000",
    }
    assert all(p["price"]["currency"] == "EUR" for p in packages)
    assert await coin_packages(gql, "CAD", "WEB") == []


# --- purchases (connection) and purchase(id) -------------------------------------------------


async def test_purchases_page_by_keyset_newest_first_each_exactly_once(gql: GraphQLClient) -> None:
    tokens = ["tok_success", "tok_declined", "tok_timeout", "tok_success"] * 2
    bought = [(await purchase_coins(gql, paymentToken=t))["purchase"]["id"] for t in tokens[:7]]
    await purchase_coins(gql, user="bo")  # Bo's purchase is not in Ana's list.

    seen: list[str] = []
    pages: list[int] = []
    after = None
    while True:
        reply = await gql(PURCHASE_IDS, {"first": 3, "after": after}, user="ana")
        assert "errors" not in reply, reply
        page = reply["data"]["purchases"]
        pages.append(len(page["edges"]))
        seen += [edge["node"]["id"] for edge in page["edges"]]
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]

    assert pages == [3, 3, 1]
    assert seen == list(reversed(bought))


async def test_an_empty_purchase_list_has_no_next_page_and_no_cursor(gql: GraphQLClient) -> None:
    reply = await gql(PURCHASE_IDS, {"first": 10}, user="ana")

    assert "errors" not in reply, reply
    assert reply["data"]["purchases"] == {
        "edges": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
    }


@pytest.mark.parametrize(
    ("first", "after", "message_part"),
    [
        (101, None, "'first' is 1 to 100"),
        (0, None, "'first' is 1 to 100"),
        (-5, None, "'first' is 1 to 100"),
        (10, "garbage", "not a cursor"),
        (10, "bW92ZW1lbnQ6Mw==", "not a cursor"),  # movement:3, a cursor of another list
        (10, "cHVyY2hhc2U6OTk5OTk5OTk5OTk5OTk5OTk5OTk5", "not a cursor"),  # beyond a bigint
    ],
)
async def test_purchases_refuse_a_bad_page_size_or_cursor_as_bad_user_input(
    gql: GraphQLClient, first: int, after: str | None, message_part: str
) -> None:
    reply = await gql(PURCHASE_IDS, {"first": first, "after": after}, user="ana")

    error = the_only_error(reply)
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert message_part in error["message"]
    assert error["path"] == ["purchases"]


async def test_support_lists_another_users_purchases_and_a_viewer_may_not(
    gql: GraphQLClient,
) -> None:
    bought = await purchase_coins(gql, user="ana")
    query = 'query { purchases(userId: "ana") { edges { node { id userId } } } }'

    by_support = await gql(query, user="sue", roles=("support",))
    by_bo = await gql(query, user="bo")

    assert "errors" not in by_support, by_support
    assert by_support["data"]["purchases"]["edges"] == [
        {"node": {"id": bought["purchase"]["id"], "userId": "ana"}}
    ]
    assert the_only_error(by_bo)["extensions"]["code"] == "FORBIDDEN"


PURCHASE = "query Purchase($id: ID!) { purchase(id: $id) { id userId status coins } }"


async def test_a_purchase_is_readable_by_its_owner_and_by_support_but_not_another_viewer(
    gql: GraphQLClient,
) -> None:
    """To another viewer, Ana's purchase answers as one that does not exist."""
    purchase_id = (await purchase_coins(gql, user="ana"))["purchase"]["id"]
    expected = {"id": purchase_id, "userId": "ana", "status": "COMPLETED", "coins": "350"}

    by_ana = await gql(PURCHASE, {"id": purchase_id}, user="ana")
    by_support = await gql(PURCHASE, {"id": purchase_id}, user="sue", roles=("support",))
    by_finance = await gql(PURCHASE, {"id": purchase_id}, user="fin", roles=("finance",))
    by_bo = await gql(PURCHASE, {"id": purchase_id}, user="bo")

    assert by_ana == {"data": {"purchase": expected}}
    assert by_support == {"data": {"purchase": expected}}
    assert by_finance == {"data": {"purchase": expected}}
    assert by_bo == {"data": {"purchase": None}}


@pytest.mark.parametrize("purchase_id", ["424242", "not-a-number", "99999999999999999999", "-1"])
async def test_an_unknown_purchase_is_null(gql: GraphQLClient, purchase_id: str) -> None:
    reply = await gql(PURCHASE, {"id": purchase_id}, user="ana")

    assert reply == {"data": {"purchase": None}}


@pytest.mark.parametrize("currency", ["XYZ", "COIN", "usd", ""])
async def test_a_currency_the_ledger_does_not_keep_is_refused_by_the_schema_and_changes_nothing(
    gql: GraphQLClient, currency: str
) -> None:
    """Currency is an enum of the ledger's ISO 4217 codes: anything else is a request error
    naming the variable and the enum, before a resolver runs."""
    await purchase_coins(gql)
    before = await books_seen_by(gql)

    reply = await gql(PURCHASE_COINS, purchase_input(None, currency=currency), user="ana")
    packages = await gql(
        "query($c: Currency!) { coinPackages(currency: $c, channel: WEB) { code } }",
        {"c": currency},
    )

    for refused in (reply, packages):
        assert refused["data"] is None, refused
        [error] = refused["errors"]
        assert "extensions" not in error  # a request error: nothing ran
        assert f"Value '{currency}' does not exist in 'Currency' enum" in error["message"]
    assert await books_seen_by(gql) == before


async def test_every_currency_of_the_ledger_is_in_the_currency_enum(gql: GraphQLClient) -> None:
    reply = await gql('{ __type(name: "Currency") { enumValues { name } } }')

    names = [value["name"] for value in reply["data"]["__type"]["enumValues"]]
    assert names == list(FIAT_CODES)
