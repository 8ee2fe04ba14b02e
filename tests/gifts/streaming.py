"""What the GraphQL tests of streams, gifts, earnings and administration share: the operations,
and the steps of a story (buy coins, go live, send a gift) as a client takes them."""

from __future__ import annotations

import itertools
from typing import Any

from tests.conftest import GraphQLClient

CREATOR = ("creator",)
ADMIN = ("admin",)
FINANCE = ("finance",)
SUPPORT = ("support",)

PURCHASE_COINS = """
mutation PurchaseCoins($input: PurchaseCoinsInput!) {
  purchaseCoins(input: $input) {
    purchase { id status }
    wallet { coins coinsValue { amount currency } }
    errors { code message field }
  }
}
"""

START_STREAM = """
mutation StartStream($input: StartStreamInput!) {
  startStream(input: $input) {
    stream { id creatorId title status startedAt endedAt }
    errors { code message field }
  }
}
"""

END_STREAM = """
mutation EndStream($input: EndStreamInput!) {
  endStream(input: $input) {
    stream { id creatorId title status startedAt endedAt }
    errors { code message field }
  }
}
"""

GIFT_FIELDS = """
id senderId creatorId
stream { id creatorId title status }
giftCode giftName quantity coinPrice coins diamonds
cashValue { amount currency }
createdAt releaseAt released entryId
"""

SEND_GIFT = f"""
mutation SendGift($input: SendGiftInput!) {{
  sendGift(input: $input) {{
    gift {{ {GIFT_FIELDS} }}
    wallet {{ userId coins coinsValue {{ amount currency }} }}
    replayed
    errors {{ code message field }}
  }}
}}
"""

UNLOCK_FEATURE = """
mutation UnlockFeature($input: UnlockFeatureInput!) {
  unlockFeature(input: $input) {
    unlock { id userId featureCode coins entryId createdAt }
    wallet { userId coins coinsValue { amount currency } }
    replayed
    errors { code message field }
  }
}
"""

GIFTS_SENT = f"""
query GiftsSent($userId: String, $first: Int!, $after: String) {{
  giftsSent(userId: $userId, first: $first, after: $after) {{
    edges {{ cursor node {{ {GIFT_FIELDS} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""

WALLET = "query Wallet { wallet { coins coinsValue { amount currency } } }"

CREATOR_EARNINGS = """
query CreatorEarnings($creatorId: String) {
  creatorEarnings(creatorId: $creatorId) {
    creatorId diamondsPending diamondsAvailable diamondsReserved diamonds
    pendingValue { amount currency }
    availableValue { amount currency }
    reservedValue { amount currency }
    payable { amount currency }
  }
}
"""

ACCOUNT_BALANCE = """
query AccountBalance($code: String!) {
  accountBalance(code: $code) { balance postingCount }
}
"""

UPSERT_GIFT_TYPE = """
mutation UpsertGiftType($input: UpsertGiftTypeInput!) {
  upsertGiftType(input: $input) {
    giftType { code name coinPrice tier animation active updatedAt }
    errors { code message field }
  }
}
"""

SET_ACCOUNT_FROZEN = """
mutation SetAccountFrozen($input: SetAccountFrozenInput!) {
  setAccountFrozen(input: $input) {
    standing { userId frozen reason changedBy changedAt }
    errors { code message field }
  }
}
"""

_keys = itertools.count(1)


def new_key(prefix: str = "gift") -> str:
    return f"{prefix}-key-{next(_keys):06d}"


def data(reply: dict[str, Any], field: str) -> Any:
    """The root field of a reply that must have no top-level error."""
    assert "errors" not in reply, reply
    return reply["data"][field]


def the_only_error(reply: dict[str, Any]) -> dict[str, Any]:
    """A top-level error: exactly one, and no data (a nullable root field comes back null)."""
    assert reply["data"] is None or set(reply["data"].values()) == {None}, reply
    assert len(reply["errors"]) == 1, reply
    error: dict[str, Any] = reply["errors"][0]
    return error


def error_code(reply: dict[str, Any]) -> str:
    code: str = the_only_error(reply)["extensions"]["code"]
    return code


def the_only_payload_error(payload: dict[str, Any]) -> dict[str, Any]:
    assert len(payload["errors"]) == 1, payload
    error: dict[str, Any] = payload["errors"][0]
    return error


async def buy_coins(gql: GraphQLClient, user: str = "ana", package: str = "coins_350") -> None:
    """``user`` buys a package on the web by card (350 coins for $4.99 by default)."""
    variables = {
        "input": {
            "idempotencyKey": new_key("purchase"),
            "currency": "USD",
            "channel": "WEB",
            "provider": "CARD",
            "paymentToken": "tok_success",
            "packageCode": package,
        }
    }
    payload = data(await gql(PURCHASE_COINS, variables, user=user), "purchaseCoins")
    assert payload["errors"] == [] and payload["purchase"]["status"] == "COMPLETED", payload


async def start_stream(gql: GraphQLClient, creator: str = "bo", title: str = "Live!") -> str:
    """``creator`` goes live; the new stream's id."""
    reply = await gql(START_STREAM, {"input": {"title": title}}, user=creator, roles=CREATOR)
    payload = data(reply, "startStream")
    assert payload["errors"] == [], payload
    stream_id: str = payload["stream"]["id"]
    return stream_id


async def end_stream(gql: GraphQLClient, stream_id: str, creator: str = "bo") -> dict[str, Any]:
    reply = await gql(END_STREAM, {"input": {"streamId": stream_id}}, user=creator, roles=CREATOR)
    payload: dict[str, Any] = data(reply, "endStream")
    return payload


async def send_gift(
    gql: GraphQLClient,
    stream_id: str,
    gift_code: str = "rose",
    quantity: int = 1,
    *,
    user: str = "ana",
    key: str | None = None,
    roles: tuple[str, ...] = ("viewer",),
) -> dict[str, Any]:
    """The sendGift payload; the request itself must raise no top-level error."""
    variables = {
        "input": {
            "streamId": stream_id,
            "giftCode": gift_code,
            "quantity": quantity,
            "idempotencyKey": key or new_key(),
        }
    }
    payload: dict[str, Any] = data(
        await gql(SEND_GIFT, variables, user=user, roles=roles), "sendGift"
    )
    return payload


async def gift_sent(
    gql: GraphQLClient, stream_id: str, *args: Any, **kwargs: Any
) -> dict[str, Any]:
    """A gift that must be delivered: the payload's gift."""
    payload = await send_gift(gql, stream_id, *args, **kwargs)
    assert payload["errors"] == [], payload
    gift: dict[str, Any] = payload["gift"]
    return gift


async def wallet(gql: GraphQLClient, user: str = "ana") -> dict[str, Any]:
    found: dict[str, Any] = data(await gql(WALLET, user=user), "wallet")
    return found


async def account_balance(gql: GraphQLClient, code: str) -> tuple[str, str]:
    """(balance, posting count) of an account, as finance reads it; ("0", "0") if never opened."""
    reply = await gql(ACCOUNT_BALANCE, {"code": code}, user="fin", roles=FINANCE)
    found = data(reply, "accountBalance")
    if found is None:
        return "0", "0"
    return found["balance"], found["postingCount"]


async def earnings(gql: GraphQLClient, creator: str = "bo") -> dict[str, Any]:
    """The creator's earnings as finance reads them (which releases what is due)."""
    reply = await gql(CREATOR_EARNINGS, {"creatorId": creator}, user="fin", roles=FINANCE)
    found: dict[str, Any] = data(reply, "creatorEarnings")
    return found


async def set_frozen(gql: GraphQLClient, user: str, frozen: bool, reason: str = "test") -> None:
    variables = {"input": {"userId": user, "frozen": frozen, "reason": reason}}
    payload = data(
        await gql(SET_ACCOUNT_FROZEN, variables, user="adm", roles=ADMIN), "setAccountFrozen"
    )
    assert payload["errors"] == [], payload
    assert payload["standing"]["frozen"] is frozen


async def upsert_gift_type(gql: GraphQLClient, **fields: Any) -> dict[str, Any]:
    """The upsertGiftType payload, as an admin sends it."""
    item = {"code": "rose", "name": "Rose", "coinPrice": "1", "tier": "BASIC", "active": True}
    item.update(fields)
    reply = await gql(UPSERT_GIFT_TYPE, {"input": item}, user="adm", roles=ADMIN)
    payload: dict[str, Any] = data(reply, "upsertGiftType")
    return payload
