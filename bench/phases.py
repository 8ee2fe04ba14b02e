"""The ledger phases, each on a fresh migrated database: drive the load, let it stop, then
count what PostgreSQL did and check the books."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from api.database import create_engine, session_factory
from api.settings import Settings
from bench.books import BooksCheck, check_books_at, entries_at, transactions_at
from bench.core import drive_core, purchase_service
from bench.gifts import GiftingSetup, drive_gifts, gift_service, seed_gifting
from bench.http_gifts import drive_http_gifts
from bench.load import LoadResult
from bench.mixed import MixedResult, run_mixed
from bench.over_http import CpuUse, ServiceMemory, ServiceProcess, drive_http
from bench.storage import StorageGrowth, table_sizes


@dataclass(frozen=True, slots=True)
class PhaseResult:
    load: LoadResult
    books: BooksCheck
    transactions: int
    """PostgreSQL transactions in the phase's database while the load ran, warm-up included."""
    memory: ServiceMemory | None = None
    """The service's memory (HTTP phases only)."""
    storage: StorageGrowth | None = None
    """Gift phases: how much the tables grew while the load ran."""
    cpu: CpuUse | None = None
    """HTTP phases: CPU time of the service and of the load generator during the load."""
    mixed: MixedResult | None = None
    """The mixed phase: each kind's latencies, and the deadlocks PostgreSQL counted."""


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
    url: URL,
    clients: int,
    seconds: float,
    warmup: float,
    creators: int,
    max_pool: int,
    services: int = 1,
) -> PhaseResult:
    # Today a gift holds one connection for its whole transaction: one per worker, so none
    # waits, up to what the server allows (beyond it, workers queue for a connection).
    engine = create_engine(url, pool_size=min(clients, max_pool), max_overflow=0)
    try:
        sessions = session_factory(engine)
        setup = await seed_gifting(sessions, senders=clients, creators=creators)
        before_entries = await entries_at(url, "gift")
        before_transactions = await transactions_at(url, settle=True)
        before_sizes = await table_sizes(url)
        load = await drive_gifts(
            [gift_service(sessions) for _ in range(services)],
            setup,
            clients=clients,
            seconds=seconds,
            warmup=warmup,
        )
    finally:
        await engine.dispose()
    transactions = await transactions_at(url, settle=True) - before_transactions
    after_sizes = await table_sizes(url)
    books = await check_books_at(url, load.acknowledged, before_entries, kind="gift")
    storage = StorageGrowth.between(before_sizes, after_sizes, books.entries)
    return PhaseResult(load, books, transactions, storage=storage)


def run_gift_phase(
    url: URL,
    *,
    clients: int,
    seconds: float,
    warmup: float,
    creators: int,
    max_pool: int = 1_000,
    services: int = 1,
) -> PhaseResult:
    """Gifts through GiftService in this process: ``clients`` senders, each a worker with a
    wallet of its own (funded before the clock starts), into ``creators`` live streams; an
    engine of ``min(clients, max_pool)`` connections, shared by ``services`` gift services
    (each batching its own workers' gifts, as a process of the service would)."""
    return asyncio.run(_gifts(url, clients, seconds, warmup, creators, max_pool, services))


async def _seed_for_http(url: URL, senders: int, creators: int) -> GiftingSetup:
    engine = create_engine(url, pool_size=8, max_overflow=0)
    try:
        return await seed_gifting(session_factory(engine), senders=senders, creators=creators)
    finally:
        await engine.dispose()


def run_http_gift_phase(
    url: URL, *, clients: int, seconds: float, warmup: float, creators: int, log_path: Path
) -> PhaseResult:
    """Gifts through the real service, started as a subprocess on this database, after the
    senders are funded and the creators live (by this process, before the clock starts)."""
    settings = Settings(database_url=url.render_as_string(hide_password=False))
    setup = asyncio.run(_seed_for_http(url, clients, creators))
    before_entries = asyncio.run(entries_at(url, "gift"))
    before_transactions = asyncio.run(transactions_at(url, settle=True))
    before_sizes = asyncio.run(table_sizes(url))
    with ServiceProcess(url, log_path) as service:

        async def go() -> tuple[LoadResult, CpuUse]:
            await service.wait_healthy()
            return await _measuring_cpu(
                service,
                drive_http_gifts(
                    service, settings, setup, clients=clients, seconds=seconds, warmup=warmup
                ),
            )

        load, cpu = asyncio.run(go())
    transactions = asyncio.run(transactions_at(url, settle=True)) - before_transactions
    after_sizes = asyncio.run(table_sizes(url))
    books = asyncio.run(check_books_at(url, load.acknowledged, before_entries, kind="gift"))
    storage = StorageGrowth.between(before_sizes, after_sizes, books.entries)
    return PhaseResult(load, books, transactions, service.memory, storage, cpu)


def run_mixed_phase(
    url: URL, *, clients: int, seconds: float, warmup: float, creators: int, log_path: Path
) -> PhaseResult:
    """The mix of bench/mixed.py through the real service, after the viewers are funded and the
    creators live."""
    setup = asyncio.run(_seed_for_http(url, clients, creators))
    before_transactions = asyncio.run(transactions_at(url, settle=True))
    mixed, books, service = run_mixed(
        url, setup, clients=clients, seconds=seconds, warmup=warmup, log_path=log_path
    )
    transactions = asyncio.run(transactions_at(url, settle=True)) - before_transactions
    return PhaseResult(mixed.load, books, transactions, service.memory, mixed=mixed)


def run_http_phase(
    url: URL, *, clients: int, seconds: float, warmup: float, log_path: Path
) -> PhaseResult:
    """Purchases through the real service, started as a subprocess on this database."""
    # The settings the service reads too (environment, .env): its tokens verify there.
    settings = Settings(database_url=url.render_as_string(hide_password=False))
    before_entries = asyncio.run(entries_at(url))
    before_transactions = asyncio.run(transactions_at(url))
    with ServiceProcess(url, log_path) as service:

        async def go() -> tuple[LoadResult, CpuUse]:
            await service.wait_healthy()
            return await _measuring_cpu(
                service,
                drive_http(service, settings, clients=clients, seconds=seconds, warmup=warmup),
            )

        load, cpu = asyncio.run(go())
    # The service has stopped: nothing is in flight while the books are checked.
    transactions = asyncio.run(transactions_at(url, settle=True)) - before_transactions
    books = asyncio.run(check_books_at(url, load.acknowledged, before_entries))
    return PhaseResult(load, books, transactions, service.memory, cpu=cpu)


async def _measuring_cpu(
    service: ServiceProcess, load: Coroutine[Any, Any, LoadResult]
) -> tuple[LoadResult, CpuUse]:
    """Run the load, and take the CPU time the service and this process spent meanwhile."""
    service_before, client_before = service.cpu_seconds(), time.process_time()
    started = time.monotonic()
    result = await load
    return result, CpuUse(
        service.cpu_seconds() - service_before,
        time.process_time() - client_before,
        time.monotonic() - started,
    )
