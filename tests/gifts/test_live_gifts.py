"""Live gifts over graphql-transport-ws, against the real service: the app runs under uvicorn on
a localhost port (two of them for the multi-process case, each with its own engine and its own
listening connection), viewers connect with a real websocket client, and gifts are committed
(or not) in a real PostgreSQL. Every wait has a deadline."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from accounting.gifts.events import GIFT_CHANNEL
from accounting.gifts.posting import GiftRequest, SentGift
from accounting.gifts.service import GiftService
from accounting.gifts.streams import end_stream, start_stream
from accounting.gifts.tables import GiftRow
from accounting.policy.access import Role
from accounting.purchases.service import PurchaseRequest, PurchaseService
from api.app import create_app
from api.auth import issue_token
from api.database import libpq_url
from api.gift_feed import FeedLimits, PostgresGiftFeed
from api.settings import Settings
from schema.context import FeedEnd, LiveFeedEnded
from schema.nodes import global_id
from tests.conftest import without_cost
from tests.serving import served_in_process

WAIT_SECONDS = 5.0
"""The deadline of anything that should happen."""
QUIET_SECONDS = 0.4
"""How long something that should not happen is watched for: NOTIFY takes milliseconds."""

LIVE_GIFTS = """
subscription LiveGifts($streamId: ID!) {
  giftsInStream(streamId: $streamId) {
    id streamId senderId creatorId giftCode quantity coins diamonds createdAt
  }
}
"""

SEND_GIFT = """
mutation SendGift($input: SendGiftInput!) {
  sendGift(input: $input) { gift { id } errors { code } }
}
"""

_keys = itertools.count(1)


def new_key(prefix: str = "live") -> str:
    return f"{prefix}-key-{next(_keys):06d}"


# --- the service, served --------------------------------------------------------------------


@dataclass
class Served:
    app: Starlette
    port: int

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    @property
    def feed(self) -> PostgresGiftFeed:
        feed: PostgresGiftFeed = self.app.state.gift_feed
        return feed


@asynccontextmanager
async def serving(settings: Settings, db_url: URL) -> AsyncIterator[Served]:
    """The app under uvicorn (lifespan included) on a free localhost port."""
    app = create_app(settings, db_url)
    async with served_in_process(app, wait_seconds=WAIT_SECONDS) as port:
        served = Served(app, port)
        await served.feed.wait_listening(WAIT_SECONDS)
        yield served


@pytest.fixture
def live_settings(settings: Settings) -> Settings:
    """Ended streams are looked for every 0.2 s, so their subscriptions complete quickly."""
    return settings.model_copy(update={"gift_feed_stream_check_seconds": 0.2})


# --- a graphql-transport-ws client ----------------------------------------------------------


class Viewer:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def receive(self, within_seconds: float = WAIT_SECONDS) -> dict[str, Any]:
        text = await asyncio.wait_for(self.ws.recv(), within_seconds)
        message: dict[str, Any] = json.loads(text)
        return message

    async def subscribe(self, stream_id: int | str, op: str = "1") -> None:
        variables = {"streamId": str(stream_id)}
        payload = {"query": LIVE_GIFTS, "variables": variables}
        await self.send({"id": op, "type": "subscribe", "payload": payload})

    async def next_gift(self, op: str = "1") -> dict[str, Any]:
        message = await self.receive()
        assert message["type"] == "next" and message["id"] == op, message
        assert "errors" not in message["payload"], message
        gift: dict[str, Any] = message["payload"]["data"]["giftsInStream"]
        return gift

    async def stays_quiet(self, seconds: float = QUIET_SECONDS) -> None:
        with pytest.raises(TimeoutError):
            message = await self.receive(within_seconds=seconds)
            pytest.fail(f"expected nothing, received {message}")


@asynccontextmanager
async def websocket(
    served: Served, headers: dict[str, str] | None = None, origin: str | None = None
) -> AsyncIterator[ClientConnection]:
    async with connect(
        served.ws_url,
        subprotocols=[Subprotocol("graphql-transport-ws")],
        additional_headers=headers,
        origin=origin,  # type: ignore[arg-type]
        open_timeout=WAIT_SECONDS,
        close_timeout=1,
    ) as ws:
        yield ws


@asynccontextmanager
async def viewer(served: Served, token: str) -> AsyncIterator[Viewer]:
    """A signed-in, acknowledged connection."""
    async with websocket(served) as ws:
        signed_in = Viewer(ws)
        await signed_in.send({"type": "connection_init", "payload": {"Authorization": token}})
        assert await signed_in.receive() == {"type": "connection_ack"}
        yield signed_in


def bearer(token: Callable[..., str], user: str, *roles: str) -> str:
    return f"Bearer {token(user, *roles)}"


async def eventually(condition: Callable[[], bool], what: str) -> None:
    for _ in range(int(WAIT_SECONDS / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"not within {WAIT_SECONDS} s: {what}")


# --- the books --------------------------------------------------------------------------------


async def buy_coins(purchases: PurchaseService, user: str, package: str = "coins_350") -> None:
    request = PurchaseRequest(user, new_key("buy"), "USD", "web", "card", "tok_success", package)
    assert (await purchases.purchase_coins(request)).purchase.status == "completed"


async def go_live(sessions: async_sessionmaker[AsyncSession], creator: str) -> int:
    async with sessions() as session, session.begin():
        stream = await start_stream(session, creator, f"{creator} live")
        return stream.id


async def go_offline(sessions: async_sessionmaker[AsyncSession], creator: str, stream: int) -> None:
    async with sessions() as session, session.begin():
        await end_stream(session, creator, stream)


async def send(
    gifts: GiftService, sender: str, stream: int, code: str = "rose", quantity: int = 1
) -> SentGift:
    return (await gifts.send_gift(GiftRequest(sender, new_key(), stream, code, quantity))).gift


def as_received(gift: SentGift) -> dict[str, Any]:
    """What a subscriber receives for ``gift`` (createdAt parsed, to compare instants)."""
    return {
        "id": global_id("Gift", gift.id),
        "streamId": str(gift.stream_id),
        "senderId": gift.sender_id,
        "creatorId": gift.creator_id,
        "giftCode": gift.gift_code,
        "quantity": gift.quantity,
        "coins": str(gift.coins),
        "diamonds": str(gift.diamonds),
        "createdAt": gift.created_at,
    }


def parsed(received: dict[str, Any]) -> dict[str, Any]:
    return {**received, "createdAt": datetime.fromisoformat(received["createdAt"])}


# --- (a) one stream's gifts, in order --------------------------------------------------------


async def test_a_viewer_receives_each_gift_of_the_stream_in_commit_order_and_no_other(
    live_settings: Settings,
    db_url: URL,
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
    gifts: GiftService,
    token: Callable[..., str],
) -> None:
    """Dee watches Bo's stream while Ana gifts both Bo and Cy: Dee sees Bo's three gifts, in
    the order they were committed, with their amounts, and none of Cy's; when Bo ends the
    stream, Dee's subscription completes."""
    bo_stream = await go_live(sessions, "bo")
    cy_stream = await go_live(sessions, "cy")
    await buy_coins(purchases, "ana")
    async with (
        serving(live_settings, db_url) as served,
        viewer(served, bearer(token, "dee")) as dee,
    ):
        await dee.subscribe(bo_stream)
        await eventually(lambda: served.feed.subscriber_count(bo_stream) == 1, "subscribed")

        to_bo = []
        for stream, code, quantity in [
            (bo_stream, "rose", 1),
            (cy_stream, "rose", 2),
            (bo_stream, "perfume", 1),
            (cy_stream, "finger_heart", 1),
            (bo_stream, "rose", 3),
        ]:
            gift = await send(gifts, "ana", stream, code, quantity)
            if stream == bo_stream:
                to_bo.append(gift)

        received = [parsed(await dee.next_gift()) for _ in to_bo]
        assert received == [as_received(gift) for gift in to_bo]
        assert [(r["giftCode"], r["quantity"], r["coins"]) for r in received] == [
            ("rose", 1, "1"),
            ("perfume", 1, "20"),
            ("rose", 3, "3"),
        ]
        await dee.stays_quiet()  # Cy's gifts never come

        await go_offline(sessions, "bo", bo_stream)
        assert await dee.receive() == {"id": "1", "type": "complete"}
        await eventually(lambda: served.feed.subscriber_count() == 0, "subscription released")


async def test_an_unknown_stream_is_an_error_an_ended_one_completes_and_complete_unsubscribes(
    live_settings: Settings,
    db_url: URL,
    sessions: async_sessionmaker[AsyncSession],
    token: Callable[..., str],
) -> None:
    ended = await go_live(sessions, "bo")
    await go_offline(sessions, "bo", ended)
    live = await go_live(sessions, "cy")
    async with (
        serving(live_settings, db_url) as served,
        viewer(served, bearer(token, "dee")) as dee,
    ):
        for op, stream_id in (("1", "999999"), ("2", "not-a-number"), ("3", "-1")):
            await dee.subscribe(stream_id, op=op)
            error = await dee.receive()
            assert error["type"] == "error" and error["id"] == op, error
            assert [(e["message"], e["extensions"]["code"]) for e in error["payload"]] == [
                (f"No stream {stream_id}", "NOT_FOUND")
            ]

        await dee.subscribe(ended, op="4")
        assert await dee.receive() == {"id": "4", "type": "complete"}  # at once, no gift

        await dee.subscribe(live, op="5")
        await eventually(lambda: served.feed.subscriber_count(live) == 1, "subscribed")
        await dee.send({"id": "5", "type": "complete"})
        await eventually(lambda: served.feed.subscriber_count() == 0, "unsubscribed")
        await dee.stays_quiet()


# --- (b) several processes -------------------------------------------------------------------


async def test_a_gift_sent_through_one_instance_reaches_viewers_of_another(
    settings: Settings,
    db_url: URL,
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
    token: Callable[..., str],
) -> None:
    """Two instances of the service, each with its own engine and its own listening connection
    (as two processes would have): Ana's sendGift through A reaches Dee, connected to B, and
    Eve, connected to A; a gift through B reaches both as well."""
    stream = await go_live(sessions, "bo")
    await buy_coins(purchases, "ana")
    async with (
        serving(settings, db_url) as a,
        serving(settings, db_url) as b,
        viewer(b, bearer(token, "dee")) as dee,
        viewer(a, bearer(token, "eve")) as eve,
        httpx.AsyncClient(timeout=WAIT_SECONDS) as http,
    ):
        assert a.app.state.engine is not b.app.state.engine
        assert a.feed.backend_pid is not None and b.feed.backend_pid is not None
        assert a.feed.backend_pid != b.feed.backend_pid
        await dee.subscribe(stream)
        await eve.subscribe(stream)
        await eventually(lambda: b.feed.subscriber_count(stream) == 1, "Dee subscribed to B")
        await eventually(lambda: a.feed.subscriber_count(stream) == 1, "Eve subscribed to A")

        sent_ids = []
        for through, code in ((a, "rose"), (b, "perfume")):
            variables = {
                "input": {
                    "streamId": str(stream),
                    "giftCode": code,
                    "quantity": 1,
                    "idempotencyKey": new_key("http"),
                }
            }
            reply = await http.post(
                through.http_url,
                json={"query": SEND_GIFT, "variables": variables},
                headers={"Authorization": bearer(token, "ana")},
            )
            payload = reply.json()["data"]["sendGift"]
            assert payload["errors"] == [], payload
            sent_ids.append(payload["gift"]["id"])

        for watcher in (dee, eve):
            received = [await watcher.next_gift() for _ in sent_ids]
            assert [(g["id"], g["giftCode"]) for g in received] == list(
                zip(sent_ids, ("rose", "perfume"), strict=True)
            )
        assert (a.feed.connections_made, b.feed.connections_made) == (1, 1)


# --- (c) never before commit ----------------------------------------------------------------


async def test_a_gift_is_delivered_only_once_committed_and_never_when_rolled_back(
    live_settings: Settings,
    db_url: URL,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
    token: Callable[..., str],
) -> None:
    """Ana's gifts are written in transactions kept open. While the first is open Dee receives
    nothing of it (though a notice committed meanwhile reaches him); it is rolled back and
    never arrives. The second arrives when, and only when, its transaction commits."""
    stream = await go_live(sessions, "bo")
    await buy_coins(purchases, "ana")
    probe = {
        "gift_id": 10**12,
        "stream_id": stream,
        "sender_id": "probe",
        "creator_id": "bo",
        "gift_code": "rose",
        "quantity": 1,
        "coins": 1,
        "diamonds": 1,
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    async with (
        serving(live_settings, db_url) as served,
        viewer(served, bearer(token, "dee")) as dee,
        engine.connect() as connection,
    ):
        await dee.subscribe(stream)
        await eventually(lambda: served.feed.subscriber_count(stream) == 1, "subscribed")
        inside = async_sessionmaker(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        in_open_transaction = GiftService(inside, functional_currency="USD", hold=timedelta(0))

        rolled_back_transaction = await connection.begin()
        rolled_back = await send(in_open_transaction, "ana", stream)
        async with inside() as session:  # written, as the open transaction sees it
            assert await session.scalar(select(GiftRow.id).where(GiftRow.id == rolled_back.id))
        admin = await asyncpg.connect(libpq_url(db_url))
        try:  # the feed is live: a notice committed meanwhile arrives
            await admin.execute("SELECT pg_notify($1, $2)", GIFT_CHANNEL, json.dumps(probe))
        finally:
            await admin.close()
        assert (await dee.next_gift())["id"] == global_id("Gift", 10**12)
        await dee.stays_quiet()  # and nothing of Ana's open gift
        await rolled_back_transaction.rollback()
        await dee.stays_quiet()

        committed_transaction = await connection.begin()
        committed = await send(in_open_transaction, "ana", stream, "finger_heart")
        assert committed.id != rolled_back.id
        await dee.stays_quiet()
        await committed_transaction.commit()
        assert parsed(await dee.next_gift()) == as_received(committed)
        await dee.stays_quiet()
    async with sessions() as session:
        assert await session.get(GiftRow, rolled_back.id) is None
        assert await session.get(GiftRow, committed.id) is not None


# --- (d) who may connect --------------------------------------------------------------------


async def test_a_connection_without_a_valid_token_is_refused_with_the_reason(
    settings: Settings,
    db_url: URL,
    token: Callable[..., str],
) -> None:
    expired = issue_token(settings, "dee", [Role.VIEWER], ttl=timedelta(seconds=-1))
    refusals: list[tuple[dict[str, Any], dict[str, str], str]] = [
        ({}, {}, 'Sign in: send {"Authorization": "Bearer <token>"} in connection_init'),
        ({"Authorization": "Bearer not-a-jwt"}, {}, "The token is not valid: "),
        ({"Authorization": f"Bearer {expired}"}, {}, "The token has expired"),
        ({"Authorization": token("dee")}, {}, "Send the token as 'Authorization: Bearer"),
        ({"Authorization": 42}, {}, 'Send the token as {"Authorization": "Bearer <token>"}'),
        ({}, {"Authorization": "Bearer not-a-jwt"}, "The token is not valid: "),
    ]
    async with serving(settings, db_url) as served:
        for payload, headers, reason in refusals:
            async with websocket(served, headers) as ws:
                await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), WAIT_SECONDS)
                assert closed.value.rcvd is not None, payload
                assert closed.value.rcvd.code == 4403, payload
                assert closed.value.rcvd.reason.startswith(reason), (payload, closed.value.rcvd)

        async with websocket(served) as ws:  # subscribing before connection_init
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "{"}}))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), WAIT_SECONDS)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401

        # The handshake's Authorization header signs in too (for clients that can send one).
        async with websocket(served, {"Authorization": bearer(token, "dee")}) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), WAIT_SECONDS)) == {
                "type": "connection_ack"
            }
        assert served.feed.subscriber_count() == 0


async def test_browser_pages_of_other_origins_are_refused_unless_allowed(
    settings: Settings, db_url: URL
) -> None:
    allowed = settings.model_copy(
        update={"websocket_allowed_origins": ("https://app.example.com",)}
    )
    async with serving(allowed, db_url) as served:
        with pytest.raises(InvalidStatus) as refused:
            async with websocket(served, origin="https://evil.example.net"):
                pass
        assert refused.value.response.status_code == 403
        async with websocket(served, origin="https://app.example.com") as ws:
            assert ws.subprotocol == "graphql-transport-ws"


async def test_a_subscription_over_http_is_refused_with_where_to_subscribe(
    client: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    query = 'subscription { giftsInStream(streamId: "1") { id } }'
    for accept in ("application/json", "multipart/mixed;subscriptionSpec=1.0", "text/event-stream"):
        reply = await client.post(
            "/graphql",
            json={"query": query},
            headers={"Authorization": bearer(token, "dee"), "Accept": accept},
        )
        assert without_cost(reply.json()) == {
            "data": None,
            "errors": [
                {
                    "message": "Subscriptions are served over a WebSocket at /graphql "
                    "(protocol graphql-transport-ws), not over HTTP",
                    "extensions": {"code": "BAD_USER_INPUT"},
                }
            ],
        }, accept


# --- (e) slow subscribers -------------------------------------------------------------------


async def test_a_viewer_who_does_not_read_does_not_hold_up_one_who_does(
    settings: Settings,
    db_url: URL,
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
    gifts: GiftService,
    token: Callable[..., str],
) -> None:
    stream = await go_live(sessions, "bo")
    await buy_coins(purchases, "ana")
    async with (
        serving(settings, db_url) as served,
        viewer(served, bearer(token, "dee")) as fast,
        viewer(served, bearer(token, "eve")) as slow,
    ):
        await fast.subscribe(stream)
        await slow.subscribe(stream)
        await eventually(lambda: served.feed.subscriber_count(stream) == 2, "both subscribed")

        async def sender() -> list[SentGift]:
            return [await send(gifts, "ana", stream) for _ in range(30)]

        sending = asyncio.create_task(sender())
        received = [await fast.next_gift() for _ in range(30)]  # while Eve reads nothing
        sent = await asyncio.wait_for(sending, WAIT_SECONDS)
        assert [g["id"] for g in received] == [global_id("Gift", g.id) for g in sent]

        late = [await slow.next_gift() for _ in range(30)]  # Eve's were waiting for her
        assert late == received


async def test_a_subscriber_that_falls_behind_is_ended_after_its_queue_not_the_others(
    db_url: URL,
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
    gifts: GiftService,
) -> None:
    """The feed's backpressure, with real notices: queues of 3; the slow subscriber reads
    nothing while 5 gifts are committed. The fast one gets all 5; the slow one gets the 3 that
    were queued for it, then FELL_BEHIND; the fast one is still subscribed."""
    stream = await go_live(sessions, "bo")
    await buy_coins(purchases, "ana")
    feed = PostgresGiftFeed(libpq_url(db_url), FeedLimits(queue_size=3))
    try:
        async with feed.subscribe(stream) as fast, feed.subscribe(stream) as slow:
            sent = []
            for _ in range(5):
                sent.append(await send(gifts, "ana", stream))
                heard = await asyncio.wait_for(anext(fast), WAIT_SECONDS)
                assert heard.gift_id == sent[-1].id
            assert feed.subscriber_count(stream) == 1  # the slow one was let go

            queued = [await asyncio.wait_for(anext(slow), WAIT_SECONDS) for _ in range(3)]
            assert [g.gift_id for g in queued] == [g.id for g in sent[:3]]
            with pytest.raises(LiveFeedEnded) as ended:
                await asyncio.wait_for(anext(slow), WAIT_SECONDS)
            assert ended.value.reason is FeedEnd.FELL_BEHIND
            assert feed.connections_made == 1
    finally:
        await feed.stop()
    assert feed.subscriber_count() == 0


# --- the listening connection is lost -------------------------------------------------------


async def test_when_the_feed_loses_its_connection_viewers_are_told_and_it_reconnects(
    settings: Settings,
    db_url: URL,
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
    gifts: GiftService,
    token: Callable[..., str],
) -> None:
    stream = await go_live(sessions, "bo")
    await buy_coins(purchases, "ana")
    async with serving(settings, db_url) as served, viewer(served, bearer(token, "dee")) as dee:
        await dee.subscribe(stream)
        await eventually(lambda: served.feed.subscriber_count(stream) == 1, "subscribed")
        first_pid = served.feed.backend_pid

        admin = await asyncpg.connect(libpq_url(db_url))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first_pid)
        finally:
            await admin.close()

        ended = await dee.receive()
        assert ended["type"] == "next" and ended["payload"]["data"] is None, ended
        assert [e["extensions"]["code"] for e in ended["payload"]["errors"]] == [
            FeedEnd.FEED_INTERRUPTED.value
        ]
        assert "subscribe again" in ended["payload"]["errors"][0]["message"]
        assert await dee.receive() == {"id": "1", "type": "complete"}

        await eventually(lambda: served.feed.connections_made == 2, "reconnected")
        assert served.feed.backend_pid not in (None, first_pid)
        await dee.subscribe(stream, op="2")
        await eventually(lambda: served.feed.subscriber_count(stream) == 1, "subscribed again")
        gift = await send(gifts, "ana", stream)
        assert parsed(await dee.next_gift(op="2")) == as_received(gift)
