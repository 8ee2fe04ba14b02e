"""Administration over GraphQL, through the real ASGI app over HTTP: the gift and feature catalogs
(upsertGiftType, upsertFeature) and freezing accounts (setAccountFrozen), for admins only. A price
change applies to new gifts only; every refused change leaves everything as it was."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.conftest import GraphQLClient
from tests.gifts.streaming import (
    ADMIN,
    CREATOR,
    FINANCE,
    GIFTS_SENT,
    PURCHASE_COINS,
    SET_ACCOUNT_FROZEN,
    SUPPORT,
    UNLOCK_FEATURE,
    UPSERT_GIFT_TYPE,
    buy_coins,
    data,
    error_code,
    gift_sent,
    new_key,
    send_gift,
    start_stream,
    the_only_payload_error,
    upsert_gift_type,
    wallet,
)

UPSERT_FEATURE = """
mutation UpsertFeature($input: UpsertFeatureInput!) {
  upsertFeature(input: $input) {
    feature { code name coinPrice kind active updatedAt }
    errors { code message field }
  }
}
"""

GIFT_CATALOG = """
query { giftCatalog(includeRetired: true) { code name coinPrice tier animation active updatedAt } }
"""

FEATURE_CATALOG = """
query { featureCatalog(includeRetired: true) { code name coinPrice kind active updatedAt } }
"""

ENTRY_OF_MOVEMENTS = "query { transactions(first: 100) { edges { node { entryId coins } } } }"

NOT_ADMINS = [("ana", ("viewer",)), ("bo", CREATOR), ("fin", FINANCE), ("sue", SUPPORT)]


async def gift_catalog(gql: GraphQLClient) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = data(await gql(GIFT_CATALOG), "giftCatalog")
    return found


async def feature_catalog(gql: GraphQLClient) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = data(await gql(FEATURE_CATALOG), "featureCatalog")
    return found


async def upsert_feature(gql: GraphQLClient, **fields: Any) -> dict[str, Any]:
    item = {
        "code": "glow_effect",
        "name": "Glow effect",
        "coinPrice": "50",
        "kind": "EFFECT",
        "active": True,
    }
    item.update(fields)
    reply = await gql(UPSERT_FEATURE, {"input": item}, user="adm", roles=ADMIN)
    payload: dict[str, Any] = data(reply, "upsertFeature")
    return payload


# --- upsertGiftType -----------------------------------------------------------------------------


async def test_an_admin_adds_a_gift_and_it_can_be_sent(gql: GraphQLClient) -> None:
    payload = await upsert_gift_type(
        gql,
        code="golden_crown",
        name="  Golden Crown ",
        coinPrice="45000",
        tier="LEGENDARY",
        animation="fullscreen",
    )

    assert payload["errors"] == []
    crown = payload["giftType"]
    assert {k: v for k, v in crown.items() if k != "updatedAt"} == {
        "code": "golden_crown",
        "name": "Golden Crown",
        "coinPrice": "45000",
        "tier": "LEGENDARY",
        "animation": "fullscreen",
        "active": True,
    }
    assert datetime.fromisoformat(crown["updatedAt"]).tzinfo is not None
    assert (await gift_catalog(gql))[-1] == crown  # the dearest, so the last
    await buy_coins(gql, "ana", "coins_17500")
    await buy_coins(gql, "ana", "coins_17500")
    await buy_coins(gql, "ana", "coins_17500")
    stream_id = await start_stream(gql)
    gift = await gift_sent(gql, stream_id, "golden_crown", 1)
    assert (gift["giftName"], gift["coins"], gift["diamonds"]) == ("Golden Crown", "45000", "45000")


async def test_a_price_change_applies_to_new_gifts_and_never_to_past_ones(
    gql: GraphQLClient,
) -> None:
    await buy_coins(gql, "ana")
    stream_id = await start_stream(gql)
    before = await gift_sent(gql, stream_id, "rose", 5)
    movements_before = data(await gql(ENTRY_OF_MOVEMENTS, user="ana"), "transactions")["edges"]

    changed = await upsert_gift_type(gql, coinPrice="3")

    assert changed["errors"] == []
    assert changed["giftType"]["coinPrice"] == "3"
    after = await gift_sent(gql, stream_id, "rose", 5)
    assert (after["coinPrice"], after["coins"], after["diamonds"]) == ("3", "15", "15")
    sent = data(await gql(GIFTS_SENT, {"first": 10}, user="ana"), "giftsSent")["edges"]
    assert [e["node"] for e in sent] == [after, before]
    assert (before["coinPrice"], before["coins"], before["diamonds"]) == ("1", "5", "5")
    movements = data(await gql(ENTRY_OF_MOVEMENTS, user="ana"), "transactions")["edges"]
    assert movements[1:] == movements_before  # the past entries are as they were
    assert movements[0]["node"] == {"entryId": after["entryId"], "coins": "-15"}
    assert (await wallet(gql))["coins"] == "330"


async def test_an_admin_retires_a_gift_and_brings_it_back(gql: GraphQLClient) -> None:
    retired = await upsert_gift_type(
        gql,
        code="corgi",
        name="Corgi",
        coinPrice="299",
        tier="PREMIUM",
        animation="run",
        active=False,
    )

    assert retired["errors"] == []
    assert retired["giftType"]["active"] is False
    await buy_coins(gql, "ana")
    stream_id = await start_stream(gql)
    payload = await send_gift(gql, stream_id, "corgi", 1)
    assert the_only_payload_error(payload)["code"] == "GIFT_RETIRED"

    back = await upsert_gift_type(
        gql, code="corgi", name="Corgi", coinPrice="299", tier="PREMIUM", animation="run"
    )

    assert back["giftType"]["active"] is True
    assert (await send_gift(gql, stream_id, "corgi", 1))["errors"] == []


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"code": "Golden Crown"}, "code", "A code is 1-50 of a-z, 0-9 and _"),
        ({"code": ""}, "code", "A code is 1-50 of a-z, 0-9 and _"),
        ({"code": "x" * 51}, "code", "A code is 1-50 of a-z, 0-9 and _"),
        ({"name": "   "}, "name", "A name is 1-100 characters"),
        ({"name": "n" * 101}, "name", "A name is 1-100 characters"),
        ({"coinPrice": "0"}, "coinPrice", "A price is 1 to 10,000,000 coins"),
        ({"coinPrice": "-5"}, "coinPrice", "A price is 1 to 10,000,000 coins"),
        ({"coinPrice": "10000001"}, "coinPrice", "A price is 1 to 10,000,000 coins"),
        ({"animation": "a" * 51}, "animation", "An animation name is 1-50 characters"),
    ],
)
async def test_a_catalog_item_that_is_not_valid_is_refused_and_nothing_changes(
    gql: GraphQLClient, fields: dict[str, Any], field: str, message: str
) -> None:
    before = await gift_catalog(gql)

    payload = await upsert_gift_type(gql, **fields)

    assert payload["giftType"] is None
    error = the_only_payload_error(payload)
    assert (error["code"], error["field"], error["message"]) == (
        "INVALID_CATALOG_ITEM",
        field,
        message,
    )
    assert await gift_catalog(gql) == before


@pytest.mark.parametrize(("user", "roles"), NOT_ADMINS)
async def test_only_an_admin_changes_the_gift_catalog(
    gql: GraphQLClient, user: str, roles: tuple[str, ...]
) -> None:
    before = await gift_catalog(gql)
    item = {"code": "rose", "name": "Rose", "coinPrice": "1000", "tier": "BASIC"}

    reply = await gql(UPSERT_GIFT_TYPE, {"input": item}, user=user, roles=roles)

    assert error_code(reply) == "FORBIDDEN"
    assert (
        reply["errors"][0]["message"]
        == "You may not change the gift catalog without the admin role"
    )
    assert await gift_catalog(gql) == before


async def test_changing_the_catalog_needs_a_token(gql: GraphQLClient) -> None:
    item = {"code": "rose", "name": "Rose", "coinPrice": "1000", "tier": "BASIC"}

    assert error_code(await gql(UPSERT_GIFT_TYPE, {"input": item})) == "UNAUTHENTICATED"


# --- upsertFeature ------------------------------------------------------------------------------


async def test_an_admin_adds_a_feature_and_changes_its_price_for_new_unlocks_only(
    gql: GraphQLClient,
) -> None:
    added = await upsert_feature(
        gql, code="rainbow_name", name="Rainbow name", coinPrice="30", kind="BADGE"
    )
    assert added["errors"] == []
    assert {k: v for k, v in added["feature"].items() if k != "updatedAt"} == {
        "code": "rainbow_name",
        "name": "Rainbow name",
        "coinPrice": "30",
        "kind": "BADGE",
        "active": True,
    }
    assert added["feature"] in await feature_catalog(gql)
    await buy_coins(gql, "ana")

    def unlock_input() -> dict[str, Any]:
        return {"input": {"featureCode": "rainbow_name", "idempotencyKey": new_key("unlock")}}

    first = data(await gql(UNLOCK_FEATURE, unlock_input(), user="ana"), "unlockFeature")
    repriced = await upsert_feature(
        gql, code="rainbow_name", name="Rainbow name", coinPrice="40", kind="BADGE"
    )
    second = data(await gql(UNLOCK_FEATURE, unlock_input(), user="ana"), "unlockFeature")

    assert repriced["feature"]["coinPrice"] == "40"
    assert (first["unlock"]["coins"], second["unlock"]["coins"]) == ("30", "40")
    assert second["wallet"]["coins"] == "280"


async def test_an_admin_retires_a_feature(gql: GraphQLClient) -> None:
    payload = await upsert_feature(gql, active=False)

    assert payload["errors"] == [] and payload["feature"]["active"] is False
    current = data(await gql("query { featureCatalog { code } }"), "featureCatalog")
    assert "glow_effect" not in [f["code"] for f in current]


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"code": "glow-effect"}, "code"), ({"name": ""}, "name"), ({"coinPrice": "0"}, "coinPrice")],
)
async def test_a_feature_that_is_not_valid_is_refused_and_nothing_changes(
    gql: GraphQLClient, fields: dict[str, Any], field: str
) -> None:
    before = await feature_catalog(gql)

    payload = await upsert_feature(gql, **fields)

    assert payload["feature"] is None
    error = the_only_payload_error(payload)
    assert (error["code"], error["field"]) == ("INVALID_CATALOG_ITEM", field)
    assert await feature_catalog(gql) == before


@pytest.mark.parametrize(("user", "roles"), NOT_ADMINS)
async def test_only_an_admin_changes_the_feature_catalog(
    gql: GraphQLClient, user: str, roles: tuple[str, ...]
) -> None:
    before = await feature_catalog(gql)
    item = {"code": "glow_effect", "name": "Glow", "coinPrice": "1", "kind": "EFFECT"}

    reply = await gql(UPSERT_FEATURE, {"input": item}, user=user, roles=roles)

    assert error_code(reply) == "FORBIDDEN"
    assert await feature_catalog(gql) == before


# --- setAccountFrozen ---------------------------------------------------------------------------


async def freeze(
    gql: GraphQLClient, user_id: str, frozen: bool, reason: str, *, by: str = "adm"
) -> dict[str, Any]:
    variables = {"input": {"userId": user_id, "frozen": frozen, "reason": reason}}
    payload: dict[str, Any] = data(
        await gql(SET_ACCOUNT_FROZEN, variables, user=by, roles=ADMIN), "setAccountFrozen"
    )
    return payload


async def test_a_frozen_account_may_not_buy_gift_or_unlock_and_keeps_its_coins(
    gql: GraphQLClient,
) -> None:
    await buy_coins(gql, "ana")
    stream_id = await start_stream(gql)

    payload = await freeze(gql, "ana", True, "chargeback on purchase 1")

    assert payload["errors"] == []
    standing = payload["standing"]
    assert {k: v for k, v in standing.items() if k != "changedAt"} == {
        "userId": "ana",
        "frozen": True,
        "reason": "chargeback on purchase 1",
        "changedBy": "user:adm",
    }
    purchase = await gql(
        PURCHASE_COINS,
        {
            "input": {
                "idempotencyKey": new_key("purchase"),
                "currency": "USD",
                "channel": "WEB",
                "provider": "CARD",
                "paymentToken": "tok_success",
                "packageCode": "coins_350",
            }
        },
        user="ana",
    )
    assert the_only_payload_error(data(purchase, "purchaseCoins"))["code"] == "ACCOUNT_FROZEN"
    assert the_only_payload_error(await send_gift(gql, stream_id))["code"] == "ACCOUNT_FROZEN"
    unlock = {"input": {"featureCode": "glow_effect", "idempotencyKey": new_key("unlock")}}
    unlocked = data(await gql(UNLOCK_FEATURE, unlock, user="ana"), "unlockFeature")
    assert the_only_payload_error(unlocked)["code"] == "ACCOUNT_FROZEN"
    assert await wallet(gql) == {
        "coins": "350",
        "coinsValue": {"amount": "4.99", "currency": "USD"},
    }

    thawed = await freeze(gql, "ana", False, "dispute won")

    assert thawed["standing"]["frozen"] is False
    assert thawed["standing"]["reason"] == "dispute won"
    assert (await send_gift(gql, stream_id))["errors"] == []


async def test_freezing_an_account_that_never_did_anything_works(gql: GraphQLClient) -> None:
    payload = await freeze(gql, "newcomer", True, "fraud signals")

    assert payload["errors"] == [] and payload["standing"]["frozen"] is True


async def test_freezing_a_user_id_that_cannot_exist_is_refused(gql: GraphQLClient) -> None:
    payload = await freeze(gql, "not a user!", True, "typo")

    assert payload["standing"] is None
    error = the_only_payload_error(payload)
    assert (error["code"], error["field"]) == ("INVALID_USER_ID", "userId")


async def test_a_freeze_reason_longer_than_500_characters_is_refused(gql: GraphQLClient) -> None:
    payload = await freeze(gql, "ana", True, "x" * 501)

    assert payload["standing"] is None
    error = the_only_payload_error(payload)
    assert (error["code"], error["field"]) == ("INVALID_REASON", "reason")


@pytest.mark.parametrize(("user", "roles"), [r for r in NOT_ADMINS if r[1] != SUPPORT])
async def test_only_support_or_an_admin_freezes_accounts(
    gql: GraphQLClient, user: str, roles: tuple[str, ...]
) -> None:
    await buy_coins(gql, "ana")
    stream_id = await start_stream(gql)
    variables = {"input": {"userId": "ana", "frozen": True, "reason": "no"}}

    reply = await gql(SET_ACCOUNT_FROZEN, variables, user=user, roles=roles)

    assert error_code(reply) == "FORBIDDEN"
    assert reply["errors"][0]["message"] == (
        "You may not freeze accounts without the support or admin role"
    )
    assert (await send_gift(gql, stream_id))["errors"] == []  # not frozen


async def test_freezing_needs_a_token(gql: GraphQLClient) -> None:
    variables = {"input": {"userId": "ana", "frozen": True, "reason": "no"}}

    assert error_code(await gql(SET_ACCOUNT_FROZEN, variables)) == "UNAUTHENTICATED"
