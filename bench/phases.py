"""The ledger phases, each on a fresh migrated database: drive the load, let it stop, then
count what PostgreSQL did and check the books."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from api.database import create_engine, session_factory
from api.settings import Settings
from bench.books import BooksCheck, check_books_at, entries_at, transactions_at
from bench.core import drive_core, purchase_service
from bench.gifts import drive_gifts, gift_service, seed_gifting
from bench.load import LoadResult
from bench.over_http import ServiceMemory, ServiceProcess, drive_http


@dataclass(frozen=True, slots=True)
class PhaseResult:
    load: LoadResult
    books: BooksCheck
    transactions: int
    """PostgreSQL transactions in the phase's database while the load ran, warm-up included."""
    memory: ServiceMemory | None = None
    """The service's memory (HTTP phase only)."""


async def _core(
    url: URL, clients: int, seconds: float, warmup: float, users: int | None
) -> PhaseResult:
    before_entries = await entries_at(url)
    before_transactions = await transactions_at(url)
    # A purchase holds at most one connection at a time: one per worker, so none waits.
    engine = create_engine(url, pool_size=clients, max_overflow=0)
    try:
        load = await drive_core(
            purchase_service(session_factory(engine)),
            clients=clients,
            seconds=seconds,
            warmup=warmup,
            users=users,
        )
    finally:
        await engine.dispose()
    transactions = await transactions_at(url, settle=True) - before_transactions
    books = await check_books_at(url, load.acknowledged, before_entries)
    return PhaseResult(load, books, transactions)


def run_core_phase(
    url: URL, *, clients: int, seconds: float, warmup: float, users: int | None = None
) -> PhaseResult:
    """Purchases through PurchaseService in this process, ``clients`` workers."""
    return asyncio.run(_core(url, clients, seconds, warmup, users))


async def _gifts(
    url: URL, clients: int, seconds: float, warmup: float, creators: int
) -> PhaseResult:
    # A gift holds at most one connection at a time: one per worker, so none waits.
    engine = create_engine(url, pool_size=clients, max_overflow=0)
    try:
        sessions = session_factory(engine)
        setup = await seed_gifting(sessions, senders=clients, creators=creators)
        before_entries = await entries_at(url, "gift")
        before_transactions = await transactions_at(url, settle=True)
        load = await drive_gifts(
            gift_service(sessions), setup, clients=clients, seconds=seconds, warmup=warmup
        )
    finally:
        await engine.dispose()
    transactions = await transactions_at(url, settle=True) - before_transactions
    books = await check_books_at(url, load.acknowledged, before_entries, kind="gift")
    return PhaseResult(load, books, transactions)


def run_gift_phase(
    url: URL, *, clients: int, seconds: float, warmup: float, creators: int
) -> PhaseResult:
    """Gifts through GiftService in this process: ``clients`` senders, each a worker with a
    wallet of its own (funded before the clock starts), into ``creators`` live streams."""
    return asyncio.run(_gifts(url, clients, seconds, warmup, creators))


def run_http_phase(
    url: URL, *, clients: int, seconds: float, warmup: float, log_path: Path
) -> PhaseResult:
    """Purchases through the real service, started as a subprocess on this database."""
    # The settings the service reads too (environment, .env): its tokens verify there.
    settings = Settings(database_url=url.render_as_string(hide_password=False))
    before_entries = asyncio.run(entries_at(url))
    before_transactions = asyncio.run(transactions_at(url))
    with ServiceProcess(url, log_path) as service:

        async def go() -> LoadResult:
            await service.wait_healthy()
            return await drive_http(
                service, settings, clients=clients, seconds=seconds, warmup=warmup
            )

        load = asyncio.run(go())
    # The service has stopped: nothing is in flight while the books are checked.
    transactions = asyncio.run(transactions_at(url, settle=True)) - before_transactions
    books = asyncio.run(check_books_at(url, load.acknowledged, before_entries))
    return PhaseResult(load, books, transactions, service.memory)
