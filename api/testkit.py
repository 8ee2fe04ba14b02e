"""The test kit: a pytest plugin (entry point ``coinbooks``) for other services' integration
tests. It runs a real ledger in the test process, on the PostgreSQL server that
``COINBOOKS_TESTKIT_DATABASE_URL`` or ``DATABASE_URL`` names, or else on an embedded one started
for the session. Each test that asks for it gets a ledger of its own (a database cloned from a
migrated template), tokens, a GraphQL client and :meth:`Ledger.assert_books_balanced`.

Every fixture is named ``coinbooks_*`` so that none collides with the host suite's; loading
the plugin starts nothing: the server starts when a test first asks for a ledger. The async
fixture needs pytest-asyncio (``pip install coinbooks[testkit]``)."""

from __future__ import annotations

import asyncio
import itertools
import os
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
import pytest_asyncio
from sqlalchemy.engine import URL, make_url

from accounting.integrity import check_integrity
from accounting.policy.access import Role
from accounting.reads.reports import trial_balance
from api.app import create_app
from api.auth import issue_token
from api.database import create_engine, libpq_url, migrate, session_factory
from api.local_postgres import LocalPostgres
from api.settings import Settings

T = TypeVar("T")
URL_VARIABLES = ("COINBOOKS_TESTKIT_DATABASE_URL", "DATABASE_URL")


def _in_thread(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on a private loop in a thread (safe inside a running loop)."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(asyncio.run(make()))  # type: ignore[arg-type]
        except BaseException as error:
            failure.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


def _admin(server: URL, sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(libpq_url(server))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    _in_thread(run)


@dataclass(frozen=True)
class Server:
    """A PostgreSQL server and a migrated template database on it."""

    url: URL
    template: str
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def new_database(self) -> URL:
        name = f"{self.template}_{next(self._names)}"
        _admin(self.url, f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return self.url.set(database=name)

    def drop(self, database: str) -> None:
        _admin(self.url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.fixture(scope="session")
def coinbooks_server() -> Iterator[Server]:
    """The PostgreSQL server (given, or embedded for the session) with a migrated template."""
    with ExitStack() as stack:
        given = next((os.environ[v] for v in URL_VARIABLES if os.environ.get(v)), None)
        if given:
            url = make_url(given)
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="coinbooks-kit-"))
            local = LocalPostgres(Path(tmp) / "pgdata", temporary=True, durable=False)
            url = stack.enter_context(local).url()
        server = Server(url, f"coinbooks_kit_{os.getpid()}_{uuid.uuid4().hex[:8]}")
        _admin(url, f'CREATE DATABASE "{server.template}"')
        stack.callback(server.drop, server.template)
        migrate(url.set(database=server.template))
        yield server


@pytest.fixture
def coinbooks_settings_overrides() -> dict[str, Any]:
    """Settings of the test's ledger beyond the kit's (override it in the host suite)."""
    return {}


class Ledger:
    """One test's ledger: the application over its own database, in the test's process."""

    def __init__(self, url: URL, settings: Settings) -> None:
        self.url, self.settings = url, settings
        self.app = create_app(settings, url)
        transport = httpx.ASGITransport(app=self.app)
        self.http = httpx.AsyncClient(transport=transport, base_url="http://coinbooks.test")

    def token(self, user: str, *roles: str) -> str:
        """A bearer token for ``user`` with ``roles`` (default: viewer)."""
        return issue_token(self.settings, user, [Role(r) for r in roles or ("viewer",)])

    async def graphql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        user: str | None = None,
        roles: tuple[str, ...] = ("viewer",),
    ) -> dict[str, Any]:
        """Post ``query`` as ``user`` (anonymous when None); the JSON reply."""
        headers = {"Authorization": f"Bearer {self.token(user, *roles)}"} if user else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def assert_books_balanced(self) -> None:
        """Fail naming what is off: a commodity whose debits and credits differ, or a
        violation of the integrity check (``coinbooks check``)."""
        engine = create_engine(self.url, pool_size=1, max_overflow=0)
        try:
            async with session_factory(engine)() as session:
                totals = (await trial_balance(session)).totals
            async with session_factory(engine)() as session:
                report = await check_integrity(session)
        finally:
            await engine.dispose()
        off = [
            f"{t.commodity}: debits {t.debit} != credits {t.credit}"
            for t in totals
            if not t.balanced
        ]
        off += [f"invariant {v.invariant} ({v.check}): {v.detail}" for v in report.violations]
        assert not off, "the books do not balance:\n" + "\n".join(off)

    async def close(self) -> None:
        await self.http.aclose()
        await self.app.state.engine.dispose()


@pytest_asyncio.fixture
async def coinbooks_ledger(
    coinbooks_server: Server, coinbooks_settings_overrides: dict[str, Any]
) -> AsyncIterator[Ledger]:
    """A fresh, migrated ledger of this test's own; dropped after it."""
    url = coinbooks_server.new_database()
    fields: dict[str, Any] = {
        "database_url": url.render_as_string(hide_password=False),
        "environment": "development",
        "unanswered_charge_grace_seconds": 0,
        "hold_hours": 0,
        "payout_method_cooling_off_hours": 0,
        **coinbooks_settings_overrides,
    }
    ledger = Ledger(url, Settings(_env_file=None, **fields))  # type: ignore[call-arg]
    try:
        yield ledger
    finally:
        await ledger.close()
        coinbooks_server.drop(str(url.database))


@pytest.fixture
def coinbooks_token(coinbooks_ledger: Ledger) -> Callable[..., str]:
    """``coinbooks_token("ana", "viewer")``: a bearer token for that user and roles."""
    return coinbooks_ledger.token


@pytest.fixture
def coinbooks_graphql(coinbooks_ledger: Ledger) -> Callable[..., Awaitable[dict[str, Any]]]:
    """``await coinbooks_graphql(query, variables, user="ana", roles=("viewer",))``."""
    return coinbooks_ledger.graphql


@pytest.fixture
def coinbooks_assert_books_balanced(coinbooks_ledger: Ledger) -> Callable[[], Awaitable[None]]:
    """``await coinbooks_assert_books_balanced()`` at the end of a test."""
    return coinbooks_ledger.assert_books_balanced
