"""Gifts and premium features over GraphQL, through the real ASGI app over HTTP: sendGift and
unlockFeature with every error code, giftByKey ("was my gift received?"), giftsSent, streamGifts,
topGifters, streamTotals and the catalogs, and who may see what. Every payload's error count and
code is asserted, and every refused gift or unlock is shown to change nothing.

The test settings have no hold: diamonds are due at once (released on the creator's next read)."""

from __future__ import annotations

import asyncio
from fractions import Fraction
from typing import Any

import pytest

from tests.conftest import GraphQLClient
from tests.gifts.streaming import (
    ADMIN,
    CREATOR,
    FINANCE,
    GIFT_FIELDS,
    GIFTS_SENT,
    SEND_GIFT,
    SUPPORT,
    UNLOCK_FEATURE,
    account_balance,
    buy_coins,
    data,
    end_stream,
    error_code,
    gift_sent,
    new_key,
    send_gift,
    set_frozen,
    start_stream,
    the_only_error,
    the_only_payload_error,
    upsert_gift_type,
    wallet,
)

GIFT_BY_KEY = f"""
query GiftByKey($key: String!) {{
  giftByKey(idempotencyKey: $key) {{ {GIFT_FIELDS} }}
}}
"""

STREAM_GIFTS = """
query StreamGifts($streamId: ID!, $first: Int!, $after: String) {
  streamGifts(streamId: $streamId, first: $first, after: $after) {
    edges { cursor node { id senderId giftCode quantity coins } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

TOP_GIFTERS = """
query TopGifters($streamId: ID!, $first: Int!) {
  topGifters(streamId: $streamId, first: $first) { rank userId coins giftCount }
}
"""

STREAM_TOTALS = """
query StreamTotals($streamId: ID!) {
  streamTotals(streamId: $streamId) {
    stream { id creatorId }
    giftCount coins diamonds cashValue { amount currency } gifters
  }
}
"""

GIFT_CATALOG = """
query GiftCatalog($includeRetired: Boolean!) {
  giftCatalog(includeRetired: $includeRetired) { code name coinPrice tier animation active }
}
"""

FEATURE_CATALOG = """
query FeatureCatalog($includeRetired: Boolean!) {
  featureCatalog(includeRetired: $includeRetired) { code name coinPrice kind active }
}
"""

TRANSACTIONS = "query { transactions(first: 100) { edges { node { entryId kind coins } } } }"


def usd(micros: int) -> dict[str, str]:
    """Money as the API shows it, from micro-dollars."""
    whole, frac = divmod(micros, 1_000_000)
    text = f"{frac:06d}".rstrip("0").ljust(2, "0")
    return {"amount": f"{whole}.{text}", "currency": "USD"}


def released_value(value_micros: int, coins_held: int, coins_spent: int) -> int:
    """The wallet's weighted average for ``coins_spent`` coins (DESIGN.md, Gift)."""
    if coins_spent == coins_held:
        return value_micros
    return round(Fraction(value_micros * coins_spent, coins_held))


async def gifts_sent_by(gql: GraphQLClient, user: str = "ana") -> list[dict[str, Any]]:
    reply = await gql(GIFTS_SENT, {"first": 100}, user=user)
    return [edge["node"] for edge in data(reply, "giftsSent")["edges"]]


async def books_seen_by(gql: GraphQLClient, user: str = "ana", creator: str = "bo") -> Any:
    """What a refused gift or unlock must not change: the sender's wallet, movements and gifts
    sent, and the creator's diamonds and payable (read by finance, releasing nothing)."""
    movements = data(await gql(TRANSACTIONS, user=user), "transactions")["edges"]
    return (
        await wallet(gql, user),
        len(movements),
        await gifts_sent_by(gql, user),
        await account_balance(gql, f"creator:{creator}:diamonds:pending"),
        await account_balance(gql, f"creator:{creator}:diamonds:available"),
        await account_balance(gql, f"creator:{creator}:payable"),
        await account_balance(gql, "platform:revenue:features"),
    )


# --- sendGift: delivered ------------------------------------------------------------------------


async def test_ana_sends_bo_five_roses_and_a_hand_hearts_during_his_stream(
    gql: GraphQLClient,
) -> None:
    await buy_coins(gql, "ana")  # 350 coins for $4.99
    stream_id = await start_stream(gql, "bo", "Bo cooks")

    payload = await send_gift(gql, stream_id, "rose", 5, key="ana-roses-0001")

    assert payload["errors"] == []
    assert payload["replayed"] is False
    gift = payload["gift"]
    assert gift["senderId"] == "ana" and gift["creatorId"] == "bo"
    assert gift["stream"] == {
        "id": stream_id,
        "creatorId": "bo",
        "title": "Bo cooks",
        "status": "LIVE",
    }
    assert (gift["giftCode"], gift["giftName"]) == ("rose", "Rose")
    assert (gift["quantity"], gift["coinPrice"], gift["coins"]) == (5, "1", "5")
    assert gift["diamonds"] == "5"  # 1 diamond per coin
    assert gift["cashValue"] == {"amount": "0.025", "currency": "USD"}  # $0.005 a diamond
    assert gift["releaseAt"] == gift["createdAt"]  # no hold in the test settings
    assert gift["released"] is False
    assert gift["entryId"] is not None
    after_roses = 4_990_000 - released_value(4_990_000, 350, 5)
    assert payload["wallet"] == {"userId": "ana", "coins": "345", "coinsValue": usd(after_roses)}

    payload = await send_gift(gql, stream_id, "hand_hearts", 1)

    assert payload["errors"] == []
    assert (payload["gift"]["coins"], payload["gift"]["diamonds"]) == ("100", "100")
    assert payload["gift"]["cashValue"] == {"amount": "0.50", "currency": "USD"}
    after_hearts = after_roses - released_value(after_roses, 345, 100)
    assert payload["wallet"]["coins"] == "245"
    assert payload["wallet"]["coinsValue"] == usd(after_hearts)
    assert await wallet(gql) == {"coins": "245", "coinsValue": usd(after_hearts)}
    assert await account_balance(gql, "creator:bo:diamonds:pending") == ("105", "2")
    assert await account_balance(gql, "creator:bo:payable") == ("525000", "2")


async def test_the_last_coins_of_a_wallet_release_all_its_value(gql: GraphQLClient) -> None:
    await buy_coins(gql, "ana")
    stream_id = await start_stream(gql)
    for _ in range(3):
        assert (await send_gift(gql, stream_id, "hand_hearts", 1))["errors"] == []

    payload = await send_gift(gql, stream_id, "finger_heart", 10)  # the 50 coins left

    assert payload["errors"] == []
    assert payload["wallet"]["coins"] == "0"
    assert payload["wallet"]["coinsValue"] == {"amount": "0.00", "currency": "USD"}


async def test_a_retried_gift_is_delivered_once_and_gift_by_key_shows_it(
    gql: GraphQLClient,
) -> None:
    await buy_coins(gql, "ana")
    stream_id = await start_stream(gql)
    first = await send_gift(gql, stream_id, "rose", 5, key="ana-retry-0001")

    again = await send_gift(gql, stream_id, "rose", 5, key="ana-retry-0001")

    assert again["errors"] == []
    assert again["replayed"] is True
    assert again["gift"] == first["gift"]
    assert again["wallet"]["coins"] == "345"  # charged once
    found = data(await gql(GIFT_BY_KEY, {"key": "ana-retry-0001"}, user="ana"), "giftByKey")
    assert found == first["gift"]
    movements = data(await gql(TRANSACTIONS, user="ana"), "transactions")["edges"]
    assert [m["node"]["kind"] for m in movements] == ["gift", "purchase"]
    assert movements[0]["node"]["entryId"] == first["gift"]["entryId"]
    assert await account_balance(gql, "creator:bo:diamonds:pending") == ("5", "1")


async def test_concurrent_retries_of_one_gift_charge_once(gql: GraphQLClient) -> None:
    await buy_coins(gql, "ana")
    stream_id = await start_stream(gql)

    payloads = await asyncio.gather(
        *(send_gift(gql, stream_id, "perfume", 1, key="ana-double-tap") for _ in range(6))
    )

    assert [p["errors"] for p in payloads] == [[]] * 6
    assert sorted(p["replayed"] for p in payloads) == [False] + [True] * 5
    assert len({p["gift"]["id"] for p in payloads}) == 1
    assert (await wallet(gql))["coins"] == "330"
    assert len(await gifts_sent_by(gql)) == 1


async def test_the_stream_may_end_before_the_retry_which_still_finds_the_gift(
    gql: GraphQLClient,
) -> None:
    await buy_coins(gql, "ana")
    stream_id = await start_stream(gql)
    first = await send_gift(gql, stream_id, "rose", 1, key="ana-late-retry")
    assert (await end_stream(gql, stream_id))["errors"] == []

    again = await send_gift(gql, stream_id, "rose", 1, key="ana-late-retry")

    assert again["errors"] == [] and again["replayed"] is True
    assert again["gift"]["id"] == first["gift"]["id"]
    assert again["gift"]["stream"]["status"] == "ENDED"


async def test_a_creator_may_gift_another_creator(gql: GraphQLClient) -> None:
    await buy_coins(gql, "cy")
    stream_id = await start_stream(gql, "bo")

    gift = await gift_sent(gql, stream_id, "rose", 2, user="cy", roles=CREATOR)

    assert (gift["senderId"], gift["creatorId"]) == ("cy", "bo")


# --- sendGift: refused, and nothing changes -----------------------------------------------------


async def refused(
    gql: GraphQLClient, stream_id: str, gift_code: str, quantity: int, **kwargs: Any
) -> dict[str, Any]:
    """The only error of a refused gift, after checking that it changed nothing."""
    before = await books_seen_by(gql)
    payload = await send_gift(gql, stream_id, gift_code, quantity, **kwargs)
    assert (payload["gift"], payload["wallet"], payload["replayed"]) == (None, None, False)
    assert await books_seen_by(gql) == before
    return the_only_payload_error(payload)


async def test_a_gift_costing_more_coins_than_held_is_refused(gql: GraphQLClient) -> None:
    await buy_coins(gql, "ana")
    stream_id = await start_stream(gql)

    error = await refused(gql, stream_id, "hand_hearts", 4)

    assert (error["code"], error["field"]) == ("INSUFFICIENT_COINS", "quantity")
    assert error["message"] == "400 coins needed, 350 held"


async def test_a_user_without_coins_cannot_send_a_rose(gql: GraphQLClient) -> None:
    stream_id = await start_stream(gql)

    error = await refused(gql, stream_id, "rose", 1)

    assert error["code"] == "INSUFFICIENT_COINS"
    assert error["message"] == "1 coins needed, 0 held"


@pytest.mark.parametrize("stream_id", ["9999", "not-a-number", str(2**63)])
async def test_a_gift_to_a_stream_that_does_not_exist_is_refused(
    gql: GraphQLClient, stream_id: str
) -> None:
    await buy_coins(gql, "ana")

    error = await refused(gql, stream_id, "rose", 1)

    assert (error["code"], error["field"]) == ("STREAM_NOT_FOUND", "streamId")
    assert error["message"] == f"No stream {stream_id}"


async def test_a_gift_to_an_ended_stream_is_refused(gql: GraphQLClient) -> None:
    await buy_coins(gql, "ana")
    stream_id = await start_stream(gql)
    assert (await end_stream(gql, stream_id))["errors"] == []

    error = await refused(gql, stream_id, "rose", 1)

    assert (error["code"], error["field"]) == ("STREAM_NOT_LIVE", "streamId")


async def test_a_gift_that_is_not_in_the_catalog_is_refused(gql: GraphQLClient) -> None:
    await buy_coins(gql, "ana")
    stream_id = await start_stream(gql)

    error = await refused(gql, stream_id, "unicorn", 1)

    assert (error["code"], error["field"]) == ("GIFT_NOT_FOUND", "giftCode")
    assert error["message"] == "No gift 'unicorn'"


async def test_a_retired_gift_is_refused_until_it_is_back(gql: GraphQLClient) -> None:
    await buy_coins(gql, "ana")
    stream_id = await start_stream(gql)
    assert (await upsert_gift_type(gql, active=False))["errors"] == []

    error = await refused(gql, stream_id, "rose", 1)

    assert (error["code"], error["field"]) == ("GIFT_RETIRED", "giftCode")
    assert error["message"] == "Rose is no longer available"
    assert (await upsert_gift_type(gql, active=True))["errors"] == []
    assert (await send_gift(gql, stream_id, "rose", 1))["errors"] == []


async def test_a_creator_cannot_gift_their_own_stream(gql: GraphQLClient) -> None:
    await buy_coins(gql, "bo")
    stream_id = await start_stream(gql, "bo")
    before = await books_seen_by(gql, user="bo")

    payload = await send_gift(gql, stream_id, "rose", 1, user="bo", roles=CREATOR)

    error = the_only_payload_error(payload)
    assert (error["code"], error["field"]) == ("SELF_GIFT", "streamId")
    assert payload["gift"] is None
    assert await books_seen_by(gql, user="bo") == before


async def test_a_frozen_account_cannot_send_gifts_until_it_is_thawed(gql: GraphQLClient) -> None:
    await buy_coins(gql, "ana")
    stream_id = await start_stream(gql)
    await set_frozen(gql, "ana", True, "chargeback under review")

    error = await refused(gql, stream_id, "rose", 1)

    assert error["code"] == "ACCOUNT_FROZEN"
    assert error["message"] == "Account ana is frozen: it may not send gifts"
    await set_frozen(gql, "ana", False, "dispute won")
    assert (await send_gift(gql, stream_id, "rose", 1))["errors"] == []


@pytest.mark.parametrize("quantity", [0, -1, 10_000])
async def test_a_quantity_outside_1_to_9999_is_refused(gql: GraphQLClient, quantity: int) -> None:
    await buy_coins(gql, "ana")
    stream_id = await start_stream(gql)

    error = await refused(gql, stream_id, "rose", quantity)

    assert (error["code"], error["field"]) == ("QUANTITY_OUT_OF_BOUNDS", "quantity")
    assert error["message"] == "A gift is sent 1 to 9,999 at a time"


@pytest.mark.parametrize("key", ["short", "has a space in it", "k" * 129])
async def test_an_idempotency_key_of_the_wrong_form_is_refused(
    gql: GraphQLClient, key: str
) -> None:
    await buy_coins(gql, "ana")
    stream_id = await start_stream(gql)

    error = await refused(gql, stream_id, "rose", 1, key=key)

    assert (error["code"], error["field"]) == ("INVALID_IDEMPOTENCY_KEY", "idempotencyKey")


async def test_a_key_reused_for_another_gift_is_refused(gql: GraphQLClient) -> None:
    await buy_coins(gql, "ana")
    stream_id = await start_stream(gql)
    assert (await send_gift(gql, stream_id, "rose", 1, key="ana-key-reuse"))["errors"] == []

    error = await refused(gql, stream_id, "rose", 2, key="ana-key-reuse")

    assert (error["code"], error["field"]) == ("IDEMPOTENCY_KEY_REUSED", "idempotencyKey")
    assert error["message"] == "This idempotency key was used for a different gift"


@pytest.mark.parametrize("roles", [FINANCE, SUPPORT, ADMIN])
async def test_a_token_without_a_wallet_may_not_send_gifts(
    gql: GraphQLClient, roles: tuple[str, ...]
) -> None:
    stream_id = await start_stream(gql)
    variables = {
        "input": {
            "streamId": stream_id,
            "giftCode": "rose",
            "quantity": 1,
            "idempotencyKey": new_key(),
        }
    }

    reply = await gql(SEND_GIFT, variables, user="ana", roles=roles)

    assert error_code(reply) == "FORBIDDEN"
    assert reply["errors"][0]["message"] == (
        "You may not spend coins without the viewer or creator role"
    )
    assert await gifts_sent_by(gql) == []


async def test_sending_a_gift_needs_a_token(gql: GraphQLClient) -> None:
    stream_id = await start_stream(gql)
    variables = {
        "input": {
            "streamId": stream_id,
            "giftCode": "rose",
            "quantity": 1,
            "idempotencyKey": new_key(),
        }
    }

    assert error_code(await gql(SEND_GIFT, variables)) == "UNAUTHENTICATED"


# --- giftByKey ----------------------------------------------------------------------------------


async def test_a_gift_never_sent_is_null_by_its_key(gql: GraphQLClient) -> None:
    reply = await gql(GIFT_BY_KEY, {"key": "never-sent-0001"}, user="ana")

    assert data(reply, "giftByKey") is None


async def test_a_refused_gift_is_null_by_its_key(gql: GraphQLClient) -> None:
    stream_id = await start_stream(gql)
    payload = await send_gift(gql, stream_id, "rose", 1, key="ana-broke-0001")
    assert the_only_payload_error(payload)["code"] == "INSUFFICIENT_COINS"

    assert data(await gql(GIFT_BY_KEY, {"key": "ana-broke-0001"}, user="ana"), "giftByKey") is None


async def test_gift_by_key_finds_only_the_callers_own_gift(gql: GraphQLClient) -> None:
    await buy_coins(gql, "ana")
    stream_id = await start_stream(gql)
    assert (await send_gift(gql, stream_id, "rose", 1, key="shared-key-0001"))["errors"] == []

    reply = await gql(GIFT_BY_KEY, {"key": "shared-key-0001"}, user="di")

    assert data(reply, "giftByKey") is None


async def test_gift_by_key_refuses_a_key_of_the_wrong_form(gql: GraphQLClient) -> None:
    error = the_only_error(await gql(GIFT_BY_KEY, {"key": "short"}, user="ana"))

    assert error["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize(
    ("user", "roles", "code"), [(None, (), "UNAUTHENTICATED"), ("fin", FINANCE, "FORBIDDEN")]
)
async def test_gift_by_key_is_for_a_signed_in_sender(
    gql: GraphQLClient, user: str | None, roles: tuple[str, ...], code: str
) -> None:
    assert (
        error_code(await gql(GIFT_BY_KEY, {"key": "some-key-0001"}, user=user, roles=roles)) == code
    )


# --- giftsSent ----------------------------------------------------------------------------------


async def test_gifts_sent_lists_the_callers_gifts_newest_first_in_pages(gql: GraphQLClient) -> None:
    await buy_coins(gql, "ana")
    await buy_coins(gql, "di")
    bo_live = await start_stream(gql, "bo")
    cy_live = await start_stream(gql, "cy")
    sent = [
        await gift_sent(gql, bo_live, "rose", 1),
        await gift_sent(gql, cy_live, "perfume", 1),
        await gift_sent(gql, bo_live, "doughnut", 2),
    ]
    await gift_sent(gql, bo_live, "rose", 3, user="di")

    first = data(await gql(GIFTS_SENT, {"first": 2}, user="ana"), "giftsSent")
    after = first["pageInfo"]["endCursor"]
    rest = data(await gql(GIFTS_SENT, {"first": 2, "after": after}, user="ana"), "giftsSent")

    assert [e["node"] for e in first["edges"]] == [sent[2], sent[1]]
    assert first["pageInfo"]["hasNextPage"] is True
    assert [e["node"] for e in rest["edges"]] == [sent[0]]
    assert rest["pageInfo"]["hasNextPage"] is False
    assert [g["creatorId"] for g in await gifts_sent_by(gql)] == ["bo", "cy", "bo"]


async def test_a_viewer_never_sees_another_viewers_gifts(gql: GraphQLClient) -> None:
    await buy_coins(gql, "ana")
    stream_id = await start_stream(gql)
    await gift_sent(gql, stream_id, "rose", 1)

    reply = await gql(GIFTS_SENT, {"userId": "ana", "first": 10}, user="di")

    error = the_only_error(reply)
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["message"] == "You may not read another user's wallet"
    assert await gifts_sent_by(gql, "di") == []


@pytest.mark.parametrize(("user", "roles"), [("sue", SUPPORT), ("fin", FINANCE)])
async def test_support_and_finance_read_anyones_gifts_sent(
    gql: GraphQLClient, user: str, roles: tuple[str, ...]
) -> None:
    await buy_coins(gql, "ana")
    stream_id = await start_stream(gql)
    gift = await gift_sent(gql, stream_id, "rose", 1)

    reply = await gql(GIFTS_SENT, {"userId": "ana", "first": 10}, user=user, roles=roles)

    assert [e["node"] for e in data(reply, "giftsSent")["edges"]] == [gift]


async def test_gifts_sent_refuses_a_bad_page_size_or_a_cursor_of_another_list(
    gql: GraphQLClient,
) -> None:
    too_many = the_only_error(await gql(GIFTS_SENT, {"first": 101}, user="ana"))
    other_list = the_only_error(
        await gql(GIFTS_SENT, {"first": 1, "after": "c3RyZWFtX2dpZnQ6NQ=="}, user="ana")
    )

    assert too_many["extensions"]["code"] == "BAD_USER_INPUT"
    assert other_list["extensions"]["code"] == "BAD_USER_INPUT"
    assert other_list["message"] == "'after' is not a cursor from this list"


# --- streamGifts --------------------------------------------------------------------------------


async def stream_gift_ids(
    gql: GraphQLClient, stream_id: str, user: str, roles: tuple[str, ...], first: int = 100
) -> dict[str, Any]:
    reply = await gql(STREAM_GIFTS, {"streamId": stream_id, "first": first}, user=user, roles=roles)
    found: dict[str, Any] = data(reply, "streamGifts")
    return found


async def test_a_creator_sees_the_gifts_of_their_stream_newest_first(gql: GraphQLClient) -> None:
    await buy_coins(gql, "ana")
    await buy_coins(gql, "di")
    stream_id = await start_stream(gql, "bo")
    other = await start_stream(gql, "cy")
    one = await gift_sent(gql, stream_id, "rose", 2)
    two = await gift_sent(gql, stream_id, "perfume", 1, user="di")
    await gift_sent(gql, other, "rose", 1)

    page = await stream_gift_ids(gql, stream_id, "bo", CREATOR, first=1)
    after = page["pageInfo"]["endCursor"]
    reply = await gql(
        STREAM_GIFTS, {"streamId": stream_id, "first": 1, "after": after}, user="bo", roles=CREATOR
    )
    rest = data(reply, "streamGifts")

    assert [e["node"]["id"] for e in page["edges"]] == [two["id"]]
    assert page["pageInfo"]["hasNextPage"] is True
    assert [e["node"] for e in rest["edges"]] == [
        {"id": one["id"], "senderId": "ana", "giftCode": "rose", "quantity": 2, "coins": "2"}
    ]
    assert rest["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize(("user", "roles"), [("fin", FINANCE), ("sue", SUPPORT)])
async def test_finance_and_support_see_any_streams_gifts(
    gql: GraphQLClient, user: str, roles: tuple[str, ...]
) -> None:
    await buy_coins(gql, "ana")
    stream_id = await start_stream(gql, "bo")
    gift = await gift_sent(gql, stream_id, "rose", 2)

    page = await stream_gift_ids(gql, stream_id, user, roles)

    assert [e["node"]["id"] for e in page["edges"]] == [gift["id"]]


@pytest.mark.parametrize(
    ("user", "roles"),
    [("cy", CREATOR), ("ana", ("viewer",)), ("bo", ("viewer",)), ("adm", ADMIN)],
)
async def test_nobody_else_sees_a_streams_gifts_not_even_a_sender(
    gql: GraphQLClient, user: str, roles: tuple[str, ...]
) -> None:
    await buy_coins(gql, "ana")
    stream_id = await start_stream(gql, "bo")
    await gift_sent(gql, stream_id, "rose", 2)

    reply = await gql(STREAM_GIFTS, {"streamId": stream_id, "first": 10}, user=user, roles=roles)

    error = the_only_error(reply)  # as if there were no such stream
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert error["message"] == f"No stream {stream_id}"


async def test_the_gifts_of_a_stream_that_does_not_exist_are_not_found(gql: GraphQLClient) -> None:
    reply = await gql(STREAM_GIFTS, {"streamId": "9999", "first": 10}, user="fin", roles=FINANCE)

    assert error_code(reply) == "NOT_FOUND"


# --- topGifters ---------------------------------------------------------------------------------


async def test_the_leaderboard_ranks_gifters_by_coins_and_a_tie_goes_to_who_got_there_first(
    gql: GraphQLClient,
) -> None:
    for user in ("ana", "di", "ed", "flo"):
        await buy_coins(gql, user)
    stream_id = await start_stream(gql, "bo")
    other = await start_stream(gql, "cy")
    await gift_sent(gql, stream_id, "perfume", 1, user="di")  # di: 20
    await gift_sent(gql, stream_id, "rose", 5, user="ana")  # ana: 5
    await gift_sent(gql, stream_id, "doughnut", 1, user="ed")  # ed: 30
    await gift_sent(gql, stream_id, "finger_heart", 3, user="ana")  # ana: 20, after di
    await gift_sent(gql, stream_id, "rose", 2, user="flo")  # flo: 2
    await gift_sent(gql, other, "corgi", 1, user="flo")  # another stream: not counted

    reply = await gql(TOP_GIFTERS, {"streamId": stream_id, "first": 3}, user="zed")

    assert data(reply, "topGifters") == [
        {"rank": 1, "userId": "ed", "coins": "30", "giftCount": 1},
        {"rank": 2, "userId": "di", "coins": "20", "giftCount": 1},
        {"rank": 3, "userId": "ana", "coins": "20", "giftCount": 2},
    ]
    everyone = await gql(TOP_GIFTERS, {"streamId": stream_id, "first": 100}, user="zed")
    assert [g["userId"] for g in data(everyone, "topGifters")] == ["ed", "di", "ana", "flo"]


async def test_a_stream_without_gifts_has_an_empty_leaderboard(gql: GraphQLClient) -> None:
    stream_id = await start_stream(gql, "bo")

    reply = await gql(TOP_GIFTERS, {"streamId": stream_id, "first": 10}, user="bo", roles=CREATOR)

    assert data(reply, "topGifters") == []


@pytest.mark.parametrize(
    ("variables", "code"),
    [
        ({"streamId": "9999", "first": 10}, "NOT_FOUND"),
        ({"streamId": "x", "first": 10}, "NOT_FOUND"),
        ({"streamId": "1", "first": 0}, "BAD_USER_INPUT"),
        ({"streamId": "1", "first": 101}, "BAD_USER_INPUT"),
    ],
)
async def test_the_leaderboard_of_no_stream_or_of_a_bad_size_is_refused(
    gql: GraphQLClient, variables: dict[str, Any], code: str
) -> None:
    await start_stream(gql, "bo")

    assert error_code(await gql(TOP_GIFTERS, variables, user="ana")) == code


async def test_the_leaderboard_needs_a_token(gql: GraphQLClient) -> None:
    stream_id = await start_stream(gql, "bo")

    reply = await gql(TOP_GIFTERS, {"streamId": stream_id, "first": 10})

    assert error_code(reply) == "UNAUTHENTICATED"


# --- streamTotals -------------------------------------------------------------------------------


async def test_a_streams_totals_add_up_its_gifts(gql: GraphQLClient) -> None:
    await buy_coins(gql, "ana")
    await buy_coins(gql, "di")
    stream_id = await start_stream(gql, "bo")
    other = await start_stream(gql, "cy")
    await gift_sent(gql, stream_id, "rose", 5)
    await gift_sent(gql, stream_id, "hand_hearts", 1)
    await gift_sent(gql, stream_id, "corgi", 1, user="di")
    await gift_sent(gql, other, "rose", 1, user="di")

    reply = await gql(STREAM_TOTALS, {"streamId": stream_id}, user="bo", roles=CREATOR)

    assert data(reply, "streamTotals") == {
        "stream": {"id": stream_id, "creatorId": "bo"},
        "giftCount": 3,
        "coins": "404",
        "diamonds": "404",
        "cashValue": {"amount": "2.02", "currency": "USD"},
        "gifters": 2,
    }


@pytest.mark.parametrize(
    ("user", "roles", "allowed"),
    [
        ("bo", CREATOR, True),
        ("fin", FINANCE, True),
        ("sue", SUPPORT, True),
        ("cy", CREATOR, False),
        ("ana", ("viewer",), False),
        ("bo", ("viewer",), False),
        ("adm", ADMIN, False),
    ],
)
async def test_only_the_streams_creator_support_and_finance_see_its_totals(
    gql: GraphQLClient, user: str, roles: tuple[str, ...], allowed: bool
) -> None:
    stream_id = await start_stream(gql, "bo")

    reply = await gql(STREAM_TOTALS, {"streamId": stream_id}, user=user, roles=roles)

    if allowed:
        assert data(reply, "streamTotals")["giftCount"] == 0
    else:
        assert reply == {"data": {"streamTotals": None}}  # as if there were no such stream


async def test_the_totals_of_a_stream_that_does_not_exist_are_null(gql: GraphQLClient) -> None:
    reply = await gql(STREAM_TOTALS, {"streamId": "9999"}, user="fin", roles=FINANCE)

    assert reply == {"data": {"streamTotals": None}}


# --- the catalogs -------------------------------------------------------------------------------


async def test_anyone_reads_the_gift_catalog_cheapest_first(gql: GraphQLClient) -> None:
    catalog = data(await gql(GIFT_CATALOG, {"includeRetired": False}), "giftCatalog")

    assert len(catalog) == 14
    assert catalog[0] == {
        "code": "rose",
        "name": "Rose",
        "coinPrice": "1",
        "tier": "BASIC",
        "animation": None,
        "active": True,
    }
    assert catalog[-1]["code"] == "tiktok_universe"
    assert catalog[-1]["coinPrice"] == "34999"
    assert catalog[-1]["tier"] == "LEGENDARY"
    prices = [int(item["coinPrice"]) for item in catalog]
    assert prices == sorted(prices)


async def test_a_retired_gift_is_listed_only_when_asked_for(gql: GraphQLClient) -> None:
    assert (await upsert_gift_type(gql, active=False))["errors"] == []

    current = data(await gql(GIFT_CATALOG, {"includeRetired": False}), "giftCatalog")
    everything = data(await gql(GIFT_CATALOG, {"includeRetired": True}), "giftCatalog")

    assert "rose" not in {item["code"] for item in current}
    assert next(item for item in everything if item["code"] == "rose")["active"] is False
    assert len(everything) == len(current) + 1


async def test_anyone_reads_the_feature_catalog_cheapest_first(gql: GraphQLClient) -> None:
    catalog = data(await gql(FEATURE_CATALOG, {"includeRetired": True}), "featureCatalog")

    assert catalog == [
        {
            "code": "sticker_pack_cats",
            "name": "Cat sticker pack",
            "coinPrice": "10",
            "kind": "STICKER",
            "active": True,
        },
        {
            "code": "comment_highlight",
            "name": "Highlighted comment",
            "coinPrice": "20",
            "kind": "HIGHLIGHT",
            "active": True,
        },
        {
            "code": "glow_effect",
            "name": "Glow effect",
            "coinPrice": "50",
            "kind": "EFFECT",
            "active": True,
        },
        {
            "code": "supporter_badge",
            "name": "Supporter badge",
            "coinPrice": "100",
            "kind": "BADGE",
            "active": True,
        },
    ]


# --- unlockFeature ------------------------------------------------------------------------------


async def unlock(
    gql: GraphQLClient, feature: str, key: str | None = None, user: str = "ana"
) -> dict[str, Any]:
    variables = {"input": {"featureCode": feature, "idempotencyKey": key or new_key("unlock")}}
    payload: dict[str, Any] = data(await gql(UNLOCK_FEATURE, variables, user=user), "unlockFeature")
    return payload


async def test_ana_unlocks_a_sticker_pack_and_its_value_is_feature_revenue(
    gql: GraphQLClient,
) -> None:
    await buy_coins(gql, "ana")

    payload = await unlock(gql, "sticker_pack_cats", key="ana-stickers-01")

    assert payload["errors"] == [] and payload["replayed"] is False
    assert payload["unlock"]["userId"] == "ana"
    assert payload["unlock"]["featureCode"] == "sticker_pack_cats"
    assert payload["unlock"]["coins"] == "10"
    value = released_value(4_990_000, 350, 10)
    assert payload["wallet"] == {
        "userId": "ana",
        "coins": "340",
        "coinsValue": usd(4_990_000 - value),
    }
    assert await account_balance(gql, "platform:revenue:features") == (str(value), "1")

    again = await unlock(gql, "sticker_pack_cats", key="ana-stickers-01")

    assert again["errors"] == [] and again["replayed"] is True
    assert again["unlock"] == payload["unlock"]
    assert (await wallet(gql))["coins"] == "340"
    assert await account_balance(gql, "platform:revenue:features") == (str(value), "1")


async def refused_unlock(gql: GraphQLClient, feature: str, **kwargs: Any) -> dict[str, Any]:
    before = await books_seen_by(gql)
    payload = await unlock(gql, feature, **kwargs)
    assert (payload["unlock"], payload["wallet"], payload["replayed"]) == (None, None, False)
    assert await books_seen_by(gql) == before
    return the_only_payload_error(payload)


async def test_an_unlock_costing_more_than_held_is_refused(gql: GraphQLClient) -> None:
    error = await refused_unlock(gql, "supporter_badge")

    assert (error["code"], error["field"]) == ("INSUFFICIENT_COINS", "featureCode")
    assert error["message"] == "100 coins needed, 0 held"


async def test_an_unknown_feature_is_refused(gql: GraphQLClient) -> None:
    await buy_coins(gql, "ana")

    error = await refused_unlock(gql, "time_travel")

    assert (error["code"], error["field"]) == ("FEATURE_NOT_FOUND", "featureCode")


async def test_a_retired_feature_is_refused(gql: GraphQLClient) -> None:
    await buy_coins(gql, "ana")
    retire = """
    mutation { upsertFeature(input: {code: "glow_effect", name: "Glow effect", coinPrice: "50",
      kind: EFFECT, active: false}) { errors { code } } }
    """
    assert data(await gql(retire, user="adm", roles=ADMIN), "upsertFeature")["errors"] == []

    error = await refused_unlock(gql, "glow_effect")

    assert (error["code"], error["field"]) == ("FEATURE_RETIRED", "featureCode")
    assert error["message"] == "Glow effect is no longer available"


async def test_a_frozen_account_cannot_unlock_features(gql: GraphQLClient) -> None:
    await buy_coins(gql, "ana")
    await set_frozen(gql, "ana", True)

    error = await refused_unlock(gql, "glow_effect")

    assert error["code"] == "ACCOUNT_FROZEN"


async def test_an_unlock_key_of_the_wrong_form_or_reused_is_refused(gql: GraphQLClient) -> None:
    await buy_coins(gql, "ana")
    assert (await unlock(gql, "glow_effect", key="ana-unlock-0001"))["errors"] == []

    wrong_form = await refused_unlock(gql, "glow_effect", key="short")
    reused = await refused_unlock(gql, "supporter_badge", key="ana-unlock-0001")

    assert (wrong_form["code"], wrong_form["field"]) == (
        "INVALID_IDEMPOTENCY_KEY",
        "idempotencyKey",
    )
    assert (reused["code"], reused["field"]) == ("IDEMPOTENCY_KEY_REUSED", "idempotencyKey")


@pytest.mark.parametrize(
    ("user", "roles", "code"), [(None, (), "UNAUTHENTICATED"), ("fin", FINANCE, "FORBIDDEN")]
)
async def test_unlocking_needs_a_wallet_of_ones_own(
    gql: GraphQLClient, user: str | None, roles: tuple[str, ...], code: str
) -> None:
    variables = {"input": {"featureCode": "glow_effect", "idempotencyKey": new_key()}}

    assert error_code(await gql(UNLOCK_FEATURE, variables, user=user, roles=roles)) == code
