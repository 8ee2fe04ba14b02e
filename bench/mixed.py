"""The mixed phase: a live platform's traffic over HTTP against the real service, mostly gifts
with feature unlocks, coin purchases, replays of gifts already sent (the same idempotency key
again, as a client retrying after a lost reply) and wallet reads among them, from the same
viewers. Every flow that posts locks the same hot platform accounts and the viewers' wallets,
so this is where flows taking their locks in different orders deadlock: the phase counts the
deadlocks PostgreSQL reports in its database (``pg_stat_database.deadlocks``), and any one of
them fails the run.

Run alone (about a minute on a fresh embedded or given server)::

    python -m bench.mixed --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from sqlalchemy.engine import URL

from accounting.integrity import check_integrity
from accounting.policy.access import Role
from api.auth import issue_token
from api.database import create_engine, libpq_url, migrate, session_factory
from api.settings import Settings
from bench.books import BooksCheck
from bench.gifts import GIFTS, GiftingSetup
from bench.load import LoadResult, NotAcknowledged, drive, percentile
from bench.over_http import ServiceProcess, sample_memory
from bench.rawhttp import Connection, graphql_body, graphql_data, post_request, request_head

MIX: dict[str, int] = {
    "gift": 75,
    "unlock": 6,
    "purchase": 4,
    "replay": 5,
    "wallet": 10,
}
"""Percent of the requests of each kind: a stream's traffic is mostly gifts; now and then a
viewer unlocks a feature or tops up, a client retries a gift whose reply it lost, and the app
refreshes the wallet shown on screen."""
FEATURE = "sticker_pack_cats"
"""A 10-coin feature: unlocked again and again (each unlock under a key of its own)."""

_SEND_GIFT = """
mutation Send($input: SendGiftInput!) {
  sendGift(input: $input) { gift { id } replayed errors { code message } }
}
"""
_UNLOCK = """
mutation Unlock($input: UnlockFeatureInput!) {
  unlockFeature(input: $input) { unlock { id } replayed errors { code message } }
}
"""
_PURCHASE = """
mutation Buy($input: PurchaseCoinsInput!) {
  purchaseCoins(input: $input) { purchase { id status } replayed errors { code message } }
}
"""
_WALLET = "query { wallet { coins } }"
_DEADLOCKS = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
_COUNTS = (
    "SELECT (SELECT count(*) FROM gift) AS gifts,"
    " (SELECT count(*) FROM feature_unlock) AS unlocks,"
    " (SELECT count(*) FROM purchase WHERE status = 'completed') AS purchases"
)
_OTHER_BACKENDS = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


@dataclass(slots=True)
class MixedResult:
    load: LoadResult
    """Every request of the mix: throughput, p50 and p99."""
    latencies_ms: dict[str, list[float]]
    """Each kind's latencies in the measurement window, ascending."""
    acknowledged: dict[str, int]
    """Each kind's requests answered as they should be, warm-up included."""
    deadlocks: int
    """Deadlocks PostgreSQL reported in the phase's database while the load ran."""

    def p99_ms(self, kind: str) -> float | None:
        return percentile(self.latencies_ms.get(kind, []), 99)

    def to_json(self) -> dict[str, Any]:
        return {
            "mix_percent": MIX,
            "deadlocks": self.deadlocks,
            "per_kind": {
                kind: {
                    "acknowledged": self.acknowledged.get(kind, 0),
                    "p50_ms": _round(percentile(self.latencies_ms.get(kind, []), 50)),
                    "p99_ms": _round(self.p99_ms(kind)),
                }
                for kind in MIX
            },
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class _Client:
    """One connection's viewer: their token, and the gifts they sent (for replays)."""

    def __init__(self, connection: Connection, head: bytes) -> None:
        self.connection = connection
        self.head = head
        self.sent: list[tuple[bytes, str]] = []
        """Bodies of gifts sent, with the gift id each was answered with."""

    async def ask(self, body: bytes, field: str) -> dict[str, Any]:
        status, reply = await self.connection.exchange(post_request(self.head, body))
        payload = graphql_data(status, reply, field)
        if payload.get("errors"):
            raise NotAcknowledged(f"{field}: {payload['errors']}")
        return payload


def _fresh(payload: dict[str, Any], field: str) -> dict[str, Any]:
    if payload.get("replayed"):
        raise NotAcknowledged(f"a new {field} came back replayed")
    return payload


async def _gift(client: _Client, streams: list[int], picks: random.Random, n: int) -> None:
    body = graphql_body(
        _SEND_GIFT,
        {
            "input": {
                "streamId": str(picks.choice(streams)),
                "giftCode": GIFTS[n % len(GIFTS)],
                "quantity": 1,
                "idempotencyKey": uuid.uuid4().hex,
            }
        },
    )
    payload = _fresh(await client.ask(body, "sendGift"), "gift")
    client.sent.append((body, str(payload["gift"]["id"])))


async def _replay(client: _Client, picks: random.Random) -> None:
    body, gift_id = picks.choice(client.sent)
    payload = await client.ask(body, "sendGift")
    if not payload.get("replayed") or str(payload["gift"]["id"]) != gift_id:
        raise NotAcknowledged(f"a replay of gift {gift_id} answered {payload}")


async def _unlock(client: _Client) -> None:
    variables = {"input": {"featureCode": FEATURE, "idempotencyKey": uuid.uuid4().hex}}
    _fresh(await client.ask(graphql_body(_UNLOCK, variables), "unlockFeature"), "unlock")


async def _purchase(client: _Client) -> None:
    variables = {
        "input": {
            "idempotencyKey": uuid.uuid4().hex,
            "currency": "USD",
            "channel": "WEB",
            "provider": "CARD",
            "paymentToken": "tok_success",
            "packageCode": "coins_350",
        }
    }
    payload = _fresh(await client.ask(graphql_body(_PURCHASE, variables), "purchaseCoins"), "p")
    if payload["purchase"]["status"] != "COMPLETED":
        raise NotAcknowledged(f"a purchase answered {payload['purchase']}")


async def _wallet(client: _Client) -> None:
    await client.ask(graphql_body(_WALLET), "wallet")


def _kinds(seed: int) -> Callable[[], str]:
    """Draw a kind of request by the mix's weights."""
    picks = random.Random(seed)
    kinds, weights = list(MIX), list(MIX.values())
    return lambda: picks.choices(kinds, weights)[0]


async def drive_mixed(
    service: ServiceProcess,
    settings: Settings,
    setup: GiftingSetup,
    *,
    clients: int,
    seconds: float,
    warmup: float,
) -> tuple[LoadResult, dict[str, list[float]], dict[str, int]]:
    """``clients`` connections, connection ``i`` as viewer ``i % senders``, each request drawn
    from the mix (a replay before the viewer sent anything is a gift)."""
    host = urlsplit(service.base_url)
    assert host.hostname is not None and host.port is not None
    address = f"{host.hostname}:{host.port}"
    viewers = [setup.senders[i % len(setup.senders)] for i in range(clients)]
    mine = [
        _Client(
            Connection(host.hostname, host.port),
            request_head(address, "/graphql", issue_token(settings, viewer, [Role("viewer")])),
        )
        for viewer in viewers
    ]
    await asyncio.gather(*(client.connection.open() for client in mine))
    draw, picks = _kinds(20261205), random.Random(20261206)
    latencies: dict[str, list[float]] = {kind: [] for kind in MIX}
    acknowledged = dict.fromkeys(MIX, 0)
    window = (time.monotonic() + warmup, time.monotonic() + warmup + seconds)

    async def attempt(index: int, sequence: int) -> None:
        client, kind = mine[index], draw()
        if kind == "replay" and not client.sent:
            kind = "gift"
        work: dict[str, Callable[[], Awaitable[None]]] = {
            "gift": lambda: _gift(client, setup.streams, picks, sequence),
            "replay": lambda: _replay(client, picks),
            "unlock": lambda: _unlock(client),
            "purchase": lambda: _purchase(client),
            "wallet": lambda: _wallet(client),
        }
        began = time.monotonic()
        await work[kind]()
        finished = time.monotonic()
        acknowledged[kind] += 1
        if window[0] <= finished <= window[1]:
            latencies[kind].append((finished - began) * 1000)

    try:
        async with sample_memory(service):
            load = await drive(clients, seconds, warmup, attempt)
    finally:
        await asyncio.gather(*(client.connection.close() for client in mine))
    return load, {kind: sorted(values) for kind, values in latencies.items()}, acknowledged


async def deadlocks_at(url: URL) -> int:
    """PostgreSQL's count of deadlocks in the database, once no other backend is connected to
    it (a backend reports its counts as it exits)."""
    conn = await asyncpg.connect(libpq_url(url))
    try:
        for _ in range(200):
            if not await conn.fetchval(_OTHER_BACKENDS):
                break
            await asyncio.sleep(0.05)
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        return int(await conn.fetchval(_DEADLOCKS) or 0)
    finally:
        await conn.close()


async def counts_at(url: URL) -> dict[str, int]:
    """Gifts, unlocks and completed purchases in the database."""
    conn = await asyncpg.connect(libpq_url(url))
    try:
        row = await conn.fetchrow(_COUNTS)
    finally:
        await conn.close()
    assert row is not None
    return {"gift": row["gifts"], "unlock": row["unlocks"], "purchase": row["purchases"]}


async def mixed_books(url: URL, before: dict[str, int], acknowledged: dict[str, int]) -> BooksCheck:
    """The integrity check, and the new gifts, unlocks and completed purchases in the books
    against the new ones answered (a replay is answered, and adds nothing)."""
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with session_factory(engine)() as session:
            report = await check_integrity(session)
    finally:
        await engine.dispose()
    found = [f"invariant {v.invariant} {v.check}: {v.detail}" for v in report.violations]
    after = await counts_at(url)
    for kind, rows in after.items():
        if rows - before[kind] != acknowledged[kind]:
            found.append(
                f"{acknowledged[kind]} {kind}s acknowledged, {rows - before[kind]} in the books"
            )
    return BooksCheck(
        acknowledged=sum(acknowledged[kind] for kind in after),
        entries=sum(after[kind] - before[kind] for kind in after),
        entries_checked=report.entries,
        kind="gift, unlock and purchase",
        violations=found,
    )


def run_mixed(
    url: URL,
    setup: GiftingSetup,
    *,
    clients: int,
    seconds: float,
    warmup: float,
    log_path: Path,
) -> tuple[MixedResult, BooksCheck, ServiceProcess]:
    """The mix through the real service (a subprocess) on ``url``, seeded with ``setup``; the
    books checked once it has stopped."""
    settings = Settings(database_url=url.render_as_string(hide_password=False))
    before = asyncio.run(counts_at(url))
    deadlocks_before = asyncio.run(deadlocks_at(url))
    with ServiceProcess(url, log_path) as service:

        async def go() -> tuple[LoadResult, dict[str, list[float]], dict[str, int]]:
            await service.wait_healthy()
            return await drive_mixed(
                service, settings, setup, clients=clients, seconds=seconds, warmup=warmup
            )

        load, latencies, acknowledged = asyncio.run(go())
    deadlocks = asyncio.run(deadlocks_at(url)) - deadlocks_before
    books = asyncio.run(mixed_books(url, before, acknowledged))
    return MixedResult(load, latencies, acknowledged, deadlocks), books, service


def main(argv: list[str] | None = None) -> int:
    """The mixed phase alone, on a fresh database of the benchmark's server; exit 1 on any
    deadlock, failed request or problem in the books."""
    from bench.database import bench_server
    from bench.phases import run_mixed_phase
    from bench.runner import HTTP_CLIENTS, RESULTS_DIR, UNIFORM_CREATORS

    parser = argparse.ArgumentParser(prog="python -m bench.mixed")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=HTTP_CLIENTS)
    options = parser.parse_args(argv)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with bench_server() as server:
        url = server.create("mixed")
        migrate(url)
        result = run_mixed_phase(
            url,
            clients=options.clients,
            seconds=options.seconds,
            warmup=options.warmup,
            creators=UNIFORM_CREATORS,
            log_path=RESULTS_DIR / "service-mixed.log",
        )
        server.drop(url)
    assert result.mixed is not None
    load, mixed = result.load, result.mixed
    print(
        f"mixed: {load.per_second:,.1f} requests/s, p50 {load.p50_ms or 0:,.1f} ms, "
        f"p99 {load.p99_ms or 0:,.1f} ms, {load.errors} errors, {mixed.deadlocks} deadlocks"
    )
    for kind, figures in mixed.to_json()["per_kind"].items():
        print(f"  {kind}: {figures}")
    for problem in [*result.books.problems(), *load.error_examples]:
        print(f"  FAIL {problem}")
    return 1 if mixed.deadlocks or load.errors or not result.books.ok else 0


if __name__ == "__main__":
    raise SystemExit(main())
