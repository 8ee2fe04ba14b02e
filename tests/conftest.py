"""Shared fixtures. Every database test runs against a real PostgreSQL: the embedded server
(started once for the session in a temporary directory) or the one ``DATABASE_URL`` names.
Each test gets a database of its own, cloned from a migrated template, and dropped after."""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import os
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from accounting.gifts.service import GiftService
from accounting.ledger.errors import LedgerError
from accounting.ledger.posting import LOCK_ORDER, RETRIES
from accounting.policy.access import Role
from accounting.purchases.payments.sandbox import SandboxGateway
from accounting.purchases.service import PurchaseService
from api.app import create_app
from api.auth import issue_token
from api.database import create_engine, libpq_url, migrate, session_factory
from api.local_postgres import LocalPostgres
from api.settings import Settings
from tests.payouts.clock import TOTP_CLOCK
from tests.serving import uvicorn_logging

T = TypeVar("T")
ZERO = timedelta(0)


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on a private loop in a thread (safe inside any test)."""
    result: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(make()))  # type: ignore[arg-type]
        except BaseException as error:
            failure.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


async def _admin(url: URL, sql: str) -> None:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def server_url() -> Iterator[URL]:
    """A PostgreSQL server and a database on it that tests may connect to for admin work."""
    given = os.environ.get("DATABASE_URL")
    if given:
        yield make_url(given)
        return
    with (
        tempfile.TemporaryDirectory(prefix="coinbooks-test-") as tmp,
        LocalPostgres(Path(tmp) / "pgdata", temporary=True, durable=False) as server,
    ):
        yield server.url()


_names = itertools.count(1)


@pytest.fixture(scope="session")
def template_url(server_url: URL) -> Iterator[URL]:
    """A migrated database that each test's database is cloned from."""
    base = server_url.database or "coinbooks"
    name = f"{base}_tmpl_{os.getpid()}"
    run_sync(lambda: _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    run_sync(lambda: _admin(server_url, f'CREATE DATABASE "{name}"'))
    url = server_url.set(database=name)
    migrate(url)
    yield url
    run_sync(lambda: _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def new_database(server_url: URL, template: URL) -> URL:
    base = server_url.database or "coinbooks"
    name = f"{base}_t{os.getpid()}_{next(_names)}"
    run_sync(lambda: _admin(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template.database}"'))
    # A test's commits need not wait for the disk (what a commit shows is unchanged; only a
    # crash could lose it): every session of this database, the CLI's included, commits so.
    run_sync(lambda: _admin(server_url, f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    return server_url.set(database=name)


def drop_database(server_url: URL, url: URL) -> None:
    run_sync(lambda: _admin(server_url, f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))


class Stock:
    """Fresh clones of the template made ahead of need: one thread clones the next test's
    database and drops the last one's while the current test runs, so a test does not wait for
    a CREATE DATABASE (a clone is written out whole, and its commit waits for the disk)."""

    def __init__(self, server: URL, template: URL) -> None:
        self.server, self.template = server, template
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="database-stock")
        self.next = self.worker.submit(new_database, server, template)

    def take(self) -> URL:
        url = self.next.result()
        self.next = self.worker.submit(new_database, self.server, self.template)
        return url

    def discard(self, url: URL) -> None:
        self.worker.submit(drop_database, self.server, url)

    def close(self) -> None:
        self.discard(self.next.result())
        self.worker.shutdown(wait=True)


@pytest.fixture(scope="session")
def stock(server_url: URL, template_url: URL) -> Iterator[Stock]:
    made = Stock(server_url, template_url)
    yield made
    made.close()


@pytest.fixture(autouse=True)
def accounts_named_up_front() -> Iterator[None]:
    """Every flow names every account it posts to in its first lock (accounting/ledger/locks.py):
    a test in which a transaction asked for another existing account later, and so had to run
    again, fails."""
    before = RETRIES[LOCK_ORDER]
    yield
    assert RETRIES[LOCK_ORDER] == before, "a transaction asked for accounts after its first lock"


@pytest.fixture(autouse=True)
def uvicorn_logging_left_alone() -> Iterator[None]:
    """A test that serves the app in-process leaves uvicorn's loggers handing their records to
    the root logger, as ``coinbooks serve`` sets them (tests/serving.py): a test that did not
    would hide the access log from every later test of the process."""
    before = uvicorn_logging()
    yield
    assert uvicorn_logging() == before, "uvicorn's loggers were reconfigured; use tests/serving.py"


@pytest.fixture
def db_url(stock: Stock) -> Iterator[URL]:
    """A fresh, migrated database of this test's own."""
    url = stock.take()
    yield url
    stock.discard(url)


@pytest.fixture
async def engine(db_url: URL) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url, pool_size=10, max_overflow=10)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
def purchases(sessions: async_sessionmaker[AsyncSession]) -> PurchaseService:
    """Purchases with no grace period for unanswered charges (a dedicated test covers it)."""
    return PurchaseService(
        sessions, SandboxGateway(sessions), functional_currency="USD", unanswered_grace=ZERO
    )


@pytest.fixture
def settings(db_url: URL) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=db_url.render_as_string(hide_password=False),
        environment="development",  # type: ignore[arg-type]
        unanswered_charge_grace_seconds=0,
        hold_hours=0,
        payout_method_cooling_off_hours=0,
    )


@pytest.fixture
async def client(settings: Settings, db_url: URL) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client speaking to the real ASGI app; second-factor codes are checked at the
    tests' step clock (tests/payouts/clock.py)."""
    app = create_app(settings, db_url)
    payouts = app.state.services.payouts
    payouts.second_factor = replace(payouts.second_factor, clock=TOTP_CLOCK)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://coinbooks.test") as http:
        yield http
    await app.state.engine.dispose()


@pytest.fixture
def token(settings: Settings) -> Callable[..., str]:
    """``token("ana", "viewer")``: a bearer token for that user and roles."""

    def make(user: str, *roles: str) -> str:
        return issue_token(settings, user, [Role(r) for r in roles or ("viewer",)])

    return make


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient, token: Callable[..., str]) -> None:
        self.http = http
        self.token = token

    async def __call__(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        user: str | None = None,
        roles: tuple[str, ...] = ("viewer",),
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        sent = dict(headers or {})
        if user is not None:
            sent["Authorization"] = f"Bearer {self.token(user, *roles)}"
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=sent
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return without_cost(body)


def without_cost(body: dict[str, Any]) -> dict[str, Any]:
    """The reply without the cost every response reports in ``extensions`` (its tests are in
    tests/graphql/test_query_cost.py), so that tests compare what they are about."""
    extensions = body.get("extensions", {})
    extensions.pop("cost", None)
    if not extensions:
        body.pop("extensions", None)
    return body


@pytest.fixture
def gql(client: httpx.AsyncClient, token: Callable[..., str]) -> GraphQLClient:
    """``await gql(query, variables, user="ana", roles=("viewer",))`` → the JSON reply."""
    return GraphQLClient(client, token)


@pytest.fixture
def gifts(sessions: async_sessionmaker[AsyncSession]) -> GiftService:
    """Gifts at the default rates (1 diamond per coin, $0.005 a diamond) and no hold."""
    return GiftService(sessions, functional_currency="USD", hold=ZERO)


CONNECTIONS = 40
"""Requests in flight at once: the engine's pool, every connection opened before the race.

The suite stays within PostgreSQL's default ``max_connections`` of 100 with two workers: one
race runs at a time across the workers (``one_race_at_a_time``), so at most one race's 40
connections meet the other worker's ordinary pools (``engine`` 20, the app's 20)."""


@contextmanager
def one_race_at_a_time(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """An exclusive lock on a file every worker of the run shares (their temporary folders'
    parent): a race waits for the other worker's to end."""
    shared = tmp_path_factory.getbasetemp().parent / "races.lock"
    with shared.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
async def racing(
    db_url: URL, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on an engine of this test's own, big enough for the race, pool warmed; one race
    at a time across the run's workers."""
    with one_race_at_a_time(tmp_path_factory):
        engine = create_engine(db_url, pool_size=CONNECTIONS, max_overflow=0)
        sessions = session_factory(engine)
        ready = asyncio.Barrier(CONNECTIONS)

        async def hold() -> None:
            async with sessions() as session:
                await session.execute(text("SELECT 1"))
                await ready.wait()

        await asyncio.gather(*(hold() for _ in range(CONNECTIONS)))
        yield sessions
        await engine.dispose()


async def race(work: Iterable[Callable[[], Awaitable[T]]]) -> list[T | LedgerError]:
    """Run every piece of work at once, at most CONNECTIONS in flight; each one's result, or
    the business error it was refused with (anything else fails the test)."""
    gate = asyncio.Semaphore(CONNECTIONS)

    async def one(make: Callable[[], Awaitable[T]]) -> T | LedgerError:
        async with gate:
            try:
                return await make()
            except LedgerError as refused:
                return refused

    return list(await asyncio.gather(*(one(make) for make in work)))
