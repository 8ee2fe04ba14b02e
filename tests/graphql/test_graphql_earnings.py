"""What creators earned, over GraphQL through the real ASGI app over HTTP: creatorEarnings
(diamonds pending, available and reserved, and their cash value), with the hold released on read,
once; earningsOverTime in hours and days; and who may read whose earnings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from api.settings import Settings
from schema.nodes import pk_of
from tests.conftest import GraphQLClient
from tests.gifts.streaming import (
    ADMIN,
    CREATOR,
    CREATOR_EARNINGS,
    FINANCE,
    SUPPORT,
    account_balance,
    buy_coins,
    data,
    earnings,
    gift_sent,
    start_stream,
    the_only_error,
)

EARNINGS_OVER_TIME = """
query EarningsOverTime(
  $creatorId: String, $from: DateTime, $to: DateTime, $bucket: EarningsBucketSize!
) {
  earningsOverTime(creatorId: $creatorId, from: $from, to: $to, bucket: $bucket) {
    start diamonds cashValue { amount currency } giftCount
  }
}
"""

GIFT_RELEASED = "query G($key: String!) { giftByKey(idempotencyKey: $key) { released } }"

ZERO_USD = {"amount": "0.00", "currency": "USD"}


async def bo_gets_105_diamonds(gql: GraphQLClient) -> None:
    """Ana sends Bo five roses and a hand hearts: 105 coins, 105 diamonds worth $0.525."""
    await buy_coins(gql, "ana")
    stream_id = await start_stream(gql, "bo")
    await gift_sent(gql, stream_id, "rose", 5, key="ana-roses-key")
    await gift_sent(gql, stream_id, "hand_hearts", 1, key="ana-hearts-key")


async def my_earnings(gql: GraphQLClient, user: str = "bo") -> dict[str, Any]:
    found: dict[str, Any] = data(
        await gql(CREATOR_EARNINGS, user=user, roles=CREATOR), "creatorEarnings"
    )
    return found


# --- creatorEarnings ----------------------------------------------------------------------------


async def test_diamonds_past_their_hold_are_released_when_bo_reads_his_earnings(
    gql: GraphQLClient,
) -> None:
    await bo_gets_105_diamonds(gql)
    assert await account_balance(gql, "creator:bo:diamonds:pending") == ("105", "2")
    assert await account_balance(gql, "creator:bo:diamonds:available") == ("0", "0")

    found = await my_earnings(gql)

    assert found == {
        "creatorId": "bo",
        "diamondsPending": "0",
        "diamondsAvailable": "105",
        "diamondsReserved": "0",
        "diamonds": "105",
        "pendingValue": ZERO_USD,
        "availableValue": {"amount": "0.525", "currency": "USD"},
        "reservedValue": ZERO_USD,
        "payable": {"amount": "0.525", "currency": "USD"},
    }
    assert await account_balance(gql, "creator:bo:diamonds:pending") == ("0", "3")
    assert await account_balance(gql, "creator:bo:diamonds:available") == ("105", "1")
    for key in ("ana-roses-key", "ana-hearts-key"):
        reply = await gql(GIFT_RELEASED, {"key": key}, user="ana")
        assert data(reply, "giftByKey") == {"released": True}


async def test_reading_again_releases_nothing_twice(gql: GraphQLClient) -> None:
    await bo_gets_105_diamonds(gql)
    first = await my_earnings(gql)

    again = await my_earnings(gql)
    by_finance = await earnings(gql, "bo")

    assert again == first == by_finance
    assert await account_balance(gql, "creator:bo:diamonds:available") == ("105", "1")


async def test_a_creator_with_no_gifts_has_nothing(gql: GraphQLClient) -> None:
    found = await my_earnings(gql, "cy")

    assert found["diamonds"] == "0"
    assert found["payable"] == ZERO_USD
    assert found["availableValue"] == ZERO_USD


async def test_each_creator_is_paid_for_their_own_gifts(gql: GraphQLClient) -> None:
    await buy_coins(gql, "ana")
    bo_live = await start_stream(gql, "bo")
    cy_live = await start_stream(gql, "cy")
    await gift_sent(gql, bo_live, "perfume", 1)
    await gift_sent(gql, cy_live, "corgi", 1)

    assert (await my_earnings(gql, "bo"))["diamonds"] == "20"
    assert (await my_earnings(gql, "cy"))["diamonds"] == "299"
    assert (await my_earnings(gql, "cy"))["payable"] == {"amount": "1.495", "currency": "USD"}


@pytest.fixture
async def held_gql(
    settings: Settings, db_url: URL, token: Callable[..., str]
) -> AsyncIterator[GraphQLClient]:
    """The service with a 24-hour hold, on the test's database."""
    app = create_app(settings.model_copy(update={"hold_hours": 24.0}), db_url)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://coinbooks.test") as http:
        yield GraphQLClient(http, token)
    await app.state.engine.dispose()


async def test_inside_the_hold_diamonds_stay_pending_however_often_they_are_read(
    held_gql: GraphQLClient,
) -> None:
    await bo_gets_105_diamonds(held_gql)

    found = await my_earnings(held_gql)
    again = await my_earnings(held_gql)

    assert found == again
    assert (found["diamondsPending"], found["diamondsAvailable"]) == ("105", "0")
    assert found["pendingValue"] == {"amount": "0.525", "currency": "USD"}
    assert found["availableValue"] == ZERO_USD
    assert await account_balance(held_gql, "creator:bo:diamonds:available") == ("0", "0")
    gift = data(await held_gql(GIFT_RELEASED, {"key": "ana-roses-key"}, user="ana"), "giftByKey")
    assert gift == {"released": False}


@pytest.mark.parametrize(
    ("user", "roles", "creator_id"),
    [
        ("bo", CREATOR, None),
        ("bo", CREATOR, "bo"),
        ("bo", ("creator", "viewer"), None),
        ("fin", FINANCE, "bo"),
        ("sue", SUPPORT, "bo"),
    ],
)
async def test_a_creator_reads_their_own_earnings_and_finance_and_support_anyones(
    gql: GraphQLClient, user: str, roles: tuple[str, ...], creator_id: str | None
) -> None:
    await bo_gets_105_diamonds(gql)

    reply = await gql(CREATOR_EARNINGS, {"creatorId": creator_id}, user=user, roles=roles)

    assert data(reply, "creatorEarnings")["diamonds"] == "105"


@pytest.mark.parametrize(
    ("user", "roles", "creator_id", "message"),
    [
        ("cy", CREATOR, "bo", "You may not read another creator's earnings"),
        ("ana", ("viewer",), "bo", "You may not read another creator's earnings"),
        ("bo", ("viewer",), "bo", "You may not read another creator's earnings"),
        ("bo", ("viewer",), None, "You may not have earnings without the creator role"),
        ("fin", FINANCE, None, "You may not have earnings without the creator role"),
        ("adm", ADMIN, "bo", "You may not read another creator's earnings"),
    ],
)
async def test_nobody_else_reads_a_creators_earnings_and_a_refused_read_releases_nothing(
    gql: GraphQLClient, user: str, roles: tuple[str, ...], creator_id: str | None, message: str
) -> None:
    await bo_gets_105_diamonds(gql)

    for query, variables in [
        (CREATOR_EARNINGS, {"creatorId": creator_id}),
        (EARNINGS_OVER_TIME, {"creatorId": creator_id, "bucket": "DAY"}),
    ]:
        error = the_only_error(await gql(query, variables, user=user, roles=roles))
        assert (error["extensions"]["code"], error["message"]) == ("FORBIDDEN", message)
    assert await account_balance(gql, "creator:bo:diamonds:pending") == ("105", "2")


async def test_earnings_need_a_token_and_a_valid_creator_id(gql: GraphQLClient) -> None:
    anonymous = the_only_error(await gql(CREATOR_EARNINGS, {"creatorId": "bo"}))
    bad_id = the_only_error(
        await gql(CREATOR_EARNINGS, {"creatorId": "bo bo"}, user="fin", roles=FINANCE)
    )

    assert anonymous["extensions"]["code"] == "UNAUTHENTICATED"
    assert bad_id["extensions"]["code"] == "BAD_USER_INPUT"
    assert bad_id["message"] == "A user id is 1-64 letters, digits, '_', '.' or '-'"


# --- earningsOverTime ---------------------------------------------------------------------------

GIFT_TIMES = {
    "2026-11-20T10:15:00+00:00": ("rose", 5),
    "2026-11-20T10:45:00+00:00": ("perfume", 1),
    "2026-11-20T11:05:00+00:00": ("hand_hearts", 1),
    "2026-11-20T15:30:00+00:00": ("doughnut", 2),
    "2026-11-21T09:00:00+00:00": ("finger_heart", 3),
}


async def gifts_at_known_times(
    gql: GraphQLClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Ana's gifts to Bo, placed at the times of ``GIFT_TIMES``.

    The service stamps a gift with the clock, and a trigger forbids changing a gift; to put gifts
    in past hours, this test rewrites their times with triggers off (``session_replication_role``
    is ``replica``), as no client can."""
    await buy_coins(gql, "ana")
    stream_id = await start_stream(gql, "bo")
    for at, (code, quantity) in GIFT_TIMES.items():
        gift = await gift_sent(gql, stream_id, code, quantity)
        row_id = pk_of(gift["id"], "Gift")
        assert row_id is not None
        async with sessions() as session, session.begin():
            await session.execute(text("SET LOCAL session_replication_role = replica"))
            await session.execute(
                text("UPDATE gift SET created_at = :at, release_at = :at WHERE id = :id"),
                {"at": datetime.fromisoformat(at), "id": row_id},
            )


async def buckets(gql: GraphQLClient, **variables: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = data(
        await gql(EARNINGS_OVER_TIME, variables, user="bo", roles=CREATOR), "earningsOverTime"
    )
    return found


async def test_hourly_buckets_show_bos_best_hours_and_add_up_to_his_earnings(
    gql: GraphQLClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await gifts_at_known_times(gql, sessions)

    hours = await buckets(
        gql, **{"from": "2026-11-20T00:00:00Z", "to": "2026-11-22T00:00:00Z", "bucket": "HOUR"}
    )

    assert hours == [
        {
            "start": "2026-11-20T10:00:00+00:00",
            "diamonds": "25",
            "cashValue": {"amount": "0.125", "currency": "USD"},
            "giftCount": 2,
        },
        {
            "start": "2026-11-20T11:00:00+00:00",
            "diamonds": "100",
            "cashValue": {"amount": "0.50", "currency": "USD"},
            "giftCount": 1,
        },
        {
            "start": "2026-11-20T15:00:00+00:00",
            "diamonds": "60",
            "cashValue": {"amount": "0.30", "currency": "USD"},
            "giftCount": 1,
        },
        {
            "start": "2026-11-21T09:00:00+00:00",
            "diamonds": "15",
            "cashValue": {"amount": "0.075", "currency": "USD"},
            "giftCount": 1,
        },
    ]
    total = await my_earnings(gql)
    assert sum(int(h["diamonds"]) for h in hours) == int(total["diamonds"]) == 200
    cash = sum(Decimal(h["cashValue"]["amount"]) for h in hours)
    assert cash == Decimal(total["payable"]["amount"]) == Decimal("1.00")
    assert sum(h["giftCount"] for h in hours) == len(GIFT_TIMES)


async def test_daily_buckets_and_a_range_that_cuts_through_them(
    gql: GraphQLClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await gifts_at_known_times(gql, sessions)

    days = await buckets(
        gql, **{"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z", "bucket": "DAY"}
    )
    afternoon = await buckets(
        gql, **{"from": "2026-11-20T10:45:00Z", "to": "2026-11-20T15:30:00Z", "bucket": "HOUR"}
    )

    assert [(d["start"], d["diamonds"], d["giftCount"]) for d in days] == [
        ("2026-11-20T00:00:00+00:00", "185", 4),
        ("2026-11-21T00:00:00+00:00", "15", 1),
    ]
    # [from, to): the 10:45 gift is in, the 15:30 one is not
    assert [(h["start"], h["diamonds"]) for h in afternoon] == [
        ("2026-11-20T10:00:00+00:00", "20"),
        ("2026-11-20T11:00:00+00:00", "100"),
    ]


async def test_without_a_range_the_last_24_hours_are_shown(gql: GraphQLClient) -> None:
    await bo_gets_105_diamonds(gql)

    hours = await buckets(gql, bucket="HOUR")
    days = await buckets(gql, bucket="DAY")

    assert sum(int(h["diamonds"]) for h in hours) == 105
    assert sum(h["giftCount"] for h in hours) == 2
    assert [(d["diamonds"], d["giftCount"]) for d in days] == [("105", 2)]
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert datetime.fromisoformat(days[0]["start"]) == today


async def test_finance_reads_any_creators_earnings_over_time(gql: GraphQLClient) -> None:
    await bo_gets_105_diamonds(gql)

    reply = await gql(
        EARNINGS_OVER_TIME, {"creatorId": "bo", "bucket": "DAY"}, user="fin", roles=FINANCE
    )

    assert [b["diamonds"] for b in data(reply, "earningsOverTime")] == ["105"]


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"from": "2026-11-21T00:00:00Z", "to": "2026-11-20T00:00:00Z"},
            "'to' must be after 'from'",
        ),
        (
            {"from": "2026-11-20T00:00:00Z", "to": "2026-11-20T00:00:00Z"},
            "'to' must be after 'from'",
        ),
        (
            {"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"},
            "At most 744 buckets per request",
        ),
    ],
)
async def test_a_range_that_is_empty_or_too_long_is_refused(
    gql: GraphQLClient, variables: dict[str, Any], message: str
) -> None:
    reply = await gql(EARNINGS_OVER_TIME, {**variables, "bucket": "HOUR"}, user="bo", roles=CREATOR)

    error = the_only_error(reply)
    assert (error["extensions"]["code"], error["message"]) == ("BAD_USER_INPUT", message)


async def test_an_instant_without_an_offset_is_refused_before_anything_runs(
    gql: GraphQLClient,
) -> None:
    """The DateTime scalar refuses it: a request error naming the variable (docs/graphql.md,
    DateTime), as for any value its type cannot represent."""
    variables = {"from": "2026-11-20T00:00:00", "to": "2026-11-21T00:00:00Z", "bucket": "HOUR"}
    reply = await gql(EARNINGS_OVER_TIME, variables, user="bo", roles=CREATOR)

    error = the_only_error(reply)
    assert reply.get("data") is None
    assert error["message"].startswith("Variable '$from' has invalid value")
    assert "Give its offset: Z or +hh:mm." in error["message"]
