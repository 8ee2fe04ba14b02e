"""Velocity and spend limits over GraphQL, through the real ASGI app over HTTP: coins bought per
user per UTC day (PURCHASE_LIMIT_EXCEEDED) and gifts per sender per sliding window
(GIFT_RATE_LIMITED). A breach is one payload error with its code, and posts, charges and records
nothing; once the day or the window has moved on, the same request goes through.

The app of this module is configured with small limits: 1,000 coins a day, 3 gifts in 2 seconds.
(The third limit, cash per creator per day in payouts, DAILY_PAYOUT_CAP_EXCEEDED, has its tests
with the payouts: tests/graphql/test_graphql_payouts.py and tests/payouts/test_payouts.py.)"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.gifts.tables import GiftRow
from accounting.purchases.tables import PurchaseRow, SandboxPaymentRow
from api.settings import Settings
from tests.conftest import GraphQLClient
from tests.gifts.streaming import (
    FINANCE,
    GIFT_FIELDS,
    account_balance,
    buy_coins,
    data,
    gift_sent,
    send_gift,
    start_stream,
    the_only_payload_error,
)
from tests.gifts.streaming import (
    wallet as wallet_of,
)

DAILY_COINS = 1_000
GIFTS_PER_WINDOW = 3


@pytest.fixture
def window_seconds() -> int:
    """Long enough that a test's gifts all fall in one window however slow the machine; the
    test of the window moving on sets a short one."""
    return 60


@pytest.fixture
def settings(settings: Settings, window_seconds: int) -> Settings:
    return settings.model_copy(
        update={
            "purchase_daily_coin_limit": DAILY_COINS,
            "gift_rate_limit": GIFTS_PER_WINDOW,
            "gift_rate_window_seconds": window_seconds,
        }
    )


PURCHASE_COINS = """
mutation PurchaseCoins($input: PurchaseCoinsInput!) {
  purchaseCoins(input: $input) {
    purchase { id status coins bonusCoins }
    wallet { coins }
    replayed
    errors { code message field }
  }
}
"""

PURCHASES = "query { purchases(first: 100) { edges { node { id status coins } } } }"
TRANSACTIONS = "query { transactions(first: 100) { edges { node { entryId kind coins } } } }"
GIFT_BY_KEY = (
    f"query GiftByKey($key: String!) {{ giftByKey(idempotencyKey: $key) {{ {GIFT_FIELDS} }} }}"
)

_keys = itertools.count(1)


def new_key() -> str:
    return f"limits-key-{next(_keys):06d}"


async def buy(
    gql: GraphQLClient,
    *,
    key: str | None = None,
    user: str = "ana",
    token: str = "tok_success",
    **amount: Any,
) -> dict[str, Any]:
    """The purchaseCoins payload for a web purchase by card (the 350-coin package unless
    ``packageCode`` or ``customCoins`` is given)."""
    fields: dict[str, Any] = {
        "idempotencyKey": key or new_key(),
        "currency": "USD",
        "channel": "WEB",
        "provider": "CARD",
        "paymentToken": token,
        **(amount or {"packageCode": "coins_350"}),
    }
    payload: dict[str, Any] = data(
        await gql(PURCHASE_COINS, {"input": fields}, user=user), "purchaseCoins"
    )
    return payload


async def bought(gql: GraphQLClient, **kwargs: Any) -> dict[str, Any]:
    """A purchase that must go through (completed or pending): its purchase."""
    payload = await buy(gql, **kwargs)
    assert payload["errors"] == [], payload
    purchase: dict[str, Any] = payload["purchase"]
    return purchase


async def charges(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Charges the sandbox provider recorded (every charge ever attempted at it)."""
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(SandboxPaymentRow)) or 0)


async def purchase_rows(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(PurchaseRow)) or 0)


async def purchase_books(gql: GraphQLClient, user: str = "ana") -> tuple[Any, ...]:
    """What a refused purchase must not change: the wallet, the purchases, the movements."""
    return (
        await wallet_of(gql, user),
        data(await gql(PURCHASES, user=user), "purchases")["edges"],
        data(await gql(TRANSACTIONS, user=user), "transactions")["edges"],
    )


def the_limit_error(payload: dict[str, Any], code: str) -> dict[str, Any]:
    """The payload of a request refused by a limit: that one error, and nothing else."""
    error = the_only_payload_error(payload)
    assert error["code"] == code, payload
    assert payload["wallet"] is None
    assert payload["replayed"] is False
    return error


async def record_purchase_at(
    sessions: async_sessionmaker[AsyncSession], user: str, coins: int, created_at_sql: str
) -> None:
    """A pending purchase of ``coins`` recorded at ``created_at_sql`` (an SQL expression), as
    if bought then: a purchase the provider has not answered for yet counts against the day
    it was made in."""
    async with sessions() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO purchase (user_id, idempotency_key, request_hash, coins, bonus_coins,"
                "  channel, provider, currency, price_minor, status, created_at)"
                f" VALUES (:user, :key, 'recorded-by-the-test', :coins, 0, 'web', 'card', 'USD',"
                f"  :coins, 'pending', {created_at_sql})"
            ),
            {"user": user, "key": new_key(), "coins": coins},
        )


# --- coins bought per user per day --------------------------------------------------------------


async def test_a_purchase_past_the_days_coin_limit_is_refused_and_charges_nothing(
    gql: GraphQLClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Ana may buy 1,000 coins a day. She buys 700; 350 more would make 1,050, so that purchase
    is refused before any charge: no purchase, no charge, no entry. 70 more still fit."""
    first = await bought(gql, key="ana-buys-700-coins", packageCode="coins_700")
    assert (first["status"], first["coins"]) == ("COMPLETED", "700")
    before = await purchase_books(gql)
    charged, recorded = await charges(sessions), await purchase_rows(sessions)

    payload = await buy(gql, packageCode="coins_350")

    error = the_limit_error(payload, "PURCHASE_LIMIT_EXCEEDED")
    assert error == {
        "code": "PURCHASE_LIMIT_EXCEEDED",
        "message": "700 coins already bought today (UTC); 350 more would pass the daily "
        "limit of 1,000 coins",
        "field": "packageCode",
    }
    assert payload["purchase"] is None
    assert await purchase_books(gql) == before
    assert (await charges(sessions), await purchase_rows(sessions)) == (charged, recorded)

    assert (await bought(gql, packageCode="coins_70"))["status"] == "COMPLETED"
    assert (await wallet_of(gql))["coins"] == "770"


async def test_a_replay_returns_the_first_purchase_even_once_the_day_is_over_the_limit(
    gql: GraphQLClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = await bought(gql, key="ana-buys-700-coins", packageCode="coins_700")
    await bought(gql, packageCode="coins_70")
    charged = await charges(sessions)

    replay = await buy(gql, key="ana-buys-700-coins", packageCode="coins_700")

    assert replay["errors"] == [] and replay["replayed"] is True, replay
    assert replay["purchase"] == first
    assert await charges(sessions) == charged
    assert (await wallet_of(gql))["coins"] == "770"


async def test_exactly_the_limit_may_be_bought_and_a_custom_amount_is_refused_past_it(
    gql: GraphQLClient,
) -> None:
    await bought(gql, packageCode="coins_700")
    await bought(gql, customCoins="300")  # 1,000: exactly the limit

    payload = await buy(gql, customCoins="30")

    error = the_limit_error(payload, "PURCHASE_LIMIT_EXCEEDED")
    assert error["field"] == "customCoins"
    assert "1,000 coins already bought today" in error["message"]
    assert (await wallet_of(gql))["coins"] == "1000"


async def test_pending_purchases_count_against_the_limit_and_failed_ones_do_not(
    gql: GraphQLClient,
) -> None:
    """A declined purchase granted nothing and does not count; a pending one (the provider has
    not answered) may still grant its coins, so it does."""
    declined = await buy(gql, token="tok_declined", packageCode="coins_700")
    assert declined["purchase"]["status"] == "FAILED"
    assert (await bought(gql, token="tok_timeout", packageCode="coins_700"))["status"] == "PENDING"

    payload = await buy(gql, packageCode="coins_350")

    error = the_limit_error(payload, "PURCHASE_LIMIT_EXCEEDED")
    assert "700 coins already bought today" in error["message"]
    assert (await bought(gql, packageCode="coins_70"))["status"] == "COMPLETED"


async def test_the_day_is_the_calendar_day_in_utc_so_yesterdays_purchases_do_not_count(
    gql: GraphQLClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Ana bought her 1,000 coins a moment before midnight UTC: today she may buy again. A
    purchase made at midnight exactly is today's."""
    await record_purchase_at(
        sessions, "ana", DAILY_COINS, "date_trunc('day', now(), 'UTC') - interval '1 microsecond'"
    )
    assert (await bought(gql, packageCode="coins_700"))["status"] == "COMPLETED"

    await record_purchase_at(sessions, "ana", 300, "date_trunc('day', now(), 'UTC')")
    payload = await buy(gql, packageCode="coins_70")

    error = the_limit_error(payload, "PURCHASE_LIMIT_EXCEEDED")
    assert "1,000 coins already bought today" in error["message"]


async def test_the_limit_is_per_user(gql: GraphQLClient) -> None:
    await bought(gql, packageCode="coins_700")
    await bought(gql, user="cy", packageCode="coins_700")
    assert (await buy(gql, packageCode="coins_700"))["errors"][0]["code"] == (
        "PURCHASE_LIMIT_EXCEEDED"
    )
    assert (await wallet_of(gql, "cy"))["coins"] == "700"


# --- gifts per sender per window ----------------------------------------------------------------


async def gift_books(gql: GraphQLClient, user: str = "ana", creator: str = "bo") -> Any:
    """What a refused gift must not change: the sender's wallet and movements, and the
    creator's diamonds and payable."""
    return (
        await wallet_of(gql, user),
        data(await gql(TRANSACTIONS, user=user), "transactions")["edges"],
        await account_balance(gql, f"creator:{creator}:diamonds:pending"),
        await account_balance(gql, f"creator:{creator}:payable"),
        await account_balance(gql, "platform:revenue:gifts"),
    )


async def gift_rows(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(GiftRow)) or 0)


@pytest.mark.parametrize("window_seconds", [4])
async def test_a_gift_past_the_senders_rate_is_refused_until_the_window_moves_on(
    gql: GraphQLClient, sessions: async_sessionmaker[AsyncSession], window_seconds: int
) -> None:
    """Ana may send 3 gifts in any 4 seconds. Her fourth is refused with GIFT_RATE_LIMITED and
    leaves no trace (no gift, no entry, balances as they were); Cy, sending in the same
    stream, is not held back by Ana; once her gifts are older than the window, Ana's next
    gift goes through."""
    await buy_coins(gql, "ana")
    await buy_coins(gql, "cy")
    stream = await start_stream(gql, "bo")
    for _ in range(GIFTS_PER_WINDOW):
        await gift_sent(gql, stream)
    before = await gift_books(gql)
    sent = await gift_rows(sessions)

    refused_key = new_key()
    payload = await send_gift(gql, stream, key=refused_key)

    assert the_only_payload_error(payload) == {
        "code": "GIFT_RATE_LIMITED",
        "message": "ana sent 3 gifts in the last 4 seconds: at most 3 are allowed; "
        "try again shortly",
        "field": None,
    }
    assert (payload["gift"], payload["wallet"], payload["replayed"]) == (None, None, False)
    assert await gift_books(gql) == before
    assert await gift_rows(sessions) == sent
    assert data(await gql(GIFT_BY_KEY, {"key": refused_key}, user="ana"), "giftByKey") is None
    assert (await gift_sent(gql, stream, user="cy"))["senderId"] == "cy"

    await asyncio.sleep(window_seconds + 0.2)
    again = await gift_sent(gql, stream)
    assert again["senderId"] == "ana"
    assert (await wallet_of(gql))["coins"] == str(350 - GIFTS_PER_WINDOW - 1)


async def test_a_gift_of_many_roses_is_one_gift_for_the_rate(gql: GraphQLClient) -> None:
    await buy_coins(gql, "ana")
    stream = await start_stream(gql, "bo")
    for quantity in (10, 20, 30):
        await gift_sent(gql, stream, "rose", quantity)
    assert (await wallet_of(gql))["coins"] == "290"
    refused = await send_gift(gql, stream, "rose", 1)
    assert the_only_payload_error(refused)["code"] == "GIFT_RATE_LIMITED"


async def test_refused_gifts_do_not_count_against_the_rate(gql: GraphQLClient) -> None:
    """Gifts refused for another reason (here: too few coins) are not gifts sent."""
    await buy_coins(gql, "ana", "coins_70")
    stream = await start_stream(gql, "bo")
    for _ in range(4):
        refused = await send_gift(gql, stream, "galaxy")
        assert the_only_payload_error(refused)["code"] == "INSUFFICIENT_COINS"
    for _ in range(GIFTS_PER_WINDOW):
        await gift_sent(gql, stream)
    assert (await wallet_of(gql))["coins"] == "67"


async def test_finance_still_sees_the_books_balance_after_refusals(gql: GraphQLClient) -> None:
    await buy_coins(gql, "ana")
    stream = await start_stream(gql, "bo")
    for _ in range(GIFTS_PER_WINDOW + 2):
        await send_gift(gql, stream)
    report = data(
        await gql(
            "query { integrityReport { ok violations { check } } }", user="fin", roles=FINANCE
        ),
        "integrityReport",
    )
    assert report == {"ok": True, "violations": []}
