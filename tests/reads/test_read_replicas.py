"""Reads from streaming replicas, against a real primary and a real hot standby streaming from
it (api/local_replicas.py: the embedded PostgreSQL's own initdb, pg_basebackup -R and pg_ctl,
on free ports, whatever server the rest of the suite runs on). The service runs under uvicorn,
health checks included, and is driven over HTTP from concurrent connections.

Where a read was answered is proven by the data: with the replica's replay paused, the replica
still shows the books from before a write, so a read that sees them was answered there."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from graphql import parse
from sqlalchemy.engine import URL
from starlette.applications import Starlette

from accounting.policy.access import Role
from api.app import create_app
from api.auth import issue_token
from api.database import libpq_url, migrate
from api.local_replicas import LocalReplicaPair
from api.replicas import (
    WAL_POSITION_HEADER,
    CallerPositions,
    format_position,
    only_read_fields,
    parse_position,
)
from api.settings import Settings
from tests.gifts.test_live_gifts import Viewer, websocket
from tests.serving import served_in_process

WAIT_SECONDS = 15.0
"""The deadline of anything that should happen (a replica catching up, a server starting)."""

BUY = """
mutation Buy($input: PurchaseCoinsInput!) {
  purchaseCoins(input: $input) { purchase { status } wallet { coins } errors { code } }
}
"""
WALLET = "query Wallet($user: String) { wallet(userId: $user) { coins } }"


@pytest.fixture(scope="module")
def pair() -> Iterator[LocalReplicaPair]:
    """A primary and one replica, with a migrated database the replica streams."""
    with LocalReplicaPair(replicas=1) as pair:
        assert pair.primary is not None
        asyncio.run(_admin(pair.primary.url(), 'CREATE DATABASE "coinbooks"'))
        migrate(pair.primary.url("coinbooks"))
        yield pair


async def _admin(url: URL, sql: str) -> Any:
    connection = await asyncpg.connect(libpq_url(url))
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


def replica_url(pair: LocalReplicaPair) -> URL:
    return pair.replicas[0].url("coinbooks")


async def replayed_to(pair: LocalReplicaPair, position: int) -> None:
    """Wait until the replica has replayed at least to ``position``."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            replayed = await _admin(replica_url(pair), "SELECT pg_last_wal_replay_lsn() - '0/0'")
            if replayed is not None and int(replayed) >= position:
                return
            await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
def replica_settings(pair: LocalReplicaPair) -> Settings:
    assert pair.primary is not None
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="development",  # type: ignore[arg-type]
        database_url=pair.primary.url("coinbooks").render_as_string(hide_password=False),
        read_replica_urls=(replica_url(pair).render_as_string(hide_password=False),),
        read_replica_check_seconds=0.1,
        read_replica_max_lag_seconds=120,
        posting_totals_every_seconds=0,
        unanswered_charge_grace_seconds=0,
        purchase_daily_coin_limit=10_000_000,
    )


class Service:
    """The service under uvicorn on a free port, and callers of it over HTTP."""

    def __init__(self, settings: Settings, port: int, app: Starlette) -> None:
        self.settings = settings
        self.base_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/graphql"
        self.app = app

    def headers(self, user: str, *roles: str) -> dict[str, str]:
        token = issue_token(self.settings, user, [Role(r) for r in roles or ("viewer",)])
        return {"Authorization": f"Bearer {token}"}

    async def ask(
        self,
        http: httpx.AsyncClient,
        query: str,
        variables: dict[str, Any],
        headers: dict[str, str],
    ) -> tuple[dict[str, Any], str | None]:
        """The reply's data (no errors allowed) and its WAL position header."""
        response = await http.post(
            f"{self.base_url}/graphql",
            json={"query": query, "variables": variables},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data, response.headers.get(WAL_POSITION_HEADER)

    async def buy(self, http: httpx.AsyncClient, user: str, key: str) -> str:
        """350 coins for ``user``; the position the answer carries."""
        given = {
            "idempotencyKey": key,
            "packageCode": "coins_350",
            "currency": "USD",
            "channel": "WEB",
            "provider": "PAYPAL",
            "paymentToken": "tok_success",
        }
        data, position = await self.ask(http, BUY, {"input": given}, self.headers(user))
        assert data["purchaseCoins"]["errors"] == []
        assert position is not None
        return position

    async def coins(self, http: httpx.AsyncClient, reader: str, user: str, **headers: str) -> int:
        roles = ("viewer",) if reader == user else ("finance",)
        sent = {**self.headers(reader, *roles), **headers}
        data, _ = await self.ask(http, WALLET, {"user": user}, sent)
        return int(data["wallet"]["coins"])

    async def metric(self, http: httpx.AsyncClient, line_start: str) -> float:
        text = (await http.get(f"{self.base_url}/metrics")).text
        found = [line for line in text.splitlines() if line.startswith(line_start)]
        return sum(float(line.rsplit(" ", 1)[1]) for line in found)


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Service]:
    """The app under uvicorn, lifespan (and so the replicas' health checks) included."""
    assert settings.database_url is not None
    app = create_app(settings, settings.database_url)
    async with served_in_process(app, wait_seconds=WAIT_SECONDS) as port:
        service = Service(settings, port, app)
        await replica_up(service)
        yield service


async def replica_up(service: Service) -> None:
    """Wait until /readyz says the replica takes reads."""
    async with asyncio.timeout(WAIT_SECONDS), httpx.AsyncClient() as http:
        while True:
            ready = (await http.get(f"{service.base_url}/readyz")).json()
            if ready["replicas"][0]["state"] == "up":
                return
            await asyncio.sleep(0.05)


def unique(name: str) -> str:
    return f"{name}-{os.getpid()}-{next(_counter)}"


_counter = iter(range(1, 1_000_000))


async def test_reads_land_on_the_replica_and_a_writer_reads_its_writes(
    pair: LocalReplicaPair, replica_settings: Settings
) -> None:
    ana = unique("ana")
    async with serving(replica_settings) as one, serving(replica_settings) as other:
        async with httpx.AsyncClient() as http:
            first = await one.buy(http, ana, unique("key"))
            await replayed_to(pair, parse_position(first))
            await _admin(replica_url(pair), "SELECT pg_wal_replay_pause()")
            try:
                second = await one.buy(http, ana, unique("key"))
                assert parse_position(second) > parse_position(first)
                # Finance reads from the replica, which has not replayed the second purchase:
                # 350 coins, the books from before it.
                assert await one.coins(http, "finance-fay", ana) == 350
                # Ana, in the process that took her purchase, sees both: 2 x 350 = 700.
                assert await one.coins(http, ana, ana) == 700
                # Another process knows her write only from the position she sends back.
                assert await other.coins(http, ana, ana) == 350
                assert await other.coins(http, ana, ana, **{WAL_POSITION_HEADER: second}) == 700
                assert await other.coins(http, ana, ana, **{WAL_POSITION_HEADER: "nonsense"}) == 700
            finally:
                await _admin(replica_url(pair), "SELECT pg_wal_replay_resume()")
            await replayed_to(pair, parse_position(second))
            on_replica = f'coinbooks_graphql_reads_total{{database="{replica_name(pair)}"}}'
            before = await one.metric(http, on_replica)
            assert await one.coins(http, ana, ana) == 700
            assert await one.metric(http, on_replica) == before + 1
        names = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
        assert await _count(replica_url(pair), names) > 0


def replica_name(pair: LocalReplicaPair) -> str:
    return f"127.0.0.1:{pair.replicas[0].port}/coinbooks"


async def _count(url: URL, sql: str) -> int:
    connection = await asyncpg.connect(libpq_url(url))
    try:
        return int(await connection.fetchval(sql, "coinbooks-replica-reads"))
    finally:
        await connection.close()


EVERY_READ = """
query EveryRead($user: String!, $code: String!, $from: DateTime!, $to: DateTime!) {
  wallet(userId: $user) { coins coinsValue { amount currency } }
  transactions(userId: $user, first: 5) { edges { node { kind coins } } }
  purchases(userId: $user, first: 5) { edges { node { status coins } } }
  giftsSent(userId: $user, first: 5) { edges { cursor } }
  earningsOverTime(creatorId: "cy", bucket: DAY) { diamonds }
  accountStatement(accountCode: $code, from: $from, to: $to, first: 5) {
    movementCount closing { units }
  }
  accountBalance(code: $code) { balance postingCount }
  trialBalance { balanced totals { commodity debit credit } }
  balanceSheet { balanced lines { code amount } }
  incomeStatement(from: $from, to: $to) { revenue { code amount } }
  rollForwards(from: $from, to: $to) { code closing }
  journal(first: 3) { edges { node { kind postings { accountCode amount } } } }
}
"""


async def test_every_read_a_replica_takes_answers_there_as_the_primary_does(
    pair: LocalReplicaPair, replica_settings: Settings
) -> None:
    """One query naming the read fields a replica takes answers from the replica, as it does
    from the primary (forced by a position that does not read as one)."""
    dee = unique("dee")
    variables = {
        "user": dee,
        "code": f"user:{dee}:coins_value",
        "from": "2000-01-01T00:00:00Z",
        "to": "2100-01-01T00:00:00Z",
    }
    async with serving(replica_settings) as service, httpx.AsyncClient() as http:
        await replayed_to(pair, parse_position(await service.buy(http, dee, unique("key"))))
        on_replica = f'coinbooks_graphql_reads_total{{database="{replica_name(pair)}"}}'
        before = await service.metric(http, on_replica)
        finance = service.headers("finance-fay", "finance", "support")
        there, _ = await service.ask(http, EVERY_READ, variables, finance)
        assert await service.metric(http, on_replica) == before + 1
        primary = {**finance, WAL_POSITION_HEADER: "primary"}
        here, _ = await service.ask(http, EVERY_READ, variables, primary)
        assert await service.metric(http, on_replica) == before + 1
    assert there == here
    assert there["wallet"]["coins"] == "350"


CLIENTS = 8
ROUNDS = 3


async def test_a_write_then_a_read_of_the_same_wallet_sees_it_under_concurrent_load(
    replica_settings: Settings,
) -> None:
    """Eight clients, each on connections of its own, buy and at once read their wallet,
    three rounds, all at the same time: after round n each must read n x 350 coins, from the
    process that took the purchase (its own memory of the caller's position) and from another
    one (the position the client sends back). A read goes to the replica when it has replayed
    the purchase by then, else to the primary; either way it sees it."""
    async with serving(replica_settings) as one, serving(replica_settings) as other:

        async def client(n: int) -> list[tuple[int, int]]:
            user = unique(f"viewer{n}")
            seen = []
            async with httpx.AsyncClient() as http:
                for round_ in range(1, ROUNDS + 1):
                    position = await one.buy(http, user, unique("key"))
                    here = await one.coins(http, user, user)
                    there = await other.coins(http, user, user, **{WAL_POSITION_HEADER: position})
                    seen.append((here, there))
                    assert here == there == 350 * round_, (user, round_, here, there)
            return seen

        results = await asyncio.gather(*(client(n) for n in range(CLIENTS)))
        async with httpx.AsyncClient() as http:
            reads = [await s.metric(http, "coinbooks_graphql_reads_total") for s in (one, other)]
    assert reads == [CLIENTS * ROUNDS, CLIENTS * ROUNDS]  # each read routed, and counted
    expected = [(350 * r, 350 * r) for r in range(1, ROUNDS + 1)]
    assert results == [expected] * CLIENTS


START = (
    "mutation($i: StartStreamInput!) { startStream(input: $i) { stream { id } errors { code } } }"
)
GIFT = "mutation($i: SendGiftInput!) { sendGift(input: $i) { gift { id } errors { code } } }"
BY_KEY = "query($k: String!) { giftByKey(idempotencyKey: $k) { id coins } }"


async def test_a_subscription_and_a_gift_looked_up_by_key_read_the_primary(
    pair: LocalReplicaPair, replica_settings: Settings
) -> None:
    """With the replica's replay paused before the stream starts, so that it knows neither
    the stream nor the gift: a viewer's subscription to the stream still opens and receives
    the gift, and the sender, asking another instance for the gift by its key as after a
    timeout (no position to send back), finds it."""
    fay, cy, key = unique("fay"), unique("cy"), unique("gift")
    async with serving(replica_settings) as one, serving(replica_settings) as other:
        await one.app.state.gift_feed.wait_listening(WAIT_SECONDS)
        async with httpx.AsyncClient() as http:
            await replayed_to(pair, parse_position(await one.buy(http, fay, unique("key"))))
            await _admin(replica_url(pair), "SELECT pg_wal_replay_pause()")
            try:
                started, _ = await one.ask(
                    http, START, {"i": {"title": "live"}}, one.headers(cy, "creator")
                )
                stream = started["startStream"]["stream"]["id"]
                async with websocket(one) as ws:  # type: ignore[arg-type]
                    watcher = Viewer(ws)
                    token = one.headers(unique("dee"))["Authorization"]
                    await watcher.send(
                        {"type": "connection_init", "payload": {"Authorization": token}}
                    )
                    assert await watcher.receive() == {"type": "connection_ack"}
                    await watcher.subscribe(stream)
                    given = {"streamId": stream, "giftCode": "rose", "idempotencyKey": key}
                    sent, _ = await one.ask(http, GIFT, {"i": given}, one.headers(fay))
                    gift = sent["sendGift"]["gift"]["id"]
                    message = await watcher.receive()
                    assert message["type"] == "next", message
                    assert message["payload"]["data"]["giftsInStream"]["id"] == gift
                found, _ = await other.ask(http, BY_KEY, {"k": key}, other.headers(fay))
                assert found["giftByKey"]["id"] == gift
            finally:
                await _admin(replica_url(pair), "SELECT pg_wal_replay_resume()")


async def replica_state(service: Service, http: httpx.AsyncClient, state: str) -> dict[str, Any]:
    """Wait until /readyz gives the replica ``state``; what it says of the replica then."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            ready = await http.get(f"{service.base_url}/readyz")
            assert ready.status_code == 200  # whatever the replica's state
            found: dict[str, Any] = ready.json()["replicas"][0]
            if found["state"] == state:
                return found
            await asyncio.sleep(0.05)


async def test_a_replica_lagging_beyond_the_bound_is_skipped_until_it_catches_up(
    pair: LocalReplicaPair, replica_settings: Settings
) -> None:
    """Bound 0.5 s: with replay paused after a purchase, the replica falls behind past it and
    finance's read (no write of its own to wait for) goes to the primary, which has the
    purchase; once replay resumes the replica takes reads again."""
    eve = unique("eve")
    bounded = replica_settings.model_copy(update={"read_replica_max_lag_seconds": 0.5})
    async with serving(bounded) as service, httpx.AsyncClient() as http:
        await replayed_to(pair, parse_position(await service.buy(http, eve, unique("key"))))
        await _admin(replica_url(pair), "SELECT pg_wal_replay_pause()")
        try:
            second = await service.buy(http, eve, unique("key"))
            lagging = await replica_state(service, http, "lagging")
            assert lagging["lag_seconds"] > 0.5 and lagging["lag_bytes"] > 0
            up = f'coinbooks_read_replica_up{{replica="{replica_name(pair)}"}}'
            assert await service.metric(http, up) == 0
            assert await service.coins(http, "finance-fay", eve) == 700  # 2 x 350: the primary
        finally:
            await _admin(replica_url(pair), "SELECT pg_wal_replay_resume()")
        await replayed_to(pair, parse_position(second))
        assert (await replica_state(service, http, "up"))["lag_seconds"] <= 0.5
        on_replica = f'coinbooks_graphql_reads_total{{database="{replica_name(pair)}"}}'
        before = await service.metric(http, on_replica)
        assert await service.coins(http, "finance-fay", eve) == 700
        assert await service.metric(http, on_replica) == before + 1


async def test_a_stopped_replica_changes_nothing_for_clients(
    pair: LocalReplicaPair, replica_settings: Settings
) -> None:
    bo = unique("bo")
    async with serving(replica_settings) as service, httpx.AsyncClient() as http:
        position = await service.buy(http, bo, unique("key"))
        await replayed_to(pair, parse_position(position))
        pair.replicas[0].stop()
        try:
            # At once, before any health check noticed: every read answers, from the primary.
            answers = await asyncio.gather(
                *(service.coins(http, reader, bo) for reader in ("finance-fay", bo) * 5)
            )
            assert answers == [350] * 10
            assert await service.buy(http, bo, unique("key")) is not None
            assert await service.coins(http, bo, bo) == 700
            ready = await http.get(f"{service.base_url}/readyz")
            assert ready.status_code == 200
            assert ready.json()["replicas"][0]["state"] == "down"
            up = f'coinbooks_read_replica_up{{replica="{replica_name(pair)}"}}'
            assert await service.metric(http, up) == 0
        finally:
            pair.replicas[0].start()


# --- the parts, without a server --------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "replica"),
    [
        ("{ wallet { coins } }", True),
        ("query A { wallet { coins } journal(first: 5) { edges { cursor } } }", True),
        ("{ wallet { coins } creatorEarnings { diamonds } }", False),  # releases holds first
        ('{ giftByKey(idempotencyKey: "k") { id } }', False),  # the lookup after a timeout
        ("query { ...W } fragment W on Query { wallet { coins } }", False),
        ('mutation { startStream(input: {title: "t"}) { errors { code } } }', False),
        ('subscription { liveGifts(streamId: "1") { gift { id } } }', False),
    ],
)
def test_only_queries_of_read_fields_may_go_to_a_replica(document: str, replica: bool) -> None:
    assert only_read_fields(parse(document), None) is replica


def test_a_wal_position_reads_as_postgresql_writes_it() -> None:
    assert parse_position("0/3000148") == 0x3000148
    assert parse_position("1A/0") == 0x1A << 32
    assert format_position(parse_position("16/B374D848")) == "16/B374D848"
    for wrong in ("", "3000148", "0/", "/1", "0/xyz", "123456789/0"):
        with pytest.raises(ValueError):
            parse_position(wrong)


def test_callers_forgotten_past_the_limit_raise_the_floor_every_read_must_see() -> None:
    callers = CallerPositions(limit=2)
    callers.wrote("ana", 10)
    callers.wrote("bo", 30)
    callers.wrote("ana", 20)  # ana is now the newest
    callers.wrote("cy", 5)  # bo, the oldest, is forgotten: nobody may read before 30
    assert (callers.wanted("ana"), callers.wanted("bo"), callers.wanted("cy")) == (30, 30, 30)
    assert callers.wanted(None) == 30
    callers.forget_seen(25)  # every replica has replayed to 25: ana's 20 and cy's 5 are moot
    assert callers.kept == {}
