"""The refund check over GraphQL: whether a purchase may be refunded now, every reason if not,
and what a refund would move. It reads; it never posts."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import URL

from api.app import create_app
from api.settings import Settings
from tests.conftest import GraphQLClient

REFUND_CHECK = """
query Check($id: ID!) {
  refundCheck(purchaseId: $id) {
    purchase { id status }
    refundable
    reasons { code message }
    refundableUntil
    amounts { coins cash { amount currency } valueReleased { amount currency }
              contraRevenue { amount currency } }
  }
}
"""
BUY = """
mutation Buy($input: PurchaseCoinsInput!) {
  purchaseCoins(input: $input) { purchase { id status } errors { code } }
}
"""
START = 'mutation { startStream(input: {title: "live"}) { stream { id } errors { code } } }'
GIFT = """
mutation Gift($input: SendGiftInput!) { sendGift(input: $input) { errors { code } } }
"""
FREEZE = """
mutation Freeze($input: SetAccountFrozenInput!) {
  setAccountFrozen(input: $input) { errors { code } }
}
"""
BOOKS = "{ integrityReport { ok entries postings accounts } }"

_keys = itertools.count(1)


def key() -> str:
    return f"refund-check-{next(_keys):06d}"


async def buy(gql: GraphQLClient, user: str = "ana", **overrides: Any) -> str:
    fields = {
        "idempotencyKey": key(),
        "currency": "USD",
        "channel": "WEB",
        "provider": "CARD",
        "paymentToken": "tok_success",
        "packageCode": "coins_350",
        **overrides,
    }
    reply = await gql(BUY, {"input": fields}, user=user)
    payload = reply["data"]["purchaseCoins"]
    if fields["paymentToken"] == "tok_success":
        assert payload["errors"] == [], payload
    purchase_id: str = payload["purchase"]["id"]
    return purchase_id


async def check(
    gql: GraphQLClient, purchase_id: str, user: str = "ana", roles: tuple[str, ...] = ("viewer",)
) -> dict[str, Any]:
    reply = await gql(REFUND_CHECK, {"id": purchase_id}, user=user, roles=roles)
    assert "errors" not in reply, reply
    found: dict[str, Any] = reply["data"]["refundCheck"]
    return found


def codes(found: dict[str, Any]) -> list[str]:
    return [reason["code"] for reason in found["reasons"]]


async def test_an_unspent_card_purchase_is_refundable_and_says_what_a_refund_would_move(
    gql: GraphQLClient,
) -> None:
    """Ana buys 350 coins for $4.99 by card and spends none: refundable. A refund would take
    back 350 coins, return $4.99 to the card, release all $4.99 of deferred value, and leave
    nothing for contra revenue."""
    purchase = await buy(gql)
    found = await check(gql, purchase)
    assert found["refundable"] is True and found["reasons"] == []
    assert found["purchase"] == {"id": purchase, "status": "COMPLETED"}
    assert found["amounts"] == {
        "coins": "350",
        "cash": {"amount": "4.99", "currency": "USD"},
        "valueReleased": {"amount": "4.99", "currency": "USD"},
        "contraRevenue": {"amount": "0.00", "currency": "USD"},
    }


async def test_the_check_posts_nothing(gql: GraphQLClient) -> None:
    purchase = await buy(gql)
    before = await gql(BOOKS, user="fin", roles=("finance",))
    assert before["data"]["integrityReport"]["ok"] is True
    assert before["data"]["integrityReport"]["entries"] == "1"
    for _ in range(3):
        await check(gql, purchase)
    assert await gql(BOOKS, user="fin", roles=("finance",)) == before


async def test_with_two_purchases_a_refund_releases_the_weighted_average(
    gql: GraphQLClient,
) -> None:
    """Ana buys 350 coins for $4.99, then 17,500 + 875 bonus coins for $249.99 (about $0.0136 a
    coin). Refunding the first would release her average over all 18,725 coins for 350 of them,
    less than the $4.99 she paid for them: the difference is contra revenue."""
    first = await buy(gql)
    await buy(gql, packageCode="coins_17500")
    found = await check(gql, first)
    assert found["refundable"] is True
    amounts = found["amounts"]
    assert amounts["cash"] == {"amount": "4.99", "currency": "USD"}
    released = float(amounts["valueReleased"]["amount"])
    contra = float(amounts["contraRevenue"]["amount"])
    assert 0 < released < 4.99
    assert round(released + contra, 6) == 4.99


async def test_spent_coins_block_the_refund_and_leave_no_amounts(gql: GraphQLClient) -> None:
    purchase = await buy(gql)
    stream = (await gql(START, user="bo", roles=("creator",)))["data"]["startStream"]["stream"]
    sent = await gql(
        GIFT,
        {"input": {"streamId": stream["id"], "giftCode": "rose", "quantity": 1,
                   "idempotencyKey": key()}},
        user="ana",
    )  # fmt: skip
    assert sent["data"]["sendGift"]["errors"] == []
    found = await check(gql, purchase)
    assert found["refundable"] is False
    assert codes(found) == ["COINS_SPENT"]
    assert found["reasons"][0]["message"] == "The purchase granted 350 coins; the wallet holds 349"
    assert found["amounts"] is None


async def test_an_app_store_purchase_is_refunded_by_the_store(gql: GraphQLClient) -> None:
    purchase = await buy(gql, channel="IOS", provider="APPLE")
    found = await check(gql, purchase)
    assert codes(found) == ["PROVIDER_DOES_NOT_REFUND"]
    assert found["amounts"] is not None  # what it would move, were it ours to refund


async def test_a_frozen_account_is_not_refunded(gql: GraphQLClient) -> None:
    purchase = await buy(gql)
    frozen = await gql(
        FREEZE,
        {"input": {"userId": "ana", "frozen": True, "reason": "dispute under review"}},
        user="root",
        roles=("admin",),
    )
    assert frozen["data"]["setAccountFrozen"]["errors"] == []
    assert codes(await check(gql, purchase)) == ["ACCOUNT_FROZEN"]


async def test_a_declined_purchase_granted_nothing_to_refund(gql: GraphQLClient) -> None:
    purchase = await buy(gql, paymentToken="tok_declined")
    found = await check(gql, purchase)
    assert found["purchase"]["status"] == "FAILED"
    assert codes(found) == ["NOT_COMPLETED"]
    assert found["amounts"] is None


@pytest.fixture
async def closed_window(
    settings: Settings, db_url: URL, token: Callable[..., str]
) -> AsyncIterator[GraphQLClient]:
    """The service with a refund window of zero days: every purchase is past it."""
    app = create_app(settings.model_copy(update={"refund_window_days": 0}), db_url)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://coinbooks.test") as http:
        yield GraphQLClient(http, token)
    await app.state.engine.dispose()


async def test_past_the_window_every_reason_is_given(closed_window: GraphQLClient) -> None:
    gql = closed_window
    purchase = await buy(gql, channel="IOS", provider="APPLE")
    await gql(
        FREEZE,
        {"input": {"userId": "ana", "frozen": True, "reason": "chargeback"}},
        user="root",
        roles=("admin",),
    )
    found = await check(gql, purchase)
    assert codes(found) == ["WINDOW_PASSED", "PROVIDER_DOES_NOT_REFUND", "ACCOUNT_FROZEN"]


async def test_support_checks_anyone_and_a_viewer_only_their_own(gql: GraphQLClient) -> None:
    purchase = await buy(gql)
    assert (await check(gql, purchase, user="sam", roles=("support",)))["refundable"] is True
    reply = await gql(REFUND_CHECK, {"id": purchase}, user="bo")
    assert reply["data"] is None
    assert [e["extensions"]["code"] for e in reply["errors"]] == ["FORBIDDEN"]
    reply = await gql(REFUND_CHECK, {"id": purchase})
    assert [e["extensions"]["code"] for e in reply["errors"]] == ["UNAUTHENTICATED"]


@pytest.mark.parametrize("purchase_id", ["999999", "not-a-number", "99999999999999999999"])
async def test_an_unknown_purchase_is_not_found(gql: GraphQLClient, purchase_id: str) -> None:
    reply = await gql(REFUND_CHECK, {"id": purchase_id}, user="ana")
    assert [e["extensions"]["code"] for e in reply["errors"]] == ["NOT_FOUND"]
