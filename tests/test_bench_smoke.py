"""The benchmark's core-throughput phase, run for about a second: purchases are acknowledged
and the books hold exactly those. Nothing here is timed: speed is for ``make bench``."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.books import check_books, purchase_entries
from bench.core import drive_core, purchase_service
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
    assert books.purchase_entries == load.acknowledged


def test_pgbench_output_parses() -> None:
    result = parse(PGBENCH_OUTPUT, clients=32, seconds=5)
    assert result.tps == 1843.575831
    assert result.latency_avg_ms == 17.358
    assert result.failed == 0
