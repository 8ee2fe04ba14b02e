"""The benchmark's core-throughput phases, run for about a second each: purchases and gifts
are acknowledged and the books hold exactly those. Nothing here is timed: speed is for
``make bench``."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.books import check_books, entries_of_kind, purchase_entries
from bench.core import drive_core, purchase_service
from bench.gifts import drive_gifts, gift_service, seed_gifting
from bench.pgbench import parse

PGBENCH_OUTPUT = """\
pgbench (18.6)
transaction type: <builtin: TPC-B (sort of)>
scaling factor: 10
query mode: simple
number of clients: 32
number of threads: 2
maximum number of tries: 1
duration: 5 s
number of transactions actually processed: 9245
number of failed transactions: 0 (0.000%)
latency average = 17.358 ms
initial connection time = 53.732 ms
tps = 1843.575831 (without initial connection time)
"""


async def test_core_phase_acknowledges_purchases_and_books_agree(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    before = await purchase_entries(sessions)
    load = await drive_core(purchase_service(sessions), clients=4, seconds=1.0, users=2)

    assert load.acknowledged > 0
    assert load.errors == 0, load.error_examples
    books = await check_books(sessions, load.acknowledged, before)
    assert books.ok, books.problems()
    assert (books.kind, books.entries) == ("purchase", load.acknowledged)


@pytest.mark.parametrize("creators", [5, 1])
async def test_gift_phase_acknowledges_gifts_and_books_agree(
    sessions: async_sessionmaker[AsyncSession], creators: int
) -> None:
    """Four senders gift for a second into five streams, or all into one: every gift sent is
    one gift entry, the creators got all the diamonds, and the integrity check is clean."""
    setup = await seed_gifting(sessions, senders=4, creators=creators)
    assert len(setup.streams) == creators
    before = await entries_of_kind(sessions, "gift")
    load = await drive_gifts(gift_service(sessions), setup, clients=4, seconds=1.0)

    assert load.acknowledged > 0
    assert load.errors == 0, load.error_examples
    books = await check_books(sessions, load.acknowledged, before, kind="gift")
    assert books.ok, books.problems()
    assert (books.kind, books.entries) == ("gift", load.acknowledged)
    async with sessions() as session:
        gifts, coins, streams = (
            await session.execute(
                text("SELECT count(*), sum(coins), count(DISTINCT stream_id) FROM gift")
            )
        ).one()
        pending = await session.scalar(
            text(
                "SELECT -sum(balance) FROM account WHERE code LIKE 'creator:%\\:diamonds\\:pending'"
            )
        )
    assert gifts == load.acknowledged
    assert pending == coins  # a diamond per coin, every one of them pending
    assert streams == creators


def test_pgbench_output_parses() -> None:
    result = parse(PGBENCH_OUTPUT, clients=32, seconds=5)
    assert result.tps == 1843.575831
    assert result.latency_avg_ms == 17.358
    assert result.failed == 0
