"""A request whose database connection dies: the real service (a subprocess) answers a feature
unlock whose backend PostgreSQL terminated mid-request with its result, once, by running the
transaction again on a fresh connection; the books hold exactly one unlock.

The unlock is held where it should die: before its commit, by a row lock on the viewer's wallet
taken from another connection; during its commit, by a deferred trigger (fired by COMMIT) that
waits for an advisory lock. Its backend is then terminated (``pg_terminate_backend``). A commit
that lands but whose reply never reaches the service is the third case: the service reaches
PostgreSQL through a proxy that cuts the connection of the unlock's transaction once its COMMIT
is answered."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.integrity import check_integrity
from accounting.policy.access import Role
from accounting.purchases.service import PurchaseRequest, PurchaseService
from api.auth import issue_token
from api.database import libpq_url
from api.settings import Settings
from bench.over_http import ServiceProcess

UNLOCK = """
mutation($input: UnlockFeatureInput!) {
  unlockFeature(input: $input) {
    unlock { featureCode coins } wallet { coins } replayed errors { code message }
  }
}
"""
_WAITING = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
    " AND application_name = 'coinbooks' AND wait_event_type = 'Lock' AND wait_event = $1"
)
HOLD_COMMIT = """
CREATE FUNCTION test_hold_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_lock_shared(4242);
  PERFORM pg_advisory_unlock_shared(4242);
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER test_hold_commit AFTER INSERT ON feature_unlock
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_hold_commit();
"""


class CommitReplyCutter:
    """A TCP proxy to PostgreSQL that passes everything through, except that on a connection
    which inserted a feature unlock it lets the next COMMIT reach the server and its answer
    come back to the proxy, then closes the connection instead of passing the answer on."""

    def __init__(self, upstream: URL) -> None:
        self.upstream = upstream
        self.cut = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to the server, through its socket directory or over TCP."""
        port = self.upstream.port or 5432
        directory = self.upstream.query.get("host")
        if isinstance(directory, str) and directory.startswith("/"):
            return await asyncio.open_unix_connection(f"{directory}/.s.PGSQL.{port}")
        return await asyncio.open_connection(self.upstream.host or "127.0.0.1", port)

    def url(self, port: int) -> URL:
        """The database's URL, through the proxy listening on ``port``."""
        return self.upstream.set(host="127.0.0.1", port=port).difference_update_query(["host"])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        server_in, server_out = await self._upstream()
        state = {"unlocking": False, "committing": False}

        async def upward() -> None:
            while chunk := await client_in.read(65536):
                if b"INSERT INTO feature_unlock" in chunk:
                    state["unlocking"] = True
                if state["unlocking"] and b"COMMIT" in chunk:
                    state["committing"] = True
                server_out.write(chunk)
                await server_out.drain()

        async def downward() -> None:
            while chunk := await server_in.read(65536):
                if state["committing"]:
                    if b"Z\x00\x00\x00\x05" in chunk:  # ReadyForQuery: COMMIT answered
                        self.cut += 1
                        break
                    continue
                client_out.write(chunk)
                await client_out.drain()

        tasks = [asyncio.create_task(upward()), asyncio.create_task(downward())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        client_out.close()
        server_out.close()


async def _ana_buys(purchases: PurchaseService) -> None:
    bought = await purchases.purchase_coins(
        PurchaseRequest("ana", "ana-buys-coins", "USD", "web", "card", "tok_success", "coins_350")
    )
    assert bought.purchase.status == "completed"


def _client(running: ServiceProcess, db_url: URL) -> httpx.AsyncClient:
    settings = Settings(database_url=db_url.render_as_string(hide_password=False))
    token = issue_token(settings, "ana", [Role("viewer")])
    return httpx.AsyncClient(
        base_url=running.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )


@pytest.fixture
async def service(
    db_url: URL, purchases: PurchaseService, tmp_path: Path
) -> AsyncIterator[tuple[ServiceProcess, httpx.AsyncClient]]:
    """ana with 350 coins, and the service serving the database; an HTTP client with ana's
    token."""
    await _ana_buys(purchases)
    with ServiceProcess(db_url, tmp_path / "service.log") as running:
        await running.wait_healthy()
        async with _client(running, db_url) as client:
            yield running, client


async def _backend_waiting(conn: asyncpg.Connection, wait_event: str) -> int:
    """The pid of the service's backend waiting on a lock of that kind, once there is one."""
    while True:
        pid = await conn.fetchval(_WAITING, wait_event)
        if pid is not None:
            return int(pid)
        await asyncio.sleep(0.02)


async def _unlock(client: httpx.AsyncClient, key: str) -> dict[str, object]:
    variables = {"input": {"featureCode": "sticker_pack_cats", "idempotencyKey": key}}
    response = await client.post("/graphql", json={"query": UNLOCK, "variables": variables})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    payload: dict[str, object] = body["data"]["unlockFeature"]
    return payload


async def _retries(client: httpx.AsyncClient, reason: str) -> float:
    text = (await client.get("/metrics")).text
    found = re.search(
        rf'^coinbooks_db_transaction_retries_total\{{reason="{reason}"\}} (\S+)$', text, re.M
    )
    assert found is not None, text
    return float(found.group(1))


async def _books(sessions: async_sessionmaker[AsyncSession], db_url: URL) -> tuple[int, int]:
    """(unlocks recorded, ana's coins), once the integrity check passes."""
    async with sessions() as session:
        report = await check_integrity(session)
    assert report.ok, report.violations
    conn = await asyncpg.connect(libpq_url(db_url))
    try:
        unlocks = await conn.fetchval("SELECT count(*) FROM feature_unlock")
        coins = await conn.fetchval("SELECT balance FROM account WHERE code = 'user:ana:coins'")
    finally:
        await conn.close()
    return int(unlocks), -int(coins)


async def test_an_unlock_whose_connection_dies_before_its_commit_is_answered_once(
    service: tuple[ServiceProcess, httpx.AsyncClient],
    db_url: URL,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    _, client = service
    holder = await asyncpg.connect(libpq_url(db_url))
    try:
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM account WHERE code = 'user:ana:coins' FOR UPDATE")
            request = asyncio.create_task(_unlock(client, "ana-unlocks-stickers"))
            victim = await _backend_waiting(holder, "transactionid")
            assert await holder.fetchval("SELECT pg_terminate_backend($1)", victim)
        answer = await request
    finally:
        await holder.close()

    assert answer["errors"] == [] and answer["replayed"] is False
    assert answer["unlock"] == {"featureCode": "sticker_pack_cats", "coins": "10"}
    assert answer["wallet"] == {"coins": "340"}  # 350 bought, the sticker pack is 10
    assert await _books(sessions, db_url) == (1, 340)
    assert await _retries(client, "connection_lost") == 1
    again = await _unlock(client, "ana-unlocks-stickers")  # the client's own retry: a replay
    assert again["replayed"] is True and again["wallet"] == {"coins": "340"}


async def test_an_unlock_whose_connection_dies_during_its_commit_is_answered_once(
    service: tuple[ServiceProcess, httpx.AsyncClient],
    db_url: URL,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Terminated while COMMIT waits in a deferred trigger, the transaction did not commit:
    the service, not knowing, reads the unlock's key back on a fresh connection, finds nothing,
    and unlocks; the second commit goes through once the advisory lock is let go."""
    _, client = service
    holder = await asyncpg.connect(libpq_url(db_url))
    try:
        await holder.execute(HOLD_COMMIT)
        await holder.execute("SELECT pg_advisory_lock(4242)")
        request = asyncio.create_task(_unlock(client, "ana-unlocks-at-commit"))
        victim = await _backend_waiting(holder, "advisory")
        assert await holder.fetchval("SELECT pg_terminate_backend($1)", victim)
        await holder.execute("SELECT pg_advisory_unlock(4242)")
        answer = await request
    finally:
        await holder.close()

    assert answer["errors"] == [] and answer["replayed"] is False
    assert answer["wallet"] == {"coins": "340"}
    assert await _books(sessions, db_url) == (1, 340)
    assert await _retries(client, "connection_lost_at_commit") == 1


async def test_an_unlock_whose_commit_lands_but_whose_answer_is_lost_is_answered_once(
    db_url: URL,
    purchases: PurchaseService,
    sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    """The transaction committed; the service only lost the answer. Reading the key back on a
    fresh connection, it finds the unlock and answers it (as found again: replayed), and
    never unlocks a second time."""
    await _ana_buys(purchases)
    proxy = CommitReplyCutter(db_url)
    port = await proxy.start()
    try:
        through = proxy.url(port)
        with ServiceProcess(through, tmp_path / "service.log") as running:
            await running.wait_healthy()
            async with _client(running, db_url) as client:
                answer = await _unlock(client, "ana-unlocks-commit-lost")
                retried = await _retries(client, "connection_lost_at_commit")
    finally:
        await proxy.stop()

    assert proxy.cut == 1
    assert answer["errors"] == [] and answer["replayed"] is True
    assert answer["unlock"] == {"featureCode": "sticker_pack_cats", "coins": "10"}
    assert answer["wallet"] == {"coins": "340"}
    assert retried == 1
    assert await _books(sessions, db_url) == (1, 340)
